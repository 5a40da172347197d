package influxv2

import (
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"testing"
)

var (
	tokenShape = regexp.MustCompile(`^[A-Za-z0-9_-]{86}==$`)
	idShape    = regexp.MustCompile(`^[0-9a-f]{16}$`)
)

type authJSON struct {
	ID, Token, Status, Description, OrgID, Org, UserID, User string
	Permissions                                              []Permission
	Links                                                    map[string]string
	CreatedAt, UpdatedAt                                     string
}

// String keeps the token out of failure messages (%v, %+v).
func (a authJSON) String() string {
	a.Token = fingerprint(a.Token)
	type plain authJSON // without this method
	return fmt.Sprintf("%+v", plain(a))
}

func bucketPerm(action, orgID, bucketID string) string {
	return fmt.Sprintf(`{"action":%q,"resource":{"type":"buckets","orgID":%q,"id":%q}}`, action, orgID, bucketID)
}

func TestPostAuthorization(t *testing.T) {
	f := newFixture(t, Options{})
	allAccess := f.s.AllAccessAuthorization("acme")
	body := fmt.Sprintf(`{"orgID":%q,"description":"telegraf 2","permissions":[%s,%s]}`,
		f.acmeID, bucketPerm("write", f.acmeID, f.telemetryID), bucketPerm("read", f.acmeID, f.telemetryID))

	for _, caller := range []struct {
		name string
		auth string
	}{{"operator", f.op}, {"all-access token of the org", tok(allAccess)}} {
		t.Run(caller.name, func(t *testing.T) {
			a := call{method: "POST", path: "/api/v2/authorizations", auth: caller.auth, body: body}.do(t, f.s)
			if a.status != http.StatusCreated {
				t.Fatalf("status %d %s, want 201", a.status, masked(a.body))
			}
			var got authJSON
			a.decode(t, &got)
			if !tokenShape.MatchString(got.Token) || !idShape.MatchString(got.ID) {
				t.Errorf("token/id do not look like 2.x ones: len(token)=%d id=%q", len(got.Token), got.ID)
			}
			if got.Status != "active" || got.Description != "telegraf 2" || got.OrgID != f.acmeID || got.Org != "acme" ||
				got.User != "admin" || !idShape.MatchString(got.UserID) {
				t.Errorf("response = %+v", got)
			}
			if got.Links["self"] != "/api/v2/authorizations/"+got.ID || got.Links["user"] != "/api/v2/users/"+got.UserID {
				t.Errorf("links = %v", got.Links)
			}
			if len(got.Permissions) != 2 || got.Permissions[0].Resource.Name != "telemetry" || got.Permissions[0].Resource.Org != "acme" {
				t.Errorf("permissions = %+v, want names filled in", got.Permissions)
			}
			// The new token writes.
			w := call{method: "POST", path: "/api/v2/write?org=acme&bucket=telemetry", auth: "Token " + got.Token, body: aLine}.do(t, f.s)
			if w.status != 204 {
				t.Errorf("write with the new token: %d %s", w.status, masked(w.body))
			}
		})
	}

	t.Run("inactive on creation", func(t *testing.T) {
		b := fmt.Sprintf(`{"orgID":%q,"status":"inactive","permissions":[%s]}`, f.acmeID, bucketPerm("write", f.acmeID, f.telemetryID))
		a := call{method: "POST", path: "/api/v2/authorizations", auth: f.op, body: b}.do(t, f.s)
		var got authJSON
		a.decode(t, &got)
		if a.status != 201 || got.Status != "inactive" || f.s.IsActive(got.Token) {
			t.Errorf("status %d, body status %q, want 201 inactive", a.status, got.Status)
		}
	})
}

func TestPostAuthorizationRefused(t *testing.T) {
	f := newFixture(t, Options{})
	allAccess := f.s.AllAccessAuthorization("acme")
	writeTelemetry := bucketPerm("write", f.acmeID, f.telemetryID)
	tests := []struct {
		name, auth, body string
		status           int
		code, message    string
	}{
		{name: "bad JSON", auth: f.op, body: `{"orgID":`, status: 400, code: "invalid",
			message: "invalid json structure: unexpected EOF"},
		{name: "malformed orgID", auth: f.op, body: `{"orgID":"xyz","permissions":[` + writeTelemetry + `]}`,
			status: 400, code: "invalid", message: "invalid json structure: id must have a length of 16 bytes"},
		{name: "no permissions", auth: f.op, body: fmt.Sprintf(`{"orgID":%q,"permissions":[]}`, f.acmeID),
			status: 400, code: "invalid", message: "authorization must include permissions"},
		{name: "missing orgID", auth: f.op, body: `{"permissions":[` + writeTelemetry + `]}`,
			status: 400, code: "invalid", message: "org id required"},
		{name: "bad status", auth: f.op, body: fmt.Sprintf(`{"orgID":%q,"status":"paused","permissions":[%s]}`, f.acmeID, writeTelemetry),
			status: 400, code: "invalid", message: "invalid status: must be active or inactive"},
		{name: "bad action", auth: f.op, body: fmt.Sprintf(`{"orgID":%q,"permissions":[%s]}`, f.acmeID, bucketPerm("delete", f.acmeID, f.telemetryID)),
			status: 400, code: "invalid", message: "invalid action type for permission"},
		{name: "permission for another org", auth: f.op,
			body:   fmt.Sprintf(`{"orgID":%q,"permissions":[%s]}`, f.acmeID, bucketPerm("write", f.globexID, f.globexTelemetryID)),
			status: 400, code: "invalid", message: fmt.Sprintf("permission write:orgs/%[1]s/buckets/%[2]s is not for org id %[3]s", f.globexID, f.globexTelemetryID, f.acmeID)},
		{name: "unknown org", auth: f.op,
			body:   fmt.Sprintf(`{"orgID":"aaaaaaaaaaaaaaaa","permissions":[%s]}`, bucketPerm("write", "aaaaaaaaaaaaaaaa", f.telemetryID)),
			status: 400, code: "invalid", message: "unable to create token"},
		{name: "caller cannot write the org's authorizations", auth: tok(f.writer), body: fmt.Sprintf(`{"orgID":%q,"permissions":[%s]}`, f.acmeID, writeTelemetry),
			status: 401, code: "unauthorized", message: fmt.Sprintf("write:orgs/%s/authorizations is unauthorized", f.acmeID)},
		{name: "inactive caller", auth: tok(f.inactive), body: fmt.Sprintf(`{"orgID":%q,"permissions":[%s]}`, f.acmeID, writeTelemetry),
			status: 401, code: "unauthorized", message: "token is inactive"},
		{name: "escalation to a global permission", auth: tok(allAccess),
			body:   fmt.Sprintf(`{"orgID":%q,"permissions":[%s,{"action":"write","resource":{"type":"buckets"}}]}`, f.acmeID, writeTelemetry),
			status: 403, code: "forbidden", message: "permission write:buckets is not allowed: write:buckets is unauthorized"},
		{name: "escalation to another org's bucket", auth: tok(allAccess),
			body:   fmt.Sprintf(`{"orgID":%q,"permissions":[%s]}`, f.acmeID, bucketPerm("write", f.globexID, f.globexTelemetryID)),
			status: 403, code: "forbidden",
			message: fmt.Sprintf("permission write:orgs/%[1]s/buckets/%[2]s is not allowed: write:orgs/%[1]s/buckets/%[2]s is unauthorized", f.globexID, f.globexTelemetryID)},
		{name: "no Authorization", body: fmt.Sprintf(`{"orgID":%q,"permissions":[%s]}`, f.acmeID, writeTelemetry),
			status: 401, code: "unauthorized", message: "unauthorized access"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(f.s.Authorizations())
			a := call{method: "POST", path: "/api/v2/authorizations", auth: tt.auth, body: tt.body}.do(t, f.s)
			a.wantError(t, tt.status, tt.code, tt.message)
			if after := len(f.s.Authorizations()); after != before {
				t.Errorf("a refused POST created an authorization (%d -> %d)", before, after)
			}
		})
	}
}

func listIDs(t *testing.T, a answer) []string {
	t.Helper()
	if a.status != 200 {
		t.Fatalf("list: %d %s", a.status, masked(a.body))
	}
	var l struct {
		Links          map[string]string
		Authorizations []authJSON
	}
	a.decode(t, &l)
	if l.Links["self"] != "/api/v2/authorizations" {
		t.Errorf("links = %v", l.Links)
	}
	ids := []string{}
	for _, x := range l.Authorizations {
		ids = append(ids, x.ID)
	}
	sort.Strings(ids)
	return ids
}

func sorted(ids ...string) []string {
	sort.Strings(ids)
	return ids
}

func TestListAuthorizations(t *testing.T) {
	f := newFixture(t, Options{})
	globexTok := f.s.WriteAuthorization("globex", "telemetry")
	allAccess := f.s.AllAccessAuthorization("acme")
	var acme []string
	var all []string
	for _, a := range f.s.Authorizations() {
		all = append(all, a.ID)
		if a.OrgID == f.acmeID {
			acme = append(acme, a.ID)
		}
	}
	sort.Strings(acme)
	sort.Strings(all)
	opUser := f.s.OperatorAuthorization().UserID
	var adminIDs []string
	for _, a := range f.s.Authorizations() {
		if a.UserID == opUser {
			adminIDs = append(adminIDs, a.ID)
		}
	}
	sort.Strings(adminIDs)

	tests := []struct {
		name, query, auth string
		want              []string
	}{
		{"operator sees all", "", f.op, all},
		{"orgID", "?orgID=" + f.acmeID, f.op, acme},
		{"org", "?org=globex", f.op, sorted(globexTok.ID)},
		{"orgID wins over org", "?org=globex&orgID=" + f.acmeID, f.op, acme},
		{"id", "?id=" + f.writer.ID, f.op, sorted(f.writer.ID)},
		{"user", "?user=bob", f.op, sorted(f.bob.ID)},
		{"userID", "?userID=" + opUser, f.op, adminIDs},
		{"token filter is ignored", "?token=" + f.writer.Token, f.op, all},
		{"write token reads none", "", tok(f.writer), []string{}},
		{"inactive token reads none", "", tok(f.inactive), []string{}},
		{"all-access sees its org's tokens of its user", "", tok(allAccess), func() []string {
			var ids []string
			for _, a := range f.s.Authorizations() {
				if a.OrgID == f.acmeID && a.UserID == opUser {
					ids = append(ids, a.ID)
				}
			}
			sort.Strings(ids)
			return ids
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := listIDs(t, call{method: "GET", path: "/api/v2/authorizations" + tt.query, auth: tt.auth}.do(t, f.s))
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("ids = %v, want %v", got, tt.want)
			}
		})
	}

	call{method: "GET", path: "/api/v2/authorizations?org=nope", auth: f.op}.do(t, f.s).
		wantError(t, 404, "not found", `organization name "nope" not found`)
	call{method: "GET", path: "/api/v2/authorizations?orgID=xyz", auth: f.op}.do(t, f.s).
		wantError(t, 400, "invalid", "id must have a length of 16 bytes")
	call{method: "GET", path: "/api/v2/authorizations"}.do(t, f.s).
		wantError(t, 401, "unauthorized", "unauthorized access")
}

// TestHashedTokens: with hashed tokens (2.8+) only the POST response carries the token.
func TestHashedTokens(t *testing.T) {
	for _, hashed := range []bool{false, true} {
		t.Run(fmt.Sprintf("hashed=%t", hashed), func(t *testing.T) {
			f := newFixture(t, Options{HashedTokens: hashed})
			body := fmt.Sprintf(`{"orgID":%q,"permissions":[%s]}`, f.acmeID, bucketPerm("write", f.acmeID, f.telemetryID))
			var created authJSON
			call{method: "POST", path: "/api/v2/authorizations", auth: f.op, body: body}.do(t, f.s).decode(t, &created)
			if !tokenShape.MatchString(created.Token) {
				t.Fatalf("POST response token has length %d, want an 88-character token", len(created.Token))
			}
			want := created.Token
			if hashed {
				want = ""
			}
			var l struct{ Authorizations []authJSON }
			call{method: "GET", path: "/api/v2/authorizations?id=" + created.ID, auth: f.op}.do(t, f.s).decode(t, &l)
			var one, patched authJSON
			call{method: "GET", path: "/api/v2/authorizations/" + created.ID, auth: f.op}.do(t, f.s).decode(t, &one)
			call{method: "PATCH", path: "/api/v2/authorizations/" + created.ID, auth: f.op, body: `{"description":"x"}`}.do(t, f.s).decode(t, &patched)
			if len(l.Authorizations) != 1 || l.Authorizations[0].Token != want || one.Token != want || patched.Token != want {
				t.Errorf("tokens shown in list/get/patch differ from %q (hashed=%t)", fingerprint(want), hashed)
			}
		})
	}
}

func TestAuthorizationByID(t *testing.T) {
	f := newFixture(t, Options{})
	id := f.writer.ID
	path := "/api/v2/authorizations/" + id
	readAuths := f.s.CreateAuthorization("acme", "reads tokens",
		Permission{"read", Resource{Type: "authorizations", OrgID: f.acmeID}},
		Permission{"read", Resource{Type: "users", ID: f.s.OperatorAuthorization().UserID}})

	var got authJSON
	a := call{method: "GET", path: path, auth: f.op}.do(t, f.s)
	a.decode(t, &got)
	if a.status != 200 || got.ID != id || got.Status != "active" {
		t.Fatalf("GET: %d %+v", a.status, got)
	}

	a = call{method: "PATCH", path: path, auth: f.op, body: `{"status":"inactive","description":"retired"}`}.do(t, f.s)
	a.decode(t, &got)
	if a.status != 200 || got.Status != "inactive" || got.Description != "retired" || len(got.Permissions) != 2 {
		t.Fatalf("PATCH: %d %+v", a.status, got)
	}
	if f.s.IsActive(f.writer.Token) {
		t.Fatal("token still active after PATCH inactive")
	}
	call{method: "PATCH", path: path, auth: f.op, body: `{"status":"active"}`}.do(t, f.s)
	if !f.s.IsActive(f.writer.Token) {
		t.Fatal("token not active after PATCH active")
	}

	for _, tt := range []struct {
		name, method, path, auth, body string
		status                         int
		code, message                  string
	}{
		{"GET unknown", "GET", "/api/v2/authorizations/aaaaaaaaaaaaaaaa", f.op, "", 404, "not found", "authorization not found"},
		{"PATCH unknown", "PATCH", "/api/v2/authorizations/aaaaaaaaaaaaaaaa", f.op, `{"status":"inactive"}`, 404, "not found", "authorization not found"},
		{"DELETE unknown", "DELETE", "/api/v2/authorizations/aaaaaaaaaaaaaaaa", f.op, "", 404, "not found", "authorization not found"},
		{"GET short id", "GET", "/api/v2/authorizations/xyz", f.op, "", 400, "invalid", "id must have a length of 16 bytes"},
		{"DELETE non-hex id", "DELETE", "/api/v2/authorizations/zzzzzzzzzzzzzzzz", f.op, "", 400, "invalid", "invalid ID"},
		{"PATCH short id", "PATCH", "/api/v2/authorizations/xyz", f.op, `{"status":"inactive"}`, 400, "invalid", "id must have a length of 16 bytes"},
		{"PATCH bad status", "PATCH", path, f.op, `{"status":"paused"}`, 400, "invalid", "invalid status: must be active or inactive"},
		{"GET by a token that cannot read it", "GET", "/api/v2/authorizations/" + f.reader.ID, tok(f.writer), "", 401, "unauthorized",
			fmt.Sprintf("read:orgs/%s/authorizations/%s is unauthorized", f.acmeID, f.reader.ID)},
		{"PATCH needs read before write", "PATCH", "/api/v2/authorizations/" + f.reader.ID, tok(f.writer), `{"status":"inactive"}`, 401, "unauthorized",
			fmt.Sprintf("read:orgs/%s/authorizations/%s is unauthorized", f.acmeID, f.reader.ID)},
		{"PATCH with read but not write", "PATCH", path, tok(readAuths), `{"status":"inactive"}`, 401, "unauthorized",
			fmt.Sprintf("write:orgs/%s/authorizations/%s is unauthorized", f.acmeID, id)},
		{"PATCH malformed JSON", "PATCH", path, f.op, `{"status":`, 500, "internal error", "An internal error has occurred - check server logs"},
		{"DELETE by a token that cannot write it", "DELETE", path, tok(f.writer), "", 401, "unauthorized",
			fmt.Sprintf("write:orgs/%s/authorizations/%s is unauthorized", f.acmeID, id)},
		{"GET without Authorization", "GET", path, "", "", 401, "unauthorized", "unauthorized access"},
		{"PUT not allowed", "PUT", path, f.op, `{}`, 405, "method not allowed", "method not allowed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			call{method: tt.method, path: tt.path, auth: tt.auth, body: tt.body}.do(t, f.s).wantError(t, tt.status, tt.code, tt.message)
		})
	}

	a = call{method: "DELETE", path: path, auth: f.op}.do(t, f.s)
	if a.status != 204 || a.body != "" {
		t.Fatalf("DELETE: %d %q", a.status, masked(a.body))
	}
	if _, ok := f.s.Authorization(id); ok {
		t.Fatal("authorization still there after DELETE")
	}
	call{method: "GET", path: path, auth: f.op}.do(t, f.s).wantError(t, 404, "not found", "authorization not found")
	call{method: "POST", path: "/api/v2/write?org=acme&bucket=telemetry", auth: tok(f.writer)}.do(t, f.s).
		wantError(t, 401, "unauthorized", "unauthorized access")
}
