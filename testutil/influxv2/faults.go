package influxv2

import (
	"cmp"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Fault is one forced answer, consumed by the next request to Path. Faults queue
// up in the order given to Inject; each is used once.
//
// Status 0 means "answer normally" after Delay, which makes a slow server.
// Otherwise the request is not processed (nothing is stored) and the answer is
// Status with Body, as InfluxDB Cloud or a proxy in front of InfluxDB would send it.
type Fault struct {
	// Path the fault applies to; "" means "/api/v2/write", "*" any path.
	Path string
	// Status to answer; 0 processes the request normally (after Delay).
	Status int
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter string
	// Body to send; "" picks a default: a 2.x JSON error for most statuses, an nginx
	// HTML page for 502 and 504 (what a proxy sends).
	Body string
	// Delay before answering. The wait ends early when the client goes away or the
	// server closes.
	Delay time.Duration
	// ResetConnection closes the TCP connection with a reset instead of answering.
	ResetConnection bool
	// LoseAnswer processes the request normally (a create creates), then resets
	// the connection instead of sending the answer: the client cannot know what
	// happened and a retry meets what the first attempt did.
	LoseAnswer bool
	// SlowBody sends the status and headers, then the body one byte every 50ms (a
	// body of at least 64 bytes is used), so a client's response timeout fires.
	// It shapes forced answers only: it needs a Status.
	SlowBody bool
}

// Inject queues forced answers for the next matching requests.
func (s *Server) Inject(f ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f...)
}

// PendingFaults is how many injected faults have not been used yet.
func (s *Server) PendingFaults() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.faults)
}

// discardWriter is the ResponseWriter of an answer nobody will receive.
type discardWriter struct{ header http.Header }

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

func (s *Server) takeFault(path string) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		p := f.Path
		p = cmp.Or(p, "/api/v2/write")
		if p == "*" || p == path {
			s.faults = append(s.faults[:i], s.faults[i+1:]...)
			return f, true
		}
	}
	return Fault{}, false
}

// serveFault answers with f and reports whether it did (false: go on normally).
func (s *Server) serveFault(w http.ResponseWriter, r *http.Request, f Fault) bool {
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return true
		case <-s.done:
			// The server is closing: drop the connection rather than answer 200.
			panic(http.ErrAbortHandler)
		}
	}
	if f.ResetConnection {
		resetConnection(w)
		return true
	}
	if f.Status == 0 {
		return false
	}
	// The request body is drained so a client that is still sending sees the answer.
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 64<<20))

	body, ctype := faultBody(f)
	h := w.Header()
	h.Set("Content-Type", ctype)
	if strings.HasPrefix(ctype, "application/json") {
		if code := jsonCodeFor(f.Status); code != "" {
			h.Set("X-Platform-Error-Code", code)
		}
	}
	if f.RetryAfter != "" {
		h.Set("Retry-After", f.RetryAfter)
	}
	if !f.SlowBody {
		w.WriteHeader(f.Status)
		_, _ = io.WriteString(w, body)
		return true
	}
	for len(body) < 64 {
		body += " "
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(f.Status)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for i := 0; i < len(body); i++ {
		select {
		case <-tick.C:
		case <-r.Context().Done():
			return true
		case <-s.done:
			// The server is closing: drop the connection rather than answer 200.
			panic(http.ErrAbortHandler)
		}
		if _, err := io.WriteString(w, body[i:i+1]); err != nil {
			return true
		}
		_ = rc.Flush()
	}
	return true
}

// resetConnection hijacks the connection and closes it with SO_LINGER 0, so the
// client sees a connection reset rather than a clean EOF.
func resetConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

func jsonCodeFor(status int) string {
	switch status {
	case http.StatusBadRequest:
		return codeInvalid
	case http.StatusUnauthorized:
		return codeUnauthorized
	case http.StatusForbidden:
		return codeForbidden
	case http.StatusNotFound:
		return codeNotFound
	case http.StatusRequestEntityTooLarge:
		return codeTooLarge
	case http.StatusUnprocessableEntity:
		return "unprocessable entity"
	case http.StatusTooManyRequests:
		return codeTooManyRequests
	case http.StatusServiceUnavailable:
		return codeUnavailable
	case http.StatusInternalServerError:
		return codeInternal
	}
	return ""
}

func faultBody(f Fault) (body, contentType string) {
	body = f.Body
	if body == "" {
		switch f.Status {
		case http.StatusBadGateway, http.StatusGatewayTimeout:
			text := fmt.Sprintf("%d %s", f.Status, http.StatusText(f.Status))
			body = "<html>\r\n<head><title>" + text + "</title></head>\r\n<body>\r\n<center><h1>" + text +
				"</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
		case http.StatusTooManyRequests:
			body = `{"code":"too many requests","message":"org 0000000000000000 has exceeded limited_write plan limit"}` + "\n"
		default:
			code := jsonCodeFor(f.Status)
			code = cmp.Or(code, codeInternal)
			body = fmt.Sprintf(`{"code":%q,"message":%q}`+"\n", code, strings.ToLower(http.StatusText(f.Status)))
		}
	}
	switch strings.TrimSpace(body)[:min(1, len(strings.TrimSpace(body)))] {
	case "{":
		return body, "application/json; charset=utf-8"
	case "<":
		return body, "text/html"
	}
	return body, "text/plain; charset=utf-8"
}
