package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/influxrotate/influxrotate/testutil/realtools"
)

// TestE2EDemo runs a short demo: influxrotate must rotate behind the
// adoption gate, nothing may be lost, the audit chain must verify, and the
// demo must say so.
func TestE2EDemo(t *testing.T) {
	tg := realtools.Binary(t, "telegraf")
	execd := filepath.Join(t.TempDir(), "influxdb-v2-rotating")
	ctl := filepath.Join(filepath.Dir(execd), "influxrotate")
	for bin, pkg := range map[string]string{execd: "../../cmd/influxdb-v2-rotating", ctl: "../../cmd/influxrotate"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, options{duration: 7 * time.Second, rotateEvery: 2 * time.Second, interval: 50 * time.Millisecond,
		telegraf: tg, execd: execd, rotate: ctl}, &out)
	if err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	for _, want := range []string{"rotation  1  sha256:", "adopted by 1 writer(s)", "old token deactivated +", "deleted +",
		"points lost     0", "tokens in logs  0", "hash chain valid", "no point lost"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}
