package lineproto

// Bits of Class: where a byte may stand as itself in a line.
const (
	// InMeasurement: a measurement name byte, not ',', ' ', '\\' or a
	// control character.
	InMeasurement = 1 << iota
	// InKey: a tag key, tag value or field key byte: also not '=' (the
	// decoder's tagKeyChars, tagValChars and fieldKeyChars, which are equal).
	InKey
	// InString: a string field value byte, not '"' or '\\'.
	InString
	// InValue: a bool or number field value byte, not ',', ' ', '\r' or '\n'.
	InValue
)

// Class is, for every byte, the set of places (bits above) where it needs
// no escape. The sets are the line-protocol/v2 decoder's own
// (lineprotocol/decoder.go, v2.2.1) minus the backslash, so that a token
// made only of such bytes reads as its raw bytes. Bytes of 0x80 and above
// belong to the sets: UTF-8 is validated separately.
var Class = func() (t [256]uint8) {
	for c := range 256 {
		b := byte(c)
		printable := b >= 0x20 && b != 0x7f
		if printable && b != ',' && b != ' ' && b != '\\' {
			t[c] |= InMeasurement
			if b != '=' {
				t[c] |= InKey
			}
		}
		if b != '"' && b != '\\' {
			t[c] |= InString
		}
		if b != ',' && b != ' ' && b != '\r' && b != '\n' {
			t[c] |= InValue
		}
	}
	return t
}()
