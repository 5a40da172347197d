package backend

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/influxrotate/influxrotate/rotation"
	"github.com/influxrotate/influxrotate/testutil/influxv2"
)

var v3Start = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// newV3Pair starts an InfluxDB 3 test server on a manual clock and a backend
// for it that shares the clock.
func newV3Pair(t *testing.T, edition influxv2.Edition, expiry map[string]time.Duration) (*influxv2.Server, *V3, *influxv2.ManualClock) {
	t.Helper()
	clock := influxv2.NewManualClock(v3Start)
	srv := influxv2.NewTest(t, influxv2.Options{InfluxDB3: edition, Now: clock.Now})
	v, err := NewV3(Options{URL: srv.URL(), OperatorToken: srv.OperatorToken(), Retry: Retry{Attempts: 3, Initial: time.Millisecond}},
		V3Options{Edition: string(edition), Expiry: expiry, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return srv, v, clock
}

func serverToken(srv *influxv2.Server, name string) (influxv2.V3Token, bool) {
	for _, tk := range srv.V3Tokens() {
		if tk.Name == name {
			return tk, true
		}
	}
	return influxv2.V3Token{}, false
}

// writeWith writes one point with token and returns the status.
func writeWith(t *testing.T, srv *influxv2.Server, db, token string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL()+"/api/v2/write?bucket="+db, strings.NewReader("m f=1i 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Token "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestNewV3RefusesBadOptions(t *testing.T) {
	for name, o := range map[string]V3Options{
		"no edition":        {},
		"unknown edition":   {Edition: "cloud"},
		"sub-second expiry": {Edition: EditionCore, Expiry: map[string]time.Duration{"c": time.Millisecond}},
	} {
		if _, err := NewV3(Options{URL: "http://127.0.0.1:1"}, o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestV3Capabilities(t *testing.T) {
	_, v, _ := newV3Pair(t, influxv2.Core, nil)
	if c := v.Capabilities(); c.Inactive || !c.Expiry {
		t.Errorf("capabilities %+v, want no inactive state and expiry", c)
	}
	if c := NewV2(Options{}).Capabilities(); !c.Inactive || c.Expiry {
		t.Errorf("2.x capabilities %+v", c)
	}
}

func TestV3CoreRotatesNamedAdminTokens(t *testing.T) {
	const lifetime = 31*24*time.Hour + 90*time.Second + 24*time.Hour
	srv, v, clock := newV3Pair(t, influxv2.Core, map[string]time.Duration{"telegraf": lifetime})
	ctx := context.Background()
	cur, err := srv.CreateV3AdminToken("telegraf", 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Get(ctx, "telegraf")
	if err != nil {
		t.Fatal(err)
	}
	if got.Token != "" || !got.Active || !slices.Equal(got.Permissions, []Permission{adminPermission}) ||
		!got.CreatedAt.Equal(v3Start) || !got.ExpiresAt.IsZero() {
		t.Fatalf("current token %+v", got)
	}

	label := Label{Credential: "telegraf", Description: "telegraf", RotationID: "r1x"}
	clock.Advance(time.Minute)
	created, err := v.Create(ctx, "", label, got.Permissions)
	if err != nil {
		t.Fatal(err)
	}
	if created.ID != "telegraf [influxrotate:telegraf:r1x]" || created.Token == "" ||
		!created.ExpiresAt.Equal(v3Start.Add(time.Minute+lifetime)) {
		t.Fatalf("created %+v", created)
	}
	onServer, ok := serverToken(srv, created.ID)
	if !ok || !onServer.Admin || onServer.Token != created.Token || !onServer.ExpiresAt.Equal(created.ExpiresAt) {
		t.Fatalf("server token %v ok=%t", onServer, ok)
	}
	if l, ok := v.LabelOf(created); !ok || l != label {
		t.Errorf("label %+v %t, want %+v", l, ok, label)
	}

	list, err := v.List(ctx, "ignored")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range list {
		names = append(names, a.ID)
		if a.Token != "" {
			t.Errorf("listing shows the token of %s", a.ID)
		}
	}
	if !slices.Equal(names, []string{"_admin", "telegraf", created.ID}) {
		t.Errorf("list %v", names)
	}
	fromList, _ := v.Get(ctx, created.ID)
	if !fromList.ExpiresAt.Equal(created.ExpiresAt) || !fromList.Active {
		t.Errorf("listed %+v, want the expiry of the answer", fromList)
	}

	targets, err := v.ProbeTargets(ctx, created)
	if err != nil || !slices.Equal(targets, []rotation.Target{{Bucket: DefaultProbeDatabase}}) {
		t.Fatalf("probe targets %v %v", targets, err)
	}
	p, err := rotation.NewHTTPProber(rotation.ProberConfig{URL: srv.URL(), Targets: targets})
	if err != nil {
		t.Fatal(err)
	}
	if res := p.Probe(ctx, rotation.NewCredential(created.Token, created.ID, "test")); res.Verdict != rotation.VerdictValid {
		t.Errorf("probe of the new token: %v %d %s", res.Verdict, res.Status, res.Message)
	}
	if res := p.Probe(ctx, rotation.NewCredential(cur.Token, "", "test")); res.Verdict != rotation.VerdictValid {
		t.Errorf("probe of the current token: %v", res.Verdict)
	}

	// No inactive state: rollback keeps both valid, deactivation is refused.
	if err := v.SetActive(ctx, got, false); !errors.Is(err, ErrNoInactiveState) {
		t.Errorf("deactivate: %v, want ErrNoInactiveState", err)
	}
	if err := v.SetActive(ctx, got, true); err != nil {
		t.Errorf("activate an existing token: %v", err)
	}

	if err := v.Delete(ctx, "telegraf"); err != nil {
		t.Fatal(err)
	}
	if code := writeWith(t, srv, "telemetry", cur.Token); code != 401 {
		t.Errorf("deleted token writes: %d", code)
	}
	if err := v.Delete(ctx, "telegraf"); err != nil {
		t.Errorf("deleting a deleted token: %v, want nil (404 is deleted)", err)
	}
	if _, err := v.Get(ctx, "telegraf"); !errors.Is(err, ErrNotFound) {
		t.Errorf("get deleted: %v", err)
	}
	if err := v.SetActive(ctx, got, true); !errors.Is(err, ErrNotFound) {
		t.Errorf("activate a deleted token: %v, want ErrNotFound", err)
	}
}

func TestV3NeverTouchesTheOperatorToken(t *testing.T) {
	srv, v, _ := newV3Pair(t, influxv2.Core, nil)
	before := len(srv.Requests())
	if err := v.Delete(context.Background(), V3OperatorToken); err == nil || Retryable(err) {
		t.Fatalf("delete _admin: %v, want a permanent error", err)
	}
	if n := len(srv.Requests()) - before; n != 0 {
		t.Errorf("%d requests sent to delete the operator token", n)
	}
	if _, ok := serverToken(srv, V3OperatorToken); !ok {
		t.Error("operator token gone")
	}
}

func TestV3CoreRefusesResourcePermissions(t *testing.T) {
	srv, v, _ := newV3Pair(t, influxv2.Core, nil)
	ctx := context.Background()
	if _, err := v.BucketPermissions(ctx, "", []string{"telemetry"}); err == nil {
		t.Error("Core accepted database permissions")
	}
	_, err := v.Create(ctx, "", Label{Credential: "c", Description: "c", RotationID: "r"},
		[]Permission{{Action: "write", Type: "db", Name: "telemetry"}})
	if err == nil || !strings.Contains(err.Error(), "admin tokens only") {
		t.Errorf("create: %v", err)
	}
	if n := len(srv.V3Tokens()); n != 1 {
		t.Errorf("%d tokens, want only the operator's", n)
	}
}

func TestV3EnterpriseClonesExactPermissions(t *testing.T) {
	srv, v, _ := newV3Pair(t, influxv2.Enterprise, map[string]time.Duration{"tg": time.Hour})
	ctx := context.Background()
	cur, err := srv.CreateV3ResourceToken("tg-current", 0,
		influxv2.V3Permission{ResourceType: "db", ResourceNames: []string{"telemetry", "metrics"}, Actions: []string{"write"}},
		influxv2.V3Permission{ResourceType: "db", ResourceNames: []string{"telemetry"}, Actions: []string{"read"}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Get(ctx, "tg-current")
	if err != nil {
		t.Fatal(err)
	}
	want := []Permission{
		{Action: "write", Type: "db", Name: "telemetry"}, {Action: "write", Type: "db", Name: "metrics"},
		{Action: "read", Type: "db", Name: "telemetry"},
	}
	if !slices.Equal(got.Permissions, want) {
		t.Fatalf("permissions %+v, want %+v", got.Permissions, want)
	}
	created, err := v.Create(ctx, "", Label{Credential: "tg", Description: "tg", RotationID: "r2"}, got.Permissions)
	if err != nil {
		t.Fatal(err)
	}
	again, err := v.Get(ctx, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !sameSet(again.Permissions, got.Permissions) {
		t.Errorf("new token holds %+v, the current one %+v", again.Permissions, got.Permissions)
	}
	if tk, _ := serverToken(srv, created.ID); tk.Admin {
		t.Error("the clone of a resource token is an admin token")
	}
	if code := writeWith(t, srv, "secret", created.Token); code != 403 {
		t.Errorf("new token on another database: %d, want 403 (never more than the current one)", code)
	}
	if code := writeWith(t, srv, "metrics", created.Token); code != 204 {
		t.Errorf("new token on metrics: %d", code)
	}
	targets, err := v.ProbeTargets(ctx, again)
	if err != nil || !sameSet(targets, []rotation.Target{{Bucket: "telemetry"}, {Bucket: "metrics"}}) {
		t.Errorf("probe targets %v %v", targets, err)
	}
	_ = cur

	// buckets = databases: write permissions only.
	perms, err := v.BucketPermissions(ctx, "", []string{"a", "b"})
	if err != nil || !slices.Equal(perms, []Permission{{Action: "write", Type: "db", Name: "a"}, {Action: "write", Type: "db", Name: "b"}}) {
		t.Errorf("bucket permissions %+v %v", perms, err)
	}
	// A permission the API cannot express is refused before anything is created.
	if _, err := v.Create(ctx, "", Label{Credential: "tg", Description: "tg", RotationID: "r3"},
		[]Permission{{Action: "write", Type: "buckets", ID: "0123456789abcdef"}}); err == nil {
		t.Error("a 2.x permission was accepted")
	}
}

func sameSet[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// TestV3LostCreateAnswer: the server creates the token and the connection
// drops before the answer; the retry meets 409, deletes the token whose value
// was lost and creates it again, so the returned token is the one that works.
func TestV3LostCreateAnswer(t *testing.T) {
	for _, edition := range []influxv2.Edition{influxv2.Core, influxv2.Enterprise} {
		t.Run(string(edition), func(t *testing.T) {
			srv, v, _ := newV3Pair(t, edition, map[string]time.Duration{"c": time.Hour})
			perms := []Permission{adminPermission}
			path := "/api/v3/configure/token/named_admin"
			if edition == influxv2.Enterprise {
				perms = []Permission{{Action: "write", Type: "db", Name: "telemetry"}}
				path = "/api/v3/enterprise/configure/token"
			}
			srv.Inject(influxv2.Fault{Path: path, LoseAnswer: true})
			start := len(srv.Requests())
			created, err := v.Create(context.Background(), "", Label{Credential: "c", Description: "c", RotationID: "r9"}, perms)
			if err != nil {
				t.Fatal(err)
			}
			var seq []string
			for _, r := range srv.Requests()[start:] {
				seq = append(seq, fmt.Sprintf("%s %d", r.Method, r.Status))
			}
			if want := []string{"POST 0", "POST 409", "DELETE 200", "POST 201"}; !slices.Equal(seq, want) {
				t.Errorf("requests %v, want %v", seq, want)
			}
			var same int
			for _, tk := range srv.V3Tokens() {
				if tk.Name == created.ID {
					same++
					if tk.Token != created.Token {
						t.Error("the token returned is not the one on the server")
					}
				}
			}
			if same != 1 {
				t.Errorf("%d tokens named %q, want 1", same, created.ID)
			}
			if code := writeWith(t, srv, "telemetry", created.Token); code != 204 {
				t.Errorf("returned token writes: %d", code)
			}
		})
	}
}

// TestV3LostCreateAnswerDeleteFails: the delete after a 409 is one request
// of the create's attempt, not a retry loop of its own: a server refusing
// it costs at most a POST and a DELETE per attempt, not attempts² requests.
func TestV3LostCreateAnswerDeleteFails(t *testing.T) {
	srv, v, _ := newV3Pair(t, influxv2.Core, nil) // 3 attempts
	srv.Inject(influxv2.Fault{Path: "/api/v3/configure/token/named_admin", LoseAnswer: true})
	for range 10 {
		srv.Inject(influxv2.Fault{Path: "/api/v3/configure/token", Status: http.StatusServiceUnavailable})
	}
	start := len(srv.Requests())
	if _, err := v.Create(context.Background(), "", Label{Credential: "c", Description: "c", RotationID: "r9"},
		[]Permission{adminPermission}); StatusOf(err) != http.StatusServiceUnavailable {
		t.Fatalf("create: %v, want the delete's 503", err)
	}
	var seq []string
	for _, r := range srv.Requests()[start:] {
		seq = append(seq, fmt.Sprintf("%s %d", r.Method, r.Status))
	}
	if want := []string{"POST 0", "POST 409", "DELETE 503", "POST 409", "DELETE 503"}; !slices.Equal(seq, want) {
		t.Errorf("requests %v, want %v", seq, want)
	}
}

// TestV3CreateAfterCrash: a process that crashed after its create left the
// token; the next create of the same rotation replaces it.
func TestV3CreateAfterCrash(t *testing.T) {
	srv, v, _ := newV3Pair(t, influxv2.Core, nil)
	label := Label{Credential: "c", Description: "c", RotationID: "r1"}
	left, err := srv.CreateV3AdminToken(describe(label), 0)
	if err != nil {
		t.Fatal(err)
	}
	created, err := v.Create(context.Background(), "", label, []Permission{adminPermission})
	if err != nil {
		t.Fatal(err)
	}
	if created.Token == left.Token || writeWith(t, srv, "db", left.Token) != 401 || writeWith(t, srv, "db", created.Token) != 204 {
		t.Error("the leftover token was not replaced")
	}
}

func TestV3Expiry(t *testing.T) {
	srv, v, clock := newV3Pair(t, influxv2.Core, map[string]time.Duration{"c": 90 * time.Minute})
	ctx := context.Background()
	created, err := v.Create(ctx, "", Label{Credential: "c", Description: "c", RotationID: "r1"}, []Permission{adminPermission})
	if err != nil {
		t.Fatal(err)
	}
	// A credential without an expiry configured gets none.
	never, err := v.Create(ctx, "", Label{Credential: "other", Description: "o", RotationID: "r1"}, []Permission{adminPermission})
	if err != nil || !never.ExpiresAt.IsZero() {
		t.Fatalf("unconfigured credential: %+v %v", never, err)
	}
	clock.Advance(90 * time.Minute)
	if code := writeWith(t, srv, "db", created.Token); code != 401 {
		t.Errorf("expired token writes: %d", code)
	}
	got, err := v.Get(ctx, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Active || !got.ExpiresAt.Equal(v3Start.Add(90*time.Minute)) {
		t.Errorf("expired token %+v, want inactive with its expiry", got)
	}
	if err := v.SetActive(ctx, got, true); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("activating an expired token: %v", err)
	}
	if code := writeWith(t, srv, "db", never.Token); code != 204 {
		t.Errorf("token without expiry: %d", code)
	}
}

func TestV3RetriesAndErrorsHoldNoToken(t *testing.T) {
	srv, v, _ := newV3Pair(t, influxv2.Core, nil)
	ctx := context.Background()
	srv.Inject(influxv2.Fault{Path: "/api/v3/query_sql", Status: 503})
	if _, err := v.List(ctx, ""); err != nil {
		t.Fatalf("list after one 503: %v", err)
	}
	srv.Inject(influxv2.Fault{Path: "/api/v3/configure/token", Status: 500}, influxv2.Fault{Path: "/api/v3/configure/token", Status: 500},
		influxv2.Fault{Path: "/api/v3/configure/token", Status: 500})
	tk, _ := srv.CreateV3AdminToken("x", 0)
	err := v.Delete(ctx, "x")
	if StatusOf(err) != 500 {
		t.Fatalf("delete through three 500s: %v", err)
	}
	// A server that answers a token but no such name is an error naming no token.
	srv.Inject(influxv2.Fault{Path: "/api/v3/configure/token/named_admin", Status: 201,
		Body: `{"id":1,"name":"other","token":"` + tk.Token + `"}`})
	_, err = v.Create(ctx, "", Label{Credential: "c", Description: "c", RotationID: "r"}, []Permission{adminPermission})
	if err == nil || strings.Contains(err.Error(), tk.Token) || strings.Contains(err.Error(), srv.OperatorToken()) {
		t.Errorf("create with a wrong answer: %v", err)
	}
}

func TestParseV3Permissions(t *testing.T) {
	for in, want := range map[string][]Permission{
		"*:*:*":                         {adminPermission},
		"db:telemetry:write":            {{Action: "write", Type: "db", Name: "telemetry"}},
		"db:a,b:read,write":             {{Action: "read", Type: "db", Name: "a"}, {Action: "write", Type: "db", Name: "a"}, {Action: "read", Type: "db", Name: "b"}, {Action: "write", Type: "db", Name: "b"}},
		"db:a:write;system:health:read": {{Action: "write", Type: "db", Name: "a"}, {Action: "read", Type: "system", Name: "health"}},
		`["db:a:read","db:a:write"]`:    {{Action: "read", Type: "db", Name: "a"}, {Action: "write", Type: "db", Name: "a"}},
		`["*:*:*"]`:                     {adminPermission},
	} {
		got, err := parseV3Permissions(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%q: %+v %v, want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "db:a", "db::write", "db:a:write:x", "[]", `["db:a"]`, `["db:a:write"`, "*:*:*;db:a:write"} {
		if _, err := parseV3Permissions(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	// Grouping gives each name exactly its actions.
	perms, _ := parseV3Permissions("db:a,b:read,write;db:c:write")
	grouped, err := groupV3Permissions(perms)
	if err != nil {
		t.Fatal(err)
	}
	if len(grouped) != 2 || !slices.Equal(grouped[0].ResourceNames, []string{"a", "b"}) || !slices.Equal(grouped[0].Actions, []string{"read", "write"}) ||
		!slices.Equal(grouped[1].ResourceNames, []string{"c"}) || !slices.Equal(grouped[1].Actions, []string{"write"}) {
		t.Errorf("grouped %+v", grouped)
	}
}
