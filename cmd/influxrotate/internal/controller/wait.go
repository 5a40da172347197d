package controller

import (
	"context"
	"time"
)

// grace gives the writers until grace after publishing to adopt the new
// token before the old one is deactivated.
func (r *cycleRun) grace(ctx context.Context) (phaseOutcome, error) {
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
	rid, phase := r.st.Cycle.RotationID, r.st.Cycle.Phase
	d := deadline.Sub(c.now())
	if d <= 0 {
		return phaseOutcome{}, nil
	}
	c.log.Info("waiting", "credential", cr.Name, "rotation_id", rid, "phase", phase, "for", d.Round(time.Millisecond))
	if err := c.record(cr, r.st.Cycle, string(phase), "waiting", 0, d.Round(time.Millisecond).String()); err != nil {
		return phaseOutcome{}, err
	}
	_ = r.lock.Unlock()
	r.lock = nil
	t := time.NewTimer(d)
	select {
	case <-ctx.Done():
		t.Stop()
	case <-t.C:
	}
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
		// Someone (a rollback, another controller) moved the journal on.
		return phaseOutcome{rerun: true}, nil
	}
	return phaseOutcome{}, nil
}
