package controller

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/config"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/state"
	"github.com/influxrotate/influxrotate/internal/statsline"
)

// report prints the summary line and writes the metrics point.
func (c *Controller) report(ctx context.Context, cr *config.Credential, cy *state.Cycle, outcome string, now time.Time) {
	var latency, grace time.Duration
	if !cy.VerifiedAt.IsZero() {
		latency = cy.VerifiedAt.Sub(cy.ProvisionedAt)
	}
	// The writers' grace ends when the old token stops working: deactivated,
	// or deleted where there is no inactive state.
	if end := cmp.Or(cy.DeactivatedAt, cy.DeletedAt); !end.IsZero() {
		grace = end.Sub(cy.PublishedAt)
	}
	// The adoption fields say what the adopt phase saw; without the gate
	// (or before it let the cycle go on) they are left out.
	var adoption time.Duration
	adoptionText := ""
	if ad := cy.Adoption; ad != nil {
		adoption = cy.AdoptedAt.Sub(cy.PublishedAt)
		adoptionText = fmt.Sprintf(" adoption=%s clients_adopted=%d clients_missing=%d", adoption.Round(time.Millisecond), len(ad.Adopted), len(ad.Missing))
		if len(ad.Missing) > 0 {
			adoptionText += " cut_off=" + strings.Join(ad.Missing, ",")
		}
	}
	fmt.Fprintf(c.out, "influxrotate: credential=%s rotation=%s outcome=%s old=%s(%s) new=%s(%s) latency=%s grace=%s%s revocation_attempts=%d duration=%s\n",
		cr.Name, cy.RotationID, outcome, cmp.Or(cy.Old.ID, "-"), cmp.Or(cy.Old.Fingerprint, "-"), cmp.Or(cy.New.ID, "-"), cmp.Or(cy.New.Fingerprint, "-"),
		latency.Round(time.Millisecond), grace.Round(time.Millisecond), adoptionText, cy.RevocationAttempts, now.Sub(cy.Started).Round(time.Millisecond))
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
	fields := map[string]any{"rotation_latency_ms": latency.Milliseconds(), "grace_ms": grace.Milliseconds(),
		"revocation_attempts": cy.RevocationAttempts, "outcome": outcome}
	if ad := cy.Adoption; ad != nil {
		fields["adoption_ms"], fields["clients_adopted"], fields["clients_missing"] = adoption.Milliseconds(), len(ad.Adopted), len(ad.Missing)
	}
	line, err := statsline.Encode("token_rotation", map[string]string{"credential": cr.Name, "backend": c.cfg.Backend},
		fields, now, lineprotocol.Millisecond)
	if err != nil {
		c.log.Warn("metrics not written", "error", err)
		return
	}
	// A stopping controller still reports the cycle it completed.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Duration(c.cfg.Timeout))
	defer cancel()
	if err := c.be.WriteLines(wctx, m.Org, m.Bucket, tok, line); err != nil {
		c.log.Warn("metrics not written", "bucket", m.Bucket, "error", err)
	}
}
