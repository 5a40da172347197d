package influxv2

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// call is one request in a test: the Authorization header value as given ("" for
// none), headers, and a body.
type call struct {
	method, path, auth, body string
	header                   map[string]string
}

type answer struct {
	status int
	header http.Header
	body   string
}

var client = &http.Client{Timeout: 10 * time.Second}

func (c call) do(t *testing.T, s *Server) answer {
	t.Helper()
	a, err := c.send(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// send is do for goroutines other than the test's, which must not call t.Fatal.
func (c call) send(s *Server) (answer, error) {
	var body io.Reader = http.NoBody
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, err := http.NewRequest(c.method, s.URL()+c.path, body)
	if err != nil {
		return answer{}, err
	}
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	if c.method == http.MethodPost && strings.HasPrefix(c.path, "/api/v2/write") {
		req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	}
	if strings.HasPrefix(c.body, "{") {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: %w", c.method, c.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: read body: %w", c.method, c.path, err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b)}, nil
}

// wantError checks a 2.x error answer: status, JSON body, content type, and the
// X-Platform-Error-Code header matching the body's code.
func (a answer) wantError(t *testing.T, status int, code, message string) {
	t.Helper()
	if a.status != status {
		t.Errorf("status = %d, want %d (body %q)", a.status, status, masked(a.body))
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q, want application/json; charset=utf-8", ct)
	}
	var e struct{ Code, Message string }
	if err := json.Unmarshal([]byte(a.body), &e); err != nil {
		t.Fatalf("body %q is not a 2.x error: %v", masked(a.body), err)
	}
	if e.Code != code || e.Message != message {
		t.Errorf("error = {%q, %q}, want {%q, %q}", e.Code, e.Message, code, message)
	}
	if h := a.header.Get("X-Platform-Error-Code"); h != code {
		t.Errorf("X-Platform-Error-Code = %q, want %q", h, code)
	}
}

func (a answer) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(a.body), v); err != nil {
		t.Fatalf("decode %q: %v", masked(a.body), err)
	}
}

func gzipped(t *testing.T, s string) string {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func tok(a Authorization) string { return "Token " + a.Token }

// newServer starts a server with contract checking on but without failing the test on
// violations, for tests that send bad requests on purpose.
func newServer(t *testing.T, opts Options) *Server {
	t.Helper()
	c, err := LoadContract()
	if err != nil {
		t.Fatal(err)
	}
	opts.Contract = c
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// tokenValue is a JSON "token" member: what a token-creating answer holds.
var tokenValue = regexp.MustCompile(`("token"\s*:\s*)"[^"]*"`)

// masked is an answer body fit for a failure message: a test's output must
// not show a token, and a create answer that arrives where an error was
// expected carries one.
func masked(body string) string {
	return tokenValue.ReplaceAllStringFunc(body, func(m string) string {
		sub := tokenValue.FindStringSubmatch(m)
		var tok string
		_ = json.Unmarshal([]byte(m[len(sub[1]):]), &tok)
		return sub[1] + `"` + fingerprint(tok) + `"`
	})
}

func TestFailureMessagesHideTokens(t *testing.T) {
	const tok = "apiv3_secret-token-value"
	body := `{"id":1,"name":"n","token":"` + tok + `","hash":"h"}`
	shown := masked(body) + fmt.Sprintf("%v %+v", v3TokenAnswer{Name: "n", Token: tok}, authJSON{ID: "i", Token: tok})
	if strings.Contains(shown, tok) || !strings.Contains(shown, fingerprint(tok)) {
		t.Fatalf("shown %s, want the token's fingerprint instead of the token", shown)
	}
}
