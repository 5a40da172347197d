package backend

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/influxrotate/influxrotate/rotation"
)

// V2 manages InfluxDB 2.x authorizations.
type V2 struct {
	opts Options
	base string
}

// NewV2 returns a backend for InfluxDB 2.x at opts.URL.
func NewV2(opts Options) *V2 {
	opts.defaults()
	return &V2{opts: opts, base: strings.TrimRight(opts.URL, "/")}
}

type v2Resource struct {
	Type  string `json:"type"`
	ID    string `json:"id,omitempty"`
	OrgID string `json:"orgID,omitempty"`
	Name  string `json:"name,omitempty"`
	Org   string `json:"org,omitempty"`
}

type v2Permission struct {
	Action   string     `json:"action"`
	Resource v2Resource `json:"resource"`
}

type v2Authorization struct {
	ID          string         `json:"id"`
	Token       string         `json:"token"`
	Status      string         `json:"status"`
	Description string         `json:"description"`
	OrgID       string         `json:"orgID"`
	Org         string         `json:"org"`
	Permissions []v2Permission `json:"permissions"`
	CreatedAt   time.Time      `json:"createdAt"`
}

// idRE is the shape of an InfluxDB 2.x ID: 16 lowercase hex digits.
var idRE = regexp.MustCompile(`^[0-9a-f]{16}$`)

// checkID refuses an authorization ID that is not an InfluxDB 2.x ID
// before it is put in a URL: a path such as "../orgs/x" from a broken or
// hostile server would otherwise address another resource. At most 40
// characters of it are quoted.
func checkID(id, from string, s *rotation.Scrubber) error {
	if idRE.MatchString(id) {
		return nil
	}
	// Scrubbed before the cut: a hostile server can send a token as an ID,
	// and 40 of its characters are still secret.
	return Permanent(fmt.Errorf("authorization ID %.40q from %s is not 16 lowercase hex digits; refusing to use it", s.Scrub(id), from))
}

// convert checks a's ID (see checkID) and converts it.
func (a *v2Authorization) convert(from string, s *rotation.Scrubber) (*Authorization, error) {
	if err := checkID(a.ID, from, s); err != nil {
		return nil, err
	}
	out := &Authorization{ID: a.ID, Token: a.Token, Description: a.Description, Active: a.Status != "inactive",
		OrgID: a.OrgID, Org: a.Org, CreatedAt: a.CreatedAt}
	for _, p := range a.Permissions {
		out.Permissions = append(out.Permissions, Permission{Action: p.Action, Type: p.Resource.Type,
			OrgID: p.Resource.OrgID, ID: p.Resource.ID, Name: p.Resource.Name})
	}
	return out, nil
}

// call sends one request with the operator token, retrying as configured.
// body and out are JSON; out may be nil.
func (v *V2) call(ctx context.Context, op, method, path string, body, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return err
		}
	}
	return v.opts.Retry.Do(ctx, v.opts.Logger, op, func(ctx context.Context) error {
		return v.once(ctx, op, method, path, payload, out, "Token "+v.opts.OperatorToken, "application/json")
	})
}

func (v *V2) once(ctx context.Context, op, method, path string, payload []byte, out any, auth, ctype string) error {
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, v.base+path, rd)
	if err != nil {
		return Permanent(fmt.Errorf("%s: %w", op, err))
	}
	req.Header.Set("Authorization", auth)
	req.Header.Set("User-Agent", v.opts.UserAgent)
	if payload != nil {
		req.Header.Set("Content-Type", ctype)
	}
	data, err := exchange(v.opts.Client, req, op, v.opts.Scrubber)
	if err != nil {
		return err
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return Permanent(fmt.Errorf("%s: decoding answer: %w", op, err))
		}
	}
	return nil
}

// Get implements Backend.
func (v *V2) Get(ctx context.Context, id string) (*Authorization, error) {
	if err := checkID(id, "the configuration or state", v.opts.Scrubber); err != nil {
		return nil, err
	}
	var a v2Authorization
	err := v.call(ctx, "get authorization "+id, http.MethodGet, "/api/v2/authorizations/"+url.PathEscape(id), nil, &a)
	if err != nil {
		return nil, notFound(err, "authorization", id)
	}
	return a.convert("the server's answer to get authorization "+id, v.opts.Scrubber)
}

// List implements Backend.
func (v *V2) List(ctx context.Context, org string) ([]*Authorization, error) {
	var page struct {
		Authorizations []v2Authorization `json:"authorizations"`
	}
	if err := v.call(ctx, "list authorizations", http.MethodGet, "/api/v2/authorizations?org="+url.QueryEscape(org), nil, &page); err != nil {
		return nil, err
	}
	out := make([]*Authorization, 0, len(page.Authorizations))
	for i := range page.Authorizations {
		a, err := page.Authorizations[i].convert("the server's list of authorizations", v.opts.Scrubber)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

func (v *V2) orgID(ctx context.Context, org string) (string, error) {
	var page struct {
		Orgs []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"orgs"`
	}
	if err := v.call(ctx, "find org "+org, http.MethodGet, "/api/v2/orgs?org="+url.QueryEscape(org), nil, &page); err != nil {
		return "", err
	}
	for _, o := range page.Orgs {
		if o.Name == org {
			return o.ID, nil
		}
	}
	return "", fmt.Errorf("org %q not found", org)
}

var labelRE = regexp.MustCompile(`\[influxrotate:([A-Za-z0-9_.-]+):([0-9a-z]+)\]$`)

// describe appends the label to the description, where LabelOf finds it.
func describe(l Label) string {
	return fmt.Sprintf("%s [influxrotate:%s:%s]", l.Description, l.Credential, l.RotationID)
}

// LabelOf implements Backend.
func (v *V2) LabelOf(a *Authorization) (Label, bool) { return parseLabel(a.Description) }

// parseLabel reads the label describe appended to a description.
func parseLabel(description string) (Label, bool) {
	m := labelRE.FindStringSubmatch(description)
	if m == nil {
		return Label{}, false
	}
	return Label{Credential: m[1], RotationID: m[2],
		Description: strings.TrimSuffix(strings.TrimSuffix(description, m[0]), " ")}, true
}

// Capabilities implements Backend: 2.x authorizations have an inactive status.
func (v *V2) Capabilities() Capabilities { return Capabilities{Inactive: true} }

// Create implements Backend. The POST is not retried blindly: a request
// that timed out may have created the authorization, so before each retry
// the label is looked up and a match is returned instead (without its
// token when the server hashes tokens; the caller then deletes it).
func (v *V2) Create(ctx context.Context, org string, label Label, perms []Permission) (*Authorization, error) {
	orgID, err := v.orgID(ctx, org)
	if err != nil {
		return nil, err
	}
	body := struct {
		OrgID       string         `json:"orgID"`
		Description string         `json:"description"`
		Status      string         `json:"status"`
		Permissions []v2Permission `json:"permissions"`
	}{OrgID: orgID, Description: describe(label), Status: "active"}
	for _, p := range perms {
		body.Permissions = append(body.Permissions, v2Permission{Action: p.Action,
			Resource: v2Resource{Type: p.Type, ID: p.ID, OrgID: p.OrgID, Name: p.Name}})
	}
	payload, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	var created *Authorization
	err = v.opts.Retry.Do(ctx, v.opts.Logger, "create authorization", func(ctx context.Context) error {
		if created != nil {
			return nil
		}
		var a v2Authorization
		err := v.once(ctx, "create authorization", http.MethodPost, "/api/v2/authorizations", payload, &a,
			"Token "+v.opts.OperatorToken, "application/json")
		if err == nil {
			v.opts.Scrubber.Add(a.Token)
			created, err = a.convert("the server's answer to create authorization", v.opts.Scrubber)
			return err
		}
		if Retryable(err) {
			if found := v.findLabel(ctx, org, label); found != nil {
				created = found
				return nil
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return created, nil
}

func (v *V2) findLabel(ctx context.Context, org string, label Label) *Authorization {
	list, err := v.List(ctx, org)
	if err != nil {
		return nil
	}
	for _, a := range list {
		if l, ok := v.LabelOf(a); ok && l.Credential == label.Credential && l.RotationID == label.RotationID {
			return a
		}
	}
	return nil
}

// SetActive implements Backend.
func (v *V2) SetActive(ctx context.Context, a *Authorization, active bool) error {
	if err := checkID(a.ID, "the configuration or state", v.opts.Scrubber); err != nil {
		return err
	}
	status := "inactive"
	if active {
		status = "active"
	}
	err := v.call(ctx, "set authorization "+a.ID+" "+status, http.MethodPatch,
		"/api/v2/authorizations/"+url.PathEscape(a.ID), map[string]string{"status": status}, nil)
	return notFound(err, "authorization", a.ID)
}

// Delete implements Backend.
func (v *V2) Delete(ctx context.Context, id string) error {
	if err := checkID(id, "the configuration or state", v.opts.Scrubber); err != nil {
		return err
	}
	err := v.call(ctx, "delete authorization "+id, http.MethodDelete, "/api/v2/authorizations/"+url.PathEscape(id), nil, nil)
	if gone(err) {
		return nil
	}
	return err
}

type v2Bucket struct {
	ID    string `json:"id"`
	OrgID string `json:"orgID"`
	Name  string `json:"name"`
}

func (v *V2) buckets(ctx context.Context, query string) ([]v2Bucket, error) {
	var page struct {
		Buckets []v2Bucket `json:"buckets"`
	}
	if err := v.call(ctx, "list buckets", http.MethodGet, "/api/v2/buckets?"+query, nil, &page); err != nil {
		return nil, err
	}
	return page.Buckets, nil
}

// BucketPermissions implements Backend.
func (v *V2) BucketPermissions(ctx context.Context, org string, names []string) ([]Permission, error) {
	var perms []Permission
	for _, name := range names {
		bs, err := v.buckets(ctx, url.Values{"org": {org}, "name": {name}}.Encode())
		if err != nil {
			return nil, err
		}
		var found *v2Bucket
		for i := range bs {
			if bs[i].Name == name {
				found = &bs[i]
			}
		}
		if found == nil {
			return nil, fmt.Errorf("buckets: bucket %q not found in org %q", name, org)
		}
		perms = append(perms, Permission{Action: "write", Type: "buckets", OrgID: found.OrgID, ID: found.ID})
	}
	return perms, nil
}

// ProbeTargets implements Backend. A write permission on every bucket of an
// org is expanded to the org's buckets, leaving out the system ones.
func (v *V2) ProbeTargets(ctx context.Context, a *Authorization) ([]rotation.Target, error) {
	var out []rotation.Target
	seen := map[rotation.Target]bool{}
	add := func(t rotation.Target) {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	for _, p := range a.Permissions {
		if p.Action != "write" || p.Type != "buckets" {
			continue
		}
		org := p.OrgID
		org = cmp.Or(org, a.OrgID)
		switch {
		case p.ID != "":
			add(rotation.Target{Org: org, Bucket: p.ID})
		case p.Name != "":
			add(rotation.Target{Org: org, Bucket: p.Name})
		default:
			bs, err := v.buckets(ctx, url.Values{"orgID": {org}}.Encode())
			if err != nil {
				return nil, err
			}
			for _, b := range bs {
				if !strings.HasPrefix(b.Name, "_") {
					add(rotation.Target{Org: org, Bucket: b.ID})
				}
			}
		}
	}
	return out, nil
}

// WriteLines implements Backend.
func (v *V2) WriteLines(ctx context.Context, org, bucket, token string, lines []byte) error {
	token = cmp.Or(token, v.opts.OperatorToken)
	v.opts.Scrubber.Add(token)
	q := url.Values{"org": {org}, "bucket": {bucket}, "precision": {"ms"}}
	return v.opts.Retry.Do(ctx, v.opts.Logger, "write metrics", func(ctx context.Context) error {
		return v.once(ctx, "write metrics", http.MethodPost, "/api/v2/write?"+q.Encode(), lines, nil,
			"Token "+token, "text/plain; charset=utf-8")
	})
}
