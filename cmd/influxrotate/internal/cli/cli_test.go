package cli

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/controller"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/state"
	"github.com/influxrotate/influxrotate/rotation"
	"github.com/influxrotate/influxrotate/testutil/capture"
	"github.com/influxrotate/influxrotate/testutil/influxv2"
	"github.com/influxrotate/influxrotate/testutil/wait"
)

type cliEnv struct {
	t       *testing.T
	srv     *influxv2.Server
	dir     string
	cfg     string
	initial influxv2.Authorization
	out     capture.Buffer // everything printed, by every run
}

func newCLIEnv(t *testing.T, extra string) *cliEnv {
	srv := influxv2.NewTest(t, influxv2.Options{})
	e := &cliEnv{t: t, srv: srv, dir: t.TempDir()}
	srv.CreateOrg("acme")
	srv.CreateBucket("acme", "telemetry")
	srv.CreateBucket("acme", "monitoring")
	e.initial = srv.WriteAuthorization("acme", "telemetry")
	must(t, os.WriteFile(filepath.Join(e.dir, "op"), []byte(srv.OperatorToken()), 0o600))
	must(t, os.WriteFile(filepath.Join(e.dir, "token"), []byte(e.initial.Token), 0o600))
	e.cfg = filepath.Join(e.dir, "c.toml")
	must(t, os.WriteFile(e.cfg, []byte(fmt.Sprintf(`
url = %q
operator_token_file = "op"
state_dir = "state"
audit_log = "audit.jsonl"
[retry]
attempts = 3
initial = "1ms"
max = "2ms"
[[credential]]
name = "telegraf"
org = "acme"
authorization_id = %q
max_age = "1h"
grace = "10ms"
observe = "10ms"
  [[credential.target]]
  type = "file"
  path = "token"
%s`, srv.URL(), e.initial.ID, extra)), 0o600))
	return e
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// main runs the command line in process and returns its exit code and output.
func (e *cliEnv) main(ctx context.Context, hook func(string), args ...string) (int, string) {
	var out capture.Buffer
	w := &teeWriter{a: &out, b: &e.out}
	env := Env{Stdout: w, Stderr: w, Getenv: func(string) string { return "" }}
	if hook != nil {
		env.Options = func(o *controller.Options) { o.Hook = hook }
	}
	code := Main(ctx, args, env)
	return code, out.String()
}

type teeWriter struct{ a, b *capture.Buffer }

func (t *teeWriter) Write(p []byte) (int, error) {
	_, _ = t.a.Write(p)
	return t.b.Write(p)
}

func (e *cliEnv) token() string {
	data, err := os.ReadFile(filepath.Join(e.dir, "token"))
	must(e.t, err)
	tok, err := rotation.ParseToken(data)
	must(e.t, err)
	return tok
}

func (e *cliEnv) checkNoLeak() {
	e.t.Helper()
	var tokens []string
	tokens = append(tokens, e.srv.OperatorToken(), e.initial.Token)
	for _, a := range e.srv.Authorizations() {
		tokens = append(tokens, a.Token)
	}
	audit, _ := os.ReadFile(filepath.Join(e.dir, "audit.jsonl"))
	st, _ := os.ReadFile(filepath.Join(e.dir, "state", "telegraf.json"))
	for _, out := range []string{e.out.String(), string(audit), string(st)} {
		for _, tok := range tokens {
			if tok != "" && strings.Contains(out, tok) {
				e.t.Errorf("a token leaked (%s)", rotation.Fingerprint(tok))
			}
		}
	}
}

func TestUsageAndConfigErrorsExit2(t *testing.T) {
	e := newCLIEnv(t, "")
	bad := filepath.Join(e.dir, "bad.toml")
	data, _ := os.ReadFile(e.cfg)
	must(t, os.WriteFile(bad, append(data, []byte("\nsurprise = 1\n")...), 0o600))
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "usage"},
		{[]string{"frobnicate"}, "unknown command"},
		{[]string{"rotate"}, "-config is required"},
		{[]string{"rotate", "-config", bad}, "unknown option(s): credential.target.surprise"},
		{[]string{"rotate", "-config", e.cfg, "-credential", "nope"}, `no [[credential]] named "nope"`},
		{[]string{"rollback", "-config", e.cfg}, "-credential is required"},
		{[]string{"audit", "verify"}, "usage"},
	} {
		code, out := e.main(context.Background(), nil, c.args...)
		if code != ExitConfig || !strings.Contains(out, c.want) {
			t.Errorf("%v: exit %d, output %q; want 2 and %q", c.args, code, out, c.want)
		}
	}
}

func TestRotateStatusAndAudit(t *testing.T) {
	e := newCLIEnv(t, "")
	code, out := e.main(context.Background(), nil, "rotate", "-config", e.cfg, "-dry-run", "-force")
	if code != ExitOK || !strings.Contains(out, "would rotate authorization "+e.initial.ID) {
		t.Fatalf("dry run: %d %q", code, out)
	}
	if e.token() != e.initial.Token {
		t.Fatal("dry run changed the target")
	}
	code, out = e.main(context.Background(), nil, "rotate", "-config", e.cfg, "-force")
	if code != ExitOK || !strings.Contains(out, "outcome=ok") {
		t.Fatalf("rotate: %d %q", code, out)
	}
	if e.token() == e.initial.Token || !e.srv.IsActive(e.token()) {
		t.Fatal("the target does not hold an active new token")
	}
	code, out = e.main(context.Background(), nil, "rotate", "-config", e.cfg)
	if code != ExitOK || !strings.Contains(out, "outcome=not_due") {
		t.Errorf("second rotate: %d %q", code, out)
	}
	code, out = e.main(context.Background(), nil, "status", "-config", e.cfg)
	if code != ExitOK || !strings.Contains(out, "fingerprint="+rotation.Fingerprint(e.token())) || !strings.Contains(out, "last=ok") {
		t.Errorf("status: %d %q", code, out)
	}
	auditPath := filepath.Join(e.dir, "audit.jsonl")
	code, out = e.main(context.Background(), nil, "audit", "verify", auditPath)
	if code != ExitOK || !strings.Contains(out, "hash chain valid") {
		t.Fatalf("audit verify: %d %q", code, out)
	}
	// Tamper with the third record: verify names it.
	data, _ := os.ReadFile(auditPath)
	lines := strings.SplitAfter(string(data), "\n")
	lines[2] = strings.Replace(lines[2], `"outcome":"ok"`, `"outcome":"OK"`, 1)
	must(t, os.WriteFile(auditPath, []byte(strings.Join(lines, "")), 0o600))
	code, out = e.main(context.Background(), nil, "audit", "verify", auditPath)
	if code != ExitFailed || !strings.Contains(out, "line 3") {
		t.Errorf("tampered audit verify: %d %q, want 1 naming line 3", code, out)
	}
	e.checkNoLeak()
}

func TestExitCodesOfFailures(t *testing.T) {
	t.Run("interrupted exits 3 and the next run resumes", func(t *testing.T) {
		e := newCLIEnv(t, "")
		for range 3 {
			e.srv.Inject(influxv2.Fault{Path: "/api/v2/orgs", Status: 503})
		}
		code, out := e.main(context.Background(), nil, "rotate", "-config", e.cfg, "-force")
		if code != ExitInterrupted {
			t.Fatalf("exit %d, want 3: %q", code, out)
		}
		if code, out := e.main(context.Background(), nil, "status", "-config", e.cfg); code != 0 || !strings.Contains(out, "interrupted=provision") ||
			!strings.Contains(out, " phases=provision,publish,verify,") || !strings.HasSuffix(strings.TrimSpace(out), ",deactivate,observe,delete,done") {
			t.Errorf("status: %d %q", code, out)
		}
		if code, out := e.main(context.Background(), nil, "rotate", "-config", e.cfg); code != ExitOK {
			t.Fatalf("resume: %d %q", code, out)
		}
		e.checkNoLeak()
	})
	t.Run("refused provision exits 1 with the old token active", func(t *testing.T) {
		e := newCLIEnv(t, "")
		orgID := e.initial.OrgID
		op := e.srv.CreateAuthorization("acme", "limited",
			influxv2.Permission{Action: "read", Resource: influxv2.Resource{Type: "authorizations", OrgID: orgID}},
			influxv2.Permission{Action: "write", Resource: influxv2.Resource{Type: "authorizations", OrgID: orgID}},
			influxv2.Permission{Action: "read", Resource: influxv2.Resource{Type: "orgs", ID: orgID}},
			influxv2.Permission{Action: "write", Resource: influxv2.Resource{Type: "users"}})
		must(t, os.WriteFile(filepath.Join(e.dir, "op"), []byte(op.Token), 0o600))
		code, out := e.main(context.Background(), nil, "rotate", "-config", e.cfg, "-force")
		if code != ExitFailed || !e.srv.IsActive(e.initial.Token) || e.token() != e.initial.Token {
			t.Fatalf("exit %d, want 1 with the old token in place: %q", code, out)
		}
	})
}

func TestRollbackDuringObserve(t *testing.T) {
	e := newCLIEnv(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	code, out := e.main(ctx, func(p string) {
		if p == "observe:before" {
			cancel() // the operator stops the controller during observe
		}
	}, "rotate", "-config", e.cfg, "-force")
	if code != ExitInterrupted {
		t.Fatalf("rotate: %d %q", code, out)
	}
	if e.srv.IsActive(e.initial.Token) {
		t.Fatal("old token active during observe")
	}
	code, out = e.main(context.Background(), nil, "rollback", "-config", e.cfg, "-credential", "telegraf")
	if code != ExitOK || !strings.Contains(out, "outcome=rolled_back") {
		t.Fatalf("rollback: %d %q", code, out)
	}
	if !e.srv.IsActive(e.initial.Token) || e.token() != e.initial.Token {
		t.Error("the old token is not back")
	}
	e.checkNoLeak()
}

func TestRunResumesAndStops(t *testing.T) {
	e := newCLIEnv(t, "[metrics]\norg = \"acme\"\nbucket = \"monitoring\"\n")
	// Leave a cycle interrupted at grace.
	ctx, cancel := context.WithCancel(context.Background())
	code, _ := e.main(ctx, func(p string) {
		if p == "grace:before" {
			cancel()
		}
	}, "rotate", "-config", e.cfg, "-force")
	if code != ExitInterrupted {
		t.Fatalf("setup: exit %d", code)
	}
	// The daemon resumes it at start; stop it once the journal shows it done.
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		c, _ := e.main(runCtx, nil, "run", "-config", e.cfg)
		done <- c
	}()
	store := state.NewStore(filepath.Join(e.dir, "state"))
	var st *state.State
	finished := wait.Check(t, 20*time.Second, "the daemon to finish the interrupted cycle", func() bool {
		var err error
		st, err = store.Load("telegraf")
		return err == nil && st.Cycle == nil && st.Last.Outcome == "ok" && strings.Contains(e.out.String(), "outcome=ok")
	})
	stop()
	if !finished {
		t.Fatalf("the daemon did not finish the interrupted cycle: %+v", st)
	}
	select {
	case code := <-done:
		if code != ExitOK {
			t.Errorf("run exit %d after SIGTERM-like stop while idle", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the daemon did not stop")
	}
	// The metrics point.
	var found bool
	for _, p := range e.srv.Points() {
		if p.Measurement == "token_rotation" && p.Bucket == "monitoring" {
			found = true
			for _, f := range []string{"rotation_latency_ms", "grace_ms", "revocation_attempts", "outcome"} {
				if _, ok := p.Fields[f]; !ok {
					t.Errorf("metrics point lacks %s: %v", f, p.Fields)
				}
			}
			if p.Fields["outcome"] != "ok" {
				t.Errorf("outcome %v", p.Fields["outcome"])
			}
		}
	}
	if !found {
		t.Error("no token_rotation point in the monitoring bucket")
	}
	e.checkNoLeak()
}

// TestTornAuditLineIsRecovered: a crash in the middle of an audit append
// leaves a torn last line; the next run moves it aside, records that, and
// rotates, and audit verify reports the recovery.
func TestTornAuditLineIsRecovered(t *testing.T) {
	e := newCLIEnv(t, "")
	if code, out := e.main(context.Background(), nil, "rotate", "-config", e.cfg, "-force"); code != ExitOK {
		t.Fatalf("rotate: %d %q", code, out)
	}
	auditPath := filepath.Join(e.dir, "audit.jsonl")
	data, err := os.ReadFile(auditPath)
	must(t, err)
	lines := strings.SplitAfter(string(data), "\n")
	torn := lines[0][:len(lines[0])/2]
	f, err := os.OpenFile(auditPath, os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	_, err = f.WriteString(torn)
	must(t, err)
	must(t, f.Close())

	code, out := e.main(context.Background(), nil, "rotate", "-config", e.cfg, "-force")
	if code != ExitOK || !strings.Contains(out, "outcome=ok") || !strings.Contains(out, "torn record") {
		t.Fatalf("rotate after a torn audit line: %d %q, want ok and a warning", code, out)
	}
	aside, _ := filepath.Glob(auditPath + ".torn-*")
	if len(aside) != 1 {
		t.Fatalf("moved-aside files %v, want one", aside)
	}
	if got, _ := os.ReadFile(aside[0]); string(got) != torn {
		t.Errorf("moved-aside bytes %q, want %q", got, torn)
	}
	code, out = e.main(context.Background(), nil, "audit", "verify", auditPath)
	if code != ExitOK || !strings.Contains(out, "hash chain valid") || !strings.Contains(out, "recovered:") ||
		!strings.Contains(out, filepath.Base(aside[0])) {
		t.Fatalf("audit verify: %d %q, want valid and the recovery reported", code, out)
	}
	e.checkNoLeak()
}

// TestKeyedAuditChain: with audit_key_file the chain verifies with the key
// only, and an unreadable key is a configuration error.
func TestKeyedAuditChain(t *testing.T) {
	e := newCLIEnv(t, "")
	keyPath := filepath.Join(e.dir, "audit.key")
	must(t, os.WriteFile(keyPath, []byte(strings.Repeat("0123456789abcdef", 4)+"\n"), 0o600))
	cfg, _ := os.ReadFile(e.cfg)
	must(t, os.WriteFile(e.cfg, append([]byte("audit_key_file = \"audit.key\"\n"), cfg...), 0o600))
	if code, out := e.main(context.Background(), nil, "rotate", "-config", e.cfg, "-force"); code != ExitOK {
		t.Fatalf("rotate: %d %q", code, out)
	}
	auditPath := filepath.Join(e.dir, "audit.jsonl")
	if code, out := e.main(context.Background(), nil, "audit", "verify", "-key-file", keyPath, auditPath); code != ExitOK ||
		!strings.Contains(out, "keyed hash chain valid") {
		t.Fatalf("verify with the key: %d %q", code, out)
	}
	if code, out := e.main(context.Background(), nil, "audit", "verify", auditPath); code != ExitFailed ||
		!strings.Contains(out, "needs the audit key file") {
		t.Fatalf("verify without the key: %d %q, want 1 saying the key is needed", code, out)
	}
	if code, out := e.main(context.Background(), nil, "audit", "verify", "-key-file", filepath.Join(e.dir, "nope"), auditPath); code != ExitConfig ||
		!strings.Contains(out, "-key-file") {
		t.Fatalf("verify with a missing key file: %d %q, want 2", code, out)
	}
	must(t, os.WriteFile(keyPath, []byte("k3y\n"), 0o600))
	if code, out := e.main(context.Background(), nil, "rotate", "-config", e.cfg, "-force"); code != ExitConfig ||
		!strings.Contains(out, "audit_key_file") || strings.Contains(out, "k3y") {
		t.Fatalf("rotate with a short key: %d %q, want 2 naming audit_key_file, not the key", code, out)
	}
	e.checkNoLeak()
}

// report writes client's adoption report with tok, as a writer does.
func (e *cliEnv) report(client, tok string) {
	e.t.Helper()
	line := fmt.Sprintf("%s,client_id=%s fingerprint=%q,previous=\"\",rotations=0i %d\n",
		rotation.DefaultAdoptionMeasurement, client, rotation.Fingerprint(tok), time.Now().UnixNano())
	req, err := http.NewRequest(http.MethodPost, e.srv.URL()+"/api/v2/write?org=acme&bucket=telemetry&precision=ns", strings.NewReader(line))
	must(e.t, err)
	req.Header.Set("Authorization", "Token "+tok)
	resp, err := http.DefaultClient.Do(req)
	must(e.t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		e.t.Fatalf("report: status %d", resp.StatusCode)
	}
}

// TestAdoptionGateExitCodesAndStatus: stragglers make rotate exit 1 with
// both tokens valid, status shows who is on which token, and the run after
// the last writer moved completes.
func TestAdoptionGateExitCodesAndStatus(t *testing.T) {
	e := newCLIEnv(t, `
  [credential.adoption]
  bucket = "telemetry"
  timeout = "100ms"
  poll_interval = "10ms"
[metrics]
org = "acme"
bucket = "monitoring"
`)
	e.report("edge-1", e.initial.Token)
	e.report("edge-2", e.initial.Token)
	code, out := e.main(context.Background(), nil, "rotate", "-config", e.cfg, "-force")
	if code != ExitFailed || !strings.Contains(out, "at phase adopt") || !strings.Contains(out, "edge-1, edge-2") {
		t.Fatalf("rotate: %d %q, want exit 1 at adopt naming both writers", code, out)
	}
	newTok := e.token()
	if !e.srv.IsActive(e.initial.Token) || !e.srv.IsActive(newTok) {
		t.Fatal("both tokens must stay valid")
	}
	e.report("edge-1", newTok)
	code, out = e.main(context.Background(), nil, "status", "-config", e.cfg)
	oldFP, newFP := rotation.Fingerprint(e.initial.Token), rotation.Fingerprint(newTok)
	for _, want := range []string{"interrupted=adopt", "writer=edge-1 fingerprint=" + newFP + " token=new",
		"writer=edge-2 fingerprint=" + oldFP + " token=old", "last_report="} {
		if !strings.Contains(out, want) {
			t.Errorf("status (exit %d) lacks %q:\n%s", code, want, out)
		}
	}
	if code, out := e.main(context.Background(), nil, "rotate", "-config", e.cfg); code != ExitFailed || !strings.Contains(out, "not on the new token: edge-2") {
		t.Fatalf("rerun with edge-2 behind: %d %q", code, out)
	}
	e.report("edge-2", newTok)
	if code, out := e.main(context.Background(), nil, "rotate", "-config", e.cfg); code != ExitOK || !strings.Contains(out, "clients_adopted=2 clients_missing=0") {
		t.Fatalf("rerun after edge-2 moved: %d %q", code, out)
	}
	if e.srv.IsActive(e.initial.Token) {
		t.Error("the old token is still active")
	}
	var metrics []influxv2.Point
	for _, p := range e.srv.Points() {
		if p.Measurement == "token_rotation" {
			metrics = append(metrics, p)
		}
	}
	if len(metrics) != 1 || metrics[0].Fields["clients_adopted"] != int64(2) || metrics[0].Fields["clients_missing"] != int64(0) ||
		metrics[0].Fields["adoption_ms"] == nil {
		t.Errorf("token_rotation points %+v, want one with adoption_ms, clients_adopted=2, clients_missing=0", metrics)
	}
	code, out = e.main(context.Background(), nil, "status", "-config", e.cfg)
	if code != ExitOK || strings.Count(out, "token=current") != 2 {
		t.Errorf("status after the rotation: %d %q", code, out)
	}
	e.checkNoLeak()
}
