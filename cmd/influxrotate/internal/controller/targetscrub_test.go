package controller

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/config"
	"github.com/influxrotate/influxrotate/rotation"
)

// A failing hook that prints the operator token has it scrubbed from the
// error: every target gets the controller's Scrubber, which holds every
// token the process holds, not one of its own for the token published.
func TestTargetsGetTheControllersScrubber(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.controllerWith(nil, func(cfg *config.Config) {
		for i, tc := range cfg.Credentials[0].Targets {
			if tc.Type == config.TargetExec {
				cfg.Credentials[0].Targets[i].Command = []string{"/bin/sh", "-c", `cat "$0"; exit 3`, filepath.Join(e.dir, "operator-token")}
			}
		}
	})
	res := e.rotate(c, true)
	if res.Err == nil {
		t.Fatal("the failing hook went unnoticed")
	}
	op := e.srv.OperatorToken()
	if msg := res.Err.Error(); strings.Contains(msg, op) || !strings.Contains(msg, rotation.Fingerprint(op)) {
		// Scrubbed here so that a failure does not print the token.
		t.Errorf("error %s", rotation.NewScrubber(op).Scrub(msg))
	}
	e.checkNoLeak()
}
