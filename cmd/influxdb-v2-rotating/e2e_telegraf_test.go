package main

import (
	"bufio"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/influxrotate/influxrotate/cmd/influxdb-v2-rotating/internal/execdtest"
	"github.com/influxrotate/influxrotate/cmd/influxdb-v2-rotating/internal/lines"
	"github.com/influxrotate/influxrotate/rotation/secretdir"
	"github.com/influxrotate/influxrotate/testutil/influxv2"
	"github.com/influxrotate/influxrotate/testutil/realtools"
	"github.com/influxrotate/influxrotate/testutil/wait"
)

// The issue asks for a 30 s outage; the default keeps `make test` quick.
// go test -run TestE2EServerRefuses ./cmd/influxdb-v2-rotating -args -e2e.outage=30s
var outage = flag.Duration("e2e.outage", 4*time.Second, "how long TestE2EServerRefusesThenRecovers refuses writes")

// tgPipeline is stock Telegraf running inputs.mock into outputs.execd (our
// binary) and, as the witness of what Telegraf gathered, outputs.file.
type tgPipeline struct {
	tg      *realtools.Telegraf
	witness string
}

func startPipeline(t *testing.T, measurement, mockExtra, pluginConf string, binArgs ...string) *tgPipeline {
	t.Helper()
	bin := execdBinary(t)
	dir := t.TempDir()
	witness := filepath.Join(dir, "gathered.lp")
	cmd := []string{bin, "-config", pluginConf, "-flush-interval", "200ms", "-batch-size", "50", "-stats-interval", "1s"}
	cmd = append(cmd, binArgs...)
	quoted := make([]string, len(cmd))
	for i, c := range cmd {
		quoted[i] = strconv.Quote(c)
	}
	conf := fmt.Sprintf(`
[agent]
  interval = "50ms"
  round_interval = false
  ## Nanosecond timestamps. The default for a 50ms interval rounds to the
  ## millisecond, and on a loaded machine a gather delayed past its tick is
  ## followed at once by the next one: two seqs in one millisecond are one
  ## series and timestamp, so the server keeps one (seqPoints, like InfluxDB)
  ## and the other reads as lost.
  precision = "1ns"
  collection_jitter = "0s"
  flush_interval = "100ms"
  flush_jitter = "0s"
  metric_batch_size = 100
  metric_buffer_limit = 100000
  omit_hostname = true

[[inputs.mock]]
  metric_name = %q
  [[inputs.mock.step]]
    name = "seq"
    start = 0.0
    step = 1.0
%s
[[outputs.execd]]
  command = [%s]
  data_format = "influx"
  restart_delay = "500ms"

[[outputs.file]]
  files = [%q]
  data_format = "influx"
`, measurement, mockExtra, strings.Join(quoted, ", "), witness)
	tg := realtools.StartTelegraf(t, conf)
	if err := tg.WaitForLog("Loaded outputs", 60*time.Second); err != nil {
		t.Fatal(err)
	}
	return &tgPipeline{tg: tg, witness: witness}
}

// gathered returns the seq values Telegraf wrote to the witness file.
func (p *tgPipeline) gathered(t *testing.T) map[int64]bool {
	t.Helper()
	f, err := os.Open(p.witness)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[int64]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		_, rest, ok := strings.Cut(sc.Text(), "seq=")
		if !ok {
			continue
		}
		v, _, _ := strings.Cut(rest, " ")
		if x, err := strconv.ParseFloat(v, 64); err == nil {
			out[int64(x)] = true
		}
	}
	return out
}

// stopAndCheck stops Telegraf (which closes the binary's stdin, so the
// binary flushes) and checks that every gathered point is stored.
func (p *tgPipeline) stopAndCheck(t *testing.T, stored func() []int64) []int64 {
	t.Helper()
	if err := p.tg.Stop(); err != nil {
		t.Fatalf("telegraf did not stop cleanly: %v", err)
	}
	gathered := p.gathered(t)
	seqs := stored()
	have := map[int64]bool{}
	for _, s := range seqs {
		have[s] = true
	}
	var missing []int64
	for s := range gathered {
		if !have[s] {
			missing = append(missing, s)
		}
	}
	if len(gathered) == 0 {
		t.Fatal("telegraf gathered nothing")
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d gathered points never stored (e.g. seq %d)", len(missing), len(gathered), missing[0])
	}
	if g := gapless(seqs); g != -1 {
		t.Fatalf("stored seq has a gap at %d", g)
	}
	return seqs
}

// TestE2ETenRotationsUnderLoad rotates the token ten times by swapping a
// kubelet-style secret mount, revoking each old token at the server once
// the new one was used; stock Telegraf feeds a steady load throughout.
func TestE2ETenRotationsUnderLoad(t *testing.T) {
	srv := influxv2.NewTest(t, influxv2.Options{})
	auth := srv.WriteAuthorization("acme", "telemetry")
	dir := t.TempDir()
	mount := filepath.Join(dir, "secret")
	if err := secretdir.Write(mount, map[string][]byte{"token": []byte(auth.Token)}, 0o644); err != nil {
		t.Fatal(err)
	}
	conf := execdtest.WriteConfig(t, dir, srv.URL(), filepath.Join(mount, "token"), "acme", "telemetry", `  client_id = "e2e-rotation"`+"\n")
	p := startPipeline(t, "e2e_rotation", "", conf)
	wait.For(t, 60*time.Second, "the first points", func() bool { return len(srv.PointsBy(auth.ID)) > 0 })

	tokens := []string{auth.Token}
	old := auth
	for i := 1; i <= 10; i++ {
		next := srv.WriteAuthorization("acme", "telemetry")
		tokens = append(tokens, next.Token)
		if err := secretdir.Write(mount, map[string][]byte{"token": []byte(next.Token)}, 0o644); err != nil {
			t.Fatal(err)
		}
		wait.For(t, 30*time.Second, fmt.Sprintf("rotation %d adopted", i), func() bool { return len(srv.PointsBy(next.ID)) > 0 })
		if err := srv.DeleteAuthorization(old.ID); err != nil {
			t.Fatal(err)
		}
		old = next
	}
	// Some load after the last revocation, then the statistics point.
	after := len(srv.PointsBy(old.ID))
	wait.For(t, 30*time.Second, "points after the last rotation", func() bool { return len(srv.PointsBy(old.ID)) > after+20 })
	wait.For(t, 30*time.Second, "a statistics point counting the rotations", func() bool {
		for _, pt := range srv.Points() {
			if pt.Measurement == "internal_token_rotation" && pt.Tags["client_id"] == "e2e-rotation" {
				if r, ok := pt.Fields["rotations"].(int64); ok && r >= 10 {
					return true
				}
			}
		}
		return false
	})
	seqs := p.stopAndCheck(t, func() []int64 { return seqPoints(t, srv, "e2e_rotation") })
	t.Logf("%d points stored across 10 rotations, none lost", len(seqs))
	execdtest.NoSecrets(t, map[string]string{"telegraf and binary": p.tg.Output()}, tokens...)
}

// TestE2EServerRefusesThenRecovers makes the server refuse every write,
// first with 401 then with 503, for -e2e.outage; the binary's buffer and
// then Telegraf's hold the data, and every point arrives after recovery.
func TestE2EServerRefusesThenRecovers(t *testing.T) {
	srv := influxv2.NewTest(t, influxv2.Options{})
	auth := srv.WriteAuthorization("acme", "telemetry")
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(auth.Token), 0o600)
	conf := execdtest.WriteConfig(t, dir, srv.URL(), tokenFile, "acme", "telemetry", "")
	// Big lines and a small buffer: the binary's buffer fills, then the
	// pipe (64 KiB), then Telegraf's own buffer holds the rest.
	// 4 KB lines: 10 in the buffer, 16 in the read being handled, 16 in the
	// pipe; a 4 s outage at 20 points/s is 80 points, twice that.
	pad := fmt.Sprintf("  [[inputs.mock.constant]]\n    name = \"pad\"\n    value = %q\n", strings.Repeat("x", 4000))
	p := startPipeline(t, "e2e_outage", pad, conf, "-buffer-limit", "10", "-batch-size", "5")
	wait.For(t, 60*time.Second, "the first points", func() bool { return len(seqPoints(t, srv, "e2e_outage")) > 10 })

	// Keep a refusal queued for every request until the phase ends.
	refuse := func(status int, d time.Duration) {
		end := time.Now().Add(d)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for time.Now().Before(end) {
			if srv.PendingFaults() == 0 {
				srv.Inject(influxv2.Fault{Path: "*", Status: status, RetryAfter: "1"})
			}
			<-tick.C
		}
	}
	before := len(seqPoints(t, srv, "e2e_outage"))
	refuse(http.StatusUnauthorized, *outage/2)
	refuse(http.StatusServiceUnavailable, *outage/2)
	duringOutage := len(seqPoints(t, srv, "e2e_outage")) - before
	// The last queued refusal may still be waiting for a request.
	wait.For(t, 30*time.Second, "the last refusal used", func() bool { return srv.PendingFaults() == 0 })
	// One batch may have been in flight when the refusals began.
	if duringOutage > 5 {
		t.Fatalf("%d points stored while the server refused everything", duringOutage)
	}
	wait.For(t, 60*time.Second, "points after recovery", func() bool {
		return len(seqPoints(t, srv, "e2e_outage")) > before+int(*outage/(50*time.Millisecond))
	})
	seqs := p.stopAndCheck(t, func() []int64 { return seqPoints(t, srv, "e2e_outage") })
	out := p.tg.Output()
	if !strings.Contains(out, "keeping the batch") {
		t.Errorf("the binary never reported keeping a batch:\n%s", realtools.Tail(out, 40))
	}
	// Telegraf's write to the full pipe blocked: its buffer took over.
	if !strings.Contains(out, "did not complete within its flush interval") {
		t.Errorf("backpressure never reached Telegraf:\n%s", realtools.Tail(out, 40))
	}
	t.Logf("%d points stored after a %s outage, none lost", len(seqs), *outage)
	execdtest.NoSecrets(t, map[string]string{"telegraf and binary": out}, auth.Token)
}

// TestE2EInfluxd18 runs the same pipeline against a real InfluxDB 1.8, whose
// v2 write API takes "user:password" as the token.
func TestE2EInfluxd18(t *testing.T) {
	db := realtools.StartInfluxd(t)
	pass := realtools.RandomSecret()
	if err := db.CreateUser("writer", pass, db.DB); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(realtools.V1Token("writer", pass)+"\n"), 0o600)
	conf := execdtest.WriteConfig(t, dir, db.URL, tokenFile, "ignored-by-1.8", db.DB+"/autogen", "")
	// -check's probe understands 1.8's answer to an empty write.
	if out, err := exec.Command(execdBinary(t), "-check", "-config", conf).CombinedOutput(); err != nil || !strings.Contains(string(out), "OK: token sha256:") {
		t.Fatalf("-check against influxd 1.8: %v\n%s", err, out)
	}
	p := startPipeline(t, "e2e_influxd18", "", conf, "-stats-interval", "0")
	q := `SELECT count("seq") FROM "e2e_influxd18"`
	wait.For(t, 60*time.Second, "40 points in influxd", func() bool {
		n, err := db.Count(q)
		return err == nil && n >= 40
	})
	stored := func() []int64 {
		n, err := db.Count(q)
		if err != nil {
			t.Fatal(err)
		}
		maxSeq, err := db.Count(`SELECT max("seq") FROM "e2e_influxd18"`)
		if err != nil {
			t.Fatal(err)
		}
		distinct, err := db.Count(`SELECT count(distinct("seq")) FROM "e2e_influxd18"`)
		if err != nil {
			t.Fatal(err)
		}
		if n != distinct || maxSeq != n-1 {
			t.Fatalf("influxd holds count=%d distinct=%d max=%d: not 0..count-1 once each", n, distinct, maxSeq)
		}
		seqs := make([]int64, n)
		for i := range seqs {
			seqs[i] = int64(i)
		}
		return seqs
	}
	seqs := p.stopAndCheck(t, stored)
	t.Logf("%d points stored in influxd 1.8", len(seqs))
	execdtest.NoSecrets(t, map[string]string{"telegraf and binary": p.tg.Output(), "influxd": db.Log()}, pass)
}

// childOf returns the pid of the process's one child named name, from
// /proc (the execd binary under Telegraf).
func childOf(t *testing.T, pid int, name string) int {
	t.Helper()
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, c := range strings.Fields(string(data)) {
			comm, err := os.ReadFile("/proc/" + c + "/comm")
			if err == nil && strings.TrimSpace(string(comm)) == name[:min(len(name), 15)] {
				n, _ := strconv.Atoi(c)
				return n
			}
		}
	}
	return 0
}

// spooledSeqs returns the seq values in a spool's intact records.
func spooledSeqs(dir string) map[int64]bool {
	out := map[int64]bool{}
	recs, _ := execdtest.SpooledRecords(dir)
	for _, r := range recs {
		for line := range lines.Split(r) {
			_, rest, ok := strings.Cut(string(line), "seq=")
			if !ok {
				continue
			}
			v, _, _ := strings.Cut(rest, " ")
			v, _, _ = strings.Cut(v, ",")
			if x, err := strconv.ParseFloat(v, 64); err == nil {
				out[int64(x)] = true
			}
		}
	}
	return out
}

// TestE2EKill9UnderTelegraf kills the binary with SIGKILL while the server
// refuses writes; Telegraf restarts it. With a spool, everything it had read
// arrives and only what was still in the pipe can be missing; without, what
// was buffered is lost too, as the README says.
func TestE2EKill9UnderTelegraf(t *testing.T) {
	for _, withSpool := range []bool{true, false} {
		t.Run(map[bool]string{true: "spool", false: "no spool"}[withSpool], func(t *testing.T) {
			srv := influxv2.NewTest(t, influxv2.Options{})
			auth := srv.WriteAuthorization("acme", "telemetry")
			dir := t.TempDir()
			tokenFile := filepath.Join(dir, "token")
			os.WriteFile(tokenFile, []byte(auth.Token), 0o600)
			conf := execdtest.WriteConfig(t, dir, srv.URL(), tokenFile, "acme", "telemetry", "")
			spoolDir := filepath.Join(dir, "spool")
			var args []string
			if withSpool {
				args = []string{"-spool-dir", spoolDir}
			}
			p := startPipeline(t, "e2e_kill", "", conf, args...)
			wait.For(t, 60*time.Second, "the first points", func() bool { return len(seqPoints(t, srv, "e2e_kill")) > 10 })

			// The token is refused: what arrives now stays in the binary.
			if err := srv.SetActive(auth.ID, false); err != nil {
				t.Fatal(err)
			}
			storedBefore := len(seqPoints(t, srv, "e2e_kill"))
			buffered := func() int { return len(p.gathered(t)) - storedBefore }
			wait.For(t, 30*time.Second, "40 points held by the binary", func() bool { return buffered() >= 40 })
			pid := childOf(t, p.tg.Pid(), "influxdb-v2-rotating")
			if pid == 0 {
				t.Fatal("the binary is not a child of Telegraf")
			}
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			var inSpool map[int64]bool
			if withSpool {
				inSpool = spooledSeqs(spoolDir) // the dead process's, before the restart replays it
			}
			wait.For(t, 30*time.Second, "Telegraf restarts the binary", func() bool {
				c := childOf(t, p.tg.Pid(), "influxdb-v2-rotating")
				return c != 0 && c != pid
			})
			if err := srv.SetActive(auth.ID, true); err != nil {
				t.Fatal(err)
			}
			after := len(p.gathered(t))
			wait.For(t, 60*time.Second, "points after the restart", func() bool {
				return len(seqPoints(t, srv, "e2e_kill")) > after
			})
			if err := p.tg.Stop(); err != nil {
				t.Fatalf("telegraf did not stop cleanly: %v", err)
			}
			stored := map[int64]bool{}
			for _, s := range seqPoints(t, srv, "e2e_kill") {
				stored[s] = true
			}
			// Stored before the refusal began: seq 0..storedBefore-1.
			maxStoredBefore := int64(storedBefore) - 1
			var missing []int64
			for s := range p.gathered(t) {
				if !stored[s] {
					missing = append(missing, s)
				}
			}
			slices.Sort(missing)
			if withSpool {
				maxSpooled := int64(-1)
				for s := range inSpool {
					if !stored[s] {
						t.Errorf("seq %d was in the spool at the kill but never stored", s)
					}
					maxSpooled = max(maxSpooled, s)
				}
				if len(inSpool) == 0 {
					t.Fatal("nothing was in the spool at the kill")
				}
				// Only what Telegraf had written to the pipe after the
				// binary's last read may be missing.
				for _, s := range missing {
					if s <= maxSpooled {
						t.Errorf("seq %d, read before the kill, is missing", s)
					}
				}
				t.Logf("%d points were in the spool at the kill, all stored; %d were still in the pipe", len(inSpool), len(missing))
			} else {
				// Lost: what the binary held, and what was in the pipe; a
				// contiguous run after the last point stored before.
				if len(missing) == 0 {
					t.Fatal("nothing lost without a spool: the test did not kill what it meant to")
				}
				for i, s := range missing {
					if s <= maxStoredBefore || (i > 0 && s != missing[i-1]+1) {
						t.Fatalf("unexpected loss pattern %v (stored before the kill: 0..%d)", missing, maxStoredBefore)
					}
				}
				t.Logf("without a spool the kill lost %d points (seq %d..%d): the binary's buffer and the pipe", len(missing), missing[0], missing[len(missing)-1])
			}
			execdtest.NoSecrets(t, map[string]string{"telegraf and binary": p.tg.Output()}, auth.Token)
		})
	}
}
