package rotation

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/influxrotate/influxrotate/internal/lifecycle"
	"github.com/influxrotate/influxrotate/internal/slot"
)

// Config configures a Rotator.
type Config struct {
	// Source supplies tokens. The Rotator does not close it.
	Source Source
	// Prober validates new tokens; nil accepts them unchecked (probe mode "none").
	Prober Prober
	// Fallback allows switching back to the previous token when the active
	// one is refused and no valid new one exists.
	Fallback bool
	// OnPromote runs after each promotion, typically the writer's
	// http.Transport.CloseIdleConnections; its duration is recorded in
	// Stats.ConnectionDrain.
	OnPromote func()
	// ProbeBackoff bounds the re-probing of a candidate while the server is
	// unreachable: the delay starts at Initial (default 1s) and grows up to
	// Max (default 1m), by default doubling with equal jitter.
	ProbeBackoff Backoff
	// Logger receives rotation events. Default: discard.
	Logger *slog.Logger
	// Stats is updated by the Rotator. Default: a new Stats, see Stats().
	Stats *Stats
	// Audit, when set, receives one record per rotation event.
	Audit *AuditLog
	// ClientID identifies this writer in audit records (default hostname).
	ClientID string
	// TrustFirst adopts the source's first token without a probe and
	// without a log line, as a writer without rotation uses the token it
	// is given. The first token is used whatever a probe says, so the
	// probe only informs, and its request may be one the writer's users
	// must not see (the Telegraf plugin: a drop-in for a plugin that sends
	// nothing before the first metric). Later tokens are probed as usual.
	TrustFirst bool
	// Scrubber receives every token the Rotator considers, before it is
	// probed or used, so that the writer can scrub server messages that
	// echo one. Default: a new one, see Scrubber().
	Scrubber *Scrubber
}

// pending is a validated candidate and when its change was first seen.
type pending struct {
	cred *Credential
	seen time.Time
}

// Rotator is the swap state machine between a Source and a writer. It holds
// the active credential, at most one validated candidate and the previous
// credential.
//
// New tokens from the source are probed in the Rotator's one goroutine;
// only a valid one becomes the candidate. The writer calls Current at the
// start of each flush, which promotes a pending candidate, so that one flush
// never mixes tokens; and Refused when a write is answered 401 or 403.
type Rotator struct {
	cfg   Config
	log   *slog.Logger
	stats *Stats

	active    atomic.Pointer[Credential]
	candidate atomic.Pointer[pending]
	previous  atomic.Pointer[Credential]

	// mu serialises the slow paths that change active: promotion, Refused
	// and first adoption. Current never waits for it.
	mu sync.Mutex
	// activeSeen is when the active token's change was seen (guarded by
	// mu). A token seen before it is older and is never made candidate:
	// a slow probe must not roll back a rotation Refused already made.
	activeSeen time.Time
	// pinned are the tokens pinned in the Scrubber: active, candidate and
	// previous as last seen by pinLocked (guarded by mu).
	pinned []string

	reloads chan reloadRequest
	// handoff passes a token that Refused could not validate to run, to be
	// re-probed with backoff. Holds one; only Refused (under mu) sends.
	handoff chan pending
	// loop is run, whose context bounds its probes; Close stops it.
	loop *lifecycle.Goroutine
}

type reloadRequest struct {
	cred *Credential
	seen time.Time
	done chan struct{}
}

// NewRotator reads the source and probes its token (unless TrustFirst).
// Whatever the verdict, that token becomes active, as there is nothing
// better; the log says clearly when it was not validated. With no token
// yet, Current returns nil until one arrives. ctx bounds this first probe
// only.
func NewRotator(ctx context.Context, cfg Config) (*Rotator, error) {
	if cfg.Source == nil {
		return nil, errors.New("rotator: no token source")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Stats == nil {
		cfg.Stats = new(Stats)
	}
	if cfg.ProbeBackoff.Initial <= 0 {
		cfg.ProbeBackoff.Initial = time.Second
	}
	if cfg.ProbeBackoff.Max <= 0 {
		cfg.ProbeBackoff.Max = time.Minute
	}
	if cfg.ClientID == "" {
		cfg.ClientID, _ = os.Hostname()
	}
	if cfg.Scrubber == nil {
		cfg.Scrubber = NewScrubber()
	}
	r := &Rotator{
		cfg:     cfg,
		log:     cfg.Logger,
		stats:   cfg.Stats,
		reloads: make(chan reloadRequest),
		handoff: make(chan pending, 1),
	}
	c, err := cfg.Source.Read(ctx)
	switch {
	case err != nil && errors.Is(err, fs.ErrNotExist):
		r.log.Warn("no token yet: waiting for "+cfg.Source.Name(), "error", err)
	case err != nil:
		r.log.Warn("no usable token yet: waiting for "+cfg.Source.Name(), "error", err)
	case cfg.TrustFirst:
		// Not probed, but registered as probe does: the writer's
		// messages must be scrubbed of it all the same.
		r.cfg.Scrubber.AddCredential(c)
		r.active.Store(c)
		r.pinLocked()
		r.activeSeen = time.Now()
		r.stats.SetActive(c, r.activeSeen)
		r.audit(AuditRecord{Event: "startup", Outcome: "not probed", NewFingerprint: c.Fingerprint()})
	default:
		res := r.probe(ctx, c)
		r.adopt(c, res, "startup")
	}
	r.loop = lifecycle.Go(r.run)
	return r, nil
}

// Current returns the credential for the flush about to start, promoting a
// validated candidate first. It returns nil while no token exists. On the
// steady path it is two atomic loads: no lock, no allocation.
func (r *Rotator) Current() *Credential {
	if r.candidate.Load() != nil {
		// TryLock, not Lock: a Refused in progress owns the state and
		// promotes or finds a better credential itself; this flush must not
		// wait for its probe and uses the active one.
		if r.mu.TryLock() {
			// Load again: a newer candidate may have replaced the one seen.
			if p := r.candidate.Load(); p != nil {
				r.promoteLocked(p, "promote")
			}
			r.mu.Unlock()
		}
	}
	return r.active.Load()
}

// Scrubber returns the Scrubber holding the tokens the Rotator has
// considered: its active, candidate and previous ones pinned, others
// among the Scrubber's most recently added.
func (r *Rotator) Scrubber() *Scrubber { return r.cfg.Scrubber }

// Stats returns the statistics the Rotator updates.
func (r *Rotator) Stats() *Stats { return r.stats }

// Close stops the Rotator's goroutine and waits for it. It does not close
// the source.
func (r *Rotator) Close() error {
	r.loop.Stop()
	return nil
}

// Reload reads the source now and treats its token as a change: probed, and
// promoted at the next flush when valid. It returns when the probe is done
// or ctx ends. Use it for SIGHUP.
func (r *Rotator) Reload(ctx context.Context) {
	c, err := r.cfg.Source.Read(ctx)
	if err != nil {
		r.log.Warn("reload: cannot read "+r.cfg.Source.Name()+"; keeping the current token", "error", err)
		return
	}
	req := reloadRequest{cred: c, seen: time.Now(), done: make(chan struct{})}
	select {
	case r.reloads <- req:
	case <-ctx.Done():
		return
	case <-r.loop.Done():
		return
	}
	select {
	case <-req.done:
	case <-ctx.Done():
	}
}

// Refused handles a write answered 401 or 403 with used. It returns the
// credential to retry the same batch with, or retry=false when there is
// none: the caller then returns a retryable error so the batch stays
// buffered.
//
// In order: if used is no longer active (another flush rotated already),
// the active one; if a validated candidate waits, it is promoted; else the
// source is read and its token probed now (bounded by ctx); else, with
// Fallback, the previous token if it still probes valid.
//
// Each call does at most one source read and two probes, but a caller that
// retries whatever Refused returns can still loop if the server keeps
// refusing fresh tokens: callers retry a batch at most twice per flush.
func (r *Rotator) Refused(ctx context.Context, used *Credential, status int) (next *Credential, retry bool) {
	r.stats.AuthFailures.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	act := r.active.Load()
	r.log.Warn("write refused", "status", status, "credential", used, "active", act)
	r.audit(AuditRecord{Event: "write_refused", Outcome: "refused", Status: status, OldFingerprint: fp(used)})
	if act != nil && used != nil && !used.Equal(act) {
		return act, true
	}
	if p := r.candidate.Load(); p != nil {
		r.promoteLocked(p, "promote")
		if c := r.active.Load(); c != nil && !c.Equal(used) {
			return c, true
		}
	}
	if c, err := r.cfg.Source.Read(ctx); err != nil {
		r.log.Warn("write refused: cannot re-read "+r.cfg.Source.Name(), "error", err)
	} else if !c.Equal(act) {
		res := r.probe(ctx, c)
		if res.Verdict == VerdictValid {
			r.promoteLocked(&pending{cred: c, seen: time.Now()}, "promote")
			return c, true
		}
		r.reportInvalid(c, res, false)
		if res.Verdict == VerdictUnknown || res.Verdict == VerdictNotFound {
			// The source will not report this token again: keep probing it.
			slot.Replace(r.handoff, pending{cred: c, seen: time.Now()})
		}
	}
	if r.cfg.Fallback {
		if prev := r.previous.Load(); prev != nil && !prev.Equal(act) {
			res := r.probe(ctx, prev)
			if res.Verdict == VerdictValid {
				r.fallbackLocked(prev, act)
				return prev, true
			}
			r.log.Warn("previous token cannot be used either", "credential", prev, "verdict", res.Verdict, "status", res.Status, "message", res.Message)
		}
	}
	return nil, false
}

// run is the Rotator's one goroutine: it probes each new token and
// re-probes an unconfirmed one with backoff.
func (r *Rotator) run(ctx context.Context) {
	changes := r.cfg.Source.Changes()
	var (
		waiting  *pending // a new token whose probe found no verdict
		attempts int
		timer    = time.NewTimer(time.Hour)
	)
	timer.Stop()
	defer timer.Stop()
	consider := func(c *Credential, seen time.Time) {
		if waiting != nil && c.Equal(waiting.cred) {
			seen = waiting.seen
		}
		res := r.probe(ctx, c)
		if ctx.Err() != nil {
			return // closing
		}
		repeat := waiting != nil && c.Equal(waiting.cred)
		if r.accept(c, seen, res, repeat) {
			waiting, attempts = nil, 0
			timer.Stop()
			return
		}
		if res.Verdict == VerdictValid || res.Verdict == VerdictRefused || res.Verdict == VerdictForbidden {
			waiting, attempts = nil, 0
			timer.Stop()
			return
		}
		// Unknown or not found: try again later; a newer token replaces it.
		if waiting == nil || !c.Equal(waiting.cred) {
			attempts = 0
		}
		waiting = &pending{cred: c, seen: seen}
		d := r.cfg.ProbeBackoff.Delay(attempts)
		attempts++
		r.log.Debug("token could not be validated; will probe again", "credential", c, "in", d, "attempt", attempts)
		timer.Reset(d)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case c, ok := <-changes:
			if !ok {
				changes = nil
				continue
			}
			if r.known(c) {
				// The source's newest token is in use already (Refused found
				// it first): an older one still waiting is stale.
				waiting, attempts = nil, 0
				timer.Stop()
				continue
			}
			consider(c, time.Now())
		case req := <-r.reloads:
			if !r.known(req.cred) {
				consider(req.cred, req.seen)
			}
			close(req.done)
		case p := <-r.handoff:
			if !r.known(p.cred) {
				consider(p.cred, p.seen)
			}
		case <-timer.C:
			if waiting == nil {
				continue
			}
			// Pursue what the source holds now, not what it held when the
			// probe failed: a newer token may have replaced it without an
			// event reaching us, or Refused may have adopted it already,
			// and re-probing a stale token could roll the writer back.
			c, seen := waiting.cred, waiting.seen
			if cur, err := r.cfg.Source.Read(ctx); err == nil && !cur.Equal(c) {
				c, seen = cur, time.Now()
			}
			if r.known(c) {
				waiting, attempts = nil, 0
				continue
			}
			consider(c, seen)
		}
	}
}

// known reports whether c is already active or the candidate.
func (r *Rotator) known(c *Credential) bool {
	if c.Equal(r.active.Load()) {
		return true
	}
	p := r.candidate.Load()
	return p != nil && c.Equal(p.cred)
}

// accept records a probe of a new token and reports whether the token was
// taken, as candidate or, when there is no active token, as active.
func (r *Rotator) accept(c *Credential, seen time.Time, res ProbeResult, repeat bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.active.Load() == nil {
		// Nothing better exists: use it whatever the verdict.
		r.adopt(c, res, "adopt")
		return true
	}
	if seen.Before(r.activeSeen) {
		r.log.Debug("ignoring a token older than the active one", "credential", c, "active", r.active.Load())
		return true
	}
	if res.Verdict != VerdictValid {
		r.reportInvalid(c, res, repeat)
		return false
	}
	r.candidate.Store(&pending{cred: c, seen: seen})
	r.pinLocked()
	r.log.Info("new token validated; it will be used from the next flush", "credential", c, "active", r.active.Load())
	r.audit(AuditRecord{Event: "probe", Outcome: res.Verdict.String(), Status: res.Status,
		OldFingerprint: fp(r.active.Load()), NewFingerprint: c.Fingerprint(), Message: res.Message})
	return true
}

// adopt makes c active when there is none.
func (r *Rotator) adopt(c *Credential, res ProbeResult, event string) {
	r.active.Store(c)
	r.pinLocked()
	now := time.Now()
	r.activeSeen = now
	r.stats.SetActive(c, now)
	if res.Verdict == VerdictValid {
		r.log.Info("using token", "credential", c, "source", r.cfg.Source.Name())
	} else {
		r.countProbe(res)
		r.log.Warn("using token that was NOT validated: there is no other", "credential", c, "source", r.cfg.Source.Name(),
			"verdict", res.Verdict, "status", res.Status, "message", res.Message)
	}
	r.audit(AuditRecord{Event: event, Outcome: res.Verdict.String(), Status: res.Status,
		NewFingerprint: c.Fingerprint(), Message: res.Message})
}

// promoteLocked makes p active if it is still the pending candidate (or is
// not a candidate at all, as from Refused). r.mu is held.
func (r *Rotator) promoteLocked(p *pending, event string) {
	if cur := r.candidate.Load(); cur == p {
		if !r.candidate.CompareAndSwap(p, nil) {
			return
		}
	} else if cur != nil && cur.cred.Equal(p.cred) {
		r.candidate.CompareAndSwap(cur, nil)
	}
	old := r.active.Swap(p.cred)
	if old != nil && !old.Equal(p.cred) {
		r.previous.Store(old)
	}
	r.pinLocked()
	r.activeSeen = p.seen
	now := time.Now()
	r.stats.Rotations.Add(1)
	r.stats.RotationLatency.Store(int64(now.Sub(p.seen)))
	r.stats.SetActive(p.cred, now)
	r.drain()
	r.log.Info("rotated to new token", "credential", p.cred, "previous", old,
		"latency", now.Sub(p.seen))
	r.audit(AuditRecord{Event: event, Outcome: "ok", OldFingerprint: fp(old), NewFingerprint: p.cred.Fingerprint(),
		OldAuthID: authID(old), NewAuthID: p.cred.AuthID()})
}

// fallbackLocked switches back to prev. The refused token is not kept as a
// fallback in turn. r.mu is held.
func (r *Rotator) fallbackLocked(prev, refused *Credential) {
	r.active.Store(prev)
	r.previous.Store(nil)
	r.pinLocked()
	r.stats.Fallbacks.Add(1)
	r.stats.SetActive(prev, time.Now())
	r.drain()
	r.log.Warn("active token refused; fell back to the previous token until a valid new one exists",
		"credential", prev, "refused", refused)
	r.audit(AuditRecord{Event: "fallback", Outcome: "ok", OldFingerprint: fp(refused), NewFingerprint: prev.Fingerprint()})
}

// pinLocked keeps the active, candidate and previous tokens pinned in the
// Scrubber, however many others it is given, and unpins those that are
// none of them any more. Called after each change of the three, with r.mu
// held (or before the goroutine starts).
func (r *Rotator) pinLocked() {
	var held []string
	for _, c := range []*Credential{r.active.Load(), r.previous.Load()} {
		if c != nil {
			held = append(held, c.Token())
		}
	}
	if p := r.candidate.Load(); p != nil {
		held = append(held, p.cred.Token())
	}
	r.cfg.Scrubber.Pin(held...)
	for _, tok := range r.pinned {
		if !slices.Contains(held, tok) {
			r.cfg.Scrubber.Unpin(tok)
		}
	}
	r.pinned = held
}

// drain runs OnPromote so no idle connection outlives the old token, and
// times it.
func (r *Rotator) drain() {
	if r.cfg.OnPromote == nil {
		return
	}
	start := time.Now()
	r.cfg.OnPromote()
	r.stats.ConnectionDrain.Store(int64(time.Since(start)))
}

// probe validates c. Every token the Rotator may adopt passes here first
// (but a TrustFirst token, registered where it is adopted), so this is
// where it is registered with the Scrubber.
func (r *Rotator) probe(ctx context.Context, c *Credential) ProbeResult {
	r.cfg.Scrubber.AddCredential(c)
	if r.cfg.Prober == nil {
		return ProbeResult{Verdict: VerdictValid}
	}
	return r.cfg.Prober.Probe(ctx, c)
}

func (r *Rotator) countProbe(res ProbeResult) {
	switch res.Verdict {
	case VerdictUnknown:
		r.stats.ProbeUnreachable.Add(1)
	case VerdictRefused:
		r.stats.ProbeRefused.Add(1)
	case VerdictForbidden:
		r.stats.ProbeForbidden.Add(1)
	case VerdictNotFound:
		r.stats.ProbeNotFound.Add(1)
	}
}

// reportInvalid counts and logs a probe of a new token that did not say
// valid. Refused and forbidden tokens are rotation failures: never used.
// A repeated probe of a token still waiting for a verdict is counted and
// logged at debug level only, so an unreachable server gives one warning,
// not one per backoff step.
func (r *Rotator) reportInvalid(c *Credential, res ProbeResult, repeat bool) {
	r.countProbe(res)
	attrs := []any{"credential", c, "verdict", res.Verdict, "status", res.Status,
		"target", res.Target.Org + "/" + res.Target.Bucket, "message", res.Message}
	if repeat && (res.Verdict == VerdictUnknown || res.Verdict == VerdictNotFound) {
		r.log.Debug("new token still cannot be validated", attrs...)
		return
	}
	switch res.Verdict {
	case VerdictRefused, VerdictForbidden:
		r.stats.RotationFailures.Add(1)
		r.log.Error("new token refused by the server; it will not be used", attrs...)
	case VerdictNotFound:
		r.log.Error("probe target not found: check org and bucket in the configuration", attrs...)
	default:
		r.log.Warn("cannot validate new token: server unreachable or unexpected answer", attrs...)
	}
	r.audit(AuditRecord{Event: "probe", Outcome: res.Verdict.String(), Status: res.Status,
		OldFingerprint: fp(r.active.Load()), NewFingerprint: c.Fingerprint(), Message: res.Message})
}

func (r *Rotator) audit(rec AuditRecord) {
	if r.cfg.Audit == nil {
		return
	}
	rec.ClientID = r.cfg.ClientID
	if err := r.cfg.Audit.Append(rec); err != nil {
		r.log.Error("cannot write audit record", "error", err)
	}
}

func fp(c *Credential) string {
	if c == nil {
		return ""
	}
	return c.Fingerprint()
}

func authID(c *Credential) string {
	if c == nil {
		return ""
	}
	return c.AuthID()
}
