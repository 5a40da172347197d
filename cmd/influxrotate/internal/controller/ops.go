package controller

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/backend"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/config"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/state"
)

// plan prints what Rotate would do. It sends only GET requests and writes
// no file.
func (c *Controller) plan(ctx context.Context, cr *config.Credential, opts RotateOptions) Result {
	res := Result{Credential: cr.Name, Outcome: OutcomeDryRun}
	st, err := c.store.Load(ctx, cr.Name)
	if err != nil {
		res.Outcome, res.Err = OutcomeFailed, err
		return res
	}
	if st.Cycle != nil {
		fmt.Fprintf(c.out, "credential %s: would resume rotation %s at phase %s (old %s, new %s), then continue to done\n",
			cr.Name, st.Cycle.RotationID, st.Cycle.Phase, cmp.Or(st.Cycle.Old.ID, "-"), cmp.Or(st.Cycle.New.ID, "-"))
		res.RotationID, res.Phase = st.Cycle.RotationID, st.Cycle.Phase
		return res
	}
	cur, err := c.resolveCurrent(ctx, cr, st)
	if err != nil {
		res.Outcome, res.Err = OutcomeFailed, err
		return res
	}
	next, known := c.nextDue(cr, st, cur)
	if !opts.Force && known && c.now().Before(next) {
		fmt.Fprintf(c.out, "credential %s: not due (authorization %s, next rotation at %s)\n",
			cr.Name, cur.ID, next.UTC().Format(time.RFC3339))
		res.Outcome = OutcomeNotDue
		return res
	}
	perms, err := c.desiredPermissions(ctx, cr, cur)
	if err != nil {
		res.Outcome, res.Err = OutcomeFailed, err
		return res
	}
	curID := "(none: a first authorization is created)"
	if cur != nil {
		curID = cur.ID
	}
	fmt.Fprintf(c.out, "credential %s: would rotate authorization %s\n", cr.Name, curID)
	fmt.Fprintf(c.out, "  provision: a new authorization in org %q with %d permission(s): %s\n",
		cr.Org, len(perms), strings.Join(missingFrom(perms, nil), ", "))
	fmt.Fprintf(c.out, "  publish:   %s\n", strings.Join(c.targetNames(cr.Name), "; "))
	fmt.Fprintf(c.out, "  verify:    an empty write on each bucket it may write\n")
	// What ends the old token: deactivation where the server has an
	// inactive state, deletion (for good) where it has none.
	then, final := "deactivate", ""
	if c.phaseIndex(state.PhaseDeactivate) < 0 {
		then, final = "delete", ": this server has no inactive state, so no rollback after it"
	}
	if a := cr.Adoption; a != nil {
		// A read-only query: a dry run finds a missing read permission too.
		q, err := adoptionQuery(cr, perms)
		if err == nil {
			_, err = c.readAdoptions(ctx, cr, q)
		}
		if err != nil {
			res.Outcome, res.Err = OutcomeFailed, err
			return res
		}
		fmt.Fprintf(c.out, "  adopt:     until every writer reporting to %q is on the new token (at most %s, then %s), then %s %s%s\n",
			q.Bucket, a.Timeout, a.OnTimeout, then, curID, final)
	} else {
		fmt.Fprintf(c.out, "  grace:     %s, then %s %s%s\n", cr.Grace, then, curID, final)
	}
	if then == "delete" {
		return res
	}
	fmt.Fprintf(c.out, "  observe:   %s, then delete %s\n", cr.Observe, curID)
	return res
}

// Status is one credential's state for `influxrotate status`.
type Status struct {
	Credential  string
	Current     state.Ref
	Age         time.Duration
	NextDue     time.Time
	Last        state.Outcome
	Interrupted state.Phase
	RotationID  string
	// Phases is the cycle this backend runs, in order.
	Phases []state.Phase
}

// Status reads the journals; it contacts no InfluxDB server.
func (c *Controller) Status(ctx context.Context) ([]Status, error) {
	var out []Status
	for i := range c.cfg.Credentials {
		cr := &c.cfg.Credentials[i]
		st, err := c.store.Load(ctx, cr.Name)
		if err != nil {
			return nil, err
		}
		s := Status{Credential: cr.Name, Current: st.Current, Last: st.Last, Interrupted: st.Interrupted(), Phases: c.Phases()}
		s.Current.ID = cmp.Or(s.Current.ID, cr.AuthorizationID)
		if !st.Current.Since.IsZero() {
			s.Age = c.now().Sub(st.Current.Since)
			s.NextDue = st.Current.Since.Add(time.Duration(cr.MaxAge))
		}
		if st.Cycle != nil {
			s.RotationID = st.Cycle.RotationID
		}
		out = append(out, s)
	}
	return out, nil
}

// Writer is one writer of a credential as its latest adoption report
// within the lookback shows it.
type Writer struct {
	backend.Adoption
	// Token says which token it writes with: "new" (of the cycle in
	// flight), "current", "old" (the one the cycle in flight retires),
	// "previous" (retired by the last cycle) or "other".
	Token string
}

// Writers reads the adoption reports of a credential with
// [credential.adoption] (nil without it): who writes with which token,
// and when it last said so.
func (c *Controller) Writers(ctx context.Context, cr *config.Credential) ([]Writer, error) {
	if cr.Adoption == nil {
		return nil, nil
	}
	st, err := c.store.Load(ctx, cr.Name)
	if err != nil {
		return nil, err
	}
	perms := st.Current.Permissions
	known := map[string]string{st.Previous.Fingerprint: "previous", st.Current.Fingerprint: "current"}
	if cy := st.Cycle; cy != nil {
		perms = cy.New.Permissions
		known[cy.Old.Fingerprint], known[cy.New.Fingerprint] = "old", "new"
	}
	delete(known, "")
	q, err := adoptionQuery(cr, perms)
	if err != nil {
		return nil, err
	}
	reports, err := c.readAdoptions(ctx, cr, q)
	if err != nil {
		return nil, err
	}
	out := make([]Writer, len(reports))
	for i, rep := range reports {
		out[i] = Writer{Adoption: rep, Token: known[rep.Fingerprint]}
		if out[i].Token == "" {
			out[i].Token = "other"
		}
	}
	return out, nil
}
