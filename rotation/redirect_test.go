package rotation

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/influxrotate/influxrotate/testutil/redirect"
)

// A probe with the default client does not follow a redirect: the token
// would go to the Location, here another port of the same host, for which
// Go keeps the Authorization header. The message names the status and the
// Location's scheme and host, and not the token.
func TestProbeRefusesRedirects(t *testing.T) {
	for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			trap := redirect.New(t, status)
			p := newProber(t, ProberConfig{URL: trap.URL()})
			res := p.Probe(context.Background(), NewCredential(tokenN(1), "", "test"))
			trap.CheckNothingFollowed(t)
			if res.Verdict != VerdictUnknown {
				t.Errorf("verdict %v, want unknown", res.Verdict)
			}
			for _, want := range []string{ErrRedirectRefused.Error(), http.StatusText(status), trap.To.URL} {
				if !strings.Contains(res.Message, want) {
					t.Errorf("message %q lacks %q", res.Message, want)
				}
			}
			if strings.Contains(res.Message, tokenN(1)) {
				t.Error("message contains the token")
			}
		})
	}
}

// The refusal never names more of the Location than scheme and host: no
// userinfo password, path or query (which may hold a token).
func TestNoRedirectNamesOnlySchemeAndHost(t *testing.T) {
	req, err := http.NewRequest(http.MethodGet, "http://user:hunter2@elsewhere.example:8086/api/v2/write?token=secret", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Response = &http.Response{StatusCode: 307, Status: "307 Temporary Redirect"}
	msg := NoRedirect(req, nil).Error()
	if !strings.Contains(msg, "307 Temporary Redirect to http://elsewhere.example:8086") {
		t.Errorf("message %q does not name the status and the Location's scheme and host", msg)
	}
	for _, secret := range []string{"hunter2", "user", "secret", "/api"} {
		if strings.Contains(msg, secret) {
			t.Errorf("message %q contains %q", msg, secret)
		}
	}
}
