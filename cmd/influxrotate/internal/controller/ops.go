package controller

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/config"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/state"
)

// plan prints what Rotate would do. It sends only GET requests and writes
// no file.
func (c *Controller) plan(ctx context.Context, cr *config.Credential, opts RotateOptions) Result {
	res := Result{Credential: cr.Name, Outcome: OutcomeDryRun}
	st, err := c.store.Load(ctx, cr.Name)
	if err != nil {
		res.Outcome, res.Err = OutcomeFailed, err
		return res
	}
	if st.Cycle != nil {
		fmt.Fprintf(c.out, "credential %s: would resume rotation %s at phase %s (old %s, new %s), then continue to done\n",
			cr.Name, st.Cycle.RotationID, st.Cycle.Phase, orNone(st.Cycle.Old.ID), orNone(st.Cycle.New.ID))
		res.RotationID, res.Phase = st.Cycle.RotationID, st.Cycle.Phase
		return res
	}
	cur, err := c.resolveCurrent(ctx, cr, st)
	if err != nil {
		res.Outcome, res.Err = OutcomeFailed, err
		return res
	}
	next, known := c.nextDue(cr, st, cur)
	if !opts.Force && known && c.now().Before(next) {
		fmt.Fprintf(c.out, "credential %s: not due (authorization %s, next rotation at %s)\n",
			cr.Name, cur.ID, next.UTC().Format(time.RFC3339))
		res.Outcome = OutcomeNotDue
		return res
	}
	perms, err := c.desiredPermissions(ctx, cr, cur)
	if err != nil {
		res.Outcome, res.Err = OutcomeFailed, err
		return res
	}
	curID := "(none: a first authorization is created)"
	if cur != nil {
		curID = cur.ID
	}
	fmt.Fprintf(c.out, "credential %s: would rotate authorization %s\n", cr.Name, curID)
	fmt.Fprintf(c.out, "  provision: a new authorization in org %q with %d permission(s): %s\n",
		cr.Org, len(perms), strings.Join(missingFrom(perms, nil), ", "))
	fmt.Fprintf(c.out, "  publish:   %s\n", strings.Join(c.targetNames(cr.Name), "; "))
	fmt.Fprintf(c.out, "  verify:    an empty write on each bucket it may write\n")
	fmt.Fprintf(c.out, "  grace:     %s, then deactivate %s\n", cr.Grace, curID)
	fmt.Fprintf(c.out, "  observe:   %s, then delete %s\n", cr.Observe, curID)
	return res
}

// Status is one credential's state for `influxrotate status`.
type Status struct {
	Credential  string
	Current     state.Ref
	Age         time.Duration
	NextDue     time.Time
	Last        state.Outcome
	Interrupted state.Phase
	RotationID  string
}

// Status reads the journals; it contacts no InfluxDB server.
func (c *Controller) Status(ctx context.Context) ([]Status, error) {
	var out []Status
	for i := range c.cfg.Credentials {
		cr := &c.cfg.Credentials[i]
		st, err := c.store.Load(ctx, cr.Name)
		if err != nil {
			return nil, err
		}
		s := Status{Credential: cr.Name, Current: st.Current, Last: st.Last, Interrupted: st.Interrupted()}
		if s.Current.ID == "" {
			s.Current.ID = cr.AuthorizationID
		}
		if !st.Current.Since.IsZero() {
			s.Age = c.now().Sub(st.Current.Since)
			s.NextDue = st.Current.Since.Add(cr.MaxAge)
		}
		if st.Cycle != nil {
			s.RotationID = st.Cycle.RotationID
		}
		out = append(out, s)
	}
	return out, nil
}

// Run rotates on schedule until ctx ends: interrupted cycles are resumed
// at start; each credential is rotated when its token reaches max_age less
// a random jitter; a failed rotation is retried with a growing delay.
func (c *Controller) Run(ctx context.Context) error {
	type sched struct {
		next    time.Time
		backoff time.Duration
		// due is set when next is a jittered rotation time (not a retry),
		// which may be before max_age: the rotation is then forced.
		due bool
	}
	plans := map[string]*sched{}
	for i := range c.cfg.Credentials {
		plans[c.cfg.Credentials[i].Name] = &sched{}
	}
	var lastErr error
	for {
		now := c.now()
		wake := now.Add(time.Hour)
		for i := range c.cfg.Credentials {
			cr := &c.cfg.Credentials[i]
			p := plans[cr.Name]
			if now.Before(p.next) {
				wake = minTime(wake, p.next)
				continue
			}
			res := c.Rotate(ctx, cr, RotateOptions{Force: p.due})
			if ctx.Err() != nil {
				return lastErr
			}
			switch res.Outcome {
			case OutcomeOK, OutcomeNotDue:
				p.backoff = 0
				p.next, p.due = c.scheduleNext(ctx, cr), true
			default:
				lastErr = res.Err
				c.log.Error("rotation did not complete; will retry", "credential", cr.Name, "outcome", res.Outcome, "error", res.Err)
				p.backoff = min(max(2*p.backoff, min(max(cr.MaxAge/10, time.Second), 10*time.Minute)), time.Hour)
				p.next, p.due = c.now().Add(p.backoff), false
			}
			wake = minTime(wake, p.next)
		}
		t := time.NewTimer(max(wake.Sub(c.now()), 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return lastErr
		case <-t.C:
		}
	}
}

// scheduleNext is when the daemon next looks at a credential: at max_age
// less a random jitter, so that a fleet does not rotate in lockstep.
func (c *Controller) scheduleNext(ctx context.Context, cr *config.Credential) time.Time {
	st, err := c.store.Load(ctx, cr.Name)
	if err != nil || st.Current.Since.IsZero() {
		return c.now().Add(min(cr.MaxAge, time.Minute))
	}
	return st.Current.Since.Add(cr.MaxAge - jitter(cr.Jitter))
}

// jitter is a random part of max, to spread rotations of a fleet.
func jitter(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	return rand.N(max)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
