package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/config"
	"github.com/influxrotate/influxrotate/internal/lifecycle"
	"github.com/influxrotate/influxrotate/rotation"
)

// Run rotates on schedule until ctx ends: each credential in its own
// goroutine (at most [run] workers rotating at once), so that one waiting
// out grace or observe never holds up another; interrupted cycles are
// resumed at start; each credential is rotated when its token reaches
// max_age less a random jitter; a failed rotation is retried with a
// growing delay. With the kubernetes store only the leader of the Lease
// [run] leader_lease rotates: a standby takes over within lease_duration of
// the leader's end and resumes from the journal. With [run] listen it
// serves /healthz, /readyz and /metrics.
func (c *Controller) Run(ctx context.Context) error {
	if c.cfg.Run.Listen != "" {
		stop, err := c.serve(c.cfg.Run.Listen)
		if err != nil {
			return err
		}
		defer stop()
	}
	if c.kube == nil {
		c.probe.leaderKnown.Store(true)
		c.metrics.leader.Set(1)
		return c.schedule(ctx)
	}
	return c.runElected(ctx)
}

// probeState is what the probes report.
type probeState struct {
	// leaderKnown is set once this controller is the leader or has seen
	// who is (readiness).
	leaderKnown atomic.Bool
	mu          sync.Mutex
	// busy is when each credential's running cycle began (liveness).
	busy map[string]time.Time
}

func (p *probeState) setBusy(credential string, since time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.busy == nil {
		p.busy = map[string]time.Time{}
	}
	if since.IsZero() {
		delete(p.busy, credential)
	} else {
		p.busy[credential] = since
	}
}

// wedged names a credential whose cycle has run far longer than its
// grace and observe allow: a call that never returns, a lock never given
// back. Liveness fails so that the kubelet restarts the process, and the
// journal lets the next one resume.
func (c *Controller) wedged() string {
	c.probe.mu.Lock()
	defer c.probe.mu.Unlock()
	now := c.now()
	for name, since := range c.probe.busy {
		cr, err := c.cfg.Credential(name)
		if err != nil {
			continue
		}
		if now.Sub(since) > time.Duration(cr.Grace+cr.Observe)+wedgeMargin(c.cfg) {
			return name
		}
	}
	return ""
}

// wedgeMargin is the time a cycle may spend beyond grace and observe: every
// API call of every phase retried to its bound, twice over.
func wedgeMargin(cfg *config.Config) time.Duration {
	return 2 * 16 * time.Duration(cfg.Retry.Attempts) * time.Duration(cfg.Timeout+cfg.Retry.Max)
}

// Handler serves /healthz, /readyz and /metrics.
func (c *Controller) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if name := c.wedged(); name != "" {
			http.Error(w, "credential "+name+": the cycle has not ended within grace + observe + the retry budget", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !c.probe.leaderKnown.Load() {
			http.Error(w, "leader election: no leader seen yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(c.metrics.reg, promhttp.HandlerOpts{}))
	return mux
}

// serve listens on addr; stop shuts the server down.
func (c *Controller) serve(addr string) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &config.Error{Err: fmt.Errorf("[run] listen %q: %w", addr, err)}
	}
	c.addr.Store(ln.Addr())
	srv := &http.Server{Handler: c.Handler(), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.log.Error("probe and metrics listener stopped", "error", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}

// Addr is the address Run listens on, nil before it does.
func (c *Controller) Addr() net.Addr {
	a, _ := c.addr.Load().(net.Addr)
	return a
}

// runElected campaigns for the leader Lease with client-go's leader
// election and schedules while leading. Losing the Lease (a partition, a
// missed renewal) cancels the schedule, whose cycles stop where the journal
// lets the next leader resume; the controller then campaigns again.
func (c *Controller) runElected(ctx context.Context) error {
	d := time.Duration(c.cfg.State.LeaseDuration)
	// leading serializes schedules: a new term waits for the last one's
	// schedule to stop, and Run for the last one before it returns.
	var leading sync.Mutex
	var errsMu sync.Mutex
	var errs []error
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: &resourcelock.LeaseLock{
				LeaseMeta:  metav1.ObjectMeta{Namespace: c.cfg.State.Namespace, Name: c.cfg.Run.LeaderLease},
				Client:     c.kube.CoordinationV1(),
				LockConfig: resourcelock.ResourceLockConfig{Identity: c.identity},
			},
			LeaseDuration:   d,
			RenewDeadline:   d * 2 / 3,
			RetryPeriod:     d / 10,
			ReleaseOnCancel: c.releaseLeader,
			Name:            "influxrotate",
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(lctx context.Context) {
					leading.Lock()
					defer leading.Unlock()
					c.log.Info("leading: rotating", "identity", c.identity)
					c.probe.leaderKnown.Store(true)
					c.metrics.leader.Set(1)
					defer c.metrics.leader.Set(0)
					if err := c.schedule(lctx); err != nil {
						errsMu.Lock()
						errs = append(errs, err)
						errsMu.Unlock()
					}
				},
				OnStoppedLeading: func() {},
				OnNewLeader: func(identity string) {
					c.probe.leaderKnown.Store(true)
					if identity != c.identity {
						c.log.Info("standby", "leader", identity)
					}
				},
			},
		})
		if err != nil {
			return &config.Error{Err: fmt.Errorf("leader election: %w", err)}
		}
		le.Run(ctx)
	}
	leading.Lock()
	defer leading.Unlock()
	errsMu.Lock()
	defer errsMu.Unlock()
	return errors.Join(errs...)
}

// schedule runs one goroutine per credential until ctx ends.
func (c *Controller) schedule(ctx context.Context) error {
	sem := make(chan struct{}, c.cfg.Run.Workers)
	errs := make([]error, len(c.cfg.Credentials))
	var wg sync.WaitGroup
	for i := range c.cfg.Credentials {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.scheduleCredential(ctx, &c.cfg.Credentials[i], sem)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// scheduleCredential rotates one credential when due until ctx ends and
// returns the error of its last failed rotation.
func (c *Controller) scheduleCredential(ctx context.Context, cr *config.Credential, sem chan struct{}) error {
	var next time.Time
	// failures counts the failed rotations since the last success.
	failures := 0
	// due is set when next is a jittered rotation time (not a retry), which
	// may be before max_age: the rotation is then forced.
	due := false
	var lastErr error
	for {
		if d := next.Sub(c.now()); d > 0 {
			if lifecycle.Sleep(ctx, d) != nil {
				return lastErr
			}
		}
		if ctx.Err() != nil {
			return lastErr
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return lastErr
		}
		c.probe.setBusy(cr.Name, c.now())
		res := c.Rotate(ctx, cr, RotateOptions{Force: due})
		c.probe.setBusy(cr.Name, time.Time{})
		<-sem
		if ctx.Err() != nil {
			return lastErr
		}
		switch res.Outcome {
		case OutcomeOK, OutcomeNotDue, OutcomeRolledBack:
			failures = 0
			next, due = c.scheduleNext(ctx, cr), true
		default:
			lastErr = res.Err
			c.log.Error("rotation did not complete; will retry", "credential", cr.Name, "outcome", res.Outcome, "error", res.Err)
			failures++
			next, due = c.now().Add(retryBackoff(cr).Delay(failures-1)), false
		}
	}
}

// scheduleNext is when the daemon next looks at a credential: at max_age
// less a random jitter, so that a fleet does not rotate in lockstep.
func (c *Controller) scheduleNext(ctx context.Context, cr *config.Credential) time.Time {
	st, err := c.store.Load(ctx, cr.Name)
	if err == nil {
		c.metrics.observeState(st)
	}
	if err != nil || st.Current.Since.IsZero() {
		return c.now().Add(min(time.Duration(cr.MaxAge), time.Minute))
	}
	spread := rotation.Backoff{Initial: time.Duration(cr.Jitter), Jitter: rotation.FullJitter}
	return st.Current.Since.Add(time.Duration(cr.MaxAge) - spread.Delay(0))
}

// retryBackoff spaces the retries of a failed rotation: a tenth of max_age
// (between 1s and 10m) doubling up to an hour.
func retryBackoff(cr *config.Credential) rotation.Backoff {
	return rotation.Backoff{Initial: min(max(time.Duration(cr.MaxAge)/10, time.Second), 10*time.Minute), Max: time.Hour, Jitter: rotation.NoJitter}
}
