package controller

import (
	"context"
	"errors"
	"fmt"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/backend"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/state"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/target"
	"github.com/influxrotate/influxrotate/rotation"
)

// publish writes the new token to every target and reads it back.
func (r *cycleRun) publish(ctx context.Context, tok string) (phaseOutcome, error) {
	c, cr, cy := r.c, r.cr, r.st.Cycle
	if err := r.checkBeforePublish(ctx); errors.Is(err, ErrConcurrent) {
		return phaseOutcome{}, r.yield(ctx, err)
	} else if err != nil {
		return phaseOutcome{}, r.failure(0, err, fmt.Errorf("publish: %w", err))
	}
	for i, t := range c.targets[cr.Name] {
		if cy.Old.ID != "" && c.token(cy.Old.ID) == "" {
			// Keep the old token in memory before overwriting it: a failed
			// verify republishes it.
			if old, err := t.ReadBack(ctx); err == nil && rotation.Fingerprint(old) == cy.Old.Fingerprint {
				c.remember(cy.Old.ID, old)
			}
		}
		if err := t.Publish(ctx, tok); errors.Is(err, target.ErrRefused) {
			// Retrying cannot help (a FIFO or symlink at the path, a writer
			// that could not read the file): give up the cycle rather than
			// keep a provisioned authorization waiting for an operator.
			return phaseOutcome{}, &refusal{fmt.Errorf("publish: %w", err), 0}
		} else if err != nil {
			return phaseOutcome{}, r.failure(0, err, fmt.Errorf("publish: %w", err))
		}
		r.hook(state.PhasePublish, fmt.Sprintf("target-%d", i))
	}
	if err := r.confirm(ctx, tok); err != nil {
		return phaseOutcome{}, r.failure(0, err, err)
	}
	cy.PublishedAt = c.now()
	return phaseOutcome{}, nil
}

// confirm reads every target back and compares fingerprints.
func (r *cycleRun) confirm(ctx context.Context, tok string) error {
	want := rotation.Fingerprint(tok)
	for _, t := range r.c.targets[r.cr.Name] {
		got, err := t.ReadBack(ctx)
		if errors.Is(err, target.ErrUnreadable) {
			continue
		}
		if err != nil {
			return fmt.Errorf("publish: read back %s: %w", t.Name(), err)
		}
		if fp := rotation.Fingerprint(got); fp != want {
			return fmt.Errorf("publish: read back %s: holds %s, want %s", t.Name(), fp, want)
		}
	}
	return nil
}

// newToken finds the new token: in memory, on the server (tokens shown up
// to 2.7) or in a target that already holds it. "" when it is lost.
func (r *cycleRun) newToken(ctx context.Context) (string, error) {
	c, cy := r.c, r.st.Cycle
	if tok := c.token(cy.New.ID); tok != "" {
		return tok, nil
	}
	a, err := c.be.Get(ctx, cy.New.ID)
	if errors.Is(err, backend.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if a.Token != "" && rotation.Fingerprint(a.Token) == cy.New.Fingerprint {
		c.remember(a.ID, a.Token)
		return a.Token, nil
	}
	if tok := r.findInTargets(ctx, cy.New.Fingerprint); tok != "" {
		c.remember(cy.New.ID, tok)
		return tok, nil
	}
	return "", nil
}

// findInTargets returns the token with fingerprint fp if a target holds it.
func (r *cycleRun) findInTargets(ctx context.Context, fp string) string {
	if fp == "" {
		return ""
	}
	for _, t := range r.c.targets[r.cr.Name] {
		if tok, err := t.ReadBack(ctx); err == nil && rotation.Fingerprint(tok) == fp {
			return tok
		}
	}
	return ""
}
