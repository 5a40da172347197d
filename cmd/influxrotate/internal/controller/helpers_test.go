package controller

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/backend"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/config"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/state"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/target"
	"github.com/influxrotate/influxrotate/rotation"
	"github.com/influxrotate/influxrotate/testutil/capture"
	"github.com/influxrotate/influxrotate/testutil/influxv2"
	"github.com/influxrotate/influxrotate/testutil/k8srbac"
)

// recorder wraps a backend and keeps every token it creates, so that tests
// can scan all output for them.
type recorder struct {
	backend.Backend
	mu     sync.Mutex
	tokens []string
}

func (r *recorder) Create(ctx context.Context, org string, l backend.Label, p []backend.Permission) (*backend.Authorization, error) {
	a, err := r.Backend.Create(ctx, org, l, p)
	if a != nil && a.Token != "" {
		r.mu.Lock()
		r.tokens = append(r.tokens, a.Token)
		r.mu.Unlock()
	}
	return a, err
}

// Adoptions forwards to the backend's reader of adoption reports, which
// embedding the Backend interface would hide.
func (r *recorder) Adoptions(ctx context.Context, q backend.AdoptionQuery) ([]backend.Adoption, error) {
	ar, ok := r.Backend.(backend.AdoptionReader)
	if !ok {
		return nil, fmt.Errorf("backend %T reads no adoption reports", r.Backend)
	}
	return ar.Adoptions(ctx, q)
}

func (r *recorder) created() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.tokens...)
}

// testEnv is a test server with an org, a bucket, a writer authorization
// published to four targets (file, secret-dir, exec, kubernetes) and a
// configuration managing it.
type testEnv struct {
	t        *testing.T
	srv      *influxv2.Server
	dir      string
	cfgPath  string
	org      string
	bucket   string
	initial  influxv2.Authorization
	kube     *fake.Clientset
	rbac     *k8srbac.Enforcer
	stdout   *capture.Buffer
	logs     *capture.Buffer
	rec      *recorder
	extraCfg string
	// kubeMode: the journal and lock in the fake API server (see envOptions.kube).
	kubeMode bool
}

type envOptions struct {
	hashed bool
	// grace and observe default to 20ms.
	grace, observe time.Duration
	// extra is appended to the [[credential]] block.
	extra string
	// top is added to the top of the file.
	top string
	// authLine replaces `authorization_id = "<initial>"`.
	authLine *string
	// kube puts the journal and the lock in the Kubernetes API: [state] type
	// "kubernetes" (lease_duration 1s unless lease is set), no state_dir,
	// the kubernetes target on the Secret of deploy/kubernetes, and a fake
	// clientset holding what deploy/kubernetes creates behind the Role it
	// grants (deployedCluster).
	kube  bool
	lease time.Duration
	// run is added as the [run] table.
	run string
	// v3 runs an InfluxDB 3 server of that edition instead of 2.x: the
	// initial token is named "telegraf" (an admin token on Core, a token
	// that may write the database on Enterprise), and there is no org and
	// no observe.
	v3 influxv2.Edition
	// now is the server's clock (InfluxDB 3 token expiry).
	now func() time.Time
}

func newEnv(t *testing.T, o envOptions) *testEnv {
	t.Helper()
	srv := influxv2.NewTest(t, influxv2.Options{HashedTokens: o.hashed, InfluxDB3: o.v3, Now: o.now})
	e := &testEnv{t: t, srv: srv, dir: t.TempDir(), org: "acme", bucket: "telemetry",
		kube: fake.NewClientset(), stdout: &capture.Buffer{}, logs: &capture.Buffer{}}
	if o.grace == 0 {
		o.grace = 20 * time.Millisecond
	}
	if o.observe == 0 {
		o.observe = 20 * time.Millisecond
	}
	// What differs by backend: its name, the org, observe.
	server := "backend = \"influxdb2\"\n"
	cred := fmt.Sprintf("org = %q\nobserve = %q\n", e.org, o.observe)
	if o.v3 != "" {
		e.org = ""
		var tok influxv2.V3Token
		var err error
		if o.v3 == influxv2.Enterprise {
			tok, err = srv.CreateV3ResourceToken("telegraf", 0,
				influxv2.V3Permission{ResourceType: "db", ResourceNames: []string{e.bucket}, Actions: []string{"write"}})
		} else {
			tok, err = srv.CreateV3AdminToken("telegraf", 0)
		}
		must(t, err)
		e.initial = influxv2.Authorization{ID: tok.Name, Token: tok.Token, Description: tok.Name, Active: true}
		server = fmt.Sprintf("backend = \"influxdb3\"\nedition = %q\n", o.v3)
		cred = "expiry_margin = \"1h\"\n"
	} else {
		srv.CreateOrg(e.org)
		srv.CreateBucket(e.org, e.bucket)
		e.initial = srv.WriteAuthorization(e.org, e.bucket)
	}
	must(t, os.WriteFile(filepath.Join(e.dir, "operator-token"), []byte(srv.OperatorToken()+"\n"), 0o600))
	// The exec target's script keeps what it got on stdin and records its
	// argv and environment, which must not contain the token.
	script := `#!/bin/sh
set -e
cat > "$1.tmp"
mv "$1.tmp" "$1"
printf '%s\n' "$INFLUXROTATE_FINGERPRINT" > "$1.fp"
{ echo "$@"; env; } > "$1.env"
`
	must(t, os.WriteFile(filepath.Join(e.dir, "publish.sh"), []byte(script), 0o700))
	cfg := fmt.Sprintf(`%s
url = %q
%soperator_token_file = "operator-token"
state_dir = "state"
audit_log = "audit/audit.jsonl"
client_id = "test-controller"
[retry]
attempts = 4
initial = "1ms"
max = "5ms"

[[credential]]
name = "telegraf"
%sauthorization_id = %q
max_age = "1h"
grace = %q
%s
  [[credential.target]]
  type = "file"
  path = "out/token"
  [[credential.target]]
  type = "secret-dir"
  dir = "mount"
  [[credential.target]]
  type = "exec"
  command = ["/bin/sh", %q, %q]
  read_command = ["/bin/cat", %q]
  [[credential.target]]
  type = "kubernetes"
  namespace = "monitoring"
  secret = "telegraf-token"
  key = "influx-token"
`, o.top, srv.URL(), server, cred, e.initial.ID, o.grace, o.extra,
		filepath.Join(e.dir, "publish.sh"), filepath.Join(e.dir, "exec-token"), filepath.Join(e.dir, "exec-token"))
	if o.authLine != nil {
		cfg = strings.Replace(cfg, fmt.Sprintf("authorization_id = %q", e.initial.ID), *o.authLine, 1)
	}
	if o.kube {
		if o.lease == 0 {
			o.lease = time.Second
		}
		e.kubeMode = true
		cfg = strings.Replace(cfg, "state_dir = \"state\"\n", "", 1)
		cfg = strings.Replace(cfg, "[retry]\n", fmt.Sprintf("[state]\ntype = \"kubernetes\"\nnamespace = %q\nlease_duration = %q\n%s\n[retry]\n",
			kubeNS, o.lease, o.run), 1)
		cfg = strings.Replace(cfg, "secret = \"telegraf-token\"\n  key = \"influx-token\"", "secret = \"telegraf-influx-token\"\n  key = \"token\"", 1)
		e.kube, e.rbac = deployedCluster(t, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "telegraf-influx-token", Namespace: kubeNS},
			Data:       map[string][]byte{"token": []byte(e.initial.Token)}})
	}
	e.cfgPath = filepath.Join(e.dir, "influxrotate.toml")
	must(t, os.WriteFile(e.cfgPath, []byte(cfg), 0o600))
	must(t, os.MkdirAll(filepath.Join(e.dir, "out"), 0o700))
	// The writers start with the initial token in every target.
	for _, tg := range e.targets() {
		must(t, tg.Publish(context.Background(), e.initial.Token))
	}
	return e
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (e *testEnv) config() *config.Config {
	cfg, err := config.Load(e.cfgPath)
	must(e.t, err)
	return cfg
}

func (e *testEnv) targets() []target.Target {
	cfg := e.config()
	var out []target.Target
	for _, tc := range cfg.Credentials[0].Targets {
		tg, err := target.New(tc, target.Options{Kube: e.kube})
		must(e.t, err)
		out = append(out, tg)
	}
	return out
}

// controller builds a fresh controller (a fresh process, as far as the
// in-memory token cache goes).
func (e *testEnv) controller(hook func(string)) *Controller {
	e.t.Helper()
	return e.controllerWith(hook, nil)
}

// controllerWith builds a fresh controller whose configuration is first
// changed by edit.
func (e *testEnv) controllerWith(hook func(string), edit func(*config.Config)) *Controller {
	e.t.Helper()
	var rec *recorder
	cfg := e.config()
	if edit != nil {
		edit(cfg)
	}
	c, err := New(Options{Config: cfg, Stdout: e.stdout,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Kube:   e.kube, Hook: hook,
		WrapBackend: func(b backend.Backend) backend.Backend {
			if e.rec == nil {
				e.rec = &recorder{Backend: b}
			} else {
				// Keep the tokens seen by earlier controllers of this test.
				e.rec = &recorder{Backend: b, tokens: e.rec.created()}
			}
			rec = e.rec
			return rec
		}})
	must(e.t, err)
	e.t.Cleanup(c.Close)
	return c
}

func (e *testEnv) rotate(c *Controller, force bool) Result {
	e.t.Helper()
	cfg := c.cfg
	return c.Rotate(context.Background(), &cfg.Credentials[0], RotateOptions{Force: force})
}

// managed lists the authorizations the controller made for the credential.
func (e *testEnv) managed() []influxv2.Authorization {
	var out []influxv2.Authorization
	for _, a := range e.srv.Authorizations() {
		if strings.Contains(a.Description, "[influxrotate:telegraf:") {
			out = append(out, a)
		}
	}
	return out
}

// checkEndState asserts the invariants after a completed rotation: one
// active managed authorization, the initial one gone, every target holding
// its token, which can write, no orphan, a valid audit chain, no token in
// any output.
func (e *testEnv) checkEndState() influxv2.Authorization {
	e.t.Helper()
	managed := e.managed()
	if len(managed) != 1 {
		e.t.Fatalf("managed authorizations = %v, want exactly one", managed)
	}
	cur := managed[0]
	if !cur.Active {
		e.t.Fatalf("%v is not active", cur)
	}
	for _, a := range e.srv.Authorizations() {
		if a.ID == e.initial.ID {
			e.t.Errorf("the initial authorization %s still exists", a.ID)
		}
	}
	want := e.tokenOf(cur)
	for _, tg := range e.targets() {
		got, err := tg.ReadBack(context.Background())
		if err != nil {
			e.t.Fatalf("%s: %v", tg.Name(), err)
		}
		if got != want {
			e.t.Errorf("%s holds %s, want %s", tg.Name(), rotation.Fingerprint(got), rotation.Fingerprint(want))
		}
	}
	if !e.srv.IsActive(want) {
		e.t.Errorf("the published token is not active on the server")
	}
	e.checkAudit()
	e.checkNoLeak()
	return cur
}

// tokenOf returns a's token; with hashed tokens the server helper still
// knows it, else the recorder does.
func (e *testEnv) tokenOf(a influxv2.Authorization) string {
	if a.Token != "" {
		return a.Token
	}
	for _, tok := range e.rec.created() {
		if e.srv.IsActive(tok) {
			return tok
		}
	}
	e.t.Fatalf("token of %s unknown", a.ID)
	return ""
}

func (e *testEnv) checkAudit() {
	e.t.Helper()
	f, err := os.Open(filepath.Join(e.dir, "audit", "audit.jsonl"))
	must(e.t, err)
	defer f.Close()
	n, err := rotation.VerifyAuditLog(f)
	if err != nil || n == 0 {
		e.t.Fatalf("audit log: %d records, %v", n, err)
	}
}

// checkNoLeak scans every output of the controller for every token.
func (e *testEnv) checkNoLeak() {
	e.t.Helper()
	tokens := []string{e.initial.Token, e.srv.OperatorToken()}
	if e.rec != nil {
		tokens = append(tokens, e.rec.created()...)
	}
	for _, a := range e.srv.Authorizations() {
		if a.Token != "" {
			tokens = append(tokens, a.Token)
		}
	}
	if e.srv.Edition() != "" {
		for _, tk := range e.srv.V3Tokens() {
			tokens = append(tokens, tk.Token)
		}
	}
	outputs := map[string]string{"stdout": e.stdout.String(), "logs": e.logs.String()}
	for _, p := range []string{"audit/audit.jsonl", "state/telegraf.json"} {
		data, _ := os.ReadFile(filepath.Join(e.dir, p))
		outputs[p] = string(data)
	}
	for name, out := range outputs {
		for _, tok := range tokens {
			if tok != "" && strings.Contains(out, tok) {
				e.t.Errorf("%s contains a token (%s)", name, rotation.Fingerprint(tok))
			}
		}
	}
	if e.kubeMode {
		e.checkNoLeakInKubernetes(tokens)
	}
	// The exec target's argv and environment must not carry the token.
	env, _ := os.ReadFile(filepath.Join(e.dir, "exec-token.env"))
	for _, tok := range tokens {
		if tok != "" && strings.Contains(string(env), tok) {
			e.t.Errorf("the exec target got the token in argv or env")
		}
	}
}

// loadState reads the credential's journal.
func (e *testEnv) loadState() *state.State {
	if e.kubeMode {
		st, err := newTestKubeStore(e.kube, time.Second, "test").Load(context.Background(), "telegraf")
		must(e.t, err)
		return st
	}
	st, err := state.NewStore(filepath.Join(e.dir, "state")).Load("telegraf")
	must(e.t, err)
	return st
}

// crash is panicked by a hook to stop the controller at an exact point, as
// a kill would: no deferred cleanup but the lock release runs.
type crash struct{ point string }

// runUntilCrash runs a rotation that stops at point and reports whether it
// got there.
func (e *testEnv) runUntilCrash(point string, force bool) (crashed bool) {
	e.t.Helper()
	var c *Controller
	c = e.controller(func(p string) {
		if p == point {
			if ks, ok := c.store.(*kubeStore); ok {
				// A killed process neither renews nor releases its Lease.
				ks.crash("telegraf")
			}
			panic(crash{p})
		}
	})
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(crash); !ok {
				panic(r)
			}
			crashed = true
		}
	}()
	res := e.rotate(c, force)
	if res.Outcome != OutcomeOK {
		e.t.Fatalf("rotation before the crash point: %+v", res)
	}
	return false
}
