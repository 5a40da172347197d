package controller

import (
	"context"
	"time"

	"github.com/influxrotate/influxrotate/internal/lifecycle"
)

// grace gives the writers until grace after publishing to adopt the new
// token before the old one is deactivated. With [credential.adoption] the
// adopt phase has already waited for the writers' reports instead.
func (r *cycleRun) grace(ctx context.Context) (phaseOutcome, error) {
	if r.cr.Adoption != nil {
		return phaseOutcome{message: "skipped: the adopt phase waited for the writers"}, nil
	}
	return r.wait(ctx, r.st.Cycle.PublishedAt.Add(time.Duration(r.cr.Grace)))
}

// observe keeps the deactivated old authorization until observe has passed,
// so that a rollback can still reactivate it.
func (r *cycleRun) observe(ctx context.Context) (phaseOutcome, error) {
	return r.wait(ctx, r.st.Cycle.DeactivatedAt.Add(time.Duration(r.cr.Observe)))
}

// wait sleeps until deadline without the lock, so that an operator can roll
// back during grace or observe, then re-takes it and follows the journal.
func (r *cycleRun) wait(ctx context.Context, deadline time.Time) (phaseOutcome, error) {
	c, cr := r.c, r.cr
	d := deadline.Sub(c.now())
	if d <= 0 {
		return phaseOutcome{}, nil
	}
	c.log.Info("waiting", "credential", cr.Name, "rotation_id", r.st.Cycle.RotationID, "phase", r.st.Cycle.Phase, "for", d.Round(time.Millisecond))
	if err := c.record(cr, r.st.Cycle, string(r.st.Cycle.Phase), "waiting", 0, d.Round(time.Millisecond).String()); err != nil {
		return phaseOutcome{}, err
	}
	return r.unlocked(ctx, func(ctx context.Context) error { return lifecycle.Sleep(ctx, d) })
}

// unlocked runs fn without the credential's lock, so that an operator can
// roll back while a phase waits, then re-takes the lock and re-reads the
// journal: rerun is set when someone (a rollback, another controller) moved
// it on meanwhile, and the phase's work is then void.
func (r *cycleRun) unlocked(ctx context.Context, fn func(context.Context) error) (phaseOutcome, error) {
	c, cr := r.c, r.cr
	rid, phase := r.st.Cycle.RotationID, r.st.Cycle.Phase
	_ = r.lock.Unlock()
	r.lock = nil
	fnErr := fn(ctx)
	if err := ctx.Err(); err != nil {
		return phaseOutcome{}, err
	}
	lock, err := c.store.Lock(ctx, cr.Name)
	if err != nil {
		return phaseOutcome{}, err
	}
	r.lock = lock
	r.watchLock(ctx)
	if err := ctx.Err(); err != nil {
		return phaseOutcome{}, err
	}
	st, err := c.store.Load(ctx, cr.Name)
	if err != nil {
		return phaseOutcome{}, err
	}
	r.st = st
	if st.Cycle == nil || st.Cycle.RotationID != rid || st.Cycle.Phase != phase {
		return phaseOutcome{rerun: true}, nil
	}
	return phaseOutcome{}, fnErr
}
