package rotation

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newTestReporter(t *testing.T, clock *fakeClock) *AdoptionReporter {
	t.Helper()
	a, err := NewAdoptionReporter(AdoptionConfig{ClientID: "edge-7", Interval: time.Minute, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// report asks for a due report and completes it with err; it returns the
// line, or "" when none was due.
func report(a *AdoptionReporter, c *Credential, rotations int64, err error) string {
	rep, line, ok := a.Due(c, rotations)
	if !ok {
		return ""
	}
	a.Done(rep, err)
	return string(line)
}

func TestAdoptionReportDueAtStartAfterPromotionAndOnInterval(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	a := newTestReporter(t, clock)
	first, second := NewCredential(tokenN(1), "", "test"), NewCredential(tokenN(2), "", "test")

	line := report(a, first, 0, nil)
	want := `influxrotate_adoption,client_id=edge-7 fingerprint="` + first.Fingerprint() + `",previous="",rotations=0i 1700000000000000000` + "\n"
	if line != want {
		t.Fatalf("start: got %q, want %q", line, want)
	}
	clock.Add(59 * time.Second)
	if line := report(a, first, 0, nil); line != "" {
		t.Fatalf("report before the interval: %q", line)
	}
	// A promotion makes a report due at once.
	line = report(a, second, 1, nil)
	if !strings.Contains(line, `fingerprint="`+second.Fingerprint()+`",previous="`+first.Fingerprint()+`",rotations=1i`) {
		t.Fatalf("after promotion: %q", line)
	}
	clock.Add(59 * time.Second)
	if line := report(a, second, 1, nil); line != "" {
		t.Fatalf("report before the interval: %q", line)
	}
	clock.Add(time.Second)
	if line := report(a, second, 1, nil); !strings.Contains(line, second.Fingerprint()) {
		t.Fatalf("interval elapsed, no report: %q", line)
	}
	// A fallback is a change too: the refused token becomes previous.
	if line := report(a, first, 1, nil); !strings.Contains(line, `fingerprint="`+first.Fingerprint()+`",previous="`+second.Fingerprint()+`"`) {
		t.Fatalf("after fallback: %q", line)
	}
}

func TestAdoptionReportFailedIsRetriedWithNextFlush(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	a := newTestReporter(t, clock)
	c := NewCredential(tokenN(1), "", "test")
	if line := report(a, c, 0, errors.New("HTTP 404")); line == "" {
		t.Fatal("no report at start")
	}
	clock.Add(time.Millisecond)
	if line := report(a, c, 0, nil); line == "" {
		t.Fatal("a failed report was not due again at the next flush")
	}
	if line := report(a, c, 0, nil); line != "" {
		t.Fatalf("a stored report was sent again: %q", line)
	}
}

func TestAdoptionReportOneInFlight(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	a := newTestReporter(t, clock)
	c := NewCredential(tokenN(1), "", "test")
	rep, _, ok := a.Due(c, 0)
	if !ok {
		t.Fatal("no report at start")
	}
	if _, _, ok := a.Due(c, 0); ok {
		t.Fatal("a second report while one is in flight")
	}
	a.Done(rep, nil)
	if _, _, ok := a.Due(nil, 0); ok {
		t.Fatal("a report without a credential")
	}
}

func TestAdoptionReportParsesAndHoldsNoToken(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	a, err := NewAdoptionReporter(AdoptionConfig{Measurement: "my adoption,x", ClientID: `pod "a", b=c`, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	tok1, tok2 := tokenN(3), tokenN(4)
	report(a, NewCredential(tok1, "", "test"), 0, nil)
	line := report(a, NewCredential(tok2, "", "test"), 1, nil)
	assertNoSecret(t, "adoption report", line, tok1, tok2)
	dec := lineprotocol.NewDecoderWithBytes([]byte(line))
	if !dec.Next() {
		t.Fatal("no line")
	}
	m, err := dec.Measurement()
	if err != nil || string(m) != "my adoption,x" {
		t.Fatalf("measurement %q %v", m, err)
	}
	k, v, err := dec.NextTag()
	if err != nil || string(k) != "client_id" || string(v) != `pod "a", b=c` {
		t.Fatalf("tag %q=%q %v", k, v, err)
	}
	fields := map[string]any{}
	for {
		k, v, err := dec.NextField()
		if err != nil {
			t.Fatal(err)
		}
		if k == nil {
			break
		}
		fields[string(k)] = v.Interface()
	}
	if fields["fingerprint"] != Fingerprint(tok2) || fields["previous"] != Fingerprint(tok1) || fields["rotations"] != int64(1) {
		t.Fatalf("fields %v", fields)
	}
}

func TestAdoptionConfigErrors(t *testing.T) {
	for name, cfg := range map[string]AdoptionConfig{
		"no client ID":           {},
		"negative interval":      {ClientID: "a", Interval: -time.Second},
		"newline in measurement": {ClientID: "a", Measurement: "a\nb"},
		"newline in client ID":   {ClientID: "a\nb"},
	} {
		if _, err := NewAdoptionReporter(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
