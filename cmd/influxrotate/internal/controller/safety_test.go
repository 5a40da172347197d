package controller

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/config"
	"github.com/influxrotate/influxrotate/rotation"
)

// interfere runs f once when the controller reaches point.
func interfere(point string, f func()) func(string) {
	done := false
	return func(p string) {
		if p == point && !done {
			done = true
			f()
		}
	}
}

// The tests of the safety invariant put a token into a target behind the
// controller's back, as another rotation or a rollback would, and check
// that the controller stops with ErrConcurrent (exit 1) and destroys
// nothing a target holds.

func TestNeverDeactivatesTheTokenATargetHolds(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.controller(interfere("deactivate:before", func() {
		must(t, e.targets()[0].Publish(context.Background(), e.initial.Token))
	}))
	res := e.rotate(c, true)
	if res.Outcome != OutcomeFailed || !errors.Is(res.Err, ErrConcurrent) {
		t.Fatalf("rotate: %+v, want failed with ErrConcurrent", res)
	}
	if !e.srv.IsActive(e.initial.Token) {
		t.Fatal("the token a target holds was deactivated")
	}
	if st := e.loadState(); st.Cycle == nil || st.Cycle.Phase != "deactivate" {
		t.Fatalf("journal: %+v, want the cycle kept at deactivate", st)
	}
	e.checkNoLeak()
}

func TestNeverDeletesTheTokenATargetHolds(t *testing.T) {
	e := newEnv(t, envOptions{})
	// A rollback by hand: the old authorization reactivated and republished.
	c := e.controller(interfere("delete:before", func() {
		must(t, e.targets()[1].Publish(context.Background(), e.initial.Token))
	}))
	res := e.rotate(c, true)
	if res.Outcome != OutcomeFailed || !errors.Is(res.Err, ErrConcurrent) {
		t.Fatalf("rotate: %+v, want failed with ErrConcurrent", res)
	}
	found := false
	for _, a := range e.srv.Authorizations() {
		found = found || a.ID == e.initial.ID
	}
	if !found {
		t.Fatal("the authorization whose token a target holds was deleted")
	}
	if len(e.managed()) != 1 {
		t.Fatalf("managed %v: the new authorization must stay", e.managed())
	}
}

func TestNeverPublishesOverAnotherRotationsToken(t *testing.T) {
	e := newEnv(t, envOptions{})
	other := e.srv.WriteAuthorization(e.org, e.bucket)
	c := e.controller(interfere("publish:before", func() {
		must(t, e.targets()[0].Publish(context.Background(), other.Token))
	}))
	res := e.rotate(c, true)
	if res.Outcome != OutcomeFailed || !errors.Is(res.Err, ErrConcurrent) {
		t.Fatalf("rotate: %+v, want failed with ErrConcurrent", res)
	}
	got, err := e.targets()[0].ReadBack(context.Background())
	must(t, err)
	if got != other.Token {
		t.Fatalf("the target holds %s, want the other rotation's %s", rotation.Fingerprint(got), rotation.Fingerprint(other.Token))
	}
	for i, tg := range e.targets()[1:] {
		if got, _ := tg.ReadBack(context.Background()); got != e.initial.Token {
			t.Errorf("target %d changed to %s", i+1, rotation.Fingerprint(got))
		}
	}
	if m := e.managed(); len(m) != 0 {
		t.Fatalf("the unpublished new authorization was left: %v", m)
	}
	if !e.srv.IsActive(e.initial.Token) || !e.srv.IsActive(other.Token) {
		t.Fatal("an authorization a target holds was revoked")
	}
	if st := e.loadState(); st.Cycle != nil || st.Last.Outcome != OutcomeFailed {
		t.Fatalf("journal %+v, want the cycle closed as failed", st)
	}
	e.checkAudit()
	e.checkNoLeak()
}

// The first report: two controllers, each with its own empty
// state_dir (two CronJob pods), on one credential. Without a shared lock
// both rotated and the run ended with no active authorization. The second
// now finds the first's token in the targets before publishing and stops.
func TestTwoStateDirsOneCredential(t *testing.T) {
	e := newEnv(t, envOptions{})
	var second Result
	c := e.controller(interfere("publish:after", func() {
		b := e.controllerWith(nil, func(cfg *config.Config) { cfg.StateDir = filepath.Join(e.dir, "other-pod") })
		second = e.rotate(b, true)
	}))
	if res := e.rotate(c, true); res.Outcome != OutcomeOK {
		t.Fatalf("first controller: %+v", res)
	}
	if second.Outcome != OutcomeFailed || !errors.Is(second.Err, ErrConcurrent) {
		t.Fatalf("second controller: %+v, want failed with ErrConcurrent", second)
	}
	e.checkEndState()
}

// The third report: after a rotation, a controller with a fresh
// state_dir and the configured (now deleted) authorization_id exited 2.
func TestAuthorizationIDRotatedAway(t *testing.T) {
	e := newEnv(t, envOptions{})
	if res := e.rotate(e.controller(nil), true); res.Outcome != OutcomeOK {
		t.Fatalf("first rotation: %+v", res)
	}
	fresh := e.controllerWith(nil, func(cfg *config.Config) { cfg.StateDir = filepath.Join(e.dir, "fresh") })
	if res := e.rotate(fresh, true); res.Outcome != OutcomeOK {
		t.Fatalf("rotation with a fresh state_dir: %+v", res)
	}
	e.checkEndState()
}
