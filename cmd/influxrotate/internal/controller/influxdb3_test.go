package controller

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/state"
	"github.com/influxrotate/influxrotate/rotation"
	"github.com/influxrotate/influxrotate/testutil/influxv2"
)

var editions = []influxv2.Edition{influxv2.Core, influxv2.Enterprise}

// v3Cycle is the cycle on a server without an inactive state.
var v3Cycle = []state.Phase{state.PhaseProvision, state.PhasePublish, state.PhaseVerify, state.PhaseAdopt, state.PhaseGrace,
	state.PhaseDelete, state.PhaseDone}

// managedV3 lists the tokens the controller made for the credential.
func (e *testEnv) managedV3() []influxv2.V3Token {
	var out []influxv2.V3Token
	for _, tk := range e.srv.V3Tokens() {
		if strings.Contains(tk.Name, "[influxrotate:telegraf:") {
			out = append(out, tk)
		}
	}
	return out
}

// writeV3 writes one point to the credential's database with tok and
// returns the status.
func (e *testEnv) writeV3(tok string) int {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL()+"/api/v2/write?bucket="+e.bucket, strings.NewReader("m f=1i 1\n"))
	must(e.t, err)
	req.Header.Set("Authorization", "Token "+tok)
	resp, err := http.DefaultClient.Do(req)
	must(e.t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// auditRecords reads the audit log.
func (e *testEnv) auditRecords() []rotation.AuditRecord {
	e.t.Helper()
	f, err := os.Open(filepath.Join(e.dir, "audit", "audit.jsonl"))
	must(e.t, err)
	defer f.Close()
	var out []rotation.AuditRecord
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec rotation.AuditRecord
		must(e.t, json.Unmarshal(sc.Bytes(), &rec))
		out = append(out, rec)
	}
	must(e.t, sc.Err())
	return out
}

// checkV3EndState asserts the invariants after a completed rotation on
// InfluxDB 3: exactly one managed token, the initial one deleted, every
// target holding the new token, which writes and expires at max_age + grace
// + expiry_margin (recorded in the audit and the journal), no phase of the
// inactive state run, a valid audit chain and no token in any output.
func (e *testEnv) checkV3EndState() influxv2.V3Token {
	e.t.Helper()
	managed := e.managedV3()
	if len(managed) != 1 {
		e.t.Fatalf("managed tokens = %v, want exactly one", managed)
	}
	cur := managed[0]
	for _, tk := range e.srv.V3Tokens() {
		if tk.Name != cur.Name && tk.Name != influxv2.V3OperatorName {
			e.t.Errorf("left over: %v", tk)
		}
	}
	for _, tg := range e.targets() {
		got, err := tg.ReadBack(context.Background())
		if err != nil {
			e.t.Fatalf("%s: %v", tg.Name(), err)
		}
		if got != cur.Token {
			e.t.Errorf("%s holds %s, want %s", tg.Name(), rotation.Fingerprint(got), rotation.Fingerprint(cur.Token))
		}
	}
	if code := e.writeV3(cur.Token); code != http.StatusNoContent {
		e.t.Errorf("a write with the published token: %d", code)
	}
	cr := e.config().Credentials[0]
	lifetime := (cr.TokenExpiry() + time.Second - 1).Truncate(time.Second)
	if cur.ExpiresAt.IsZero() || !cur.ExpiresAt.Equal(cur.CreatedAt.Add(lifetime)) {
		e.t.Errorf("token expires at %v, want its creation %v + max_age + grace + expiry_margin (%v)", cur.ExpiresAt, cur.CreatedAt, lifetime)
	}
	if st := e.loadState(); !st.Current.Expires.Equal(cur.ExpiresAt) {
		e.t.Errorf("journal: current token expires %v, want %v", st.Current.Expires, cur.ExpiresAt)
	}
	want := "token expires at " + cur.ExpiresAt.UTC().Format(time.RFC3339)
	var recorded bool
	for _, rec := range e.auditRecords() {
		switch {
		case rec.Event == string(state.PhaseDeactivate) || rec.Event == string(state.PhaseObserve):
			e.t.Errorf("audit: %s on a server without an inactive state", rec.Event)
		case rec.Event == string(state.PhaseProvision) && rec.Outcome == OutcomeOK && rec.NewAuthID == cur.Name:
			recorded = rec.Message == want
		}
	}
	if !recorded {
		e.t.Errorf("no provision record of %s saying %q", cur.Name, want)
	}
	e.checkAudit()
	e.checkNoLeak()
	return cur
}

func TestInfluxDB3Rotation(t *testing.T) {
	for _, ed := range editions {
		t.Run(string(ed), func(t *testing.T) {
			e := newEnv(t, envOptions{v3: ed})
			var points []string
			c := e.controller(func(p string) { points = append(points, p) })
			if got := c.Phases(); !slices.Equal(got, v3Cycle) {
				t.Fatalf("phases %v, want %v", got, v3Cycle)
			}
			cfg := c.cfg
			if res := c.Rotate(context.Background(), &cfg.Credentials[0], RotateOptions{Force: true, DryRun: true}); res.Outcome != OutcomeDryRun ||
				!strings.Contains(e.stdout.String(), "then delete telegraf: this server has no inactive state") ||
				strings.Contains(e.stdout.String(), "deactivate") {
				t.Errorf("dry run %+v printed\n%s", res, e.stdout.String())
			}
			if res := e.rotate(c, true); res.Outcome != OutcomeOK {
				t.Fatalf("rotation: %+v\n%s", res, e.logs.String())
			}
			var afters []string
			for _, p := range points {
				if phase, ok := strings.CutSuffix(p, ":after"); ok {
					afters = append(afters, phase)
				}
			}
			if want := strings.Fields("provision publish verify adopt grace delete done"); !slices.Equal(afters, want) {
				t.Errorf("phases run %v, want %v", afters, want)
			}
			cur := e.checkV3EndState()
			if ed == influxv2.Enterprise {
				want := []influxv2.V3Permission{{ResourceType: "db", ResourceNames: []string{e.bucket}, Actions: []string{"write"}}}
				if !slices.EqualFunc(cur.Permissions, want, func(a, b influxv2.V3Permission) bool { return a.String() == b.String() }) {
					t.Errorf("new token's permissions %v, want exactly the old one's %v", cur.Permissions, want)
				}
			} else if !cur.Admin {
				t.Errorf("Core: the new token is not an admin token")
			}
			sts, err := c.Status(context.Background())
			must(t, err)
			if len(sts) != 1 || !slices.Equal(sts[0].Phases, v3Cycle) || !sts[0].Current.Expires.Equal(cur.ExpiresAt) {
				t.Errorf("status %+v, want the InfluxDB 3 phases and the token's expiry", sts)
			}
			// A second rotation retires a token the controller made.
			if res := e.rotate(e.controller(nil), true); res.Outcome != OutcomeOK {
				t.Fatalf("second rotation: %+v\n%s", res, e.logs.String())
			}
			if next := e.checkV3EndState(); next.Name == cur.Name {
				t.Errorf("the second rotation kept %s", cur.Name)
			}
		})
	}
}

// Every phase boundary of the InfluxDB 3 cycle and the points inside its
// phases where the server and the journal are out of step.
var v3CrashPoints = []string{
	"provision:before", "provision:created", "provision:after",
	"publish:before", "publish:target-0", "publish:target-2", "publish:after",
	"verify:before", "verify:after",
	"grace:before", "grace:after",
	"delete:before", "delete:deleted", "delete:after",
	"done:before",
}

// TestInfluxDB3ResumeAfterCrashAtEveryPoint stops the controller at every
// point (a panic from the hook, as abrupt as a kill for the journal and the
// server) and resumes with a fresh controller, which knows no token: an
// InfluxDB 3 token is shown only at creation, so a token lost before it
// was published must be deleted and made again.
func TestInfluxDB3ResumeAfterCrashAtEveryPoint(t *testing.T) {
	for _, ed := range editions {
		for _, point := range v3CrashPoints {
			t.Run(string(ed)+"/"+point, func(t *testing.T) {
				e := newEnv(t, envOptions{v3: ed})
				if !e.runUntilCrash(point, true) {
					t.Fatalf("never reached %s", point)
				}
				if st := e.loadState(); st.Cycle == nil {
					t.Fatalf("no cycle journaled at %s", point)
				}
				if res := e.rotate(e.controller(nil), false); res.Outcome != OutcomeOK {
					t.Fatalf("resume: %+v\n%s", res, e.logs.String())
				}
				e.checkV3EndState()
			})
		}
	}
}

// TestInfluxDB3CreateWhoseAnswerIsLost: the server makes the token and the
// connection drops before the answer, the only copy of the token. The retry
// meets 409 (the name holds the rotation id); the token is deleted and made
// again, and no orphan is left.
func TestInfluxDB3CreateWhoseAnswerIsLost(t *testing.T) {
	for _, ed := range editions {
		t.Run(string(ed), func(t *testing.T) {
			e := newEnv(t, envOptions{v3: ed})
			path := map[influxv2.Edition]string{influxv2.Core: "/api/v3/configure/token/named_admin",
				influxv2.Enterprise: "/api/v3/enterprise/configure/token"}[ed]
			e.srv.Inject(influxv2.Fault{Path: path, LoseAnswer: true})
			if res := e.rotate(e.controller(nil), true); res.Outcome != OutcomeOK {
				t.Fatalf("rotate: %+v\n%s", res, e.logs.String())
			}
			if n := e.srv.PendingFaults(); n != 0 {
				t.Fatal("the create never lost its answer")
			}
			var creates, conflicts int
			for _, r := range e.srv.Requests() {
				if r.Method == http.MethodPost && r.Path == path {
					creates++
					if r.Status == http.StatusConflict {
						conflicts++
					}
				}
			}
			if creates != 3 || conflicts != 1 {
				t.Errorf("%d creates, %d answered 409; want the lost one, a 409, and one after the delete", creates, conflicts)
			}
			e.checkV3EndState()
		})
	}
}

// TestInfluxDB3OldTokenOutlivesAFailedDelete: the delete of the old token
// fails every retry; the cycle stops at delete with both tokens valid. The
// old token, made by the controller with an expiry, stops working by
// itself when that expiry passes (the server's clock moved on), and the
// next run deletes it.
func TestInfluxDB3OldTokenOutlivesAFailedDelete(t *testing.T) {
	clock := influxv2.NewManualClock(time.Now())
	e := newEnv(t, envOptions{v3: influxv2.Core, now: clock.Now})
	if res := e.rotate(e.controller(nil), true); res.Outcome != OutcomeOK {
		t.Fatalf("first rotation: %+v", res)
	}
	old := e.checkV3EndState()
	// The next token is made later on the server's clock, so it outlives this one.
	clock.Advance(30 * time.Minute)
	attempts := e.config().Retry.Attempts
	for range attempts {
		e.srv.Inject(influxv2.Fault{Path: "/api/v3/configure/token", Status: http.StatusInternalServerError,
			Body: `{"error":"catalog unavailable"}`})
	}
	res := e.rotate(e.controller(nil), true)
	if res.Outcome != OutcomeInterrupted || res.Phase != state.PhaseDelete {
		t.Fatalf("rotation with a failing delete: %+v, want interrupted at delete", res)
	}
	if n := e.srv.PendingFaults(); n != 0 {
		t.Fatalf("%d of %d delete faults unused", n, attempts)
	}
	if code := e.writeV3(old.Token); code != http.StatusNoContent {
		t.Fatalf("the old token before its expiry: %d, want it still valid", code)
	}
	clock.Advance(old.ExpiresAt.Sub(clock.Now()))
	if code := e.writeV3(old.Token); code != http.StatusUnauthorized {
		t.Errorf("the old token at its expiry: %d, want 401", code)
	}
	managed := e.managedV3()
	if len(managed) != 2 {
		t.Fatalf("managed tokens %v, want the old and the new one", managed)
	}
	for _, tk := range managed {
		if tk.Name != old.Name {
			if code := e.writeV3(tk.Token); code != http.StatusNoContent {
				t.Errorf("the new token when the old one expired: %d", code)
			}
		}
	}
	if res := e.rotate(e.controller(nil), false); res.Outcome != OutcomeOK {
		t.Fatalf("resume: %+v\n%s", res, e.logs.String())
	}
	e.checkV3EndState()
}

// TestInfluxDB3VerifyWaitsForActivation: a server that answers 401 to a new
// token's first requests (as InfluxDB Cloud Dedicated warns) fails verify
// at once without activation_timeout, and passes with it.
func TestInfluxDB3VerifyWaitsForActivation(t *testing.T) {
	t.Run("without activation_timeout", func(t *testing.T) {
		e := newEnv(t, envOptions{v3: influxv2.Core})
		e.srv.DelayV3Activation(3)
		res := e.rotate(e.controller(nil), true)
		if res.Outcome != OutcomeFailed || !strings.Contains(res.Err.Error(), "refused") {
			t.Fatalf("rotate: %+v, want the new token refused", res)
		}
		// The cycle ended with the old token published and the new one gone.
		for _, tg := range e.targets() {
			if got, err := tg.ReadBack(context.Background()); err != nil || got != e.initial.Token {
				t.Errorf("%s holds %s (%v), want the old token back", tg.Name(), rotation.Fingerprint(got), err)
			}
		}
		if m := e.managedV3(); len(m) != 0 {
			t.Errorf("managed tokens %v after the abort, want none", m)
		}
		e.checkNoLeak()
	})
	t.Run("with activation_timeout", func(t *testing.T) {
		e := newEnv(t, envOptions{v3: influxv2.Core, extra: `activation_timeout = "30s"`})
		e.srv.DelayV3Activation(3)
		if res := e.rotate(e.controller(nil), true); res.Outcome != OutcomeOK {
			t.Fatalf("rotate: %+v\n%s", res, e.logs.String())
		}
		cur := e.checkV3EndState()
		refused := 0
		for _, r := range e.srv.Requests() {
			if r.Path == "/api/v2/write" && r.Status == http.StatusUnauthorized && r.Fingerprint == rotation.Fingerprint(cur.Token) {
				refused++
			}
		}
		if refused != 3 {
			t.Errorf("verify met %d refusals of the new token, want the 3 the server gave", refused)
		}
	})
}

// TestInfluxDB3Rollback: before the delete both tokens are valid and a
// rollback keeps them so; once the old token is deleted a rollback says it
// cannot undo anything and changes nothing.
func TestInfluxDB3Rollback(t *testing.T) {
	t.Run("before the delete", func(t *testing.T) {
		e := newEnv(t, envOptions{v3: influxv2.Enterprise})
		if !e.runUntilCrash("delete:before", true) {
			t.Fatal("never reached delete")
		}
		cfg := e.config()
		res := e.controller(nil).Rollback(context.Background(), &cfg.Credentials[0])
		if res.Err == nil || !strings.Contains(res.Err.Error(), "both stay valid") {
			t.Fatalf("rollback: %+v, want both tokens kept valid", res)
		}
		nw := e.managedV3()
		if len(nw) != 1 || e.writeV3(nw[0].Token) != http.StatusNoContent || e.writeV3(e.initial.Token) != http.StatusNoContent {
			t.Fatalf("after the rollback: managed %v; want the new and the old token both valid", nw)
		}
		// The next rotation deletes both.
		if res := e.rotate(e.controller(nil), true); res.Outcome != OutcomeOK {
			t.Fatalf("rotation after the rollback: %+v\n%s", res, e.logs.String())
		}
		e.checkV3EndState()
	})
	t.Run("after the delete", func(t *testing.T) {
		e := newEnv(t, envOptions{v3: influxv2.Core})
		if res := e.rotate(e.controller(nil), true); res.Outcome != OutcomeOK {
			t.Fatalf("rotation: %+v", res)
		}
		before := e.loadState()
		cfg := e.config()
		res := e.controller(nil).Rollback(context.Background(), &cfg.Credentials[0])
		if res.Outcome != OutcomeFailed || res.Err == nil || !strings.Contains(res.Err.Error(), "cannot undo") {
			t.Fatalf("rollback: %+v, want a clear refusal", res)
		}
		if after := e.loadState(); after.Current.ID != before.Current.ID || after.Last != before.Last {
			t.Errorf("the rollback changed the journal: %+v, was %+v", after, before)
		}
		e.checkV3EndState()
	})
}
