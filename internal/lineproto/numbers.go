package lineproto

import (
	"math"
	"strconv"
)

// TimeCache remembers the digits of the last timestamp's whole seconds for
// the metrics of one buffer: they mostly share them (those of one
// gather share the whole timestamp), so only the nine digits of the
// nanoseconds are formatted per metric.
type TimeCache struct {
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
func (c *TimeCache) appendTimestamp(dst []byte, ns int64) []byte {
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
