package controller

import (
	"context"
	"errors"
	"fmt"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/backend"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/state"
)

// deactivate sets the old authorization (and any retired ones) inactive.
func (r *cycleRun) deactivate(ctx context.Context) (phaseOutcome, error) {
	c, cy := r.c, r.st.Cycle
	if err := r.checkBeforeRevoking(ctx, "deactivating"); err != nil {
		return phaseOutcome{}, r.failure(0, err, fmt.Errorf("deactivate: %w", err))
	}
	retriesAtStart := c.retries.Load()
	for _, ref := range r.revocable() {
		cy.RevocationAttempts++
		err := c.be.SetActive(ctx, &backend.Authorization{ID: ref.ID, Permissions: ref.Permissions}, false)
		if err != nil && !errors.Is(err, backend.ErrNotFound) {
			return phaseOutcome{}, r.failure(backend.StatusOf(err), err, fmt.Errorf("deactivate %s: %w", ref.ID, err))
		}
	}
	cy.RevocationAttempts += int(c.retries.Load() - retriesAtStart)
	r.hook(state.PhaseDeactivate, "patched")
	cy.DeactivatedAt = c.now()
	return phaseOutcome{}, nil
}

// revocable lists the authorizations this cycle retires.
func (r *cycleRun) revocable() []state.Ref {
	var out []state.Ref
	if r.st.Cycle.Old.ID != "" {
		out = append(out, r.st.Cycle.Old)
	}
	for _, ref := range r.st.Retired {
		if ref.ID != r.st.Cycle.New.ID && ref.ID != r.st.Cycle.Old.ID {
			out = append(out, ref)
		}
	}
	return out
}

// delete removes the old authorization, retired ones and orphans.
func (r *cycleRun) delete(ctx context.Context) (phaseOutcome, error) {
	c, cy := r.c, r.st.Cycle
	if err := r.checkBeforeRevoking(ctx, "deleting"); err != nil {
		return phaseOutcome{}, r.failure(0, err, fmt.Errorf("delete: %w", err))
	}
	retriesAtStart := c.retries.Load()
	for _, ref := range r.revocable() {
		cy.RevocationAttempts++
		if err := c.be.Delete(ctx, ref.ID); err != nil {
			return phaseOutcome{}, r.failure(backend.StatusOf(err), err, fmt.Errorf("delete %s: %w", ref.ID, err))
		}
		c.forget(ref.ID)
	}
	cy.RevocationAttempts += int(c.retries.Load() - retriesAtStart)
	if cy.DeletedAt.IsZero() {
		cy.DeletedAt = c.now()
	}
	r.hook(state.PhaseDelete, "deleted")
	return phaseOutcome{}, r.deleteOrphans(ctx)
}

// deleteOrphans removes authorizations this controller made for the
// credential that are neither the new one nor any longer referenced, such
// as a duplicate left by a retried create.
func (r *cycleRun) deleteOrphans(ctx context.Context) error {
	c, cr, cy := r.c, r.cr, r.st.Cycle
	list, err := c.be.List(ctx, cr.Org)
	if err != nil {
		return err
	}
	for _, a := range list {
		if _, ok := c.labelled(cr, a); !ok || a.ID == cy.New.ID {
			continue
		}
		if err := c.be.Delete(ctx, a.ID); err != nil {
			return err
		}
		if err := c.record(cr, cy, "orphan_deleted", OutcomeOK, 0, "authorization "+a.ID); err != nil {
			return err
		}
	}
	return nil
}
