package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/state"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/target"
	"github.com/influxrotate/influxrotate/rotation"
)

// The safety invariant, whatever the store and however many controllers
// (a lost journal, two state_dirs, a lost Lease): a cycle never deactivates
// or deletes the authorization whose token a target holds, and never
// publishes over a token another rotation published after it started. It
// reads the targets back right before each of those steps and stops with
// ErrConcurrent (exit 1) when they hold something else.

// held is what one target holds now.
type held struct {
	target      string
	fingerprint string // "" when it holds no token
}

// targetsHold reads back every readable target.
func (r *cycleRun) targetsHold(ctx context.Context) ([]held, error) {
	var out []held
	for _, t := range r.c.targets[r.cr.Name] {
		tok, err := t.ReadBack(ctx)
		switch {
		case errors.Is(err, target.ErrUnreadable), errors.Is(err, target.ErrRefused), errors.Is(err, rotation.ErrNotRegularFile):
			// Nothing to compare: an exec target without read_command, or a
			// token path holding something no writer reads a token from
			// (Publish refuses it and the cycle aborts).
			continue
		case errors.Is(err, target.ErrNoToken):
			out = append(out, held{target: t.Name()})
		case err != nil:
			return nil, fmt.Errorf("read back %s: %w", t.Name(), err)
		default:
			out = append(out, held{target: t.Name(), fingerprint: rotation.Fingerprint(tok)})
		}
	}
	return out, nil
}

// conflictError says which target holds what, and what the cycle expected.
func (r *cycleRun) conflictError(action string, h held, want ...string) error {
	got := h.fingerprint
	if got == "" {
		got = "no token"
	}
	return fmt.Errorf("%w: before %s, %s holds %s, not %s: another rotation or a rollback published it after rotation %s started (or this controller's journal was lost); stopping without touching it",
		ErrConcurrent, action, h.target, got, strings.Join(want, " or "), r.st.Cycle.RotationID)
}

// checkBeforePublish allows publishing when every target holds the token
// the cycle retires (its fingerprint, when known), the new one (a publish
// resumed half-way) or nothing: publishing over no token undoes no one's
// work.
func (r *cycleRun) checkBeforePublish(ctx context.Context) error {
	cy := r.st.Cycle
	hs, err := r.targetsHold(ctx)
	if err != nil {
		return err
	}
	for _, h := range hs {
		switch {
		case h.fingerprint == "", h.fingerprint == cy.New.Fingerprint:
		case cy.Old.Fingerprint == "":
			// The retired token's fingerprint is unknown, or there is none
			// (a first authorization replacing whatever the targets hold):
			// nothing to tell another rotation's token from it.
		case h.fingerprint == cy.Old.Fingerprint:
		default:
			return r.conflictError("publishing", h, orNone(cy.Old.Fingerprint)+" (authorization "+orNone(cy.Old.ID)+")", cy.New.Fingerprint)
		}
	}
	return nil
}

// checkBeforeRevoking allows deactivating and deleting when every target
// holds the new token (or none, emptied by hand since publish confirmed
// it): then none of the authorizations the cycle retires, nor an orphan,
// is one a writer is told to use.
func (r *cycleRun) checkBeforeRevoking(ctx context.Context, action string) error {
	cy := r.st.Cycle
	hs, err := r.targetsHold(ctx)
	if err != nil {
		return err
	}
	for _, h := range hs {
		if h.fingerprint != "" && h.fingerprint != cy.New.Fingerprint {
			return r.conflictError(action, h, cy.New.Fingerprint+" (authorization "+cy.New.ID+")")
		}
	}
	return nil
}

// yield ends a cycle that found another rotation's token in a target
// before publishing its own: its new authorization, which no target holds,
// is deleted, the journal closed as failed, and the other's work left
// alone. The error says what was found (exit 1).
func (r *cycleRun) yield(ctx context.Context, cause error) error {
	c, cr, cy := r.c, r.cr, r.st.Cycle
	c.log.Error("another rotation's token found; stopping", "credential", cr.Name, "rotation_id", cy.RotationID, "error", cause)
	if cy.New.ID != "" {
		if err := c.be.Delete(ctx, cy.New.ID); err != nil {
			return fmt.Errorf("%w; deleting this cycle's unpublished authorization %s: %v", cause, cy.New.ID, err)
		}
		c.forget(cy.New.ID)
	}
	now := c.now()
	r.st.Last = state.Outcome{RotationID: cy.RotationID, Outcome: OutcomeFailed, Message: cause.Error(), Finished: now}
	r.st.Cycle = nil
	if err := r.save(ctx); err != nil {
		r.st.Cycle = cy
		return err
	}
	_ = c.record(cr, cy, "conflict", OutcomeFailed, 0, cause.Error())
	c.report(ctx, cr, cy, OutcomeFailed, now)
	return &abortError{cause}
}
