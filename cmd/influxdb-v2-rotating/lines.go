package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
)

// lineOptions are the plugin options that decide whether a line can be
// forwarded byte for byte or must be re-encoded.
type lineOptions struct {
	// DefaultBucket receives lines without BucketTag.
	DefaultBucket string
	// BucketTag routes a line to the bucket named by this tag's value.
	BucketTag string
	// ExcludeBucketTag removes BucketTag from the line before it is sent.
	ExcludeBucketTag bool
	// UintSupport keeps unsigned integers ("1u"); without it they become
	// signed integers saturated at MaxInt64, as Telegraf's serializer does.
	UintSupport bool
	// OmitTimestamp removes the timestamp so the server assigns one.
	OmitTimestamp bool
	// MaxLineBytes refuses longer lines (counted as malformed). Default 1 MiB.
	MaxLineBytes int
}

const defaultMaxLineBytes = 1 << 20

// block is what one read of stdin (or one spool record) produced.
type block struct {
	// raw holds the valid input lines exactly as read, each ending in
	// '\n': this is what the spool keeps, so a replay routes them again
	// (a removed bucket tag could not be routed twice).
	raw []byte
	// out holds the lines to send; it is raw itself when nothing was
	// rewritten.
	out   []byte
	lines []lineRef
}

type lineRef struct {
	bucket   string
	off, end int // in out
}

func (b *block) count() int { return len(b.lines) }

// reset empties b without reusing its memory: the buffer may still hold
// slices of the previous contents.
func (b *block) reset() { *b = block{} }

// lineHandler validates lines and routes them to buckets. It is used by
// one goroutine at a time.
type lineHandler struct {
	opts lineOptions
	log  *slog.Logger
	// lineNo is the number of the last line seen in the stream, for the
	// log line of a malformed one.
	lineNo    int64
	malformed atomic.Int64
	// rewritten counts lines that needed re-encoding.
	rewritten atomic.Int64
	enc       lineprotocol.Encoder
	scratch   []byte
	// lastBucket is the bucket of the last routed line (see bucketName).
	lastBucket string
	// lastFast is set when fastCheck accepted the line check last saw,
	// which rewriteFast may then edit.
	lastFast bool
	// Malformed lines are logged at most malformedLogBurst times per
	// malformedLogWindow (10 MB of garbage gave 40,000 error lines); the
	// rest are counted in suppressed and summed up once per window.
	now           func() time.Time
	windowStart   time.Time
	windowLogged  int
	windowSkipped int64
	suppressed    atomic.Int64
}

const (
	malformedLogBurst  = 10
	malformedLogWindow = time.Minute
)

func newLineHandler(opts lineOptions, log *slog.Logger) *lineHandler {
	if opts.MaxLineBytes <= 0 {
		opts.MaxLineBytes = defaultMaxLineBytes
	}
	h := &lineHandler{opts: opts, log: log, now: time.Now}
	h.enc.SetPrecision(lineprotocol.Nanosecond)
	// Lax: keep tags in the order they came; InfluxDB does not need them
	// sorted and a sorted-order check would refuse valid input.
	h.enc.SetLax(true)
	return h
}

// errSkip marks blank and comment lines, which are neither valid nor malformed.
var errSkip = errors.New("no entry")

// handle validates one line (without its newline) and appends it to blk.
// It returns false when the line is malformed; blank lines and comments are
// ignored silently, as InfluxDB does.
func (h *lineHandler) handle(line []byte, blk *block) bool {
	h.lineNo++
	line = bytes.TrimSuffix(line, []byte{'\r'})
	bucket, rewrite, err := h.check(line)
	if errors.Is(err, errSkip) {
		return true
	}
	if err != nil {
		h.dropMalformed("dropped a malformed line", err.Error())
		return false
	}
	rawStart := len(blk.raw)
	blk.raw = append(blk.raw, line...)
	blk.raw = append(blk.raw, '\n')
	if !rewrite && blk.out == nil {
		// Still byte for byte: out aliases raw.
		blk.lines = append(blk.lines, lineRef{bucket: bucket, off: rawStart, end: len(blk.raw)})
		return true
	}
	if blk.out == nil {
		// The first rewritten line: copy what came before.
		blk.out = append(make([]byte, 0, cap(blk.raw)), blk.raw[:rawStart]...)
	}
	off := len(blk.out)
	if rewrite {
		out, err := h.rewriteChecked(line)
		if err != nil {
			blk.raw = blk.raw[:rawStart]
			h.dropMalformed("dropped a line that cannot be re-encoded", err.Error())
			return false
		}
		h.rewritten.Add(1)
		blk.out = append(blk.out, out...)
	} else {
		blk.out = append(blk.out, blk.raw[rawStart:]...)
	}
	blk.lines = append(blk.lines, lineRef{bucket: bucket, off: off, end: len(blk.out)})
	return true
}

// dropMalformed counts the malformed line h.lineNo and logs msg about it,
// within the limit of malformedLogBurst lines per malformedLogWindow.
func (h *lineHandler) dropMalformed(msg, reason string) {
	h.malformed.Add(1)
	if now := h.now(); now.Sub(h.windowStart) >= malformedLogWindow {
		h.summarizeSuppressed()
		h.windowStart, h.windowLogged = now, 0
	}
	if h.windowLogged >= malformedLogBurst {
		h.windowSkipped++
		h.suppressed.Add(1)
		return
	}
	h.windowLogged++
	h.log.Error(msg, "line", h.lineNo, "error", reason)
	if h.windowLogged == malformedLogBurst {
		h.log.Warn(fmt.Sprintf("further malformed lines are counted (execd_lines_malformed) but not logged one by one until %s has passed; a summary follows",
			malformedLogWindow))
	}
}

// summarizeSuppressed logs how many malformed lines went unlogged in the
// window that ends.
func (h *lineHandler) summarizeSuppressed() {
	if h.windowSkipped > 0 {
		h.log.Error("dropped more malformed lines without logging each", "lines", h.windowSkipped,
			"since", h.windowStart.Format(time.RFC3339), "last_line", h.lineNo)
		h.windowSkipped = 0
	}
}

// finish makes out valid for a block whose lines were never rewritten.
func (b *block) finish() {
	if b.out == nil {
		b.out = b.raw
	}
}

// check decodes every part of the line, so that a line the server would
// refuse is caught here, and reports its bucket and whether it must be
// re-encoded.
func (h *lineHandler) check(line []byte) (bucket string, rewrite bool, err error) {
	h.lastFast = false
	trimmed := bytes.TrimLeft(line, " \t")
	if len(trimmed) == 0 || trimmed[0] == '#' {
		return "", false, errSkip
	}
	if len(line) > h.opts.MaxLineBytes {
		return "", false, fmt.Errorf("line is %d bytes, longer than %d", len(line), h.opts.MaxLineBytes)
	}
	if bytes.IndexByte(line, '\n') >= 0 {
		return "", false, errors.New("line contains a newline")
	}
	bucket, rewrite, h.lastFast = h.fastCheck(line)
	if h.lastFast {
		return bucket, rewrite, nil
	}
	return h.decodeCheck(line)
}

// decodeCheck is check's full decode with line-protocol/v2, for every line
// fastCheck does not vouch for: it alone refuses lines.
func (h *lineHandler) decodeCheck(line []byte) (bucket string, rewrite bool, err error) {
	// handle trims one '\r'; the decoder would take a second one as the
	// end of the input, but InfluxDB's parser reads it as part of the last
	// value, and the spool's replay would trim it, sending different bytes.
	if len(line) > 0 && line[len(line)-1] == '\r' {
		return "", false, errors.New("line ends in a bare carriage return")
	}
	dec := lineprotocol.NewDecoderWithBytes(line)
	if !dec.Next() {
		return "", false, errSkip
	}
	if _, err := dec.Measurement(); err != nil {
		return "", false, err
	}
	bucket = h.opts.DefaultBucket
	for {
		k, v, err := dec.NextTag()
		if err != nil {
			return "", false, err
		}
		if k == nil {
			break
		}
		if h.opts.BucketTag != "" && string(k) == h.opts.BucketTag {
			bucket = string(v)
			if h.opts.ExcludeBucketTag {
				rewrite = true
			}
		}
	}
	fields := 0
	for {
		k, v, err := dec.NextField()
		if err != nil {
			return "", false, err
		}
		if k == nil {
			break
		}
		fields++
		if v.Kind() == lineprotocol.Uint && !h.opts.UintSupport {
			rewrite = true
		}
	}
	if fields == 0 {
		return "", false, errors.New("line has no fields")
	}
	ts, err := dec.TimeBytes()
	if err != nil {
		return "", false, err
	}
	if ts != nil {
		if _, err := dec.Time(lineprotocol.Nanosecond, time.Time{}); err != nil {
			return "", false, err
		}
		if h.opts.OmitTimestamp {
			rewrite = true
		}
	}
	// A second entry means the line held more than one (a bare '\r').
	if dec.Next() {
		return "", false, errors.New("line holds more than one entry")
	}
	if bytes.ContainsAny(line, "xX") {
		if err := refuseHexFloats(line); err != nil {
			return "", false, err
		}
	}
	return bucket, rewrite, nil
}

// refuseHexFloats refuses a float field written in hexadecimal ("0x1p-2"):
// the decoder takes it (it parses with strconv.ParseFloat), InfluxDB's
// parser does not, and a 400 would drop the whole batch with it. line has
// been decoded without error.
func refuseHexFloats(line []byte) error {
	dec := lineprotocol.NewDecoderWithBytes(line)
	dec.Next()
	for {
		k, _, err := dec.NextTag()
		if err != nil || k == nil {
			break
		}
	}
	for {
		k, kind, v, err := dec.NextFieldBytes()
		if err != nil || k == nil {
			return nil
		}
		if kind == lineprotocol.Float && bytes.ContainsAny(v, "xX") {
			return fmt.Errorf("field %q: hexadecimal float %q, which InfluxDB refuses", k, v)
		}
	}
}

// rewriteChecked applies the options to the line check just accepted.
func (h *lineHandler) rewriteChecked(line []byte) ([]byte, error) {
	if h.lastFast {
		return h.rewriteFast(line), nil
	}
	return h.rewrite(line)
}

// rewrite re-encodes a line that check accepted, applying the options.
func (h *lineHandler) rewrite(line []byte) ([]byte, error) {
	dec := lineprotocol.NewDecoderWithBytes(line)
	dec.Next()
	h.enc.Reset()
	h.enc.SetBuffer(h.scratch[:0])
	m, err := dec.Measurement()
	if err != nil {
		return nil, err
	}
	h.enc.StartLineRaw(m)
	for {
		k, v, err := dec.NextTag()
		if err != nil {
			return nil, err
		}
		if k == nil {
			break
		}
		if h.opts.ExcludeBucketTag && h.opts.BucketTag != "" && string(k) == h.opts.BucketTag {
			continue
		}
		h.enc.AddTagRaw(k, v)
	}
	for {
		k, v, err := dec.NextField()
		if err != nil {
			return nil, err
		}
		if k == nil {
			break
		}
		if v.Kind() == lineprotocol.Uint && !h.opts.UintSupport {
			u := v.UintV()
			if u > math.MaxInt64 {
				u = math.MaxInt64
			}
			v = lineprotocol.IntValue(int64(u))
		}
		h.enc.AddFieldRaw(k, v)
	}
	t, err := dec.Time(lineprotocol.Nanosecond, time.Time{})
	if err != nil {
		return nil, err
	}
	if h.opts.OmitTimestamp {
		t = time.Time{}
	}
	h.enc.EndLine(t)
	if err := h.enc.Err(); err != nil {
		return nil, err
	}
	h.scratch = h.enc.Bytes()
	return h.scratch, nil
}

// lineReader cuts a stream into lines and hands them to a lineHandler one
// read at a time, so that a caller can make each read durable before it
// reads again.
type lineReader struct {
	r       io.Reader
	h       *lineHandler
	buf     []byte
	partial []byte
	// skipping is set while the rest of an over-long line is discarded.
	skipping bool
	eof      bool
}

const readSize = 64 << 10

func newLineReader(r io.Reader, h *lineHandler) *lineReader {
	return &lineReader{r: r, h: h, buf: make([]byte, readSize)}
}

// next reads once and fills blk (reset first) with the valid complete lines
// read. It returns io.EOF, together with the last lines, at the end of the
// stream.
func (lr *lineReader) next(blk *block) error {
	blk.reset()
	if lr.eof {
		return io.EOF
	}
	n, err := lr.r.Read(lr.buf)
	data := lr.buf[:n]
	// Sized once for everything this read can yield: growing by append
	// made most of the garbage (docs/benchmarks.md, "execd pipeline").
	if n > 0 {
		blk.raw = make([]byte, 0, len(lr.partial)+n+1)
		blk.lines = make([]lineRef, 0, bytes.Count(data, []byte{'\n'})+1)
	}
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			lr.addPartial(data)
			break
		}
		if lr.skipping {
			lr.skipping = false
		} else if len(lr.partial) > 0 {
			lr.partial = append(lr.partial, data[:i]...)
			lr.h.handle(lr.partial, blk)
			lr.partial = lr.partial[:0]
		} else {
			lr.h.handle(data[:i], blk)
		}
		data = data[i+1:]
	}
	if err != nil {
		if len(lr.partial) > 0 && !lr.skipping {
			lr.h.handle(lr.partial, blk)
		}
		lr.partial = lr.partial[:0]
		blk.finish()
		lr.h.summarizeSuppressed()
		if errors.Is(err, io.EOF) {
			lr.eof = true
			return io.EOF
		}
		return err
	}
	blk.finish()
	return nil
}

func (lr *lineReader) addPartial(data []byte) {
	if lr.skipping {
		return
	}
	if len(lr.partial)+len(data) > lr.h.opts.MaxLineBytes {
		// Counted now as malformed; the rest up to the newline is dropped.
		lr.h.lineNo++
		lr.h.dropMalformed("dropped a malformed line", fmt.Sprintf("line is longer than %d bytes", lr.h.opts.MaxLineBytes))
		lr.partial = lr.partial[:0]
		lr.skipping = true
		return
	}
	lr.partial = append(lr.partial, data...)
}
