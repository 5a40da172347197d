package lines

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/influxrotate/influxrotate/internal/lineproto"
	"github.com/influxrotate/influxrotate/testutil/capture"
)

// readAll runs a Reader to the end and returns the lines to send with
// their buckets, and the raw lines a spool would keep.
func readAll(t testing.TB, r io.Reader, opts Options) (out, raw []string, h *Handler, logs string) {
	t.Helper()
	var lb capture.Buffer
	h = NewHandler(opts, testLogger(&lb))
	lr := NewReader(r, h)
	for i := 0; i < 1_000_000; i++ {
		blk := &Block{}
		err := lr.Next(blk)
		for _, l := range blk.Lines {
			out = append(out, l.Bucket+"|"+string(blk.Out[l.Off:l.End]))
		}
		if blk.Count() > 0 {
			raw = append(raw, string(blk.Raw))
		}
		if errors.Is(err, io.EOF) {
			return out, raw, h, lb.String()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("reader did not end")
	return
}

func TestLinesMalformedNeverCostGoodOnes(t *testing.T) {
	input := strings.Join([]string{
		"cpu,host=a usage=1 1700000000000000000",
		"this is not line protocol",
		"",
		"# a comment",
		"cpu,host=b usage=2 1700000000000000001",
		"cpu,host=c usage= 1",                    // empty field value
		"cpu,host=d",                             // no fields
		`cpu,host=e usage="unterminated 1`,       // open string
		"cpu,host=f usage=3 notatimestamp",       // bad timestamp
		"cpu,host=g usage=99999999999999999999i", // integer out of range
		"cpu,host=h usage=4 1700000000000000002",
		"cpu,host=x usage=0x1p-2 1", // hex float: InfluxDB refuses it
		"cpu,host=i usage=5 1700000000000000003\r",
	}, "\n")
	out, _, h, logs := readAll(t, strings.NewReader(input), Options{DefaultBucket: "b"})
	want := []string{
		"b|cpu,host=a usage=1 1700000000000000000\n",
		"b|cpu,host=b usage=2 1700000000000000001\n",
		"b|cpu,host=h usage=4 1700000000000000002\n",
		"b|cpu,host=i usage=5 1700000000000000003\n",
	}
	if strings.Join(out, "") != strings.Join(want, "") {
		t.Fatalf("good lines:\n got %q\nwant %q", out, want)
	}
	if got := h.malformed.Load(); got != 7 {
		t.Errorf("malformed = %d, want 7; logs:\n%s", got, logs)
	}
	for _, n := range []string{"line=2", "line=6", "line=7", "line=8", "line=9", "line=10", "line=12"} {
		if !strings.Contains(logs, n+" ") {
			t.Errorf("log does not name %s:\n%s", n, logs)
		}
	}
	if h.rewritten.Load() != 0 {
		t.Errorf("rewrote %d lines; none needed it", h.rewritten.Load())
	}
}

func TestLinesOptions(t *testing.T) {
	const line = "cpu,host=a,bucket=x u=18446744073709551615u,i=1i 1700000000000000000\n"
	cases := []struct {
		name string
		opts Options
		want string
	}{
		{"untouched with uint support", Options{Options: lineproto.Options{UintSupport: true}, DefaultBucket: "b"}, "b|" + line},
		{"bucket tag routes", Options{Options: lineproto.Options{UintSupport: true, BucketTag: "bucket"}, DefaultBucket: "b"}, "x|" + line},
		{"exclude bucket tag", Options{Options: lineproto.Options{UintSupport: true, BucketTag: "bucket", ExcludeBucketTag: true}, DefaultBucket: "b"},
			"x|cpu,host=a u=18446744073709551615u,i=1i 1700000000000000000\n"},
		{"missing bucket tag uses the default", Options{Options: lineproto.Options{UintSupport: true, BucketTag: "db"}, DefaultBucket: "b"}, "b|" + line},
		{"uint becomes a saturated int", Options{DefaultBucket: "b"},
			"b|cpu,host=a,bucket=x u=9223372036854775807i,i=1i 1700000000000000000\n"},
		{"omit timestamp", Options{Options: lineproto.Options{UintSupport: true, OmitTimestamp: true}, DefaultBucket: "b"},
			"b|cpu,host=a,bucket=x u=18446744073709551615u,i=1i\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, raw, _, _ := readAll(t, strings.NewReader(line), c.opts)
			if len(out) != 1 || out[0] != c.want {
				t.Fatalf("got %q, want %q", out, c.want)
			}
			if len(raw) != 1 || raw[0] != line {
				t.Fatalf("the spool must keep the line as read: %q", raw)
			}
		})
	}
}

func TestLinesMixedRewriteKeepsOffsets(t *testing.T) {
	input := "a v=1i 1\nb v=2u 2\nc v=3i 3\n"
	out, _, _, _ := readAll(t, strings.NewReader(input), Options{DefaultBucket: "b"})
	want := []string{"b|a v=1i 1\n", "b|b v=2i 2\n", "b|c v=3i 3\n"}
	if strings.Join(out, ",") != strings.Join(want, ",") {
		t.Fatalf("got %q, want %q", out, want)
	}
}

func TestLinesTooLong(t *testing.T) {
	long := "m v=\"" + strings.Repeat("x", 300) + "\" 1"
	input := "m v=1 1\n" + long + "\nm v=2 2\n" + long // the last one without newline
	for _, r := range []io.Reader{strings.NewReader(input), iotest.OneByteReader(strings.NewReader(input))} {
		out, _, h, logs := readAll(t, r, Options{DefaultBucket: "b", MaxLineBytes: 100})
		if len(out) != 2 || out[0] != "b|m v=1 1\n" || out[1] != "b|m v=2 2\n" {
			t.Fatalf("got %q", out)
		}
		if h.malformed.Load() != 2 {
			t.Fatalf("malformed = %d, want 2:\n%s", h.malformed.Load(), logs)
		}
		if !strings.Contains(logs, "line=2 ") || !strings.Contains(logs, "line=4 ") {
			t.Fatalf("line numbers missing:\n%s", logs)
		}
	}
}

func TestLinesLastLineWithoutNewline(t *testing.T) {
	out, _, _, _ := readAll(t, iotest.HalfReader(strings.NewReader("m v=1 1\nm v=2 2")), Options{DefaultBucket: "b"})
	if len(out) != 2 || out[1] != "b|m v=2 2\n" {
		t.Fatalf("got %q", out)
	}
}

// FuzzLineReader checks that whatever arrives on stdin, every line passed on
// is valid line protocol that decodes to the same entry, that valid and
// malformed lines never add up to more than the lines read, and that the
// way the input is cut into reads changes nothing.
func FuzzLineReader(f *testing.F) {
	f.Add([]byte("cpu,host=a usage=1 1\nbad line\ncpu usage=2u\n"), false, false)
	f.Add([]byte("m,bucket=x v=\"a\\\"b\" 1\r\n# c\n\n m v=1"), true, true)
	f.Add([]byte("m v=1 1\nm\nm v=1 99999999999999999999\n"), false, true)
	f.Fuzz(func(t *testing.T, data []byte, exclude, omit bool) {
		opts := Options{Options: lineproto.Options{BucketTag: "bucket", ExcludeBucketTag: exclude, OmitTimestamp: omit}, DefaultBucket: "b", MaxLineBytes: 64}
		whole, raw, h, _ := readAll(t, bytes.NewReader(data), opts)
		bytewise, _, _, _ := readAll(t, iotest.OneByteReader(bytes.NewReader(data)), opts)
		if strings.Join(whole, "") != strings.Join(bytewise, "") {
			t.Fatalf("read size changes the result:\n%q\n%q", whole, bytewise)
		}
		lines := bytes.Count(data, []byte{'\n'}) + 1
		if int64(len(whole))+h.malformed.Load() > int64(lines) {
			t.Fatalf("%d valid + %d malformed > %d lines", len(whole), h.malformed.Load(), lines)
		}
		for _, o := range whole {
			_, line, _ := strings.Cut(o, "|")
			if !strings.HasSuffix(line, "\n") || strings.Count(line, "\n") != 1 {
				t.Fatalf("not one line: %q", line)
			}
			dec := lineprotocol.NewDecoderWithBytes([]byte(line))
			if !dec.Next() {
				t.Fatalf("no entry in %q", line)
			}
			if _, err := dec.Measurement(); err != nil {
				t.Fatalf("passed on an invalid line %q: %v", line, err)
			}
			for {
				k, _, err := dec.NextTag()
				if err != nil {
					t.Fatalf("passed on an invalid line %q: %v", line, err)
				}
				if k == nil {
					break
				}
				if exclude && string(k) == "bucket" {
					t.Fatalf("bucket tag kept in %q", line)
				}
			}
			for {
				k, _, err := dec.NextField()
				if err != nil {
					t.Fatalf("passed on an invalid line %q: %v", line, err)
				}
				if k == nil {
					break
				}
			}
			ts, err := dec.TimeBytes()
			if err != nil {
				t.Fatalf("passed on an invalid line %q: %v", line, err)
			}
			if omit && ts != nil {
				t.Fatalf("timestamp kept in %q", line)
			}
		}
		// What the spool keeps is read back to the same lines.
		replayed, _, _, _ := readAll(t, strings.NewReader(strings.Join(raw, "")), opts)
		if strings.Join(whole, "") != strings.Join(replayed, "") {
			t.Fatalf("replaying the spooled lines differs:\n%q\n%q", whole, replayed)
		}
	})
}

// clockStep is a reader that moves a test clock on by d when the stream
// reaches it, and then yields nothing.
type clockStep struct {
	clock *time.Time
	d     time.Duration
}

func (c clockStep) Read([]byte) (int, error) {
	*c.clock = c.clock.Add(c.d)
	return 0, io.EOF
}

// TestMalformedLinesLogIsRateLimited: 10 MB of garbage on stdin gave
// 40,000 error lines. Now each minute logs the first few, then one summary
// with the number not logged; every line is still counted.
func TestMalformedLinesLogIsRateLimited(t *testing.T) {
	var lb capture.Buffer
	h := NewHandler(Options{DefaultBucket: "b"}, testLogger(&lb))
	clock := time.Unix(1_700_000_000, 0)
	h.now = func() time.Time { return clock }
	garbage := bytes.Repeat([]byte(strings.Repeat("\x01garbage ", 28)+"\n"), 20_000) // 5 MB
	input := io.MultiReader(bytes.NewReader(garbage), clockStep{&clock, malformedLogWindow},
		bytes.NewReader(garbage), strings.NewReader("cpu v=1 1\n"))
	lr := NewReader(input, h)
	kept := 0
	for i := 0; ; i++ {
		if i > 1_000_000 {
			t.Fatal("reader did not end")
		}
		blk := &Block{}
		err := lr.Next(blk)
		kept += blk.Count()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	logs := lb.String()
	const total = 40_000
	if kept != 1 || h.malformed.Load() != total {
		t.Fatalf("kept %d, malformed %d; want 1 and %d", kept, h.malformed.Load(), total)
	}
	if got := strings.Count(logs, "msg=\"dropped a malformed line\""); got != 2*MalformedLogBurst {
		t.Errorf("%d malformed lines logged one by one, want %d (a burst per window)", got, 2*MalformedLogBurst)
	}
	summary := fmt.Sprintf("msg=\"dropped more malformed lines without logging each\" lines=%d", total/2-MalformedLogBurst)
	if got := strings.Count(logs, summary); got != 2 {
		t.Errorf("%d summaries %q, want 2 (at the new window and at the end)\n%.2000s", got, summary, logs)
	}
	if got := h.suppressed.Load(); got != total-2*MalformedLogBurst {
		t.Errorf("suppressed %d, want %d", got, total-2*MalformedLogBurst)
	}
	if n := strings.Count(logs, "\n"); n > 2*MalformedLogBurst+6 {
		t.Errorf("%d log lines for 10 MB of garbage", n)
	}
}
