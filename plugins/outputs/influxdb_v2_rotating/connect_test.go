package influxdb_v2_rotating

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// A Connect that fails after it built its writers and started watching the
// token file must release both: no goroutine of the source or the Rotator
// is left running and no writer stays behind. Run again, it fails the same
// way rather than tripping over the first attempt's leftovers.
func TestConnectFailingPartWayLeavesNothingRunning(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("a-token-for-the-connect-test"), 0o600); err != nil {
		t.Fatal(err)
	}
	notADir := filepath.Join(dir, "file")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	p := New()
	p.URLs = []string{"http://127.0.0.1:1", "http://127.0.0.1:2"}
	p.Bucket = "b"
	p.TokenFile = tokenFile
	p.AdoptionReport = new(bool)
	// The audit log is opened after the writers and the token source.
	p.AuditLog = filepath.Join(notADir, "audit.log")
	if err := p.Init(); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; attempt <= 2; attempt++ {
		err := p.Connect()
		if err == nil || !strings.Contains(err.Error(), "audit_log") {
			t.Fatalf("attempt %d: Connect = %v, want the audit_log error", attempt, err)
		}
		if len(p.writers) != 0 {
			t.Fatalf("attempt %d: %d writers left after a failed Connect", attempt, len(p.writers))
		}
		if p.rotator != nil {
			t.Fatalf("attempt %d: a Rotator is left after a failed Connect", attempt)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close after failed Connects: %v", err)
	}
}
