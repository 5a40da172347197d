package controller

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/state"
	"github.com/influxrotate/influxrotate/testutil/wait"
)

// The controller end to end with the journal and the lock in the (fake)
// Kubernetes API, behind the Role of deploy/kubernetes: every request the
// Role does not grant fails the test.

func TestKubernetesRotateEndToEnd(t *testing.T) {
	e := newEnv(t, envOptions{kube: true})
	if res := e.rotate(e.controller(nil), true); res.Outcome != OutcomeOK {
		t.Fatalf("rotate: %+v\n%s", res, e.logs.String())
	}
	e.checkEndState()
	if _, err := os.Stat(filepath.Join(e.dir, "state")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a state directory was written: %v", err)
	}
	st := e.loadState()
	if st.Cycle != nil || st.Last.Outcome != OutcomeOK || st.Current.ID != e.managed()[0].ID {
		t.Fatalf("journal in the ConfigMap: %+v", st)
	}
	if holder, _ := lease(t, e.kube, "influxrotate-telegraf"); holder != "" {
		t.Errorf("the Lease is still held by %q after the run", holder)
	}
	// Every phase on the Secret, for kubectl describe secret.
	want := []string{"RotationStart", "RotationProvision", "RotationPublish", "RotationVerify", "RotationGrace",
		"RotationDeactivate", "RotationObserve", "RotationDelete", "RotationDone"}
	wait.For(t, 10*time.Second, "an Event on the Secret for every phase", func() bool {
		seen := map[string]bool{}
		for _, ev := range e.kubeEvents() {
			seen[ev.Reason] = true
		}
		for _, r := range want {
			if !seen[r] {
				return false
			}
		}
		return true
	})
	for _, ev := range e.kubeEvents() {
		if ev.Reason == "RotationPublish" && !strings.Contains(ev.Message, st.Current.Fingerprint) {
			t.Errorf("publish event %q does not name the new fingerprint %s", ev.Message, st.Current.Fingerprint)
		}
	}
	e.checkNoLeak()
}

// A controller killed at any point (its Lease neither renewed nor
// released, its memory gone) is resumed by a fresh process with no disk
// state: the journal is in the ConfigMap, the Lease expires.
func TestKubernetesResumeAfterKillAtEveryPoint(t *testing.T) {
	for _, hashed := range []bool{false, true} {
		for _, point := range crashPoints {
			name := point
			if hashed {
				name += "/hashed"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, envOptions{hashed: hashed, kube: true})
				if !e.runUntilCrash(point, true) {
					t.Fatalf("never reached %s", point)
				}
				st := e.loadState()
				if st.Cycle == nil {
					t.Fatalf("no cycle journaled in the ConfigMap at %s", point)
				}
				if holder, _ := lease(t, e.kube, "influxrotate-telegraf"); holder == "" {
					t.Fatal("the killed controller's Lease was released")
				}
				res := e.rotate(e.controller(nil), false)
				if res.Outcome != OutcomeOK || res.RotationID != st.Cycle.RotationID {
					t.Fatalf("resume of %s: %+v\n%s", st.Cycle.RotationID, res, e.logs.String())
				}
				e.checkEndState()
			})
		}
	}
}

// Two controllers started together on one credential that is due: one
// rotation, one active authorization, no orphan.
func TestKubernetesTwoControllersStartedTogether(t *testing.T) {
	// The loser watches the winner's Lease for up to 3s; the winner renews
	// every second.
	e := newEnv(t, envOptions{kube: true, lease: 3 * time.Second})
	later := func() time.Time { return time.Now().Add(2 * time.Hour) } // the initial token is due
	a, b := e.controller(nil), e.controller(nil)
	a.now, b.now = later, later
	a.store.(*kubeStore).now, b.store.(*kubeStore).now = later, later
	start := make(chan struct{})
	results := make([]Result, 2)
	var wg sync.WaitGroup
	for i, c := range []*Controller{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i] = c.Rotate(context.Background(), &c.cfg.Credentials[0], RotateOptions{})
		}()
	}
	close(start)
	wg.Wait()
	ok := 0
	for _, r := range results {
		switch {
		case r.Outcome == OutcomeOK:
			ok++
		case r.Outcome == OutcomeNotDue, r.Outcome == OutcomeFailed && errors.Is(r.Err, state.ErrLocked):
		default:
			t.Errorf("unexpected result %+v\n%s", r, e.logs.String())
		}
	}
	if ok != 1 {
		t.Fatalf("%d rotations, want 1: %+v", ok, results)
	}
	e.checkEndState()
	if n := strings.Count(e.auditLog(), `"event":"done"`); n != 1 {
		t.Errorf("%d completed cycles in the audit log, want 1", n)
	}
}

// A controller whose Lease is taken in the middle of a cycle (its renewals
// were late) stops at once instead of working next to the new holder.
func TestKubernetesLostLeaseStopsTheCycle(t *testing.T) {
	e := newEnv(t, envOptions{kube: true})
	var c *Controller
	c = e.controller(interfere("verify:before", func() {
		ctx := context.Background()
		l, err := e.kube.CoordinationV1().Leases(kubeNS).Get(ctx, "influxrotate-telegraf", metav1.GetOptions{})
		must(t, err)
		intruder := "intruder"
		l.Spec.HolderIdentity = &intruder
		_, err = e.kube.CoordinationV1().Leases(kubeNS).Update(ctx, l, metav1.UpdateOptions{})
		must(t, err)
		ks := c.store.(*kubeStore)
		ks.mu.Lock()
		held := ks.held["telegraf"]
		ks.mu.Unlock()
		wait.For(t, 10*time.Second, "the renewal notices the lost Lease", held.lost)
	}))
	res := e.rotate(c, true)
	if res.Outcome != OutcomeFailed || !errors.Is(res.Err, errLockLost) {
		t.Fatalf("rotate: %+v, want failed with the lock lost", res)
	}
	if st := e.loadState(); st.Cycle == nil || st.Cycle.Phase != "verify" {
		t.Fatalf("journal %+v, want the cycle left at verify for the new holder", st)
	}
	if !e.srv.IsActive(e.initial.Token) {
		t.Fatal("the old token was revoked")
	}
	if holder, _ := lease(t, e.kube, "influxrotate-telegraf"); holder != "intruder" {
		t.Fatalf("the Lease was released over its new holder: %q", holder)
	}
}
