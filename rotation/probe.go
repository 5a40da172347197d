package rotation

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
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
	// VerdictRefused: 401, the server does not know the token (InfluxDB 3:
	// or it has expired), or 400, InfluxDB 3 cannot read the Authorization
	// header it came in.
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
	// TLS, proxy and local address settings apply. Default: a client that
	// follows no redirect (NoRedirect).
	Client *http.Client
	// NewRequest, when set, builds each probe request in place of URL and
	// Header: a writer passes its own request builder, so that a probe
	// carries exactly what its writes carry (path, query, headers, the
	// Authorization for c). body is empty or the point line; t.Org is
	// ProbeOrg or the target's org.
	NewRequest func(ctx context.Context, t Target, body []byte, c *Credential) (*http.Request, error)
	// Timeout bounds each probe request. Default 5s.
	Timeout time.Duration
	// Header is added to every probe (User-Agent, http_headers).
	Header http.Header
	// Scrubber removes tokens from the server's messages; the prober adds
	// each token it probes. Default: a new one.
	Scrubber *Scrubber
}

func (v Verdict) String() string {
	switch v {
	case VerdictUnknown:
		return "unknown"
	case VerdictValid:
		return "valid"
	case VerdictRefused:
		return "refused"
	case VerdictForbidden:
		return "forbidden"
	case VerdictNotFound:
		return "not_found"
	}
	return "verdict(" + strconv.Itoa(int(v)) + ")"
}

// ProbeMeasurement is the measurement of the point written in ProbePoint mode.
const ProbeMeasurement = "influxrotate_probe"

// emptyWriteMessages are the 400 answers to an empty write that come after
// the token and its write permission were accepted: InfluxDB 3, and
// InfluxDB 2.0.x before 2.1 made an empty write return 204
// (influxdata/influxdb#22574).
var emptyWriteMessages = []string{"incoming write was empty", "writing requires points"}

// HTTPProber validates tokens against the InfluxDB write API.
type HTTPProber struct {
	cfg    ProberConfig
	base   *url.URL
	client *http.Client
}

// NewHTTPProber checks cfg. Errors name the option at fault.
func NewHTTPProber(cfg ProberConfig) (*HTTPProber, error) {
	var u *url.URL
	if cfg.NewRequest == nil {
		var err error
		u, err = url.Parse(cfg.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("probe url %q: want http(s)://host[:port]", RedactURL(cfg.URL))
		}
	}
	switch cfg.Mode {
	case ProbeEmptyWrite:
		if len(cfg.Targets) == 0 {
			return nil, errors.New("probe targets: at least one org/bucket is needed for empty-write probes")
		}
		for i, t := range cfg.Targets {
			if t.Bucket == "" {
				return nil, fmt.Errorf("probe targets[%d]: bucket is empty", i)
			}
		}
	case ProbePoint:
		if cfg.ProbeBucket == "" {
			return nil, errors.New("probe_bucket: required in point probe mode")
		}
	case ProbeNone:
	default:
		return nil, fmt.Errorf("probe mode %d: unknown", cfg.Mode)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{CheckRedirect: NoRedirect}
	}
	if cfg.Scrubber == nil {
		cfg.Scrubber = NewScrubber()
	}
	return &HTTPProber{cfg: cfg, base: u, client: client}, nil
}

// Probe asks the server whether c may write. Targets are probed in turn
// and the first answer that is not Valid decides. Each request is bounded
// by ProberConfig.Timeout and by ctx.
func (p *HTTPProber) Probe(ctx context.Context, c *Credential) ProbeResult {
	start := time.Now()
	var res ProbeResult
	switch p.cfg.Mode {
	case ProbeNone:
		res = ProbeResult{Verdict: VerdictValid}
	case ProbePoint:
		line := fmt.Sprintf("%s ok=1i %d\n", ProbeMeasurement, time.Now().UnixNano())
		res = p.one(ctx, c, Target{Org: p.cfg.ProbeOrg, Bucket: p.cfg.ProbeBucket}, line)
	default:
		for _, t := range p.cfg.Targets {
			res = p.one(ctx, c, t, "")
			if res.Verdict != VerdictValid {
				break
			}
		}
	}
	res.Duration = time.Since(start)
	return res
}

func (p *HTTPProber) one(ctx context.Context, c *Credential, t Target, body string) ProbeResult {
	res := ProbeResult{Target: t}
	if c == nil {
		res.Message = "no token"
		return res
	}
	// Registered before it is sent: an echo of it in the answer is scrubbed.
	p.cfg.Scrubber.AddCredential(c)
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	req, err := p.request(ctx, t, body, c)
	if err != nil {
		res.Message = err.Error()
		return res
	}
	resp, err := p.client.Do(req)
	if err != nil {
		res.Message = p.cfg.Scrubber.Scrub(err.Error())
		return res
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	res.Status = resp.StatusCode
	res.Verdict, res.Message = classifyProbe(p.cfg.Scrubber, resp.StatusCode, msg)
	return res
}

// request builds one probe request, with ProberConfig.NewRequest when set.
func (p *HTTPProber) request(ctx context.Context, t Target, body string, c *Credential) (*http.Request, error) {
	if p.cfg.NewRequest != nil {
		return p.cfg.NewRequest(ctx, t, []byte(body), c)
	}
	u := p.base.JoinPath("api", "v2", "write")
	q := url.Values{}
	if t.Org != "" {
		q.Set("org", t.Org)
	}
	q.Set("bucket", t.Bucket)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, vs := range p.cfg.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Authorization", c.AuthorizationHeader())
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	return req, nil
}

// classifyProbe maps a probe answer to a verdict on top of Classify, the
// one place that reads a status: what Classify calls a refused token is
// refused (forbidden for 403), and of the answers it would drop a write for,
// the empty write's 400 means the token passed and 404 names a missing
// org or bucket. A server that cannot answer (429, 5xx) is never taken to
// have refused the token. s scrubs the message.
func classifyProbe(s *Scrubber, status int, body []byte) (Verdict, string) {
	d := s.Classify(status, nil, body)
	switch d.Action {
	case ActionAccept:
		return VerdictValid, ""
	case ActionAuth:
		if status == http.StatusForbidden {
			return VerdictForbidden, d.Message
		}
		return VerdictRefused, d.Message
	case ActionDrop:
		switch {
		case status == http.StatusBadRequest &&
			slices.ContainsFunc(emptyWriteMessages, func(m string) bool { return strings.Contains(d.Message, m) }):
			return VerdictValid, d.Message
		case status == http.StatusNotFound:
			return VerdictNotFound, d.Message
		}
	}
	return VerdictUnknown, cmp.Or(d.Message, http.StatusText(status))
}
