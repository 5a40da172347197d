package controller

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/backend"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/config"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/state"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/target"
	"github.com/influxrotate/influxrotate/internal/statsline"
	"github.com/influxrotate/influxrotate/rotation"
)

// abortError ends a cycle early with the old token still active (exit 1).
type abortError struct{ err error }

func (e *abortError) Error() string { return e.err.Error() }
func (e *abortError) Unwrap() error { return e.err }

// run is one credential's cycle in this process: the lock, the journal and
// the in-memory token cache.
type run struct {
	c    *Controller
	cr   *config.Credential
	lock *state.Lock
	st   *state.State
	// retriesAtStart is the controller's retry count when revocation
	// began, to count revocation attempts.
	retriesAtStart int64
}

// Rotate runs or resumes one credential's cycle if it is due (or forced).
func (c *Controller) Rotate(ctx context.Context, cr *config.Credential, opts RotateOptions) Result {
	res := Result{Credential: cr.Name}
	if opts.DryRun {
		return c.plan(ctx, cr, opts)
	}
	lock, err := c.store.Lock(cr.Name)
	if err != nil {
		res.Outcome, res.Err = OutcomeFailed, err
		return res
	}
	r := &run{c: c, cr: cr, lock: lock}
	defer func() { _ = r.lock.Unlock() }()
	if r.st, err = c.store.Load(cr.Name); err != nil {
		res.Outcome, res.Err = OutcomeFailed, err
		return res
	}
	if r.st.Cycle == nil {
		cur, err := c.resolveCurrent(ctx, cr, r.st)
		if err != nil {
			return r.result(err)
		}
		if !opts.Force && !c.due(cr, r.st, cur) {
			res.Outcome = OutcomeNotDue
			return res
		}
		if err := r.start(ctx, cur); err != nil {
			return r.result(err)
		}
	} else {
		c.log.Info("resuming interrupted rotation", "credential", cr.Name,
			"rotation_id", r.st.Cycle.RotationID, "phase", r.st.Cycle.Phase)
		if err := c.record(cr, r.st.Cycle, "resume", OutcomeOK, 0, "phase "+string(r.st.Cycle.Phase)); err != nil {
			return r.result(err)
		}
	}
	return r.result(r.loop(ctx))
}

// result turns the end of a run into a Result, writing the summary line,
// metrics and the last outcome.
func (r *run) result(err error) Result {
	res := Result{Credential: r.cr.Name}
	if r.st != nil && r.st.Cycle != nil {
		res.RotationID, res.Phase = r.st.Cycle.RotationID, r.st.Cycle.Phase
	} else if r.st != nil {
		res.RotationID = r.st.Last.RotationID
	}
	var ab *abortError
	switch {
	case err == nil && r.st != nil && r.st.Last.Outcome == OutcomeRolledBack:
		// A rollback took the cycle over while this run waited.
		res.Outcome = OutcomeRolledBack
	case err == nil:
		res.Outcome = OutcomeOK
	case ConfigError(err):
		res.Outcome, res.Err = OutcomeFailed, err
	case errors.As(err, &ab):
		res.Outcome, res.Err = OutcomeFailed, err
	case r.st != nil && r.st.Cycle != nil:
		res.Outcome, res.Err = OutcomeInterrupted, err
	default:
		res.Outcome, res.Err = OutcomeFailed, err
	}
	return res
}

func (c *Controller) due(cr *config.Credential, st *state.State, cur *backend.Authorization) bool {
	next, ok := c.nextDue(cr, st, cur)
	return !ok || !c.now().Before(next)
}

// nextDue is when the current token reaches max_age; ok is false when its
// age is unknown (InfluxDB 1.x before the first rotation), which makes it due.
func (c *Controller) nextDue(cr *config.Credential, st *state.State, cur *backend.Authorization) (time.Time, bool) {
	since := st.Current.Since
	if since.IsZero() && cur != nil {
		since = cur.CreatedAt
	}
	if since.IsZero() {
		return time.Time{}, false
	}
	return since.Add(cr.MaxAge), true
}

// resolveCurrent finds the authorization the targets hold now: the state
// file's, else authorization_id, else the one active authorization this
// controller made for the credential or whose description matches. It
// returns nil, nil when there is none and explicit buckets allow a first
// authorization to be made.
func (c *Controller) resolveCurrent(ctx context.Context, cr *config.Credential, st *state.State) (*backend.Authorization, error) {
	id := st.Current.ID
	origin := "the state file"
	if id == "" {
		id, origin = cr.AuthorizationID, "authorization_id"
	}
	if id != "" {
		a, err := c.be.Get(ctx, id)
		if err == nil {
			return a, nil
		}
		if !errors.Is(err, backend.ErrNotFound) {
			return nil, err
		}
		if origin == "authorization_id" {
			return nil, &config.Error{Err: fmt.Errorf("credential %q: authorization_id %s does not exist", cr.Name, id)}
		}
		c.log.Warn("the current authorization of the state file is gone; looking for it by description",
			"credential", cr.Name, "authorization_id", id)
	}
	list, err := c.be.List(ctx, cr.Org)
	if err != nil {
		return nil, err
	}
	var managed, described []*backend.Authorization
	for _, a := range list {
		if !a.Active {
			continue
		}
		if _, ok := c.labelled(cr, a); ok {
			managed = append(managed, a)
		} else if a.Description == cr.Description {
			described = append(described, a)
		}
	}
	cands := managed
	if len(cands) == 0 {
		cands = described
	}
	switch {
	case len(cands) == 1:
		return cands[0], nil
	case len(cands) > 1:
		ids := make([]string, len(cands))
		for i, a := range cands {
			ids[i] = a.ID
		}
		return nil, &config.Error{Err: fmt.Errorf("credential %q: %d active authorizations match description %q (%s); set authorization_id",
			cr.Name, len(cands), cr.Description, strings.Join(ids, ", "))}
	case len(cr.Buckets) > 0:
		return nil, nil
	}
	return nil, &config.Error{Err: fmt.Errorf("credential %q: no active authorization with description %q; set authorization_id or buckets",
		cr.Name, cr.Description)}
}

// labelled returns the rotation id of an authorization this controller made
// for cr.
func (c *Controller) labelled(cr *config.Credential, a *backend.Authorization) (string, bool) {
	l, ok := c.be.LabelOf(a)
	if !ok {
		return "", false
	}
	if l.Credential != "" {
		return l.RotationID, l.Credential == cr.Name
	}
	return l.RotationID, l.Description == cr.Description
}

// desiredPermissions are the permissions of the new authorization: the
// current one's, or write on the configured buckets — never more than the
// current one holds.
func (c *Controller) desiredPermissions(ctx context.Context, cr *config.Credential, cur *backend.Authorization) ([]state.Permission, error) {
	if len(cr.Buckets) == 0 {
		if cur == nil || len(cur.Permissions) == 0 {
			return nil, &config.Error{Err: fmt.Errorf("credential %q: the current authorization has no permissions to clone; set buckets", cr.Name)}
		}
		return cur.Permissions, nil
	}
	perms, err := c.be.BucketPermissions(ctx, cr.Org, cr.Buckets)
	if err != nil {
		return nil, &config.Error{Err: fmt.Errorf("credential %q: %w", cr.Name, err)}
	}
	if cur != nil {
		if extra := missingFrom(perms, cur.Permissions); len(extra) > 0 {
			return nil, &config.Error{Err: fmt.Errorf("credential %q: buckets grant more than the current authorization %s holds: %s",
				cr.Name, cur.ID, strings.Join(extra, ", "))}
		}
	}
	return perms, nil
}

func permKey(p state.Permission) string {
	ref := p.ID
	if ref == "" {
		ref = "name:" + p.Name
	}
	return p.Action + ":" + p.Type + "/" + p.OrgID + "/" + ref
}

// missingFrom lists the permissions of a that b does not hold.
func missingFrom(a, b []state.Permission) []string {
	have := map[string]bool{}
	for _, p := range b {
		have[permKey(p)] = true
	}
	var out []string
	for _, p := range a {
		if !have[permKey(p)] {
			out = append(out, permKey(p))
		}
	}
	sort.Strings(out)
	return out
}

// samePermissions compares permission sets, ignoring order.
func samePermissions(a, b []state.Permission) bool {
	return len(missingFrom(a, b)) == 0 && len(missingFrom(b, a)) == 0
}

// start journals a new cycle.
func (r *run) start(ctx context.Context, cur *backend.Authorization) error {
	c, cr := r.c, r.cr
	perms, err := c.desiredPermissions(ctx, cr, cur)
	if err != nil {
		return err
	}
	now := c.now()
	cy := &state.Cycle{RotationID: newRotationID(now), Phase: state.PhaseProvision, Started: now}
	cy.New.Permissions = perms
	if cur != nil {
		cy.Old = state.Ref{ID: cur.ID, Since: r.st.Current.Since, Permissions: cur.Permissions}
		if cy.Old.Since.IsZero() {
			cy.Old.Since = cur.CreatedAt
		}
		switch {
		case r.st.Current.ID == cur.ID && r.st.Current.Fingerprint != "":
			cy.Old.Fingerprint = r.st.Current.Fingerprint
		case cur.Token != "":
			cy.Old.Fingerprint = rotation.Fingerprint(cur.Token)
		}
		c.remember(cur.ID, cur.Token)
		if cy.Old.Fingerprint == "" {
			// Before the first rotation the targets hold the current token.
			for _, t := range c.targets[cr.Name] {
				if tok, err := t.ReadBack(ctx); err == nil {
					cy.Old.Fingerprint = rotation.Fingerprint(tok)
					c.remember(cur.ID, tok)
					break
				}
			}
		}
	}
	r.st.Cycle = cy
	if err := c.store.Save(r.st); err != nil {
		return err
	}
	c.log.Info("rotation started", "credential", cr.Name, "rotation_id", cy.RotationID, "old_authorization", cy.Old.ID)
	return c.record(cr, cy, "start", OutcomeOK, 0, "")
}

// save journals the state.
func (r *run) save() error { return r.c.store.Save(r.st) }

// advance moves the cycle to phase and journals it.
func (r *run) advance(phase state.Phase) error {
	r.st.Cycle.Phase = phase
	return r.save()
}

// loop runs phases until the cycle is done, fails or must wait.
func (r *run) loop(ctx context.Context) error {
	for steps := 0; r.st.Cycle != nil; steps++ {
		if steps > 64 {
			// Each phase advances or fails; a loop this long is a bug.
			return errors.New("rotation did not converge after 64 steps")
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var err error
		switch r.st.Cycle.Phase {
		case state.PhaseProvision:
			err = r.provision(ctx)
		case state.PhasePublish:
			err = r.publish(ctx)
		case state.PhaseVerify:
			err = r.verify(ctx)
		case state.PhaseGrace:
			err = r.wait(ctx, state.PhaseGrace, r.st.Cycle.PublishedAt.Add(r.cr.Grace), state.PhaseDeactivate)
		case state.PhaseDeactivate:
			err = r.deactivate(ctx)
		case state.PhaseObserve:
			err = r.wait(ctx, state.PhaseObserve, r.st.Cycle.DeactivatedAt.Add(r.cr.Observe), state.PhaseDelete)
		case state.PhaseDelete:
			err = r.delete(ctx)
		case state.PhaseDone:
			err = r.finish(ctx)
		default:
			return fmt.Errorf("state file: unknown phase %q", r.st.Cycle.Phase)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *run) hook(phase state.Phase, point string) { r.c.hook(string(phase) + ":" + point) }

// provision creates the new authorization, or adopts the one a crashed run
// created for the same rotation id.
func (r *run) provision(ctx context.Context) error {
	c, cr, cy := r.c, r.cr, r.st.Cycle
	r.hook(state.PhaseProvision, "before")
	var adopted *backend.Authorization
	list, err := c.be.List(ctx, cr.Org)
	if err != nil {
		return err
	}
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
		// Its token is hashed (InfluxDB 2.9+) or lost: nobody can publish it.
		if err := c.be.Delete(ctx, a.ID); err != nil {
			return err
		}
		c.forget(a.ID)
		if err := c.record(cr, cy, "orphan_deleted", OutcomeOK, 0, "authorization "+a.ID+" of an interrupted provision"); err != nil {
			return err
		}
	}
	created := adopted
	if created == nil {
		label := backend.Label{Credential: cr.Name, Description: cr.Description, RotationID: cy.RotationID}
		created, err = c.be.Create(ctx, cr.Org, label, cy.New.Permissions)
		if err != nil {
			if s := backend.StatusOf(err); s >= 400 && s < 500 && s != 429 {
				return r.abort(ctx, fmt.Errorf("provision: %w", err), s)
			}
			return err
		}
		cy.Provisions++
		r.hook(state.PhaseProvision, "created")
		if created.Token == "" {
			// A retried POST found its own earlier success without the token.
			if err := c.be.Delete(ctx, created.ID); err != nil {
				return err
			}
			// Still in provision: the loop creates another (bounded by its step limit).
			return c.record(cr, cy, "orphan_deleted", OutcomeOK, 0, "authorization "+created.ID+" found without its token after a retried create")
		}
	}
	if !samePermissions(created.Permissions, cy.New.Permissions) {
		// Never publish a token with more (or other) rights than intended.
		_ = c.be.Delete(ctx, created.ID)
		return r.abort(ctx, fmt.Errorf("provision: authorization %s has permissions %v, want exactly %v",
			created.ID, missingFrom(created.Permissions, nil), missingFrom(cy.New.Permissions, nil)), 0)
	}
	c.remember(created.ID, created.Token)
	cy.New.ID, cy.New.Fingerprint = created.ID, rotation.Fingerprint(created.Token)
	cy.ProvisionedAt = c.now()
	if err := r.advance(state.PhasePublish); err != nil {
		return err
	}
	if err := c.record(cr, cy, "provision", OutcomeOK, 0, ""); err != nil {
		return err
	}
	r.hook(state.PhaseProvision, "after")
	return nil
}

// newToken finds the new token: in memory, on the server (tokens shown up
// to 2.7) or in a target that already holds it. "" when it is lost.
func (r *run) newToken(ctx context.Context) (string, error) {
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
func (r *run) findInTargets(ctx context.Context, fp string) string {
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

// reprovision drops a new authorization whose token is lost and goes back
// to provision.
func (r *run) reprovision(ctx context.Context) error {
	c, cy := r.c, r.st.Cycle
	c.log.Warn("the new token is known neither to the server nor to a target; provisioning again",
		"credential", r.cr.Name, "authorization_id", cy.New.ID)
	if err := c.be.Delete(ctx, cy.New.ID); err != nil {
		return err
	}
	if err := c.record(r.cr, cy, "orphan_deleted", OutcomeOK, 0, "new token lost before publish"); err != nil {
		return err
	}
	cy.New = state.Ref{Permissions: cy.New.Permissions}
	return r.advance(state.PhaseProvision)
}

// publish writes the new token to every target and reads it back.
func (r *run) publish(ctx context.Context) error {
	c, cr, cy := r.c, r.cr, r.st.Cycle
	r.hook(state.PhasePublish, "before")
	tok, err := r.newToken(ctx)
	if err != nil {
		return err
	}
	if tok == "" {
		return r.reprovision(ctx)
	}
	for i, t := range c.targets[cr.Name] {
		if cy.Old.ID != "" && c.token(cy.Old.ID) == "" {
			// Keep the old token in memory before overwriting it: a failed
			// verify republishes it.
			if old, err := t.ReadBack(ctx); err == nil && rotation.Fingerprint(old) == cy.Old.Fingerprint {
				c.remember(cy.Old.ID, old)
			}
		}
		if err := t.Publish(ctx, tok); err != nil {
			_ = c.record(cr, cy, "publish", OutcomeFailed, 0, err.Error())
			return fmt.Errorf("publish: %w", err)
		}
		r.hook(state.PhasePublish, fmt.Sprintf("target-%d", i))
	}
	if err := r.confirm(ctx, tok); err != nil {
		_ = c.record(cr, cy, "publish", OutcomeFailed, 0, err.Error())
		return err
	}
	cy.PublishedAt = c.now()
	if err := r.advance(state.PhaseVerify); err != nil {
		return err
	}
	if err := c.record(cr, cy, "publish", OutcomeOK, 0, ""); err != nil {
		return err
	}
	r.hook(state.PhasePublish, "after")
	return nil
}

// confirm reads every target back and compares fingerprints.
func (r *run) confirm(ctx context.Context, tok string) error {
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

// verify probes the new token on every bucket it may write.
func (r *run) verify(ctx context.Context) error {
	c, cr, cy := r.c, r.cr, r.st.Cycle
	r.hook(state.PhaseVerify, "before")
	tok, err := r.newToken(ctx)
	if err != nil {
		return err
	}
	if tok == "" {
		return r.reprovision(ctx)
	}
	a, err := c.be.Get(ctx, cy.New.ID)
	if errors.Is(err, backend.ErrNotFound) {
		return r.reprovision(ctx)
	}
	if err != nil {
		return err
	}
	targets, err := c.be.ProbeTargets(ctx, a)
	if err != nil {
		return err
	}
	if len(targets) == 0 {
		c.log.Warn("the token may write no bucket; nothing to probe", "credential", cr.Name)
	} else {
		prober, err := rotation.NewHTTPProber(rotation.ProberConfig{URL: c.cfg.URL, Targets: targets, Client: c.client,
			Timeout: c.cfg.Timeout, Header: map[string][]string{"User-Agent": {"influxrotate"}}})
		if err != nil {
			return err
		}
		cred := rotation.NewCredential(tok, cy.New.ID, "new authorization")
		var res rotation.ProbeResult
		err = backend.Retry{Attempts: c.cfg.Retry.Attempts, Initial: c.cfg.Retry.Initial, Max: c.cfg.Retry.Max}.
			Do(ctx, c.log, "verify probe", func(ctx context.Context) error {
				res = prober.Probe(ctx, cred)
				if res.Verdict == rotation.VerdictUnknown {
					return fmt.Errorf("probe %s/%s: status %d: %s", res.Target.Org, res.Target.Bucket, res.Status, res.Message)
				}
				return nil
			})
		if err != nil {
			_ = c.record(cr, cy, "verify", OutcomeFailed, res.Status, err.Error())
			return fmt.Errorf("verify: %w", err)
		}
		if res.Verdict != rotation.VerdictValid {
			return r.abort(ctx, fmt.Errorf("verify: the new token was refused on %s/%s: %s (%d %s)",
				res.Target.Org, res.Target.Bucket, res.Verdict, res.Status, res.Message), res.Status)
		}
	}
	cy.VerifiedAt = c.now()
	if err := r.advance(state.PhaseGrace); err != nil {
		return err
	}
	if err := c.record(cr, cy, "verify", OutcomeOK, 204, fmt.Sprintf("%d bucket(s)", len(targets))); err != nil {
		return err
	}
	r.hook(state.PhaseVerify, "after")
	return nil
}

// wait sleeps until deadline without the lock, so that an operator can roll
// back during grace or observe, then re-takes it and follows the journal.
func (r *run) wait(ctx context.Context, phase state.Phase, deadline time.Time, next state.Phase) error {
	c, cr := r.c, r.cr
	rid := r.st.Cycle.RotationID
	r.hook(phase, "before")
	if d := deadline.Sub(c.now()); d > 0 {
		c.log.Info("waiting", "credential", cr.Name, "rotation_id", rid, "phase", phase, "for", d.Round(time.Millisecond))
		if err := c.record(cr, r.st.Cycle, string(phase), "waiting", 0, d.Round(time.Millisecond).String()); err != nil {
			return err
		}
		_ = r.lock.Unlock()
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		lock, err := c.store.Lock(cr.Name)
		if err != nil {
			r.lock = nil
			return err
		}
		r.lock = lock
		if err := ctx.Err(); err != nil {
			return err
		}
		st, err := c.store.Load(cr.Name)
		if err != nil {
			return err
		}
		r.st = st
		if st.Cycle == nil || st.Cycle.RotationID != rid || st.Cycle.Phase != phase {
			// Someone (a rollback, another controller) moved the journal on.
			return nil
		}
	}
	if err := r.advance(next); err != nil {
		return err
	}
	r.hook(phase, "after")
	return nil
}

// deactivate sets the old authorization (and any retired ones) inactive.
func (r *run) deactivate(ctx context.Context) error {
	c, cr, cy := r.c, r.cr, r.st.Cycle
	r.hook(state.PhaseDeactivate, "before")
	r.retriesAtStart = c.retries.Load()
	for _, ref := range r.revocable() {
		cy.RevocationAttempts++
		err := c.be.SetActive(ctx, &backend.Authorization{ID: ref.ID, Permissions: ref.Permissions}, false)
		if err != nil && !errors.Is(err, backend.ErrNotFound) {
			_ = c.record(cr, cy, "deactivate", OutcomeFailed, backend.StatusOf(err), err.Error())
			return fmt.Errorf("deactivate %s: %w", ref.ID, err)
		}
	}
	cy.RevocationAttempts += int(c.retries.Load() - r.retriesAtStart)
	r.hook(state.PhaseDeactivate, "patched")
	cy.DeactivatedAt = c.now()
	if err := r.advance(state.PhaseObserve); err != nil {
		return err
	}
	if err := c.record(cr, cy, "deactivate", OutcomeOK, 0, ""); err != nil {
		return err
	}
	r.hook(state.PhaseDeactivate, "after")
	return nil
}

// revocable lists the authorizations this cycle retires.
func (r *run) revocable() []state.Ref {
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
func (r *run) delete(ctx context.Context) error {
	c, cr, cy := r.c, r.cr, r.st.Cycle
	r.hook(state.PhaseDelete, "before")
	start := c.retries.Load()
	for _, ref := range r.revocable() {
		cy.RevocationAttempts++
		if err := c.be.Delete(ctx, ref.ID); err != nil {
			_ = c.record(cr, cy, "delete", OutcomeFailed, backend.StatusOf(err), err.Error())
			return fmt.Errorf("delete %s: %w", ref.ID, err)
		}
		c.forget(ref.ID)
	}
	cy.RevocationAttempts += int(c.retries.Load() - start)
	r.hook(state.PhaseDelete, "deleted")
	if err := r.deleteOrphans(ctx); err != nil {
		return err
	}
	if err := r.advance(state.PhaseDone); err != nil {
		return err
	}
	if err := c.record(cr, cy, "delete", OutcomeOK, 0, ""); err != nil {
		return err
	}
	r.hook(state.PhaseDelete, "after")
	return nil
}

// deleteOrphans removes authorizations this controller made for the
// credential that are neither the new one nor any longer referenced, such
// as a duplicate left by a retried create.
func (r *run) deleteOrphans(ctx context.Context) error {
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

// finish closes the cycle: the new authorization becomes current.
func (r *run) finish(ctx context.Context) error {
	c, cr, cy := r.c, r.cr, r.st.Cycle
	now := c.now()
	r.st.Previous = cy.Old
	r.st.Current = state.Ref{ID: cy.New.ID, Fingerprint: cy.New.Fingerprint, Since: cy.ProvisionedAt, Permissions: cy.New.Permissions}
	r.st.Retired = nil
	r.st.Last = state.Outcome{RotationID: cy.RotationID, Outcome: OutcomeOK, Finished: now}
	r.st.Cycle = nil
	if err := r.save(); err != nil {
		r.st.Cycle = cy
		return err
	}
	if err := c.record(cr, cy, "done", OutcomeOK, 0, ""); err != nil {
		return err
	}
	c.report(ctx, cr, cy, OutcomeOK, now)
	r.hook(state.PhaseDone, "after")
	return nil
}

// abort ends the cycle with the old token still active: the old token is
// republished when known, the new authorization deleted.
func (r *run) abort(ctx context.Context, cause error, status int) error {
	c, cr, cy := r.c, r.cr, r.st.Cycle
	c.log.Error("rotation failed; the old token stays active", "credential", cr.Name, "error", cause)
	msgs := []string{cause.Error()}
	if cy.Phase != state.PhaseProvision {
		// Targets may hold the new token: put the old one back when known.
		if old := c.token(cy.Old.ID); old != "" {
			for _, t := range c.targets[cr.Name] {
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
	if err := r.save(); err != nil {
		r.st.Cycle = cy
		return err
	}
	_ = c.record(cr, cy, "abort", OutcomeFailed, status, strings.Join(msgs, "; "))
	c.report(ctx, cr, cy, OutcomeFailed, now)
	return &abortError{cause}
}

// report prints the summary line and writes the metrics point.
func (c *Controller) report(ctx context.Context, cr *config.Credential, cy *state.Cycle, outcome string, now time.Time) {
	var latency, grace time.Duration
	if !cy.VerifiedAt.IsZero() {
		latency = cy.VerifiedAt.Sub(cy.ProvisionedAt)
	}
	if !cy.DeactivatedAt.IsZero() {
		grace = cy.DeactivatedAt.Sub(cy.PublishedAt)
	}
	fmt.Fprintf(c.out, "influxrotate: credential=%s rotation=%s outcome=%s old=%s(%s) new=%s(%s) latency=%s grace=%s revocation_attempts=%d duration=%s\n",
		cr.Name, cy.RotationID, outcome, cmp.Or(cy.Old.ID, "-"), cmp.Or(cy.Old.Fingerprint, "-"), cmp.Or(cy.New.ID, "-"), cmp.Or(cy.New.Fingerprint, "-"),
		latency.Round(time.Millisecond), grace.Round(time.Millisecond), cy.RevocationAttempts, now.Sub(cy.Started).Round(time.Millisecond))
	m := c.cfg.Metrics
	if m == nil {
		return
	}
	tok := ""
	if m.TokenFile != "" {
		var err error
		if tok, err = readTokenFile("metrics.token_file", m.TokenFile); err != nil {
			c.log.Warn("metrics not written", "error", err)
			return
		}
	}
	line, err := statsline.Encode("token_rotation", map[string]string{"credential": cr.Name, "backend": c.cfg.Backend},
		map[string]any{"rotation_latency_ms": latency.Milliseconds(), "grace_ms": grace.Milliseconds(),
			"revocation_attempts": cy.RevocationAttempts, "outcome": outcome}, now, lineprotocol.Millisecond)
	if err != nil {
		c.log.Warn("metrics not written", "error", err)
		return
	}
	// A stopping controller still reports the cycle it completed.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.Timeout)
	defer cancel()
	if err := c.be.WriteLines(wctx, m.Org, m.Bucket, tok, line); err != nil {
		c.log.Warn("metrics not written", "bucket", m.Bucket, "error", err)
	}
}
