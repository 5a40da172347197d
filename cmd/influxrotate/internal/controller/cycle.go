package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/backend"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/config"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/state"
	"github.com/influxrotate/influxrotate/rotation"
)

// cycleRun is one credential's cycle in this process: the lock, the journal
// and the credential it rotates.
type cycleRun struct {
	c    *Controller
	cr   *config.Credential
	lock Lock
	st   *state.State
	// stop cancels the cycle's context, with errLockLost when the lock is.
	stop context.CancelCauseFunc
}

// errLockLost ends a cycle whose lock another controller took (a Lease
// that could not be renewed in time): that controller resumes it.
var errLockLost = fmt.Errorf("%w: the credential's lock was lost; the controller that took it resumes the cycle", ErrConcurrent)

// watchLock stops the cycle when the held lock is lost, so that it does
// not go on working next to the controller that took it over.
func (r *cycleRun) watchLock(ctx context.Context) {
	l, ok := r.lock.(interface{ Lost() <-chan struct{} })
	if !ok {
		return
	}
	go func() {
		select {
		case <-l.Lost():
			r.stop(errLockLost)
		case <-ctx.Done():
		}
	}()
}

// Rotate runs or resumes one credential's cycle if it is due (or forced).
func (c *Controller) Rotate(ctx context.Context, cr *config.Credential, opts RotateOptions) Result {
	res := c.rotate(ctx, cr, opts)
	c.metrics.cycles.WithLabelValues(cr.Name, res.Outcome).Inc()
	return res
}

func (c *Controller) rotate(ctx context.Context, cr *config.Credential, opts RotateOptions) Result {
	res := Result{Credential: cr.Name}
	if opts.DryRun {
		return c.plan(ctx, cr, opts)
	}
	lock, err := c.store.Lock(ctx, cr.Name)
	if err != nil {
		res.Outcome, res.Err = OutcomeFailed, err
		return res
	}
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	r := &cycleRun{c: c, cr: cr, lock: lock, stop: stop}
	defer func() {
		if r.lock != nil {
			_ = r.lock.Unlock()
		}
	}()
	r.watchLock(ctx)
	if r.st, err = c.store.Load(ctx, cr.Name); err != nil {
		res.Outcome, res.Err = OutcomeFailed, err
		return res
	}
	if r.st.Cycle == nil {
		cur, err := c.resolveCurrent(ctx, cr, r.st)
		if err != nil {
			return r.result(err)
		}
		if !opts.Force && !c.due(cr, r.st, cur) {
			res.Outcome = OutcomeNotDue
			return res
		}
		if err := r.start(ctx, cur); err != nil {
			return r.result(err)
		}
	} else {
		c.log.Info("resuming interrupted rotation", "credential", cr.Name,
			"rotation_id", r.st.Cycle.RotationID, "phase", r.st.Cycle.Phase)
		if err := c.record(cr, r.st.Cycle, "resume", OutcomeOK, 0, "phase "+string(r.st.Cycle.Phase)); err != nil {
			return r.result(err)
		}
	}
	err = r.loop(ctx)
	if cause := context.Cause(ctx); errors.Is(cause, errLockLost) {
		err = cause
	}
	return r.result(err)
}

// result turns the end of a run into a Result.
func (r *cycleRun) result(err error) Result {
	res := Result{Credential: r.cr.Name}
	if r.st != nil && r.st.Cycle != nil {
		res.RotationID, res.Phase = r.st.Cycle.RotationID, r.st.Cycle.Phase
	} else if r.st != nil {
		res.RotationID = r.st.Last.RotationID
	}
	var ab *abortError
	var sg *stragglersError
	switch {
	case err == nil && r.st != nil && r.st.Last.Outcome == OutcomeRolledBack:
		// A rollback took the cycle over while this run waited.
		res.Outcome = OutcomeRolledBack
	case err == nil:
		res.Outcome = OutcomeOK
	case ConfigError(err):
		res.Outcome, res.Err = OutcomeFailed, err
	case errors.As(err, &ab), errors.As(err, &sg), errors.Is(err, ErrConcurrent):
		// An abort closed the cycle; stragglers leave it waiting at adopt;
		// another controller's work (ErrConcurrent) is left alone.
		res.Outcome, res.Err = OutcomeFailed, err
	case r.st != nil && r.st.Cycle != nil:
		res.Outcome, res.Err = OutcomeInterrupted, err
	default:
		res.Outcome, res.Err = OutcomeFailed, err
	}
	return res
}

func (c *Controller) due(cr *config.Credential, st *state.State, cur *backend.Authorization) bool {
	next, ok := c.nextDue(cr, st, cur)
	return !ok || !c.now().Before(next)
}

// nextDue is when the current token reaches max_age; ok is false when its
// age is unknown (InfluxDB 1.x before the first rotation), which makes it due.
func (c *Controller) nextDue(cr *config.Credential, st *state.State, cur *backend.Authorization) (time.Time, bool) {
	since := st.Current.Since
	if since.IsZero() && cur != nil {
		since = cur.CreatedAt
	}
	if since.IsZero() {
		return time.Time{}, false
	}
	return since.Add(time.Duration(cr.MaxAge)), true
}

// start journals a new cycle.
func (r *cycleRun) start(ctx context.Context, cur *backend.Authorization) error {
	c, cr := r.c, r.cr
	perms, err := c.desiredPermissions(ctx, cr, cur)
	if err != nil {
		return err
	}
	if err := c.checkAdoption(ctx, cr, perms); err != nil {
		return err
	}
	now := c.now()
	cy := &state.Cycle{RotationID: newRotationID(now), Phase: c.phases[0].phase, Started: now}
	cy.New.Permissions = perms
	if cur != nil {
		cy.Old = r.oldRef(ctx, cur)
	}
	r.st.Cycle = cy
	if err := r.save(ctx); err != nil {
		return err
	}
	c.log.Info("rotation started", "credential", cr.Name, "rotation_id", cy.RotationID, "old_authorization", cy.Old.ID)
	return c.record(cr, cy, "start", OutcomeOK, 0, "")
}

// oldRef describes the authorization a new cycle retires, with the
// fingerprint of its token when the journal, the server or a target knows
// it; the token itself is kept in memory for a rollback or abort.
func (r *cycleRun) oldRef(ctx context.Context, cur *backend.Authorization) state.Ref {
	c := r.c
	old := state.Ref{ID: cur.ID, Since: r.st.Current.Since, Permissions: cur.Permissions}
	if old.Since.IsZero() {
		old.Since = cur.CreatedAt
	}
	switch {
	case r.st.Current.ID == cur.ID && r.st.Current.Fingerprint != "":
		old.Fingerprint = r.st.Current.Fingerprint
	case cur.Token != "":
		old.Fingerprint = rotation.Fingerprint(cur.Token)
	}
	c.remember(cur.ID, cur.Token)
	if old.Fingerprint == "" {
		// Before the first rotation the targets hold the current token.
		for _, t := range c.targets[r.cr.Name] {
			if tok, err := t.ReadBack(ctx); err == nil {
				old.Fingerprint = rotation.Fingerprint(tok)
				c.remember(cur.ID, tok)
				break
			}
		}
	}
	return old
}

// save journals the state. A stopping controller still journals what it
// has done (bounded by the API timeout), so that the next run need not
// redo it.
func (r *cycleRun) save(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Duration(r.c.cfg.Timeout))
	defer cancel()
	return r.c.store.Save(ctx, r.st)
}

// hook calls the test hook at a point of a phase.
func (r *cycleRun) hook(phase state.Phase, point string) { r.c.hook(string(phase) + ":" + point) }

// maxSteps bounds the phases one run goes through: each phase advances or
// fails, and a provision repeated after a lost token is rare, so a loop this
// long is a bug.
const maxSteps = 64

// loop runs phases until the cycle is done, fails or must wait. It is the
// one place that moves the journal on: after a phase completes it journals
// the next phase, appends the phase's audit record and calls the phase's
// "after" hook, in that order, so a crash between any two leaves a journal
// that the next run resumes correctly and no phase can skip its record.
func (r *cycleRun) loop(ctx context.Context) error {
	for steps := 0; r.st.Cycle != nil; steps++ {
		if steps > maxSteps {
			return fmt.Errorf("rotation did not converge after %d steps", maxSteps)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		phase := r.st.Cycle.Phase
		i := r.c.phaseIndex(phase)
		if i < 0 {
			return fmt.Errorf("state file: unknown phase %q", phase)
		}
		r.hook(phase, "before")
		began := time.Now()
		out, err := r.c.phases[i].run(r, ctx)
		r.c.metrics.phases.WithLabelValues(r.cr.Name, string(phase)).Observe(time.Since(began).Seconds())
		var refused *refusal
		if errors.As(err, &refused) {
			return r.abort(ctx, refused.err, refused.status)
		}
		if err != nil {
			return err
		}
		if err := r.conclude(ctx, phase, i, out); err != nil {
			return err
		}
	}
	return nil
}

// conclude is the tail every phase shares: journal where the cycle goes,
// and for a completed phase append its audit record and call its "after"
// hook. Completing the last phase closes the cycle and reports it.
func (r *cycleRun) conclude(ctx context.Context, phase state.Phase, i int, out phaseOutcome) error {
	cy := r.st.Cycle
	switch {
	case out.rerun:
		return nil
	case out.back != "":
		cy.Phase = out.back
		return r.save(ctx)
	case i+1 < len(r.c.phases):
		cy.Phase = r.c.phases[i+1].phase
		if err := r.save(ctx); err != nil {
			return err
		}
	default:
		r.st.Cycle = nil
		if err := r.save(ctx); err != nil {
			r.st.Cycle = cy
			return err
		}
	}
	if err := r.c.record(r.cr, cy, string(phase), OutcomeOK, out.status, out.message); err != nil {
		return err
	}
	if r.st.Cycle == nil {
		r.c.report(ctx, r.cr, cy, OutcomeOK, r.st.Last.Finished)
	}
	r.hook(phase, "after")
	return nil
}

// finish is the last phase: the new authorization becomes current. The
// loop then closes the cycle.
func (r *cycleRun) finish(context.Context) (phaseOutcome, error) {
	cy := r.st.Cycle
	r.st.Previous = cy.Old
	r.st.Current = state.Ref{ID: cy.New.ID, Fingerprint: cy.New.Fingerprint, Since: cy.ProvisionedAt, Permissions: cy.New.Permissions,
		Expires: cy.New.Expires}
	r.st.Retired = nil
	r.st.Last = state.Outcome{RotationID: cy.RotationID, Outcome: OutcomeOK, Finished: r.c.now()}
	return phaseOutcome{}, nil
}

// failure appends the audit record of a phase that failed and will be
// retried by the next run (the journal stays where it is), and returns err.
// cause is what the record says, err what the caller sees.
func (r *cycleRun) failure(status int, cause, err error) error {
	_ = r.c.record(r.cr, r.st.Cycle, string(r.st.Cycle.Phase), OutcomeFailed, status, cause.Error())
	return err
}
