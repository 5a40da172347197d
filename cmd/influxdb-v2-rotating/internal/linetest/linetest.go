// Package linetest holds the input the execd binary's tests and benchmarks
// share.
package linetest

import (
	"bytes"
	"fmt"
	"time"
)

// Realistic is 10,000 realistic lines (4 tags, 5 fields of mixed types),
// each ending in a newline.
func Realistic() []byte {
	var b bytes.Buffer
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	for i := range 10000 {
		fmt.Fprintf(&b, "system,env=production,host=web-%d.eu-west-1.example.com,rack=r%d,region=eu-west-1 healthy=%t,load1=%g,processes=%di,status=\"ok\",uptime=%di %d\n",
			i%50, i%12, i%13 != 0, float64(i%400)/100, 200+i%97, 1_000_000+i, base+int64(i)*int64(time.Millisecond))
	}
	return b.Bytes()
}
