package realtools

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Influxd is a running InfluxDB 1.8 server with authentication enabled, an
// admin user and one database.
//
// Through its v2 compatibility API a writer uses
// POST {URL}/api/v2/write?bucket={DB}/autogen with
// "Authorization: Token user:password" (see V1Token).
type Influxd struct {
	URL           string // http://127.0.0.1:<port>
	AdminUser     string
	AdminPassword string
	DB            string // created at start
	LogPath       string // influxd's stdout and stderr

	t        testing.TB
	bin      string
	confPath string
	proc     *process
	client   *http.Client
}

// Startup and shutdown bounds. influxd 1.8 starts in well under a second on
// an idle machine; the margin is for two cores busy compiling.
const (
	influxdStartTimeout = 60 * time.Second
	influxdStopGrace    = 15 * time.Second
	influxdStartTries   = 3
)

// DefaultDB is the database StartInfluxd creates.
const DefaultDB = "telemetry"

// V1Token is the token InfluxDB 1.8 accepts on /api/v2/write.
func V1Token(user, password string) string { return user + ":" + password }

// StartInfluxd starts .tools/bin/influxd on free loopback ports with its
// data in t.TempDir(), waits for /ping, creates the admin user and DefaultDB,
// and stops the server when the test ends.
func StartInfluxd(t testing.TB) *Influxd {
	t.Helper()
	bin := Binary(t, "influxd")
	dir := t.TempDir()
	d := &Influxd{
		AdminUser:     "admin",
		AdminPassword: "admin-" + RandomSecret(),
		DB:            DefaultDB,
		LogPath:       filepath.Join(dir, "influxd.log"),
		t:             t,
		client:        &http.Client{Timeout: 30 * time.Second},
	}

	var lastErr error
	for try := 1; try <= influxdStartTries; try++ {
		lastErr = d.start(bin, dir)
		if lastErr == nil {
			break
		}
		// A port taken between FreePort and influxd's bind is the only
		// failure worth another try.
		if !strings.Contains(lastErr.Error(), "address already in use") {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("realtools: influxd: %v", lastErr)
	}
	t.Cleanup(func() {
		if err := d.proc.stop(influxdStopGrace); err != nil {
			t.Logf("realtools: stopping influxd: %v", err)
		}
		d.proc.dumpOnFailure(t, 60)
	})

	// With auth on and no user yet, influxd accepts exactly one statement
	// unauthenticated: creating the first admin.
	if _, err := d.query(false, "", fmt.Sprintf("CREATE USER %s WITH PASSWORD %s WITH ALL PRIVILEGES",
		QuoteIdent(d.AdminUser), QuoteString(d.AdminPassword))); err != nil {
		t.Fatalf("realtools: influxd: creating admin: %v", err)
	}
	if _, err := d.Query("CREATE DATABASE " + QuoteIdent(d.DB)); err != nil {
		t.Fatalf("realtools: influxd: creating database: %v", err)
	}
	return d
}

func (d *Influxd) start(bin, dir string) error {
	httpPort, rpcPort := FreePort(d.t), FreePort(d.t)
	conf := fmt.Sprintf(`reporting-disabled = true
bind-address = "127.0.0.1:%d"

[meta]
  dir = %q

[data]
  dir = %q
  wal-dir = %q
  query-log-enabled = true

[http]
  enabled = true
  bind-address = "127.0.0.1:%d"
  auth-enabled = true
  log-enabled = true
  flux-enabled = false
  pprof-enabled = false

[monitor]
  store-enabled = false

[continuous_queries]
  enabled = false

[subscriber]
  enabled = false

[logging]
  level = "info"
`, rpcPort, filepath.Join(dir, "meta"), filepath.Join(dir, "data"), filepath.Join(dir, "wal"), httpPort)
	d.bin = bin
	d.confPath = filepath.Join(dir, "influxd.conf")
	if err := os.WriteFile(d.confPath, []byte(conf), 0o600); err != nil {
		return err
	}
	d.URL = fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	return d.launch()
}

// launch runs influxd on the written config and waits until it answers.
func (d *Influxd) launch() error {
	logFile, err := os.OpenFile(d.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	d.t.Cleanup(func() { _ = logFile.Close() })

	// influxd lets INFLUXDB_* variables override its config file.
	proc, err := startProcess("influxd", d.bin, []string{"run", "-config", d.confPath},
		childEnv([]string{"INFLUXDB_"}), logFile, redactLine)
	if err != nil {
		return err
	}
	d.proc = proc
	if err := d.waitReady(); err != nil {
		proc.kill()
		return err
	}
	return nil
}

// waitReady polls /ping until 204, bounded, and gives up early if the
// process exits.
func (d *Influxd) waitReady() error {
	deadline := time.Now().Add(influxdStartTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, d.URL+"/ping", nil)
		resp, err := d.client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		cancel()
		if err == nil && resp.StatusCode == http.StatusNoContent {
			return nil
		}
		select {
		case <-d.proc.done:
			return fmt.Errorf("exited during start-up (%v):\n%s", d.proc.err, Tail(d.proc.out.String(), 40))
		case <-tick.C:
		}
	}
	return fmt.Errorf("no 204 from %s/ping within %v:\n%s", d.URL, influxdStartTimeout, Tail(d.proc.out.String(), 40))
}

// QueryResponse is the JSON answer of /query.
type QueryResponse struct {
	Results []QueryResult `json:"results"`
	Error   string        `json:"error,omitempty"`
}

// QueryResult is one statement's result.
type QueryResult struct {
	StatementID int      `json:"statement_id"`
	Series      []Series `json:"series,omitempty"`
	Error       string   `json:"error,omitempty"`
}

// Series is one series of a result; numbers are json.Number.
type Series struct {
	Name    string            `json:"name"`
	Tags    map[string]string `json:"tags,omitempty"`
	Columns []string          `json:"columns"`
	Values  [][]any           `json:"values"`
}

// Query runs InfluxQL as the admin against DB. A statement error is an
// error. Passwords in q never appear in the error.
func (d *Influxd) Query(q string) (*QueryResponse, error) {
	return d.query(true, d.DB, q)
}

func (d *Influxd) query(auth bool, db, q string) (*QueryResponse, error) {
	form := url.Values{"q": {q}}
	if db != "" {
		form.Set("db", db)
	}
	req, err := http.NewRequest(http.MethodPost, d.URL+"/query", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth {
		req.SetBasicAuth(d.AdminUser, d.AdminPassword)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", redact(q), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", redact(q), err)
	}
	var out QueryResponse
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("query %q: status %d, undecodable body %.200q: %w", redact(q), resp.StatusCode, body, err)
	}
	if resp.StatusCode != http.StatusOK || out.Error != "" {
		return &out, fmt.Errorf("query %q: status %d: %s", redact(q), resp.StatusCode, out.Error)
	}
	for _, r := range out.Results {
		if r.Error != "" {
			return &out, fmt.Errorf("query %q: statement %d: %s", redact(q), r.StatementID, r.Error)
		}
	}
	return &out, nil
}

// Count runs q and returns the first value of the first row as an integer,
// 0 when there is no row (count over no points returns no series).
func (d *Influxd) Count(q string) (int64, error) {
	resp, err := d.Query(q)
	if err != nil {
		return 0, err
	}
	if len(resp.Results) == 0 || len(resp.Results[0].Series) == 0 || len(resp.Results[0].Series[0].Values) == 0 {
		return 0, nil
	}
	row := resp.Results[0].Series[0].Values[0]
	if len(row) < 2 {
		return 0, fmt.Errorf("query %q: row %v has no value column", q, row)
	}
	n, ok := row[1].(json.Number)
	if !ok {
		return 0, fmt.Errorf("query %q: value %v is not a number", q, row[1])
	}
	if i, err := n.Int64(); err == nil {
		return i, nil
	}
	f, err := n.Float64()
	return int64(f), err
}

// CreateUser creates a non-admin user and, when grantWriteOn names a
// database, grants it WRITE there.
func (d *Influxd) CreateUser(name, password, grantWriteOn string) error {
	if _, err := d.Query(fmt.Sprintf("CREATE USER %s WITH PASSWORD %s", QuoteIdent(name), QuoteString(password))); err != nil {
		return err
	}
	if grantWriteOn == "" {
		return nil
	}
	return d.Grant("WRITE", grantWriteOn, name)
}

// Grant gives privilege (READ, WRITE or ALL) on db to user.
func (d *Influxd) Grant(privilege, db, user string) error {
	_, err := d.Query(fmt.Sprintf("GRANT %s ON %s TO %s", privilege, QuoteIdent(db), QuoteIdent(user)))
	return err
}

// RevokeAll removes every privilege of user on db; writes then get 403.
func (d *Influxd) RevokeAll(db, user string) error {
	_, err := d.Query(fmt.Sprintf("REVOKE ALL PRIVILEGES ON %s FROM %s", QuoteIdent(db), QuoteIdent(user)))
	return err
}

// SetPassword changes user's password: the old "user:old" token gets 401.
func (d *Influxd) SetPassword(user, password string) error {
	_, err := d.Query(fmt.Sprintf("SET PASSWORD FOR %s = %s", QuoteIdent(user), QuoteString(password)))
	return err
}

// DropUser deletes user; its token gets 401 from then on.
func (d *Influxd) DropUser(name string) error {
	_, err := d.Query("DROP USER " + QuoteIdent(name))
	return err
}

// Log returns influxd's output since it last started (LogPath has all of it).
func (d *Influxd) Log() string { return d.proc.out.String() }

// Stop shuts influxd down (SIGTERM, bounded) so a test can see writers cope
// with a server that is gone; Start brings it back.
func (d *Influxd) Stop() error { return d.proc.stop(influxdStopGrace) }

// Start starts a stopped influxd again on the same address with the same
// data, users and database.
func (d *Influxd) Start() error {
	if !d.proc.exited() {
		return fmt.Errorf("influxd at %s is still running", d.URL)
	}
	return d.launch()
}

// QuoteIdent quotes an InfluxQL identifier.
func QuoteIdent(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// QuoteString quotes an InfluxQL string literal.
func QuoteString(s string) string {
	return `'` + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + `'`
}

// passwordLiteral finds the string literal after PASSWORD in
// "WITH PASSWORD 'p'" and "SET PASSWORD FOR u = 'p'".
var passwordLiteral = regexp.MustCompile(`(?i)(PASSWORD\b[^'\n]{0,200}?)'(?:[^'\\\n]|\\.)*'`)

// redact hides password literals: on InfluxDB 1.8, user:password is the
// token, and a token never reaches test output.
func redact(q string) string { return passwordLiteral.ReplaceAllString(q, "$1[REDACTED]") }

// redactLine is influxd's output filter: its query log redacts passwords,
// but its HTTP access log prints the /query form, literals included.
func redactLine(line []byte) []byte { return passwordLiteral.ReplaceAll(line, []byte("$1[REDACTED]")) }

// RandomSecret returns a fresh random string for passwords in tests.
func RandomSecret() string { return rand.Text() }
