package controller

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"time"

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
	if c.phaseIndex(state.PhaseDeactivate) < 0 {
		fmt.Fprintf(c.out, "  grace:     %s, then delete %s: this server has no inactive state, so no rollback after it\n", cr.Grace, curID)
		return res
	}
	fmt.Fprintf(c.out, "  grace:     %s, then deactivate %s\n", cr.Grace, curID)
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
