package influxv2

import (
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Edition selects an InfluxDB 3 personality (Options.InfluxDB3).
type Edition string

// InfluxDB 3 editions. Core has admin tokens only; Enterprise adds resource tokens
// with database permissions, which can be refused with 403.
const (
	Core       Edition = "core"
	Enterprise Edition = "enterprise"
)

// V3Version is what an InfluxDB 3 server reports on /ping.
const V3Version = "3.9.6"

// V3OperatorName is the name of the operator token, which the API never deletes.
const V3OperatorName = "_admin"

// v3MaxBody is InfluxDB 3's default --max-http-request-size: 10 MiB, after
// decompression.
const v3MaxBody = 10 << 20

// Messages of InfluxDB 3 (influxdb3_server/src/http.rs, tag v3.9.6).
const (
	v3Unauthenticated = "the request was not authenticated"
	v3Unauthorized    = "unauthorized to perform requested action with the token"
	v3Malformed       = "Authorization header was malformed, the request was not in the form of " +
		"'Authorization: <auth-scheme> <token>', supported auth-schemes are Bearer, Token and Basic"
	v3EmptyWrite = "incoming write was empty"
)

// V3Permission is an Enterprise resource token permission: actions ("read",
// "write") on named resources ("*" for all) of one type ("db" or "system").
type V3Permission struct {
	ResourceType  string   `json:"resource_type"`
	ResourceNames []string `json:"resource_names"`
	Actions       []string `json:"actions"`
}

// String is the form of the permissions column of system.tokens, e.g.
// "db:telemetry,metrics:read,write".
func (p V3Permission) String() string {
	return p.ResourceType + ":" + strings.Join(p.ResourceNames, ",") + ":" + strings.Join(p.Actions, ",")
}

// V3Token is an InfluxDB 3 token as the test helpers return it. It prints without
// its token.
type V3Token struct {
	ID          int64
	Name        string
	Token       string
	Admin       bool
	Permissions []V3Permission // nil for admin tokens
	CreatedAt   time.Time
	ExpiresAt   time.Time // zero: never
}

// String keeps the token out of %v and %s.
func (t V3Token) String() string {
	return fmt.Sprintf("token %d %q (%s)", t.ID, t.Name, fingerprint(t.Token))
}

// GoString keeps the token out of %#v.
func (t V3Token) GoString() string { return t.String() }

// LogValue keeps the token out of slog output.
func (t V3Token) LogValue() slog.Value {
	return slog.GroupValue(slog.Int64("id", t.ID), slog.String("name", t.Name), slog.String("token", fingerprint(t.Token)))
}

type v3Token struct {
	id          int64
	name, token string
	admin       bool
	perms       []V3Permission
	created     time.Time
	expiry      time.Time // zero: never
	createdBy   int64     // 0: created without a token (the first operator token)
	// inactiveFor is how many more requests the token is refused with 401
	// before it is accepted (DelayV3Activation).
	inactiveFor int
}

func (t *v3Token) public() V3Token {
	out := V3Token{ID: t.id, Name: t.name, Token: t.token, Admin: t.admin, CreatedAt: t.created, ExpiresAt: t.expiry}
	for _, p := range t.perms {
		out.Permissions = append(out.Permissions, V3Permission{ResourceType: p.ResourceType,
			ResourceNames: append([]string(nil), p.ResourceNames...), Actions: append([]string(nil), p.Actions...)})
	}
	return out
}

func (t *v3Token) expired(now time.Time) bool {
	return !t.expiry.IsZero() && !now.Before(t.expiry)
}

// permissionString is the permissions column of system.tokens: "*:*:*" for admin
// tokens, else each permission as RESOURCE_TYPE:NAMES:ACTIONS. Several permissions
// are joined with ";" (the test server's choice: the sources seen show one).
func (t *v3Token) permissionString() string {
	if t.admin {
		return "*:*:*"
	}
	parts := make([]string, len(t.perms))
	for i, p := range t.perms {
		parts[i] = p.String()
	}
	return strings.Join(parts, ";")
}

// allows reports whether the token may do action on the named resource.
func (t *v3Token) allows(resourceType, name, action string) bool {
	if t.admin {
		return true
	}
	for _, p := range t.perms {
		if p.ResourceType != resourceType {
			continue
		}
		if (contains(p.ResourceNames, name) || contains(p.ResourceNames, "*")) && contains(p.Actions, action) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// v3State is the token store of an InfluxDB 3 server, guarded by Server.mu.
type v3State struct {
	edition Edition
	// activation is how many requests a token created through the API is
	// refused before it is accepted (DelayV3Activation).
	activation int
	lastID     int64
	tokens     []*v3Token
	byToken    map[string]*v3Token
	// databases are the databases writes created.
	databases map[string]bool
}

func newV3State(e Edition) *v3State {
	return &v3State{edition: e, byToken: map[string]*v3Token{}, databases: map[string]bool{}}
}

// now is the server's clock (Options.Now), in UTC.
func (s *Server) now() time.Time {
	if s.opts.Now != nil {
		return s.opts.Now().UTC()
	}
	return time.Now().UTC()
}

// v3Error is an InfluxDB 3 error answer: {"error": msg}, or msg as plain text.
type v3Error struct {
	status int
	msg    string
	plain  bool
}

func (e *v3Error) Error() string { return e.msg }

func writeV3Error(w http.ResponseWriter, e *v3Error) {
	if e.plain {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(e.status)
		_, _ = w.Write([]byte(e.msg))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.status)
	b, _ := json.Marshal(map[string]string{"error": e.msg})
	_, _ = w.Write(b)
}

// newV3TokenValue returns a token shaped like InfluxDB 3's: "apiv3_" and 64 random
// bytes in base64 URL encoding without padding, 92 characters.
func newV3TokenValue() string {
	var b [64]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("influxv2: crypto/rand: " + err.Error())
	}
	return "apiv3_" + base64.RawURLEncoding.EncodeToString(b[:])
}

// v3Hash is the stored form of a token: InfluxDB 3 keeps its SHA-512 only.
func v3Hash(token string) string {
	sum := sha512.Sum512([]byte(token))
	return hex.EncodeToString(sum[:])
}

// v3TokenFromHeader parses an Authorization header like InfluxDB 3: exactly
// "Bearer <t>", "Token <t>" or "Basic base64(user:t)", scheme case-sensitive.
// present is false without a header; malformed is true for anything else.
func v3TokenFromHeader(h string) (tok string, present, malformed bool) {
	if h == "" {
		return "", false, false
	}
	scheme, rest, ok := strings.Cut(h, " ")
	if !ok || rest == "" || strings.Contains(rest, " ") {
		return "", true, true
	}
	switch scheme {
	case "Bearer", "Token":
		return rest, true, false
	case "Basic":
		raw, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return "", true, true
		}
		_, t, ok := strings.Cut(string(raw), ":")
		if !ok || t == "" {
			return "", true, true
		}
		return t, true, false
	}
	return "", true, true
}

// v3Identify is the request record's fingerprint and token ID for a header.
func (s *Server) v3Identify(h string) (fp, id string) {
	tok, _, malformed := v3TokenFromHeader(h)
	if tok == "" || malformed {
		return "", ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.v3.byToken[tok]; t != nil {
		id = strconv.FormatInt(t.id, 10)
	}
	return fingerprint(tok), id
}

// v3Authenticate is InfluxDB 3's authenticator: a malformed header is 400, a
// missing, unknown, deleted or expired token 401.
func (s *Server) v3Authenticate(r *http.Request) (*v3Token, *v3Error) {
	tok, present, malformed := v3TokenFromHeader(r.Header.Get("Authorization"))
	if malformed {
		return nil, &v3Error{status: http.StatusBadRequest, msg: v3Malformed}
	}
	if !present {
		return nil, &v3Error{status: http.StatusUnauthorized, msg: v3Unauthenticated}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.v3.byToken[tok]
	if t == nil || t.expired(s.now()) {
		return nil, &v3Error{status: http.StatusUnauthorized, msg: v3Unauthenticated}
	}
	if t.inactiveFor > 0 {
		t.inactiveFor--
		return nil, &v3Error{status: http.StatusUnauthorized, msg: v3Unauthenticated}
	}
	return t, nil
}

// DelayV3Activation makes every token created through the API from now on
// answer 401 to its first n requests, as InfluxDB Cloud Dedicated and
// Clustered warn a new token may for seconds to minutes; 0 ends it. Tokens
// made by the test helpers are accepted at once.
func (s *Server) DelayV3Activation(n int) {
	s.mustV3("DelayV3Activation")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.v3.activation = n
}

// addV3TokenLocked stores a new token; a name in use is 409 as in InfluxDB 3.
func (s *Server) addV3TokenLocked(name string, admin bool, perms []V3Permission, expiry time.Duration, createdBy int64) (*v3Token, *v3Error) {
	if name == "" {
		return nil, &v3Error{status: http.StatusBadRequest, msg: "token name cannot be empty"}
	}
	for _, t := range s.v3.tokens {
		if t.name == name {
			return nil, &v3Error{status: http.StatusConflict, msg: "token name already exists, " + name}
		}
	}
	now := s.now()
	s.v3.lastID++
	t := &v3Token{id: s.v3.lastID, name: name, token: newV3TokenValue(), admin: admin, perms: perms,
		created: now, createdBy: createdBy}
	if expiry > 0 {
		t.expiry = now.Add(expiry)
	}
	if createdBy != 0 {
		t.inactiveFor = s.v3.activation
	}
	s.v3.tokens = append(s.v3.tokens, t)
	s.v3.byToken[t.token] = t
	return t, nil
}

func (s *Server) v3TokenNamedLocked(name string) *v3Token {
	for _, t := range s.v3.tokens {
		if t.name == name {
			return t
		}
	}
	return nil
}

// Edition is the InfluxDB 3 personality (Options.InfluxDB3), "" for 2.x.
func (s *Server) Edition() Edition {
	if s.v3 == nil {
		return ""
	}
	return s.v3.edition
}

func (s *Server) mustV3(op string) {
	if s.v3 == nil {
		panic("influxv2: " + op + " needs a server with Options.InfluxDB3")
	}
}

// V3OperatorToken returns the operator token `_admin`, creating it if there is
// none yet (like `influxdb3 create token --admin`).
func (s *Server) V3OperatorToken() V3Token {
	s.mustV3("V3OperatorToken")
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.v3TokenNamedLocked(V3OperatorName); t != nil {
		return t.public()
	}
	t, _ := s.addV3TokenLocked(V3OperatorName, true, nil, 0, 0)
	return t.public()
}

// CreateV3AdminToken creates a named admin token, as POST
// /api/v3/configure/token/named_admin does; expiry 0 is none.
func (s *Server) CreateV3AdminToken(name string, expiry time.Duration) (V3Token, error) {
	s.mustV3("CreateV3AdminToken")
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.addV3TokenLocked(name, true, nil, expiry, 0)
	if err != nil {
		return V3Token{}, err
	}
	return t.public(), nil
}

// CreateV3ResourceToken creates an Enterprise resource token with perms, as POST
// /api/v3/enterprise/configure/token does; expiry 0 is none.
func (s *Server) CreateV3ResourceToken(name string, expiry time.Duration, perms ...V3Permission) (V3Token, error) {
	s.mustV3("CreateV3ResourceToken")
	if s.v3.edition != Enterprise {
		return V3Token{}, fmt.Errorf("influxv2: resource tokens need InfluxDB 3 Enterprise")
	}
	if err := validateV3Permissions(perms); err != nil {
		return V3Token{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.addV3TokenLocked(name, false, clonePermissions(perms), expiry, 0)
	if err != nil {
		return V3Token{}, err
	}
	return t.public(), nil
}

// V3Tokens lists every token, expired ones included, oldest first.
func (s *Server) V3Tokens() []V3Token {
	s.mustV3("V3Tokens")
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]V3Token, 0, len(s.v3.tokens))
	for _, t := range s.v3.tokens {
		out = append(out, t.public())
	}
	return out
}

// DeleteV3Token deletes a token by name, as DELETE /api/v3/configure/token does;
// the operator token cannot be deleted.
func (s *Server) DeleteV3Token(name string) error {
	s.mustV3("DeleteV3Token")
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.deleteV3TokenLocked(name); err != nil {
		return err
	}
	return nil
}

func (s *Server) deleteV3TokenLocked(name string) *v3Error {
	if name == V3OperatorName {
		return &v3Error{status: http.StatusMethodNotAllowed, msg: "cannot delete operator token"}
	}
	for i, t := range s.v3.tokens {
		if t.name == name {
			delete(s.v3.byToken, t.token)
			s.v3.tokens = append(s.v3.tokens[:i], s.v3.tokens[i+1:]...)
			return nil
		}
	}
	return &v3Error{status: http.StatusNotFound, msg: "token not found"}
}

func clonePermissions(ps []V3Permission) []V3Permission {
	out := make([]V3Permission, len(ps))
	for i, p := range ps {
		out[i] = V3Permission{ResourceType: p.ResourceType, ResourceNames: append([]string(nil), p.ResourceNames...),
			Actions: append([]string(nil), p.Actions...)}
	}
	return out
}

// validateV3Permissions checks a resource token's permissions like the Enterprise
// API: at least one; "db" (any names) or "system" (health, metrics, ping; read);
// actions read and write.
func validateV3Permissions(perms []V3Permission) *v3Error {
	bad := func(msg string) *v3Error { return &v3Error{status: http.StatusBadRequest, msg: msg} }
	if len(perms) == 0 {
		return bad("permissions cannot be empty")
	}
	for _, p := range perms {
		if len(p.ResourceNames) == 0 || len(p.Actions) == 0 {
			return bad("permission needs resource names and actions")
		}
		for _, n := range p.ResourceNames {
			if n == "" {
				return bad("empty resource name")
			}
		}
		switch p.ResourceType {
		case "db":
			for _, a := range p.Actions {
				if a != "read" && a != "write" {
					return bad(fmt.Sprintf("invalid action %q for resource type db", a))
				}
			}
		case "system":
			for _, n := range p.ResourceNames {
				if n != "health" && n != "metrics" && n != "ping" && n != "*" {
					return bad(fmt.Sprintf("invalid system resource %q", n))
				}
			}
			for _, a := range p.Actions {
				if a != "read" {
					return bad(fmt.Sprintf("invalid action %q for resource type system", a))
				}
			}
		default:
			return bad(fmt.Sprintf("invalid resource type %q", p.ResourceType))
		}
	}
	return nil
}

// ManualClock is a clock for Options.Now that moves only when told, so a test
// can make a token expire without waiting.
type ManualClock struct {
	mu sync.Mutex
	t  time.Time
}

// NewManualClock returns a clock that reads t.
func NewManualClock(t time.Time) *ManualClock { return &ManualClock{t: t} }

// Now is the clock's time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
