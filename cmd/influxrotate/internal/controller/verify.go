package controller

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/backend"
	"github.com/influxrotate/influxrotate/rotation"
)

// verify probes the new token on every bucket it may write.
func (r *cycleRun) verify(ctx context.Context, tok string) (phaseOutcome, error) {
	c, cr, cy := r.c, r.cr, r.st.Cycle
	a, err := c.be.Get(ctx, cy.New.ID)
	if errors.Is(err, backend.ErrNotFound) {
		return r.reprovision(ctx)
	}
	if err != nil {
		return phaseOutcome{}, err
	}
	targets, err := c.be.ProbeTargets(ctx, a)
	if err != nil {
		return phaseOutcome{}, err
	}
	if len(targets) == 0 {
		c.log.Warn("the token may write no bucket; nothing to probe", "credential", cr.Name)
	} else if err := r.probe(ctx, tok, targets); err != nil {
		return phaseOutcome{}, err
	}
	cy.VerifiedAt = c.now()
	return phaseOutcome{status: 204, message: fmt.Sprintf("%d bucket(s)", len(targets))}, nil
}

// probe writes nothing to each target with the new token, retrying answers
// that say nothing about the token, and a 401 for activation_timeout: some
// servers (InfluxDB Cloud Dedicated, Clustered) accept a new token only
// after a while. A refused token is a refusal: the cycle ends with the old
// token still active.
func (r *cycleRun) probe(ctx context.Context, tok string, targets []rotation.Target) error {
	c, cr, cy := r.c, r.cr, r.st.Cycle
	// The controller's Scrubber, not a fresh one: a hostile server can quote
	// in the probe's answer the operator token it saw on earlier calls.
	prober, err := rotation.NewHTTPProber(rotation.ProberConfig{URL: c.cfg.URL, Targets: targets, Client: c.client,
		Timeout: time.Duration(c.cfg.Timeout), Header: map[string][]string{"User-Agent": {"influxrotate"}}, Scrubber: c.scrub})
	if err != nil {
		return err
	}
	cred := rotation.NewCredential(tok, cy.New.ID, "new authorization")
	activating := time.Now().Add(time.Duration(cr.ActivationTimeout))
	var res rotation.ProbeResult
	err = backend.Retry{Attempts: c.cfg.Retry.Attempts, Initial: time.Duration(c.cfg.Retry.Initial), Max: time.Duration(c.cfg.Retry.Max),
		For: time.Duration(cr.ActivationTimeout)}.
		Do(ctx, c.log, "verify probe", func(ctx context.Context) error {
			res = prober.Probe(ctx, cred)
			switch {
			case res.Verdict == rotation.VerdictUnknown:
				return fmt.Errorf("probe %s/%s: status %d: %s", res.Target.Org, res.Target.Bucket, res.Status, res.Message)
			case res.Verdict == rotation.VerdictRefused && res.Status == http.StatusUnauthorized && time.Now().Before(activating):
				return fmt.Errorf("probe %s/%s: the new token is not accepted yet (activation_timeout %s): status %d: %s",
					res.Target.Org, res.Target.Bucket, cr.ActivationTimeout, res.Status, res.Message)
			}
			return nil
		})
	if err != nil {
		return r.failure(res.Status, err, fmt.Errorf("verify: %w", err))
	}
	if res.Verdict != rotation.VerdictValid {
		return &refusal{fmt.Errorf("verify: the new token was refused on %s/%s: %s (%d %s)",
			res.Target.Org, res.Target.Bucket, res.Verdict, res.Status, res.Message), res.Status}
	}
	return nil
}
