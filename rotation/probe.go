package rotation

import (
	"context"
	"net/http"
	"time"
)

// Verdict is what a probe learned about a token.
type Verdict int

const (
	// VerdictUnknown: the server could not be asked (transport error,
	// timeout, 5xx, 429) or answered something unexpected. Never "refused".
	VerdictUnknown Verdict = iota
	// VerdictValid: the token may write to every probed bucket.
	VerdictValid
	// VerdictRefused: 401, the server does not know the token.
	VerdictRefused
	// VerdictForbidden: 403, the token lacks write permission or is inactive.
	VerdictForbidden
	// VerdictNotFound: 404, the org or bucket does not exist: a
	// configuration error, not a property of the token.
	VerdictNotFound
)

// ProbeMode selects how a token is validated.
type ProbeMode int

const (
	// ProbeEmptyWrite posts an empty body to /api/v2/write for each target:
	// no side effect on InfluxDB 1.8, 2.x and 3.
	ProbeEmptyWrite ProbeMode = iota
	// ProbePoint writes one real point to ProbeBucket, for servers where an
	// empty write proves nothing.
	ProbePoint
	// ProbeNone accepts every token unchecked.
	ProbeNone
)

// Target is one place a writer writes to.
type Target struct {
	Org    string
	Bucket string
}

// ProbeResult is the outcome of probing one token.
type ProbeResult struct {
	Verdict Verdict
	// Status is the HTTP status of the deciding answer, 0 without one.
	Status int
	// Target is the target that decided the verdict.
	Target Target
	// Message is the server's error message or the transport error, safe to log.
	Message string
	// Duration is how long the probe took.
	Duration time.Duration
}

// Prober validates a token without side effects.
type Prober interface {
	Probe(ctx context.Context, c *Credential) ProbeResult
}

// ProberConfig configures NewHTTPProber.
type ProberConfig struct {
	// URL is the server's base URL, such as http://localhost:8086.
	URL string
	// Targets are probed in turn; the first non-valid answer decides.
	Targets []Target
	Mode    ProbeMode
	// ProbeBucket and ProbeOrg receive the point in ProbePoint mode.
	ProbeBucket string
	ProbeOrg    string
	// Client sends the probes; it should be the writer's own client so that
	// TLS, proxy and local address settings apply. Default http.DefaultClient.
	Client *http.Client
	// Timeout bounds each probe request. Default 5s.
	Timeout time.Duration
	// Header is added to every probe (User-Agent, http_headers).
	Header http.Header
}
