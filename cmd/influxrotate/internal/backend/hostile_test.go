package backend

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/influxrotate/influxrotate/rotation"
	"github.com/influxrotate/influxrotate/testutil/secscan"
)

// echoServer answers every request 400, quoting its Authorization header
// and its form-encoded body (a 1.x InfluxQL statement) in plain, base64 and
// URL-escaped form.
func echoServer(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		_ = r.ParseForm()
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":"%s | %s | %s | %s"}`, strings.ReplaceAll(r.Form.Get("q"), `"`, `\"`), h,
			base64.URLEncoding.EncodeToString([]byte(h)), url.QueryEscape(h))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestV1ScrubsTheEchoedPasswordInEveryForm(t *testing.T) {
	srv := echoServer(t)
	const operator = "admin:operator-pass/w+rd"
	v, err := NewV1(Options{URL: srv.URL, OperatorToken: operator, Retry: Retry{Attempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	var scan secscan.Scanner
	scan.Add(operator, "operator-pass/w+rd")
	_, err = v.List(t.Context(), "")
	if err == nil || !strings.Contains(err.Error(), rotation.Fingerprint(operator)) {
		t.Fatalf("list: %v, want an error naming the operator token by its fingerprint", err)
	}
	scan.Check(t, "list error", []byte(err.Error()))

	// CREATE USER quotes the new password: scrubbed though the server
	// never saw it in a header.
	_, err = v.Create(t.Context(), "", Label{Description: "edge", RotationID: "1a"}, nil)
	if err == nil || !strings.Contains(err.Error(), "CREATE USER") {
		t.Fatalf("create: %v, want the server's message quoting the statement", err)
	}
	if _, quoted, _ := strings.Cut(err.Error(), "WITH PASSWORD '"); !strings.HasPrefix(quoted, "sha256:") {
		t.Errorf("create error quotes the new password, not its token's fingerprint")
	}
	scan.Check(t, "create error", []byte(err.Error()))
}

func TestV2ScrubsTheEchoedOperatorToken(t *testing.T) {
	srv := echoServer(t)
	const operator = "operator+token/with==padding-AbCdEf0123456789"
	v := NewV2(Options{URL: srv.URL, OperatorToken: operator, Retry: Retry{Attempts: 1}})
	err := v.SetActive(t.Context(), &Authorization{ID: "0123456789abcdef"}, false)
	if StatusOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), rotation.Fingerprint(operator)) {
		t.Fatalf("patch: %v", err)
	}
	var scan secscan.Scanner
	scan.Add(operator)
	scan.Check(t, "patch error", []byte(err.Error()))
	// A token written with is registered as it is used.
	const writer = "writer+token/with==padding-0123456789AbCdEf"
	err = v.WriteLines(t.Context(), "o", "b", writer, []byte("m v=1\n"))
	scan.Add(writer)
	scan.Check(t, "write error", []byte(fmt.Sprint(err)))
}

// fakeAnswers is an InfluxDB 2.x API that answers from a function, counting
// requests.
func fakeAnswers(t *testing.T, answer func(w http.ResponseWriter, r *http.Request)) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		answer(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestV2RefusesAuthorizationIDsThatAreNotIDs(t *testing.T) {
	srv, requests := fakeAnswers(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/api/v2/authorizations":
			io.WriteString(w, `{"authorizations":[{"id":"0123456789abcdef","status":"active"},{"id":"../../orgs/0123456789abcdef","status":"active"}]}`)
		case r.Method == http.MethodGet:
			io.WriteString(w, `{"id":"0123456789ABCDEF","status":"active"}`)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	})
	v := NewV2(Options{URL: srv.URL, OperatorToken: "op-token-0123456789", Retry: Retry{Attempts: 3, Initial: time.Millisecond}})
	ctx := t.Context()
	if _, err := v.List(ctx, "acme"); err == nil || !strings.Contains(err.Error(), `"../../orgs/0123456789abcdef" from the server's list`) {
		t.Errorf("list: %v, want the malformed ID refused", err)
	}
	if _, err := v.Get(ctx, "0123456789abcdef"); err == nil || !strings.Contains(err.Error(), "not 16 lowercase hex digits") {
		t.Errorf("get: %v, want the answer's upper-case ID refused", err)
	}
	before := requests.Load()
	for name, call := range map[string]func() error{
		"get":        func() error { _, err := v.Get(ctx, "../orgs"); return err },
		"set active": func() error { return v.SetActive(ctx, &Authorization{ID: "0123456789abcdef/x"}, false) },
		"delete":     func() error { return v.Delete(ctx, strings.Repeat("a", 100)) },
	} {
		err := call()
		if err == nil || !strings.Contains(err.Error(), "not 16 lowercase hex digits") || len(err.Error()) > 200 {
			t.Errorf("%s: %v, want a short error refusing the ID", name, err)
		}
	}
	if n := requests.Load() - before; n != 0 {
		t.Errorf("%d requests sent with a malformed ID, want none", n)
	}
}

func TestV2AnswerOverTheCapSaysSo(t *testing.T) {
	srv, requests := fakeAnswers(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"authorizations":[`)
		chunk := `{"id":"0123456789abcdef","status":"active","description":"` + strings.Repeat("x", 4000) + `"},`
		for range maxAnswer/len(chunk) + 1 {
			io.WriteString(w, chunk)
		}
		io.WriteString(w, `{"id":"0123456789abcdef"}]}`)
	})
	v := NewV2(Options{URL: srv.URL, OperatorToken: "op-token-0123456789", Retry: Retry{Attempts: 3, Initial: time.Millisecond}})
	_, err := v.List(t.Context(), "acme")
	if err == nil || !strings.Contains(err.Error(), "larger than 8 MiB") || strings.Contains(err.Error(), "unexpected end of JSON") {
		t.Fatalf("list: %v, want an error saying the answer is over the cap", err)
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("%d requests, want 1: an oversized answer is not retried", n)
	}
}

// blockingTransport blocks the first request (every request with all set)
// until its context ends (the client's Timeout), then answers the others
// at once without a network.
type blockingTransport struct {
	all   bool
	calls atomic.Int64
}

func (b *blockingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if b.calls.Add(1) == 1 || b.all {
		<-r.Context().Done()
		return nil, r.Context().Err()
	}
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Request: r,
		Body: io.NopCloser(strings.NewReader(`{"authorizations":[]}`))}, nil
}

func TestClientTimeoutIsRetried(t *testing.T) {
	tr := &blockingTransport{}
	v := NewV2(Options{URL: "http://127.0.0.1:1", OperatorToken: "op-token-0123456789",
		Client: &http.Client{Transport: tr, Timeout: 50 * time.Millisecond},
		Retry:  Retry{Attempts: 3, Initial: time.Millisecond}})
	if _, err := v.List(t.Context(), "acme"); err != nil {
		t.Fatalf("list: %v, want the timed-out call retried", err)
	}
	if n := tr.calls.Load(); n != 2 {
		t.Errorf("%d calls, want 2", n)
	}

	// The caller's own deadline ends the retries.
	tr = &blockingTransport{all: true}
	v = NewV2(Options{URL: "http://127.0.0.1:1", OperatorToken: "op-token-0123456789", Client: &http.Client{Transport: tr},
		Retry: Retry{Attempts: 3, Initial: time.Millisecond}})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := v.List(ctx, "acme"); err == nil {
		t.Fatal("list succeeded")
	}
	if n := tr.calls.Load(); n != 1 {
		t.Errorf("%d calls after the context's deadline, want 1", n)
	}
}

func TestAdoptionsScrubTheEchoedOperatorTokenFromAMalformedAnswer(t *testing.T) {
	const operator = "operator+token/with==padding-AbCdEf0123456789"
	// A hostile server fills the columns and the time value of its answer
	// with the token it was sent; the decoding error quotes both.
	srv, _ := fakeAnswers(t, func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Token ")
		fmt.Fprintf(w, `{"results":[{"series":[{"tags":{"client_id":"a"},"columns":[%q],"values":[[%q]]}]},`+
			`{"series":[{"tags":{"client_id":"b"},"columns":["time","fingerprint","previous","rotations"],"values":[[%q,"sha256:0123456789ab","",0]]}]}]}`,
			tok, tok, tok)
	})
	v := NewV2(Options{URL: srv.URL, OperatorToken: operator, Retry: Retry{Attempts: 1}})
	_, err := v.Adoptions(t.Context(), AdoptionQuery{Bucket: "telemetry", Measurement: "influxrotate_adoption", Lookback: time.Minute})
	if err == nil || !strings.Contains(err.Error(), rotation.Fingerprint(operator)) {
		t.Fatalf("adoptions: %v, want a decoding error naming the token by its fingerprint", err)
	}
	var scan secscan.Scanner
	scan.Add(operator)
	scan.Check(t, "adoptions error", []byte(err.Error()))
}

func TestV3ScrubsTheOperatorTokenQuotedInItsAnswers(t *testing.T) {
	const operator = "apiv3_operator+token/with==padding-AbCdEf0123"
	// A hostile InfluxDB 3 puts the token it was sent into the fields the
	// backend quotes when they do not parse: a token's name and expiry in
	// system.tokens, and the name in a create answer.
	srv, _ := fakeAnswers(t, func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Token ")
		switch r.URL.Path {
		case "/api/v3/query_sql":
			fmt.Fprintf(w, `[{"token_id":1,"name":%q,"expiry":%q}]`, tok, tok)
		default:
			fmt.Fprintf(w, `{"name":%q,"token":""}`, tok)
		}
	})
	v, err := NewV3(Options{URL: srv.URL, OperatorToken: operator, Retry: Retry{Attempts: 1}}, V3Options{Edition: EditionCore})
	if err != nil {
		t.Fatal(err)
	}
	_, listErr := v.List(t.Context(), "")
	_, createErr := v.Create(t.Context(), "", Label{Credential: "c", RotationID: "r"}, []Permission{adminPermission})
	var scan secscan.Scanner
	scan.Add(operator)
	for what, err := range map[string]error{"list": listErr, "create": createErr} {
		if err == nil || !strings.Contains(err.Error(), rotation.Fingerprint(operator)) {
			t.Errorf("%s: %v, want an error quoting the token by its fingerprint", what, err)
			continue
		}
		scan.Check(t, what+" error", []byte(err.Error()))
	}
}

func TestV2ScrubsATokenSentAsAnAuthorizationID(t *testing.T) {
	const operator = "operator+token/with==padding-AbCdEf0123456789-and-more-than-forty-characters"
	srv, _ := fakeAnswers(t, func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Token ")
		fmt.Fprintf(w, `{"authorizations":[{"id":%q,"status":"active"}]}`, tok)
	})
	v := NewV2(Options{URL: srv.URL, OperatorToken: operator, Retry: Retry{Attempts: 1}})
	_, err := v.List(t.Context(), "acme")
	if err == nil || !strings.Contains(err.Error(), "not 16 lowercase hex digits") {
		t.Fatalf("list: %v, want the ID refused", err)
	}
	var scan secscan.Scanner
	// The first 40 characters are what an unscrubbed error would quote.
	scan.Add(operator[:40])
	scan.Check(t, "list error", []byte(err.Error()))
}
