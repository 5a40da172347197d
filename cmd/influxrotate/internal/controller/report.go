package controller

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/config"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/state"
)

// report prints the summary line and writes the metrics point.
func (c *Controller) report(ctx context.Context, cr *config.Credential, cy *state.Cycle, outcome string, now time.Time) {
	var latency, grace time.Duration
	if !cy.VerifiedAt.IsZero() {
		latency = cy.VerifiedAt.Sub(cy.ProvisionedAt)
	}
	if !cy.DeactivatedAt.IsZero() {
		grace = cy.DeactivatedAt.Sub(cy.PublishedAt)
	}
	fmt.Fprintf(c.out, "influxrotate: credential=%s rotation=%s outcome=%s old=%s(%s) new=%s(%s) latency=%s grace=%s revocation_attempts=%d duration=%s\n",
		cr.Name, cy.RotationID, outcome, orNone(cy.Old.ID), orNone(cy.Old.Fingerprint), orNone(cy.New.ID), orNone(cy.New.Fingerprint),
		latency.Round(time.Millisecond), grace.Round(time.Millisecond), cy.RevocationAttempts, now.Sub(cy.Started).Round(time.Millisecond))
	m := c.cfg.Metrics
	if m == nil {
		return
	}
	tok := ""
	if m.TokenFile != "" {
		var err error
		if tok, err = readTokenFile("metrics.token_file", m.TokenFile); err != nil {
			c.log.Warn("metrics not written", "error", err)
			return
		}
	}
	line := fmt.Sprintf("token_rotation,credential=%s,backend=%s rotation_latency_ms=%di,grace_ms=%di,revocation_attempts=%di,outcome=%q %d\n",
		escapeTag(cr.Name), c.cfg.Backend, latency.Milliseconds(), grace.Milliseconds(), cy.RevocationAttempts, outcome, now.UnixMilli())
	// A stopping controller still reports the cycle it completed.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.Timeout)
	defer cancel()
	if err := c.be.WriteLines(wctx, m.Org, m.Bucket, tok, []byte(line)); err != nil {
		c.log.Warn("metrics not written", "bucket", m.Bucket, "error", err)
	}
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func escapeTag(s string) string {
	return strings.NewReplacer(",", `\,`, "=", `\=`, " ", `\ `).Replace(s)
}
