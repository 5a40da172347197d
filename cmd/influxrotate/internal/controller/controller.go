// Package controller is influxrotate's engine: it rotates the InfluxDB
// tokens named in the configuration through provision → publish → verify →
// grace or adopt → deactivate → observe → delete (on InfluxDB 3, which
// has no inactive state: provision → publish → verify → grace or adopt →
// delete), one idempotent phase at a time,
// journaling each phase in a state file so that a crash at any point is
// resumed by the next run, and recording each phase event in the
// hash-chained audit log. The CLI (cmd/influxrotate) and tests drive it.
package controller

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/backend"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/config"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/state"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/target"
	"github.com/influxrotate/influxrotate/rotation"
)

// Outcomes of a cycle, as reported in results, audit records and metrics.
const (
	OutcomeOK          = "ok"
	OutcomeNotDue      = "not_due"
	OutcomeDryRun      = "dry_run"
	OutcomeFailed      = "failed"
	OutcomeInterrupted = "interrupted"
	OutcomeRolledBack  = "rolled_back"
)

// Options configure a Controller.
type Options struct {
	Config *config.Config
	// Stdout receives the plan (dry run) and one summary line per cycle.
	Stdout io.Writer
	Logger *slog.Logger
	// Backend replaces the one built from the configuration.
	Backend backend.Backend
	// WrapBackend, when set, wraps the backend (tests record the tokens
	// created, to check that none of them leaks).
	WrapBackend func(backend.Backend) backend.Backend
	// Kube replaces the Kubernetes client of kubernetes targets and of the
	// kubernetes state store.
	Kube kubernetes.Interface
	// Store replaces the state store built from the configuration.
	Store Store
	// HTTPClient is used for API calls and probes. Default: one client with
	// the configured timeout that follows no redirect (rotation.NoRedirect).
	HTTPClient *http.Client
	// Hook, when set, is called at each phase boundary and at points inside
	// phases ("provision:created", "publish:target-0", ...). The CLI wires it
	// to a test-only pause; see cmd/influxrotate/README.md.
	Hook func(point string)
	// Now replaces time.Now.
	Now func() time.Time
}

// Controller rotates the credentials of one configuration.
type Controller struct {
	cfg     *config.Config
	out     io.Writer
	log     *slog.Logger
	be      backend.Backend
	client  *http.Client
	store   Store
	audit   *auditor
	events  *events
	metrics *promMetrics
	// probe is what /healthz and /readyz report.
	probe probeState
	// kube and identity are the kubernetes store's client and Lease
	// holder identity, for the leader election of Run.
	kube     kubernetes.Interface
	identity string
	// releaseLeader gives the leader Lease up when Run stops (a SIGTERM),
	// so that the standby takes over at once; tests that emulate a crash
	// clear it.
	releaseLeader bool
	// addr is where Run serves the probes (a net.Addr).
	addr    atomic.Value
	targets map[string][]target.Target
	hook    func(string)
	now     func() time.Time
	retries atomic.Int64
	// phases is the rotation cycle for this backend, in order.
	phases []phaseStep

	mu sync.Mutex
	// tokens holds the tokens this process knows, by authorization ID. They
	// never reach the state file: a restarted controller finds them again
	// on the server (2.7-) or in the targets.
	tokens map[string]string
	// scrub holds every token above pinned (remember and forget keep it
	// so), the operator's too, and among its most recent the others the
	// backend creates or writes with: server messages are scrubbed of them.
	scrub *rotation.Scrubber
}

// Result is the end of one credential's run.
type Result struct {
	Credential string
	RotationID string
	Outcome    string
	// Phase is where an interrupted cycle stopped.
	Phase state.Phase
	Err   error
}

// ConfigError reports whether err is a configuration error (exit code 2).
func ConfigError(err error) bool {
	var ce *config.Error
	return errors.As(err, &ce)
}

// New builds a controller. It reads the operator token but changes nothing.
func New(opts Options) (*Controller, error) {
	cfg := opts.Config
	if cfg == nil {
		return nil, &config.Error{Err: errors.New("no configuration")}
	}
	c := &Controller{cfg: cfg, out: opts.Stdout, log: opts.Logger, be: opts.Backend, client: opts.HTTPClient,
		hook: opts.Hook, now: opts.Now, tokens: map[string]string{}, targets: map[string][]target.Target{},
		scrub: rotation.NewScrubber()}
	if c.out == nil {
		c.out = io.Discard
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.hook == nil {
		c.hook = func(string) {}
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.client == nil {
		// InfluxDB never redirects an API call; following one would send
		// the operator token wherever it points.
		c.client = &http.Client{Timeout: time.Duration(cfg.Timeout), CheckRedirect: rotation.NoRedirect}
	}
	c.metrics = newPromMetrics(c.now)
	c.releaseLeader = true
	c.store = opts.Store
	if c.store == nil {
		var err error
		if c.store, err = newStore(cfg, opts.Kube, c.log, c.now); err != nil {
			return nil, err
		}
	}
	if ks, ok := c.store.(*kubeStore); ok {
		c.kube, c.identity = ks.client, ks.identity
	}
	c.audit = &auditor{path: cfg.AuditLog, clientID: cfg.ClientID, log: c.log}
	if cfg.AuditKeyFile != "" {
		key, err := rotation.ReadAuditKeyFile(cfg.AuditKeyFile)
		if err != nil {
			return nil, &config.Error{Err: fmt.Errorf("audit_key_file: %w", err)}
		}
		c.audit.key = key
	}
	if cfg.AuditStdout {
		c.audit.stream = rotation.NewAuditStream(c.out, "stdout", rotation.AuditOptions{Key: c.audit.key})
	}
	if c.be == nil {
		tok, err := readTokenFile("operator_token_file", cfg.OperatorTokenFile)
		if err != nil {
			return nil, err
		}
		if fi, err := os.Stat(cfg.OperatorTokenFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
			c.log.Warn("operator_token_file may be read by other users; it can create any token: chmod 600 it",
				"path", cfg.OperatorTokenFile, "mode", fmt.Sprintf("%04o", fi.Mode().Perm()))
		}
		bopts := backend.Options{URL: cfg.URL, OperatorToken: tok, Client: c.client, Logger: c.log,
			Retry: backend.Retry{Attempts: cfg.Retry.Attempts, Initial: time.Duration(cfg.Retry.Initial), Max: time.Duration(cfg.Retry.Max),
				OnRetry: func(string, int, error) { c.retries.Add(1) }},
			UserAgent: "influxrotate/" + cfg.ClientID, Scrubber: c.scrub}
		switch cfg.Backend {
		case config.BackendInfluxDB1:
			be, err := backend.NewV1(bopts)
			if err != nil {
				return nil, &config.Error{Err: err}
			}
			c.be = be
		case config.BackendInfluxDB3:
			be, err := backend.NewV3(bopts, backend.V3Options{Edition: cfg.Edition, Expiry: cfg.TokenExpiries()})
			if err != nil {
				return nil, &config.Error{Err: err}
			}
			c.be = be
		default:
			c.be = backend.NewV2(bopts)
		}
	}
	if opts.WrapBackend != nil {
		c.be = opts.WrapBackend(c.be)
	}
	c.phases = cycleFor(c.be.Capabilities())
	for i := range cfg.Credentials {
		if cfg.Credentials[i].Adoption != nil {
			if _, err := c.adoptionReader(); err != nil {
				return nil, err
			}
		}
	}
	for _, cr := range cfg.Credentials {
		for _, tc := range cr.Targets {
			t, err := target.New(tc, target.Options{Logger: c.log, Kube: opts.Kube,
				Env: []string{"INFLUXROTATE_CREDENTIAL=" + cr.Name}})
			if err != nil {
				return nil, &config.Error{Err: fmt.Errorf("credential %q: %w", cr.Name, err)}
			}
			c.targets[cr.Name] = append(c.targets[cr.Name], t)
		}
	}
	c.events = newEvents(c.targets)
	return c, nil
}

func readTokenFile(option, path string) (string, error) {
	tok, err := rotation.ReadTokenFile(path)
	if err != nil {
		return "", &config.Error{Err: fmt.Errorf("%s %q: %w", option, path, err)}
	}
	return tok, nil
}

func newRotationID(now time.Time) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x%s", now.Unix(), hex.EncodeToString(b))
}

func (c *Controller) token(id string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tokens[id]
}

func (c *Controller) remember(id, tok string) {
	if id == "" || tok == "" {
		return
	}
	c.scrub.Pin(tok)
	c.mu.Lock()
	old, had := c.tokens[id]
	c.tokens[id] = tok
	c.mu.Unlock()
	if had && old != tok {
		c.scrub.Unpin(old)
	}
}

// forget drops the token of id; the Scrubber keeps it among its recent
// ones, for an answer still in flight that quotes it.
func (c *Controller) forget(id string) {
	c.mu.Lock()
	tok, had := c.tokens[id]
	delete(c.tokens, id)
	c.mu.Unlock()
	if had {
		c.scrub.Unpin(tok)
	}
}

func (c *Controller) targetNames(name string) []string {
	var out []string
	for _, t := range c.targets[name] {
		out = append(out, t.Name())
	}
	return out
}

// record appends an audit record; a failed append is logged and makes the
// phase fail, as a rotation that cannot be audited must not go on.
func (c *Controller) record(cr *config.Credential, cy *state.Cycle, event, outcome string, status int, msg string) error {
	return c.appendAudit(c.auditRecord(cr, cy, event, outcome, status, msg))
}

// auditRecord is the record of an event of a credential's cycle.
func (c *Controller) auditRecord(cr *config.Credential, cy *state.Cycle, event, outcome string, status int, msg string) rotation.AuditRecord {
	// Messages are scrubbed where they quote a server; this catches any
	// other text that might quote a token the controller holds.
	rec := rotation.AuditRecord{Event: event, Outcome: outcome, Credential: cr.Name, Status: status, Message: c.scrub.Scrub(msg),
		Targets: c.targetNames(cr.Name)}
	if cy != nil {
		rec.RotationID = cy.RotationID
		rec.OldAuthID, rec.OldFingerprint = cy.Old.ID, cy.Old.Fingerprint
		rec.NewAuthID, rec.NewFingerprint = cy.New.ID, cy.New.Fingerprint
	}
	return rec
}

// appendAudit appends records in one go; see record.
func (c *Controller) appendAudit(recs ...rotation.AuditRecord) error {
	if err := c.audit.append(recs...); err != nil {
		c.log.Error("audit log append failed", "error", err)
		return fmt.Errorf("audit_log: %w", err)
	}
	if len(recs) == 1 {
		// A phase's record; the batches are one record per writer that
		// adopted the token, which would flood the Secret's Events (the
		// adopt phase's own record says how many).
		c.events.emit(recs[0])
	}
	return nil
}

// Close stops what the controller runs in the background (the senders of
// Kubernetes Events). A controller is not used after Close.
func (c *Controller) Close() {
	c.events.close()
}

// Credential returns the configuration of a credential.
func (c *Controller) Credential(name string) (*config.Credential, error) {
	return c.cfg.Credential(name)
}

// RotateOptions select what Rotate does.
type RotateOptions struct {
	// Force rotates even when the token is not due.
	Force bool
	// DryRun prints the plan and changes nothing.
	DryRun bool
}

// RotateAll rotates every credential (or the named one) that is due, and
// resumes interrupted cycles.
func (c *Controller) RotateAll(ctx context.Context, name string, opts RotateOptions) []Result {
	var results []Result
	for i := range c.cfg.Credentials {
		cr := &c.cfg.Credentials[i]
		if name != "" && cr.Name != name {
			continue
		}
		results = append(results, c.Rotate(ctx, cr, opts))
	}
	if name != "" && len(results) == 0 {
		_, err := c.cfg.Credential(name)
		results = append(results, Result{Credential: name, Outcome: OutcomeFailed, Err: err})
	}
	return results
}
