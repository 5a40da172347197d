package backend

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/influxrotate/influxrotate/rotation"
)

// V1 manages InfluxDB 1.8+ users as tokens "user:password": one user per
// credential generation, named <description>_ir<rotation id>, created with
// the grants of the current user. Deactivating revokes the user's grants on
// each database (1.x has no disabled state); deleting drops the user.
type V1 struct {
	opts Options
	base string
	user string
	pass string
}

// NewV1 returns a backend for InfluxDB 1.x; the operator token is
// "admin:password".
func NewV1(opts Options) (*V1, error) {
	opts.defaults()
	user, pass, ok := strings.Cut(opts.OperatorToken, ":")
	if !ok || user == "" {
		return nil, errors.New("operator_token_file: an influxdb1 operator token is \"user:password\"")
	}
	return &V1{opts: opts, base: strings.TrimRight(opts.URL, "/"), user: user, pass: pass}, nil
}

// queryAnswer is the JSON answer of InfluxQL /query: 1.x's own, and that
// of the v1 compatibility API of 2.x and 3.x.
type queryAnswer struct {
	Results []struct {
		Series []struct {
			Name    string            `json:"name"`
			Tags    map[string]string `json:"tags"`
			Columns []string          `json:"columns"`
			Values  [][]any           `json:"values"`
		} `json:"series"`
		Error string `json:"error"`
	} `json:"results"`
	Error string `json:"error"`
}

// query runs InfluxQL statements. Error texts are scrubbed of every token
// the Scrubber holds (Create registers a new user's token before its CREATE
// USER statement, which carries the password).
func (v *V1) query(ctx context.Context, op, q string) (*queryAnswer, error) {
	var res *queryAnswer
	err := v.opts.Retry.Do(ctx, v.opts.Logger, op, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.base+"/query",
			strings.NewReader(url.Values{"q": {q}}.Encode()))
		if err != nil {
			return Permanent(err)
		}
		req.SetBasicAuth(v.user, v.pass)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("User-Agent", v.opts.UserAgent)
		data, err := exchange(v.opts.Client, req, op, v.opts.Scrubber)
		if err != nil {
			return err
		}
		var r queryAnswer
		if err := json.Unmarshal(data, &r); err != nil {
			return Permanent(fmt.Errorf("%s: decoding answer: %w", op, err))
		}
		if r.Error != "" {
			return Permanent(fmt.Errorf("%s: %s", op, v.opts.Scrubber.Scrub(r.Error)))
		}
		for _, s := range r.Results {
			if s.Error != "" {
				return Permanent(&HTTPError{Op: op, Status: http.StatusOK, Message: v.opts.Scrubber.Scrub(s.Error)})
			}
		}
		res = &r
		return nil
	})
	return res, err
}

func quoteIdent(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func quoteString(s string) string {
	return `'` + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + `'`
}

func (v *V1) users(ctx context.Context) ([]string, error) {
	res, err := v.query(ctx, "show users", "SHOW USERS")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, r := range res.Results {
		for _, s := range r.Series {
			for _, row := range s.Values {
				if len(row) > 0 {
					if name, ok := row[0].(string); ok {
						names = append(names, name)
					}
				}
			}
		}
	}
	return names, nil
}

func (v *V1) grants(ctx context.Context, user string) ([]Permission, error) {
	res, err := v.query(ctx, "show grants for "+user, "SHOW GRANTS FOR "+quoteIdent(user))
	if err != nil {
		return nil, notFound(err, "user", user)
	}
	var perms []Permission
	for _, r := range res.Results {
		for _, s := range r.Series {
			for _, row := range s.Values {
				if len(row) < 2 {
					continue
				}
				db, _ := row[0].(string)
				priv, _ := row[1].(string)
				var action string
				switch strings.ToUpper(priv) {
				case "WRITE":
					action = "write"
				case "READ":
					action = "read"
				case "ALL PRIVILEGES", "ALL":
					action = "all"
				default:
					continue // NO PRIVILEGES
				}
				perms = append(perms, Permission{Action: action, Type: "database", Name: db})
			}
		}
	}
	return perms, nil
}

// Get implements Backend. A user without grants is reported inactive.
func (v *V1) Get(ctx context.Context, id string) (*Authorization, error) {
	names, err := v.users(ctx)
	if err != nil {
		return nil, err
	}
	found := false
	for _, n := range names {
		found = found || n == id
	}
	if !found {
		return nil, fmt.Errorf("user %s: %w", id, ErrNotFound)
	}
	perms, err := v.grants(ctx, id)
	if err != nil {
		return nil, err
	}
	return &Authorization{ID: id, Description: id, Active: len(perms) > 0, Permissions: perms}, nil
}

// List implements Backend; org is ignored.
func (v *V1) List(ctx context.Context, _ string) ([]*Authorization, error) {
	names, err := v.users(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*Authorization, 0, len(names))
	for _, n := range names {
		perms, err := v.grants(ctx, n)
		if errors.Is(err, ErrNotFound) {
			continue // dropped meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, &Authorization{ID: n, Description: n, Active: len(perms) > 0, Permissions: perms})
	}
	return out, nil
}

var v1LabelRE = regexp.MustCompile(`^(.+)_ir([0-9a-z]+)$`)

// LabelOf implements Backend. The credential name is not in a 1.x user
// name; the description (user name prefix) identifies the credential.
func (v *V1) LabelOf(a *Authorization) (Label, bool) {
	m := v1LabelRE.FindStringSubmatch(a.ID)
	if m == nil {
		return Label{}, false
	}
	return Label{Description: m[1], RotationID: m[2]}, true
}

// UserName is the user made for a label.
func UserName(l Label) string { return l.Description + "_ir" + l.RotationID }

func privilege(action string) (string, error) {
	switch action {
	case "write":
		return "WRITE", nil
	case "read":
		return "READ", nil
	case "all":
		return "ALL", nil
	}
	return "", fmt.Errorf("permission action %q has no InfluxDB 1.x privilege", action)
}

// Create implements Backend.
func (v *V1) Create(ctx context.Context, _ string, label Label, perms []Permission) (*Authorization, error) {
	name := UserName(label)
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	pass := base64.RawURLEncoding.EncodeToString(raw)
	token := name + ":" + pass
	v.opts.Scrubber.Add(token)
	// CREATE USER with the same password is idempotent in 1.x, so a retried
	// statement after a lost answer does no harm.
	if _, err := v.query(ctx, "create user "+name,
		"CREATE USER "+quoteIdent(name)+" WITH PASSWORD "+quoteString(pass)); err != nil {
		return nil, err
	}
	if err := v.grant(ctx, name, perms); err != nil {
		_ = v.Delete(context.WithoutCancel(ctx), name)
		return nil, err
	}
	return &Authorization{ID: name, Token: token, Description: name, Active: true, Permissions: perms}, nil
}

func (v *V1) grant(ctx context.Context, user string, perms []Permission) error {
	for _, p := range perms {
		priv, err := privilege(p.Action)
		if err != nil {
			return err
		}
		if _, err := v.query(ctx, "grant "+priv+" on "+p.Name+" to "+user,
			"GRANT "+priv+" ON "+quoteIdent(p.Name)+" TO "+quoteIdent(user)); err != nil {
			return err
		}
	}
	return nil
}

// SetActive implements Backend: deactivation revokes every grant of a's
// permissions (REVOKE ALL PRIVILEGES ON db FROM user) and admin rights
// (REVOKE ALL PRIVILEGES FROM user); activation grants the permissions again.
func (v *V1) SetActive(ctx context.Context, a *Authorization, active bool) error {
	if _, err := v.Get(ctx, a.ID); err != nil {
		return err
	}
	if active {
		return v.grant(ctx, a.ID, a.Permissions)
	}
	done := map[string]bool{}
	for _, p := range a.Permissions {
		if done[p.Name] {
			continue
		}
		done[p.Name] = true
		if _, err := v.query(ctx, "revoke on "+p.Name+" from "+a.ID,
			"REVOKE ALL PRIVILEGES ON "+quoteIdent(p.Name)+" FROM "+quoteIdent(a.ID)); err != nil {
			return err
		}
	}
	// And admin rights, should the user have had them: a deactivated user
	// may do nothing. A rollback re-grants the database permissions only.
	_, err := v.query(ctx, "revoke admin from "+a.ID, "REVOKE ALL PRIVILEGES FROM "+quoteIdent(a.ID))
	return err
}

// Delete implements Backend.
func (v *V1) Delete(ctx context.Context, id string) error {
	_, err := v.query(ctx, "drop user "+id, "DROP USER "+quoteIdent(id))
	if gone(err) {
		return nil
	}
	return err
}

// BucketPermissions implements Backend: a bucket is "db" or "db/rp".
func (v *V1) BucketPermissions(_ context.Context, _ string, buckets []string) ([]Permission, error) {
	var perms []Permission
	for _, b := range buckets {
		db, _, _ := strings.Cut(b, "/")
		perms = append(perms, Permission{Action: "write", Type: "database", Name: db})
	}
	return perms, nil
}

// ProbeTargets implements Backend.
func (v *V1) ProbeTargets(_ context.Context, a *Authorization) ([]rotation.Target, error) {
	var out []rotation.Target
	for _, p := range a.Permissions {
		if p.Action == "write" || p.Action == "all" {
			out = append(out, rotation.Target{Bucket: p.Name})
		}
	}
	return out, nil
}

// Capabilities implements Backend: revoking a user's grants is its inactive state.
func (v *V1) Capabilities() Capabilities { return Capabilities{Inactive: true} }

// WriteLines implements Backend through the v2-compatible write endpoint.
func (v *V1) WriteLines(ctx context.Context, _, bucket, token string, lines []byte) error {
	token = cmp.Or(token, v.user+":"+v.pass)
	v.opts.Scrubber.Add(token)
	w := &V2{opts: v.opts, base: v.base}
	q := url.Values{"bucket": {bucket}, "precision": {"ms"}}
	return v.opts.Retry.Do(ctx, v.opts.Logger, "write metrics", func(ctx context.Context) error {
		return w.once(ctx, "write metrics", http.MethodPost, "/api/v2/write?"+q.Encode(), lines, nil,
			"Token "+token, "text/plain; charset=utf-8")
	})
}
