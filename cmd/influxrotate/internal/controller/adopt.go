package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/backend"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/config"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/state"
	"github.com/influxrotate/influxrotate/internal/lifecycle"
	"github.com/influxrotate/influxrotate/rotation"
)

// fleet is one reading of a credential's writers: which of them write with
// the new token and which do not yet.
type fleet struct {
	// adopted are the latest reports that carry the new fingerprint.
	adopted []backend.Adoption
	// missing are the client IDs that must adopt and have not: writers
	// whose latest report carries the old fingerprint, and configured
	// clients that reported nothing newer or report another token.
	missing []string
	// short is set when fewer than min_clients have adopted.
	short bool
}

// complete reports whether the old token may go: every member adopted, and
// enough of them to know that the reports arrive at all.
func (f fleet) complete() bool { return len(f.missing) == 0 && !f.short }

// stragglers names who holds the cycle up, for errors and audit records.
func (f fleet) stragglers(a *config.Adoption) string {
	var parts []string
	if len(f.missing) > 0 {
		parts = append(parts, "not on the new token: "+strings.Join(f.missing, ", "))
	}
	if f.short {
		parts = append(parts, fmt.Sprintf("%d of min_clients %d reported the new token", len(f.adopted), a.MinClients))
	}
	return strings.Join(parts, "; ")
}

func (f fleet) adoptedIDs() []string {
	ids := make([]string, len(f.adopted))
	for i, a := range f.adopted {
		ids[i] = a.ClientID
	}
	return ids
}

// judge sorts the latest reports into a fleet. A writer belongs to the
// credential's fleet when its latest report carries the old or the new
// fingerprint (a writer of another credential in the same bucket does not),
// or when the configuration names it. A writer whose reports stopped before
// the lookback has left the fleet and holds nothing up.
func judge(reports []backend.Adoption, oldFP, newFP string, a *config.Adoption) fleet {
	var f fleet
	latest := map[string]backend.Adoption{}
	for _, rep := range reports {
		latest[rep.ClientID] = rep
		switch {
		case rep.Fingerprint == newFP:
			f.adopted = append(f.adopted, rep)
		case oldFP != "" && rep.Fingerprint == oldFP:
			f.missing = append(f.missing, rep.ClientID)
		}
	}
	for _, id := range a.Clients {
		if rep, ok := latest[id]; (!ok || rep.Fingerprint != newFP) && !slices.Contains(f.missing, id) {
			f.missing = append(f.missing, id)
		}
	}
	slices.Sort(f.missing)
	f.short = len(f.adopted) < a.MinClients
	return f
}

// stragglersError ends a run whose writers did not all adopt the new token
// within the timeout, with on_timeout = "abort": nothing was deactivated,
// both tokens stay valid, and the next run resumes waiting (exit 1).
type stragglersError struct{ err error }

func (e *stragglersError) Error() string { return e.err.Error() }
func (e *stragglersError) Unwrap() error { return e.err }

// adoptionReader is the backend's reader of adoption reports.
func (c *Controller) adoptionReader() (backend.AdoptionReader, error) {
	ar, ok := c.be.(backend.AdoptionReader)
	if !ok {
		return nil, &config.Error{Err: fmt.Errorf("backend %s: [credential.adoption] needs a server that answers InfluxQL /query; this backend cannot read adoption reports", c.cfg.Backend)}
	}
	return ar, nil
}

// adoptionQuery is where a credential's reports are: adoption.bucket, else
// the first bucket (InfluxDB 3: database) the new token may write by name.
func adoptionQuery(cr *config.Credential, perms []backend.Permission) (backend.AdoptionQuery, error) {
	a := cr.Adoption
	q := backend.AdoptionQuery{Bucket: a.Bucket, Measurement: a.Measurement, Lookback: time.Duration(a.Lookback)}
	for _, p := range perms {
		if q.Bucket != "" {
			break
		}
		if p.Action == "write" && (p.Type == "buckets" || p.Type == "db") && p.Name != "" && p.Name != "*" {
			q.Bucket = p.Name
		}
	}
	if q.Bucket == "" {
		return q, &config.Error{Err: fmt.Errorf("credential %q: adoption.bucket is required: the token's permissions name no bucket (an InfluxDB 3 admin token names no database)", cr.Name)}
	}
	return q, nil
}

// readAdoptions reads the reports; a server that will not let the operator
// read them is a configuration error, which no retry fixes.
func (c *Controller) readAdoptions(ctx context.Context, cr *config.Credential, q backend.AdoptionQuery) ([]backend.Adoption, error) {
	ar, err := c.adoptionReader()
	if err != nil {
		return nil, err
	}
	reports, err := ar.Adoptions(ctx, q)
	if errors.Is(err, backend.ErrAdoptionAccess) {
		return nil, &config.Error{Err: fmt.Errorf("credential %q: adoption.bucket %q: %w", cr.Name, q.Bucket, err)}
	}
	return reports, err
}

// checkAdoption reads the reports once before a cycle starts, so that a
// missing read permission stops the run before anything is created or
// published.
func (c *Controller) checkAdoption(ctx context.Context, cr *config.Credential, perms []backend.Permission) error {
	if cr.Adoption == nil {
		return nil
	}
	q, err := adoptionQuery(cr, perms)
	if err != nil {
		return err
	}
	_, err = c.readAdoptions(ctx, cr, q)
	return err
}

// adopt waits until every writer of the credential reports that it writes
// with the new token, polling the reports every poll_interval, for at most
// timeout in this run. The lock is released meanwhile, as in grace, so a
// rollback can still take the cycle over.
func (r *cycleRun) adopt(ctx context.Context) (phaseOutcome, error) {
	c, cr, cy := r.c, r.cr, r.st.Cycle
	a := cr.Adoption
	if a == nil {
		return phaseOutcome{message: "skipped: no [credential.adoption], the grace phase waits"}, nil
	}
	q, err := adoptionQuery(cr, cy.New.Permissions)
	if err != nil {
		return phaseOutcome{}, err
	}
	oldFP, newFP := cy.Old.Fingerprint, cy.New.Fingerprint
	if oldFP == "" {
		c.log.Warn("the old token's fingerprint is unknown: only writers already on the new token and the configured clients make the fleet",
			"credential", cr.Name)
	}
	timeout, poll := time.Duration(a.Timeout), time.Duration(a.PollInterval)
	deadline := c.now().Add(timeout)
	c.log.Info("waiting for the writers to adopt the new token", "credential", cr.Name, "rotation_id", cy.RotationID,
		"bucket", q.Bucket, "new_fingerprint", newFP, "timeout", a.Timeout)
	if err := c.record(cr, cy, string(state.PhaseAdopt), "waiting", 0, fmt.Sprintf("for the writers' reports in %q, at most %s", q.Bucket, a.Timeout)); err != nil {
		return phaseOutcome{}, err
	}
	var f fleet
	// Bounded: one poll per interval until the deadline, and the last one at it.
	maxPolls := int(timeout/poll) + 2
	out, err := r.unlocked(ctx, func(ctx context.Context) error {
		for polls := 1; ; polls++ {
			reports, err := c.readAdoptions(ctx, cr, q)
			if err != nil {
				return err
			}
			f = judge(reports, oldFP, newFP, a)
			left := deadline.Sub(c.now())
			if f.complete() || left <= 0 || polls >= maxPolls {
				return nil
			}
			c.log.Debug("writers have not all adopted", "credential", cr.Name, "adopted", len(f.adopted), "missing", f.missing)
			r.hook(state.PhaseAdopt, "poll")
			if err := lifecycle.Sleep(ctx, min(poll, left)); err != nil {
				return err
			}
		}
	})
	if err != nil || out.rerun {
		if err != nil && !ConfigError(err) && ctx.Err() == nil {
			return out, r.failure(0, err, fmt.Errorf("adopt: %w", err))
		}
		return out, err
	}
	cy = r.st.Cycle // unlocked re-read the journal
	now := c.now()
	waited := now.Sub(cy.PublishedAt).Round(time.Millisecond)
	if !f.complete() && a.OnTimeout != config.OnTimeoutProceed {
		cause := fmt.Errorf("adopt: the writers did not all adopt the new token within %s (%s); nothing was deactivated, both tokens stay valid, the next run waits again",
			a.Timeout, f.stragglers(a))
		_ = c.record(cr, cy, string(state.PhaseAdopt), OutcomeFailed, 0, cause.Error())
		c.log.Error("writers did not adopt the new token", "credential", cr.Name, "stragglers", f.missing, "adopted", len(f.adopted))
		return phaseOutcome{}, &stragglersError{cause}
	}
	recs := make([]rotation.AuditRecord, len(f.adopted))
	for i, ad := range f.adopted {
		recs[i] = c.auditRecord(cr, cy, "adopted", OutcomeOK, 0, fmt.Sprintf("client_id=%s fingerprint=%s first_seen=%s last_report=%s",
			ad.ClientID, ad.Fingerprint, ad.FirstSeen.UTC().Format(time.RFC3339Nano), ad.LastReport.UTC().Format(time.RFC3339Nano)))
	}
	// One append for the fleet: the log is opened (and its tail read) once.
	if err := c.appendAudit(recs...); err != nil {
		return phaseOutcome{}, err
	}
	cy.AdoptedAt = now
	cy.Adoption = &state.Adoption{Adopted: f.adoptedIDs(), Missing: f.missing}
	msg := fmt.Sprintf("adopted=%d missing=%d waited=%s", len(f.adopted), len(f.missing), waited)
	if !f.complete() {
		msg += "; on_timeout=proceed cuts off " + f.stragglers(a)
		c.log.Warn("timeout: deactivating the old token although writers still use it", "credential", cr.Name, "stragglers", f.missing)
	}
	return phaseOutcome{message: msg}, nil
}
