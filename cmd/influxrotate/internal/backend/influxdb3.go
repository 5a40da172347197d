package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/influxrotate/influxrotate/rotation"
)

// InfluxDB 3 editions.
const (
	EditionCore       = "core"
	EditionEnterprise = "enterprise"
)

// V3OperatorToken is the name of InfluxDB 3's operator token, which this
// backend never deletes.
const V3OperatorToken = "_admin"

// DefaultProbeDatabase is where the verify probe of an admin token writes its
// empty body: InfluxDB 3 answers an empty write after authentication and
// without creating the database, so any name proves the token.
const DefaultProbeDatabase = "influxrotate_probe"

// V3Options configure the InfluxDB 3 backend.
type V3Options struct {
	// Edition is EditionCore (admin tokens only) or EditionEnterprise
	// (resource tokens with database permissions as well).
	Edition string
	// Expiry is the lifetime Create gives a new token, by credential name
	// (Label.Credential): max_age + grace + expiry_margin, so a token the
	// controller failed to delete still dies on its own. A credential
	// without an entry gets tokens that never expire.
	Expiry map[string]time.Duration
	// ProbeDatabase is probed for tokens that may write every database.
	// Default DefaultProbeDatabase.
	ProbeDatabase string
	// Now tells whether a token has expired. Default time.Now.
	Now func() time.Time
}

// V3 manages InfluxDB 3 tokens. A token is addressed by its name, which is
// Authorization.ID and Authorization.Description: the label goes into the
// name, so a token whose creation answer was lost is found by name. There is
// no inactive state (Capabilities) and the token is shown only by Create.
type V3 struct {
	opts Options
	v3   V3Options
	// api sends requests with the operator token: InfluxDB 3 takes the
	// "Token <t>" scheme the 2.x backend uses, and its v2-compatible write.
	api *V2
}

// NewV3 returns a backend for InfluxDB 3 at opts.URL.
func NewV3(opts Options, v3 V3Options) (*V3, error) {
	if v3.Edition != EditionCore && v3.Edition != EditionEnterprise {
		return nil, fmt.Errorf("influxdb3 edition %q: must be %q or %q", v3.Edition, EditionCore, EditionEnterprise)
	}
	for cred, d := range v3.Expiry {
		if d < time.Second {
			return nil, fmt.Errorf("influxdb3 expiry of credential %q: %v is less than a second", cred, d)
		}
	}
	if v3.ProbeDatabase == "" {
		v3.ProbeDatabase = DefaultProbeDatabase
	}
	if v3.Now == nil {
		v3.Now = time.Now
	}
	opts.defaults()
	return &V3{opts: opts, v3: v3, api: NewV2(opts)}, nil
}

// Capabilities implements Backend: no inactive state, expiring tokens.
func (v *V3) Capabilities() Capabilities { return Capabilities{Inactive: false, Expiry: true} }

// v3Row is one row of system.tokens as query_sql answers it in JSON.
type v3Row struct {
	TokenID     json.Number `json:"token_id"`
	Name        string      `json:"name"`
	CreatedAt   *string     `json:"created_at"`
	Expiry      *string     `json:"expiry"`
	Permissions *string     `json:"permissions"`
}

// tokensQuery is the one statement the backend sends: system.tokens is
// InfluxDB 3's only listing of tokens.
const tokensQuery = "SELECT * FROM system.tokens"

// tokens lists every token, the operator token and expired ones included.
func (v *V3) tokens(ctx context.Context) ([]*Authorization, error) {
	var rows []v3Row
	q := url.Values{"db": {"_internal"}, "q": {tokensQuery}}
	if err := v.api.call(ctx, "list tokens", http.MethodGet, "/api/v3/query_sql?"+q.Encode(), nil, &rows); err != nil {
		return nil, err
	}
	now := v.v3.Now()
	// The errors below quote the server's names, times and permissions,
	// which a hostile server can fill with a token it was sent.
	bad := func(err error) error { return Permanent(errors.New(v.opts.Scrubber.Scrub(err.Error()))) }
	out := make([]*Authorization, 0, len(rows))
	for _, r := range rows {
		a := &Authorization{ID: r.Name, Description: r.Name, Active: true}
		var err error
		if r.CreatedAt != nil {
			if a.CreatedAt, err = parseV3Time(*r.CreatedAt); err != nil {
				return nil, bad(fmt.Errorf("list tokens: token %q: created_at: %w", r.Name, err))
			}
		}
		if r.Expiry != nil {
			if a.ExpiresAt, err = parseV3Time(*r.Expiry); err != nil {
				return nil, bad(fmt.Errorf("list tokens: token %q: expiry: %w", r.Name, err))
			}
			a.Active = now.Before(a.ExpiresAt)
		}
		if r.Permissions != nil {
			if a.Permissions, err = parseV3Permissions(*r.Permissions); err != nil {
				return nil, bad(fmt.Errorf("list tokens: token %q: %w", r.Name, err))
			}
		}
		out = append(out, a)
	}
	return out, nil
}

// parseV3Time reads a timestamp of InfluxDB 3's JSON output (UTC without a
// zone) or of a token API answer (RFC 3339).
func parseV3Time(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	return time.ParseInLocation("2006-01-02T15:04:05.999999999", s, time.UTC)
}

// adminPermission is how an admin token's "*:*:*" is held in state.
var adminPermission = Permission{Action: "*", Type: "*", Name: "*"}

// parseV3Permissions reads the permissions column: "*:*:*" for admin tokens,
// else RESOURCE_TYPE:NAMES:ACTIONS such as "db:telemetry,metrics:read,write",
// several joined with ";". Each name and action becomes one permission, so
// the set can be compared and given again exactly. Some third-party notes
// describe the column as a JSON array of such entries
// (["db:telemetry:read","db:telemetry:write"]); that form is read too.
func parseV3Permissions(s string) ([]Permission, error) {
	entries := strings.Split(s, ";")
	if strings.HasPrefix(strings.TrimSpace(s), "[") {
		entries = nil
		if err := json.Unmarshal([]byte(s), &entries); err != nil {
			return nil, fmt.Errorf("permissions %q: %w", s, err)
		}
		if len(entries) == 0 {
			return nil, fmt.Errorf("permissions %q: no entry", s)
		}
	}
	if len(entries) == 1 && strings.TrimSpace(entries[0]) == "*:*:*" {
		return []Permission{adminPermission}, nil
	}
	var out []Permission
	for _, entry := range entries {
		parts := strings.Split(strings.TrimSpace(entry), ":")
		if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" || parts[0] == "*" {
			return nil, fmt.Errorf("permissions %q: want RESOURCE_TYPE:NAMES:ACTIONS", s)
		}
		for _, name := range strings.Split(parts[1], ",") {
			for _, action := range strings.Split(parts[2], ",") {
				out = append(out, Permission{Action: action, Type: parts[0], Name: name})
			}
		}
	}
	return out, nil
}

// Get implements Backend; id is the token name.
func (v *V3) Get(ctx context.Context, id string) (*Authorization, error) {
	list, err := v.tokens(ctx)
	if err != nil {
		return nil, err
	}
	for _, a := range list {
		if a.ID == id {
			return a, nil
		}
	}
	return nil, fmt.Errorf("token %q: %w", id, ErrNotFound)
}

// List implements Backend. InfluxDB 3 has no organisations: every token.
func (v *V3) List(ctx context.Context, _ string) ([]*Authorization, error) {
	return v.tokens(ctx)
}

// LabelOf implements Backend: the label is in the token name.
func (v *V3) LabelOf(a *Authorization) (Label, bool) { return parseLabel(a.Description) }

// v3Create is the body of both creation endpoints.
type v3Create struct {
	TokenName   string         `json:"token_name"`
	Permissions []v3Permission `json:"permissions,omitempty"`
	ExpirySecs  int64          `json:"expiry_secs,omitempty"`
}

type v3Permission struct {
	ResourceType  string   `json:"resource_type"`
	ResourceNames []string `json:"resource_names"`
	Actions       []string `json:"actions"`
}

// v3Created is the answer of a creation, the only place the token appears.
type v3Created struct {
	Name      string     `json:"name"`
	Token     string     `json:"token"`
	CreatedAt *time.Time `json:"created_at"`
	Expiry    *time.Time `json:"expiry"`
}

// Create implements Backend. perms decide the kind of token: the admin
// permission ("*:*:*") makes a named admin token (Core and Enterprise);
// anything else an Enterprise resource token with exactly those permissions.
//
// The token is named after the label. When the name exists already (409) a
// create whose answer was lost made it, and that answer was the only copy of
// the token: the token is deleted and created again. The POST is retried
// like every call, so a lost answer ends in exactly that 409.
func (v *V3) Create(ctx context.Context, _ string, label Label, perms []Permission) (*Authorization, error) {
	body := v3Create{TokenName: describe(label)}
	if d := v.v3.Expiry[label.Credential]; d > 0 {
		body.ExpirySecs = int64((d + time.Second - 1) / time.Second)
	}
	path := "/api/v3/configure/token/named_admin"
	switch {
	case slices.Equal(perms, []Permission{adminPermission}):
	case v.v3.Edition == EditionCore:
		return nil, fmt.Errorf("create token %q: InfluxDB 3 Core has admin tokens only, not %s", body.TokenName, describePermissions(perms))
	default:
		var err error
		if body.Permissions, err = groupV3Permissions(perms); err != nil {
			return nil, fmt.Errorf("create token %q: %w", body.TokenName, err)
		}
		path = "/api/v3/enterprise/configure/token"
	}
	payload, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	op := "create token " + body.TokenName
	var created v3Created
	err = v.opts.Retry.Do(ctx, v.opts.Logger, op, func(ctx context.Context) error {
		post := func() error {
			created = v3Created{}
			return v.api.once(ctx, op, http.MethodPost, path, payload, &created,
				"Token "+v.opts.OperatorToken, "application/json")
		}
		err := post()
		if StatusOf(err) == http.StatusConflict {
			v.opts.Logger.Warn("token exists already: an earlier create's answer, the only copy of the token, was lost; deleting it and creating it again",
				"token_name", body.TokenName)
			if err := v.Delete(ctx, body.TokenName); err != nil {
				return err
			}
			err = post()
		}
		return err
	})
	v.opts.Scrubber.Add(created.Token)
	if err != nil {
		return nil, err
	}
	if created.Token == "" || created.Name != body.TokenName {
		return nil, fmt.Errorf("%s: the answer lacks the token or names another one (%q)", op, v.opts.Scrubber.Scrub(created.Name))
	}
	a := &Authorization{ID: created.Name, Token: created.Token, Description: created.Name, Active: true,
		Permissions: slices.Clone(perms)}
	if created.CreatedAt != nil {
		a.CreatedAt = created.CreatedAt.UTC()
	}
	if created.Expiry != nil {
		a.ExpiresAt = created.Expiry.UTC()
	}
	if body.ExpirySecs > 0 && a.ExpiresAt.IsZero() {
		return nil, fmt.Errorf("%s: asked for an expiry of %ds but the token has none; delete %q or the server will keep it",
			op, body.ExpirySecs, created.Name)
	}
	return a, nil
}

// groupV3Permissions turns per-name, per-action permissions back into the
// API's {resource_type, resource_names, actions}: names with the same actions
// share an entry, so the token gets exactly the pairs asked for, never more.
func groupV3Permissions(perms []Permission) ([]v3Permission, error) {
	type key struct{ typ, name string }
	actions := map[key][]string{}
	var order []key
	for _, p := range perms {
		switch {
		case p.Type != "db" && p.Type != "system":
			return nil, fmt.Errorf("permission %s:%s:%s: a resource token takes db and system permissions only", p.Type, p.Name, p.Action)
		case p.Name == "" || p.Action == "" || p.Name == "*" && p.Type == "system":
			return nil, fmt.Errorf("permission %s:%s:%s is incomplete", p.Type, p.Name, p.Action)
		}
		k := key{p.Type, p.Name}
		if _, ok := actions[k]; !ok {
			order = append(order, k)
		}
		if !slices.Contains(actions[k], p.Action) {
			actions[k] = append(actions[k], p.Action)
		}
	}
	if len(order) == 0 {
		return nil, errors.New("no permissions: a resource token needs at least one")
	}
	var out []v3Permission
	for _, k := range order {
		acts := slices.Sorted(slices.Values(actions[k]))
		i := slices.IndexFunc(out, func(p v3Permission) bool {
			return p.ResourceType == k.typ && slices.Equal(p.Actions, acts)
		})
		if i < 0 {
			out = append(out, v3Permission{ResourceType: k.typ, Actions: acts})
			i = len(out) - 1
		}
		out[i].ResourceNames = append(out[i].ResourceNames, k.name)
	}
	return out, nil
}

func describePermissions(perms []Permission) string {
	parts := make([]string, len(perms))
	for i, p := range perms {
		parts[i] = p.Type + ":" + p.Name + ":" + p.Action
	}
	return strings.Join(parts, ", ")
}

// SetActive implements Backend. InfluxDB 3 has no inactive state:
// deactivating is ErrNoInactiveState, activating succeeds while the token
// exists and has not expired (a rollback before the delete).
func (v *V3) SetActive(ctx context.Context, a *Authorization, active bool) error {
	if !active {
		return fmt.Errorf("deactivate token %q: %w", a.ID, ErrNoInactiveState)
	}
	cur, err := v.Get(ctx, a.ID)
	if err != nil {
		return err
	}
	if !cur.Active {
		return fmt.Errorf("token %q expired at %s and cannot be made valid again", a.ID, cur.ExpiresAt.Format(time.RFC3339))
	}
	return nil
}

// Delete implements Backend: a token already gone counts as deleted; the
// operator token is refused here, before InfluxDB 3 would refuse it (405).
func (v *V3) Delete(ctx context.Context, id string) error {
	if id == V3OperatorToken {
		return Permanent(fmt.Errorf("delete token %q: refusing to delete the operator token", id))
	}
	err := v.api.call(ctx, "delete token "+id, http.MethodDelete,
		"/api/v3/configure/token?"+url.Values{"token_name": {id}}.Encode(), nil, nil)
	if gone(err) {
		return nil
	}
	return err
}

// BucketPermissions implements Backend: buckets are databases, and only an
// Enterprise resource token can be limited to them.
func (v *V3) BucketPermissions(_ context.Context, _ string, buckets []string) ([]Permission, error) {
	if v.v3.Edition == EditionCore {
		return nil, errors.New("buckets: InfluxDB 3 Core tokens are admin tokens and cannot be limited to databases")
	}
	perms := make([]Permission, 0, len(buckets))
	for _, b := range buckets {
		perms = append(perms, Permission{Action: "write", Type: "db", Name: b})
	}
	return perms, nil
}

// ProbeTargets implements Backend: the databases a may write, or
// ProbeDatabase for a token that may write every database.
func (v *V3) ProbeTargets(_ context.Context, a *Authorization) ([]rotation.Target, error) {
	var out []rotation.Target
	for _, p := range a.Permissions {
		switch {
		case p == adminPermission, p.Type == "db" && p.Action == "write" && p.Name == "*":
			return []rotation.Target{{Bucket: v.v3.ProbeDatabase}}, nil
		case p.Type == "db" && p.Action == "write":
			if t := (rotation.Target{Bucket: p.Name}); !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
	}
	return out, nil
}

// WriteLines implements Backend through the v2-compatible write, where the
// bucket is the database and org is ignored.
func (v *V3) WriteLines(ctx context.Context, _, bucket, token string, lines []byte) error {
	return v.api.WriteLines(ctx, "", bucket, token, lines)
}
