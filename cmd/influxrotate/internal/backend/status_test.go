package backend

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// TestAnswerMapping is the management API's reading of each answer, as
// documented in status.go.
func TestAnswerMapping(t *testing.T) {
	cases := []struct {
		name                     string
		err                      error
		retryable, refused, gone bool
		denied, noEndpoint       bool // the reading of a /query answer
	}{
		{"400 bad request", &HTTPError{Status: 400}, false, true, false, false, false},
		{"401 operator token refused", &HTTPError{Status: 401}, false, true, false, true, false},
		{"403 escalation refused", &HTTPError{Status: 403}, false, true, false, true, false},
		{"404 does not exist", &HTTPError{Status: 404}, false, true, true, false, true},
		{"413 cannot be split", &HTTPError{Status: 413}, false, true, false, false, false},
		{"422 unprocessable", &HTTPError{Status: 422}, false, true, false, false, false},
		{"429 throttled", &HTTPError{Status: 429}, true, false, false, false, false},
		{"500 server error", &HTTPError{Status: 500}, true, false, false, false, false},
		{"503 unavailable", &HTTPError{Status: 503}, true, false, false, false, false},
		{"304 unfollowed redirect", &HTTPError{Status: 304}, false, false, false, false, false},
		{"1.x statement error", Permanent(&HTTPError{Status: 200, Message: "error parsing query"}), false, false, false, false, false},
		{"1.x unknown user", Permanent(&HTTPError{Status: 200, Message: "user not found"}), false, false, true, false, false},
		{"wrapped 403", fmt.Errorf("create: %w", &HTTPError{Status: 403}), false, true, false, true, false},
		{"network error", errors.New("connection reset by peer"), true, false, false, false, false},
		{"undecodable answer", Permanent(errors.New("decoding answer")), false, false, false, false, false},
		{"context ended", context.DeadlineExceeded, false, false, false, false, false},
		{"no error", nil, false, false, false, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Retryable(c.err); got != c.retryable {
				t.Errorf("Retryable = %v, want %v", got, c.retryable)
			}
			if got := Refused(c.err); got != c.refused {
				t.Errorf("Refused = %v, want %v", got, c.refused)
			}
			if got := gone(c.err); got != c.gone {
				t.Errorf("gone = %v, want %v", got, c.gone)
			}
			if got := errors.Is(notFound(c.err, "authorization", "a1"), ErrNotFound); got != c.gone {
				t.Errorf("notFound is ErrNotFound = %v, want %v", got, c.gone)
			}
			if got := accessDenied(c.err); got != c.denied {
				t.Errorf("accessDenied = %v, want %v", got, c.denied)
			}
			if got := noEndpoint(c.err); got != c.noEndpoint {
				t.Errorf("noEndpoint = %v, want %v", got, c.noEndpoint)
			}
		})
	}
}
