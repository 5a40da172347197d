package rotation

import (
	"net/http"
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
