package influxv2

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
)

// routeV3 answers like InfluxDB 3: authentication first (except for the creation of
// the first operator token), then the endpoint.
func (s *Server) routeV3(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if p == "/api/v3/configure/token/admin" && r.Method == http.MethodPost {
		s.handleV3CreateOperator(w, r)
		return
	}
	tok, aerr := s.v3Authenticate(r)
	if aerr != nil {
		writeV3Error(w, aerr)
		return
	}
	only := func(method string, h func(http.ResponseWriter, *http.Request, *v3Token)) {
		if r.Method != method {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		h(w, r, tok)
	}
	switch p {
	case "/ping":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("X-Influxdb-Build", string(s.v3.edition))
		w.Header().Set("X-Influxdb-Version", V3Version)
		writeJSON(w, http.StatusOK, map[string]string{"version": V3Version, "revision": "0000000000"})
	case "/health":
		only(http.MethodGet, func(w http.ResponseWriter, _ *http.Request, _ *v3Token) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = io.WriteString(w, "OK")
		})
	case "/api/v2/write":
		only(http.MethodPost, s.handleV3WriteV2)
	case "/api/v3/write_lp":
		only(http.MethodPost, s.handleV3WriteLP)
	case "/api/v3/configure/token/admin/regenerate":
		only(http.MethodPost, s.handleV3RegenerateOperator)
	case "/api/v3/configure/token/named_admin":
		only(http.MethodPost, s.handleV3CreateNamedAdmin)
	case "/api/v3/configure/token":
		only(http.MethodDelete, s.handleV3DeleteToken)
	case "/api/v3/query_sql":
		only(http.MethodGet, s.handleV3QuerySQL)
	case "/query":
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		s.handleV3Query(w, r, tok)
	case "/api/v3/enterprise/configure/token":
		if s.v3.edition != Enterprise {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		only(http.MethodPost, s.handleV3CreateResourceToken)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// v3Forbidden is the answer to a resource token that lacks a permission.
var v3Forbidden = &v3Error{status: http.StatusForbidden, msg: v3Unauthorized}

// handleV3WriteV2 is the v2-compatible write: bucket is the database, org is
// ignored, precision is ns|us|ms|s.
func (s *Server) handleV3WriteV2(w http.ResponseWriter, r *http.Request, tok *v3Token) {
	q := r.URL.Query()
	name := q.Get("precision")
	if name == "" {
		name = "ns"
	}
	prec, ok := precisions[name]
	if !ok {
		writeV3Error(w, &v3Error{status: http.StatusBadRequest, msg: "invalid precision: " + name})
		return
	}
	if err := s.v3Write(r, tok, q.Get("bucket"), prec); err != nil {
		if err.msg == v3EmptyWrite {
			err.msg = "write buffer error: " + v3EmptyWrite
		}
		writeV3Error(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// v3Precisions are the precisions /api/v3/write_lp takes. "auto" guesses from the
// timestamp's size in InfluxDB 3; the test server reads it as nanoseconds.
var v3Precisions = map[string]lineprotocol.Precision{
	"auto": lineprotocol.Nanosecond, "nanosecond": lineprotocol.Nanosecond, "ns": lineprotocol.Nanosecond,
	"microsecond": lineprotocol.Microsecond, "us": lineprotocol.Microsecond,
	"millisecond": lineprotocol.Millisecond, "ms": lineprotocol.Millisecond,
	"second": lineprotocol.Second, "s": lineprotocol.Second,
}

// handleV3WriteLP is the native write; its empty-write answer is plain text.
func (s *Server) handleV3WriteLP(w http.ResponseWriter, r *http.Request, tok *v3Token) {
	q := r.URL.Query()
	name := q.Get("precision")
	if name == "" {
		name = "auto"
	}
	prec, ok := v3Precisions[name]
	if !ok {
		writeV3Error(w, &v3Error{status: http.StatusBadRequest, msg: "invalid precision: " + name})
		return
	}
	if err := s.v3Write(r, tok, q.Get("db"), prec); err != nil {
		if err.msg == v3EmptyWrite {
			err.plain = true
		}
		writeV3Error(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// v3Write checks and stores one write: database named, write permission (403 for
// a resource token without it), body within 10 MiB after decompression (413), not
// empty (400 "incoming write was empty"), every line valid (400, nothing stored).
// The database is created by its first write.
func (s *Server) v3Write(r *http.Request, tok *v3Token, db string, prec lineprotocol.Precision) *v3Error {
	if db == "" {
		return &v3Error{status: http.StatusBadRequest, msg: "missing database name"}
	}
	if !tok.allows("db", db, "write") {
		return v3Forbidden
	}
	body := io.Reader(r.Body)
	switch r.Header.Get("Content-Encoding") {
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return &v3Error{status: http.StatusBadRequest, msg: "invalid gzip request body: " + err.Error()}
		}
		defer zr.Close()
		body = zr
	}
	limit := s.opts.MaxBodySize
	if limit <= 0 {
		limit = v3MaxBody
	}
	data, err := readLimited(body, limit)
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.Code == codeTooLarge {
			return &v3Error{status: http.StatusRequestEntityTooLarge, msg: "the request body exceeded the maximum size"}
		}
		return &v3Error{status: http.StatusBadRequest, msg: err.Error()}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return &v3Error{status: http.StatusBadRequest, msg: v3EmptyWrite}
	}
	points, err := parseLines(data, prec, s.now())
	if err != nil {
		return &v3Error{status: http.StatusBadRequest, msg: "parsing failed for write_lp endpoint: " + err.Error()}
	}
	authID := strconv.FormatInt(tok.id, 10)
	for i := range points {
		points[i].Bucket, points[i].AuthID = db, authID
	}
	s.mu.Lock()
	s.v3.databases[db] = true // created by the write, even if a field conflict drops its points
	dropped, reason := s.storeLocked("v3\x00"+db, points)
	s.mu.Unlock()
	if dropped > 0 {
		return &v3Error{status: http.StatusBadRequest, msg: "partial write of line protocol occurred: " + reason}
	}
	return nil
}

// v3TokenAnswer is the body of a token creation (CreateTokenWithPermissionsResponse).
type v3TokenAnswer struct {
	ID        int64      `json:"id"`
	Name      string     `json:"name"`
	Token     string     `json:"token"`
	Hash      string     `json:"hash"`
	CreatedAt time.Time  `json:"created_at"`
	Expiry    *time.Time `json:"expiry"`
}

// String keeps the token out of a test's failure message (%v, %+v).
func (a v3TokenAnswer) String() string {
	a.Token = fingerprint(a.Token)
	type plain v3TokenAnswer // without this method
	return fmt.Sprintf("%+v", plain(a))
}

func tokenAnswer(t *v3Token) v3TokenAnswer {
	a := v3TokenAnswer{ID: t.id, Name: t.name, Token: t.token, Hash: v3Hash(t.token), CreatedAt: t.created}
	if !t.expiry.IsZero() {
		e := t.expiry
		a.Expiry = &e
	}
	return a
}

// requireAdmin answers 403 for a resource token: the token API is for admin tokens.
func requireAdmin(w http.ResponseWriter, tok *v3Token) bool {
	if !tok.admin {
		writeV3Error(w, v3Forbidden)
		return false
	}
	return true
}

// handleV3CreateOperator creates the operator token `_admin`, without
// authentication, only while there is none.
func (s *Server) handleV3CreateOperator(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.addV3TokenLocked(V3OperatorName, true, nil, 0, 0)
	if err != nil {
		writeV3Error(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, tokenAnswer(t))
}

// handleV3RegenerateOperator gives the operator token a new value in place; only
// the operator token itself may ask.
func (s *Server) handleV3RegenerateOperator(w http.ResponseWriter, _ *http.Request, tok *v3Token) {
	if tok.name != V3OperatorName {
		writeV3Error(w, v3Forbidden)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.v3.byToken, tok.token)
	tok.token = newV3TokenValue()
	s.v3.byToken[tok.token] = tok
	writeJSON(w, http.StatusCreated, tokenAnswer(tok))
}

type v3CreateRequest struct {
	TokenName   *string `json:"token_name"`
	ExpirySecs  *int64  `json:"expiry_secs"`
	Permissions []struct {
		ResourceType       string   `json:"resource_type"`
		ResourceNames      []string `json:"resource_names"`
		ResourceIdentifier []string `json:"resource_identifier"` // the name in docs before April 2026
		Actions            []string `json:"actions"`
	} `json:"permissions"`
}

// decodeCreate reads a token creation body: token_name required, expiry_secs
// positive when given.
func decodeCreate(r *http.Request) (v3CreateRequest, time.Duration, *v3Error) {
	var req v3CreateRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		return req, 0, &v3Error{status: http.StatusBadRequest, msg: "invalid json: " + err.Error()}
	}
	if req.TokenName == nil || *req.TokenName == "" {
		return req, 0, &v3Error{status: http.StatusBadRequest, msg: "token_name is required"}
	}
	var expiry time.Duration
	if req.ExpirySecs != nil {
		if *req.ExpirySecs <= 0 || *req.ExpirySecs > int64(100*365*24*time.Hour/time.Second) {
			return req, 0, &v3Error{status: http.StatusBadRequest, msg: "expiry_secs must be a positive number of seconds"}
		}
		expiry = time.Duration(*req.ExpirySecs) * time.Second
	}
	return req, expiry, nil
}

func (s *Server) handleV3CreateNamedAdmin(w http.ResponseWriter, r *http.Request, tok *v3Token) {
	s.createV3Token(w, r, tok, true, nil)
}

func (s *Server) handleV3CreateResourceToken(w http.ResponseWriter, r *http.Request, tok *v3Token) {
	s.createV3Token(w, r, tok, false, resourcePermissions)
}

// createV3Token is what both token-creating endpoints share: only an admin
// token may call them; the body names the token and its expiry; an admin
// token has no permission list, a resource token the one perms reads from
// the request.
func (s *Server) createV3Token(w http.ResponseWriter, r *http.Request, tok *v3Token, admin bool,
	perms func(v3CreateRequest) ([]V3Permission, *v3Error)) {
	if !requireAdmin(w, tok) {
		return
	}
	req, expiry, derr := decodeCreate(r)
	if derr != nil {
		writeV3Error(w, derr)
		return
	}
	var granted []V3Permission
	if perms != nil {
		var perr *v3Error
		if granted, perr = perms(req); perr != nil {
			writeV3Error(w, perr)
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.addV3TokenLocked(*req.TokenName, admin, granted, expiry, tok.id)
	if err != nil {
		writeV3Error(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, tokenAnswer(t))
}

// resourcePermissions reads an Enterprise resource token's permissions,
// under resource_names or the older resource_identifier.
func resourcePermissions(req v3CreateRequest) ([]V3Permission, *v3Error) {
	perms := make([]V3Permission, 0, len(req.Permissions))
	for _, p := range req.Permissions {
		names := p.ResourceNames
		if names == nil {
			names = p.ResourceIdentifier
		}
		perms = append(perms, V3Permission{ResourceType: p.ResourceType, ResourceNames: names, Actions: p.Actions})
	}
	if err := validateV3Permissions(perms); err != nil {
		return nil, err
	}
	return perms, nil
}

// handleV3DeleteToken is DELETE ?token_name=X: 200 with an empty body, 404 unknown,
// 405 for the operator token.
func (s *Server) handleV3DeleteToken(w http.ResponseWriter, r *http.Request, tok *v3Token) {
	if !requireAdmin(w, tok) {
		return
	}
	name := r.URL.Query().Get("token_name")
	if name == "" {
		writeV3Error(w, &v3Error{status: http.StatusBadRequest, msg: "token_name is required"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.deleteV3TokenLocked(name); err != nil {
		writeV3Error(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// systemTokensQuery is the one statement the test server runs: anything else is
// a 400, so a client that sends another query cannot pass a test by accident.
var systemTokensQuery = regexp.MustCompile(`(?i)^\s*SELECT\s+\*\s+FROM\s+system\.tokens\s*;?\s*$`)

// v3Timestamp is how InfluxDB 3's JSON output writes a timestamp column: UTC,
// without a zone.
const v3Timestamp = "2006-01-02T15:04:05.999999999"

// handleV3QuerySQL answers `SELECT * FROM system.tokens` on db=_internal as JSON
// (an array of row objects), for admin tokens.
func (s *Server) handleV3QuerySQL(w http.ResponseWriter, r *http.Request, tok *v3Token) {
	q := r.URL.Query()
	if !systemTokensQuery.MatchString(q.Get("q")) {
		writeV3Error(w, &v3Error{status: http.StatusBadRequest,
			msg: "the test server only answers SELECT * FROM system.tokens"})
		return
	}
	if q.Get("db") != "_internal" {
		writeV3Error(w, &v3Error{status: http.StatusBadRequest, msg: "system.tokens is in database _internal"})
		return
	}
	if f := q.Get("format"); f != "" && f != "json" {
		writeV3Error(w, &v3Error{status: http.StatusBadRequest, msg: "the test server only answers format=json"})
		return
	}
	if !requireAdmin(w, tok) {
		return
	}
	s.mu.Lock()
	rows := make([]map[string]any, 0, len(s.v3.tokens))
	for _, t := range s.v3.tokens {
		row := map[string]any{
			"token_id": t.id, "name": t.name, "hash": v3Hash(t.token),
			"created_at": t.created.Format(v3Timestamp), "description": nil,
			"created_by_token_id": nil, "updated_at": nil, "updated_by_token_id": nil,
			"expiry": nil, "permissions": t.permissionString(),
		}
		if t.createdBy != 0 {
			row["created_by_token_id"] = t.createdBy
		}
		if !t.expiry.IsZero() {
			row["expiry"] = t.expiry.Format(v3Timestamp)
		}
		rows = append(rows, row)
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, rows)
}

// Answers of InfluxDB 3's v1 query API (core/iox_v1_query_api, v3.9.6 and
// main): an error before the statements run is {"error": …}; an error of a
// statement is HTTP 200 with the statement's "error".
const (
	// v3QueryUnauthorized is any authorization failure of the v1 query API,
	// kept opaque: a resource token without read on the database.
	v3QueryUnauthorized = "unauthorized access"
	v3QueryNoDatabase   = "must specify a 'db' parameter, or provide the database in the InfluxQL query"
)

// handleV3Query is the v1-compatible GET|POST /query?db=<database>&q=<InfluxQL>
// of InfluxDB 3, answering the adoption statement only (see query.go); any
// other statement is a 400. In InfluxDB 3's order: parameters, the database
// named, read permission on it (401 "unauthorized access" without), then the
// database must exist (200, statement error "Database <db> not found").
func (s *Server) handleV3Query(w http.ResponseWriter, r *http.Request, tok *v3Token) {
	format, ok := epochFormat(r.FormValue("epoch"))
	if !ok {
		writeV3Error(w, &v3Error{status: http.StatusBadRequest, msg: fmt.Sprintf("influxv2 test server: unsupported epoch %q", r.FormValue("epoch"))})
		return
	}
	q := strings.TrimSpace(r.FormValue("q"))
	measurement, secs, ok := parseAdoptionStatement(q)
	if !ok {
		writeV3Error(w, &v3Error{status: http.StatusBadRequest,
			msg: fmt.Sprintf("influxv2 test server: unsupported InfluxQL statement %q", q)})
		return
	}
	db := r.FormValue("db")
	if db == "" {
		writeQL(w, qlResult{Error: v3QueryNoDatabase})
		return
	}
	if !tok.allows("db", db, "read") {
		writeV3Error(w, &v3Error{status: http.StatusUnauthorized, msg: v3QueryUnauthorized})
		return
	}
	since := s.now().Add(-time.Duration(secs) * time.Second)
	s.mu.Lock()
	exists := s.v3.databases[db]
	var pts []Point
	for _, p := range s.points {
		if p.Bucket == db && p.Measurement == measurement && p.Time.After(since) {
			pts = append(pts, p)
		}
	}
	s.mu.Unlock()
	if !exists {
		writeQL(w, qlResult{Error: fmt.Sprintf("Database %s not found", db)})
		return
	}
	writeQL(w, qlResult{Series: groupByClient(measurement, pts, format)})
}
