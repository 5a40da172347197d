package realtools

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// waitUntil polls cond every tick until it holds or timeout passes.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return
		}
		lastErr = err
		<-tick.C
	}
	t.Fatalf("%s: not within %v (last error: %v)", what, timeout, lastErr)
}

// TestE2EStockTelegrafWritesToInfluxd18 proves the helpers and the
// compatibility path everything else builds on: the stock outputs.influxdb_v2
// of a real Telegraf writes into a real InfluxDB 1.8 through /api/v2/write
// with a "user:password" token, and every point gathered arrives exactly once.
func TestE2EStockTelegrafWritesToInfluxd18(t *testing.T) {
	db := StartInfluxd(t)
	writerPass := RandomSecret()
	if err := db.CreateUser("writer", writerPass, db.DB); err != nil {
		t.Fatal(err)
	}

	conf := fmt.Sprintf(`
[agent]
  interval = "100ms"
  round_interval = false
  collection_jitter = "0s"
  flush_interval = "200ms"
  flush_jitter = "0s"
  metric_batch_size = 50
  omit_hostname = true
  debug = true

[[inputs.mock]]
  metric_name = "e2e_mock"
  [inputs.mock.tags]
    run = "stock"
  [[inputs.mock.step]]
    name = "seq"
    start = 0.0
    step = 1.0

[[outputs.influxdb_v2]]
  urls = [%q]
  token = "${INFLUX_TOKEN}"
  organization = "ignored-by-1.8"
  bucket = "%s/autogen"
`, db.URL, db.DB)
	token := V1Token("writer", writerPass)
	tg := StartTelegraf(t, conf, WithEnv("INFLUX_TOKEN="+token))
	if err := tg.WaitForLog("Loaded outputs: influxdb_v2", 30*time.Second); err != nil {
		t.Fatal(err)
	}

	countQ := `SELECT count("seq") FROM "e2e_mock" WHERE "run" = 'stock'`
	waitUntil(t, 60*time.Second, "20 points in influxd", func() (bool, error) {
		n, err := db.Count(countQ)
		return n >= 20, err
	})

	if err := tg.Stop(); err != nil {
		t.Fatalf("telegraf did not stop cleanly: %v", err)
	}

	// seq counts gathers from 0 without gaps; Telegraf flushes on SIGTERM,
	// so after the stop every gathered value must be stored exactly once
	// (a duplicate would overwrite its twin: same series, same timestamp).
	count, err := db.Count(countQ)
	if err != nil {
		t.Fatal(err)
	}
	maxSeq, err := db.Count(`SELECT max("seq") FROM "e2e_mock" WHERE "run" = 'stock'`)
	if err != nil {
		t.Fatal(err)
	}
	minSeq, err := db.Count(`SELECT min("seq") FROM "e2e_mock" WHERE "run" = 'stock'`)
	if err != nil {
		t.Fatal(err)
	}
	distinct, err := db.Count(`SELECT count(distinct("seq")) FROM "e2e_mock" WHERE "run" = 'stock'`)
	if err != nil {
		t.Fatal(err)
	}
	if count < 20 || minSeq != 0 || maxSeq != count-1 || distinct != count {
		t.Errorf("points: count=%d distinct=%d min=%d max=%d; want count>=20, seq 0..count-1 each once", count, distinct, minSeq, maxSeq)
	}

	// The 1.8 token is user:password: neither side may print it.
	for name, out := range map[string]string{"telegraf": tg.Output(), "influxd": db.Log()} {
		if strings.Contains(out, writerPass) || strings.Contains(out, db.AdminPassword) {
			t.Errorf("%s output contains a password", name)
		}
	}
}

// TestE2EInfluxd18WriteStatuses pins what a real InfluxDB 1.8 answers on
// /api/v2/write for each credential state (shared/influxdb-api.md): the
// rotation code decides on these statuses, so they are measured, not assumed.
func TestE2EInfluxd18WriteStatuses(t *testing.T) {
	db := StartInfluxd(t)
	pw := map[string]string{}
	for _, u := range []string{"w1", "dropped", "reader", "revoked", "moved"} {
		pw[u] = RandomSecret()
	}
	for _, u := range []string{"w1", "dropped", "revoked", "moved"} {
		if err := db.CreateUser(u, pw[u], db.DB); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.CreateUser("reader", pw["reader"], ""); err != nil {
		t.Fatal(err)
	}
	if err := db.Grant("READ", db.DB, "reader"); err != nil {
		t.Fatal(err)
	}
	if err := db.DropUser("dropped"); err != nil {
		t.Fatal(err)
	}
	if err := db.RevokeAll(db.DB, "revoked"); err != nil {
		t.Fatal(err)
	}
	oldMoved := pw["moved"]
	pw["moved"] = RandomSecret()
	if err := db.SetPassword("moved", pw["moved"]); err != nil {
		t.Fatal(err)
	}

	point := "e2e_status,case=x value=1\n"
	cases := []struct {
		name, auth, bucket, body string
		status                   int
		bodyHas                  string
	}{
		{"valid token, empty body (the probe)", "Token " + V1Token("w1", pw["w1"]), db.DB + "/autogen", "", 204, ""},
		{"valid token, a point", "Token " + V1Token("w1", pw["w1"]), db.DB + "/autogen", point, 204, ""},
		{"bucket without retention policy", "Token " + V1Token("w1", pw["w1"]), db.DB, point, 204, ""},
		{"wrong password", "Token " + V1Token("w1", "nope"), db.DB + "/autogen", "", 401, "authorization failed"},
		{"unknown user", "Token " + V1Token("ghost", "x"), db.DB + "/autogen", "", 401, "authorization failed"},
		{"dropped user", "Token " + V1Token("dropped", pw["dropped"]), db.DB + "/autogen", "", 401, "authorization failed"},
		{"old password after SET PASSWORD", "Token " + V1Token("moved", oldMoved), db.DB + "/autogen", "", 401, "authorization failed"},
		{"new password after SET PASSWORD", "Token " + V1Token("moved", pw["moved"]), db.DB + "/autogen", point, 204, ""},
		{"read-only user", "Token " + V1Token("reader", pw["reader"]), db.DB + "/autogen", point, 403, "not authorized to write"},
		{"read-only user, empty body", "Token " + V1Token("reader", pw["reader"]), db.DB + "/autogen", "", 403, "not authorized to write"},
		{"privileges revoked", "Token " + V1Token("revoked", pw["revoked"]), db.DB + "/autogen", "", 403, "not authorized to write"},
		{"unknown database", "Token " + V1Token("w1", pw["w1"]), "nodb/autogen", "", 404, "database not found"},
		{"Bearer scheme", "Bearer " + V1Token("w1", pw["w1"]), db.DB + "/autogen", "", 401, "bearer auth disabled"},
		{"no Authorization", "", db.DB + "/autogen", "", 401, ""},
		{"bad line", "Token " + V1Token("w1", pw["w1"]), db.DB + "/autogen", "garbage\n", 400, "unable to parse"},
	}
	client := &http.Client{Timeout: 10 * time.Second}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			u := db.URL + "/api/v2/write?" + url.Values{"bucket": {c.bucket}, "org": {"ignored"}}.Encode()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			if c.auth != "" {
				req.Header.Set("Authorization", c.auth)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.status {
				t.Errorf("status %d, want %d (body %s)", resp.StatusCode, c.status, body)
			}
			if c.bodyHas != "" && !strings.Contains(string(body), `"error":`) {
				t.Errorf("body %s is not the 1.x {\"error\": ...} shape", body)
			}
			if !strings.Contains(string(body), c.bodyHas) {
				t.Errorf("body %s does not contain %q", body, c.bodyHas)
			}
		})
	}

	// Two 204 writes of the same point (valid, new password) and one without
	// the retention policy: same series and no explicit timestamp, so at
	// least one point; and none from the refused requests.
	n, err := db.Count(`SELECT count("value") FROM "e2e_status"`)
	if err != nil {
		t.Fatal(err)
	}
	if n < 1 || n > 3 {
		t.Errorf("%d points stored, want 1..3 from the three accepted writes", n)
	}
	for u, p := range pw {
		if strings.Contains(db.Log(), p) {
			t.Errorf("influxd log contains the password of %s", u)
		}
	}
}

// TestE2EInfluxdStopStart checks the outage helpers: writes fail while the
// server is down and succeed with the same token after it is back, with the
// data kept.
func TestE2EInfluxdStopStart(t *testing.T) {
	db := StartInfluxd(t)
	pass := RandomSecret()
	if err := db.CreateUser("w", pass, db.DB); err != nil {
		t.Fatal(err)
	}
	write := func(line string) (int, error) {
		req, err := http.NewRequest(http.MethodPost, db.URL+"/api/v2/write?bucket="+db.DB, strings.NewReader(line))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Token "+V1Token("w", pass))
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if st, err := write("outage,phase=before v=1\n"); err != nil || st != 204 {
		t.Fatalf("before: %d %v", st, err)
	}
	if err := db.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := write("outage,phase=during v=1\n"); err == nil {
		t.Fatal("write to a stopped influxd succeeded")
	}
	if err := db.Start(); err != nil {
		t.Fatal(err)
	}
	if st, err := write("outage,phase=after v=1\n"); err != nil || st != 204 {
		t.Fatalf("after: %d %v", st, err)
	}
	n, err := db.Count(`SELECT count("v") FROM "outage"`)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("%d points after restart, want 2 (before and after)", n)
	}
}
