package controller

import (
	"context"
	"fmt"
	"time"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/backend"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/state"
	"github.com/influxrotate/influxrotate/rotation"
)

// provision creates the new authorization, or adopts the one a crashed run
// created for the same rotation id.
func (r *cycleRun) provision(ctx context.Context) (phaseOutcome, error) {
	c, cr, cy := r.c, r.cr, r.st.Cycle
	created, err := r.leftByCrash(ctx)
	if err != nil {
		return phaseOutcome{}, err
	}
	if created == nil {
		label := backend.Label{Credential: cr.Name, Description: cr.Description, RotationID: cy.RotationID}
		created, err = c.be.Create(ctx, cr.Org, label, cy.New.Permissions)
		if err != nil {
			if backend.Refused(err) {
				return phaseOutcome{}, &refusal{fmt.Errorf("provision: %w", err), backend.StatusOf(err)}
			}
			return phaseOutcome{}, err
		}
		cy.Provisions++
		r.hook(state.PhaseProvision, "created")
		if created.Token == "" {
			// A retried POST found its own earlier success without the token.
			if err := c.be.Delete(ctx, created.ID); err != nil {
				return phaseOutcome{}, err
			}
			// Provision again (bounded by the loop's step limit).
			return phaseOutcome{rerun: true}, c.record(cr, cy, "orphan_deleted", OutcomeOK, 0,
				"authorization "+created.ID+" found without its token after a retried create")
		}
	}
	if !samePermissions(created.Permissions, cy.New.Permissions) {
		// Never publish a token with more (or other) rights than intended.
		_ = c.be.Delete(ctx, created.ID)
		return phaseOutcome{}, &refusal{fmt.Errorf("provision: authorization %s has permissions %v, want exactly %v",
			created.ID, missingFrom(created.Permissions, nil), missingFrom(cy.New.Permissions, nil)), 0}
	}
	c.remember(created.ID, created.Token)
	cy.New.ID, cy.New.Fingerprint, cy.New.Expires = created.ID, rotation.Fingerprint(created.Token), created.ExpiresAt
	cy.ProvisionedAt = c.now()
	if created.ExpiresAt.IsZero() {
		return phaseOutcome{}, nil
	}
	// The expiry is the safety net for a delete that never happens: the
	// audit says until when the token lives even if the controller is gone.
	return phaseOutcome{message: "token expires at " + created.ExpiresAt.UTC().Format(time.RFC3339)}, nil
}

// leftByCrash looks for authorizations an interrupted provision of this
// rotation created. It returns one to adopt when its token is known and it
// grants exactly the wanted permissions; it deletes the others, whose
// token is hashed (InfluxDB 2.9+) or lost, so nobody can publish them.
func (r *cycleRun) leftByCrash(ctx context.Context) (*backend.Authorization, error) {
	c, cr, cy := r.c, r.cr, r.st.Cycle
	list, err := c.be.List(ctx, cr.Org)
	if err != nil {
		return nil, err
	}
	var adopted *backend.Authorization
	for _, a := range list {
		rid, ok := c.labelled(cr, a)
		if !ok || rid != cy.RotationID {
			continue
		}
		tok := a.Token
		if tok == "" {
			tok = c.token(a.ID)
		}
		if adopted == nil && tok != "" && a.Active && samePermissions(a.Permissions, cy.New.Permissions) {
			a.Token = tok
			adopted = a
			c.log.Info("adopting the authorization of an interrupted provision", "credential", cr.Name, "authorization_id", a.ID)
			continue
		}
		if err := c.be.Delete(ctx, a.ID); err != nil {
			return nil, err
		}
		c.forget(a.ID)
		if err := c.record(cr, cy, "orphan_deleted", OutcomeOK, 0, "authorization "+a.ID+" of an interrupted provision"); err != nil {
			return nil, err
		}
	}
	return adopted, nil
}

// reprovision drops a new authorization whose token is lost and sends the
// cycle back to provision.
func (r *cycleRun) reprovision(ctx context.Context) (phaseOutcome, error) {
	c, cy := r.c, r.st.Cycle
	c.log.Warn("the new token is known neither to the server nor to a target; provisioning again",
		"credential", r.cr.Name, "authorization_id", cy.New.ID)
	if err := c.be.Delete(ctx, cy.New.ID); err != nil {
		return phaseOutcome{}, err
	}
	if err := c.record(r.cr, cy, "orphan_deleted", OutcomeOK, 0, "new token lost before publish"); err != nil {
		return phaseOutcome{}, err
	}
	cy.New = state.Ref{Permissions: cy.New.Permissions}
	return phaseOutcome{back: state.PhaseProvision}, nil
}
