package controller

import (
	"context"
	"errors"
	"fmt"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/backend"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/config"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/state"
	"github.com/influxrotate/influxrotate/rotation"
)

// rollback is one undo of a credential's last (or in-flight) rotation:
// old is the authorization to restore, nw the one to drop, cy the cycle
// they belong to (rebuilt from the journal for a completed one).
type rollback struct {
	c       *Controller
	cr      *config.Credential
	st      *state.State
	cy      *state.Cycle
	old, nw state.Ref
}

// Rollback undoes the last rotation of a credential (or the one in
// flight): it reactivates the old authorization and, when its token is
// still known (shown by the server, or held by a target), republishes it
// and removes the new one. When the old token is unknown, the old
// authorization stays active for writers that still hold it, the targets
// keep the new token, and the next rotation retires the old one.
//
// On a server without an inactive state (InfluxDB 3) both tokens are valid
// until the delete phase, so a rollback before it keeps both valid (and
// republishes the old token when it is known); once the old token is
// deleted, a rollback cannot undo anything and says so.
func (c *Controller) Rollback(ctx context.Context, cr *config.Credential) Result {
	res := Result{Credential: cr.Name}
	lock, err := c.store.Lock(ctx, cr.Name)
	if err != nil {
		res.Outcome, res.Err = OutcomeFailed, err
		return res
	}
	defer func() { _ = lock.Unlock() }()
	st, err := c.store.Load(ctx, cr.Name)
	if err != nil {
		res.Outcome, res.Err = OutcomeFailed, err
		return res
	}
	rb := &rollback{c: c, cr: cr, st: st}
	switch cy := st.Cycle; {
	case cy != nil && cy.Old.ID != "":
		rb.cy, rb.old, rb.nw = cy, cy.Old, cy.New
	case cy == nil && st.Previous.ID != "":
		rb.old, rb.nw = st.Previous, st.Current
		rb.cy = &state.Cycle{RotationID: st.Last.RotationID, Old: rb.old, New: rb.nw}
	default:
		res.Outcome, res.Err = OutcomeFailed, fmt.Errorf("credential %q: nothing to roll back", cr.Name)
		return res
	}
	res.RotationID = rb.cy.RotationID
	res.Outcome, res.Err = rb.run(ctx)
	return res
}

// fail records a failed rollback; the journal stays as it was.
func (rb *rollback) fail(err error) (string, error) {
	_ = rb.c.record(rb.cr, rb.cy, "rollback", OutcomeFailed, backend.StatusOf(err), err.Error())
	return OutcomeFailed, err
}

// run reactivates the old authorization and ends in one of three ways,
// by what is known of its token and how far the cycle got.
func (rb *rollback) run(ctx context.Context) (string, error) {
	c, old := rb.c, rb.old
	a, err := c.be.Get(ctx, old.ID)
	if errors.Is(err, backend.ErrNotFound) {
		// The delete phase ran: no server can bring a deleted token back.
		return rb.fail(fmt.Errorf("rollback: cannot undo: the old authorization %s was deleted (the rotation reached its delete phase), "+
			"and a deleted token cannot be restored; nothing was changed, the new token stays in use", old.ID))
	}
	if err != nil {
		return rb.fail(fmt.Errorf("rollback: old authorization %s: %w", old.ID, err))
	}
	if err := c.be.SetActive(ctx, &backend.Authorization{ID: old.ID, Permissions: old.Permissions}, true); err != nil {
		return rb.fail(fmt.Errorf("rollback: reactivating %s: %w", old.ID, err))
	}
	tok := c.token(old.ID)
	if tok == "" && a.Token != "" && (old.Fingerprint == "" || rotation.Fingerprint(a.Token) == old.Fingerprint) {
		tok = a.Token
	}
	if tok == "" {
		tok = (&cycleRun{c: c, cr: rb.cr, st: rb.st}).findInTargets(ctx, old.Fingerprint)
	}
	switch {
	case tok == "" && rb.st.Cycle != nil && rb.st.Cycle.Phase == state.PhaseProvision:
		return rb.abandon(ctx)
	case tok == "":
		return rb.keepNewToken(ctx)
	}
	return rb.restore(ctx, tok)
}

// abandon ends a cycle that published nothing yet: dropping the new
// authorization is the whole rollback, and the old one stays current.
func (rb *rollback) abandon(ctx context.Context) (string, error) {
	c, cr, cy := rb.c, rb.cr, rb.cy
	if rb.nw.ID != "" {
		if err := c.be.Delete(ctx, rb.nw.ID); err != nil {
			return rb.fail(fmt.Errorf("rollback: deleting the new authorization %s: %w", rb.nw.ID, err))
		}
	}
	rb.st.Cycle = nil
	rb.st.Last = state.Outcome{RotationID: cy.RotationID, Outcome: OutcomeRolledBack, Finished: c.now()}
	if err := c.store.Save(ctx, rb.st); err != nil {
		return rb.fail(err)
	}
	if err := c.record(cr, cy, "rollback", OutcomeOK, 0, "cycle abandoned before publish"); err != nil {
		return rb.fail(err)
	}
	fmt.Fprintf(c.out, "influxrotate: credential=%s rotation=%s outcome=rolled_back current=%s\n", cr.Name, cy.RotationID, rb.old.ID)
	return OutcomeRolledBack, nil
}

// keepNewToken is the partial rollback when the old token is unknown: the
// old authorization is active again for the writers that still hold it,
// the targets keep the new token, and the next rotation retires the old
// one. It is reported as a failure, and recorded as "partial".
func (rb *rollback) keepNewToken(ctx context.Context) (string, error) {
	c, cy, old, nw := rb.c, rb.cy, rb.old, rb.nw
	rb.st.Cycle = nil
	if nw.ID != "" {
		rb.st.Current = state.Ref{ID: nw.ID, Fingerprint: nw.Fingerprint, Since: cy.ProvisionedAt, Permissions: nw.Permissions}
	}
	rb.st.Retired = append(rb.st.Retired, old)
	msg := "old authorization " + old.ID + " reactivated, but its token is unknown: targets keep the new token; the next rotation retires the old one"
	if !rb.c.be.Capabilities().Inactive {
		msg = "old token " + old.ID + " is still valid (this server has no inactive state), but its token is unknown: " +
			"targets keep the new token and both stay valid; the next rotation deletes the old one"
	}
	rb.st.Last = state.Outcome{RotationID: cy.RotationID, Outcome: OutcomeRolledBack, Message: msg, Finished: c.now()}
	if err := c.store.Save(ctx, rb.st); err != nil {
		return rb.fail(err)
	}
	_ = c.record(rb.cr, cy, "rollback", "partial", 0, msg)
	return OutcomeFailed, errors.New("rollback: " + msg)
}

// restore republishes the old token, drops the new authorization and makes
// the old one current again.
func (rb *rollback) restore(ctx context.Context, tok string) (string, error) {
	c, cr, cy, old, nw := rb.c, rb.cr, rb.cy, rb.old, rb.nw
	for _, t := range c.targets[cr.Name] {
		if err := t.Publish(ctx, tok); err != nil {
			return rb.fail(fmt.Errorf("rollback: %w", err))
		}
	}
	if err := (&cycleRun{c: c, cr: cr, st: rb.st}).confirm(ctx, tok); err != nil {
		return rb.fail(fmt.Errorf("rollback: %w", err))
	}
	if nw.ID != "" && nw.ID != old.ID {
		if err := c.be.Delete(ctx, nw.ID); err != nil {
			return rb.fail(fmt.Errorf("rollback: deleting the new authorization %s: %w", nw.ID, err))
		}
	}
	rb.st.Cycle = nil
	rb.st.Current = state.Ref{ID: old.ID, Fingerprint: rotation.Fingerprint(tok), Since: old.Since, Permissions: old.Permissions}
	rb.st.Previous = state.Ref{}
	rb.st.Last = state.Outcome{RotationID: cy.RotationID, Outcome: OutcomeRolledBack, Finished: c.now()}
	if err := c.store.Save(ctx, rb.st); err != nil {
		return rb.fail(err)
	}
	if err := c.record(cr, cy, "rollback", OutcomeOK, 0, "old authorization reactivated and republished"); err != nil {
		return rb.fail(err)
	}
	fmt.Fprintf(c.out, "influxrotate: credential=%s rotation=%s outcome=rolled_back current=%s(%s)\n",
		cr.Name, cy.RotationID, old.ID, rotation.Fingerprint(tok))
	return OutcomeRolledBack, nil
}
