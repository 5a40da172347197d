package cli

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeShowsTheUsage keeps the README's synopsis and -help in step:
// each line of usage is a line of cmd/influxrotate/README.md.
func TestReadmeShowsTheUsage(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(readme), "\n")
	synopsis := strings.Split(strings.TrimSpace(strings.TrimPrefix(usage, "usage:")), "\n")
	if len(synopsis) < 5 {
		t.Fatalf("usage has %d lines: %q", len(synopsis), usage)
	}
	for _, want := range synopsis {
		found := false
		for _, l := range lines {
			found = found || strings.TrimSpace(l) == strings.TrimSpace(want)
		}
		if !found {
			t.Errorf("README.md lacks the usage line %q", strings.TrimSpace(want))
		}
	}
}
