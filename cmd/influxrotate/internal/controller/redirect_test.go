package controller

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/influxrotate/influxrotate/rotation"
	"github.com/influxrotate/influxrotate/testutil/redirect"
	"github.com/influxrotate/influxrotate/testutil/secscan"
)

// The controller follows no redirect, in a rotation or a dry run: a 307 to
// another port of the same host would otherwise receive the operator token
// (Go keeps the Authorization header for the same host name). The cycle
// fails without retrying, naming the status and where the redirect pointed,
// and no output holds a token.
func TestAPICallsRefuseRedirects(t *testing.T) {
	for _, dryRun := range []bool{false, true} {
		t.Run(fmt.Sprintf("dry_run=%v", dryRun), func(t *testing.T) {
			e := newEnv(t, envOptions{})
			trap := redirect.New(t, http.StatusTemporaryRedirect)
			cfg, err := os.ReadFile(e.cfgPath)
			must(t, err)
			pointed := strings.Replace(string(cfg), fmt.Sprintf("url = %q", e.srv.URL()), fmt.Sprintf("url = %q", trap.URL()), 1)
			if pointed == string(cfg) {
				t.Fatal("the configuration's url line was not found")
			}
			must(t, os.WriteFile(e.cfgPath, []byte(pointed), 0o600))

			c := e.controller(nil)
			res := c.Rotate(context.Background(), &c.cfg.Credentials[0], RotateOptions{Force: true, DryRun: dryRun})
			trap.CheckNothingFollowed(t)
			if res.Err == nil {
				t.Fatalf("Rotate against a redirect: %+v, want an error", res)
			}
			for _, want := range []string{rotation.ErrRedirectRefused.Error(), "307", trap.To.URL} {
				if !strings.Contains(res.Err.Error(), want) {
					t.Errorf("error %q lacks %q", res.Err, want)
				}
			}
			if n := c.retries.Load(); n != 0 {
				t.Errorf("%d retries after a refused redirect, want none: the next attempt gets the same answer", n)
			}

			var scan secscan.Scanner
			scan.AddServer(e.srv)
			scan.Add(e.initial.Token)
			scan.Check(t, "error", []byte(res.Err.Error()))
			scan.Check(t, "stdout", []byte(e.stdout.String()))
			scan.Check(t, "logs", []byte(e.logs.String()))
			for _, p := range []string{"audit/audit.jsonl", "state/telegraf.json"} {
				if data, err := os.ReadFile(filepath.Join(e.dir, p)); err == nil {
					scan.Check(t, p, data)
				}
			}
		})
	}
}
