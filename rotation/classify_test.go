package rotation

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestClassify covers the answers of InfluxDB 1.8, 2.x and 3 and of proxies:
// what a writer does with a batch after each.
func TestClassify(t *testing.T) {
	for name, tc := range map[string]struct {
		status  int
		header  http.Header
		body    string
		action  Action
		message string
	}{
		"204":                              {204, nil, "", ActionAccept, ""},
		"2.x unknown token":                {401, nil, `{"code":"unauthorized","message":"unauthorized access"}`, ActionAuth, "unauthorized: unauthorized access"},
		"2.x inactive token":               {403, nil, `{"code":"forbidden","message":"insufficient permissions for write: token is inactive"}`, ActionAuth, "forbidden: insufficient permissions for write: token is inactive"},
		"3 unknown, deleted or expired":    {401, nil, `{"error":"the request was not authenticated"}`, ActionAuth, "the request was not authenticated"},
		"3 resource token without the db":  {403, nil, `{"error": "unauthorized to perform requested action with the token"}`, ActionAuth, "unauthorized to perform requested action with the token"},
		"3 malformed Authorization header": {400, nil, `{"error":"Authorization header was malformed, the request was not in the form of 'Authorization: <auth-scheme> <token>', supported auth-schemes are Bearer, Token and Basic"}`, ActionAuth, "Authorization header was malformed, the request was not in the form of 'Authorization: <auth-scheme> <token>', supported auth-schemes are Bearer, Token and Basic"},
		"3 bad line":                       {400, nil, `{"error":"parsing failed for write_lp endpoint"}`, ActionDrop, "parsing failed for write_lp endpoint"},
		"3 empty write (v2 path)":          {400, nil, `{"error":"write buffer error: incoming write was empty"}`, ActionDrop, "write buffer error: incoming write was empty"},
		"3 empty write (write_lp)":         {400, nil, "incoming write was empty", ActionDrop, "incoming write was empty"},
		// Only the whole message counts: a bad line that quotes it is still a bad line.
		"a line quoting the 3 auth message": {400, nil, `{"code":"invalid","message":"unable to parse 'm f=\"x\"': Authorization header was malformed"}`, ActionDrop, `invalid: unable to parse 'm f="x"': Authorization header was malformed`},
		"3 body too large":                  {413, nil, `{"error":"the request body exceeded the maximum size"}`, ActionSplit, "the request body exceeded the maximum size"},
		"2.x partial write":                 {422, nil, `{"code":"unprocessable entity","message":"partial write"}`, ActionDrop, "unprocessable entity: partial write"},
		"throttled":                         {429, http.Header{"Retry-After": {"3"}}, "", ActionThrottle, ""},
		"proxy":                             {502, nil, "<html><body>502 Bad Gateway</body></html>", ActionThrottle, "<html><body>502 Bad Gateway</body></html>"},
		"internal error":                    {500, nil, `{"error":"boom"}`, ActionRetry, "boom"},
		// Not a verdict on the batch: keep it (a redirect with a Location
		// is refused by the client before it is classified).
		"redirect without Location": {302, nil, "", ActionRetry, ""},
		"informational":             {103, nil, "", ActionRetry, ""},
	} {
		t.Run(name, func(t *testing.T) {
			d := Classify(tc.status, tc.header, []byte(tc.body))
			if d.Action != tc.action || d.Status != tc.status || d.Message != tc.message {
				t.Errorf("Classify = %v %d %q, want %v %d %q", d.Action, d.Status, d.Message, tc.action, tc.status, tc.message)
			}
			if tc.status == 429 && d.RetryAfter != 3*time.Second {
				t.Errorf("RetryAfter %v", d.RetryAfter)
			}
		})
	}
}

// Retry-After in seconds, fractions too, as Telegraf reads it (dates:
// TestRetryAfterAsHTTPDate); an unreadable one still asks for a pause, of
// 10s as in Telegraf.
func TestRetryAfter(t *testing.T) {
	for value, want := range map[string]time.Duration{
		"":           0,
		"0":          0,
		"-5":         0,
		"3":          3 * time.Second,
		"1.5":        1500 * time.Millisecond,
		"86400":      MaxRetryAfter,
		"soon":       10 * time.Second,
		"NaN":        10 * time.Second,
		"Tue, 1 Jan": 10 * time.Second,
	} {
		if got := RetryAfter(http.Header{"Retry-After": {value}}); got != want {
			t.Errorf("Retry-After %q: %v, want %v", value, got, want)
		}
	}
}

// TestClassifyStatusClasses walks every status class, with Retry-After
// in seconds, beyond the cap, zero and unparsable.
func TestClassifyStatusClasses(t *testing.T) {
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
		{504, retryIn("soon"), "", ActionThrottle, 10 * time.Second, ""},
		// A redirect without a Location is no verdict on the batch.
		{301, nil, "", ActionRetry, 0, ""},
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

func TestTruncateMessageKeepsCharactersWhole(t *testing.T) {
	m := truncateMessage(strings.Repeat("é", 1000))
	if !strings.HasSuffix(m, "…") || len(m) > maxMessage+len("…") || !strings.HasPrefix(m, "é") {
		t.Fatalf("message of %d bytes: %q", len(m), m)
	}
	if strings.ContainsRune(strings.TrimSuffix(m, "…"), '\uFFFD') {
		t.Fatal("a multi-byte character was cut in half")
	}
}
