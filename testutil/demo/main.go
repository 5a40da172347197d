// Command influxrotate-demo shows the whole product end to end on one
// machine, with nothing but loopback networking: an InfluxDB-compatible test
// server, a stock Telegraf running inputs.mock into outputs.execd with the
// influxdb-v2-rotating binary, and the influxrotate controller rotating the
// token every few seconds: it creates a token with the old one's scope,
// publishes it to a kubelet-style secret mount the binary watches, waits
// until the binary's adoption report says it writes with it, then
// deactivates and deletes the old one, recording each step in its
// hash-chained audit log. The demo prints one line per rotation and a
// summary, and exits non-zero if a single point was lost.
//
// Run it with `make demo`, which builds Telegraf and the binaries first.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/influxrotate/influxrotate/rotation"
	"github.com/influxrotate/influxrotate/rotation/secretdir"
	"github.com/influxrotate/influxrotate/testutil/influxv2"
	"github.com/influxrotate/influxrotate/testutil/secscan"
)

const (
	org         = "demo"
	bucket      = "telemetry"
	measurement = "demo"
	clientID    = "demo-agent"
)

type options struct {
	duration    time.Duration
	rotateEvery time.Duration
	interval    time.Duration
	telegraf    string
	execd       string
	rotate      string
	keep        bool
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 40*time.Second, "stop after this long (Ctrl-C stops earlier)")
	flag.DurationVar(&o.rotateEvery, "rotate-every", 4*time.Second, "rotate the token this often")
	flag.DurationVar(&o.interval, "interval", 50*time.Millisecond, "Telegraf's gather interval (inputs.mock)")
	flag.StringVar(&o.telegraf, "telegraf", ".tools/bin/telegraf", "stock Telegraf binary (make tools)")
	flag.StringVar(&o.execd, "execd", "bin/influxdb-v2-rotating", "the influxdb-v2-rotating binary (make build)")
	flag.StringVar(&o.rotate, "influxrotate", "bin/influxrotate", "the influxrotate controller binary (make build)")
	flag.BoolVar(&o.keep, "keep", false, "keep the working directory (configs, Telegraf's log) instead of removing it")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, out io.Writer) error {
	for _, p := range []struct{ path, hint string }{{o.telegraf, "make tools"}, {o.execd, "make build"}, {o.rotate, "make build"}} {
		if _, err := os.Stat(p.path); err != nil {
			return fmt.Errorf("%s not found (run `%s`, or `make demo` which does both)", p.path, p.hint)
		}
	}
	execd, err := filepath.Abs(o.execd)
	if err != nil {
		return err
	}
	controller, err := filepath.Abs(o.rotate)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "influxrotate-demo-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintf(out, "working directory: %s (kept)\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	srv, err := influxv2.New(influxv2.Options{})
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Fprintf(out, "▶ InfluxDB-compatible test server on %s (org %q, bucket %q)\n", srv.URL(), org, bucket)
	cur := srv.WriteAuthorization(org, bucket)

	mount := filepath.Join(dir, "secret")
	if err := secretdir.Write(mount, map[string][]byte{"token": []byte(cur.Token)}, 0o644); err != nil {
		return err
	}
	pluginConf := filepath.Join(dir, "influxdb_v2_rotating.conf")
	if err := os.WriteFile(pluginConf, []byte(fmt.Sprintf(`[[outputs.influxdb_v2_rotating]]
  urls = [%q]
  token_file = %q
  organization = %q
  bucket = %q
  client_id = %q
  token_debounce = "20ms"
`, srv.URL(), filepath.Join(mount, "token"), org, bucket, clientID)), 0o600); err != nil {
		return err
	}
	witness := filepath.Join(dir, "sent.lp")
	tgConf := filepath.Join(dir, "telegraf.conf")
	if err := os.WriteFile(tgConf, []byte(fmt.Sprintf(`[agent]
  interval = %q
  round_interval = false
  flush_interval = "200ms"
  omit_hostname = true

[[inputs.mock]]
  metric_name = %q
  [[inputs.mock.step]]
    name = "seq"
    start = 0.0
    step = 1.0

# The binary under demonstration.
[[outputs.execd]]
  command = [%q, "-config", %q, "-flush-interval", "500ms", "-stats-interval", "2s"]
  data_format = "influx"

# What Telegraf sent, to count against what the server stored; flushed
# often so that it never lags behind the server.
[[outputs.file]]
  files = [%q]
  data_format = "influx"
  flush_interval = "20ms"
`, o.interval.String(), measurement, execd, pluginConf, witness)), 0o600); err != nil {
		return err
	}

	logPath := filepath.Join(dir, "telegraf.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	tg := exec.Command(o.telegraf, "--config", tgConf)
	tg.Stdout, tg.Stderr = logFile, logFile
	// Its own process group: Ctrl-C reaches the demo, which then stops
	// Telegraf the graceful way.
	tg.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := tg.Start(); err != nil {
		return fmt.Errorf("starting telegraf: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- tg.Wait() }()
	fmt.Fprintf(out, "▶ stock Telegraf (pid %d): inputs.mock every %s → outputs.execd → %s\n", tg.Process.Pid, o.interval, filepath.Base(execd))
	fmt.Fprintf(out, "▶ token %s mounted at %s (kubelet layout); rotating every %s for %s\n",
		rotation.Fingerprint(cur.Token), filepath.Join(mount, "token"), o.rotateEvery, o.duration)

	ctl, err := newController(dir, controller, srv, cur, mount)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "▶ influxrotate rotates it: provision → publish → verify → adopt (waits for %s's adoption report) → deactivate → observe → delete\n\n", clientID)

	d := &demo{srv: srv, witness: witness, out: out, start: time.Now()}
	if err := d.waitFor(ctx, 60*time.Second, func() bool { return len(srv.PointsBy(cur.ID)) > 0 }); err != nil {
		stopTelegraf(tg, exited)
		return fmt.Errorf("no point arrived with the first token: %w (Telegraf's log: %s)", err, tail(logPath))
	}

	end := time.After(o.duration)
	ticker := time.NewTicker(o.rotateEvery)
	defer ticker.Stop()
	rotations, failed := 0, 0
loop:
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(out, "\n■ interrupted")
			break loop
		case <-end:
			break loop
		case err := <-exited:
			return fmt.Errorf("telegraf exited early: %v (log: %s)", err, tail(logPath))
		case <-ticker.C:
		}
		prev := ctl.fingerprint()
		rotations++
		r, err := ctl.rotate(ctx)
		if err != nil {
			if ctx.Err() != nil {
				rotations--
				fmt.Fprintln(out, "\n■ interrupted (the last rotation was under way; the next influxrotate run resumes it)")
				break loop
			}
			failed++
			fmt.Fprintf(out, "rotation %2d  %s → ?  FAILED, the old token stays valid: %v\n", rotations, prev, err)
			continue
		}
		c := d.count()
		fmt.Fprintf(out, "rotation %2d  %s → %s  adopted by %d writer(s) in %5.2fs · old token deactivated +%.2fs, deleted +%.2fs │ sent %6d  stored %6d  in flight %4d  lost %d\n",
			rotations, prev, r.newFP, r.adopted, r.adoption.Seconds(), r.deactivated.Seconds(), r.deleted.Seconds(),
			c.sent, c.stored, c.inFlight(), c.holes)
	}

	fmt.Fprintln(out, "\n■ stopping Telegraf (it closes the binary's stdin; the binary flushes and exits)")
	if err := stopTelegraf(tg, exited); err != nil {
		fmt.Fprintf(out, "  telegraf: %v\n", err)
	}
	final := d.count()
	lost := final.lost()
	fmt.Fprintf(out, "\nsummary after %s\n", time.Since(d.start).Round(time.Second))
	fmt.Fprintf(out, "  rotations       %d (%d failed); each old token deleted only after the writer reported the new one\n", rotations, failed)
	fmt.Fprintf(out, "  points sent     %d (what Telegraf handed to outputs.execd)\n", final.sent)
	fmt.Fprintf(out, "  points stored   %d (distinct, at the server)\n", final.stored)
	fmt.Fprintf(out, "  points lost     %d\n", len(lost))
	if st := d.lastStats(); st != "" {
		fmt.Fprintf(out, "  binary's stats  %s\n", st)
	}
	// Checked even after Ctrl-C: the log of what did happen must hold.
	records, auditErr := ctl.verifyAudit(context.WithoutCancel(ctx))
	if auditErr == nil {
		fmt.Fprintf(out, "  audit chain     verified: %s\n", records)
	} else {
		fmt.Fprintf(out, "  audit chain     BROKEN: %v\n", auditErr)
	}
	// Every token the server ever issued, searched for in everything the
	// agent and the controller wrote: logs, audit log, state.
	// secscan looks for the encoded forms too (base64, URL-escaped, JSON),
	// which an echoing server or a careless encoder would leave.
	var scan secscan.Scanner
	scan.Add(append(ctl.tokens(), srv.OperatorToken())...)
	leaked := 0
	for _, path := range []string{logPath, ctl.logPath, ctl.audit, filepath.Join(ctl.dir, "state", "demo.json")} {
		hits, err := scan.ScanFile(path)
		if err != nil {
			continue
		}
		for _, h := range hits {
			fmt.Fprintf(out, "  LEAK            %s\n", h)
		}
		leaked += len(hits)
	}
	fmt.Fprintf(out, "  tokens in logs  %d (Telegraf's and influxrotate's logs, audit log and state hold only fingerprints)\n", leaked)
	switch {
	case len(lost) > 0:
		return fmt.Errorf("%d points lost (first: seq %d); Telegraf's log: %s", len(lost), lost[0], tail(logPath))
	case leaked > 0:
		return errors.New("a token appeared in a log, the audit log or the state")
	case auditErr != nil:
		return auditErr
	case failed > 0:
		return fmt.Errorf("%d rotations failed; influxrotate's log: %s", failed, tail(ctl.logPath))
	}
	fmt.Fprintln(out, "\n✔ no point lost")
	return nil
}

type demo struct {
	srv     *influxv2.Server
	witness string
	out     io.Writer
	start   time.Time
}

// counts compares what Telegraf sent with what the server stored.
type counts struct {
	sent, stored int
	// holes are seq values below the highest stored one that are missing:
	// the binary keeps order, so these can no longer be in flight.
	holes                int
	sentSeqs, storedSeqs map[int64]bool
}

func (c counts) inFlight() int { return max(c.sent-c.stored, 0) }

func (c counts) lost() []int64 {
	var out []int64
	for s := range c.sentSeqs {
		if !c.storedSeqs[s] {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

func (d *demo) count() counts {
	c := counts{sentSeqs: map[int64]bool{}, storedSeqs: map[int64]bool{}}
	// The server first, then Telegraf's witness file: outputs.execd and
	// outputs.file flush on their own tickers, so reading the witness last
	// keeps "sent" from lagging behind "stored".
	maxStored := int64(-1)
	for _, p := range d.srv.Points() {
		if p.Measurement != measurement {
			continue
		}
		if v, ok := p.Fields["seq"].(float64); ok {
			c.storedSeqs[int64(v)] = true
			maxStored = max(maxStored, int64(v))
		}
	}
	if f, err := os.Open(d.witness); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if s, ok := seqOf(sc.Text()); ok {
				c.sentSeqs[s] = true
			}
		}
		f.Close()
	}
	for s := int64(0); s < maxStored; s++ {
		if !c.storedSeqs[s] {
			c.holes++
		}
	}
	c.sent, c.stored = len(c.sentSeqs), len(c.storedSeqs)
	return c
}

func seqOf(line string) (int64, bool) {
	_, rest, ok := strings.Cut(line, "seq=")
	if !ok {
		return 0, false
	}
	v, _, _ := strings.Cut(rest, " ")
	x, err := strconv.ParseFloat(v, 64)
	return int64(x), err == nil
}

// lastStats formats the binary's latest internal_token_rotation point.
func (d *demo) lastStats() string {
	var last *influxv2.Point
	pts := d.srv.Points()
	for i := range pts {
		if pts[i].Measurement == "internal_token_rotation" && pts[i].Tags["client_id"] == clientID {
			last = &pts[i]
		}
	}
	if last == nil {
		return ""
	}
	var parts []string
	for _, k := range []string{"rotations", "auth_failures", "fallbacks", "execd_metrics_written", "execd_metrics_dropped", "execd_lines_malformed"} {
		if v, ok := last.Fields[k]; ok {
			parts = append(parts, fmt.Sprintf("%s=%v", k, v))
		}
	}
	return strings.Join(parts, " ")
}

func (d *demo) waitFor(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("not within %s", timeout)
		case <-tick.C:
		}
	}
	return nil
}

// stopTelegraf sends SIGTERM and waits (Telegraf closes the execd child's
// stdin and gives it 5 s); it kills after 20 s.
func stopTelegraf(tg *exec.Cmd, exited <-chan error) error {
	_ = tg.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		return err
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-tg.Process.Pid, syscall.SIGKILL)
		<-exited
		return errors.New("did not stop within 20s; killed")
	}
}

// tail returns the last lines of a log file, for an error message.
func tail(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return path
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return path + "\n" + strings.Join(lines, "\n")
}
