package controller

import (
	"context"
	"fmt"
	"strings"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/state"
	"github.com/influxrotate/influxrotate/rotation"
)

// abortError ends a cycle early with the old token still active (exit 1).
type abortError struct{ err error }

func (e *abortError) Error() string { return e.err.Error() }
func (e *abortError) Unwrap() error { return e.err }

// abort ends the cycle with the old token still active: the old token is
// republished when known, the new authorization deleted.
func (r *cycleRun) abort(ctx context.Context, cause error, status int) error {
	c, cr, cy := r.c, r.cr, r.st.Cycle
	c.log.Error("rotation failed; the old token stays active", "credential", cr.Name, "error", cause)
	msgs := []string{cause.Error()}
	if cy.Phase != state.PhaseProvision {
		// Targets may hold the new token: put the old one back when known.
		if old := c.token(cy.Old.ID); old != "" {
			for _, t := range c.targets[cr.Name] {
				// Never over another rotation's token (see safety.go).
				if tok, err := t.ReadBack(ctx); err == nil && rotation.Fingerprint(tok) != cy.New.Fingerprint &&
					rotation.Fingerprint(tok) != cy.Old.Fingerprint {
					msgs = append(msgs, t.Name()+" holds another rotation's token "+rotation.Fingerprint(tok)+": left alone")
					continue
				}
				if err := t.Publish(ctx, old); err != nil {
					msgs = append(msgs, "republishing the old token: "+err.Error())
				}
			}
		} else if cy.Old.ID != "" {
			msgs = append(msgs, "the old token is unknown: the targets keep the refused new token, writers keep the old one")
		}
	}
	if cy.New.ID != "" {
		if err := c.be.Delete(ctx, cy.New.ID); err != nil {
			// Leave the journal so that the next run retries the cleanup.
			return fmt.Errorf("%w; deleting the new authorization %s: %v", cause, cy.New.ID, err)
		}
		c.forget(cy.New.ID)
	}
	now := c.now()
	r.st.Last = state.Outcome{RotationID: cy.RotationID, Outcome: OutcomeFailed, Message: strings.Join(msgs, "; "), Finished: now}
	r.st.Cycle = nil
	if err := r.save(ctx); err != nil {
		r.st.Cycle = cy
		return err
	}
	_ = c.record(cr, cy, "abort", OutcomeFailed, status, strings.Join(msgs, "; "))
	c.report(ctx, cr, cy, OutcomeFailed, now)
	return &abortError{cause}
}
