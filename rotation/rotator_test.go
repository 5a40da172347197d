package rotation

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/influxrotate/influxrotate/testutil/capture"
	"github.com/influxrotate/influxrotate/testutil/wait"
)

// memSource is a Source whose token the test sets; Set delivers a change
// like a watcher would, SetQuietly changes what Read returns without one
// (a change the watcher has not seen yet).
type memSource struct {
	reads   atomic.Int64
	mu      sync.Mutex
	tok     string
	changes chan *Credential
	once    sync.Once
}

func newMemSource(tok string) *memSource {
	return &memSource{tok: tok, changes: make(chan *Credential, 16)}
}

func (s *memSource) Name() string { return "memory" }

func (s *memSource) Read(context.Context) (*Credential, error) {
	s.reads.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok == "" {
		return nil, fmt.Errorf("memory: %w", fs.ErrNotExist)
	}
	return NewCredential(s.tok, "", "memory"), nil
}

func (s *memSource) SetQuietly(tok string) {
	s.mu.Lock()
	s.tok = tok
	s.mu.Unlock()
}

func (s *memSource) Set(tok string) {
	s.SetQuietly(tok)
	s.changes <- NewCredential(tok, "", "memory")
}

func (s *memSource) Changes() <-chan *Credential { return s.changes }

func (s *memSource) Close() error {
	s.once.Do(func() { close(s.changes) })
	return nil
}

// fakeProber answers from a table keyed by token; unknown tokens are valid.
// A script of verdicts per token is consumed first when set.
type fakeProber struct {
	mu      sync.Mutex
	verdict map[string]Verdict
	script  map[string][]Verdict
	probes  map[string]int
}

func newFakeProber() *fakeProber {
	return &fakeProber{verdict: map[string]Verdict{}, script: map[string][]Verdict{}, probes: map[string]int{}}
}

func (p *fakeProber) set(tok string, v Verdict) {
	p.mu.Lock()
	p.verdict[tok] = v
	p.mu.Unlock()
}

func (p *fakeProber) count(tok string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.probes[tok]
}

func (p *fakeProber) Probe(_ context.Context, c *Credential) ProbeResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.probes[c.Token()]++
	v, ok := p.verdict[c.Token()]
	if s := p.script[c.Token()]; len(s) > 0 {
		v, ok = s[0], true
		p.script[c.Token()] = s[1:]
	}
	if !ok {
		v = VerdictValid
	}
	status := map[Verdict]int{VerdictValid: 204, VerdictRefused: 401, VerdictForbidden: 403, VerdictNotFound: 404}[v]
	return ProbeResult{Verdict: v, Status: status, Target: Target{"acme", "telemetry"}}
}

type rotatorFixture struct {
	r      *Rotator
	src    *memSource
	prober *fakeProber
	stats  *Stats
	logs   *capture.Buffer
	drains atomic.Int64
}

func newRotatorFixture(t *testing.T, initial string, mod func(*Config)) *rotatorFixture {
	t.Helper()
	f := &rotatorFixture{src: newMemSource(initial), prober: newFakeProber(), stats: new(Stats)}
	var log = newTestLoggerInto(&f.logs)
	cfg := Config{Source: f.src, Prober: f.prober, Logger: log, Stats: f.stats, Fallback: true,
		OnPromote:    func() { f.drains.Add(1) },
		ProbeBackoff: Backoff{Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond}}
	if mod != nil {
		mod(&cfg)
	}
	r, err := NewRotator(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.r = r
	t.Cleanup(func() {
		r.Close()
		f.src.Close()
		var toks []string
		for i := range 10 {
			toks = append(toks, tokenN(i))
		}
		assertNoSecret(t, "rotator log", f.logs.String(), toks...)
	})
	return f
}

func newTestLoggerInto(b **capture.Buffer) *slog.Logger {
	l, buf := newTestLogger()
	*b = buf
	return l
}

// waitCurrent waits until Current returns tok: the change has been probed
// and the candidate promoted at this "flush".
func (f *rotatorFixture) waitCurrent(t *testing.T, tok string) {
	t.Helper()
	wait.For(t, waitDelivery, "rotation to "+Fingerprint(tok), func() bool {
		c := f.r.Current()
		return c != nil && c.Token() == tok
	})
}

func (f *rotatorFixture) waitCandidate(t *testing.T, tok string) {
	t.Helper()
	wait.For(t, waitDelivery, "candidate "+Fingerprint(tok), func() bool {
		p := f.r.candidate.Load()
		return p != nil && p.cred.Token() == tok
	})
}

func TestRotatorStartsWithValidatedToken(t *testing.T) {
	f := newRotatorFixture(t, tokenN(1), nil)
	if c := f.r.Current(); c == nil || c.Token() != tokenN(1) {
		t.Fatalf("Current = %v", c)
	}
	if f.stats.Fingerprint() != Fingerprint(tokenN(1)) {
		t.Errorf("Stats fingerprint %q", f.stats.Fingerprint())
	}
	if !strings.Contains(f.logs.String(), "using token") || strings.Contains(f.logs.String(), "NOT validated") {
		t.Errorf("log: %s", f.logs)
	}
}

// TrustFirst: the first token is used without a probe or a log line;
// the next one is probed before it is promoted, as always.
func TestRotatorTrustFirst(t *testing.T) {
	f := newRotatorFixture(t, tokenN(1), func(c *Config) { c.TrustFirst = true })
	if c := f.r.Current(); c == nil || c.Token() != tokenN(1) {
		t.Fatalf("Current = %v", c)
	}
	if n := f.prober.count(tokenN(1)); n != 0 {
		t.Errorf("first token probed %d times, want 0", n)
	}
	if f.stats.Fingerprint() != Fingerprint(tokenN(1)) {
		t.Errorf("Stats fingerprint %q", f.stats.Fingerprint())
	}
	if got := f.logs.String(); got != "" {
		t.Errorf("log at start: %s", got)
	}
	if msg := f.r.Scrubber().ServerMessage([]byte("echo: " + tokenN(1))); strings.Contains(msg, tokenN(1)) {
		t.Errorf("the unprobed first token is not scrubbed: %q", msg)
	}
	f.prober.set(tokenN(2), VerdictRefused)
	f.src.Set(tokenN(2))
	wait.For(t, waitDelivery, "the second token's probe", func() bool { return f.prober.count(tokenN(2)) > 0 })
	if c := f.r.Current(); c == nil || c.Token() != tokenN(1) {
		t.Fatalf("a refused second token replaced the first: Current = %v", c)
	}
}

func TestRotatorStartsWithUnvalidatedTokenAndSaysSo(t *testing.T) {
	for _, v := range []Verdict{VerdictUnknown, VerdictRefused} {
		t.Run(v.String(), func(t *testing.T) {
			f := newRotatorFixture(t, tokenN(1), func(c *Config) {
				p := c.Prober.(*fakeProber)
				p.set(tokenN(1), v)
			})
			if c := f.r.Current(); c == nil || c.Token() != tokenN(1) {
				t.Fatalf("Current = %v: the only token must be used", c)
			}
			if !strings.Contains(f.logs.String(), "NOT validated") || !strings.Contains(f.logs.String(), "verdict="+v.String()) {
				t.Errorf("log does not say the token was not validated: %s", f.logs)
			}
		})
	}
}

func TestRotatorWaitsForSourceWithoutToken(t *testing.T) {
	f := newRotatorFixture(t, "", nil)
	if c := f.r.Current(); c != nil {
		t.Fatalf("Current = %v before any token exists", c)
	}
	if !strings.Contains(f.logs.String(), "waiting for memory") {
		t.Errorf("log does not say what it waits for: %s", f.logs)
	}
	f.src.Set(tokenN(1))
	f.waitCurrent(t, tokenN(1))
	if n := f.stats.Rotations.Load(); n != 0 {
		t.Errorf("first token counted as %d rotations", n)
	}
}

func TestRotatorPromotesValidatedCandidateAtNextFlush(t *testing.T) {
	f := newRotatorFixture(t, tokenN(1), nil)
	flush := f.r.Current()
	f.src.Set(tokenN(2))
	f.waitCandidate(t, tokenN(2))
	if flush.Token() != tokenN(1) {
		t.Fatal("a flush's credential changed under it")
	}
	if next := f.r.Current(); next.Token() != tokenN(2) {
		t.Fatalf("next flush uses %v, want the candidate", next)
	}
	if f.stats.Rotations.Load() != 1 || f.drains.Load() != 1 {
		t.Errorf("rotations %d, drains %d; want 1, 1", f.stats.Rotations.Load(), f.drains.Load())
	}
	if f.stats.RotationLatency.Load() <= 0 {
		t.Error("rotation latency not recorded")
	}
	if f.stats.Fingerprint() != Fingerprint(tokenN(2)) {
		t.Error("Stats fingerprint not updated")
	}
	if p := f.r.previous.Load(); p == nil || p.Token() != tokenN(1) {
		t.Errorf("previous = %v, want the old token", p)
	}
}

func TestRotatorNeverUsesRefusedToken(t *testing.T) {
	for _, v := range []Verdict{VerdictRefused, VerdictForbidden} {
		t.Run(v.String(), func(t *testing.T) {
			f := newRotatorFixture(t, tokenN(1), nil)
			f.prober.set(tokenN(2), v)
			f.src.Set(tokenN(2))
			wait.For(t, waitDelivery, "the refusal", func() bool { return f.stats.RotationFailures.Load() == 1 })
			if c := f.r.Current(); c.Token() != tokenN(1) {
				t.Fatalf("Current = %v after a refused candidate", c)
			}
			counter := map[Verdict]*atomic.Int64{VerdictRefused: &f.stats.ProbeRefused, VerdictForbidden: &f.stats.ProbeForbidden}[v]
			if counter.Load() != 1 {
				t.Errorf("probe counter for %v = %d", v, counter.Load())
			}
			if !strings.Contains(f.logs.String(), Fingerprint(tokenN(2))) {
				t.Errorf("refusal not logged with the fingerprint: %s", f.logs)
			}
		})
	}
}

func TestRotatorReprobesWithBackoffWhileServerUnreachable(t *testing.T) {
	f := newRotatorFixture(t, tokenN(1), nil)
	f.prober.mu.Lock()
	f.prober.script[tokenN(2)] = []Verdict{VerdictUnknown, VerdictUnknown, VerdictUnknown}
	f.prober.mu.Unlock()
	f.src.Set(tokenN(2))
	f.waitCurrent(t, tokenN(2))
	if n := f.prober.count(tokenN(2)); n != 4 {
		t.Errorf("%d probes, want 3 unknown then 1 valid", n)
	}
	if n := f.stats.ProbeUnreachable.Load(); n != 3 {
		t.Errorf("ProbeUnreachable = %d, want 3", n)
	}
	if f.stats.RotationFailures.Load() != 0 {
		t.Error("an unreachable server counted as a refusal")
	}
}

func TestRotatorNewerTokenReplacesWaitingOne(t *testing.T) {
	f := newRotatorFixture(t, tokenN(1), func(c *Config) {
		c.ProbeBackoff = Backoff{Initial: time.Hour, Max: time.Hour}
	})
	f.prober.set(tokenN(2), VerdictUnknown)
	f.src.Set(tokenN(2))
	wait.For(t, waitDelivery, "the unknown probe", func() bool { return f.stats.ProbeUnreachable.Load() == 1 })
	f.src.Set(tokenN(3))
	f.waitCurrent(t, tokenN(3))
}

func TestRotatorReloadProbesSourceNow(t *testing.T) {
	f := newRotatorFixture(t, tokenN(1), nil)
	f.src.SetQuietly(tokenN(2))
	ctx, cancel := context.WithTimeout(context.Background(), waitDelivery)
	defer cancel()
	f.r.Reload(ctx)
	if p := f.r.candidate.Load(); p == nil || p.cred.Token() != tokenN(2) {
		t.Fatal("Reload returned before the new token was a candidate")
	}
	if c := f.r.Current(); c.Token() != tokenN(2) {
		t.Fatalf("Current = %v after Reload", c)
	}
}

func TestRefusedAfterAnotherFlushRotatedReturnsActive(t *testing.T) {
	f := newRotatorFixture(t, tokenN(1), nil)
	old := f.r.Current()
	f.src.Set(tokenN(2))
	f.waitCurrent(t, tokenN(2))
	next, retry := f.r.Refused(context.Background(), old, 401)
	if !retry || next.Token() != tokenN(2) {
		t.Fatalf("Refused = %v, %v; want the active token and retry", next, retry)
	}
	if f.stats.AuthFailures.Load() != 1 {
		t.Error("AuthFailures not counted")
	}
}

func TestRefusedPromotesPendingCandidate(t *testing.T) {
	f := newRotatorFixture(t, tokenN(1), nil)
	used := f.r.Current()
	f.src.Set(tokenN(2))
	f.waitCandidate(t, tokenN(2))
	next, retry := f.r.Refused(context.Background(), used, 401)
	if !retry || next.Token() != tokenN(2) {
		t.Fatalf("Refused = %v, %v; want the candidate and retry", next, retry)
	}
	if f.stats.Rotations.Load() != 1 {
		t.Error("promotion not counted")
	}
}

func TestRefusedRereadsSourceAndProbesNow(t *testing.T) {
	// The watcher has not seen the new token yet (a missed event, or the
	// old one was revoked before the event arrived).
	f := newRotatorFixture(t, tokenN(1), nil)
	used := f.r.Current()
	f.src.SetQuietly(tokenN(2))
	next, retry := f.r.Refused(context.Background(), used, 401)
	if !retry || next.Token() != tokenN(2) {
		t.Fatalf("Refused = %v, %v; want the re-read token and retry", next, retry)
	}
	if f.r.Current().Token() != tokenN(2) {
		t.Error("re-read token not active")
	}
}

func TestRefusedFallsBackToPreviousToken(t *testing.T) {
	// A new token was promoted, then turns out to be refused for writing
	// (deactivated by mistake); the previous one still works.
	f := newRotatorFixture(t, tokenN(1), nil)
	f.src.Set(tokenN(2))
	f.waitCurrent(t, tokenN(2))
	f.prober.set(tokenN(2), VerdictForbidden)
	next, retry := f.r.Refused(context.Background(), f.r.Current(), 403)
	if !retry || next.Token() != tokenN(1) {
		t.Fatalf("Refused = %v, %v; want the previous token and retry", next, retry)
	}
	if f.stats.Fallbacks.Load() != 1 || f.r.Current().Token() != tokenN(1) {
		t.Errorf("fallbacks %d, current %v", f.stats.Fallbacks.Load(), f.r.Current())
	}
	// The previous one is refused in turn: nothing is left, no loop.
	next, retry = f.r.Refused(context.Background(), f.r.Current(), 401)
	if retry || next != nil {
		t.Fatalf("second Refused = %v, %v; want nil, false", next, retry)
	}
}

func TestRefusedWithoutFallbackKeepsBatchBuffered(t *testing.T) {
	f := newRotatorFixture(t, tokenN(1), func(c *Config) { c.Fallback = false })
	f.src.Set(tokenN(2))
	f.waitCurrent(t, tokenN(2))
	if next, retry := f.r.Refused(context.Background(), f.r.Current(), 401); retry || next != nil {
		t.Fatalf("Refused = %v, %v; want nil, false", next, retry)
	}
	if f.prober.count(tokenN(1)) != 1 {
		t.Error("previous token probed although fallback is off")
	}
}

func TestRefusedDoesNotUsePreviousThatIsRefusedToo(t *testing.T) {
	f := newRotatorFixture(t, tokenN(1), nil)
	f.src.Set(tokenN(2))
	f.waitCurrent(t, tokenN(2))
	f.prober.set(tokenN(1), VerdictRefused)
	if next, retry := f.r.Refused(context.Background(), f.r.Current(), 401); retry || next != nil {
		t.Fatalf("Refused = %v, %v; want nil, false", next, retry)
	}
	if f.stats.Fallbacks.Load() != 0 {
		t.Error("fell back to a refused token")
	}
}

func TestRefusedUnknownSourceTokenIsReprobedInBackground(t *testing.T) {
	// The new token could not be validated during Refused (server down):
	// the batch stays buffered and the Rotator keeps probing it.
	f := newRotatorFixture(t, tokenN(1), func(c *Config) { c.Fallback = false })
	f.prober.mu.Lock()
	f.prober.script[tokenN(2)] = []Verdict{VerdictUnknown}
	f.prober.mu.Unlock()
	f.src.SetQuietly(tokenN(2))
	if next, retry := f.r.Refused(context.Background(), f.r.Current(), 401); retry || next != nil {
		t.Fatalf("Refused = %v, %v; want nil, false", next, retry)
	}
	f.waitCurrent(t, tokenN(2))
}

func TestRotatorDoesNotRollBackToStaleWaitingToken(t *testing.T) {
	// T2 waits for a verdict (server unreachable); meanwhile T3 replaced it
	// and a refused write adopted T3. When T2 would probe valid later, it
	// must not become the candidate: it is older than the active token.
	f := newRotatorFixture(t, tokenN(1), nil)
	f.prober.set(tokenN(2), VerdictUnknown)
	f.src.Set(tokenN(2))
	wait.For(t, waitDelivery, "T2 to wait", func() bool { return f.stats.ProbeUnreachable.Load() >= 1 })
	// Counted before T3 appears: the backoff timer, armed while T2 waits,
	// reads the source once more after T3 is there (then finds T3 and drops
	// T2), and Refused reads it once. Counted any later, a loaded machine
	// can run that last timer read before the count, and nothing re-reads.
	reads := f.src.reads.Load()
	f.src.SetQuietly(tokenN(3))
	if next, retry := f.r.Refused(context.Background(), f.r.Current(), 401); !retry || next.Token() != tokenN(3) {
		t.Fatalf("Refused = %v, %v; want T3", next, retry)
	}
	f.prober.set(tokenN(2), VerdictValid)
	wait.For(t, waitDelivery, "the backoff timer to re-read the source after T3", func() bool { return f.src.reads.Load() >= reads+2 })
	// Reload is a round trip through the Rotator's goroutine: when it
	// returns, the timer's work is done.
	ctx, cancel := context.WithTimeout(context.Background(), waitDelivery)
	defer cancel()
	f.r.Reload(ctx)
	if c := f.r.Current(); c.Token() != tokenN(3) {
		t.Fatalf("Current = %v, want T3", c)
	}
	if f.r.candidate.Load() != nil {
		t.Fatal("a stale token became the candidate")
	}
}

func TestRotatorSlowProbeDoesNotRollBackRefusedRotation(t *testing.T) {
	// T2's probe is slow; meanwhile T3 is published and a refused write
	// adopts it. T2's probe then says valid: T2 is older than the active
	// token and must not become the candidate.
	src := newMemSource(tokenN(1))
	defer src.Close()
	entered, release := make(chan struct{}), make(chan struct{})
	prober := proberFunc(func(ctx context.Context, c *Credential) ProbeResult {
		if c.Token() == tokenN(2) {
			close(entered)
			<-release
		}
		return ProbeResult{Verdict: VerdictValid, Status: 204}
	})
	r, err := NewRotator(context.Background(), Config{Source: src, Prober: prober})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	src.Set(tokenN(2))
	<-entered
	src.SetQuietly(tokenN(3))
	if next, retry := r.Refused(context.Background(), r.Current(), 401); !retry || next.Token() != tokenN(3) {
		t.Fatalf("Refused = %v, %v; want T3", next, retry)
	}
	close(release)
	ctx, cancel := context.WithTimeout(context.Background(), waitDelivery)
	defer cancel()
	r.Reload(ctx) // a round trip: T2's probe has been handled when it returns
	if c := r.Current(); c.Token() != tokenN(3) {
		t.Fatalf("Current = %v, want T3: rolled back", c)
	}
}

func TestCurrentDoesNotAllocate(t *testing.T) {
	f := newRotatorFixture(t, tokenN(1), nil)
	if n := testing.AllocsPerRun(1000, func() { _ = f.r.Current() }); n != 0 {
		t.Fatalf("Current allocates %v times per call", n)
	}
}

func TestRotatorCloseWithProbeInFlight(t *testing.T) {
	// Close must not wait for a slow probe: it cancels it.
	src := newMemSource(tokenN(1))
	defer src.Close()
	started := make(chan struct{})
	blocking := proberFunc(func(ctx context.Context, c *Credential) ProbeResult {
		if c.Token() == tokenN(2) {
			close(started)
			<-ctx.Done()
		}
		return ProbeResult{Verdict: VerdictValid}
	})
	r, err := NewRotator(context.Background(), Config{Source: src, Prober: blocking})
	if err != nil {
		t.Fatal(err)
	}
	src.Set(tokenN(2))
	<-started
	r.Close()
}

type proberFunc func(context.Context, *Credential) ProbeResult

func (f proberFunc) Probe(ctx context.Context, c *Credential) ProbeResult { return f(ctx, c) }

func TestRotatorAuditsEveryEvent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	audit, err := OpenAuditLog(path)
	if err != nil {
		t.Fatal(err)
	}
	f := newRotatorFixture(t, tokenN(1), func(c *Config) { c.Audit = audit; c.ClientID = "writer-7" })
	f.prober.set(tokenN(3), VerdictRefused)
	f.src.Set(tokenN(3))
	wait.For(t, waitDelivery, "the refusal", func() bool { return f.stats.RotationFailures.Load() == 1 })
	f.src.Set(tokenN(2))
	f.waitCurrent(t, tokenN(2))
	f.r.Refused(context.Background(), f.r.Current(), 401)
	f.r.Close()
	audit.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := VerifyAuditLog(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"event":"startup"`, `"outcome":"refused"`, `"event":"promote"`, `"event":"write_refused"`,
		`"event":"fallback"`, `"client_id":"writer-7"`, Fingerprint(tokenN(2))} {
		if !strings.Contains(string(b), want) {
			t.Errorf("audit log lacks %s:\n%s", want, b)
		}
	}
	if n < 6 {
		t.Errorf("%d audit records, want at least 6", n)
	}
	assertNoSecret(t, "audit log", string(b), tokenN(1), tokenN(2), tokenN(3))
}

func TestNewRotatorNeedsSource(t *testing.T) {
	if _, err := NewRotator(context.Background(), Config{}); err == nil || !errors.Is(err, err) || !strings.Contains(err.Error(), "source") {
		t.Fatalf("error %v", err)
	}
}

func BenchmarkCurrent(b *testing.B) {
	src := newMemSource(tokenN(1))
	defer src.Close()
	r, err := NewRotator(context.Background(), Config{Source: src})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if r.Current() == nil {
				b.Fatal("nil")
			}
		}
	})
}

// The Rotator pins what it may still send, active, candidate and previous,
// so that no number of other tokens registered with a shared Scrubber
// (here one at most) drops them; a token that is none of them any more is
// dropped in turn.
func TestRotatorPinsActiveCandidateAndPrevious(t *testing.T) {
	scrub := &Scrubber{Keep: 1}
	f := newRotatorFixture(t, tokenN(1), func(c *Config) { c.Scrubber = scrub })
	f.src.Set(tokenN(2))
	f.waitCurrent(t, tokenN(2))
	f.src.Set(tokenN(3))
	f.waitCandidate(t, tokenN(3))
	refused := 0
	for n := 4; n <= 6; n++ {
		f.prober.set(tokenN(n), VerdictRefused)
		f.src.Set(tokenN(n))
		refused++
		wait.For(t, waitDelivery, "the refusal of "+Fingerprint(tokenN(n)), func() bool {
			return f.stats.RotationFailures.Load() == int64(refused)
		})
	}
	for role, tok := range map[string]string{"previous": tokenN(1), "active": tokenN(2), "candidate": tokenN(3), "newest added": tokenN(6)} {
		if got := scrub.Scrub("echo " + tok); strings.Contains(got, tok) {
			t.Errorf("%s token not scrubbed after three other tokens", role)
		}
	}
	// tokenN(3) becomes active, tokenN(2) previous: tokenN(1) is unpinned,
	// and dropped once another token is added.
	if c := f.r.Current(); c.Token() != tokenN(3) {
		t.Fatalf("Current = %v, want the candidate", c)
	}
	scrub.Add(tokenN(7))
	if got := scrub.Scrub("echo " + tokenN(1)); !strings.Contains(got, tokenN(1)) {
		t.Error("a token the Rotator no longer holds stays held beyond Keep")
	}
	if got := scrub.Scrub("echo " + tokenN(2)); strings.Contains(got, tokenN(2)) {
		t.Error("the new previous token is not scrubbed")
	}
}
