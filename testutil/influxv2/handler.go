package influxv2

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// statusRecorder remembers the status for the request record.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Hijack and Flush.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// countingBody counts the body bytes read, for Request.BodySize. The count is atomic
// because net/http may read the body from its own goroutine (background read).
type countingBody struct {
	io.ReadCloser
	n atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// caller is the authenticated side of a request.
type caller struct {
	auth *authorization
}

// ServeHTTP checks the request against the contract, applies an injected fault if one
// matches, then answers like 2.x.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w}
	entry := Request{
		Method: r.Method, Path: r.URL.Path, Query: redactQuery(r.URL.Query()),
		ContentEncoding: r.Header.Get("Content-Encoding"), UserAgent: r.Header.Get("User-Agent"),
		Time: time.Now().UTC(),
	}
	body := &countingBody{ReadCloser: r.Body}
	r.Body = body
	if s.v3 != nil {
		entry.Fingerprint, entry.AuthID = s.v3Identify(r.Header.Get("Authorization"))
	} else if tok, ok := tokenFromHeader(r.Header.Get("Authorization")); ok {
		entry.Fingerprint = fingerprint(tok)
		s.mu.Lock()
		if a := s.byToken[tok]; a != nil {
			entry.AuthID = a.id
		}
		s.mu.Unlock()
	}
	recorded := false
	record := func() {
		recorded = true
		entry.Status = rec.status
		entry.BodySize = body.n.Load()
		s.mu.Lock()
		s.requests = append(s.requests, entry)
		s.mu.Unlock()
		s.log.Debug("influxv2 request", "method", entry.Method, "path", entry.Path,
			"status", entry.Status, "token", entry.Fingerprint, "auth_id", entry.AuthID, "faulted", entry.Faulted)
	}
	defer func() {
		if !recorded {
			record()
		}
	}()

	// The contract is InfluxDB 2.x's OSS API: it describes neither the v1
	// compatibility API (/query) nor an InfluxDB 3 server.
	if c := s.opts.Contract; c != nil && s.v3 == nil && r.URL.Path != "/query" {
		if err := s.checkContract(c, r); err != nil {
			s.mu.Lock()
			s.violations = append(s.violations, err)
			s.mu.Unlock()
			s.log.Warn("influxv2 contract violation", "method", r.Method, "path", r.URL.Path, "error", err)
		}
	}

	if f, ok := s.takeFault(r.URL.Path); ok {
		if f.LoseAnswer {
			// Recorded before the reset, so a client that retries at once
			// finds the lost request ahead of its retry in Requests.
			entry.Faulted = true
			s.route(&discardWriter{header: http.Header{}}, r)
			record()
			resetConnection(rec)
			return
		}
		entry.Faulted = s.serveFault(rec, r, f)
		if entry.Faulted {
			return
		}
	}
	s.route(rec, r)
}

// route answers like InfluxDB 2.x, or like InfluxDB 3 on a server made for it.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	if s.v3 != nil {
		s.routeV3(w, r)
		return
	}
	s.routeV2(w, r)
}

// redactQuery encodes the query with token= values replaced by their fingerprint: 2.x
// ignores that filter, but a client could still send a token there.
func redactQuery(q url.Values) string {
	if vs, ok := q["token"]; ok {
		for i, v := range vs {
			vs[i] = fingerprint(v)
		}
	}
	return q.Encode()
}

// checkContract validates the request and puts the body back for the handler.
func (s *Server) checkContract(c *Contract, r *http.Request) error {
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return err
		}
		body = b
		r.Body = io.NopCloser(bytes.NewReader(b))
	}
	return c.Validate(r, body)
}

func (s *Server) routeV2(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/ping":
		onlyMethods(w, r, s.handlePing, http.MethodGet, http.MethodHead)
	case p == "/health":
		onlyMethods(w, r, s.handleHealth, http.MethodGet)
	case p == "/query":
		onlyMethods(w, r, s.authenticated(s.handleQuery), http.MethodGet, http.MethodPost)
	case p == "/api/v2/write":
		onlyMethods(w, r, s.authenticated(s.handleWrite), http.MethodPost)
	case p == "/api/v2/authorizations":
		switch r.Method {
		case http.MethodGet:
			s.authenticated(s.handleListAuthorizations)(w, r)
		case http.MethodPost:
			s.authenticated(s.handlePostAuthorization)(w, r)
		default:
			methodNotAllowed(w)
		}
	case strings.HasPrefix(p, "/api/v2/authorizations/") && !strings.Contains(p[len("/api/v2/authorizations/"):], "/"):
		id := p[len("/api/v2/authorizations/"):]
		switch r.Method {
		case http.MethodGet:
			s.authenticated(func(w http.ResponseWriter, r *http.Request, c caller) { s.handleGetAuthorization(w, r, c, id) })(w, r)
		case http.MethodPatch:
			s.authenticated(func(w http.ResponseWriter, r *http.Request, c caller) { s.handlePatchAuthorization(w, r, c, id) })(w, r)
		case http.MethodDelete:
			s.authenticated(func(w http.ResponseWriter, r *http.Request, c caller) { s.handleDeleteAuthorization(w, r, c, id) })(w, r)
		default:
			methodNotAllowed(w)
		}
	case p == "/api/v2/orgs":
		onlyMethods(w, r, s.authenticated(s.handleListOrgs), http.MethodGet)
	case p == "/api/v2/buckets":
		onlyMethods(w, r, s.authenticated(s.handleListBuckets), http.MethodGet)
	default:
		writeError(w, &apiError{codeNotFound, "path not found"})
	}
}

func onlyMethods(w http.ResponseWriter, r *http.Request, h http.HandlerFunc, methods ...string) {
	for _, m := range methods {
		if r.Method == m {
			h(w, r)
			return
		}
	}
	methodNotAllowed(w)
}

func methodNotAllowed(w http.ResponseWriter) {
	writeError(w, &apiError{codeMethodNotAllowed, "method not allowed"})
}

// authenticated is the 2.x authentication middleware: a missing header, another
// scheme or an unknown token is 401 "unauthorized access"; a token of an inactive user
// is 403 "User is inactive". An inactive token authenticates and then has no
// permissions, which each handler turns into its own error.
func (s *Server) authenticated(h func(http.ResponseWriter, *http.Request, caller)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := tokenFromHeader(r.Header.Get("Authorization"))
		if !ok {
			writeError(w, errUnauthAcces)
			return
		}
		s.mu.Lock()
		a := s.byToken[tok]
		var u *user
		if a != nil {
			u = s.userByIDLocked(a.userID)
		}
		s.mu.Unlock()
		if a == nil {
			writeError(w, errUnauthAcces)
			return
		}
		if u == nil || !u.active {
			writeError(w, &apiError{codeForbidden, "User is inactive"})
			return
		}
		h(w, r, caller{auth: a})
	}
}

// authorize is 2.x authorizer.IsAllowed: 401 "<perm> is unauthorized", or 401
// "token is inactive" for an inactive token. Call with s.mu held.
func (c caller) authorize(p Permission) *apiError {
	if !c.auth.active {
		return &apiError{codeUnauthorized, "token is inactive"}
	}
	if !c.auth.allowed(p) {
		return &apiError{codeUnauthorized, p.String() + " is unauthorized"}
	}
	return nil
}

func (s *Server) handlePing(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Influxdb-Build", "OSS")
	w.Header().Set("X-Influxdb-Version", Version)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"name":    "influxdb",
		"message": "ready for queries and writes",
		"status":  "pass",
		"checks":  []any{},
		"version": Version,
		"commit":  "00000000000000000000000000000000000000",
	})
}
