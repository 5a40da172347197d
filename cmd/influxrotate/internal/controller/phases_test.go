package controller

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/influxrotate/influxrotate/rotation"
)

// TestEveryPhaseIsAuditedAndHooked holds the loop to its promise:
// whatever a phase's method does, each phase of the cycle gets its "before"
// and "after" hooks and exactly one "ok" audit record, in the cycle's order
// — including the waits, which record nothing themselves.
func TestEveryPhaseIsAuditedAndHooked(t *testing.T) {
	e := newEnv(t, envOptions{})
	var points []string
	c := e.controller(func(p string) { points = append(points, p) })
	if res := e.rotate(c, true); res.Outcome != OutcomeOK {
		t.Fatalf("rotation: %+v", res)
	}

	var wantRecords, wantHooks []string
	for _, s := range c.phases {
		wantRecords = append(wantRecords, string(s.phase))
		wantHooks = append(wantHooks, string(s.phase)+":before", string(s.phase)+":after")
	}
	var hooks []string
	for _, p := range points {
		if slices.Contains(wantHooks, p) {
			hooks = append(hooks, p)
		}
	}
	if !slices.Equal(hooks, wantHooks) {
		t.Errorf("phase hooks\n got %v\nwant %v", hooks, wantHooks)
	}

	f, err := os.Open(filepath.Join(e.dir, "audit", "audit.jsonl"))
	must(t, err)
	defer f.Close()
	var completed []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec rotation.AuditRecord
		must(t, json.Unmarshal(sc.Bytes(), &rec))
		if rec.Outcome == OutcomeOK && slices.Contains(wantRecords, rec.Event) {
			completed = append(completed, rec.Event)
		}
	}
	must(t, sc.Err())
	if !slices.Equal(completed, wantRecords) {
		t.Errorf("phase records\n got %v\nwant %v", completed, wantRecords)
	}
}
