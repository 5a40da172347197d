package lines

import (
	"math"
	"strconv"
	"unicode/utf8"
	"unsafe"

	"github.com/influxrotate/influxrotate/internal/lineproto"
)

// The fast check exists because decoding every stdin line with a fresh
// lineprotocol.Decoder dominated the binary's CPU profile, with an
// allocation a line (numbers in docs/benchmarks.md, "execd pipeline"). It
// accepts only the plain shape Telegraf's serializer writes: no escapes,
// single spaces, no line-ending oddities. It never rejects: whatever it
// does not recognise goes to the full decoder, so a malformed line is
// still refused by line-protocol/v2 itself, with its error message. The only property it must keep is soundness: a line it
// accepts is accepted by the full decoder with the same bucket and the same
// rewrite decision (FuzzFastCheckAgreesWithDecoder checks that).
//
// The byte sets are lineproto.Class, the decoder's own minus the
// backslash, so that no token needs unescaping and the raw bytes are the
// decoded ones; values are parsed by the same strconv calls the decoder
// makes. One rule is stricter than the decoder, in both paths:
// hexadecimal floats, which InfluxDB's parser refuses, are refused.

// bytesString views b as a string for the strconv parsers, which do not
// retain it; the decoder does the same (unsafeBytesToString).
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// fastCheck reports ok when line is certainly valid, with the bucket and
// rewrite decision check would return. ok == false says nothing: the full
// decoder decides. line has no newline and no trailing '\r', and is not
// blank or a comment (check has ruled these out).
func (h *Handler) fastCheck(line []byte) (bucket string, rewrite, ok bool) {
	n := len(line)
	// The decoder refuses invalid UTF-8 in every token; since tokens are
	// cut at ASCII bytes, a valid line has valid tokens.
	if n == 0 || line[0] == '#' || !utf8.Valid(line) {
		return "", false, false
	}
	i := 0
	for i < n && lineproto.Class[line[i]]&lineproto.InMeasurement != 0 {
		i++
	}
	if i == 0 || i == n {
		return "", false, false
	}
	bucket = h.opts.DefaultBucket
	// Tags: ",key=value" repeated, then one space.
	for line[i] == ',' {
		i++
		k0 := i
		for i < n && lineproto.Class[line[i]]&lineproto.InKey != 0 {
			i++
		}
		if i == k0 || i == n || line[i] != '=' {
			return "", false, false
		}
		key := line[k0:i]
		i++
		v0 := i
		for i < n && lineproto.Class[line[i]]&lineproto.InKey != 0 {
			i++
		}
		if i == v0 || i == n {
			return "", false, false
		}
		if h.opts.IsBucketTag(key) {
			bucket = h.bucketName(line[v0:i])
			rewrite = rewrite || h.opts.DropsTag(key)
		}
	}
	if line[i] != ' ' {
		return "", false, false
	}
	i++
	// Fields: "key=value" separated by ','; at least one.
	for {
		k0 := i
		for i < n && lineproto.Class[line[i]]&lineproto.InKey != 0 {
			i++
		}
		if i == k0 || i == n || line[i] != '=' {
			return "", false, false
		}
		i++
		if i == n {
			return "", false, false
		}
		switch c := line[i]; {
		case c == '"':
			i++
			for i < n && lineproto.Class[line[i]]&lineproto.InString != 0 {
				i++
			}
			if i == n || line[i] != '"' {
				return "", false, false
			}
			i++
		case c == 't' || c == 'T' || c == 'f' || c == 'F':
			v0 := i
			for i < n && lineproto.Class[line[i]]&lineproto.InValue != 0 {
				i++
			}
			switch string(line[v0:i]) {
			case "t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE":
			default:
				return "", false, false
			}
		case c == '-' || c == '.' || (c >= '0' && c <= '9'):
			v0 := i
			for i < n && lineproto.Class[line[i]]&lineproto.InValue != 0 {
				i++
			}
			v := line[v0:i]
			switch v[len(v)-1] {
			case 'i':
				if !validInt(v[:len(v)-1]) {
					return "", false, false
				}
			case 'u':
				if !validUint(v[:len(v)-1]) {
					return "", false, false
				}
				if !h.opts.UintSupport {
					rewrite = true
				}
			default:
				// Decimal only: strconv also takes hexadecimal floats,
				// which InfluxDB refuses (decodeCheck says so).
				for _, c := range v {
					if (c < '0' || c > '9') && c != '.' && c != 'e' && c != 'E' && c != '-' && c != '+' {
						return "", false, false
					}
				}
				f, err := strconv.ParseFloat(bytesString(v), 64)
				if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
					return "", false, false
				}
			}
		default:
			return "", false, false
		}
		if i == n {
			return bucket, rewrite, true
		}
		if line[i] == ',' {
			i++
			continue
		}
		if line[i] != ' ' {
			return "", false, false
		}
		i++
		break
	}
	// Timestamp: one space, then an integer to the end of the line
	// (nanoseconds, so any int64 is in range).
	ts := line[i:]
	if len(ts) == 0 {
		return "", false, false
	}
	// Only the decoder's timeChars: strconv alone would take a '+'.
	for _, c := range ts {
		if c != '-' && (c < '0' || c > '9') {
			return "", false, false
		}
	}
	if !validInt(ts) {
		return "", false, false
	}
	if h.opts.OmitTimestamp {
		rewrite = true
	}
	return bucket, rewrite, true
}

// validInt reports whether strconv.ParseInt(v, 10, 64), the decoder's
// parser, accepts v. Up to 18 digits cannot overflow, so the common case
// skips strconv (docs/benchmarks.md, "execd pipeline").
func validInt(v []byte) bool {
	d := v
	if len(d) > 0 && d[0] == '-' {
		d = d[1:]
	}
	if len(d) == 0 || len(d) > 18 {
		_, err := strconv.ParseInt(bytesString(v), 10, 64)
		return err == nil
	}
	return allDigits(d)
}

// validUint is validInt for strconv.ParseUint: 19 digits cannot overflow.
func validUint(v []byte) bool {
	if len(v) == 0 || len(v) > 19 {
		_, err := strconv.ParseUint(bytesString(v), 10, 64)
		return err == nil
	}
	return allDigits(v)
}

func allDigits(d []byte) bool {
	for _, c := range d {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// bucketName returns v as a string, reusing the last one: consecutive lines
// usually name the same bucket, and a string per line is garbage.
func (h *Handler) bucketName(v []byte) string {
	if string(v) != h.lastBucket {
		h.lastBucket = string(v)
	}
	return h.lastBucket
}

// rewriteFast applies the options to a line fastCheck accepted, editing the
// bytes instead of decoding and re-encoding: the line has no escapes and
// single separators, so its tokens can be cut as they are. Values other
// than converted unsigned integers keep their bytes (the full rewrite
// reformats them; the decoded values are the same, which
// TestRewriteFastDecodesLikeRewrite checks).
func (h *Handler) rewriteFast(line []byte) []byte {
	out := h.scratch[:0]
	n := len(line)
	i := 0
	for line[i] != ',' && line[i] != ' ' {
		i++
	}
	out = append(out, line[:i]...)
	for line[i] == ',' {
		t0 := i
		i++
		k0 := i
		for line[i] != '=' {
			i++
		}
		key := line[k0:i]
		for line[i] != ',' && line[i] != ' ' {
			i++
		}
		if !h.opts.DropsTag(key) {
			out = append(out, line[t0:i]...)
		}
	}
	out = append(out, ' ')
	i++
	for {
		f0 := i
		for line[i] != '=' {
			i++
		}
		i++
		if line[i] == '"' {
			i++
			for line[i] != '"' {
				i++
			}
			i++
			out = append(out, line[f0:i]...)
		} else {
			v0 := i
			for i < n && line[i] != ',' && line[i] != ' ' {
				i++
			}
			if v := line[v0:i]; v[len(v)-1] == 'u' && !h.opts.UintSupport {
				// fastCheck parsed it already; written as the plugin
				// writes it.
				u, _ := strconv.ParseUint(bytesString(v[:len(v)-1]), 10, 64)
				out = append(out, line[f0:v0]...)
				out = h.opts.AppendUint(out, u)
			} else {
				out = append(out, line[f0:i]...)
			}
		}
		if i == n || line[i] == ' ' {
			break
		}
		out = append(out, ',')
		i++
	}
	if i < n && !h.opts.OmitTimestamp {
		out = append(out, line[i:]...)
	}
	out = append(out, '\n')
	h.scratch = out
	return out
}
