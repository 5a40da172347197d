package lineproto

import (
	"unicode/utf8"
)

// Byte classes of the serializer's fast path, derived from Class for one
// kind of name: copy as is, escape with a backslash, or decline (control
// characters, backslashes, non-ASCII) and let the line-protocol Encoder
// validate and encode the whole metric.
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

// newByteClasses derives the classes of the names whose bytes have bit in
// Class: a printable ASCII byte outside that set is escaped, except the
// backslash, which the Encoder handles.
func newByteClasses(bit uint8) *byteClasses {
	t := &byteClasses{}
	n := 0
	for b := 0x20; b < 0x7f; b++ {
		switch {
		case Class[b]&bit != 0:
			t.class[b] = byteCopy
			continue
		case b != '\\':
			t.class[b] = byteEscape
		}
		if b > ' ' {
			t.specials[n] = lowBits * uint64(b)
			n++
		}
	}
	for ; n < len(t.specials); n++ {
		t.specials[n] = t.specials[0]
	}
	return t
}

var (
	measurementClasses = newByteClasses(InMeasurement)
	keyClasses         = newByteClasses(InKey) // tag keys, tag values, field keys
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
