package influxdb_v2_rotating

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/influxdata/telegraf"
)

// batch is the metrics of one flush that go to one bucket in one request.
type batch struct {
	bucket  string
	metrics []telegraf.Metric
	indices []int // position of each metric in the flush, for the agent
}

// createBatches cuts metrics into batches of at most size for one bucket,
// as the stock plugin does when bucket_tag is unset.
func createBatches(metrics []telegraf.Metric, bucket string, size int) []*batch {
	if len(metrics) == 0 {
		return nil
	}
	size = max(size, 1)
	number := (len(metrics) + size - 1) / size
	batches := make([]*batch, 0, number)
	// One allocation for every batch's indices.
	all := make([]int, len(metrics))
	for i := range all {
		all[i] = i
	}
	for begin := 0; begin < len(metrics); begin += size {
		end := min(begin+size, len(metrics))
		batches = append(batches, &batch{bucket: bucket, metrics: metrics[begin:end], indices: all[begin:end]})
	}
	return batches
}

// createBatchesFromTag groups metrics by the value of tag (fallback when the
// tag is absent) and cuts each group into batches of at most size. The order
// of buckets follows their first appearance so that writes are reproducible.
// With exclude the tag is left out when serialising, without copying the
// metric as the stock plugin does.
func createBatchesFromTag(metrics []telegraf.Metric, tag, fallback string, size int) []*batch {
	size = max(size, 1)
	var order []string
	groups := make(map[string]*batch)
	for i, m := range metrics {
		bucket, ok := m.GetTag(tag)
		if !ok || bucket == "" {
			bucket = fallback
		}
		b, found := groups[bucket]
		if !found {
			b = &batch{bucket: bucket}
			groups[bucket] = b
			order = append(order, bucket)
		}
		b.metrics = append(b.metrics, m)
		b.indices = append(b.indices, i)
	}
	batches := make([]*batch, 0, len(groups))
	for _, name := range order {
		b := groups[name]
		for begin := 0; begin < len(b.metrics); begin += size {
			end := min(begin+size, len(b.metrics))
			batches = append(batches, &batch{bucket: b.bucket, metrics: b.metrics[begin:end], indices: b.indices[begin:end]})
		}
	}
	return batches
}

// chunk is serialised line protocol on its way to one bucket: a whole batch
// or, after a 413, part of one.
type chunk struct {
	bucket string
	body   []byte // newline-terminated lines, uncompressed
	// ends[i] is the offset just past line i in body; nil for raw input,
	// where lines are found by scanning for newlines.
	ends []int
	// indices[i] is the flush position of the metric on line i; nil for raw.
	indices []int
	count   int // number of lines
}

// split halves a chunk at a line boundary. It returns ok=false for a chunk
// of one line, which cannot be split.
func (c *chunk) split() (first, second *chunk, ok bool) {
	if c.count < 2 {
		return nil, nil, false
	}
	half := c.count / 2
	if c.ends != nil {
		cut := c.ends[half-1]
		ends2 := make([]int, len(c.ends)-half)
		for i, e := range c.ends[half:] {
			ends2[i] = e - cut
		}
		return &chunk{bucket: c.bucket, body: c.body[:cut], ends: c.ends[:half], indices: c.indices[:half], count: half},
			&chunk{bucket: c.bucket, body: c.body[cut:], ends: ends2, indices: c.indices[half:], count: c.count - half}, true
	}
	// Raw line protocol: cut after the half-th newline.
	cut, n := 0, 0
	for n < half {
		i := bytes.IndexByte(c.body[cut:], '\n')
		if i < 0 {
			break
		}
		cut += i + 1
		n++
	}
	if cut == 0 || cut >= len(c.body) {
		return nil, nil, false
	}
	return &chunk{bucket: c.bucket, body: c.body[:cut], count: n},
		&chunk{bucket: c.bucket, body: c.body[cut:], count: c.count - n}, true
}

// serializer turns metrics into line protocol with line-protocol/v2's
// Encoder writing into a reused buffer: no per-metric allocation, unlike the
// stock plugin's serialise-copy-append.
type serializer struct {
	uintSupport   bool
	omitTimestamp bool
	excludeTag    string // tag left out of every line (exclude_bucket_tag)
}

type encoderState struct {
	enc lineprotocol.Encoder
}

var encoderPool = sync.Pool{New: func() any { return new(encoderState) }}

var zeroTime time.Time

// errLimit marks the end of what the rate limit allows in this flush.
var errLimit = errors.New("rate limit reached")

// serialize appends b's metrics to buf. Metrics that cannot be encoded are
// reported in rejected (flush indices) with their errors. It stops before
// the metric that would take the body past limit bytes and then returns
// errLimit; the metrics not serialised are left for a later flush.
func (s *serializer) serialize(buf []byte, b *batch, limit int64) (c *chunk, rejected []int, rejectErrs []error, err error) {
	var st *encoderState // only for metrics the fast path declines
	defer func() {
		if st != nil {
			st.enc.SetBuffer(nil)
			encoderPool.Put(st)
		}
	}()
	var ts tsCache
	buf = buf[:0]
	c = &chunk{bucket: b.bucket, ends: make([]int, 0, len(b.metrics)), indices: make([]int, 0, len(b.metrics))}
	for i, m := range b.metrics {
		start := len(buf)
		var ok bool
		var merr error
		if buf, ok = s.appendFast(buf, m, &ts); !ok {
			if st == nil {
				st = encoderPool.Get().(*encoderState)
			}
			st.enc.SetBuffer(buf[:start])
			merr = s.encode(&st.enc, m)
			buf = st.enc.Bytes()
		}
		if merr != nil {
			buf = buf[:start]
			rejected = append(rejected, b.indices[i])
			rejectErrs = append(rejectErrs, fmt.Errorf("metric %q: %w", m.Name(), merr))
			continue
		}
		if int64(len(buf)) > limit {
			buf = buf[:start]
			err = errLimit
			break
		}
		c.ends = append(c.ends, len(buf))
		c.indices = append(c.indices, b.indices[i])
	}
	c.body = buf
	c.count = len(c.ends)
	return c, rejected, rejectErrs, err
}

// Byte classes of the fast path: copy as is, escape with a backslash, or
// decline (control characters, backslashes, non-ASCII) and let the
// line-protocol Encoder validate and encode the whole metric.
const (
	byteDecline = iota
	byteCopy
	byteEscape
)

type byteClasses struct {
	class [256]uint8
	// specials are the printable ASCII bytes that are not copied as is,
	// each repeated in all 8 bytes of a word, for the word-at-a-time scan
	// (unused slots repeat one of them).
	specials [3]uint64
}

func newByteClasses(escape string) *byteClasses {
	t := &byteClasses{}
	for b := 0x21; b < 0x7f; b++ {
		t.class[b] = byteCopy
	}
	t.class['\\'] = byteDecline
	n := 0
	for _, c := range "\\" + escape {
		if c != '\\' {
			t.class[c] = byteEscape
		}
		if c > ' ' {
			t.specials[n] = lowBits * uint64(c)
			n++
		}
	}
	for ; n < len(t.specials); n++ {
		t.specials[n] = t.specials[0]
	}
	return t
}

var (
	measurementClasses = newByteClasses(" ,")
	keyClasses         = newByteClasses(" ,=") // tag keys, tag values, field keys
)

const (
	lowBits  = 0x0101010101010101
	highBits = 0x8080808080808080
)

// plainWord reports whether all 8 bytes of w are copied as is: none is
// below '!' (controls and space), none is DEL or non-ASCII, none is one of
// the specials. Each test is the exact "has a zero/less-than byte" bit
// trick, so a word is never wrongly reported plain.
func (t *byteClasses) plainWord(w uint64) bool {
	bad := (w - lowBits*0x21) &^ w & highBits // a byte < 0x21
	bad |= w & highBits                       // a byte >= 0x80
	x := w ^ (lowBits * 0x7f)                 // DEL
	bad |= (x - lowBits) &^ x & highBits
	x = w ^ t.specials[0]
	bad |= (x - lowBits) &^ x & highBits
	x = w ^ t.specials[1]
	bad |= (x - lowBits) &^ x & highBits
	x = w ^ t.specials[2]
	bad |= (x - lowBits) &^ x & highBits
	return bad == 0
}

// load64 reads s[i:i+8] as a little-endian word (the compiler merges the
// byte loads into one).
func load64(s string, i int) uint64 {
	_ = s[i+7]
	return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
}

func load32(s string, i int) uint32 {
	_ = s[i+3]
	return uint32(s[i]) | uint32(s[i+1])<<8 | uint32(s[i+2])<<16 | uint32(s[i+3])<<24
}

// appendName appends s escaped for line protocol, or reports false when s
// is empty or needs more than escaping. Names that need nothing (nearly
// all) are checked 8 bytes at a time and appended with one copy.
func appendName(dst []byte, s string, classes *byteClasses) ([]byte, bool) {
	if s == "" {
		return dst, false
	}
	if len(s) < 8 {
		if len(s) >= 4 {
			// Two overlapping 4-byte halves cover every byte in one word.
			if !classes.plainWord(uint64(load32(s, 0)) | uint64(load32(s, len(s)-4))<<32) {
				return appendEscaped(dst, s, classes)
			}
			return append(dst, s...), true
		}
		for i := 0; i < len(s); i++ {
			if classes.class[s[i]] != byteCopy {
				return appendEscaped(dst, s, classes)
			}
		}
		return append(dst, s...), true
	}
	for i := 0; i < len(s)-8; i += 8 {
		if !classes.plainWord(load64(s, i)) {
			return appendEscaped(dst, s, classes)
		}
	}
	// The last word overlaps the previous one rather than leaving a tail.
	if !classes.plainWord(load64(s, len(s)-8)) {
		return appendEscaped(dst, s, classes)
	}
	return append(dst, s...), true
}

// appendEscaped is appendName's byte-by-byte path for names that need
// escaping or the Encoder.
func appendEscaped(dst []byte, s string, classes *byteClasses) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		if classes.class[s[i]] == byteDecline {
			return dst, false
		}
	}
	for i := 0; i < len(s); i++ {
		if classes.class[s[i]] == byteEscape {
			dst = append(dst, '\\')
		}
		dst = append(dst, s[i])
	}
	return dst, true
}

// plainString reports whether s is valid UTF-8 needing no escape inside a
// line-protocol string field (no backslash, quote, newline, CR or tab).
func plainString(s string) bool {
	ascii := true
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' || c == '"' || c == '\n' || c == '\r' || c == '\t':
			return false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return ascii || utf8.ValidString(s)
}

var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// appendFast appends m as one line of line protocol when every name is
// plain ASCII, the common case, without the Encoder's per-byte validation
// and escape counting. It returns false, with dst possibly extended, when
// the metric needs the Encoder; the caller truncates. ts may be nil.
func (s *serializer) appendFast(dst []byte, m telegraf.Metric, ts *tsCache) ([]byte, bool) {
	var ok bool
	if dst, ok = s.appendSeries(dst, m.Name(), m.TagList()); !ok {
		return dst, false
	}
	sep := byte(' ')
	for _, f := range m.FieldList() {
		if f.Key == "" {
			continue
		}
		start := len(dst)
		dst = append(dst, sep)
		if dst, ok = appendName(dst, f.Key, keyClasses); !ok {
			return dst, false
		}
		dst = append(dst, '=')
		// Formatted as lineprotocol.Value.AppendBytes does, without
		// building a Value first.
		switch v := f.Value.(type) {
		case float64:
			if math.IsNaN(v) || math.IsInf(v, 0) {
				dst = dst[:start] // skipped, as the stock serialiser does
				continue
			}
			dst = appendFloat(dst, v)
		case int64:
			dst = strconv.AppendInt(dst, v, 10)
			dst = append(dst, 'i')
		case uint64:
			switch {
			case s.uintSupport:
				dst = strconv.AppendUint(dst, v, 10)
				dst = append(dst, 'u')
			case v > math.MaxInt64:
				dst = strconv.AppendInt(dst, math.MaxInt64, 10)
				dst = append(dst, 'i')
			default:
				dst = strconv.AppendInt(dst, int64(v), 10)
				dst = append(dst, 'i')
			}
		case bool:
			if v {
				dst = append(dst, "true"...)
			} else {
				dst = append(dst, "false"...)
			}
		case string:
			if !plainString(v) {
				return dst, false
			}
			dst = append(dst, '"')
			dst = append(dst, v...)
			dst = append(dst, '"')
		default:
			x, valid := s.value(f.Value)
			if !valid {
				dst = dst[:start]
				continue
			}
			dst = x.AppendBytes(dst)
		}
		sep = ','
	}
	if sep == ' ' {
		return dst, false // no field: the Encoder path reports the error
	}
	if !s.omitTimestamp {
		t := m.Time()
		if t.Before(minTime) || t.After(maxTime) {
			return dst, false
		}
		dst = append(dst, ' ')
		dst = ts.appendTimestamp(dst, t.UnixNano())
	}
	return append(dst, '\n'), true
}

// tsCache remembers the digits of the last timestamp's whole seconds for
// one serialize call: the metrics of a batch mostly share them (those of one
// gather share the whole timestamp), so only the nine digits of the
// nanoseconds are formatted per metric.
type tsCache struct {
	sec int64
	n   int // digits of sec in buf; 0: nothing cached
	buf [20]byte
}

// twoDigits holds "00" to "99".
const twoDigits = "00010203040506070809101112131415161718192021222324252627282930313233343536373839" +
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879" +
	"8081828384858687888990919293949596979899"

// appendTimestamp appends ns in decimal, as strconv.AppendInt does. A nil
// cache formats directly.
func (c *tsCache) appendTimestamp(dst []byte, ns int64) []byte {
	if c == nil || ns < 1e9 {
		return strconv.AppendInt(dst, ns, 10)
	}
	sec, frac := ns/1e9, uint32(ns%1e9)
	if c.n == 0 || sec != c.sec {
		c.sec = sec
		c.n = len(strconv.AppendInt(c.buf[:0], sec, 10))
	}
	dst = append(dst, c.buf[:c.n]...)
	var d [9]byte
	for i := 7; i > 0; i -= 2 {
		q := frac % 100
		frac /= 100
		d[i], d[i+1] = twoDigits[2*q], twoDigits[2*q+1]
	}
	d[0] = byte('0' + frac)
	return append(dst, d[:]...)
}

var pow10 = [...]float64{1, 10, 100, 1000}

// appendFloat appends v as strconv.AppendFloat(dst, v, 'g', -1, 64) does.
// Values with at most three decimals and under a million (counters,
// percentages, readings rounded by the input: the common case) are written
// as integer digits, several times faster than the shortest-float search.
// They are exact: with the fewest decimals k for which the decimal
// n/10^k rounds to v (one correctly rounded division), no shorter decimal
// rounds to v and no other one with k decimals does (their spacing, 10^-k,
// is far above v's precision below 10^6), so it is the shortest
// representation, and 'g' prints it without an exponent between 1e-4 and
// 1e21.
func appendFloat(dst []byte, v float64) []byte {
	a := math.Abs(v)
	if a < 1e6 && a >= 1e-3 {
		for k, p := range pow10 {
			n := math.Round(a * p)
			if n/p != a {
				continue
			}
			if v < 0 {
				dst = append(dst, '-')
			}
			u := uint64(n)
			if k == 0 {
				return strconv.AppendUint(dst, u, 10)
			}
			q := uint64(p)
			dst = strconv.AppendUint(dst, u/q, 10)
			dst = append(dst, '.')
			frac := u % q
			for q /= 10; q > frac && q > 1; q /= 10 {
				dst = append(dst, '0') // leading zeros of the decimals
			}
			return strconv.AppendUint(dst, frac, 10)
		}
	}
	return strconv.AppendFloat(dst, v, 'g', -1, 64)
}

// appendSeries appends the series key of m (measurement and tags, escaped)
// or reports false when a name needs the Encoder.
func (s *serializer) appendSeries(dst []byte, name string, tags []*telegraf.Tag) ([]byte, bool) {
	var ok bool
	if dst, ok = appendName(dst, name, measurementClasses); !ok {
		return dst, false
	}
	for _, t := range tags {
		if t.Key == "" || t.Value == "" || t.Key == s.excludeTag {
			continue
		}
		dst = append(dst, ',')
		if dst, ok = appendName(dst, t.Key, keyClasses); !ok {
			return dst, false
		}
		dst = append(dst, '=')
		if dst, ok = appendName(dst, t.Value, keyClasses); !ok {
			return dst, false
		}
	}
	return dst, true
}

func (s *serializer) encode(enc *lineprotocol.Encoder, m telegraf.Metric) error {
	enc.StartLine(m.Name())
	for _, t := range m.TagList() {
		// The stock serialiser skips empty keys and values; so do we.
		if t.Key == "" || t.Value == "" || t.Key == s.excludeTag {
			continue
		}
		enc.AddTag(t.Key, t.Value)
	}
	fields := 0
	for _, f := range m.FieldList() {
		if f.Key == "" {
			continue
		}
		v, ok := s.value(f.Value)
		if !ok {
			continue
		}
		enc.AddField(f.Key, v)
		fields++
	}
	if fields == 0 {
		enc.ClearErr()
		return errors.New("no serializable fields")
	}
	if s.omitTimestamp {
		enc.EndLine(zeroTime)
	} else {
		enc.EndLine(m.Time())
	}
	if err := enc.Err(); err != nil {
		enc.ClearErr()
		return err
	}
	return nil
}

// value converts a Telegraf field value the way the stock influx serialiser
// does: unsigned integers become signed (capped) unless uint support is on,
// NaN and infinities are skipped, unknown types are skipped.
func (s *serializer) value(x any) (lineprotocol.Value, bool) {
	switch v := x.(type) {
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return lineprotocol.Value{}, false
		}
		return lineprotocol.FloatValue(v)
	case int64:
		return lineprotocol.IntValue(v), true
	case uint64:
		if s.uintSupport {
			return lineprotocol.UintValue(v), true
		}
		if v > math.MaxInt64 {
			return lineprotocol.IntValue(math.MaxInt64), true
		}
		return lineprotocol.IntValue(int64(v)), true
	case bool:
		return lineprotocol.BoolValue(v), true
	case string:
		return lineprotocol.StringValue(v)
	}
	return lineprotocol.NewValue(x)
}
