package lines

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/influxrotate/influxrotate/cmd/influxdb-v2-rotating/internal/execdtest"
	"github.com/influxrotate/influxrotate/internal/lineproto"
)

// agree checks, for one candidate line, the two properties the fast check
// must keep: what it accepts the full decoder accepts with the same bucket
// and rewrite decision, and check (fast path, then decoder) accepts and
// refuses exactly what the decoder alone does. It returns how the line was
// decided.
func agree(t testing.TB, h *Handler, line []byte) (fast, valid bool) {
	t.Helper()
	// check's callers (handle) cut at newlines and trim one '\r'.
	line = bytes.TrimSuffix(line, []byte{'\r'})
	if bytes.IndexByte(line, '\n') >= 0 {
		return false, false
	}
	fb, frw, fok := h.fastCheck(line)
	db, drw, derr := h.decodeCheck(line)
	cb, crw, cerr := h.check(line)
	if errors.Is(cerr, errSkip) {
		if fok {
			t.Fatalf("fast check accepted a line check skips: %q", line)
		}
		return false, false
	}
	if fok && (derr != nil || fb != db || frw != drw) {
		t.Fatalf("fast check accepted %q (bucket %q rewrite %v); decoder: bucket %q rewrite %v err %v",
			line, fb, frw, db, drw, derr)
	}
	if (cerr == nil) != (derr == nil) || (cerr == nil && (cb != db || crw != drw)) {
		t.Fatalf("check and decoder disagree on %q: check %q %v %v, decoder %q %v %v",
			line, cb, crw, cerr, db, drw, derr)
	}
	return fok, derr == nil
}

func optsFrom(bits uint8) Options {
	return Options{
		Options: lineproto.Options{
			BucketTag:        "bucket",
			ExcludeBucketTag: bits&1 != 0,
			UintSupport:      bits&2 != 0,
			OmitTimestamp:    bits&4 != 0,
		},
		DefaultBucket: "b",
		MaxLineBytes:  1 << 20,
	}
}

// FuzzFastCheckAgreesWithDecoder is the differential test of the fast
// check against line-protocol/v2's decoder, line by line, under every
// combination of the options that decide rewriting.
func FuzzFastCheckAgreesWithDecoder(f *testing.F) {
	for _, l := range benchInput()[:4] {
		f.Add(l, uint8(0))
	}
	for _, s := range []string{
		"cpu,host=a,bucket=x u=18446744073709551615u,i=1i 1700000000000000000",
		"m v=1",
		"m v=\"a,b= c\" -5",
		"m v=0x1p-2,w=1e308,x=-.5,y=1.",
		"m,t=\xc3\xa9 v=t,w=FALSE",
		"m,t=\xff v=1",
		"m v=1  1",
		"m v=1 1 ",
		"m\tv=1",
		"m,a\\ b=c v=1",
		"m v=\"a\\\"b\"",
		"m v=\"a\rb\" 1",
		"m v=1\r2",
		"m v=9223372036854775808i",
		"m v=-9223372036854775808i 9223372036854775807",
		"m v=1 99999999999999999999",
		"m v=1 +1234567890123456789",
		"m v=+1234567890123456789i,w=+1u,x=-+1i",
		"m v=1 -0000000000000000000000001",
		"m=a,b=c d=1",
		"\"m\" \"k\"=1",
		"m,bucket=x,bucket=y v=1",
		"m v=1,",
		"m, v=1",
		"m v=NaN,w=inf",
	} {
		for bits := range uint8(8) {
			f.Add([]byte(s), bits)
		}
	}
	f.Fuzz(func(t *testing.T, line []byte, bits uint8) {
		h := NewHandler(optsFrom(bits), discard())
		agree(t, h, line)
		compareRewrites(t, h, line)
	})
}

// TestFastCheckRandomLines mutates Telegraf-shaped lines with the bytes
// that matter to line protocol, so that every run (not only a fuzzing one)
// compares the fast check with the decoder on many near-valid lines, and
// shows that all three outcomes occur: accepted by the fast check, accepted
// only by the decoder, refused.
func TestFastCheckRandomLines(t *testing.T) {
	seeds := benchInput()[:200]
	seeds = append(seeds,
		[]byte(`weather,location=us-midwest,bucket=x temperature=82i,ok=true,name="x y" 1465839830100400200`),
		[]byte(`disk,device=sda1,fstype=ext4 free=123u,used_percent=12.5e-1 1`),
	)
	const alphabet = ",= \"\\\r\t#-.0123456789iutTfFeE\xff\xc3\xa9xn"
	rng := rand.New(rand.NewPCG(7, 11))
	var fast, slowValid, invalid int
	for n := range 200_000 {
		line := bytes.Clone(seeds[rng.IntN(len(seeds))])
		for range 1 + rng.IntN(3) {
			if len(line) == 0 {
				break
			}
			pos := rng.IntN(len(line))
			c := alphabet[rng.IntN(len(alphabet))]
			switch rng.IntN(3) {
			case 0:
				line[pos] = c
			case 1:
				line = append(line[:pos], line[pos+1:]...)
			default:
				line = append(line[:pos], append([]byte{c}, line[pos:]...)...)
			}
		}
		h := NewHandler(optsFrom(uint8(n%8)), discard())
		f, v := agree(t, h, line)
		switch {
		case f:
			fast++
		case v:
			slowValid++
		default:
			invalid++
		}
	}
	t.Logf("fast-accepted %d, decoder-only accepted %d, refused %d", fast, slowValid, invalid)
	if fast == 0 || slowValid == 0 || invalid == 0 {
		t.Fatalf("the mutations did not reach every outcome: fast %d, decoder-only %d, refused %d", fast, slowValid, invalid)
	}
}

// TestFastCheckTakesTelegrafLines pins the speed-up: the lines Telegraf's
// serializer writes must not fall back to the full decoder, and their
// bucket and rewrite decisions must follow the options.
func TestFastCheckTakesTelegrafLines(t *testing.T) {
	lines := benchInput()
	// The execd benchmark's lines: bools, strings, floats, ints.
	lines = append(lines, bytes.Split(bytes.TrimSuffix(execdtest.Realistic(), []byte{'\n'}), []byte{'\n'})...)
	for _, l := range lines {
		h := NewHandler(optsFrom(2), discard())
		if _, rw, ok := h.fastCheck(l); !ok || rw {
			t.Fatalf("fast check: ok %v rewrite %v for %q", ok, rw, l)
		}
	}
	line := []byte("cpu,host=a,bucket=x u=18446744073709551615u,i=1i 1700000000000000000")
	for bits := range uint8(8) {
		h := NewHandler(optsFrom(bits), discard())
		b, rw, ok := h.fastCheck(line)
		wantRW := bits&1 != 0 || bits&2 == 0 || bits&4 != 0
		if !ok || b != "x" || rw != wantRW {
			t.Errorf("options %03b: bucket %q rewrite %v ok %v, want x %v true", bits, b, rw, ok, wantRW)
		}
	}
}

// TestFastCheckFallsBackForEscapes shows that valid lines outside the fast
// shape are still accepted (by the decoder) and malformed ones refused with
// the decoder's message.
func TestFastCheckFallsBackForEscapes(t *testing.T) {
	h := NewHandler(optsFrom(2), discard())
	for _, l := range []string{`m,a\ b=c v=1`, `m v="a\"b" 1`, `m v=1  1`, `m v=1 `} {
		if _, _, ok := h.fastCheck([]byte(l)); ok {
			t.Errorf("fast check took %q, which it should leave to the decoder", l)
		}
		if _, _, err := h.check([]byte(l)); err != nil {
			t.Errorf("valid line %q refused: %v", l, err)
		}
	}
	for _, l := range []string{`m v=1 1 1`, `m,t=a`, `m v=99999999999999999999i`} {
		_, _, err := h.check([]byte(l))
		_, _, derr := h.decodeCheck([]byte(l))
		if err == nil || derr == nil || err.Error() != derr.Error() {
			t.Errorf("%q: check error %v, decoder error %v", l, err, derr)
		}
	}
}

func BenchmarkFastCheck(b *testing.B) {
	lines := benchInput()
	h := NewHandler(optsFrom(2), discard())
	b.ReportAllocs()
	for b.Loop() {
		for _, l := range lines {
			if _, _, ok := h.fastCheck(l); !ok {
				b.Fatal(fmt.Sprintf("fell back: %q", l))
			}
		}
	}
}

// entry is a decoded line, for comparing two encodings of it.
func decodeEntry(t testing.TB, line []byte) string {
	t.Helper()
	dec := lineprotocol.NewDecoderWithBytes(line)
	if !dec.Next() {
		t.Fatalf("no entry in %q", line)
	}
	m, err := dec.Measurement()
	if err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	s := fmt.Sprintf("%q", m)
	for {
		k, v, err := dec.NextTag()
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if k == nil {
			break
		}
		s += fmt.Sprintf(" tag %q=%q", k, v)
	}
	for {
		k, v, err := dec.NextField()
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if k == nil {
			break
		}
		s += fmt.Sprintf(" field %q=%v:%#v", k, v.Kind(), v.Interface())
	}
	ts, err := dec.Time(lineprotocol.Nanosecond, time.Time{})
	if err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	if dec.Next() {
		t.Fatalf("%q holds more than one entry", line)
	}
	return s + fmt.Sprintf(" time %d", ts.UnixNano())
}

// TestRewriteFastDecodesLikeRewrite checks that editing a line's bytes
// (rewriteFast) yields what decoding and re-encoding it (rewrite) yields,
// as the decoder reads it, for random near-Telegraf lines and every option
// combination that rewrites.
func TestRewriteFastDecodesLikeRewrite(t *testing.T) {
	seeds := append(benchInput()[:100],
		[]byte(`m,bucket=x,host=a,bucket=y u=18446744073709551615u,v=9223372036854775807u,w=1u,s="a=b, c",b=T 17`),
		[]byte(`m,bucket=x v=1.50,w=1e3,x=-0.0,y=0x1p-2 -1`),
		[]byte(`"m",bucket=x "k"=1u`),
	)
	const alphabet = ",= \"-.0123456789iutTfFeExu"
	rng := rand.New(rand.NewPCG(3, 5))
	checked := 0
	for n := range 100_000 {
		line := bytes.Clone(seeds[rng.IntN(len(seeds))])
		for range rng.IntN(3) {
			pos := rng.IntN(len(line))
			line[pos] = alphabet[rng.IntN(len(alphabet))]
		}
		h := NewHandler(optsFrom(uint8(n%8)), discard())
		if compareRewrites(t, h, line) {
			checked++
		}
	}
	if checked < 10_000 {
		t.Fatalf("only %d lines were rewritten by both", checked)
	}
	t.Logf("%d rewritten lines compared", checked)
}

// compareRewrites reports whether line is one rewriteFast edits, and then
// checks that the result decodes like the full rewrite's.
func compareRewrites(t testing.TB, h *Handler, line []byte) bool {
	t.Helper()
	line = bytes.TrimSuffix(line, []byte{'\r'})
	if bytes.IndexByte(line, '\n') >= 0 {
		return false
	}
	_, rewrite, err := h.check(line)
	if err != nil || !rewrite || !h.lastFast {
		return false
	}
	fast := bytes.Clone(h.rewriteFast(line))
	full, err := h.rewrite(line)
	if err != nil {
		t.Fatalf("%q: the full rewrite refuses what the fast one writes (%q): %v", line, fast, err)
	}
	if got, want := decodeEntry(t, fast), decodeEntry(t, full); got != want {
		t.Fatalf("options %+v, %q:\nfast %q\n  = %s\nfull %q\n  = %s", h.opts, line, fast, got, full, want)
	}
	return true
}
