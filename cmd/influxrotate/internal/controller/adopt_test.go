package controller

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/backend"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/state"
	"github.com/influxrotate/influxrotate/internal/fsutil"
	"github.com/influxrotate/influxrotate/rotation"
	"github.com/influxrotate/influxrotate/testutil/influxv2"
	"github.com/influxrotate/influxrotate/testutil/secscan"
	"github.com/influxrotate/influxrotate/testutil/wait"
)

// adoptFleet is a few writers that report which token they write with,
// each reading its own token source, named by its client ID.
type adoptFleet struct {
	t       *testing.T
	e       *testEnv
	ctx     context.Context
	cancel  context.CancelFunc
	stop    chan struct{}
	wg      sync.WaitGroup
	errs    chan error
	writers map[string]*fleetWriter
	closers []func() error
	once    sync.Once
}

// fileSource watches path as the plugin's token_file does.
func fileSource(t *testing.T, path string) rotation.Source {
	t.Helper()
	src, err := rotation.NewFileSource(rotation.FileSourceConfig{Path: path, Debounce: 5 * time.Millisecond, Reread: 200 * time.Millisecond})
	must(t, err)
	return src
}

// startFleet starts one reporting writer per source.
func (e *testEnv) startFleet(sources map[string]rotation.Source) *adoptFleet {
	t := e.t
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	f := &adoptFleet{t: t, e: e, ctx: ctx, cancel: cancel, stop: make(chan struct{}),
		errs: make(chan error, len(sources)), writers: map[string]*fleetWriter{}}
	client := &http.Client{Timeout: 5 * time.Second}
	names := make([]string, 0, len(sources))
	for name := range sources {
		names = append(names, name)
	}
	slices.Sort(names)
	for i, name := range names {
		prober, err := rotation.NewHTTPProber(rotation.ProberConfig{URL: e.srv.URL(), Client: client,
			Targets: []rotation.Target{{Org: e.org, Bucket: e.bucket}}})
		must(t, err)
		rot, err := rotation.NewRotator(ctx, rotation.Config{Source: sources[name], Prober: prober,
			ProbeBackoff: rotation.Backoff{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond}})
		must(t, err)
		rep, err := rotation.NewAdoptionReporter(rotation.AdoptionConfig{ClientID: name, Interval: time.Hour})
		must(t, err)
		w := &fleetWriter{id: i, rot: rot, client: client, url: e.srv.URL(), adopted: map[string]time.Time{}, rep: rep}
		f.writers[name] = w
		f.closers = append(f.closers, rot.Close, sources[name].Close)
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.errs <- w.run(ctx, f.stop, 20*time.Millisecond)
		}()
	}
	t.Cleanup(func() { f.halt() })
	return f
}

// halt stops the writers once each has stored its pending point (or the
// fleet's deadline passed) and reports the points never stored.
func (f *adoptFleet) halt() {
	f.once.Do(func() {
		close(f.stop)
		f.wg.Wait()
		close(f.errs)
		for err := range f.errs {
			if err != nil {
				f.t.Error(err)
			}
		}
		for _, c := range f.closers {
			_ = c()
		}
		f.cancel()
	})
}

// finish halts the writers and checks that no point was lost: each
// writer's points are stored exactly once, in an unbroken sequence.
func (f *adoptFleet) finish() {
	f.t.Helper()
	f.halt()
	stored := map[string]int{}
	for _, p := range f.e.srv.Points() {
		stored[p.Line]++
	}
	for name, w := range f.writers {
		if w.sent == 0 {
			f.t.Errorf("writer %s stored nothing", name)
		}
		for seq := range w.sent {
			// A resend after a lost answer may store a point twice (an
			// overwrite in InfluxDB); never zero times.
			if n := stored[fmt.Sprintf("fleet,writer=w%03d %d", w.id, int64(w.id)*1e12+int64(seq))]; n != 1 && (n == 0 || w.lostAnswers == 0) {
				f.t.Errorf("writer %s point %d stored %d times (%d answers lost)", name, seq, n, w.lostAnswers)
			}
		}
	}
}

// holds reports whether writer name writes with the token of fingerprint fp.
func (f *adoptFleet) holds(name, fp string) bool {
	return f.writers[name].rot.Current().Fingerprint() == fp
}

// copyToken gives the straggler's file the token the controller published
// to the file target: its secret update arrives late.
func (e *testEnv) copyToken(to string) {
	e.t.Helper()
	data, err := os.ReadFile(filepath.Join(e.dir, "out", "token"))
	must(e.t, err)
	must(e.t, fsutil.WriteFileAtomic(to, data, 0o600))
}

// lateFile is a token file holding the initial token, which only the
// test updates.
func (e *testEnv) lateFile(name string) string {
	e.t.Helper()
	p := filepath.Join(e.dir, name, "token")
	must(e.t, os.MkdirAll(filepath.Dir(p), 0o700))
	must(e.t, os.WriteFile(p, []byte(e.initial.Token+"\n"), 0o600))
	return p
}

func adoptionBlock(timeout time.Duration, onTimeout string, extra string) string {
	return fmt.Sprintf(`
[credential.adoption]
lookback = "1m"
timeout = %q
on_timeout = %q
poll_interval = "20ms"
%s
`, timeout, onTimeout, extra)
}

// appendConfig adds text to the end of the configuration file: a
// [credential.adoption] table there belongs to the one credential.
func (e *testEnv) appendConfig(text string) {
	e.t.Helper()
	f, err := os.OpenFile(e.cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	must(e.t, err)
	_, err = f.WriteString(text)
	must(e.t, errors.Join(err, f.Close()))
}

// replaceConfig replaces the one occurrence of old in the configuration
// file with new.
func (e *testEnv) replaceConfig(old, new string) {
	e.t.Helper()
	data, err := os.ReadFile(e.cfgPath)
	must(e.t, err)
	if n := strings.Count(string(data), old); n != 1 {
		e.t.Fatalf("the configuration holds %q %d times, want once", old, n)
	}
	must(e.t, os.WriteFile(e.cfgPath, []byte(strings.Replace(string(data), old, new, 1)), 0o600))
}

// cycleAt records the journal when the cycle reaches a point.
type cycleAt struct {
	mu     sync.Mutex
	cycles map[string]state.Cycle
}

func (e *testEnv) recordCycles(points ...string) (*cycleAt, func(string)) {
	ca := &cycleAt{cycles: map[string]state.Cycle{}}
	return ca, func(p string) {
		if !slices.Contains(points, p) {
			return
		}
		if st, err := state.NewStore(filepath.Join(e.dir, "state")).Load("telegraf"); err == nil && st.Cycle != nil {
			ca.mu.Lock()
			ca.cycles[p] = *st.Cycle
			ca.mu.Unlock()
		}
	}
}

func (ca *cycleAt) at(t *testing.T, p string) state.Cycle {
	t.Helper()
	ca.mu.Lock()
	defer ca.mu.Unlock()
	cy, ok := ca.cycles[p]
	if !ok {
		t.Fatalf("the cycle never reached %s", p)
	}
	return cy
}

// whenAdopted is a hook that holds the adopt phase back until client has
// reported the new token, so that a short timeout only ever runs out on
// the straggler the test means, however busy the machine; then next.
func (e *testEnv) whenAdopted(client string, next func(string)) func(string) {
	return func(p string) {
		if next != nil {
			next(p)
		}
		if p != "adopt:before" {
			return
		}
		st := e.loadState()
		wait.For(e.t, 20*time.Second, client+" to report the new token", func() bool {
			return e.reported()[client] == st.Cycle.New.Fingerprint
		})
	}
}

// reports reads the writers' reports as the controller does.
func (e *testEnv) reports(c *Controller) map[string]Writer {
	e.t.Helper()
	ws, err := c.Writers(context.Background(), &c.cfg.Credentials[0])
	must(e.t, err)
	out := map[string]Writer{}
	for _, w := range ws {
		out[w.ClientID] = w
	}
	return out
}

// TestAdoptDeactivatesWhenTheLastWriterAdopts rotates twice with the same
// writers: once with the fixed grace, once with the adoption gate. The gate
// lets the old token go as soon as the last writer reports the new one,
// without waiting for the grace, and never before. Every assertion is on
// the order of events (journal, reports, polls), never on elapsed time, so
// it holds however slow the machine.
func TestAdoptDeactivatesWhenTheLastWriterAdopts(t *testing.T) {
	const grace = 3 * time.Second
	e := newEnv(t, envOptions{grace: grace})
	late := e.lateFile("late")
	f := e.startFleet(map[string]rotation.Source{
		"edge-1": fileSource(t, filepath.Join(e.dir, "out", "token")),
		"edge-2": fileSource(t, filepath.Join(e.dir, "out", "token")),
		"late":   fileSource(t, late),
	})
	wait.For(t, 10*time.Second, "every writer to report the initial token", func() bool {
		return len(e.srv.Points()) > 0 && f.holds("late", rotation.Fingerprint(e.initial.Token)) && len(e.reported()) == 3
	})

	// The fixed grace: the test moves the late writer's file on at once.
	graceRun, hook := e.recordCycles("observe:before")
	res := e.rotate(e.controller(func(p string) {
		hook(p)
		if p == "publish:after" {
			e.copyToken(late)
		}
	}), true)
	if res.Outcome != OutcomeOK {
		t.Fatalf("grace rotation: %+v", res)
	}
	fixed := graceRun.at(t, "observe:before")

	// The gate, with a grace far longer than the test's bound: a gate that
	// waited for it would not finish within the context below. The late
	// writer's file moves on only after the first poll found it on the old
	// token.
	const gatedGrace = time.Hour
	e.replaceConfig(fmt.Sprintf("grace = %q", grace), fmt.Sprintf("grace = %q", gatedGrace))
	e.appendConfig(adoptionBlock(time.Minute, "abort", ""))
	gateRun, hook := e.recordCycles("observe:before")
	var firstPoll sync.Once
	var pollMu sync.Mutex
	// lateReported is, for each poll that found a writer behind, what the
	// late writer's latest stored report said when the poll ended.
	var lateReported []string
	c := e.controller(func(p string) {
		hook(p)
		if p == "adopt:poll" {
			pollMu.Lock()
			lateReported = append(lateReported, e.reported()["late"])
			pollMu.Unlock()
			firstPoll.Do(func() { e.copyToken(late) })
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res = c.Rotate(ctx, &c.cfg.Credentials[0], RotateOptions{Force: true})
	if res.Outcome != OutcomeOK {
		t.Fatalf("gated rotation: %+v", res)
	}
	gated := gateRun.at(t, "observe:before")
	f.finish()

	last := time.Time{}
	for _, w := range e.reports(c) {
		if w.Fingerprint != gated.New.Fingerprint {
			t.Errorf("writer %s reports %s, want the new token %s", w.ClientID, w.Fingerprint, gated.New.Fingerprint)
		}
		if w.FirstSeen.After(last) {
			last = w.FirstSeen
		}
	}
	if gated.AdoptedAt.Before(last) {
		t.Errorf("the gate opened at %s, before the last writer adopted at %s", gated.AdoptedAt, last)
	}
	// Within one poll: once the late writer's new report is stored, the
	// next poll reads it and opens the gate, so at most one poll (the one
	// already reading while the report was on its way) can still find a
	// writer behind.
	pollMu.Lock()
	after := 0
	for _, fp := range lateReported {
		if fp == gated.New.Fingerprint {
			after++
		}
	}
	polls := len(lateReported)
	pollMu.Unlock()
	if polls == 0 || after > 1 {
		t.Errorf("%d polls found the late writer behind, %d of them after its new report was stored: want at least one, and at most one after", polls, after)
	}
	if !gated.AdoptedAt.Before(gated.PublishedAt.Add(gatedGrace)) || !gated.DeactivatedAt.Before(gated.PublishedAt.Add(gatedGrace)) {
		t.Errorf("the gate opened %s and deactivated %s after publish: it waited for the grace of %s",
			gated.AdoptedAt.Sub(gated.PublishedAt), gated.DeactivatedAt.Sub(gated.PublishedAt), gatedGrace)
	}
	if gated.Adoption == nil || !slices.Equal(gated.Adoption.Adopted, []string{"edge-1", "edge-2", "late"}) || len(gated.Adoption.Missing) != 0 {
		t.Errorf("journal adoption = %+v, want edge-1, edge-2 and late adopted", gated.Adoption)
	}
	if !fixed.AdoptedAt.IsZero() || fixed.Adoption != nil {
		t.Errorf("the grace run recorded an adoption: %+v", fixed.Adoption)
	}
	if gated.DeactivatedAt.Before(gated.AdoptedAt) {
		t.Errorf("deactivated at %s, before the gate opened at %s", gated.DeactivatedAt, gated.AdoptedAt)
	}
	// The grace run's deadline is in the journal's own clock: a slow
	// machine only makes the wait longer.
	if graceWait := fixed.DeactivatedAt.Sub(fixed.PublishedAt); graceWait < grace {
		t.Errorf("the grace run deactivated %s after publish, before the grace of %s", graceWait, grace)
	}
	t.Logf("publish → deactivate: gate %s (last writer adopted %s after publish, %d polls found it behind), fixed grace %s",
		gated.DeactivatedAt.Sub(gated.PublishedAt).Round(time.Millisecond), last.Sub(gated.PublishedAt).Round(time.Millisecond),
		polls, fixed.DeactivatedAt.Sub(fixed.PublishedAt).Round(time.Millisecond))
	e.checkEndState()
	e.checkAdoptionAudit(gated.RotationID, "edge-1", "edge-2", "late")
	e.scanAll()
	if out := e.stdout.String(); !strings.Contains(out, "clients_adopted=3 clients_missing=0") {
		t.Errorf("summary line lacks the adoption: %q", out)
	}
}

// reported is each writer's latest report on the server: client ID → fingerprint.
func (e *testEnv) reported() map[string]string {
	latest := map[string]influxv2.Point{}
	for _, p := range e.srv.Points() {
		if p.Measurement != rotation.DefaultAdoptionMeasurement {
			continue
		}
		if prev, ok := latest[p.Tags["client_id"]]; !ok || !p.Time.Before(prev.Time) {
			latest[p.Tags["client_id"]] = p
		}
	}
	out := map[string]string{}
	for id, p := range latest {
		out[id], _ = p.Fields["fingerprint"].(string)
	}
	return out
}

// checkAdoptionAudit asserts one "adopted" record per adopting client of a
// rotation, naming the client and the new fingerprint, and the adopt
// phase's summary.
func (e *testEnv) checkAdoptionAudit(rid string, clients ...string) {
	e.t.Helper()
	var named []string
	summary := ""
	for _, rec := range e.auditRecords() {
		if rec.RotationID != rid {
			continue
		}
		switch {
		case rec.Event == "adopted":
			id, _, _ := strings.Cut(strings.TrimPrefix(rec.Message, "client_id="), " ")
			named = append(named, id)
			if !strings.Contains(rec.Message, "fingerprint="+rec.NewFingerprint) || !strings.Contains(rec.Message, "first_seen=") {
				e.t.Errorf("adopted record %q lacks the new fingerprint or first_seen", rec.Message)
			}
		case rec.Event == string(state.PhaseAdopt) && rec.Outcome == OutcomeOK:
			summary = rec.Message
		}
	}
	slices.Sort(named)
	if !slices.Equal(named, clients) {
		e.t.Errorf("adopted records name %v, want %v", named, clients)
	}
	if want := fmt.Sprintf("adopted=%d ", len(clients)); !strings.HasPrefix(summary, want) || !strings.Contains(summary, "waited=") {
		e.t.Errorf("adopt summary %q, want %q… with missing and waited", summary, want)
	}
}

// scanAll scans every output of the controller and the writers' reports
// for every token.
func (e *testEnv) scanAll(extra ...[]byte) {
	e.t.Helper()
	sc := &secscan.Scanner{}
	sc.AddServer(e.srv)
	sc.Add(e.initial.Token, e.srv.OperatorToken())
	if e.rec != nil {
		sc.Add(e.rec.created()...)
	}
	sc.Check(e.t, "stdout", []byte(e.stdout.String()))
	sc.Check(e.t, "logs", []byte(e.logs.String()))
	for _, p := range e.srv.Points() {
		if p.Measurement == rotation.DefaultAdoptionMeasurement {
			sc.Check(e.t, "adoption report", []byte(fmt.Sprint(p.Tags, p.Fields)))
		}
	}
	hits, files, err := sc.ScanTree(e.dir, func(path string) bool {
		// The targets and the writers' token files hold tokens by design.
		rel, _ := filepath.Rel(e.dir, path)
		return slices.Contains([]string{"out", "mount", "late", "pinned", "operator-token"}, strings.Split(rel, string(filepath.Separator))[0]) ||
			strings.HasPrefix(rel, "exec-token")
	})
	must(e.t, err)
	if files == 0 {
		e.t.Error("the scan found no file")
	}
	for _, h := range hits {
		e.t.Errorf("secret leak: %s", h)
	}
	for i, b := range extra {
		sc.Check(e.t, fmt.Sprintf("output %d", i), b)
	}
}

// TestAdoptStragglerAbortsThenResumes: a writer whose secret update is
// delayed past the timeout keeps the old token valid; the run fails naming
// it, and the next run, once it caught up, completes. No point is lost.
func TestAdoptStragglerAbortsThenResumes(t *testing.T) {
	e := newEnv(t, envOptions{extra: adoptionBlock(time.Second, "abort", "")})
	late := e.lateFile("late")
	f := e.startFleet(map[string]rotation.Source{
		"edge-1": fileSource(t, filepath.Join(e.dir, "out", "token")),
		"late":   fileSource(t, late),
	})
	wait.For(t, 10*time.Second, "both writers to report", func() bool { return len(e.reported()) == 2 })

	res := e.rotate(e.controller(e.whenAdopted("edge-1", nil)), true)
	if res.Outcome != OutcomeFailed || res.Phase != state.PhaseAdopt || res.Err == nil || !strings.Contains(res.Err.Error(), "late") {
		t.Fatalf("result %+v, want failed at adopt naming the straggler", res)
	}
	if strings.Contains(res.Err.Error(), "edge-1") {
		t.Errorf("error %q names edge-1, which adopted", res.Err)
	}
	st := e.loadState()
	if st.Cycle == nil || st.Cycle.Phase != state.PhaseAdopt || !st.Cycle.DeactivatedAt.IsZero() {
		t.Fatalf("journal %+v, want the cycle waiting at adopt, nothing deactivated", st.Cycle)
	}
	newTok := e.tokenOf(e.managed()[0])
	if !e.srv.IsActive(e.initial.Token) || !e.srv.IsActive(newTok) {
		t.Fatal("both tokens must stay valid after the abort")
	}
	named := false
	for _, rec := range e.auditRecords() {
		if rec.Event == string(state.PhaseAdopt) && rec.Outcome == OutcomeFailed && strings.Contains(rec.Message, "late") {
			named = true
		}
	}
	if !named {
		t.Error("no failed adopt audit record names the straggler")
	}

	// The secret update arrives; the next run resumes waiting and completes.
	e.copyToken(late)
	wait.For(t, 10*time.Second, "the straggler to report the new token", func() bool {
		return e.reported()["late"] == rotation.Fingerprint(newTok)
	})
	c := e.controller(nil)
	if res := e.rotate(c, false); res.Outcome != OutcomeOK {
		t.Fatalf("rerun: %+v", res)
	}
	f.finish()
	e.checkEndState()
	e.checkAdoptionAudit(res.RotationID, "edge-1", "late")
	e.scanAll([]byte(fmt.Sprint(e.reports(c))))
}

// TestAdoptStragglerProceed: with on_timeout = "proceed" the old token is
// deactivated although a writer still uses it; the audit names it, its
// points stay buffered and are stored once its file updates.
func TestAdoptStragglerProceed(t *testing.T) {
	e := newEnv(t, envOptions{extra: adoptionBlock(time.Second, "proceed", "")})
	late := e.lateFile("late")
	f := e.startFleet(map[string]rotation.Source{
		"edge-1": fileSource(t, filepath.Join(e.dir, "out", "token")),
		"late":   fileSource(t, late),
	})
	wait.For(t, 10*time.Second, "both writers to report", func() bool { return len(e.reported()) == 2 })
	cycles, hook := e.recordCycles("observe:before")
	res := e.rotate(e.controller(e.whenAdopted("edge-1", hook)), true)
	if res.Outcome != OutcomeOK {
		t.Fatalf("rotation: %+v", res)
	}
	cy := cycles.at(t, "observe:before")
	if cy.Adoption == nil || !slices.Equal(cy.Adoption.Missing, []string{"late"}) || !slices.Equal(cy.Adoption.Adopted, []string{"edge-1"}) {
		t.Fatalf("journal adoption %+v, want edge-1 adopted and late cut off", cy.Adoption)
	}
	if e.srv.IsActive(e.initial.Token) {
		t.Fatal("the old token is still active after proceed")
	}
	cutOff := false
	for _, rec := range e.auditRecords() {
		if rec.Event == string(state.PhaseAdopt) && rec.Outcome == OutcomeOK && strings.Contains(rec.Message, "cuts off") && strings.Contains(rec.Message, "late") {
			cutOff = true
		}
	}
	if !cutOff {
		t.Error("the adopt audit record does not name the writer cut off")
	}
	if out := e.stdout.String(); !strings.Contains(out, "clients_adopted=1 clients_missing=1 cut_off=late") {
		t.Errorf("summary line %q does not name the writer cut off", out)
	}
	// The straggler's writes are refused now; its points wait for its token.
	stuck := f.writers["late"]
	wait.For(t, 10*time.Second, "the straggler's writes to be refused", func() bool { return stuck.rot.Stats().AuthFailures.Load() > 0 })
	e.copyToken(late)
	newFP := cy.New.Fingerprint
	wait.For(t, 10*time.Second, "the straggler to report the new token", func() bool { return e.reported()["late"] == newFP })
	f.finish()
	e.checkEndState()
	e.scanAll()
}

// TestAdoptPinnedTokenNamedAsStraggler: a writer configured with the old
// token as a fixed token (adoption_report turned on) can never adopt and is
// named by its client ID.
func TestAdoptPinnedTokenNamedAsStraggler(t *testing.T) {
	e := newEnv(t, envOptions{extra: adoptionBlock(500*time.Millisecond, "abort", "")})
	pinned, err := rotation.NewStaticSource(e.initial.Token)
	must(t, err)
	f := e.startFleet(map[string]rotation.Source{
		"edge-1":     fileSource(t, filepath.Join(e.dir, "out", "token")),
		"hand-tuned": pinned,
	})
	wait.For(t, 10*time.Second, "both writers to report", func() bool { return len(e.reported()) == 2 })
	res := e.rotate(e.controller(e.whenAdopted("edge-1", nil)), true)
	if res.Outcome != OutcomeFailed || res.Err == nil || !strings.Contains(res.Err.Error(), "not on the new token: hand-tuned") {
		t.Fatalf("result %+v, want the pinned writer named", res)
	}
	f.finish()
	e.scanAll()
}

// TestAdoptWriterThatLeftDoesNotBlock: a writer whose last report is older
// than the lookback has left the fleet; a configured client that never
// reported blocks, as one that must adopt.
func TestAdoptWriterThatLeftDoesNotBlock(t *testing.T) {
	e := newEnv(t, envOptions{extra: adoptionBlock(time.Minute, "abort", "")})
	// A writer that reported the old token an hour ago and stopped.
	gone := fmt.Sprintf("%s,client_id=decommissioned fingerprint=%q,previous=\"\",rotations=0i %d\n",
		rotation.DefaultAdoptionMeasurement, rotation.Fingerprint(e.initial.Token), time.Now().Add(-time.Hour).UnixNano())
	e.writeLine(e.initial.Token, gone)
	f := e.startFleet(map[string]rotation.Source{"edge-1": fileSource(t, filepath.Join(e.dir, "out", "token"))})
	wait.For(t, 10*time.Second, "the writer to report", func() bool { return len(e.reported()) == 2 })
	cycles, hook := e.recordCycles("observe:before")
	if res := e.rotate(e.controller(hook), true); res.Outcome != OutcomeOK {
		t.Fatalf("rotation: %+v", res)
	}
	if ad := cycles.at(t, "observe:before").Adoption; ad == nil || !slices.Equal(ad.Adopted, []string{"edge-1"}) || len(ad.Missing) != 0 {
		t.Errorf("adoption %+v, want edge-1 only", ad)
	}
	f.finish()

	// The same writer named in clients must adopt.
	cfg := strings.Replace(mustRead(t, e.cfgPath), `timeout = "1m0s"`, `timeout = "200ms"
clients = ["edge-1", "decommissioned"]`, 1)
	must(t, os.WriteFile(e.cfgPath, []byte(cfg), 0o600))
	res := e.rotate(e.controller(nil), true)
	if res.Outcome != OutcomeFailed || res.Err == nil || !strings.Contains(res.Err.Error(), "decommissioned") {
		t.Fatalf("result %+v, want the configured client named", res)
	}
}

// TestAdoptionUnreadableBeforePublish: an operator token that cannot read
// the reports is a configuration error found before anything is created.
func TestAdoptionUnreadableBeforePublish(t *testing.T) {
	e := newEnv(t, envOptions{extra: adoptionBlock(time.Minute, "abort", `bucket = "no-such-bucket"`)})
	c := e.controller(nil)
	if res := c.Rotate(context.Background(), &c.cfg.Credentials[0], RotateOptions{Force: true, DryRun: true}); !ConfigError(res.Err) {
		t.Errorf("dry run: %+v, want the configuration error", res)
	}
	res := e.rotate(c, true)
	if res.Err == nil || !ConfigError(res.Err) || !errors.Is(res.Err, backend.ErrAdoptionAccess) {
		t.Fatalf("result %+v, want a configuration error wrapping ErrAdoptionAccess", res)
	}
	if !strings.Contains(res.Err.Error(), "no-such-bucket") {
		t.Errorf("error %q does not name the bucket", res.Err)
	}
	if m := e.managed(); len(m) != 0 {
		t.Errorf("authorizations created: %v", m)
	}
	for _, tg := range e.targets() {
		if got, err := tg.ReadBack(context.Background()); err != nil || got != e.initial.Token {
			t.Errorf("%s changed (%v)", tg.Name(), err)
		}
	}
	if st := e.loadState(); st.Cycle != nil {
		t.Errorf("a cycle was journaled: %+v", st.Cycle)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	must(t, err)
	return string(data)
}

// writeLine writes line protocol with tok.
func (e *testEnv) writeLine(tok, line string) {
	e.t.Helper()
	q := url.Values{"org": {e.org}, "bucket": {e.bucket}, "precision": {"ns"}}
	req, err := http.NewRequest(http.MethodPost, e.srv.URL()+"/api/v2/write?"+q.Encode(), strings.NewReader(line))
	must(e.t, err)
	req.Header.Set("Authorization", "Token "+tok)
	resp, err := http.DefaultClient.Do(req)
	must(e.t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		e.t.Fatalf("write: status %d", resp.StatusCode)
	}
}
