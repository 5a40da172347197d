package controller

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/state"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/target"
	"github.com/influxrotate/influxrotate/rotation"
	"github.com/influxrotate/influxrotate/testutil/influxv2"
	"github.com/influxrotate/influxrotate/testutil/wait"
)

func TestRotateEndToEnd(t *testing.T) {
	for _, hashed := range []bool{false, true} {
		t.Run(map[bool]string{false: "tokens shown (2.7)", true: "hashed tokens (2.9)"}[hashed], func(t *testing.T) {
			e := newEnv(t, envOptions{hashed: hashed})
			res := e.rotate(e.controller(nil), true)
			if res.Outcome != OutcomeOK || res.Err != nil {
				t.Fatalf("rotate: %+v", res)
			}
			cur := e.checkEndState()
			// Exactly the old permissions, never more.
			if len(cur.Permissions) != len(e.initial.Permissions) {
				t.Errorf("permissions %v, want %v", cur.Permissions, e.initial.Permissions)
			}
			for i, p := range cur.Permissions {
				if p.Action != e.initial.Permissions[i].Action || p.Resource.ID != e.initial.Permissions[i].Resource.ID {
					t.Errorf("permission %d: %v, want %v", i, p, e.initial.Permissions[i])
				}
			}
			// The exec target got the fingerprint in its environment.
			fp, _ := os.ReadFile(filepath.Join(e.dir, "exec-token.fp"))
			if got, want := strings.TrimSpace(string(fp)), rotation.Fingerprint(e.tokenOf(cur)); got != want {
				t.Errorf("INFLUXROTATE_FINGERPRINT = %q, want %q", got, want)
			}
			if !strings.Contains(e.stdout.String(), "outcome=ok") {
				t.Errorf("no summary line: %q", e.stdout.String())
			}
			st := e.loadState()
			if st.Cycle != nil || st.Current.ID != cur.ID || st.Last.Outcome != OutcomeOK {
				t.Errorf("state after rotation: %+v", st)
			}
			// The new token is fresh: a second run has nothing to do.
			if res := e.rotate(e.controller(nil), false); res.Outcome != OutcomeNotDue {
				t.Errorf("second run: %+v, want not_due", res)
			}
			// And a forced one rotates again, from the managed authorization.
			if res := e.rotate(e.controller(nil), true); res.Outcome != OutcomeOK {
				t.Fatalf("second rotation: %+v", res)
			}
			if again := e.checkEndState(); again.ID == cur.ID {
				t.Errorf("second rotation kept %s", cur.ID)
			}
		})
	}
}

func TestDryRunTouchesNothing(t *testing.T) {
	e := newEnv(t, envOptions{})
	before := map[string][]byte{}
	for _, p := range []string{"out/token", "exec-token"} {
		before[p], _ = os.ReadFile(filepath.Join(e.dir, p))
	}
	kubeBefore := len(e.kube.Actions())
	c := e.controller(nil)
	res := c.Rotate(context.Background(), &c.cfg.Credentials[0], RotateOptions{Force: true, DryRun: true})
	for _, a := range e.kube.Actions()[kubeBefore:] {
		if a.GetVerb() != "get" && a.GetVerb() != "list" {
			t.Errorf("dry run sent %s to Kubernetes", a.GetVerb())
		}
	}
	if res.Outcome != OutcomeDryRun || res.Err != nil {
		t.Fatalf("dry run: %+v", res)
	}
	for _, r := range e.srv.Requests() {
		if r.Method != http.MethodGet {
			t.Errorf("dry run sent %s %s", r.Method, r.Path)
		}
	}
	for p, data := range before {
		now, _ := os.ReadFile(filepath.Join(e.dir, p))
		if string(now) != string(data) {
			t.Errorf("dry run changed %s", p)
		}
	}
	for _, p := range []string{"state", "audit"} {
		if _, err := os.Stat(filepath.Join(e.dir, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("dry run created %s", p)
		}
	}
	out := e.stdout.String()
	for _, want := range []string{"would rotate authorization " + e.initial.ID, "provision:", "publish:", "file ", "grace:", "observe:"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	if len(e.managed()) != 0 {
		t.Error("dry run created an authorization")
	}
	e.checkNoLeak()
}

func TestAPICallsRetryTransientErrors(t *testing.T) {
	e := newEnv(t, envOptions{})
	// One transient failure on every kind of call the cycle makes.
	e.srv.Inject(
		influxv2.Fault{Path: "/api/v2/authorizations", Status: 503},
		influxv2.Fault{Path: "/api/v2/orgs", Status: 429, RetryAfter: "0"},
		influxv2.Fault{Path: "/api/v2/authorizations/" + e.initial.ID, ResetConnection: true},
		influxv2.Fault{Path: "/api/v2/write", Status: 502},
	)
	res := e.rotate(e.controller(nil), true)
	if res.Outcome != OutcomeOK {
		t.Fatalf("rotate: %+v\nlogs:\n%s", res, e.logs.String())
	}
	if n := e.srv.PendingFaults(); n != 0 {
		t.Errorf("%d faults were never hit", n)
	}
	e.checkEndState()
}

func TestRetriesAreBounded(t *testing.T) {
	e := newEnv(t, envOptions{})
	// As many failures as attempts: the call gives up, the cycle waits in
	// its journal.
	for range 4 {
		e.srv.Inject(influxv2.Fault{Path: "/api/v2/orgs", Status: 503})
	}
	res := e.rotate(e.controller(nil), true)
	if res.Outcome != OutcomeInterrupted || res.Phase != state.PhaseProvision {
		t.Fatalf("rotate: %+v, want interrupted at provision", res)
	}
	if n := e.srv.PendingFaults(); n != 0 {
		t.Errorf("%d faults left: fewer attempts than configured", n)
	}
	if !e.srv.IsActive(e.initial.Token) {
		t.Fatal("the old token was deactivated")
	}
	if res := e.rotate(e.controller(nil), false); res.Outcome != OutcomeOK {
		t.Fatalf("resume: %+v", res)
	}
	e.checkEndState()
}

func TestDeleteOfDeletedAuthorizationCountsAsDone(t *testing.T) {
	e := newEnv(t, envOptions{})
	// Someone deletes the old authorization during observe.
	c := e.controller(func(p string) {
		if p == "delete:before" {
			must(t, e.srv.DeleteAuthorization(e.initial.ID))
		}
	})
	if res := e.rotate(c, true); res.Outcome != OutcomeOK {
		t.Fatalf("rotate: %+v", res)
	}
	e.checkEndState()
}

func TestEscalationIsRefused(t *testing.T) {
	e := newEnv(t, envOptions{})
	// An operator token that may manage authorizations but not write to the
	// bucket: the server refuses to hand out write on it (escalation).
	orgID := e.initial.OrgID
	op := e.srv.CreateAuthorization(e.org, "limited operator",
		influxv2.Permission{Action: "read", Resource: influxv2.Resource{Type: "authorizations", OrgID: orgID}},
		influxv2.Permission{Action: "write", Resource: influxv2.Resource{Type: "authorizations", OrgID: orgID}},
		influxv2.Permission{Action: "read", Resource: influxv2.Resource{Type: "orgs", ID: orgID}},
		influxv2.Permission{Action: "read", Resource: influxv2.Resource{Type: "users"}},
		influxv2.Permission{Action: "write", Resource: influxv2.Resource{Type: "users"}},
	)
	must(t, os.WriteFile(filepath.Join(e.dir, "operator-token"), []byte(op.Token), 0o600))
	res := e.rotate(e.controller(nil), true)
	if res.Outcome != OutcomeFailed || res.Err == nil {
		t.Fatalf("rotate: %+v, want failed", res)
	}
	if !strings.Contains(res.Err.Error(), "403") {
		t.Errorf("error %v does not name the refusal", res.Err)
	}
	if !e.srv.IsActive(e.initial.Token) {
		t.Error("the old token is no longer active")
	}
	for _, tg := range e.targets() {
		if tok, _ := tg.ReadBack(context.Background()); tok != e.initial.Token {
			t.Errorf("%s changed", tg.Name())
		}
	}
	if len(e.managed()) != 0 {
		t.Errorf("an authorization was left: %v", e.managed())
	}
	if st := e.loadState(); st.Cycle != nil || st.Last.Outcome != OutcomeFailed {
		t.Errorf("state: %+v", st)
	}
	e.checkAudit()
	e.checkNoLeak()
}

func TestVerifyFailureRepublishesTheOldToken(t *testing.T) {
	e := newEnv(t, envOptions{hashed: true})
	var newID string
	c := e.controller(func(p string) {
		if p == "verify:before" {
			// Break the new token before it is probed.
			st := e.loadState()
			newID = st.Cycle.New.ID
			must(t, e.srv.SetActive(newID, false))
		}
	})
	res := e.rotate(c, true)
	if res.Outcome != OutcomeFailed {
		t.Fatalf("rotate: %+v, want failed", res)
	}
	if _, ok := e.srv.Authorization(newID); ok {
		t.Error("the refused new authorization was not deleted")
	}
	if !e.srv.IsActive(e.initial.Token) {
		t.Error("the old token is not active")
	}
	for _, tg := range e.targets() {
		if tok, _ := tg.ReadBack(context.Background()); tok != e.initial.Token {
			t.Errorf("%s does not hold the old token again", tg.Name())
		}
	}
	e.checkAudit()
	e.checkNoLeak()
}

func TestSecondControllerIsLockedOut(t *testing.T) {
	e := newEnv(t, envOptions{})
	var inner Result
	c := e.controller(func(p string) {
		if p == "publish:before" {
			inner = e.rotate(e.controller(nil), true)
		}
	})
	if res := e.rotate(c, true); res.Outcome != OutcomeOK {
		t.Fatalf("rotate: %+v", res)
	}
	if inner.Outcome != OutcomeFailed || !errors.Is(inner.Err, state.ErrLocked) {
		t.Errorf("second controller: %+v, want locked out", inner)
	}
	e.checkEndState()
}

// Every phase boundary and the points inside phases where a crash leaves
// the server and the journal out of step.
var crashPoints = []string{
	"provision:before", "provision:created", "provision:after",
	"publish:before", "publish:target-0", "publish:target-2", "publish:after",
	"verify:before", "verify:after",
	"grace:before", "grace:after",
	"deactivate:before", "deactivate:patched", "deactivate:after",
	"observe:before", "observe:after",
	"delete:before", "delete:deleted", "delete:after",
	"done:before",
}

func TestResumeAfterCrashAtEveryPoint(t *testing.T) {
	for _, hashed := range []bool{false, true} {
		for _, point := range crashPoints {
			name := point
			if hashed {
				name += "/hashed"
			}
			t.Run(name, func(t *testing.T) {
				e := newEnv(t, envOptions{hashed: hashed})
				if !e.runUntilCrash(point, true) {
					t.Fatalf("never reached %s", point)
				}
				if st := e.loadState(); st.Cycle == nil {
					t.Fatalf("no cycle journaled at %s", point)
				}
				if res := e.rotate(e.controller(nil), false); res.Outcome != OutcomeOK {
					t.Fatalf("resume: %+v\n%s", res, e.logs.String())
				}
				e.checkEndState()
			})
		}
	}
}

func TestRollbackDuringObserve(t *testing.T) {
	for _, hashed := range []bool{false, true} {
		t.Run(map[bool]string{false: "old token on the server", true: "old token in a target"}[hashed], func(t *testing.T) {
			e := newEnv(t, envOptions{hashed: hashed})
			if !e.runUntilCrash("observe:before", true) {
				t.Fatal("never reached observe")
			}
			if e.srv.IsActive(e.initial.Token) {
				t.Fatal("old token still active during observe")
			}
			c := e.controller(nil)
			res := c.Rollback(context.Background(), &c.cfg.Credentials[0])
			if hashed {
				// The targets were all overwritten and the server hides the
				// token: the old authorization is reactivated, not republished.
				if res.Outcome != OutcomeFailed || !strings.Contains(res.Err.Error(), "token is unknown") {
					t.Fatalf("rollback: %+v, want partial", res)
				}
				if !e.srv.IsActive(e.initial.Token) {
					t.Error("old authorization not reactivated")
				}
				// The next rotation retires it.
				if res := e.rotate(e.controller(nil), true); res.Outcome != OutcomeOK {
					t.Fatalf("rotate after partial rollback: %+v", res)
				}
				e.checkEndState()
				return
			}
			if res.Outcome != OutcomeRolledBack {
				t.Fatalf("rollback: %+v", res)
			}
			if !e.srv.IsActive(e.initial.Token) {
				t.Error("old token not active again")
			}
			if len(e.managed()) != 0 {
				t.Errorf("new authorization left: %v", e.managed())
			}
			for _, tg := range e.targets() {
				if tok, _ := tg.ReadBack(context.Background()); tok != e.initial.Token {
					t.Errorf("%s does not hold the old token", tg.Name())
				}
			}
			if st := e.loadState(); st.Cycle != nil || st.Current.ID != e.initial.ID {
				t.Errorf("state after rollback: %+v", st)
			}
			e.checkAudit()
			e.checkNoLeak()
		})
	}
}

func TestRollbackBeforePublishAbandonsTheCycle(t *testing.T) {
	e := newEnv(t, envOptions{hashed: true})
	if !e.runUntilCrash("provision:after", true) {
		t.Fatal("never reached provision:after")
	}
	if len(e.managed()) != 1 {
		t.Fatalf("managed %v, want the new one", e.managed())
	}
	c := e.controller(nil)
	if res := c.Rollback(context.Background(), &c.cfg.Credentials[0]); res.Outcome != OutcomeRolledBack {
		t.Fatalf("rollback: %+v", res)
	}
	if len(e.managed()) != 0 || !e.srv.IsActive(e.initial.Token) {
		t.Errorf("after rollback: managed %v, old active %t", e.managed(), e.srv.IsActive(e.initial.Token))
	}
	for _, tg := range e.targets() {
		if tok, _ := tg.ReadBack(context.Background()); tok != e.initial.Token {
			t.Errorf("%s changed", tg.Name())
		}
	}
	if st := e.loadState(); st.Cycle != nil {
		t.Errorf("cycle left: %+v", st.Cycle)
	}
	// The credential rotates normally afterwards.
	if res := e.rotate(e.controller(nil), true); res.Outcome != OutcomeOK {
		t.Fatalf("rotate after rollback: %+v", res)
	}
	e.checkEndState()
}

func TestPermissionsFromBuckets(t *testing.T) {
	// The writer token holds read and write on the bucket; the new one gets
	// write only, as configured.
	e := newEnv(t, envOptions{extra: `buckets = ["telemetry"]`})
	if res := e.rotate(e.controller(nil), true); res.Outcome != OutcomeOK {
		t.Fatalf("rotate: %+v", res)
	}
	cur := e.checkEndState()
	if len(cur.Permissions) != 1 || cur.Permissions[0].Action != "write" {
		t.Errorf("permissions %v, want write on the bucket only", cur.Permissions)
	}
}

func TestBucketsBeyondTheCurrentPermissionsAreRefused(t *testing.T) {
	e := newEnv(t, envOptions{extra: `buckets = ["telemetry", "secrets"]`})
	e.srv.CreateBucket(e.org, "secrets")
	res := e.rotate(e.controller(nil), true)
	if !ConfigError(res.Err) || !strings.Contains(res.Err.Error(), "more than the current authorization") {
		t.Fatalf("rotate: %+v, want a configuration error", res)
	}
	if len(e.managed()) != 0 {
		t.Error("an authorization was created")
	}
}

func TestCurrentFoundByDescription(t *testing.T) {
	line := `description = "write acme/telemetry"`
	e := newEnv(t, envOptions{authLine: &line})
	if a, _ := e.srv.Authorization(e.initial.ID); a.Description != "write acme/telemetry" {
		// The test server is ours: a skip here would silently stop testing
		// discovery by description.
		t.Fatalf("the test server describes writer tokens as %q, not as the authLine set it", a.Description)
	}
	if res := e.rotate(e.controller(nil), true); res.Outcome != OutcomeOK {
		t.Fatalf("rotate: %+v", res)
	}
	e.checkEndState()
	// The next rotation finds the managed authorization by its label.
	must(t, os.RemoveAll(filepath.Join(e.dir, "state")))
	if res := e.rotate(e.controller(nil), true); res.Outcome != OutcomeOK {
		t.Fatalf("rotate without a journal: %+v", res)
	}
	e.checkEndState()
}

func TestFirstAuthorizationFromBuckets(t *testing.T) {
	line := "description = \"edge writers\"\nbuckets = [\"telemetry\"]"
	e := newEnv(t, envOptions{authLine: &line})
	if res := e.rotate(e.controller(nil), true); res.Outcome != OutcomeOK {
		t.Fatalf("rotate: %+v", res)
	}
	managed := e.managed()
	if len(managed) != 1 || !strings.HasPrefix(managed[0].Description, "edge writers [influxrotate:telegraf:") {
		t.Fatalf("managed %v", managed)
	}
	// The initial token is not this credential's: it is left alone.
	if !e.srv.IsActive(e.initial.Token) {
		t.Error("an unrelated authorization was deactivated")
	}
}

// TestCreateWhoseAnswerIsLost puts a proxy in front of the server that
// forwards the first create but answers 503 instead of the server's 201, as
// a load balancer timing out would: the authorization exists, the
// controller does not know it. The retry must find it by its rotation id
// (and reuse it, or delete it when its token is hashed) instead of leaving
// an orphan.
func TestCreateWhoseAnswerIsLost(t *testing.T) {
	for _, hashed := range []bool{false, true} {
		t.Run(map[bool]string{false: "tokens shown", true: "hashed tokens"}[hashed], func(t *testing.T) {
			e := newEnv(t, envOptions{hashed: hashed})
			target, _ := url.Parse(e.srv.URL())
			rp := httputil.NewSingleHostReverseProxy(target)
			var dropped atomic.Bool
			proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPost && r.URL.Path == "/api/v2/authorizations" && dropped.CompareAndSwap(false, true) {
					rp.ServeHTTP(httptest.NewRecorder(), r) // the server creates it; the answer is lost
					http.Error(w, `{"code":"unavailable","message":"upstream timed out"}`, http.StatusServiceUnavailable)
					return
				}
				rp.ServeHTTP(w, r)
			}))
			defer proxy.Close()
			data, err := os.ReadFile(e.cfgPath)
			must(t, err)
			must(t, os.WriteFile(e.cfgPath, []byte(strings.Replace(string(data), e.srv.URL(), proxy.URL, 1)), 0o600))
			if res := e.rotate(e.controller(nil), true); res.Outcome != OutcomeOK {
				t.Fatalf("rotate: %+v\n%s", res, e.logs.String())
			}
			if !dropped.Load() {
				t.Fatal("the create never went through the proxy")
			}
			creates := 0
			for _, r := range e.srv.Requests() {
				if r.Method == http.MethodPost && r.Path == "/api/v2/authorizations" {
					creates++
				}
			}
			if want := map[bool]int{false: 1, true: 2}[hashed]; creates != want {
				t.Errorf("%d creates, want %d", creates, want)
			}
			e.checkEndState()
		})
	}
}

func TestRollbackRepublishesTheOldTokenHeldByATarget(t *testing.T) {
	e := newEnv(t, envOptions{hashed: true})
	if !e.runUntilCrash("observe:before", true) {
		t.Fatal("never reached observe")
	}
	// One target was not updated (a node that missed the publish, a restored
	// backup): it still holds the old token, the only copy the controller can
	// find with hashed tokens.
	must(t, os.WriteFile(filepath.Join(e.dir, "out", "token"), []byte(e.initial.Token+"\n"), 0o600))
	c := e.controller(nil)
	if res := c.Rollback(context.Background(), &c.cfg.Credentials[0]); res.Outcome != OutcomeRolledBack {
		t.Fatalf("rollback: %+v", res)
	}
	if !e.srv.IsActive(e.initial.Token) || len(e.managed()) != 0 {
		t.Errorf("old active %t, managed %v", e.srv.IsActive(e.initial.Token), e.managed())
	}
	for _, tg := range e.targets() {
		if tok, _ := tg.ReadBack(context.Background()); tok != e.initial.Token {
			t.Errorf("%s does not hold the old token", tg.Name())
		}
	}
	e.checkAudit()
	e.checkNoLeak()
}

func TestRunRotatesOnSchedule(t *testing.T) {
	e := newEnv(t, envOptions{extra: "jitter = \"100ms\"", grace: 5 * time.Millisecond, observe: 5 * time.Millisecond})
	data, err := os.ReadFile(e.cfgPath)
	must(t, err)
	must(t, os.WriteFile(e.cfgPath, []byte(strings.Replace(string(data), `max_age = "1h"`, `max_age = "300ms"`, 1)), 0o600))
	c := e.controller(nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	seen := map[string]bool{}
	rotated := wait.Check(t, 30*time.Second, "three rotations by the daemon", func() bool {
		if st := e.loadState(); st.Last.Outcome == OutcomeOK {
			seen[st.Last.RotationID] = true
		}
		return len(seen) >= 3
	})
	cancel()
	if !rotated {
		t.Fatalf("%d rotations in 30s, want 3", len(seen))
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if st := e.loadState(); st.Cycle != nil {
		// Cancelled in the middle of a fourth rotation: it resumes.
		if res := e.rotate(e.controller(nil), false); res.Outcome != OutcomeOK {
			t.Fatalf("resume: %+v", res)
		}
	}
	e.checkEndState()
}

// A named pipe where the token file belongs used to block publish until
// SIGKILL with the new authorization provisioned. The target refuses it,
// and the cycle is abandoned: old token kept and republished, new
// authorization deleted.
func TestTargetThatRefusesTheTokenAbortsTheCycle(t *testing.T) {
	e := newEnv(t, envOptions{})
	path := filepath.Join(e.dir, "out", "token")
	must(t, os.Remove(path))
	must(t, syscall.Mkfifo(path, 0o600))
	done := make(chan Result, 1)
	go func() { done <- e.rotate(e.controller(nil), true) }()
	var res Result
	select {
	case res = <-done:
	case <-time.After(time.Minute):
		t.Fatal("rotation blocked on the named pipe")
	}
	if res.Outcome != OutcomeFailed || !errors.Is(res.Err, target.ErrRefused) {
		t.Fatalf("rotate: %+v, want failed with the target's refusal", res)
	}
	if m := e.managed(); len(m) != 0 {
		t.Errorf("authorizations left provisioned: %v", m)
	}
	if !e.srv.IsActive(e.initial.Token) {
		t.Error("the old token is not active")
	}
	if st := e.loadState(); st.Cycle != nil {
		t.Errorf("the cycle was not abandoned: %+v", st.Cycle)
	}
	for _, tg := range e.targets()[1:] {
		if tok, _ := tg.ReadBack(context.Background()); tok != e.initial.Token {
			t.Errorf("%s does not hold the old token", tg.Name())
		}
	}
	e.checkAudit()
	e.checkNoLeak()
}
