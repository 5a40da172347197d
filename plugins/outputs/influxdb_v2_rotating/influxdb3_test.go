package influxdb_v2_rotating

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/testutil"

	"github.com/influxrotate/influxrotate/rotation"
	"github.com/influxrotate/influxrotate/testutil/influxv2"
)

// newV3Env is newEnv against the InfluxDB 3 personality of the test server
// (the bucket is the database, the org is ignored), on a clock the test moves
// to make tokens expire.
func newV3Env(t *testing.T, edition influxv2.Edition) (*env, *influxv2.ManualClock) {
	t.Helper()
	clock := influxv2.NewManualClock(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))
	e := &env{
		t:      t,
		srv:    influxv2.NewTest(t, influxv2.Options{InfluxDB3: edition, Now: clock.Now}),
		org:    "ignored-by-influxdb3",
		bucket: "telegraf",
		dir:    t.TempDir(),
		log:    &testutil.CaptureLogger{Name: "outputs.influxdb_v2_rotating"},
	}
	e.path = filepath.Join(e.dir, "token")
	e.remember(e.srv.OperatorToken())
	t.Cleanup(e.checkNoTokenLeak)
	return e, clock
}

// v3Token creates the writer's token: a named admin token on Core, a
// resource token for the test database on Enterprise.
func (e *env) v3Token(edition influxv2.Edition, name string, expiry time.Duration) influxv2.V3Token {
	e.t.Helper()
	var (
		tk  influxv2.V3Token
		err error
	)
	if edition == influxv2.Core {
		tk, err = e.srv.CreateV3AdminToken(name, expiry)
	} else {
		tk, err = e.srv.CreateV3ResourceToken(name, expiry,
			influxv2.V3Permission{ResourceType: "db", ResourceNames: []string{e.bucket}, Actions: []string{"write"}})
	}
	if err != nil {
		e.t.Fatal(err)
	}
	e.remember(tk.Token)
	return tk
}

// checkExactlyOnce fails unless every metric is stored exactly once, each by
// one of the tokens given (by ID).
func checkExactlyOnce(t *testing.T, srv *influxv2.Server, ms []telegraf.Metric, by map[string][]influxv2.V3Token) {
	t.Helper()
	pts := srv.Points()
	got := map[string]influxv2.Point{}
	for _, p := range pts {
		if _, dup := got[p.Line]; dup {
			t.Errorf("point %s stored twice", p.Line)
		}
		got[p.Line] = p
	}
	for line := range lines(ms) {
		if _, ok := got[line]; !ok {
			t.Errorf("point %s lost", line)
		}
	}
	if len(pts) != len(ms) {
		t.Errorf("%d points stored, want %d", len(pts), len(ms))
	}
	for want, tokens := range by {
		ids := map[string]bool{}
		for _, tk := range tokens {
			ids[fmt.Sprint(tk.ID)] = true
		}
		if !ids[got[want].AuthID] {
			t.Errorf("point %s written by token %q, want one of %v", want, got[want].AuthID, tokens)
		}
	}
}

// TestInfluxDB3TokenExpiresWhileInUse: InfluxDB 3 refuses an expired token
// with the 401 of a deleted one. The writer reads its token file again, probes
// the newer token there (the empty write's 400 means valid), retries the
// refused batch with it, and loses nothing.
func TestInfluxDB3TokenExpiresWhileInUse(t *testing.T) {
	for _, edition := range []influxv2.Edition{influxv2.Core, influxv2.Enterprise} {
		t.Run(string(edition), func(t *testing.T) {
			e, clock := newV3Env(t, edition)
			old := e.v3Token(edition, "telegraf-1", time.Hour)
			e.publish(old.Token + "\n")
			// A debounce and a re-read interval longer than the test: only
			// the refusal makes the plugin read the file.
			p, ro := e.agent(func(p *InfluxDB) {
				p.TokenDebounce = config.Duration(time.Hour)
				p.TokenRereadInterval = config.Duration(time.Hour)
			}, 100)

			before := metrics(40, nil)
			addAll(ro, before)
			if err := e.write(ro); err != nil {
				t.Fatalf("write with the current token: %v", err)
			}
			next := e.v3Token(edition, "telegraf-2", 3*time.Hour)
			e.publish(next.Token + "\n")
			clock.Advance(time.Hour) // the old token expires while in use

			after := metrics(40, nil)
			addAll(ro, after)
			if err := e.write(ro); err != nil {
				t.Fatalf("write after the expiry: %v", err)
			}
			if ro.BufferLength() != 0 {
				t.Errorf("%d metrics left in the buffer", ro.BufferLength())
			}
			if got := p.StatsFields()["auth_failures"]; got != 1 {
				t.Errorf("auth_failures = %d, want 1", got)
			}
			by := map[string][]influxv2.V3Token{}
			for l := range lines(before) {
				by[l] = []influxv2.V3Token{old}
			}
			for l := range lines(after) {
				by[l] = []influxv2.V3Token{next}
			}
			checkExactlyOnce(t, e.srv, append(before, after...), by)
			refused := 0
			for _, r := range e.srv.Requests() {
				if r.Status == 401 {
					refused++
					if r.Fingerprint != rotation.Fingerprint(old.Token) {
						t.Errorf("a token other than the expired one was refused: %+v", r)
					}
				}
			}
			if refused != 1 {
				t.Errorf("%d refused requests, want the one write with the expired token", refused)
			}
		})
	}
}

// TestInfluxDB3ExpiredWithNothingNewerKeepsTheBatch: when the token expires
// before a new one is published, the batch stays buffered; the file that
// appears later is adopted and the batch goes out with it.
func TestInfluxDB3ExpiredWithNothingNewerKeepsTheBatch(t *testing.T) {
	e, clock := newV3Env(t, influxv2.Enterprise)
	old := e.v3Token(influxv2.Enterprise, "telegraf-1", time.Hour)
	e.publish(old.Token)
	p, ro := e.agent(func(p *InfluxDB) { p.Fallback = false }, 100)
	clock.Advance(time.Hour)

	ms := metrics(25, nil)
	addAll(ro, ms)
	err := e.write(ro)
	if err == nil || !strings.Contains(err.Error(), "batch kept until a valid token is available") ||
		!strings.Contains(err.Error(), "the request was not authenticated") {
		t.Fatalf("write with an expired token: %v, want the batch kept with the server's reason", err)
	}
	if ro.BufferLength() != len(ms) {
		t.Fatalf("buffer holds %d of %d metrics", ro.BufferLength(), len(ms))
	}
	next := e.v3Token(influxv2.Enterprise, "telegraf-2", 0)
	e.publish(next.Token)
	waitActive(t, p, next.Token)
	if err := e.write(ro); err != nil {
		t.Fatalf("write after the new token: %v", err)
	}
	by := map[string][]influxv2.V3Token{}
	for l := range lines(ms) {
		by[l] = []influxv2.V3Token{next}
	}
	checkExactlyOnce(t, e.srv, ms, by)
}

// TestInfluxDB3ForbiddenDatabaseKeepsTheBatch: an Enterprise resource token
// without the database is refused with 403; a token that has it, published
// next, takes the batch.
func TestInfluxDB3ForbiddenDatabaseKeepsTheBatch(t *testing.T) {
	e, _ := newV3Env(t, influxv2.Enterprise)
	wrong, err := e.srv.CreateV3ResourceToken("wrong-db", 0,
		influxv2.V3Permission{ResourceType: "db", ResourceNames: []string{"elsewhere"}, Actions: []string{"write"}})
	if err != nil {
		t.Fatal(err)
	}
	e.remember(wrong.Token)
	e.publish(wrong.Token)
	p, ro := e.agent(func(p *InfluxDB) { p.Fallback = false }, 100)
	ms := metrics(10, nil)
	addAll(ro, ms)
	if err := e.write(ro); err == nil || !strings.Contains(err.Error(), "unauthorized to perform requested action with the token") {
		t.Fatalf("write: %v, want the 403 kept", err)
	}
	right := e.v3Token(influxv2.Enterprise, "telegraf", 0)
	e.publish(right.Token)
	waitActive(t, p, right.Token)
	if err := e.write(ro); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, e.srv, ms, nil)
}

// TestInfluxDB3MalformedAuthorizationKeepsTheBatch: InfluxDB 3's 400 for an
// Authorization header it cannot parse refuses the token as sent, not the
// batch: it is kept, not dropped like a bad line would be.
func TestInfluxDB3MalformedAuthorizationKeepsTheBatch(t *testing.T) {
	e, _ := newV3Env(t, influxv2.Core)
	tk := e.v3Token(influxv2.Core, "telegraf", 0)
	e.publish(tk.Token)
	_, ro := e.agent(func(p *InfluxDB) { p.Fallback = false }, 100)
	e.srv.Inject(influxv2.Fault{Status: 400, Body: `{"error":"Authorization header was malformed, the request was not in the form of 'Authorization: <auth-scheme> <token>', supported auth-schemes are Bearer, Token and Basic"}`})
	ms := metrics(10, nil)
	addAll(ro, ms)
	err := e.write(ro)
	if err == nil || !strings.Contains(err.Error(), "batch kept") || !strings.Contains(err.Error(), "Authorization header was malformed") {
		t.Fatalf("write: %v, want the batch kept with the server's reason", err)
	}
	if ro.BufferLength() != len(ms) {
		t.Fatalf("buffer holds %d of %d metrics", ro.BufferLength(), len(ms))
	}
	if err := e.write(ro); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, e.srv, ms, nil)
}
