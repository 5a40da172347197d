package influxv2

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
)

// FuzzParseLines: whatever the body, a batch is either accepted whole or refused
// whole with one "unable to parse '<line>': <reason>" per bad line, never a panic.
func FuzzParseLines(f *testing.F) {
	for _, seed := range []string{
		"cpu,host=a usage=1 1\n", "cpu usage=1\ngarbage\n", "m v=\"a\\\"b\" 1\r\n", "",
		"# comment\nm,t=1 f=1i,g=2u,h=t 1\n", "m v=1 99999999999999999999\n", "m\n\n,\n",
	} {
		f.Add(seed)
	}
	now := time.Unix(1700000000, 0)
	f.Fuzz(func(t *testing.T, body string) {
		pts, err := parseLines([]byte(body), lineprotocol.Nanosecond, now)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.Code != codeInvalid {
				t.Fatalf("error %v is not a 2.x invalid error", err)
			}
			if pts != nil {
				t.Fatalf("%d points returned with an error", len(pts))
			}
			for _, m := range strings.Split(ae.Message, "\nunable to parse '") {
				if m == "" {
					t.Fatalf("empty message part in %q", ae.Message)
				}
			}
			if !strings.HasPrefix(ae.Message, "unable to parse '") {
				t.Fatalf("message %q", ae.Message)
			}
			return
		}
		for _, p := range pts {
			if p.Measurement == "" || len(p.Fields) == 0 || !strings.HasPrefix(p.Line, p.Measurement) {
				t.Fatalf("accepted point %+v", p)
			}
		}
	})
}
