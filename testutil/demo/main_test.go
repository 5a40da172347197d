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

// TestE2EDemo runs a short demo: it must rotate, lose nothing and say so.
func TestE2EDemo(t *testing.T) {
	tg := realtools.Binary(t, "telegraf")
	execd := filepath.Join(t.TempDir(), "influxdb-v2-rotating")
	if out, err := exec.Command("go", "build", "-o", execd, "../../cmd/influxdb-v2-rotating").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, options{duration: 7 * time.Second, rotateEvery: 2 * time.Second, interval: 50 * time.Millisecond,
		telegraf: tg, execd: execd}, &out)
	if err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	for _, want := range []string{"rotation  1  sha256:", "old token revoked", "points lost     0", "tokens in logs  0", "no point lost"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}
