package lineproto

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/plugins/serializers/influx"
)

// The fast path must produce exactly what the line-protocol Encoder
// produces, and leave to it everything it cannot do.
func TestFastPathMatchesTheEncoder(t *testing.T) {
	ts := time.Unix(1_700_000_000, 123456789)
	cases := []telegraf.Metric{
		metric.New("cpu", map[string]string{"host": "a", "cpu": "cpu0"}, map[string]any{"v": 1.5, "n": int64(-3), "u": uint64(7), "ok": true, "s": `say "hi" \ there`}, ts),
		metric.New("my measurement,x", map[string]string{"k ey": "v,a=l ue"}, map[string]any{"f=x": 1.0}, ts),
		metric.New("m=1\"q", nil, map[string]any{"big": uint64(math.MaxUint64), "tiny": 1e-300, "neg": -0.0}, ts),
		metric.New("m", map[string]string{"empty": ""}, map[string]any{"nan": math.NaN(), "v": 2.0}, ts),
		metric.New("ünïcode", map[string]string{"k": "välue"}, map[string]any{"v": 1.0}, ts),
		metric.New("m", map[string]string{"k": `trailing\`}, map[string]any{"v": 1.0}, ts),
		metric.New("m", map[string]string{"k": "new\nline"}, map[string]any{"v": 1.0}, ts),
		metric.New("m", nil, map[string]any{"v": 1.0}, time.Unix(0, 0)),
		metric.New("strings", nil, map[string]any{"plain": "ok", "utf8": "grüße", "empty": ""}, ts),
		metric.New("m", nil, map[string]any{"v": 1.0}, time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)),
	}
	compared := 0
	for _, uint := range []bool{false, true} {
		for _, omit := range []bool{false, true} {
			s := NewSerializer(Options{UintSupport: uint, OmitTimestamp: omit})
			for i, m := range cases {
				fast, ok := s.appendFast(nil, m, nil)
				st := encoderPool.Get().(*encoderState)
				st.enc.SetBuffer(nil)
				err := s.encode(&st.enc, m)
				slow := string(st.enc.Bytes())
				st.enc.SetBuffer(nil)
				encoderPool.Put(st)
				if !ok {
					continue // the Encoder decides; its errors are tested below
				}
				if err != nil {
					t.Fatalf("case %d (uint=%t omit=%t): fast path accepted what the Encoder rejects (%v): %q", i, uint, omit, err, fast)
				}
				if string(fast) != slow {
					t.Fatalf("case %d (uint=%t omit=%t):\nfast    %q\nencoder %q", i, uint, omit, fast, slow)
				}
				compared++
			}
		}
	}
	// Unicode names, the trailing backslash, the newline and the string
	// needing escapes go to the Encoder; the year 2300 too unless timestamps
	// are omitted; the other five cases take the fast path in all 4 modes.
	if compared != 5*4+2 {
		t.Fatalf("fast path taken %d times, want 22", compared)
	}
}

// The word-at-a-time scan of appendName must agree with the byte-by-byte
// classes for every byte value at every position of names of 1 to 24
// bytes (short names, one word, the overlapping last word, several words).
func TestAppendNameEveryByteEveryPosition(t *testing.T) {
	for _, classes := range []*byteClasses{measurementClasses, keyClasses} {
		for n := 1; n <= 24; n++ {
			for pos := range n {
				for b := range 256 {
					name := []byte(strings.Repeat("a", n))
					name[pos] = byte(b)
					got, ok := appendName([]byte("x"), string(name), classes)
					want, wantOK := appendEscaped([]byte("x"), string(name), classes)
					if ok != wantOK || (ok && string(got) != string(want)) {
						t.Fatalf("len %d, byte %#x at %d: got %q %t, want %q %t", n, b, pos, got, ok, want, wantOK)
					}
					if ok && classes.class[b] == byteDecline {
						t.Fatalf("len %d, byte %#x at %d accepted; it needs the Encoder", n, b, pos)
					}
				}
			}
		}
	}
}

// oddNames mixes plain letters with everything line protocol escapes,
// rejects or must pass through untouched.
var oddNames = []string{"a", "Z", "0", "_", "-", ".", " ", ",", "=", `"`, `\`, "'", "\n", "\r", "\t", "ü", "日本", "😀", "\x00", "\x7f", "\xff", "#", "a b", "k=v"}

func randomName(r *rand.Rand, min int) string {
	// A third of the names are plain, a third need escaping (the fast path
	// does that), a third may hold anything (mostly left to the Encoder).
	mode := r.IntN(3)
	var b strings.Builder
	n := min + r.IntN(14)
	for range n {
		switch {
		case mode == 1 && r.IntN(4) == 0:
			b.WriteByte(` ,="'#`[r.IntN(6)])
		case mode == 2 && r.IntN(4) == 0:
			b.WriteString(oddNames[r.IntN(len(oddNames))])
		default:
			b.WriteByte("abcdefghijklmnopqrstuvwxyz0123456789"[r.IntN(36)])
		}
	}
	return b.String()
}

func randomValue(r *rand.Rand) any {
	switch r.IntN(9) {
	case 0:
		return []float64{0, math.Copysign(0, -1), 1, -1.5, 1e21, 1e-7, 123456789.125, math.MaxFloat64, math.SmallestNonzeroFloat64, math.NaN(), math.Inf(1), 3.99}[r.IntN(12)]
	case 1:
		return r.NormFloat64() * math.Pow(10, float64(r.IntN(40)-20))
	case 2:
		return []int64{0, -1, math.MinInt64, math.MaxInt64, 42}[r.IntN(5)]
	case 3:
		return r.Int64() - r.Int64()
	case 4:
		return []uint64{0, 1, math.MaxInt64, math.MaxInt64 + 1, math.MaxUint64}[r.IntN(5)]
	case 5:
		return r.Uint64()
	case 6:
		return r.IntN(2) == 0
	case 7:
		return randomName(r, 0) // string field: quotes, backslashes, newlines, unicode
	}
	return "ok"
}

func randomMetric(r *rand.Rand) telegraf.Metric {
	tags := make(map[string]string)
	for range r.IntN(5) {
		v := randomName(r, 0) // sometimes empty: skipped by both paths
		tags[randomName(r, 1)] = v
	}
	fields := make(map[string]any)
	for range 1 + r.IntN(5) {
		fields[randomName(r, 0)] = randomValue(r)
	}
	ts := []time.Time{
		time.Unix(0, r.Int64N(math.MaxInt64)),
		time.Unix(0, r.Int64N(math.MaxInt64)),
		time.Unix(0, -r.Int64N(math.MaxInt64)),
		time.Unix(0, 0),
		time.Unix(0, math.MinInt64),
		time.Unix(0, math.MaxInt64),
		time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC),
	}[r.IntN(8)]
	return metric.New(randomName(r, 1), tags, fields, ts)
}

// compareWithEncoder fails when the fast path accepts m and produces
// anything but what the line-protocol Encoder produces for it, in every
// combination of influx_uint_support and omit_timestamp. It reports how
// many of the four the fast path took.
func compareWithEncoder(t *testing.T, m telegraf.Metric) int {
	t.Helper()
	taken := 0
	for _, uintSupport := range []bool{false, true} {
		for _, omit := range []bool{false, true} {
			s := NewSerializer(Options{UintSupport: uintSupport, OmitTimestamp: omit})
			fast, ok := s.appendFast(nil, m, nil)
			if !ok {
				continue
			}
			taken++
			var enc lineprotocol.Encoder
			if err := s.encode(&enc, m); err != nil {
				t.Fatalf("uint=%t omit=%t: fast path accepted what the Encoder rejects (%v): %q", uintSupport, omit, err, fast)
			}
			if string(fast) != string(enc.Bytes()) {
				t.Fatalf("uint=%t omit=%t:\nfast    %q\nencoder %q", uintSupport, omit, fast, enc.Bytes())
			}
		}
	}
	return taken
}

// Randomised comparison with odd names and values. The seed is fixed so a
// failure reproduces; the fast path must be taken often enough for the
// comparison to mean something, and declined for the names it cannot do.
func TestFastPathMatchesTheEncoderRandomised(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	taken, declined := 0, 0
	for range 20000 {
		n := compareWithEncoder(t, randomMetric(r))
		taken += n
		declined += 4 - n
	}
	t.Logf("fast path taken %d times, declined %d times", taken, declined)
	if taken < 10000 || declined < 10000 {
		t.Fatalf("fast path taken %d times and declined %d times out of 80000: the generator no longer exercises both", taken, declined)
	}
}

// FuzzFastPathMatchesTheEncoder lets the fuzzer pick names, a string field
// and numbers; the seeds run with every go test.
func FuzzFastPathMatchesTheEncoder(f *testing.F) {
	f.Add("cpu", "host", "a b,c=d", "usage", 1.5, int64(-3), uint64(math.MaxUint64), `say "hi" \ there`, int64(1_700_000_000_123456789))
	f.Add("m,x y", "k=", `v\`, "f=x", math.Copysign(0, -1), int64(math.MinInt64), uint64(7), "new\nline", int64(0))
	f.Add("ünï", "日本", "😀", "\t", 1e21, int64(0), uint64(math.MaxInt64+1), "", int64(-1))
	f.Fuzz(func(t *testing.T, name, tagKey, tagValue, fieldKey string, fv float64, iv int64, uv uint64, sv string, ts int64) {
		m := metric.New(name, map[string]string{tagKey: tagValue}, map[string]any{
			fieldKey: fv, fieldKey + "_i": iv, fieldKey + "_u": uv, fieldKey + "_s": sv, fieldKey + "_b": iv%2 == 0,
		}, time.Unix(0, ts))
		compareWithEncoder(t, m)
	})
}

// appendFloat's integer shortcut must print exactly what strconv prints:
// every value of up to three decimals around the edges of the shortcut
// (1e-3, 1e6, powers of ten), random few-decimal values and random floats.
func TestAppendFloatMatchesStrconv(t *testing.T) {
	check := func(v float64) {
		for _, x := range []float64{v, -v, math.Nextafter(v, 0), math.Nextafter(v, math.Inf(1))} {
			got := string(appendFloat(nil, x))
			want := strconv.FormatFloat(x, 'g', -1, 64)
			if got != want {
				t.Fatalf("appendFloat(%v) = %q, strconv %q", x, got, want)
			}
		}
	}
	for n := range 200_000 {
		check(float64(n) / 1000) // 0 to 200 in steps of 0.001
	}
	for _, base := range []float64{1e-4, 1e-3, 1e-2, 0.1, 1, 10, 1e3, 1e5, 999_999, 1e6, 1e7} {
		for d := -2000; d <= 2000; d++ {
			check(base + float64(d)/1000)
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 200_000 {
		k := []float64{1, 10, 100, 1000, 10000}[r.IntN(5)]
		check(math.Round(r.Float64()*2e6) / k)
		check(r.NormFloat64() * math.Pow(10, float64(r.IntN(30)-10)))
		check(math.Float64frombits(r.Uint64()))
	}
}

// The stock plugin serialises with Telegraf's influx serializer, which
// prints floats with 'f' where the line-protocol Encoder (and so the fast
// path) uses 'g' (1e+21 against 1000000000000000000000). Every line the fast
// path writes must be the serializer's line byte for byte, or, for those
// floats, decode to the same measurement, tags, fields and time.
func TestFastPathAgreesWithTelegrafsSerializer(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	identical, equivalent := 0, 0
	for range 20000 {
		m := randomMetric(r)
		for _, uintSupport := range []bool{false, true} {
			for _, omit := range []bool{false, true} {
				s := NewSerializer(Options{UintSupport: uintSupport, OmitTimestamp: omit})
				fast, ok := s.appendFast(nil, m, nil)
				if !ok {
					continue
				}
				tel := &influx.Serializer{UintSupport: uintSupport, OmitTimestamp: omit}
				if err := tel.Init(); err != nil {
					t.Fatal(err)
				}
				want, err := tel.Serialize(m)
				if err != nil {
					t.Fatalf("the fast path wrote %q; Telegraf's serializer refuses it: %v", fast, err)
				}
				if string(fast) == string(want) {
					identical++
					continue
				}
				if a, b := decodeLine(t, fast), decodeLine(t, want); a != b {
					t.Fatalf("uint=%t omit=%t:\nfast       %q\nserializer %q\ndecoded    %s\n       and %s", uintSupport, omit, fast, want, a, b)
				}
				equivalent++
			}
		}
	}
	t.Logf("%d lines identical to Telegraf's serializer, %d equivalent (float notation)", identical, equivalent)
	if identical < 10000 || equivalent == 0 {
		t.Fatalf("identical %d, equivalent %d: the generator no longer exercises both", identical, equivalent)
	}
}

// decodeLine renders one line of line protocol as decoded values.
func decodeLine(t *testing.T, line []byte) string {
	t.Helper()
	dec := lineprotocol.NewDecoderWithBytes(line)
	var b strings.Builder
	for dec.Next() {
		name, err := dec.Measurement()
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		fmt.Fprintf(&b, "%q", name)
		for {
			k, v, err := dec.NextTag()
			if err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			if k == nil {
				break
			}
			fmt.Fprintf(&b, " tag %q=%q", k, v)
		}
		for {
			k, v, err := dec.NextField()
			if err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			if k == nil {
				break
			}
			fmt.Fprintf(&b, " field %q=%v(%v)", k, v.Kind(), v.Interface())
		}
		ts, err := dec.Time(lineprotocol.Nanosecond, time.Time{})
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		fmt.Fprintf(&b, " time %d", ts.UnixNano())
	}
	return b.String()
}

// One tsCache reused across a sequence of timestamps, as in a batch, must
// print what strconv prints: equal timestamps, neighbours within and across
// a second, jumps back, and the edges (negative, 0, 1e9±1, the maximum).
func TestAppendTimestampMatchesStrconv(t *testing.T) {
	var c TimeCache
	check := func(ns int64) {
		t.Helper()
		if got, want := string(c.appendTimestamp([]byte("x"), ns)), "x"+strconv.FormatInt(ns, 10); got != want {
			t.Fatalf("appendTimestamp(%d) = %q, want %q", ns, got, want)
		}
	}
	for _, ns := range []int64{math.MinInt64, -1e9, -1, 0, 1, 999_999_999, 1e9, 1e9 + 1, 1e9 - 1, 1e9, 2e9 - 1, 2e9, math.MaxInt64, math.MaxInt64 - 1e9, 1e18, 1e18 + 999_999_999} {
		check(ns)
	}
	r := rand.New(rand.NewPCG(7, 8))
	ns := int64(1_700_000_000_000_000_000)
	for range 200_000 {
		switch r.IntN(5) {
		case 0: // same timestamp, as in one gather
		case 1:
			ns += r.Int64N(1_000_000) // within the second, mostly
		case 2:
			ns += r.Int64N(3e9) // across seconds
		case 3:
			ns -= r.Int64N(3e9) // back
		case 4:
			ns = r.Int64N(math.MaxInt64)
		}
		check(ns)
	}
}
