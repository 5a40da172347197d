package rotation_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/influxrotate/influxrotate/rotation"
	"github.com/influxrotate/influxrotate/testutil/secscan"
)

// echoes are the ways a hostile server or proxy was seen (or could be
// expected) to quote a request's Authorization header back in an error.
func echoes(header, token string) map[string]string {
	user := "telegraf:" + token
	return map[string]string{
		"plain header":      "unauthorized: got " + header,
		"json":              `{"code":"unauthorized","message":"bad header ` + header + `"}`,
		"base64 header":     "got " + base64.StdEncoding.EncodeToString([]byte(header)),
		"base64 token":      "got " + base64.StdEncoding.EncodeToString([]byte(token)) + ".",
		"base64 raw":        "got " + base64.RawStdEncoding.EncodeToString([]byte(token)) + ".",
		"base64url":         "got " + base64.URLEncoding.EncodeToString([]byte(token)),
		"base64url raw":     "got " + base64.RawURLEncoding.EncodeToString([]byte(token)) + ".",
		"basic auth":        "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(user)),
		"basic auth url":    "Basic " + base64.URLEncoding.EncodeToString([]byte("x:"+token)),
		"basic auth shift1": "Basic " + base64.StdEncoding.EncodeToString([]byte("ab:"+token)),
		"query escaped":     "GET /api/v2/write?token=" + url.QueryEscape(token),
		"path escaped":      "GET /echo/" + url.PathEscape(token) + "/x",
		"split by controls": "token: " + token[:10] + "\x00\x01" + token[10:],
		// A long body cut to length must not leave the token's first bytes.
		"at the cut": strings.Repeat("x", 240) + " " + token,
	}
}

// testTokens look like real ones: base64 with '+', '/' and padding, so
// that every escaping changes them; and a 1.x "user:password".
var testTokens = []string{
	"Zm9vYmFy+/c2VjcmV0LXRva2VuLXdpdGgtc2xhc2hlcy8rYW5kLXBsdXNlcw/kQ2VudHJhbC8rdG9rZW4tYWJjZGVmZ2hpamtsbW5vcA==",
	"apiv3_9sF/aK+qZ2xlYW5lZC10b2tlbi10aHJlZS12YWx1ZQ",
	"admin:p@ss/w+rd=secret-ish",
}

func TestScrubberRemovesEveryEchoedForm(t *testing.T) {
	s := rotation.NewScrubber(testTokens...)
	var scan secscan.Scanner
	scan.Add(testTokens...)
	for _, tok := range testTokens {
		for name, body := range echoes("Token "+tok, tok) {
			msg := s.ServerMessage([]byte(body))
			scan.Check(t, fmt.Sprintf("%s of %s", name, rotation.Fingerprint(tok)), []byte(msg))
			if strings.Contains(msg, tok[:16]) {
				t.Errorf("%s: message keeps the first bytes of token %s", name, rotation.Fingerprint(tok))
			}
			if name != "at the cut" && !strings.Contains(msg, rotation.Fingerprint(tok)) {
				t.Errorf("%s: message %q does not name the token by its fingerprint", name, msg)
			}
		}
	}
}

func TestScrubberPasswordOfAUserPasswordToken(t *testing.T) {
	tok := "admin:p@ss/w+rd=secret-ish"
	s := rotation.NewScrubber(tok)
	msg := s.ServerMessage([]byte(`{"error":"error parsing query: CREATE USER \"x\" WITH PASSWORD 'p@ss/w+rd=secret-ish'"}`))
	if strings.Contains(msg, "p@ss/w+rd=secret-ish") || !strings.Contains(msg, rotation.Fingerprint(tok)) {
		t.Fatalf("password not scrubbed: %q", msg)
	}
	// The user name is not a secret and stays readable.
	if got := s.Scrub("user admin not found"); got != "user admin not found" {
		t.Fatalf("user name scrubbed: %q", got)
	}
}

func TestScrubberLeavesOtherTextAlone(t *testing.T) {
	s := rotation.NewScrubber(testTokens...)
	for _, text := range []string{"", "bucket not found", "unauthorized access", `{"code":"invalid","message":"partial write"}`} {
		if got, want := s.ServerMessage([]byte(text)), (*rotation.Scrubber)(nil).ServerMessage([]byte(text)); got != want {
			t.Errorf("%q became %q, want %q", text, got, want)
		}
	}
}

func TestScrubberNilAndEmpty(t *testing.T) {
	var s *rotation.Scrubber
	s.Add("ignored-token-value") // no panic
	s.AddCredential(rotation.NewCredential("ignored-token-value", "", "test"))
	if got := s.Scrub("a ignored-token-value b"); got != "a ignored-token-value b" {
		t.Fatalf("nil scrubber changed text: %q", got)
	}
	if got := rotation.NewScrubber().Scrub("text"); got != "text" {
		t.Fatalf("empty scrubber changed text: %q", got)
	}
}

func TestScrubberConcurrentAddAndScrub(t *testing.T) {
	s := rotation.NewScrubber()
	var scan secscan.Scanner
	const n = 40
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i] = fmt.Sprintf("concurrent-token-%02d-%s", i, strings.Repeat("k", 30))
	}
	scan.Add(tokens...)
	var wg sync.WaitGroup
	for i, tok := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Add(tok)
			// A token registered before the scrub is always removed,
			// whatever other goroutines register meanwhile.
			msg := s.ServerMessage([]byte("echo " + tok + " " + base64.StdEncoding.EncodeToString([]byte(tok))))
			scan.Check(t, fmt.Sprintf("goroutine %d", i), []byte(msg))
		}()
	}
	wg.Wait()
}

// Added tokens are bounded: the oldest beyond Keep is dropped, so the cost
// of a scrub does not grow with every rotation of a long-lived process;
// re-adding a token makes it the newest.
func TestScrubberDropsTheOldestAddedToken(t *testing.T) {
	s := rotation.NewScrubber()
	tokens := make([]string, rotation.DefaultScrubberKeep+2)
	for i := range tokens {
		tokens[i] = fmt.Sprintf("transient-token-%03d-%s", i, strings.Repeat("t", 30))
	}
	s.Add(tokens[0], tokens[1])
	s.Add(tokens[2:rotation.DefaultScrubberKeep]...)
	s.Add(tokens[0]) // now the newest: tokens[1] is the oldest
	s.Add(tokens[rotation.DefaultScrubberKeep:]...)
	for i, tok := range tokens {
		held := !strings.Contains(s.Scrub("echo "+tok), tok)
		if want := i != 1 && i != 2; held != want {
			t.Errorf("token %d held = %v, want %v", i, held, want)
		}
	}

	small := &rotation.Scrubber{Keep: 2}
	small.Add(tokens[0], tokens[1], tokens[2])
	if got := small.Scrub(tokens[0]); got != tokens[0] {
		t.Errorf("Keep 2: the oldest of three added tokens is still scrubbed")
	}
}

// Pinned tokens stay whatever is added after them; an unpinned one becomes
// the newest added and ages out like the others.
func TestScrubberKeepsPinnedTokens(t *testing.T) {
	operator := testTokens[0]
	s := &rotation.Scrubber{Keep: 1}
	s.Pin(operator, testTokens[1])
	s.Add(operator) // stays pinned
	for i := range 5 {
		s.Add(fmt.Sprintf("passing-token-%d-%s", i, strings.Repeat("p", 30)))
	}
	for _, tok := range testTokens[:2] {
		if got := s.Scrub("echo " + tok); strings.Contains(got, tok) {
			t.Fatalf("pinned token %s dropped: %q", rotation.Fingerprint(tok), got)
		}
	}
	s.Unpin(testTokens[1])
	if got := s.Scrub(testTokens[1]); strings.Contains(got, testTokens[1]) {
		t.Fatal("a token just unpinned is dropped before newer ones are added")
	}
	s.Add("one-more-passing-token-" + strings.Repeat("p", 30))
	if got := s.Scrub(testTokens[1]); got != testTokens[1] {
		t.Fatal("an unpinned token is never dropped")
	}
	if got := s.Scrub(operator); got == operator {
		t.Fatal("the pinned token was dropped")
	}
}

// Percent escapes and JSON \u escapes may be written with lowercase or
// uppercase hex digits, and some JSON encoders escape '/': every variant of
// an echoed token is scrubbed, and text without a token is left as it was.
func TestScrubberEscapesInAnyCase(t *testing.T) {
	tok := testTokens[0]
	pass := "p<a>ss/w+rd&secret"
	s := rotation.NewScrubber(tok, "admin:"+pass)
	js, _ := json.Marshal(pass) // \u003c, lowercase
	lower := strings.NewReplacer("%2B", "%2b", "%2F", "%2f", "%3D", "%3d").Replace
	for name, text := range map[string]string{
		"query lower": "?token=" + lower(url.QueryEscape(tok)),
		"path lower":  "/echo/" + strings.ReplaceAll(url.PathEscape(tok), "%2F", "%2f"),
		"query mixed": "?token=" + strings.Replace(url.QueryEscape(tok), "%2F", "%2f", 1),
		"json upper":  `{"message":` + strings.ReplaceAll(string(js), `\u003c`, `\u003C`) + `}`,
		"json slash":  `{"message":"` + strings.ReplaceAll(tok, "/", `\/`) + `"}`,
	} {
		got := s.Scrub(text)
		if strings.Contains(strings.ToLower(got), strings.ToLower(url.QueryEscape(tok))) || strings.Contains(got, tok[10:40]) ||
			strings.Contains(strings.ToLower(got), `p\u003ca\u003ess`) || strings.Contains(got, `w+rd`) {
			t.Errorf("%s: not scrubbed: %q", name, got)
		}
	}
	for _, text := range []string{"100%ab of %2f and \u00e9", "%zz"} {
		if got := s.Scrub(text); got != text {
			t.Errorf("text without a token changed: %q became %q", text, got)
		}
	}
}

// An Authorization header written by hand (a writer's http_headers) is
// scrubbed in the forms of a header, its credentials and, for Basic, the
// decoded user and password.
func TestScrubberAddAuthorization(t *testing.T) {
	s := rotation.NewScrubber()
	s.AddAuthorization("Bearer " + testTokens[1])
	basic := base64.StdEncoding.EncodeToString([]byte("gw-user:gw-password-secret"))
	s.AddAuthorization("Basic " + basic)
	for _, text := range []string{"got Bearer " + testTokens[1], "token " + testTokens[1], "Basic " + basic,
		"CREATE USER WITH PASSWORD 'gw-password-secret'"} {
		if got := s.Scrub(text); strings.Contains(got, testTokens[1]) || strings.Contains(got, basic) || strings.Contains(got, "gw-password-secret") {
			t.Errorf("%q not scrubbed: %q", text, got)
		}
	}
}

// BenchmarkScrub is the price every error message pays: a 1 KiB message
// (one echoed token in it, or none) against a Scrubber holding 64 tokens.
func BenchmarkScrub(b *testing.B) {
	s := rotation.NewScrubber()
	var tokens []string
	for i := range rotation.DefaultScrubberKeep {
		raw := make([]byte, 64)
		for j := range raw {
			raw[j] = byte(i*131 + j*7)
		}
		tokens = append(tokens, base64.StdEncoding.EncodeToString(raw))
	}
	s.Add(tokens...)
	filler := `{"code":"unauthorized","message":"unauthorized access: ` + strings.Repeat("the request was refused by the gateway; ", 24)
	for name, msg := range map[string]string{
		"clean": (filler + strings.Repeat("x", 1024))[:1024],
		"echo":  (filler[:512] + "Token " + tokens[10] + " " + strings.Repeat("x", 1024))[:1024],
	} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				_ = s.Scrub(msg)
			}
		})
	}
}

// TestClassifyScrubsTheMessage: the writers' classification quotes the
// server through the Scrubber.
func TestClassifyScrubsTheMessage(t *testing.T) {
	tok := testTokens[0]
	s := rotation.NewScrubber(tok)
	body, _ := json.Marshal(map[string]string{"code": "invalid", "message": "header was Token " + tok})
	d := s.Classify(http.StatusBadRequest, nil, body)
	if d.Action != rotation.ActionDrop || strings.Contains(d.Message, tok) || !strings.Contains(d.Message, rotation.Fingerprint(tok)) {
		t.Fatalf("decision %+v", d)
	}
}

// TestProbeScrubsAnEchoedHeader: a server that echoes the probe's
// Authorization header gets the probed token scrubbed even when nobody
// registered it, and every other token the shared Scrubber holds too.
func TestProbeScrubsAnEchoedHeader(t *testing.T) {
	other := testTokens[1]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"code":"unauthorized","message":"%s / %s / Token %s"}`, h,
			base64.StdEncoding.EncodeToString([]byte(h)), other)
	}))
	defer srv.Close()
	tok := testTokens[0]
	p, err := rotation.NewHTTPProber(rotation.ProberConfig{URL: srv.URL, Targets: []rotation.Target{{Org: "o", Bucket: "b"}},
		Client: srv.Client(), Scrubber: rotation.NewScrubber(other)})
	if err != nil {
		t.Fatal(err)
	}
	res := p.Probe(t.Context(), rotation.NewCredential(tok, "", "test"))
	if res.Verdict != rotation.VerdictRefused {
		t.Fatalf("verdict %v, want refused", res.Verdict)
	}
	var scan secscan.Scanner
	scan.Add(tok, other)
	scan.Check(t, "probe message", []byte(res.Message))
	if !strings.Contains(res.Message, rotation.Fingerprint(tok)) {
		t.Errorf("message %q does not name the token by its fingerprint", res.Message)
	}
}

func TestRedactURL(t *testing.T) {
	cases := map[string]string{
		"https://user:s3cret@db.example:8086/x": "https://user:xxxxx@db.example:8086/x",
		"http://user@host:8086":                 "http://user@host:8086",
		"http://localhost:8086":                 "http://localhost:8086",
		// Does not parse (a '/' in the password, a bad port): masked by hand.
		"http://user:pa/ss@host":   "http://user:xxxxx@host",
		"http://u:s3cret@host:bad": "http://u:xxxxx@host:bad",
		"localhost:8086":           "localhost:8086",
	}
	for in, want := range cases {
		if got := rotation.RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
	_, err := url.Parse("http://u:s3cret@host:bad")
	if strings.Contains(rotation.URLParseError(err).Error(), "s3cret") {
		t.Fatalf("parse error quotes the password: %v", rotation.URLParseError(err))
	}
}
