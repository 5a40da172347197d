package rotation

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestClassify is the status mapping every write answer goes through.
func TestClassify(t *testing.T) {
	retryIn := func(v string) http.Header { return http.Header{"Retry-After": {v}} }
	tests := []struct {
		status     int
		header     http.Header
		body       string
		action     Action
		retryAfter time.Duration
		message    string
	}{
		{200, nil, "", ActionAccept, 0, ""},
		{204, nil, `{"code":"ignored","message":"not read on success"}`, ActionAccept, 0, ""},
		{400, nil, `{"code":"invalid","message":"unable to parse 'x'"}`, ActionDrop, 0, "invalid: unable to parse 'x'"},
		{401, nil, `{"code":"unauthorized","message":"unauthorized access"}`, ActionAuth, 0, "unauthorized: unauthorized access"},
		{403, nil, `{"error":"insufficient permissions"}`, ActionAuth, 0, "insufficient permissions"},
		{404, nil, `{"code":"not found","message":"bucket \"b\" not found"}`, ActionDrop, 0, `not found: bucket "b" not found`},
		{413, nil, "", ActionSplit, 0, ""},
		{422, nil, `{"code":"unprocessable entity","message":"points beyond retention"}`, ActionDrop, 0, "unprocessable entity: points beyond retention"},
		{429, retryIn("7"), "", ActionThrottle, 7 * time.Second, ""},
		{429, nil, "", ActionThrottle, 0, ""},
		{500, retryIn("7"), "boom", ActionRetry, 0, "boom"},
		{501, nil, "", ActionRetry, 0, ""},
		{502, retryIn("0"), "<html>\n<b>Bad Gateway</b>\n</html>", ActionThrottle, 0, "<html> <b>Bad Gateway</b> </html>"},
		{503, retryIn("86400"), "", ActionThrottle, MaxRetryAfter, ""},
		{504, retryIn("soon"), "", ActionThrottle, 0, ""},
		{301, nil, "", ActionDrop, 0, ""},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(http.StatusText(tt.status), " ", "_"), func(t *testing.T) {
			d := Classify(tt.status, tt.header, []byte(tt.body))
			if d.Action != tt.action || d.Status != tt.status || d.RetryAfter != tt.retryAfter || d.Message != tt.message {
				t.Errorf("Classify(%d) = %v/%d retry-after %v message %q, want %v/%d %v %q",
					tt.status, d.Action, d.Status, d.RetryAfter, d.Message, tt.action, tt.status, tt.retryAfter, tt.message)
			}
		})
	}
}

func TestRetryAfterAsHTTPDate(t *testing.T) {
	h := http.Header{"Retry-After": {time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)}}
	// An HTTP date has a resolution of a second.
	if d := RetryAfter(h); d < 88*time.Second || d > 90*time.Second {
		t.Fatalf("RetryAfter(date 90s ahead) = %v", d)
	}
	past := http.Header{"Retry-After": {time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)}}
	if d := RetryAfter(past); d != 0 {
		t.Fatalf("RetryAfter(date in the past) = %v, want 0", d)
	}
}

func TestServerMessageIsBounded(t *testing.T) {
	m := ServerMessage([]byte(strings.Repeat("é", 1000)))
	if !strings.HasSuffix(m, "…") || len(m) > maxMessage+len("…") || !strings.HasPrefix(m, "é") {
		t.Fatalf("message of %d bytes: %q", len(m), m)
	}
	if strings.ContainsRune(strings.TrimSuffix(m, "…"), '\uFFFD') {
		t.Fatal("a multi-byte character was cut in half")
	}
}
