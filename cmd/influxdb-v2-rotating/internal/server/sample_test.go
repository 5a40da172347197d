package server

import (
	"os"
	"regexp"
	"slices"
	"testing"
)

var optionRe = regexp.MustCompile(`(?m)^\s*#?\s*([a-z_]+)\s*=`)

func options(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range optionRe.FindAllStringSubmatch(string(data), -1) {
		if !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	slices.Sort(out)
	return out
}

// TestSampleConf keeps the repository's sample.conf (the execd binary's
// config file) loadable and in step with the plugin's own options.
func TestSampleConf(t *testing.T) {
	p, err := LoadPlugin("../../../../sample.conf")
	if err != nil {
		t.Fatalf("sample.conf does not load: %v", err)
	}
	if p.TokenFile == "" {
		t.Fatal("sample.conf sets no token_file")
	}
	ours := options(t, "../../../../sample.conf")
	// The header documents outputs.execd's options too.
	ours = slices.DeleteFunc(ours, func(s string) bool { return s == "command" || s == "data_format" })
	plugin := options(t, "../../../../plugins/outputs/influxdb_v2_rotating/sample.conf")
	if !slices.Equal(ours, plugin) {
		t.Fatalf("sample.conf options differ from the plugin's:\n ours   %v\n plugin %v", ours, plugin)
	}
}
