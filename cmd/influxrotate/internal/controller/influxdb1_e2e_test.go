package controller

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/config"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/target"
	"github.com/influxrotate/influxrotate/rotation"
	"github.com/influxrotate/influxrotate/testutil/capture"
	"github.com/influxrotate/influxrotate/testutil/realtools"
)

// v1Write posts one point with a 1.x "user:password" token and returns the status.
func v1Write(t *testing.T, d *realtools.Influxd, token string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, d.URL+"/api/v2/write?bucket="+d.DB, strings.NewReader("m v=1i\n"))
	must(t, err)
	req.Header.Set("Authorization", "Token "+token)
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func v1Users(t *testing.T, d *realtools.Influxd) []string {
	t.Helper()
	res, err := d.Query("SHOW USERS")
	must(t, err)
	var names []string
	for _, r := range res.Results {
		for _, s := range r.Series {
			for _, row := range s.Values {
				names = append(names, fmt.Sprint(row[0]))
			}
		}
	}
	return names
}

// TestE2EInfluxDB1Rotation rotates a "user:password" token on a real
// influxd 1.8: a new user with the same grants, the old one's privileges
// revoked during observe, then dropped.
func TestE2EInfluxDB1Rotation(t *testing.T) {
	d := realtools.StartInfluxd(t)
	oldPass := realtools.RandomSecret()
	must(t, d.CreateUser("edge", oldPass, d.DB))
	oldToken := realtools.V1Token("edge", oldPass)
	if s := v1Write(t, d, oldToken); s != http.StatusNoContent {
		t.Fatalf("the initial user cannot write: %d", s)
	}
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "op"), []byte(realtools.V1Token(d.AdminUser, d.AdminPassword)), 0o600))
	tokenPath := filepath.Join(dir, "token")
	must(t, os.WriteFile(tokenPath, []byte(oldToken+"\n"), 0o600))
	cfgText := fmt.Sprintf(`
url = %q
backend = "influxdb1"
operator_token_file = "op"
state_dir = "state"
audit_log = "audit.jsonl"
[retry]
initial = "1ms"
max = "5ms"
[[credential]]
name = "edge"
authorization_id = "edge"
description = "edge"
grace = "10ms"
observe = "10ms"
  [[credential.target]]
  type = "file"
  path = "token"
`, d.URL)
	cfgPath := filepath.Join(dir, "c.toml")
	must(t, os.WriteFile(cfgPath, []byte(cfgText), 0o600))
	cfg, err := config.Load(cfgPath)
	must(t, err)
	var logs capture.Buffer
	var stdout capture.Buffer
	var deactivatedStatus int
	c, err := New(Options{Config: cfg, Stdout: &stdout, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Hook: func(p string) {
			if p == "observe:before" {
				// Deactivated: the old user authenticates but may not write.
				deactivatedStatus = v1Write(t, d, oldToken)
			}
		}})
	must(t, err)
	res := c.Rotate(context.Background(), &cfg.Credentials[0], RotateOptions{Force: true})
	if res.Outcome != OutcomeOK {
		t.Fatalf("rotate: %+v\n%s", res, logs.String())
	}
	if deactivatedStatus != http.StatusForbidden {
		t.Errorf("old user's write during observe: %d, want 403", deactivatedStatus)
	}
	newToken, err := (&target.File{Path: tokenPath}).ReadBack(context.Background())
	must(t, err)
	user, _, _ := strings.Cut(newToken, ":")
	if !strings.HasPrefix(user, "edge_ir") {
		t.Errorf("new user %q is not a managed generation of edge", user)
	}
	if s := v1Write(t, d, newToken); s != http.StatusNoContent {
		t.Errorf("new token write: %d", s)
	}
	if s := v1Write(t, d, oldToken); s != http.StatusUnauthorized {
		t.Errorf("old token write after delete: %d, want 401", s)
	}
	users := v1Users(t, d)
	if strings.Join(users, ",") != d.AdminUser+","+user && strings.Join(users, ",") != user+","+d.AdminUser {
		t.Errorf("users %v, want the admin and %s only", users, user)
	}
	grants, err := d.Query("SHOW GRANTS FOR " + realtools.QuoteIdent(user))
	must(t, err)
	if g := fmt.Sprint(grants.Results[0].Series[0].Values); !strings.Contains(g, d.DB) || !strings.Contains(g, "WRITE") {
		t.Errorf("grants of %s: %s, want WRITE on %s", user, g, d.DB)
	}
	// A second rotation starts from the managed user.
	res = c.Rotate(context.Background(), &cfg.Credentials[0], RotateOptions{Force: true})
	if res.Outcome != OutcomeOK {
		t.Fatalf("second rotate: %+v\n%s", res, logs.String())
	}
	if s := v1Write(t, d, newToken); s != http.StatusUnauthorized {
		t.Errorf("first generation still writes: %d", s)
	}
	third, err := (&target.File{Path: tokenPath}).ReadBack(context.Background())
	must(t, err)
	if s := v1Write(t, d, third); s != http.StatusNoContent {
		t.Errorf("third generation write: %d", s)
	}
	audit, _ := os.ReadFile(filepath.Join(dir, "audit.jsonl"))
	state, _ := os.ReadFile(filepath.Join(dir, "state", "edge.json"))
	for _, out := range []string{logs.String(), stdout.String(), string(audit), string(state)} {
		for _, tok := range []string{oldPass, newToken, third, d.AdminPassword} {
			_, pass, _ := strings.Cut(tok, ":")
			if pass == "" {
				pass = tok
			}
			if strings.Contains(out, pass) {
				t.Errorf("a password leaked (%s)", rotation.Fingerprint(tok))
			}
		}
	}
}

// TestE2EInfluxDB1ResumeAfterCrash stops the controller (a panic from the
// hook, like a kill) inside phases on a real influxd 1.8: a 1.x password is
// never shown again, so an orphan user is dropped and a new one created.
func TestE2EInfluxDB1ResumeAfterCrash(t *testing.T) {
	d := realtools.StartInfluxd(t)
	for i, point := range []string{"provision:created", "publish:before", "deactivate:patched", "delete:deleted"} {
		t.Run(point, func(t *testing.T) {
			name := fmt.Sprintf("edge%d", i)
			oldPass := realtools.RandomSecret()
			must(t, d.CreateUser(name, oldPass, d.DB))
			dir := t.TempDir()
			must(t, os.WriteFile(filepath.Join(dir, "op"), []byte(realtools.V1Token(d.AdminUser, d.AdminPassword)), 0o600))
			must(t, os.WriteFile(filepath.Join(dir, "token"), []byte(realtools.V1Token(name, oldPass)), 0o600))
			must(t, os.WriteFile(filepath.Join(dir, "c.toml"), []byte(fmt.Sprintf(`
url = %q
backend = "influxdb1"
operator_token_file = "op"
state_dir = "state"
audit_log = "audit.jsonl"
[retry]
initial = "1ms"
max = "5ms"
[[credential]]
name = %q
authorization_id = %q
description = %q
grace = "10ms"
observe = "10ms"
  [[credential.target]]
  type = "file"
  path = "token"
`, d.URL, name, name, name)), 0o600))
			cfg, err := config.Load(filepath.Join(dir, "c.toml"))
			must(t, err)
			crashed := func() (crashed bool) {
				c, err := New(Options{Config: cfg, Hook: func(p string) {
					if p == point {
						panic(crash{p})
					}
				}})
				must(t, err)
				defer func() { crashed = recover() != nil }()
				c.Rotate(context.Background(), &cfg.Credentials[0], RotateOptions{Force: true})
				return false
			}()
			if !crashed {
				t.Fatalf("never reached %s", point)
			}
			c, err := New(Options{Config: cfg})
			must(t, err)
			if res := c.Rotate(context.Background(), &cfg.Credentials[0], RotateOptions{}); res.Outcome != OutcomeOK {
				t.Fatalf("resume: %+v", res)
			}
			tok, err := (&target.File{Path: filepath.Join(dir, "token")}).ReadBack(context.Background())
			must(t, err)
			if s := v1Write(t, d, tok); s != http.StatusNoContent {
				t.Errorf("published token write: %d", s)
			}
			user, _, _ := strings.Cut(tok, ":")
			for _, u := range v1Users(t, d) {
				if strings.HasPrefix(u, name) && u != user {
					t.Errorf("user %s left over (current %s)", u, user)
				}
			}
		})
	}
}
