package backend

import (
	"fmt"
	"io"
	"net/http"

	"github.com/influxrotate/influxrotate/rotation"
)

// maxAnswer bounds what is read of an API answer: listings of a large
// organisation are big, an HTML page from a misrouted proxy must not be.
const maxAnswer = 8 << 20

// exchange sends req and reads its answer. A transport error comes back as
// it is, for the retry loop to judge; an answer outside 2xx is an *HTTPError
// with the server's message, every token scrub holds removed (a server or
// proxy may echo the Authorization header, and 1.x errors can quote a
// statement holding a password), and its Retry-After.
func exchange(c *http.Client, req *http.Request, op string, scrub *rotation.Scrubber) ([]byte, error) {
	resp, err := c.Do(req)
	if err != nil {
		// *url.Error names the URL, which carries no secret.
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return nil, fmt.Errorf("%s: reading answer: %w", op, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// The start of an error body is plenty for its message.
		return nil, &HTTPError{Op: op, Status: resp.StatusCode, Message: scrub.ServerMessage(data),
			RetryAfter: rotation.RetryAfter(resp.Header)}
	}
	if len(data) > maxAnswer {
		// Decoding the cut answer would fail with "unexpected end of JSON
		// input", which says nothing; retrying cannot help.
		return nil, Permanent(fmt.Errorf("%s: the answer is larger than %d MiB, more than an InfluxDB API answer should be; "+
			"an organisation with this many authorizations needs fewer (delete unused ones) or a proxy is misrouting the request",
			op, maxAnswer>>20))
	}
	return data, nil
}
