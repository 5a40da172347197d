package rotation

import (
	"errors"
	"fmt"
	"net/http"
)

// ErrRedirectRefused is wrapped by the error of every request whose answer
// was a redirect: no HTTP client of the project follows one.
var ErrRedirectRefused = errors.New("redirect refused")

// NoRedirect is the CheckRedirect of every HTTP client the project builds
// (plugin writes and probes, the execd binary, the controller's API calls).
// InfluxDB never redirects a write or an API call, so a redirect comes from
// a wrong URL or something in between; following it would send the token,
// which Go keeps on a redirect to the same host name, to wherever it points
// (another port, plain http). The error names the status and the scheme and
// host of the Location, never its path, query or userinfo.
func NoRedirect(req *http.Request, _ []*http.Request) error {
	status := "a redirect"
	if req.Response != nil {
		status = req.Response.Status
	}
	return fmt.Errorf("%w: the server answered %s to %s://%s; InfluxDB does not redirect writes or API calls, so configure the final address (the token was not sent there)",
		ErrRedirectRefused, status, req.URL.Scheme, req.URL.Host)
}
