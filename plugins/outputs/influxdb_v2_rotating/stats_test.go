package influxdb_v2_rotating

import (
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/influxrotate/influxrotate/testutil/influxv2"
)

// write_throttled counts exactly the answers that ask to back off, and
// write_transport_errors exactly the requests that got no answer; other
// failures and successes count in neither. The agent's selfstat collector
// reports both, as the execd binary's StatsFields does.
func TestWriteThrottledAndTransportErrorCounters(t *testing.T) {
	e := newEnv(t)
	a := e.auth()
	e.publish(a.Token)
	p, ro := e.agent(nil, 100)
	want := func(throttled, transport int64) {
		t.Helper()
		got := p.StatsFields()
		if got["write_throttled"] != throttled || got["write_transport_errors"] != transport {
			t.Fatalf("write_throttled = %d, write_transport_errors = %d; want %d and %d",
				got["write_throttled"], got["write_transport_errors"], throttled, transport)
		}
	}
	write := func(f *influxv2.Fault) {
		t.Helper()
		addAll(ro, metrics(3, nil))
		if f != nil {
			e.srv.Inject(*f)
		}
		err := e.write(ro)
		if (err != nil) != (f != nil) {
			t.Fatalf("fault %+v: Write error %v", f, err)
		}
		p.retryAt.Store(0) // the back-off is tested on its own
		if f != nil {
			if err := e.write(ro); err != nil { // the kept batch goes out
				t.Fatalf("after fault %+v: Write: %v", f, err)
			}
		}
	}
	write(nil)
	want(0, 0)
	for i, status := range []int{http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout} {
		write(&influxv2.Fault{Status: status})
		want(int64(i+1), 0)
	}
	write(&influxv2.Fault{Status: http.StatusInternalServerError})
	want(4, 0)
	write(&influxv2.Fault{ResetConnection: true})
	want(4, 1)

	got := map[string]int64{}
	for _, m := range selfstatMetrics(t, "internal_token_rotation", t.Name()) {
		for _, f := range m.FieldList() {
			if strings.HasPrefix(f.Key, "write_") {
				got[f.Key] = f.Value.(int64)
			}
		}
	}
	if got["write_throttled"] != 4 || got["write_transport_errors"] != 1 {
		t.Fatalf("selfstat reports %v, want write_throttled 4 and write_transport_errors 1", got)
	}
}

// A server that is not listening is a transport error, not a throttle.
func TestWriteTransportErrorWhenNothingListens(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	e.publish(e.auth().Token)
	p := e.plugin(func(p *InfluxDB) {
		p.URLs = []string{"http://" + addr}
		p.Probe = ProbeNone
	})
	if err := p.Write(metrics(2, nil)); err == nil {
		t.Fatal("Write to a closed port succeeded")
	}
	if got := p.StatsFields(); got["write_transport_errors"] != 1 || got["write_throttled"] != 0 {
		t.Fatalf("write_transport_errors = %d, write_throttled = %d; want 1 and 0", got["write_transport_errors"], got["write_throttled"])
	}
}
