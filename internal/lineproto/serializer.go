package lineproto

import (
	"errors"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/influxdata/telegraf"
)

// Serializer turns metrics into line protocol with line-protocol/v2's
// Encoder writing into a reused buffer: no per-metric allocation, unlike the
// stock plugin's serialise-copy-append. It is safe for concurrent use.
type Serializer struct {
	opts       Options
	excludeTag string // tag left out of every line (exclude_bucket_tag)
}

// NewSerializer returns a Serializer writing lines as opts say.
func NewSerializer(opts Options) *Serializer {
	return &Serializer{opts: opts, excludeTag: opts.ExcludedTag()}
}

type encoderState struct {
	enc lineprotocol.Encoder
}

var encoderPool = sync.Pool{New: func() any { return new(encoderState) }}

// Append appends m as one line of line protocol. ts remembers timestamp
// digits across the metrics of one buffer (nil: no cache). When m cannot
// be written, Append returns dst as it was with the reason.
func (s *Serializer) Append(dst []byte, m telegraf.Metric, ts *TimeCache) ([]byte, error) {
	start := len(dst)
	out, ok := s.appendFast(dst, m, ts)
	if ok {
		return out, nil
	}
	st := encoderPool.Get().(*encoderState)
	defer func() {
		st.enc.SetBuffer(nil)
		encoderPool.Put(st)
	}()
	st.enc.SetBuffer(out[:start])
	if err := s.encode(&st.enc, m); err != nil {
		return out[:start], err
	}
	return st.enc.Bytes(), nil
}

var zeroTime time.Time

var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// appendFast appends m as one line of line protocol when every name is
// plain ASCII, the common case, without the Encoder's per-byte validation
// and escape counting. It returns false, with dst possibly extended, when
// the metric needs the Encoder; the caller truncates. ts may be nil.
func (s *Serializer) appendFast(dst []byte, m telegraf.Metric, ts *TimeCache) ([]byte, bool) {
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
			dst = s.opts.AppendUint(dst, v)
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
	if !s.opts.OmitTimestamp {
		t := m.Time()
		if t.Before(minTime) || t.After(maxTime) {
			return dst, false
		}
		dst = append(dst, ' ')
		dst = ts.appendTimestamp(dst, t.UnixNano())
	}
	return append(dst, '\n'), true
}

// appendSeries appends the series key of m (measurement and tags, escaped)
// or reports false when a name needs the Encoder.
func (s *Serializer) appendSeries(dst []byte, name string, tags []*telegraf.Tag) ([]byte, bool) {
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

func (s *Serializer) encode(enc *lineprotocol.Encoder, m telegraf.Metric) error {
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
	if s.opts.OmitTimestamp {
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
func (s *Serializer) value(x any) (lineprotocol.Value, bool) {
	switch v := x.(type) {
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return lineprotocol.Value{}, false
		}
		return lineprotocol.FloatValue(v)
	case int64:
		return lineprotocol.IntValue(v), true
	case uint64:
		return s.opts.UintValue(v), true
	case bool:
		return lineprotocol.BoolValue(v), true
	case string:
		return lineprotocol.StringValue(v)
	}
	return lineprotocol.NewValue(x)
}
