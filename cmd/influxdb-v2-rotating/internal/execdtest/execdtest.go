// Package execdtest holds the fixtures the execd binary's tests and
// benchmarks share.
package execdtest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Realistic is 10,000 realistic lines (4 tags, 5 fields of mixed types),
// each ending in a newline.
func Realistic() []byte {
	var b bytes.Buffer
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	for i := range 10000 {
		fmt.Fprintf(&b, "system,env=production,host=web-%d.eu-west-1.example.com,rack=r%d,region=eu-west-1 healthy=%t,load1=%g,processes=%di,status=\"ok\",uptime=%di %d\n",
			i%50, i%12, i%13 != 0, float64(i%400)/100, 200+i%97, 1_000_000+i, base+int64(i)*int64(time.Millisecond))
	}
	return b.Bytes()
}

// WriteConfig writes the plugin's config file for a test server into dir
// and returns its path; extra is appended inside the block.
func WriteConfig(t testing.TB, dir, url, tokenFile, org, bucket, extra string) string {
	t.Helper()
	p := filepath.Join(dir, "influxdb_v2_rotating.conf")
	conf := fmt.Sprintf(`[[outputs.influxdb_v2_rotating]]
  urls = [%q]
  token_file = %q
  organization = %q
  bucket = %q
  content_encoding = "identity"
  token_debounce = "20ms"
%s`, url, tokenFile, org, bucket, extra)
	if err := os.WriteFile(p, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// WriteFile writes content to a config file in a new temporary directory
// and returns its path.
func WriteFile(t testing.TB, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "influxdb_v2_rotating.conf")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Line is line protocol point i of a test series: measurement m, field v = i.
func Line(i int) string {
	return "m,host=a v=" + strconv.Itoa(i) + "i " + strconv.Itoa(1_700_000_000_000_000_000+i)
}

// NoSecrets fails t when one of the named outputs contains one of secrets.
func NoSecrets(t testing.TB, outputs map[string]string, secrets ...string) {
	t.Helper()
	for name, out := range outputs {
		for _, s := range secrets {
			if s != "" && strings.Contains(out, s) {
				t.Errorf("%s output contains a token", name)
			}
		}
	}
}
