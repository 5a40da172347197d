package rotation

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Action is what a writer should do with a batch after a write answer.
type Action int

const (
	// ActionAccept: the batch is stored.
	ActionAccept Action = iota
	// ActionDrop: the server will never accept this batch (400, 422 and other
	// 4xx): drop it with a clear error rather than block the buffer.
	ActionDrop
	// ActionRetry: keep the batch and retry at the next flush (other 5xx,
	// 1xx and 3xx).
	ActionRetry
	// ActionThrottle: keep the batch and wait RetryAfter (429, 502, 503, 504).
	ActionThrottle
	// ActionSplit: the body is too large (413); split the batch and retry.
	ActionSplit
	// ActionAuth: the token was refused (401, 403, or InfluxDB 3's 400 for
	// an Authorization header it cannot read); ask the Rotator.
	ActionAuth
)

func (a Action) String() string {
	switch a {
	case ActionAccept:
		return "accept"
	case ActionDrop:
		return "drop"
	case ActionRetry:
		return "retry"
	case ActionThrottle:
		return "throttle"
	case ActionSplit:
		return "split"
	case ActionAuth:
		return "auth"
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// Decision is Classify's verdict on one answer.
type Decision struct {
	Action Action
	Status int
	// RetryAfter is the server's Retry-After, or 0 when it gave none.
	RetryAfter time.Duration
	// Message is the server's error message, safe to log.
	Message string
}

// MaxRetryAfter caps a server's Retry-After, as Telegraf does.
const MaxRetryAfter = 10 * time.Minute

// Classify decides what a write answer means. It is the one place in the
// project that maps a status code to an action: the plugin decides every
// write with it (and so the execd binary, which writes through the plugin),
// and the controller's API client retries exactly the answers it says to
// retry or throttle. body is the start of the response body (a few KiB are
// plenty); header may be nil. The message is not scrubbed of tokens: code
// that sent a token calls Scrubber.Classify instead.
//
// InfluxDB 3 answers an expired token like a deleted one (401 "the request
// was not authenticated"), a resource token without the database 403, and an
// Authorization header it cannot parse 400 "Authorization header was
// malformed": the batch is not at fault there, so that 400 is ActionAuth
// (the batch stays buffered) rather than ActionDrop.
func Classify(status int, header http.Header, body []byte) Decision {
	return (*Scrubber)(nil).Classify(status, header, body)
}

// classify is Classify given the server's message, already extracted (and
// scrubbed) by Scrubber.Classify.
func classify(status int, header http.Header, msg string) Decision {
	d := Decision{Status: status}
	if status >= 200 && status < 300 {
		d.Action = ActionAccept
		return d
	}
	d.Message = msg
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		d.Action = ActionAuth
	case status == http.StatusBadRequest && strings.HasPrefix(d.Message, malformedAuthorization):
		d.Action = ActionAuth
	case status == http.StatusRequestEntityTooLarge:
		d.Action = ActionSplit
	case status == http.StatusTooManyRequests, status == http.StatusBadGateway,
		status == http.StatusServiceUnavailable, status == http.StatusGatewayTimeout:
		d.Action = ActionThrottle
		d.RetryAfter = RetryAfter(header)
	case status >= 500, status < 200, status >= 300 && status < 400:
		// Other 5xx, and answers that are not a verdict on the batch at
		// all: a redirect without a Location (one with it is refused
		// before it gets here, see NoRedirect) or an informational code.
		d.Action = ActionRetry
	default:
		d.Action = ActionDrop
	}
	return d
}

// malformedAuthorization starts InfluxDB 3's 400 answer to an Authorization
// header that is not exactly "Bearer <t>", "Token <t>" or "Basic <b64>".
const malformedAuthorization = "Authorization header was malformed"

// invalidRetryAfter is the wait for a Retry-After that is neither seconds
// nor an HTTP date: the server asked for a pause of unknown length, and
// Telegraf's own outputs.influxdb_v2 guesses this much.
const invalidRetryAfter = 10 * time.Second

// RetryAfter reads a Retry-After header in seconds (fractions allowed) or
// as an HTTP date, capped at MaxRetryAfter. It returns 0 when there is none
// and invalidRetryAfter when it cannot be read.
func RetryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseFloat(v, 64); err == nil && !math.IsNaN(secs) {
		if secs <= 0 {
			return 0
		}
		if secs > MaxRetryAfter.Seconds() {
			return MaxRetryAfter
		}
		d = time.Duration(secs * float64(time.Second))
	} else if t, err := http.ParseTime(v); err == nil {
		d = time.Until(t)
	} else {
		d = invalidRetryAfter
	}
	return min(max(d, 0), MaxRetryAfter)
}

// maxMessage bounds a server message in logs: an HTML error page from a proxy
// should not flood the log.
const maxMessage = 256

// serverText extracts the message of an error body: the InfluxDB 2.x shape
// {"code","message"}, the 1.x and 3.x shape {"error"}, or, for anything
// else (HTML from a proxy, truncated JSON), the text itself. Scrubber's
// ServerMessage cleans, scrubs and cuts it.
func serverText(body []byte) string {
	var shaped struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Error   string `json:"error"`
	}
	if err := json.Unmarshal(body, &shaped); err == nil {
		switch {
		case shaped.Message != "" && shaped.Code != "":
			return shaped.Code + ": " + shaped.Message
		case shaped.Message != "":
			return shaped.Message
		case shaped.Error != "":
			return shaped.Error
		}
	}
	return string(body)
}

// normalizeMessage puts a message on one line: control characters removed,
// white space collapsed.
func normalizeMessage(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || r == '\r' {
			return ' '
		}
		if !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// truncateMessage cuts a message to maxMessage bytes at a character boundary.
func truncateMessage(s string) string {
	if len(s) > maxMessage {
		cut := maxMessage
		for cut > 0 && !utfStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func utfStart(b byte) bool { return b&0xC0 != 0x80 }
