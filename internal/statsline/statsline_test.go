package statsline

import (
	"strings"
	"testing"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
)

var at = time.UnixMilli(1_700_000_000_123)

func TestEncode(t *testing.T) {
	got, err := Encode("token_rotation",
		map[string]string{"credential": "a b", "backend": "influxdb2", "empty": ""},
		map[string]any{"rotation_latency_ms": int64(12), "revocation_attempts": 2, "outcome": "ok"},
		at, lineprotocol.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	want := `token_rotation,backend=influxdb2,credential=a\ b outcome="ok",revocation_attempts=2i,rotation_latency_ms=12i 1700000000123` + "\n"
	if string(got) != want {
		t.Fatalf("Encode =\n%q, want\n%q", got, want)
	}
}

// TestEncodeTagValuesRoundTrip: what a writer may put in a tag (a
// credential named by an operator, a host name) comes back out of
// InfluxDB's own decoder unchanged.
func TestEncodeTagValuesRoundTrip(t *testing.T) {
	for _, v := range []string{`back\slash`, `a\\b`, "with space", "com,ma", "eq=ual", `all\ of, =them`, `"quoted"`} {
		line, err := Encode("m", map[string]string{"t": v}, map[string]int64{"f": 1}, at, lineprotocol.Nanosecond)
		if err != nil {
			t.Fatalf("tag %q: %v", v, err)
		}
		dec := lineprotocol.NewDecoderWithBytes(line)
		if !dec.Next() {
			t.Fatalf("tag %q: no line in %q", v, line)
		}
		if _, err := dec.Measurement(); err != nil {
			t.Fatalf("tag %q: %q: %v", v, line, err)
		}
		key, val, err := dec.NextTag()
		if err != nil || string(key) != "t" || string(val) != v {
			t.Fatalf("tag %q: decoded %s=%q (%v) from %q", v, key, val, err, line)
		}
	}
}

// TestEncodeRefusesWhatLineProtocolCannotCarry: a newline would end the
// line early and smuggle a second point in; a trailing backslash would
// escape the separator. Both are errors, never a half line.
func TestEncodeRefusesWhatLineProtocolCannotCarry(t *testing.T) {
	for _, v := range []string{"new\nline", `trailing\`, "cr\rhere"} {
		line, err := Encode("m", map[string]string{"t": v}, map[string]int64{"f": 1}, at, lineprotocol.Nanosecond)
		if err == nil || line != nil {
			t.Errorf("tag %q: Encode = %q, %v; want an error and no line", v, line, err)
		}
	}
	if _, err := Encode("m", nil, map[string]any{"f": struct{}{}}, at, lineprotocol.Nanosecond); err == nil || !strings.Contains(err.Error(), "field f") {
		t.Errorf("unsupported field type: %v, want an error naming field f", err)
	}
}
