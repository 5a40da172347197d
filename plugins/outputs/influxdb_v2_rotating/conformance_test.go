package influxdb_v2_rotating

import (
	"fmt"
	"math"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"

	"github.com/influxrotate/influxrotate/rotation"
	"github.com/influxrotate/influxrotate/testutil/secscan"
)

// The differential conformance suite: every scenario runs once with
// Telegraf's own outputs.influxdb_v2 and once with ours, each inside
// Telegraf's RunningOutput, loaded by Telegraf's configuration loader from
// the same options, against a recording server on loopback. What an
// operator can observe must be the same: the errors of Init, Connect and
// each flush, the requests on the wire, which metrics were accepted,
// rejected or kept, and the plugin's log lines.
//
// The exceptions are conformanceDifferences, each named after an entry of
// the README's "Differences" list. A difference that appears without an
// entry fails the suite, and so does an entry whose difference went away.

type conformanceScenario struct {
	name string
	// options are the plugin's options beyond urls (TOML lines); token,
	// organization and bucket get defaults when not mentioned.
	options string
	// ours replaces options for our plugin only, for the scenarios of our
	// own options.
	ours    string
	server  serverKind
	urls    func(*testing.T, *recorder) []string
	answer  func(r *http.Request, body string) answer
	metrics func() []telegraf.Metric
	flushes int
	// refusedByLoader: Telegraf's configuration loader refuses the options
	// for both plugins (it reads TLS files itself), which is all there is
	// to compare.
	refusedByLoader bool
}

func status(code int) func(*http.Request, string) answer {
	return func(*http.Request, string) answer { return answer{status: code} }
}

func statusBody(code int, body string) func(*http.Request, string) answer {
	return func(*http.Request, string) answer {
		return answer{status: code, header: map[string]string{"Content-Type": "application/json"}, body: body}
	}
}

func withRetryAfter(code int, seconds string) func(*http.Request, string) answer {
	return func(*http.Request, string) answer {
		return answer{status: code, header: map[string]string{"Retry-After": seconds}}
	}
}

func three() []telegraf.Metric { return cpu(3, nil) }

// conformanceScenarios cover every option of the stock sample.conf, the
// answers a server gives and the features around the write path.
var conformanceScenarios = []conformanceScenario{
	{name: "defaults", metrics: three},
	{name: "organization and bucket", options: `organization = "acme"` + "\n" + `bucket = "metrics"`, metrics: three},
	{name: "content_encoding identity", options: `content_encoding = "identity"`, metrics: three},
	{name: "content_encoding gzip", options: `content_encoding = "gzip"`, metrics: three},
	{name: "content_encoding invalid", options: `content_encoding = "br"`, metrics: three},
	{name: "influx_uint_support", options: `influx_uint_support = true`, metrics: three},
	{name: "influx_omit_timestamp", options: `influx_omit_timestamp = true`, metrics: three},
	{name: "user_agent", options: `user_agent = "my-agent/1.0"`, metrics: three},
	{name: "http_headers", options: `http_headers = {"X-Special-Header" = "Special-Value", "X-Tenant" = "t1"}`, metrics: three},
	{name: "http_headers Host", options: `http_headers = {"Host" = "influx.example.com"}`, metrics: three},
	{name: "http_headers User-Agent", options: `http_headers = {"User-Agent" = "from-headers"}`, metrics: three},
	{name: "timeout", options: `timeout = "300ms"`, answer: func(*http.Request, string) answer { return answer{hang: true} }, metrics: three},
	{name: "local_address", options: `local_address = "127.0.0.1"`, metrics: three},
	{name: "local_address invalid", options: `local_address = "not an address"`, metrics: three},
	{name: "http2 timeouts", options: `ping_timeout = "15s"` + "\n" + `read_idle_timeout = "30s"`, metrics: three},
	{name: "tls insecure_skip_verify", options: `insecure_skip_verify = true`, server: serveTLS, metrics: three},
	{name: "tls unknown authority", server: serveTLS, metrics: three},
	{name: "tls_ca", options: `tls_ca = "$TLS.pem"`, server: serveTLS, metrics: three},
	{name: "tls_cert and tls_key", options: `tls_ca = "$TLS.pem"` + "\n" + `tls_cert = "$TLS.pem"` + "\n" + `tls_key = "$TLS.key"`, server: serveTLS, metrics: three},
	{name: "tls_ca missing", options: `tls_ca = "/nonexistent/ca.pem"`, server: serveTLS, metrics: three, refusedByLoader: true},
	{name: "http_proxy", options: `http_proxy = "$PROXY"`, metrics: three,
		urls: func(*testing.T, *recorder) []string { return []string{"http://influxdb.example:8086"} }},
	{name: "http_proxy invalid", options: `http_proxy = "http://[::1"`, metrics: three},
	{name: "url with path", urls: func(_ *testing.T, r *recorder) []string { return []string{r.url + "/influx/"} }, metrics: three},
	{name: "url with query", urls: func(_ *testing.T, r *recorder) []string { return []string{r.url + "?id=abc"} }, metrics: three},
	{name: "url invalid", urls: func(*testing.T, *recorder) []string { return []string{"http://[::1"} }, metrics: three},
	{name: "url unsupported scheme", urls: func(*testing.T, *recorder) []string { return []string{"ftp://127.0.0.1"} }, metrics: three},
	{name: "unix socket", server: serveUnix, metrics: three},
	{name: "server down", urls: func(t *testing.T, _ *recorder) []string { return []string{closedURL(t)} }, metrics: three},
	// The same address twice: either plugin's random pick gives one result.
	{name: "two urls down", urls: func(t *testing.T, _ *recorder) []string { u := closedURL(t); return []string{u, u} }, metrics: three},
	{name: "metric_batch_size", options: "metric_batch_size = 2", metrics: func() []telegraf.Metric { return cpu(5, nil) }},
	{name: "concurrent_writes", options: "concurrent_writes = 3", metrics: func() []telegraf.Metric { return cpu(9, nil) }},
	{name: "rate_limit", options: `rate_limit = "120B"` + "\n" + `rate_limit_period = "1h"` + "\n" + `content_encoding = "identity"`,
		metrics: func() []telegraf.Metric { return cpu(6, nil) }},
	{name: "rate_limit unlimited", options: `rate_limit = "unlimited"`, metrics: three},
	{name: "serialization error", metrics: func() []telegraf.Metric {
		ms := cpu(3, nil)
		ms[1] = unserializable(ms[1].Time())
		return ms
	}},
	{name: "bucket_tag", options: `bucket_tag = "bucket"`, metrics: routed},
	{name: "bucket_tag excluded", options: `bucket_tag = "bucket"` + "\n" + "exclude_bucket_tag = true", metrics: routed},
	{name: "bucket_tag without bucket", options: `bucket_tag = "bucket"` + "\n" + `bucket = ""`, metrics: routed},
	{name: "exclude_bucket_tag without bucket_tag", options: "exclude_bucket_tag = true", metrics: routed},
	{name: "secret store token and header", options: `token = "@{conformance:token}"` + "\n" + `http_headers = {"X-Secret" = "@{conformance:header}"}`, metrics: three},
	{name: "no token", options: `token = ""`, metrics: three},

	// Status codes.
	{name: "status 200", answer: status(200), metrics: three},
	{name: "status 201", answer: status(201), metrics: three},
	{name: "status 202", answer: status(202), metrics: three},
	{name: "status 203", answer: status(203), metrics: three},
	{name: "status 206", answer: status(206), metrics: three},
	{name: "status 207", answer: status(207), metrics: three},
	{name: "status 208", answer: status(208), metrics: three},
	{name: "status 205", answer: status(205), metrics: three},
	{name: "status 302", answer: status(302), metrics: three},
	{name: "redirect 302", answer: redirectTo("/elsewhere", 302), metrics: three},
	{name: "redirect 307", answer: redirectTo("/elsewhere", 307), metrics: three},
	{name: "status 400", answer: statusBody(400, `{"code":"invalid","message":"unable to parse 'cpu': missing fields"}`), metrics: three},
	{name: "status 400 plain text", answer: func(*http.Request, string) answer { return answer{status: 400, body: "bad request"} }, metrics: three},
	{name: "status 400 echoing the token", answer: func(r *http.Request, _ string) answer {
		return answer{status: 400, header: map[string]string{"Content-Type": "application/json"},
			body: fmt.Sprintf(`{"code":"invalid","message":"bad request with %s"}`, r.Header.Get("Authorization"))}
	}, metrics: three},
	{name: "status 401", answer: statusBody(401, `{"code":"unauthorized","message":"unauthorized access"}`), metrics: three},
	{name: "status 403", answer: statusBody(403, `{"code":"forbidden","message":"insufficient permissions for write"}`), metrics: three},
	{name: "status 404", answer: statusBody(404, `{"code":"not found","message":"bucket \"my_bucket\" not found"}`), metrics: three},
	{name: "status 406", answer: status(406), metrics: three},
	{name: "status 409", answer: status(409), metrics: three},
	{name: "status 413 split", options: `content_encoding = "identity"`, answer: tooLargeOver(60),
		metrics: func() []telegraf.Metric { return cpu(4, nil) }},
	{name: "status 413 single line", options: `content_encoding = "identity"`, answer: tooLargeOver(1),
		metrics: func() []telegraf.Metric { return cpu(1, nil) }},
	{name: "status 422", answer: statusBody(422, `{"code":"unprocessable entity","message":"failure writing points: points beyond retention policy"}`), metrics: three},
	{name: "status 429", answer: status(429), metrics: three},
	{name: "status 429 Retry-After", answer: withRetryAfter(429, "3600"), metrics: three, flushes: 2},
	{name: "status 500", answer: statusBody(500, `{"code":"internal error","message":"unexpected error writing points to database"}`), metrics: three},
	{name: "status 500 X-Influx-Error", answer: func(*http.Request, string) answer {
		return answer{status: 500, header: map[string]string{"X-Influx-Error": "engine: cache full"}}
	}, metrics: three},
	{name: "status 502", answer: status(502), metrics: three},
	{name: "status 503 Retry-After", answer: withRetryAfter(503, "3600"), metrics: three, flushes: 2},
	{name: "status 503 Retry-After invalid", answer: withRetryAfter(503, "soon"), metrics: three},
	{name: "status 504", answer: status(504), metrics: three},
	{name: "status 504 Retry-After", answer: withRetryAfter(504, "30"), metrics: three},
	{name: "status 502 Retry-After", answer: withRetryAfter(502, "30"), metrics: three},
	{name: "status 500 Retry-After", answer: withRetryAfter(500, "30"), metrics: three, flushes: 2},
	{name: "status 503 Retry-After date", answer: func(*http.Request, string) answer {
		return answer{status: 503, header: map[string]string{"Retry-After": time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}}
	}, metrics: three},
	{name: "status 429 Retry-After fraction", answer: withRetryAfter(429, "1.5"), metrics: three},
	{name: "status 429 Retry-After over the cap", answer: withRetryAfter(429, "86400"), metrics: three},

	// One request of several refused: the others' metrics are stored.
	{name: "concurrent_writes one batch refused", options: "concurrent_writes = 3", answer: refuseBodyWith("value=4,"),
		metrics: func() []telegraf.Metric { return cpu(9, nil) }},
	{name: "metric_batch_size one batch refused", options: "metric_batch_size = 2", answer: refuseBodyWith("value=2,"),
		metrics: func() []telegraf.Metric { return cpu(5, nil) }},
	{name: "bucket_tag one bucket refused", options: `bucket_tag = "bucket"`, answer: func(r *http.Request, _ string) answer {
		if r.URL.Query().Get("bucket") == "b2" {
			return answer{status: 404, header: map[string]string{"Content-Type": "application/json"},
				body: `{"code":"not found","message":"bucket \"b2\" not found"}`}
		}
		return answer{status: 204}
	}, metrics: routed},
	{name: "concurrent_writes serialization error", options: "concurrent_writes = 2", metrics: func() []telegraf.Metric {
		ms := cpu(6, nil)
		ms[4] = unserializable(ms[4].Time())
		return ms
	}},

	// Our own options.
	{name: "token_file", options: "", ours: `token_file = "$TEMP/token"`, metrics: three},
	{name: "token_file strict", options: "", ours: `token_file = "$TEMP/token"` + "\n" + "strict = true", metrics: three},
	{name: "token_file without adoption reports", options: "", ours: `token_file = "$TEMP/token"` + "\n" + "adoption_report = false", metrics: three},
}

// routed is three metrics for bucket_tag: two tagged, one without the tag.
func routed() []telegraf.Metric {
	ms := cpu(3, nil)
	ms[0].AddTag("bucket", "b1")
	ms[1].AddTag("bucket", "b2")
	return ms
}

// redirectTo answers writes with a redirect to path on the same server,
// and any other request there with 204.
func redirectTo(path string, code int) func(*http.Request, string) answer {
	return func(r *http.Request, _ string) answer {
		if r.URL.Path == path {
			return answer{status: http.StatusNoContent}
		}
		return answer{status: code, header: map[string]string{"Location": path}}
	}
}

// unserializable is a metric whose only field is NaN, which line protocol
// cannot carry. (A metric without fields never reaches an output: the
// agent filters it.)
func unserializable(at time.Time) telegraf.Metric {
	return metric.New("cpu", map[string]string{"host": "a"}, map[string]any{"value": math.NaN()}, at)
}

// refuseBodyWith answers 400 to a body containing text, 204 otherwise.
func refuseBodyWith(text string) func(*http.Request, string) answer {
	return func(_ *http.Request, body string) answer {
		if strings.Contains(body, text) {
			return answer{status: 400, header: map[string]string{"Content-Type": "application/json"},
				body: `{"code":"invalid","message":"unable to parse"}`}
		}
		return answer{status: 204}
	}
}

// tooLargeOver answers 413 to a body of more than limit bytes.
func tooLargeOver(limit int) func(*http.Request, string) answer {
	return func(_ *http.Request, body string) answer {
		if len(body) > limit {
			return answer{status: 413, header: map[string]string{"Content-Type": "application/json"},
				body: `{"code":"request too large","message":"unable to read data: points batch is too large"}`}
		}
		return answer{status: 204}
	}
}

// normalizer removes from one aspect of both plugins' observations a
// difference that shows in every scenario, named after its README entry.
// It must change something somewhere in the suite: one that no longer
// does names a difference that is gone.
type normalizer struct {
	difference string
	aspect     string
	pattern    *regexp.Regexp
}

var conformanceNormalizers = []normalizer{
	// The stock plugin's request body has no length (chunked); ours has a
	// Content-Length.
	{"Content-Length", aspectWire, regexp.MustCompile(`(?m)^ +(\(transfer-encoding: chunked\)|\(content-length: \d+\)|Content-Length: \d+)\n`)},
}

// conformanceDifferences maps "scenario/aspect" to the name of the README
// "Differences" entry that explains why ours differs there.
var conformanceDifferences = map[string]string{
	"content_encoding invalid/init":             "Configuration errors",
	"http_proxy invalid/connect":                "Configuration errors",
	"local_address invalid/connect":             "Configuration errors",
	"url invalid/connect":                       "Configuration errors",
	"url unsupported scheme/connect":            "Configuration errors",
	"no token/init":                             "A token is required",
	"no token/connect":                          "A token is required",
	"no token/write":                            "A token is required",
	"no token/wire":                             "A token is required",
	"no token/metrics":                          "A token is required",
	"rate_limit unlimited/init":                 "rate_limit = \"unlimited\"",
	"rate_limit unlimited/connect":              "rate_limit = \"unlimited\"",
	"rate_limit unlimited/write":                "rate_limit = \"unlimited\"",
	"rate_limit unlimited/wire":                 "rate_limit = \"unlimited\"",
	"rate_limit unlimited/metrics":              "rate_limit = \"unlimited\"",
	"rate_limit/metrics":                        "Metrics over the rate limit are kept",
	"status 205/write":                          "Every 2xx stores the batch",
	"status 205/metrics":                        "Every 2xx stores the batch",
	"status 205/log":                            "Every 2xx stores the batch",
	"status 203/write":                          "Every 2xx stores the batch",
	"status 203/metrics":                        "Every 2xx stores the batch",
	"status 203/log":                            "Every 2xx stores the batch",
	"redirect 302/write":                        "Redirects are not followed",
	"redirect 302/wire":                         "Redirects are not followed",
	"redirect 302/metrics":                      "Redirects are not followed",
	"redirect 302/log":                          "Redirects are not followed",
	"redirect 307/write":                        "Redirects are not followed",
	"redirect 307/log":                          "Redirects are not followed",
	"status 400 plain text/write":               "Server messages",
	"status 400 plain text/log":                 "Server messages",
	"status 500 X-Influx-Error/write":           "Server messages",
	"status 500 X-Influx-Error/log":             "Server messages",
	"status 503 Retry-After date/write":         "Retry-After as an HTTP date",
	"status 503 Retry-After date/log":           "Retry-After as an HTTP date",
	"status 400 echoing the token/write":        "Server messages",
	"status 400 echoing the token/log":          "Server messages",
	"status 401/write":                          "401 and 403",
	"status 401/log":                            "401 and 403",
	"status 403/write":                          "401 and 403",
	"status 403/log":                            "401 and 403",
	"status 413 split/write":                    "413 splitting",
	"status 413 split/wire":                     "413 splitting",
	"status 413 split/log":                      "413 splitting",
	"status 413 single line/write":              "413 splitting",
	"status 413 single line/wire":               "413 splitting",
	"status 413 single line/log":                "413 splitting",
	"status 413 single line/metrics":            "413 splitting",
	"unix socket/write":                         "Unix sockets",
	"unix socket/wire":                          "Unix sockets",
	"unix socket/log":                           "Unix sockets",
	"unix socket/metrics":                       "Unix sockets",
	"two urls down/log":                         "The next URL is tried",
	"serialization error/log":                   "Unserializable metrics are named",
	"concurrent_writes serialization error/log": "Unserializable metrics are named",
	"token_file strict/wire":                    "token_file and token_env",
	"token_file strict/log":                     "token_file and token_env",
	"token_file without adoption reports/log":   "token_file and token_env",
	"token_file/wire":                           "token_file and token_env",
	"token_file/log":                            "token_file and token_env",
}

// TestConformance runs every scenario with both plugins and compares.
func TestConformance(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := readmeDifferences(string(readme))
	for key, name := range conformanceDifferences {
		if !documented[name] {
			t.Errorf("%s: difference %q is not an entry of the README's Differences list", key, name)
		}
	}
	// Each README entry is shown by the suite: the table, a normalizer, or
	// a test of its own.
	shown := map[string]bool{throttleDifference: true}
	for _, name := range conformanceDifferences {
		shown[name] = true
	}
	for _, n := range conformanceNormalizers {
		shown[n.difference] = true
	}
	for name := range documented {
		if !shown[name] {
			t.Errorf("the README's difference %q is shown by no scenario", name)
		}
	}
	for _, n := range conformanceNormalizers {
		if !documented[n.difference] {
			t.Errorf("normalizer of %s: difference %q is not an entry of the README's Differences list", n.aspect, n.difference)
		}
	}
	seen := make(map[string]bool)
	normalized := make(map[string]bool)
	for _, sc := range conformanceScenarios {
		t.Run(sc.name, func(t *testing.T) {
			stock := runScenario(t, sc, "influxdb_v2")
			ours := runScenario(t, sc, ourName)
			var scan secscan.Scanner
			scan.Add(conformanceTokens...)
			for aspect, text := range ours.aspects {
				scan.Check(t, "ours, "+aspect, []byte(text))
			}
			switch both := loadFailed(stock) && loadFailed(ours); {
			case both && !sc.refusedByLoader:
				t.Fatalf("neither plugin loads the configuration, so the scenario compares nothing: %s", maskTokens(stock.aspects[aspectInit]))
			case !both && sc.refusedByLoader:
				t.Errorf("Telegraf's loader was to refuse the configuration for both plugins")
			}
			for _, n := range conformanceNormalizers {
				for _, obs := range []observed{stock, ours} {
					before := obs.aspects[n.aspect]
					obs.aspects[n.aspect] = n.pattern.ReplaceAllString(before, "")
					normalized[n.difference] = normalized[n.difference] || obs.aspects[n.aspect] != before
				}
			}
			for _, aspect := range aspects {
				key := sc.name + "/" + aspect
				want, got := stock.aspects[aspect], ours.aspects[aspect]
				name, listed := conformanceDifferences[key]
				seen[key] = true
				switch {
				case want == got && listed:
					t.Errorf("%s: no longer differs, but is listed as %q: remove it from the suite (and the README if nothing else needs it)", aspect, name)
				case want != got && !listed:
					t.Errorf("%s differs and is not a documented difference\n--- stock:\n%s\n--- ours:\n%s", aspect, maskTokens(want), maskTokens(got))
				case want != got:
					t.Logf("%s differs as documented (%q)\n--- stock:\n%s\n--- ours:\n%s", aspect, name, maskTokens(want), maskTokens(got))
				}
			}
		})
	}
	for key := range conformanceDifferences {
		if !seen[key] && !t.Failed() {
			t.Errorf("difference %s names no scenario and aspect of the suite", key)
		}
	}
	for _, n := range conformanceNormalizers {
		if !normalized[n.difference] && !t.Failed() {
			t.Errorf("difference %q no longer shows in any scenario: remove its normalizer", n.difference)
		}
	}
}

// With a token file, what the stock plugin's user sees is unchanged but
// for the adoption report and one log line: no other request, no other
// outcome.
func TestConformanceTokenFileAddsOnlyAdoptionReports(t *testing.T) {
	sc := conformanceScenario{name: "token_file", ours: `token_file = "$TEMP/token"`, metrics: func() []telegraf.Metric { return cpu(5, nil) }}
	stock := runScenario(t, sc, "influxdb_v2")
	ours := runScenario(t, sc, ourName)
	for _, aspect := range []string{aspectInit, aspectConnect, aspectWrite, aspectMetrics} {
		if stock.aspects[aspect] != ours.aspects[aspect] {
			t.Errorf("%s differs\n--- stock:\n%s\n--- ours:\n%s", aspect, maskTokens(stock.aspects[aspect]), maskTokens(ours.aspects[aspect]))
		}
	}
	var reports int
	requests := slices.DeleteFunc(slices.Clone(ours.requests), func(r string) bool {
		if strings.Contains(r, `body "influxrotate_adoption,client_id=`) {
			reports++
			return true
		}
		return false
	})
	if reports != 1 {
		t.Errorf("%d adoption reports, want 1 after the first flush", reports)
	}
	normalize := func(reqs []string) []string {
		out := slices.Clone(reqs)
		for i := range out {
			for _, n := range conformanceNormalizers {
				if n.aspect == aspectWire {
					out[i] = n.pattern.ReplaceAllString(out[i], "")
				}
			}
		}
		return out
	}
	if !slices.Equal(normalize(requests), normalize(stock.requests)) {
		t.Errorf("requests besides the adoption report differ\n--- stock:\n%s\n--- ours:\n%s", maskTokens(stock.aspects[aspectWire]), maskTokens(strings.Join(requests, "\n")))
	}
	logs := slices.DeleteFunc(slices.Clone(ours.logs), func(l string) bool {
		return strings.HasPrefix(l, "I! Using token sha256:") && strings.HasSuffix(l, ", not probed at start (strict = true probes it)")
	})
	if len(logs) != len(ours.logs)-1 || !slices.Equal(logs, stock.logs) {
		t.Errorf("log lines besides the one naming the token differ\n--- stock:\n%s\n--- ours:\n%s", maskTokens(stock.aspects[aspectLog]), maskTokens(ours.aspects[aspectLog]))
	}
}

// maskTokens hides the scenarios' tokens in what the suite prints: the
// stock plugin quotes a server that echoes one, and an echo may carry it
// base64- or URL-encoded (a Basic header, a query string), which a plain
// string replacement would let through.
func maskTokens(s string) string {
	return conformanceScrubber.Scrub(s)
}

var conformanceScrubber = rotation.NewScrubber(conformanceTokens...)

func loadFailed(o observed) bool {
	return strings.HasPrefix(o.aspects[aspectInit], loadFailure)
}

var differenceEntry = regexp.MustCompile(`(?m)^- \*\*([^*]+)\*\*`)

// readmeDifferences returns the names of the entries of the README's
// "Differences" list: the bold words opening each item.
func readmeDifferences(readme string) map[string]bool {
	start := strings.Index(readme, "Differences from `outputs.influxdb_v2`")
	if start < 0 {
		return nil
	}
	section := readme[start:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	out := make(map[string]bool)
	for _, m := range differenceEntry.FindAllStringSubmatch(section, -1) {
		out[m[1]] = true
	}
	return out
}

var sampleOption = regexp.MustCompile(`(?m)^\s*#?\s*([a-z_]+)\s*=`)

// Every option of the stock plugin's sample.conf is set by some scenario
// (urls, token, organization and bucket by all of them).
func TestConformanceCoversStockOptions(t *testing.T) {
	set := map[string]bool{"urls": true, "token": true, "organization": true, "bucket": true}
	for _, sc := range conformanceScenarios {
		for _, m := range sampleOption.FindAllStringSubmatch(sc.options, -1) {
			set[m[1]] = true
		}
	}
	options := sampleOption.FindAllStringSubmatch(stockSampleConfig(t), -1)
	if len(options) < 20 {
		t.Fatalf("read %d options from the stock sample.conf; the pattern no longer fits it", len(options))
	}
	for _, m := range options {
		if !set[m[1]] {
			t.Errorf("no scenario sets the stock option %q", m[1])
		}
	}
}

const throttleDifference = "A throttled flush keeps what it did not send"

// A throttling answer stops the flush's other requests. Which bucket goes
// first is random in both plugins, so this is not a table scenario: every
// request is answered 429, and ours keeps every metric, where the stock
// plugin counts the batch it did not send as written ("A throttled flush
// keeps what it did not send").
func TestConformanceThrottleKeepsUnsentBatches(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !readmeDifferences(string(readme))[throttleDifference] {
		t.Errorf("the README's Differences list lacks %q", throttleDifference)
	}
	sc := conformanceScenario{name: "bucket_tag 429", options: `bucket_tag = "bucket"`, answer: withRetryAfter(429, "30"), metrics: routed}
	stock := runScenario(t, sc, "influxdb_v2")
	ours := runScenario(t, sc, ourName)
	if want := "0:kept 1:kept 2:kept (buffer 3)"; ours.aspects[aspectMetrics] != want {
		t.Errorf("ours: %s, want %s", ours.aspects[aspectMetrics], want)
	}
	if len(ours.requests) != 1 {
		t.Errorf("ours sent %d requests after a 429, want 1", len(ours.requests))
	}
	// The documented difference still shows: stock sent one request and
	// counted the metrics of a bucket it never sent as written.
	if len(stock.requests) != 1 || !strings.Contains(stock.aspects[aspectMetrics], "accepted") {
		t.Errorf("the stock plugin no longer counts an unsent batch as written (%d requests, %s): "+
			"remove %q from the README", len(stock.requests), stock.aspects[aspectMetrics], throttleDifference)
	}
}
