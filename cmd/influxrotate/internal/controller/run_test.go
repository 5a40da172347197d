package controller

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/state"
	"github.com/influxrotate/influxrotate/testutil/secscan"
	"github.com/influxrotate/influxrotate/testutil/wait"
)

// runInBackground starts c.Run; cancel ends its context, stop cancels and
// waits for Run to return (also at the test's end).
func runInBackground(t *testing.T, c *Controller) (cancel, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Error("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return cancel, stop
}

// later makes a controller live two hours ahead: the initial token (made
// now, max_age 1h) is due, a token it makes is not.
func later(c *Controller) {
	now := func() time.Time { return time.Now().Add(2 * time.Hour) }
	c.now = now
	c.metrics.age.now = now
	if ks, ok := c.store.(*kubeStore); ok {
		ks.now = now
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	must(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	must(t, err)
	return resp.StatusCode, string(body)
}

// A leader killed in the middle of a cycle (its Leases neither renewed nor
// released): the standby takes the leader Lease over, then the
// credential's, and finishes the same rotation from the journal.
func TestRunLeaderFailoverMidCycle(t *testing.T) {
	e := newEnv(t, envOptions{kube: true, lease: 2 * time.Second})
	reached, proceed := make(chan struct{}), make(chan struct{})
	var a *Controller
	a = e.controller(interfere("verify:after", func() {
		close(reached)
		<-proceed
	}))
	later(a)
	a.releaseLeader = false // a kill releases nothing
	cancelA, stopA := runInBackground(t, a)
	select {
	case <-reached:
	case <-time.After(30 * time.Second):
		t.Fatalf("the leader never reached verify:after\n%s", e.logs.String())
	}
	if promtestutil.ToFloat64(a.metrics.leader) != 1 {
		t.Fatal("the controller in the middle of a cycle is not the leader")
	}
	rid := e.loadState().Cycle.RotationID
	b := e.controller(nil)
	later(b)
	runInBackground(t, b)
	wait.For(t, 10*time.Second, "the second controller is a ready standby", func() bool {
		return b.probe.leaderKnown.Load() && promtestutil.ToFloat64(b.metrics.leader) == 0
	})
	// Kill the leader: its Leases stay as they are, and it does nothing
	// more (its context ends before the hook returns).
	a.store.(*kubeStore).crash("telegraf")
	cancelA()
	close(proceed)
	stopA()
	wait.For(t, 60*time.Second, "the new leader finishes rotation "+rid, func() bool {
		st := e.loadState()
		return st.Cycle == nil && st.Last.RotationID == rid && st.Last.Outcome == OutcomeOK
	})
	if promtestutil.ToFloat64(b.metrics.leader) != 1 {
		t.Error("the controller that finished is not the leader")
	}
	if !strings.Contains(e.auditLog(), `"event":"resume"`) {
		t.Error("no resume in the audit log")
	}
	e.checkEndState()
}

// One credential waiting out a long grace does not hold up another.
func TestRunCredentialsAreIndependent(t *testing.T) {
	e := newEnv(t, envOptions{})
	slow := e.srv.WriteAuthorization(e.org, e.bucket)
	must(t, os.WriteFile(filepath.Join(e.dir, "slow-token"), []byte(slow.Token), 0o600))
	data, err := os.ReadFile(e.cfgPath)
	must(t, err)
	data = append(data, fmt.Sprintf(`
[[credential]]
name = "slow"
org = %q
authorization_id = %q
max_age = "1h"
grace = "1h"
  [[credential.target]]
  type = "file"
  path = "slow-token"
`, e.org, slow.ID)...)
	must(t, os.WriteFile(e.cfgPath, data, 0o600))
	c := e.controller(nil)
	later(c)
	runInBackground(t, c)
	slowStore := state.NewStore(filepath.Join(e.dir, "state"))
	wait.For(t, 30*time.Second, "telegraf rotated while slow waits out its grace", func() bool {
		st, err := slowStore.Load("slow")
		return err == nil && st.Cycle != nil && st.Cycle.Phase == state.PhaseGrace && e.loadState().Last.Outcome == OutcomeOK
	})
	e.checkEndState()
}

func TestRunServesProbesAndMetrics(t *testing.T) {
	e := newEnv(t, envOptions{top: ""})
	data, err := os.ReadFile(e.cfgPath)
	must(t, err)
	must(t, os.WriteFile(e.cfgPath, []byte(strings.Replace(string(data), "[retry]\n", "[run]\nlisten = \"127.0.0.1:0\"\n[retry]\n", 1)), 0o600))
	c := e.controller(nil)
	later(c)
	runInBackground(t, c)
	wait.For(t, 10*time.Second, "the listener", func() bool { return c.Addr() != nil })
	base := "http://" + c.Addr().String()
	wait.For(t, 30*time.Second, "a rotation", func() bool { return e.loadState().Last.Outcome == OutcomeOK })
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, body := get(t, base+p); code != 200 {
			t.Errorf("%s: %d %s", p, code, body)
		}
	}
	var metrics string
	wait.For(t, 10*time.Second, "the metrics of the rotation", func() bool {
		_, metrics = get(t, base+"/metrics")
		return strings.Contains(metrics, `influxrotate_cycles_total{credential="telegraf",outcome="ok"} 1`) &&
			strings.Contains(metrics, `influxrotate_last_success_timestamp_seconds{credential="telegraf"}`)
	})
	for _, want := range []string{
		`influxrotate_phase_duration_seconds_count{credential="telegraf",phase="publish"} 1`,
		`influxrotate_token_age_seconds{credential="telegraf"}`,
		"influxrotate_leader 1",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	var scan secscan.Scanner
	scan.AddServer(e.srv)
	scan.Add(e.rec.created()...)
	scan.Add(e.initial.Token)
	scan.Check(t, "/metrics", []byte(metrics))
}

func TestProbesFailWhenNotReadyOrWedged(t *testing.T) {
	e := newEnv(t, envOptions{kube: true})
	c := e.controller(nil)
	srv := httptest.NewServer(c.Handler())
	defer srv.Close()
	if code, _ := get(t, srv.URL+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("readyz before any leader is known: %d, want 503", code)
	}
	if code, _ := get(t, srv.URL+"/healthz"); code != 200 {
		t.Errorf("healthz of an idle controller: %d", code)
	}
	c.probe.setBusy("telegraf", c.now().Add(-24*time.Hour))
	if code, body := get(t, srv.URL+"/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "telegraf") {
		t.Errorf("healthz with a cycle running for a day: %d %s, want 503 naming it", code, body)
	}
	c.probe.setBusy("telegraf", time.Time{})
	if code, _ := get(t, srv.URL+"/healthz"); code != 200 {
		t.Errorf("healthz after the cycle ended: %d", code)
	}
}
