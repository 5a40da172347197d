package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/influxrotate/influxrotate/rotation"
	"github.com/influxrotate/influxrotate/testutil/influxv2"
)

// controller runs the influxrotate binary on a configuration the demo
// writes: the demo's credential, published to the secret mount the execd
// binary watches, behind the adoption gate.
type controller struct {
	bin, dir, cfg, audit, logPath, mount string
	srv                                  *influxv2.Server
	issued                               map[string]bool
}

// rotationResult is what one `influxrotate rotate` did, from its summary
// line and its audit records.
type rotationResult struct {
	newFP   string
	adopted int
	// adoption, deactivated and deleted are measured from the publish.
	adoption, deactivated, deleted time.Duration
}

func newController(dir, bin string, srv *influxv2.Server, cur influxv2.Authorization, mount string) (*controller, error) {
	c := &controller{bin: bin, dir: dir, cfg: filepath.Join(dir, "influxrotate.toml"), audit: filepath.Join(dir, "audit.jsonl"),
		logPath: filepath.Join(dir, "influxrotate.log"), mount: mount, srv: srv, issued: map[string]bool{cur.Token: true}}
	if err := os.WriteFile(filepath.Join(dir, "operator-token"), []byte(srv.OperatorToken()+"\n"), 0o600); err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`# Written by influxrotate-demo.
url = %q
operator_token_file = "operator-token"
state_dir = "state"
audit_log = "audit.jsonl"
client_id = "influxrotate-demo"

[[credential]]
name = "demo"
org = %q
authorization_id = %q
max_age = "1h"
# Kept this short so that the demo shows the deletion too.
observe = "500ms"

  # Deactivate the old token once the agent reports the new one, instead
  # of a blind grace.
  [credential.adoption]
  bucket = %q
  lookback = "1m"
  clients = [%q]
  timeout = "30s"
  poll_interval = "100ms"

  # The kubelet-style secret mount the execd binary's token_file points into.
  [[credential.target]]
  type = "secret-dir"
  dir = %q
  key = "token"
`, srv.URL(), org, cur.ID, bucket, clientID, mount)
	return c, os.WriteFile(c.cfg, []byte(cfg), 0o600)
}

// fingerprint is the fingerprint of the token in the mount.
func (c *controller) fingerprint() string {
	tok, err := rotation.ReadTokenFile(filepath.Join(c.mount, "token"))
	if err != nil {
		return "?"
	}
	return rotation.Fingerprint(tok)
}

// tokens are every token the server issued while the demo ran.
func (c *controller) tokens() []string {
	c.collect()
	out := make([]string, 0, len(c.issued))
	for tok := range c.issued {
		out = append(out, tok)
	}
	return out
}

func (c *controller) collect() {
	for _, a := range c.srv.Authorizations() {
		if a.Token != "" {
			c.issued[a.Token] = true
		}
	}
}

var summaryField = regexp.MustCompile(`(\w+)=(\S+)`)

// rotate runs one forced rotation to its end and reports it.
func (c *controller) rotate(ctx context.Context) (rotationResult, error) {
	var res rotationResult
	logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return res, err
	}
	defer logf.Close()
	var stdout bytes.Buffer
	cmd := exec.CommandContext(ctx, c.bin, "rotate", "-config", c.cfg, "-force")
	cmd.Stdout, cmd.Stderr = io.MultiWriter(&stdout, logf), logf
	runErr := cmd.Run()
	// The new token exists from provision on, even if the run failed later.
	c.collect()
	if runErr != nil {
		return res, fmt.Errorf("influxrotate rotate: %v (log: %s)", runErr, tail(c.logPath))
	}
	fields := map[string]string{}
	for _, m := range summaryField.FindAllStringSubmatch(stdout.String(), -1) {
		fields[m[1]] = m[2]
	}
	if fields["outcome"] != "ok" {
		return res, fmt.Errorf("influxrotate rotate: no successful summary line in %q", stdout.String())
	}
	if _, fp, ok := strings.Cut(strings.TrimSuffix(fields["new"], ")"), "("); ok {
		res.newFP = fp
	}
	res.adopted, _ = strconv.Atoi(fields["clients_adopted"])
	res.adoption, _ = time.ParseDuration(fields["adoption"])
	times, err := c.phaseTimes(fields["rotation"])
	if err != nil {
		return res, err
	}
	res.deactivated = times["deactivate"].Sub(times["publish"])
	res.deleted = times["delete"].Sub(times["publish"])
	return res, nil
}

// phaseTimes reads when each phase of a rotation completed from the audit log.
func (c *controller) phaseTimes(rotationID string) (map[string]time.Time, error) {
	data, err := os.ReadFile(c.audit)
	if err != nil {
		return nil, err
	}
	out := map[string]time.Time{}
	for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var rec rotation.AuditRecord
		if err := json.Unmarshal(line, &rec); err != nil {
			return nil, fmt.Errorf("audit log: %w", err)
		}
		if rec.RotationID == rotationID && rec.Outcome == "ok" {
			out[rec.Event] = rec.Time
		}
	}
	for _, p := range []string{"publish", "deactivate", "delete"} {
		if out[p].IsZero() {
			return nil, fmt.Errorf("audit log: rotation %s has no %s record", rotationID, p)
		}
	}
	return out, nil
}

// verifyAudit checks the audit log's hash chain with `influxrotate audit verify`.
func (c *controller) verifyAudit(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, c.bin, "audit", "verify", c.audit).CombinedOutput()
	msg := strings.TrimSpace(strings.TrimPrefix(string(out), c.audit+": "))
	if err != nil {
		return "", fmt.Errorf("influxrotate audit verify: %v: %s", err, msg)
	}
	return msg + " (influxrotate audit verify)", nil
}
