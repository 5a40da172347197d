package lines

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
)

// Handler validates lines and routes them to buckets. It is used by
// one goroutine at a time.
type Handler struct {
	opts Options
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
	// Malformed lines are logged at most MalformedLogBurst times per
	// malformedLogWindow (10 MB of garbage gave 40,000 error lines); the
	// rest are counted in suppressed and summed up once per window.
	now           func() time.Time
	windowStart   time.Time
	windowLogged  int
	windowSkipped int64
	suppressed    atomic.Int64
}

// MalformedLogBurst malformed lines are logged one by one per
// malformedLogWindow; the rest are counted and summed up.
const (
	MalformedLogBurst  = 10
	malformedLogWindow = time.Minute
)

// NewHandler returns a Handler applying opts, logging to log.
func NewHandler(opts Options, log *slog.Logger) *Handler {
	if opts.MaxLineBytes <= 0 {
		opts.MaxLineBytes = DefaultMaxLineBytes
	}
	h := &Handler{opts: opts, log: log, now: time.Now}
	h.enc.SetPrecision(lineprotocol.Nanosecond)
	// Lax: keep tags in the order they came; InfluxDB does not need them
	// sorted and a sorted-order check would refuse valid input.
	h.enc.SetLax(true)
	return h
}

// errSkip marks blank and comment lines, which are neither valid nor malformed.
var errSkip = errors.New("no entry")

// Handle validates one line (without its newline) and appends it to blk.
// It returns false when the line is malformed; blank lines and comments are
// ignored silently, as InfluxDB does.
func (h *Handler) Handle(line []byte, blk *Block) bool {
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
	rawStart := len(blk.Raw)
	blk.Raw = append(blk.Raw, line...)
	blk.Raw = append(blk.Raw, '\n')
	if !rewrite && blk.Out == nil {
		// Still byte for byte: out aliases raw.
		blk.Lines = append(blk.Lines, Line{Bucket: bucket, Off: rawStart, End: len(blk.Raw)})
		return true
	}
	if blk.Out == nil {
		// The first rewritten line: copy what came before.
		blk.Out = append(make([]byte, 0, cap(blk.Raw)), blk.Raw[:rawStart]...)
	}
	off := len(blk.Out)
	if rewrite {
		out, err := h.rewriteChecked(line)
		if err != nil {
			blk.Raw = blk.Raw[:rawStart]
			h.dropMalformed("dropped a line that cannot be re-encoded", err.Error())
			return false
		}
		h.rewritten.Add(1)
		blk.Out = append(blk.Out, out...)
	} else {
		blk.Out = append(blk.Out, blk.Raw[rawStart:]...)
	}
	blk.Lines = append(blk.Lines, Line{Bucket: bucket, Off: off, End: len(blk.Out)})
	return true
}

// dropMalformed counts the malformed line h.lineNo and logs msg about it,
// within the limit of MalformedLogBurst lines per malformedLogWindow.
func (h *Handler) dropMalformed(msg, reason string) {
	h.malformed.Add(1)
	if now := h.now(); now.Sub(h.windowStart) >= malformedLogWindow {
		h.summarizeSuppressed()
		h.windowStart, h.windowLogged = now, 0
	}
	if h.windowLogged >= MalformedLogBurst {
		h.windowSkipped++
		h.suppressed.Add(1)
		return
	}
	h.windowLogged++
	h.log.Error(msg, "line", h.lineNo, "error", reason)
	if h.windowLogged == MalformedLogBurst {
		h.log.Warn(fmt.Sprintf("further malformed lines are counted (execd_lines_malformed) but not logged one by one until %s has passed; a summary follows",
			malformedLogWindow))
	}
}

// summarizeSuppressed logs how many malformed lines went unlogged in the
// window that ends.
func (h *Handler) summarizeSuppressed() {
	if h.windowSkipped > 0 {
		h.log.Error("dropped more malformed lines without logging each", "lines", h.windowSkipped,
			"since", h.windowStart.Format(time.RFC3339), "last_line", h.lineNo)
		h.windowSkipped = 0
	}
}

// check decodes every part of the line, so that a line the server would
// refuse is caught here, and reports its bucket and whether it must be
// re-encoded.
func (h *Handler) check(line []byte) (bucket string, rewrite bool, err error) {
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
func (h *Handler) decodeCheck(line []byte) (bucket string, rewrite bool, err error) {
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
		if h.opts.IsBucketTag(k) {
			bucket = string(v)
			rewrite = rewrite || h.opts.DropsTag(k)
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
func (h *Handler) rewriteChecked(line []byte) ([]byte, error) {
	if h.lastFast {
		return h.rewriteFast(line), nil
	}
	return h.rewrite(line)
}

// rewrite re-encodes a line that check accepted, applying the options.
func (h *Handler) rewrite(line []byte) ([]byte, error) {
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
		if h.opts.DropsTag(k) {
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
			v = h.opts.UintValue(v.UintV())
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

// Malformed is the number of lines dropped as malformed.
func (h *Handler) Malformed() int64 { return h.malformed.Load() }

// Unlogged is the number of malformed lines dropped without a log line of
// their own (see dropMalformed).
func (h *Handler) Unlogged() int64 { return h.suppressed.Load() }
