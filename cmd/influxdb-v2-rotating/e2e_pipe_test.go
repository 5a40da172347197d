package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/influxrotate/influxrotate/cmd/influxdb-v2-rotating/internal/execdtest"
	"github.com/influxrotate/influxrotate/cmd/influxdb-v2-rotating/internal/lines"
	"github.com/influxrotate/influxrotate/testutil/influxv2"
	"github.com/influxrotate/influxrotate/testutil/wait"
)

// TestE2EMalformedLinesAmongGoodOnes drives the binary through a real pipe:
// every good line is stored, each bad one is logged with its line number
// and counted, and no token is printed.
func TestE2EMalformedLinesAmongGoodOnes(t *testing.T) {
	bin := execdBinary(t)
	srv := influxv2.NewTest(t, influxv2.Options{})
	auth := srv.WriteAuthorization("acme", "telemetry")
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(auth.Token+"\n"), 0o600)
	conf := execdtest.WriteConfig(t, dir, srv.URL(), tokenFile, "acme", "telemetry", "")

	c := startChild(t, bin, "-config", conf, "-batch-size", "50", "-flush-interval", "100ms", "-stats-interval", "0")
	var in strings.Builder
	var badLines []int
	line := 0
	for i := 0; i < 300; i++ {
		line++
		fmt.Fprintf(&in, "pipe,run=malformed seq=%di %d\n", i, 1_700_000_000_000_000_000+int64(i))
		if i%15 == 7 {
			line++
			badLines = append(badLines, line)
			switch i % 3 {
			case 0:
				in.WriteString("pipe,run=malformed seq=\n")
			case 1:
				in.WriteString("this is not line protocol\n")
			default:
				in.WriteString("pipe,run=malformed seq=1i notatime\n")
			}
		}
	}
	if _, err := c.stdin.Write([]byte(in.String())); err != nil {
		t.Fatal(err)
	}
	c.stdin.Close()
	if err := c.wait(t, 20*time.Second); err != nil {
		t.Fatalf("exit: %v", err)
	}
	seqs := seqPoints(t, srv, "pipe")
	if len(seqs) != 300 || gapless(seqs) != -1 {
		t.Fatalf("stored %d points (first gap at %d), want seq 0..299", len(seqs), gapless(seqs))
	}
	out := c.stderr.String()
	// The first ones are logged by number, the rest summed up at the end
	// (the log is limited to a burst a minute).
	logged := min(len(badLines), lines.MalformedLogBurst)
	for _, n := range badLines[:logged] {
		if !strings.Contains(out, fmt.Sprintf("line=%d ", n)) {
			t.Errorf("malformed line %d not logged", n)
		}
	}
	if got := strings.Count(out, "dropped a malformed line"); got != logged {
		t.Errorf("logged %d malformed lines, want %d", got, logged)
	}
	if rest := len(badLines) - logged; rest > 0 && !strings.Contains(out, fmt.Sprintf("dropped more malformed lines without logging each\" input=stdin lines=%d ", rest)) {
		t.Errorf("no summary of the %d malformed lines not logged:\n%s", rest, out)
	}
	execdtest.NoSecrets(t, map[string]string{"binary": out}, auth.Token)
}

// TestE2EKill9WithSpool kills the binary while the server refuses writes;
// restarted on the same spool, it delivers everything it had read.
func TestE2EKill9WithSpool(t *testing.T) {
	bin := execdBinary(t)
	srv := influxv2.NewTest(t, influxv2.Options{})
	auth := srv.WriteAuthorization("acme", "telemetry")
	dir := t.TempDir()
	spoolDir := filepath.Join(dir, "spool")
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(auth.Token), 0o600)
	conf := execdtest.WriteConfig(t, dir, srv.URL(), tokenFile, "acme", "telemetry", "")
	args := []string{"-config", conf, "-batch-size", "20", "-flush-interval", "100ms", "-stats-interval", "0", "-spool-dir", spoolDir}

	// The token is refused (inactive: 401) while the lines arrive.
	if err := srv.SetActive(auth.ID, false); err != nil {
		t.Fatal(err)
	}
	c := startChild(t, bin, args...)
	const n = 500
	var in strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&in, "spool,run=kill9 seq=%di %d\n", i, 1_700_000_000_000_000_000+int64(i))
	}
	if _, err := c.stdin.Write([]byte(in.String())); err != nil {
		t.Fatal(err)
	}
	// Everything is read (hence fsynced in the spool) once the spool
	// holds n lines.
	wait.For(t, 20*time.Second, "all lines in the spool", func() bool { return spooledLines(spoolDir) == n })
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-c.done
	if len(seqPoints(t, srv, "spool")) != 0 {
		t.Fatal("points were stored while the token was inactive")
	}

	// The server is back; a new process replays the spool.
	if err := srv.SetActive(auth.ID, true); err != nil {
		t.Fatal(err)
	}
	c2 := startChild(t, bin, args...)
	wait.For(t, 30*time.Second, "every point stored", func() bool { return len(seqPoints(t, srv, "spool")) == n })
	c2.stdin.Close()
	if err := c2.wait(t, 20*time.Second); err != nil {
		t.Fatalf("exit: %v", err)
	}
	if seqs := seqPoints(t, srv, "spool"); gapless(seqs) != -1 || len(seqs) != n {
		t.Fatalf("after replay: %d points, first gap %d", len(seqs), gapless(seqs))
	}
	if spooledLines(spoolDir) != 0 {
		t.Fatalf("spool still holds %d lines after everything was written", spooledLines(spoolDir))
	}
	execdtest.NoSecrets(t, map[string]string{"first run": c.stderr.String(), "second run": c2.stderr.String()}, auth.Token)
	t.Logf("first run:\n%s\nsecond run:\n%s", c.stderr, c2.stderr)
}

// spooledLines counts the intact lines in a spool directory.
func spooledLines(dir string) int {
	recs, err := execdtest.SpooledRecords(dir)
	if err != nil {
		return -1
	}
	n := 0
	for _, r := range recs {
		n += bytes.Count(r, []byte("\n"))
	}
	return n
}

// TestE2ESignals sends real signals: SIGHUP re-reads the token source and
// keeps running; SIGTERM while the server hangs flushes for the shutdown
// deadline only, then exits 0 and counts what it could not send.
func TestE2ESignals(t *testing.T) {
	bin := execdBinary(t)
	srv := influxv2.NewTest(t, influxv2.Options{})
	auth := srv.WriteAuthorization("acme", "telemetry")
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(auth.Token), 0o600)
	conf := execdtest.WriteConfig(t, dir, srv.URL(), tokenFile, "acme", "telemetry", "")
	c := startChild(t, bin, "-config", conf, "-batch-size", "10", "-flush-interval", "100ms",
		"-stats-interval", "0", "-shutdown-timeout", "1s")
	wait.For(t, 20*time.Second, "started", func() bool { return strings.Contains(c.stderr.String(), "msg=started") })

	if err := c.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "the reload", func() bool { return strings.Contains(c.stderr.String(), "SIGHUP") })

	// Every write now hangs far longer than the shutdown deadline.
	for i := 0; i < 50; i++ {
		srv.Inject(influxv2.Fault{Delay: time.Minute})
	}
	for i := 0; i < 30; i++ {
		fmt.Fprintf(c.stdin, "sig,run=term seq=%di %d\n", i, 1_700_000_000_000_000_000+int64(i))
	}
	wait.For(t, 10*time.Second, "a write in flight", func() bool { return srv.PendingFaults() < 50 })
	begin := time.Now()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := c.wait(t, 10*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if d := time.Since(begin); d > 3*time.Second {
		t.Fatalf("SIGTERM to exit took %s with -shutdown-timeout 1s", d)
	}
	out := c.stderr.String()
	if !strings.Contains(out, "unsent metrics are lost") || !strings.Contains(out, "metrics=30") {
		t.Fatalf("the lost count is not logged:\n%s", out)
	}
	execdtest.NoSecrets(t, map[string]string{"binary": out}, auth.Token)
}
