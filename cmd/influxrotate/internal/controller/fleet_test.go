package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/config"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/state"
	"github.com/influxrotate/influxrotate/rotation"
	"github.com/influxrotate/influxrotate/rotation/secretdir"
	"github.com/influxrotate/influxrotate/testutil/influxv2"
	"github.com/influxrotate/influxrotate/testutil/wait"
)

// sharedSource fans one FileSource out to many writers. The kernel allows
// 128 inotify instances per user by default, fewer than the 200 writers, so
// writers share watches in groups, as containers of one pod share a mount.
// Each view reads the file itself, exactly as FileSource.Read does.
type sharedSource struct {
	fs    *rotation.FileSource
	path  string
	mu    sync.Mutex
	views []*sourceView
	done  chan struct{}
}

type sourceView struct {
	sh *sharedSource
	ch chan *rotation.Credential
}

func newSharedSource(t *testing.T, path string) *sharedSource {
	fsrc, err := rotation.NewFileSource(rotation.FileSourceConfig{Path: path, Debounce: 5 * time.Millisecond, Reread: 500 * time.Millisecond})
	must(t, err)
	s := &sharedSource{fs: fsrc, path: path, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for c := range fsrc.Changes() {
			s.mu.Lock()
			for _, v := range s.views {
				// Keep only the newest undelivered change.
				select {
				case <-v.ch:
				default:
				}
				v.ch <- c
			}
			s.mu.Unlock()
		}
	}()
	return s
}

func (s *sharedSource) view() *sourceView {
	v := &sourceView{sh: s, ch: make(chan *rotation.Credential, 1)}
	s.mu.Lock()
	s.views = append(s.views, v)
	s.mu.Unlock()
	return v
}

func (s *sharedSource) close() {
	_ = s.fs.Close()
	<-s.done
}

func (v *sourceView) Name() string                         { return v.sh.fs.Name() }
func (v *sourceView) Changes() <-chan *rotation.Credential { return v.ch }
func (v *sourceView) Close() error                         { return nil }

func (v *sourceView) Read(ctx context.Context) (*rotation.Credential, error) {
	// A secret-dir switch can hide the file for an instant: retry briefly.
	for try := 0; ; try++ {
		data, err := os.ReadFile(v.sh.path)
		if errors.Is(err, fs.ErrNotExist) && try < 20 {
			time.Sleep(time.Millisecond) // bounded retry of a known transient, not synchronisation
			continue
		}
		if err != nil {
			return nil, err
		}
		tok, err := rotation.ParseToken(data)
		if err != nil {
			return nil, err
		}
		return rotation.NewCredential(tok, "", v.Name()), nil
	}
}

// fleetWriter is a minimal writer: one point per flush, kept until stored.
type fleetWriter struct {
	id      int
	rot     *rotation.Rotator
	client  *http.Client
	url     string
	sent    int // points stored
	adopted map[string]time.Time
	refused int
	// lostAnswers counts writes whose answer never came (a client timeout
	// on a loaded machine): the server may have stored the point, and the
	// resend stores it again, which InfluxDB takes as an overwrite.
	lostAnswers int
	// rep, when set, reports the token the writer writes with after each
	// stored write that makes a report due, as the plugin does.
	rep *rotation.AdoptionReporter
}

// report writes the adoption report due after a write stored with c,
// through the same write path and with the same credential.
func (w *fleetWriter) report(ctx context.Context, c *rotation.Credential) {
	rep, line, ok := w.rep.Due(c, w.rot.Stats().Rotations.Load())
	if !ok {
		return
	}
	status, err := w.post(ctx, c, string(line))
	if err == nil && status != http.StatusNoContent {
		err = fmt.Errorf("adoption report: status %d", status)
	}
	w.rep.Done(rep, err)
}

func (w *fleetWriter) post(ctx context.Context, c *rotation.Credential, line string) (int, error) {
	q := url.Values{"org": {"acme"}, "bucket": {"telemetry"}, "precision": {"ns"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url+"/api/v2/write?"+q.Encode(), strings.NewReader(line))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", c.AuthorizationHeader())
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// run writes until stop is closed, then finishes its pending point.
func (w *fleetWriter) run(ctx context.Context, stop <-chan struct{}, every time.Duration) error {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return nil
		case <-tick.C:
		}
		line := fmt.Sprintf("fleet,writer=w%03d seq=%di %d\n", w.id, w.sent, int64(w.id)*1e12+int64(w.sent))
		c := w.rot.Current()
		for attempt := 0; ; attempt++ {
			if ctx.Err() != nil {
				return fmt.Errorf("writer %d: point %d never stored", w.id, w.sent)
			}
			if _, ok := w.adopted[c.Fingerprint()]; !ok {
				w.adopted[c.Fingerprint()] = time.Now()
			}
			status, err := w.post(ctx, c, line)
			if err != nil && ctx.Err() == nil {
				w.lostAnswers++
			}
			if err == nil && status == http.StatusNoContent {
				w.sent++
				if w.rep != nil {
					w.report(ctx, c)
				}
				break
			}
			if err == nil && rotation.Classify(status, nil, nil).Action == rotation.ActionAuth {
				w.refused++
				if next, retry := w.rot.Refused(ctx, c, status); retry {
					c = next
					continue
				}
			}
			// Keep the point: wait for the next flush, as a buffered writer does.
			select {
			case <-tick.C:
			case <-ctx.Done():
			}
			c = w.rot.Current()
		}
	}
}

// TestFleetAdoptsFiveRotations runs writers sharing one secret-dir mount
// while the controller rotates five times, deactivating and deleting each
// old token once every writer reported the new one: every point must be
// stored, and no token may be deactivated before the last writer adopted it.
func TestFleetAdoptsFiveRotations(t *testing.T) {
	writers, groups := 200, 20
	if testing.Short() {
		writers, groups = 20, 2
	}
	srv, err := influxv2.New(influxv2.Options{HashedTokens: true})
	must(t, err)
	t.Cleanup(srv.Close)
	srv.CreateOrg("acme")
	srv.CreateBucket("acme", "telemetry")
	initial := srv.WriteAuthorization("acme", "telemetry")
	dir := t.TempDir()
	mount := filepath.Join(dir, "mount")
	must(t, secretdir.Write(mount, map[string][]byte{"token": []byte(initial.Token + "\n")}, 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "op"), []byte(srv.OperatorToken()), 0o600))
	cfgText := fmt.Sprintf(`
url = %q
operator_token_file = "op"
state_dir = "state"
audit_log = "audit.jsonl"
[retry]
initial = "1ms"
max = "20ms"
[[credential]]
name = "fleet"
org = "acme"
authorization_id = %q
observe = "50ms"
  [credential.adoption]
  bucket = "telemetry"
  min_clients = %d
  poll_interval = "50ms"
  timeout = "40s"
  [[credential.target]]
  type = "secret-dir"
  dir = "mount"
`, srv.URL(), initial.ID, writers)
	must(t, os.WriteFile(filepath.Join(dir, "c.toml"), []byte(cfgText), 0o600))
	cfg, err := config.Load(filepath.Join(dir, "c.toml"))
	must(t, err)

	bound := 50 * time.Second
	if raceEnabled {
		// Each of the gate's reads of 200 writers' reports costs about a
		// second under the race detector on two busy cores.
		bound = 100 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: writers + 8}}
	var sources []*sharedSource
	for range groups {
		sources = append(sources, newSharedSource(t, filepath.Join(mount, "token")))
	}
	fleet := make([]*fleetWriter, writers)
	for i := range fleet {
		prober, err := rotation.NewHTTPProber(rotation.ProberConfig{URL: srv.URL(), Client: client,
			Targets: []rotation.Target{{Org: "acme", Bucket: "telemetry"}}})
		must(t, err)
		rot, err := rotation.NewRotator(ctx, rotation.Config{Source: sources[i%groups].view(), Prober: prober,
			ProbeBackoff: rotation.Backoff{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond},
			OnPromote:    client.CloseIdleConnections})
		must(t, err)
		rep, err := rotation.NewAdoptionReporter(rotation.AdoptionConfig{ClientID: fmt.Sprintf("w%03d", i), Interval: time.Hour})
		must(t, err)
		fleet[i] = &fleetWriter{id: i, rot: rot, client: client, url: srv.URL(), adopted: map[string]time.Time{}, rep: rep}
	}
	stop := make(chan struct{})
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for _, w := range fleet {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- w.run(ctx, stop, 50*time.Millisecond)
		}()
	}

	// The gate counts the writers' reports: every writer must have
	// reported the initial token before the first rotation.
	wait.For(t, 30*time.Second, "every writer to report", func() bool {
		clients := map[string]bool{}
		for _, p := range srv.Points() {
			if p.Measurement == rotation.DefaultAdoptionMeasurement {
				clients[p.Tags["client_id"]] = true
			}
		}
		return len(clients) == writers
	})

	// The controller, in process, records when each new token reached the
	// mount and when the old one was deactivated.
	published := map[string]time.Time{}
	var cycles []state.Cycle
	var pubMu sync.Mutex
	var st atomic.Pointer[string]
	c, err := New(Options{Config: cfg, Logger: slog.New(slog.DiscardHandler), Hook: func(p string) {
		if p != "publish:after" && p != "observe:before" {
			return
		}
		s, err := state.NewStore(filepath.Join(dir, "state")).Load("fleet")
		if err != nil || s.Cycle == nil {
			return
		}
		pubMu.Lock()
		defer pubMu.Unlock()
		if p == "observe:before" {
			cycles = append(cycles, *s.Cycle)
			return
		}
		published[s.Cycle.New.Fingerprint] = s.Cycle.PublishedAt
		fp := s.Cycle.New.Fingerprint
		st.Store(&fp)
	}})
	must(t, err)
	start := time.Now()
	for i := range 5 {
		res := c.Rotate(ctx, &cfg.Credentials[0], RotateOptions{Force: true})
		if res.Outcome != OutcomeOK {
			t.Fatalf("rotation %d: %+v", i+1, res)
		}
	}
	// Let every writer flush once more with the last token, then stop.
	last := *st.Load()
	// Check, not For: the writers must still be stopped on a timeout.
	wait.Check(t, 20*time.Second, "every writer to hold the last token", func() bool {
		for _, w := range fleet {
			if w.rot.Current().Fingerprint() != last {
				return false
			}
		}
		return true
	})
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for _, w := range fleet {
		_ = w.rot.Close()
	}
	for _, s := range sources {
		s.close()
	}
	elapsed := time.Since(start)

	// Every point acknowledged is stored exactly once, and every writer's
	// points are the unbroken sequence it sent.
	stored := map[string]int{}
	for _, p := range srv.Points() {
		stored[p.Line]++
	}
	total := 0
	for _, w := range fleet {
		total += w.sent
		if w.sent == 0 {
			t.Errorf("writer %d stored nothing", w.id)
		}
		for seq := range w.sent {
			line := fmt.Sprintf("fleet,writer=w%03d %d", w.id, int64(w.id)*1e12+int64(seq))
			if n := stored[line]; n != 1 && (n == 0 || w.lostAnswers == 0) {
				t.Fatalf("writer %d point %d stored %d times (%d answers lost)", w.id, seq, n, w.lostAnswers)
			}
		}
		if fp := w.rot.Current().Fingerprint(); fp != last {
			t.Errorf("writer %d ends on %s, want the last token %s", w.id, fp, last)
		}
	}
	lost := 0
	for _, w := range fleet {
		lost += w.lostAnswers
	}
	data, reports := 0, 0
	for _, p := range srv.Points() {
		switch p.Measurement {
		case "fleet":
			data++
		case rotation.DefaultAdoptionMeasurement:
			reports++
		}
	}
	if data < total || data > total+lost {
		t.Errorf("server holds %d points, writers sent %d (%d answers lost)", data, total, lost)
	}
	// Adoption time: from the token reaching the mount to each writer's
	// first use of it.
	var adoption []time.Duration
	refused := 0
	for _, w := range fleet {
		refused += w.refused
		for fp, at := range w.adopted {
			if pub, ok := published[fp]; ok {
				adoption = append(adoption, max(at.Sub(pub), 0))
			}
		}
	}
	slices.Sort(adoption)
	if len(adoption) != 5*writers {
		t.Errorf("%d adoptions, want %d (5 rotations × %d writers)", len(adoption), 5*writers, writers)
	}
	if len(adoption) > 0 {
		t.Logf("%d writers, 5 rotations in %s, %d points stored, %d writes refused (then retried); adoption after publish: min %s, median %s, p99 %s, max %s",
			writers, elapsed.Round(time.Millisecond), total, refused, adoption[0], adoption[len(adoption)/2],
			adoption[len(adoption)*99/100], adoption[len(adoption)-1])
	}
	// The gate: each old token went only after the last writer used the
	// new one, and long before the fixed grace the gate replaces.
	var toDeactivate []time.Duration
	for _, cy := range cycles {
		last := time.Time{}
		for _, w := range fleet {
			if at := w.adopted[cy.New.Fingerprint]; at.After(last) {
				last = at
			}
		}
		if cy.AdoptedAt.Before(last) || cy.DeactivatedAt.Before(cy.AdoptedAt) {
			t.Errorf("rotation %s: gate opened %s, deactivated %s, before the last writer adopted at %s",
				cy.RotationID, cy.AdoptedAt, cy.DeactivatedAt, last)
		}
		if cy.Adoption == nil || len(cy.Adoption.Adopted) != writers || len(cy.Adoption.Missing) != 0 {
			t.Errorf("rotation %s: adoption %+v, want all %d writers", cy.RotationID, cy.Adoption, writers)
		}
		toDeactivate = append(toDeactivate, cy.DeactivatedAt.Sub(cy.PublishedAt))
	}
	if len(toDeactivate) != 5 {
		t.Fatalf("%d cycles reached observe, want 5", len(toDeactivate))
	}
	slices.Sort(toDeactivate)
	t.Logf("%d adoption reports read by the gate", reports)
	t.Logf("publish → deactivate with the adoption gate: min %s, median %s, max %s (the fixed grace it replaces: %s)",
		toDeactivate[0].Round(time.Millisecond), toDeactivate[2].Round(time.Millisecond), toDeactivate[4].Round(time.Millisecond), config.DefaultGrace)
	if managed := len(srv.Authorizations()); managed != 2 { // the operator's and the current one
		t.Errorf("%d authorizations left, want the operator's and the current one", managed)
	}
}
