// Package influxv2 is an in-process server that answers like InfluxDB 2.x OSS on the
// endpoints a Telegraf output and a token-rotation controller use: /api/v2/write,
// /api/v2/authorizations, /api/v2/orgs, /api/v2/buckets, /health and /ping.
//
// It exists so that rotation can be tested end to end without a real InfluxDB 2.x:
// status codes, JSON error bodies and the order of the write checks follow the 2.x
// source (see README.md and /work/shared/influxdb-api.md), every accepted point is
// stored with the authorization that wrote it, answers can be forced (throttling,
// proxies, resets, slow bodies) and every request can be checked against the official
// OpenAPI contract.
//
// Token values never appear in anything the server logs or records: requests are
// recorded with a fingerprint of the token, and Authorization values print without it.
package influxv2

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Version is what /health and /ping report, a real 2.x release so clients that look
// at it see a plausible value.
const Version = "v2.7.12"

// Options configures a Server. The zero value is a server without a body size limit,
// with listings that show full tokens (2.7 behaviour) and without contract checking.
type Options struct {
	// HashedTokens makes listings, GET and PATCH of authorizations show token "" as
	// InfluxDB 2.8+ does with hashed tokens on; only the POST response carries it.
	HashedTokens bool
	// MaxBodySize, when positive, makes writes whose body (raw or gunzipped) is larger
	// answer 413. OSS has no limit by default.
	MaxBodySize int64
	// Logger receives one debug line per request (never a token). nil discards.
	Logger *slog.Logger
	// Contract, when set, checks every request against the OpenAPI contract and
	// records violations (see Violations). Load it with LoadContract.
	Contract *Contract
	// Addr is the address to listen on; "" is 127.0.0.1 on a free port.
	Addr string
	// InfluxDB3, when set, makes the server answer like InfluxDB 3 Core or
	// Enterprise instead of 2.x (see v3.go). The 2.x contract is not checked then.
	InfluxDB3 Edition
	// Now is the server's clock, for token expiry; nil is time.Now.
	Now func() time.Time
}

// Permission is an InfluxDB 2.x permission: an action on a resource.
type Permission struct {
	Action   string   `json:"action"` // "read" or "write"
	Resource Resource `json:"resource"`
}

// Resource names what a permission applies to. ID and OrgID are 16-hex IDs or empty;
// Name and Org are filled in responses only.
type Resource struct {
	Type  string `json:"type"`
	ID    string `json:"id,omitempty"`
	OrgID string `json:"orgID,omitempty"`
	Name  string `json:"name,omitempty"`
	Org   string `json:"org,omitempty"`
}

// String is the 2.x form used in error messages, e.g. "write:orgs/<org>/buckets/<id>".
func (p Permission) String() string {
	return p.Action + ":" + p.Resource.String()
}

func (r Resource) String() string {
	switch {
	case r.OrgID != "" && r.ID != "":
		return "orgs/" + r.OrgID + "/" + r.Type + "/" + r.ID
	case r.OrgID != "":
		return "orgs/" + r.OrgID + "/" + r.Type
	case r.ID != "":
		return r.Type + "/" + r.ID
	}
	return r.Type
}

// matches is 2.x Permission.Matches (matchesV1): p, held by a token, allows perm.
func (p Permission) matches(perm Permission) bool {
	if p.Action != perm.Action || p.Resource.Type != perm.Resource.Type {
		return false
	}
	if p.Resource.OrgID == "" && p.Resource.ID == "" {
		return true
	}
	if p.Resource.OrgID != "" && p.Resource.ID == "" && p.Resource.OrgID == perm.Resource.OrgID {
		return true
	}
	return p.Resource.ID != "" && p.Resource.ID == perm.Resource.ID
}

// Authorization is what the test helpers return. It prints without its token.
type Authorization struct {
	ID          string
	Token       string
	OrgID       string
	UserID      string
	Description string
	Active      bool
	Permissions []Permission
}

// String keeps the token out of %v and %s.
func (a Authorization) String() string {
	return fmt.Sprintf("authorization %s (%s, active=%t)", a.ID, fingerprint(a.Token), a.Active)
}

// GoString keeps the token out of %#v.
func (a Authorization) GoString() string { return a.String() }

// LogValue keeps the token out of slog output.
func (a Authorization) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", a.ID), slog.String("token", fingerprint(a.Token)))
}

// Request is one request the server answered, recorded for assertions.
type Request struct {
	Method      string
	Path        string
	Query       string // encoded, token= values replaced by their fingerprint
	Status      int
	Fingerprint string // of the token in the Authorization header; "" without one
	AuthID      string // authorization the token belongs to; "" if unknown
	Faulted     bool   // answered by an injected Fault
	// ContentEncoding and UserAgent are the request's headers; BodySize is how many
	// body bytes the server read (all of them for writes and faulted requests).
	ContentEncoding string
	UserAgent       string
	BodySize        int64
	Time            time.Time
}

type org struct {
	id, name string
	created  time.Time
}

type bucket struct {
	id, orgID, name string
	created         time.Time
}

type user struct {
	id, name string
	active   bool
}

type authorization struct {
	id, token, orgID, userID, description string
	active                                bool
	perms                                 []Permission
	created, updated                      time.Time
}

// Server is an InfluxDB 2.x-compatible HTTP server on a loopback port. All methods
// are safe for concurrent use.
type Server struct {
	opts     Options
	log      *slog.Logger
	url      string
	http     *http.Server
	listener net.Listener
	done     chan struct{}
	closed   sync.Once
	served   chan struct{}

	mu         sync.Mutex
	orgs       []*org
	buckets    []*bucket
	users      []*user
	auths      []*authorization
	byToken    map[string]*authorization
	operator   *authorization
	points     []Point
	fieldTypes map[string]string // bucket ID, measurement, field -> type
	stored     chan struct{}     // closed and replaced whenever points are stored
	faults     []Fault
	requests   []Request
	violations []error
	v3         *v3State // nil for a 2.x server
}

// New starts a server (on 127.0.0.1 and a free port unless Options.Addr says
// otherwise) with an operator user "admin" and an operator token (see
// OperatorToken). Close stops it.
func New(opts Options) (*Server, error) {
	addr := opts.Addr
	addr = cmp.Or(addr, "127.0.0.1:0")
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("influxv2: Options.Addr %q: %w", addr, err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		opts:     opts,
		log:      log,
		url:      "http://" + ln.Addr().String(),
		listener: ln,
		done:     make(chan struct{}),
		served:   make(chan struct{}),
		byToken:  map[string]*authorization{},
		stored:   make(chan struct{}),
	}
	if opts.InfluxDB3 != "" {
		if opts.InfluxDB3 != Core && opts.InfluxDB3 != Enterprise {
			_ = ln.Close()
			return nil, fmt.Errorf("influxv2: Options.InfluxDB3 %q: want %q or %q", opts.InfluxDB3, Core, Enterprise)
		}
		s.v3 = newV3State(opts.InfluxDB3)
	}
	admin := &user{id: newID(), name: "admin", active: true}
	s.users = append(s.users, admin)
	s.operator = s.addAuthLocked("", admin.id, "admin's Token", true, operatorPermissions())

	s.http = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go func() {
		defer close(s.served)
		_ = s.http.Serve(ln)
	}()
	return s, nil
}

// URL is the base URL, e.g. "http://127.0.0.1:41234".
func (s *Server) URL() string { return s.url }

// Close stops the server: listeners and connections close, delayed and slow answers end.
func (s *Server) Close() {
	s.closed.Do(func() {
		close(s.done)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := s.http.Shutdown(ctx); err != nil {
			_ = s.http.Close()
		}
		<-s.served
	})
}

// operatorPermissions are 2.x OperPermissions: read and write on every resource type.
func operatorPermissions() []Permission {
	var ps []Permission
	for _, t := range resourceTypes {
		for _, a := range []string{"read", "write"} {
			ps = append(ps, Permission{Action: a, Resource: Resource{Type: t}})
		}
	}
	return ps
}

var resourceTypes = []string{
	"authorizations", "buckets", "dashboards", "orgs", "sources", "tasks", "telegrafs",
	"users", "variables", "scrapers", "secrets", "labels", "views", "documents",
	"notificationRules", "notificationEndpoints", "checks", "dbrp", "notebooks",
	"annotations", "remotes", "replications", "instance",
}

func validResourceType(t string) bool { return slices.Contains(resourceTypes, t) }

// OperatorToken is the all-access token created with the server, like the token of
// `influx setup`. On an InfluxDB 3 server it is the operator token `_admin`, created
// on first use like `influxdb3 create token --admin` (see V3OperatorToken).
func (s *Server) OperatorToken() string {
	if s.v3 != nil {
		return s.V3OperatorToken().Token
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.operator.token
}

// OperatorAuthorization is the authorization of OperatorToken.
func (s *Server) OperatorAuthorization() Authorization {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.operator.public()
}

// CreateOrg creates an organization (or returns the existing one) and returns its ID.
func (s *Server) CreateOrg(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o := s.orgByNameLocked(name); o != nil {
		return o.id
	}
	o := &org{id: newID(), name: name, created: time.Now().UTC()}
	s.orgs = append(s.orgs, o)
	return o.id
}

// CreateBucket creates a bucket in the org (creating the org if needed) or returns
// the existing one, and returns the bucket ID.
func (s *Server) CreateBucket(orgName, bucketName string) string {
	orgID := s.CreateOrg(orgName)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.buckets {
		if b.orgID == orgID && b.name == bucketName {
			return b.id
		}
	}
	b := &bucket{id: newID(), orgID: orgID, name: bucketName, created: time.Now().UTC()}
	s.buckets = append(s.buckets, b)
	return b.id
}

// CreateUser creates a user (or returns the existing one) and returns its ID.
func (s *Server) CreateUser(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.users {
		if u.name == name {
			return u.id
		}
	}
	u := &user{id: newID(), name: name, active: true}
	s.users = append(s.users, u)
	return u.id
}

// SetUserActive marks a user active or inactive. Tokens of an inactive user answer
// 403 "User is inactive" on every authenticated endpoint.
func (s *Server) SetUserActive(name string, active bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.users {
		if u.name == name {
			u.active = active
			return nil
		}
	}
	return fmt.Errorf("influxv2: user %q not found", name)
}

// CreateAuthorization creates an active authorization in the org (created if needed),
// owned by the operator user, with the given permissions. Permission OrgIDs left
// empty stay global, as in 2.x.
func (s *Server) CreateAuthorization(orgName, description string, perms ...Permission) Authorization {
	orgID := s.CreateOrg(orgName)
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.addAuthLocked(orgID, s.operator.userID, description, true, perms)
	return a.public()
}

// WriteAuthorization creates an active authorization with read and write on one
// bucket (org and bucket created if needed), as a Telegraf token would have.
func (s *Server) WriteAuthorization(orgName, bucketName string) Authorization {
	bucketID := s.CreateBucket(orgName, bucketName)
	orgID := s.CreateOrg(orgName)
	res := Resource{Type: "buckets", ID: bucketID, OrgID: orgID}
	return s.CreateAuthorization(orgName, "write "+orgName+"/"+bucketName,
		Permission{Action: "read", Resource: res}, Permission{Action: "write", Resource: res})
}

// AllAccessAuthorization creates an active authorization with read and write on every
// resource type of the org and on its user, like `influx auth create --all-access`.
func (s *Server) AllAccessAuthorization(orgName string) Authorization {
	orgID := s.CreateOrg(orgName)
	s.mu.Lock()
	uid := s.operator.userID
	s.mu.Unlock()
	var ps []Permission
	for _, t := range resourceTypes {
		for _, a := range []string{"read", "write"} {
			switch t {
			case "orgs":
				ps = append(ps, Permission{Action: a, Resource: Resource{Type: t, ID: orgID}})
			case "users":
				ps = append(ps, Permission{Action: a, Resource: Resource{Type: t, OrgID: orgID}},
					Permission{Action: a, Resource: Resource{Type: t, ID: uid}})
			default:
				ps = append(ps, Permission{Action: a, Resource: Resource{Type: t, OrgID: orgID}})
			}
		}
	}
	return s.CreateAuthorization(orgName, "all access "+orgName, ps...)
}

// Authorization returns the current state of an authorization by ID.
func (s *Server) Authorization(id string) (Authorization, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.authByIDLocked(id)
	if a == nil {
		return Authorization{}, false
	}
	return a.public(), true
}

// SetActive activates or deactivates an authorization, like PATCH {"status":…}.
func (s *Server) SetActive(id string, active bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.authByIDLocked(id)
	if a == nil {
		return fmt.Errorf("influxv2: authorization %s not found", id)
	}
	a.active = active
	a.updated = time.Now().UTC()
	return nil
}

// DeleteAuthorization deletes an authorization; its token stops authenticating.
func (s *Server) DeleteAuthorization(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.deleteAuthLocked(id) {
		return fmt.Errorf("influxv2: authorization %s not found", id)
	}
	return nil
}

// IsActive reports whether the token belongs to an existing, active authorization.
func (s *Server) IsActive(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.byToken[token]
	return a != nil && a.active
}

// Authorizations lists every authorization, operator's included.
func (s *Server) Authorizations() []Authorization {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Authorization, 0, len(s.auths))
	for _, a := range s.auths {
		out = append(out, a.public())
	}
	return out
}

// Requests returns the requests answered so far, in the order their answers ended
// (a request cut by the client or by Close is recorded with Status 0).
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Violations returns the contract violations seen so far (empty without a Contract).
func (s *Server) Violations() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.violations...)
}

func (a *authorization) public() Authorization {
	return Authorization{
		ID: a.id, Token: a.token, OrgID: a.orgID, UserID: a.userID,
		Description: a.description, Active: a.active,
		Permissions: append([]Permission(nil), a.perms...),
	}
}

func (a *authorization) status() string {
	if a.active {
		return "active"
	}
	return "inactive"
}

// allowed is 2.x PermissionAllowed; an inactive authorization allows nothing.
func (a *authorization) allowed(p Permission) bool {
	if !a.active {
		return false
	}
	for _, held := range a.perms {
		if held.matches(p) {
			return true
		}
	}
	return false
}

func (s *Server) addAuthLocked(orgID, userID, desc string, active bool, perms []Permission) *authorization {
	now := time.Now().UTC()
	ps := make([]Permission, len(perms))
	for i, p := range perms {
		ps[i] = Permission{Action: p.Action, Resource: Resource{Type: p.Resource.Type, ID: p.Resource.ID, OrgID: p.Resource.OrgID}}
	}
	a := &authorization{
		id: newID(), token: newToken(), orgID: orgID, userID: userID, description: desc,
		active: active, perms: ps, created: now, updated: now,
	}
	s.auths = append(s.auths, a)
	s.byToken[a.token] = a
	return a
}

func (s *Server) deleteAuthLocked(id string) bool {
	for i, a := range s.auths {
		if a.id == id {
			delete(s.byToken, a.token)
			s.auths = append(s.auths[:i], s.auths[i+1:]...)
			return true
		}
	}
	return false
}

func (s *Server) authByIDLocked(id string) *authorization {
	for _, a := range s.auths {
		if a.id == id {
			return a
		}
	}
	return nil
}

// orgNamedLocked finds an org by name, or returns the 404 that 2.x answers
// for an unknown organization name on every endpoint taking `org`.
func (s *Server) orgNamedLocked(name string) (*org, *apiError) {
	if o := s.orgByNameLocked(name); o != nil {
		return o, nil
	}
	return nil, &apiError{codeNotFound, fmt.Sprintf("organization name %q not found", name)}
}

func (s *Server) orgByNameLocked(name string) *org {
	for _, o := range s.orgs {
		if o.name == name {
			return o
		}
	}
	return nil
}

func (s *Server) orgByIDLocked(id string) *org {
	for _, o := range s.orgs {
		if o.id == id {
			return o
		}
	}
	return nil
}

func (s *Server) userByIDLocked(id string) *user {
	for _, u := range s.users {
		if u.id == id {
			return u
		}
	}
	return nil
}

func (s *Server) bucketByIDLocked(id string) *bucket {
	for _, b := range s.buckets {
		if b.id == id {
			return b
		}
	}
	return nil
}

// newID returns a random non-zero 2.x ID: 16 lowercase hex characters.
func newID() string {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic("influxv2: crypto/rand: " + err.Error())
		}
		if b != [8]byte{} {
			return hex.EncodeToString(b[:])
		}
	}
}

// newToken returns a token shaped like a 2.x token: 64 random bytes, base64 URL
// encoding with padding, 88 characters.
func newToken() string {
	var b [64]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("influxv2: crypto/rand: " + err.Error())
	}
	return base64.URLEncoding.EncodeToString(b[:])
}

// fingerprint matches rotation.Fingerprint ("sha256:" + 12 hex digits) so recorded
// requests can be compared with what the library logs, without importing it.
func fingerprint(token string) string {
	if token == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(sum[:])[:12]
}

// validID is 2.x platform.ID decoding: 16 hex characters, not all zero.
func validID(s string) error {
	if len(s) != 16 {
		return errIDLength
	}
	b, err := hex.DecodeString(s)
	if err != nil || string(b) == "\x00\x00\x00\x00\x00\x00\x00\x00" {
		return errInvalidID
	}
	return nil
}

// Error codes of 2.x kit/platform/errors.
const (
	codeInvalid          = "invalid"
	codeUnauthorized     = "unauthorized"
	codeForbidden        = "forbidden"
	codeNotFound         = "not found"
	codeMethodNotAllowed = "method not allowed"
	codeTooLarge         = "request too large"
	codeInternal         = "internal error"
	codeTooManyRequests  = "too many requests"
	codeUnavailable      = "unavailable"
)

// apiError is a 2.x error: a code that fixes the status, and a message.
type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *apiError) Error() string { return e.Message }

var (
	errIDLength    = &apiError{codeInvalid, "id must have a length of 16 bytes"}
	errInvalidID   = &apiError{codeInvalid, "invalid ID"}
	errUnauthAcces = &apiError{codeUnauthorized, "unauthorized access"}
	// errInternal is what 2.x answers for an error that is not a platform error.
	errInternal = &apiError{codeInternal, "An internal error has occurred - check server logs"}
)

func statusOf(code string) int {
	switch code {
	case codeInvalid, "empty value":
		return http.StatusBadRequest
	case codeUnauthorized:
		return http.StatusUnauthorized
	case codeForbidden:
		return http.StatusForbidden
	case codeNotFound:
		return http.StatusNotFound
	case codeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case codeTooLarge:
		return http.StatusRequestEntityTooLarge
	case "unprocessable entity", "conflict":
		return http.StatusUnprocessableEntity
	case codeTooManyRequests:
		return http.StatusTooManyRequests
	case "not implemented":
		return http.StatusNotImplemented
	case codeUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// writeError answers like 2.x kithttp: JSON body, charset, X-Platform-Error-Code.
func writeError(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = &apiError{codeInternal, err.Error()}
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Platform-Error-Code", ae.Code)
	w.WriteHeader(statusOf(ae.Code))
	b, _ := json.Marshal(ae) // no trailing newline, like 2.x WriteErrorResponse
	_, _ = w.Write(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "\t")
	_ = enc.Encode(v)
}

// tokenFromHeader accepts "Token <t>" and "Bearer <t>", scheme case-insensitive,
// like 2.x http.GetToken.
func tokenFromHeader(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || tok == "" {
		return "", false
	}
	if !strings.EqualFold(scheme, "Token") && !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return tok, true
}
