package backend

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/influxrotate/influxrotate/testutil/influxv2"
)

func TestRetryIsBoundedAndSelective(t *testing.T) {
	cases := []struct {
		name  string
		err   error
		calls int
	}{
		{"503 retried", &HTTPError{Status: 503}, 4},
		{"429 retried", &HTTPError{Status: 429}, 4},
		{"network error retried", errors.New("connection reset"), 4},
		{"403 not retried", &HTTPError{Status: 403}, 1},
		{"404 not retried", &HTTPError{Status: 404}, 1},
		{"permanent not retried", Permanent(errors.New("bad json")), 1},
		{"context not retried", context.Canceled, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			calls := 0
			err := Retry{Attempts: 4, Initial: time.Microsecond, Max: time.Microsecond}.Do(context.Background(), nil, "op",
				func(context.Context) error { calls++; return c.err })
			if calls != c.calls || !errors.Is(err, c.err) {
				t.Errorf("calls %d err %v, want %d and the last error", calls, err, c.calls)
			}
		})
	}
	// Success after failures stops retrying.
	calls := 0
	err := Retry{Attempts: 5, Initial: time.Microsecond}.Do(context.Background(), nil, "op", func(context.Context) error {
		calls++
		if calls < 3 {
			return &HTTPError{Status: 502}
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("calls %d err %v", calls, err)
	}
}

// TestRetryForOutlastsAttempts: with For, a retryable failure is retried past
// Attempts until For has passed since the first try, and not a try longer
// than it takes; a failure that is not retryable still ends it at once.
func TestRetryForOutlastsAttempts(t *testing.T) {
	const window = 30 * time.Millisecond
	calls := 0
	start := time.Now()
	err := Retry{Attempts: 1, Initial: time.Millisecond, Max: 2 * time.Millisecond, For: window}.Do(context.Background(), nil, "op",
		func(context.Context) error { calls++; return &HTTPError{Status: 503} })
	if elapsed := time.Since(start); elapsed < window || calls < 2 || StatusOf(err) != 503 {
		t.Errorf("%d calls in %v (%v), want retries for at least %v", calls, elapsed, err, window)
	}
	calls = 0
	err = Retry{Attempts: 1, Initial: time.Millisecond, For: time.Hour}.Do(context.Background(), nil, "op",
		func(context.Context) error { calls++; return &HTTPError{Status: 403} })
	if calls != 1 || StatusOf(err) != 403 {
		t.Errorf("403 with For: %d calls, %v; want one", calls, err)
	}
}

func TestV2AgainstTestServer(t *testing.T) {
	srv := influxv2.NewTest(t, influxv2.Options{HashedTokens: true})
	srv.CreateOrg("acme")
	srv.CreateBucket("acme", "telemetry")
	cur := srv.WriteAuthorization("acme", "telemetry")
	v := NewV2(Options{URL: srv.URL(), OperatorToken: srv.OperatorToken(), Retry: Retry{Attempts: 2, Initial: time.Millisecond}})
	ctx := context.Background()
	a, err := v.Get(ctx, cur.ID)
	if err != nil || a.Token != "" || !a.Active || len(a.Permissions) != 2 {
		t.Fatalf("get: %+v %v", a, err)
	}
	perms, err := v.BucketPermissions(ctx, "acme", []string{"telemetry"})
	if err != nil || len(perms) != 1 || perms[0].ID != a.Permissions[1].ID || perms[0].Action != "write" {
		t.Fatalf("bucket permissions %+v %v, want those of %+v", perms, err, a.Permissions)
	}
	if _, err := v.BucketPermissions(ctx, "acme", []string{"nope"}); err == nil {
		t.Error("unknown bucket accepted")
	}
	label := Label{Credential: "c", Description: "writers", RotationID: "abc123"}
	n, err := v.Create(ctx, "acme", label, a.Permissions)
	if err != nil || n.Token == "" {
		t.Fatalf("create: %v", err)
	}
	if l, ok := v.LabelOf(n); !ok || l != label {
		t.Errorf("label %+v %t, want %+v", l, ok, label)
	}
	if err := v.SetActive(ctx, n, false); err != nil {
		t.Fatal(err)
	}
	if srv.IsActive(n.Token) {
		t.Error("still active")
	}
	if err := v.Delete(ctx, n.ID); err != nil {
		t.Fatal(err)
	}
	if err := v.Delete(ctx, n.ID); err != nil {
		t.Errorf("second delete: %v, want nil (already deleted counts as done)", err)
	}
	if _, err := v.Get(ctx, n.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("get deleted: %v", err)
	}
	if err := v.SetActive(ctx, n, true); !errors.Is(err, ErrNotFound) {
		t.Errorf("patch deleted: %v", err)
	}
	targets, err := v.ProbeTargets(ctx, a)
	if err != nil || len(targets) != 1 || targets[0].Bucket != a.Permissions[1].ID {
		t.Errorf("probe targets %+v %v", targets, err)
	}
	// A 4xx answer is reported with its status and the server's message.
	bad := NewV2(Options{URL: srv.URL(), OperatorToken: "wrong", Retry: Retry{Attempts: 1}})
	_, err = bad.Get(ctx, cur.ID)
	if StatusOf(err) != http.StatusUnauthorized {
		t.Errorf("wrong operator token: %v", err)
	}
}

func TestV1Quoting(t *testing.T) {
	if got := quoteIdent(`a"b\c`); got != `"a\"b\\c"` {
		t.Errorf("quoteIdent %s", got)
	}
	if got := quoteString(`p'w\`); got != `'p\'w\\'` {
		t.Errorf("quoteString %s", got)
	}
	if _, err := NewV1(Options{URL: "http://127.0.0.1:1", OperatorToken: "no-colon"}); err == nil {
		t.Error("an operator token without user:password was accepted")
	}
	v, _ := NewV1(Options{URL: "http://127.0.0.1:1", OperatorToken: "admin:pw"})
	l := Label{Description: "edge", RotationID: "0123abcd"}
	if got, ok := v.LabelOf(&Authorization{ID: UserName(l)}); !ok || got != l {
		t.Errorf("label %+v %t", got, ok)
	}
}

func TestRetryHonoursRetryAfterWithinMax(t *testing.T) {
	calls := 0
	start := time.Now()
	err := Retry{Attempts: 2, Initial: time.Millisecond, Max: 30 * time.Millisecond}.Do(context.Background(), nil, "op",
		func(context.Context) error {
			calls++
			return &HTTPError{Status: 429, RetryAfter: time.Hour}
		})
	if calls != 2 || StatusOf(err) != 429 {
		t.Fatalf("calls %d err %v", calls, err)
	}
	if d := time.Since(start); d < 30*time.Millisecond || d > 10*time.Second {
		t.Errorf("waited %s, want Retry-After capped at max (30ms)", d)
	}
}
