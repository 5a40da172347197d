// Package execdtest holds the fixtures the execd binary's tests and
// benchmarks share.
package execdtest

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
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

// spoolCommitPrefix starts the trailer line that closes each spool record
// (see package spool). Tests read the spool's documented on-disk format
// from outside, so the spool package exports nothing just for them.
const spoolCommitPrefix = "#influxrotate-spool-commit "

// SpoolSegments returns the paths of the segment files in a spool
// directory, oldest first, without opening (and so locking) the spool.
func SpoolSegments(dir string) ([]string, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.lp"))
	if err != nil {
		return nil, err
	}
	slices.Sort(paths) // names are zero-padded sequence numbers
	return paths, nil
}

// SpooledRecords returns the payloads of the intact records in a spool
// directory: those closed by a trailer whose length and CRC-32C match.
// Torn or corrupt records are left out, as a replay would skip them.
func SpooledRecords(dir string) ([][]byte, error) {
	paths, err := SpoolSegments(dir)
	if err != nil {
		return nil, err
	}
	castagnoli := crc32.MakeTable(crc32.Castagnoli)
	var recs [][]byte
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		start := 0 // where the current record's payload starts
		for off := 0; off < len(data); {
			end := bytes.IndexByte(data[off:], '\n')
			if end < 0 {
				break // torn tail
			}
			line := data[off : off+end]
			next := off + end + 1
			if rest, ok := bytes.CutPrefix(line, []byte(spoolCommitPrefix)); ok {
				payload := data[start:off]
				want := fmt.Sprintf("len=%d crc32c=%08x", len(payload), crc32.Checksum(payload, castagnoli))
				if string(rest) == want {
					recs = append(recs, payload)
				}
				start = next
			}
			off = next
		}
	}
	return recs, nil
}
