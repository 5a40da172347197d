package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	plugin "github.com/influxrotate/influxrotate/plugins/outputs/influxdb_v2_rotating"

	"github.com/influxrotate/influxrotate/rotation"
)

// checkReport probes the active token at every URL with the plugin's own Check,
// which sends through the writers themselves, and returns a readable
// report.
func checkReport(ctx context.Context, p *plugin.InfluxDB) (string, bool) {
	cred, results, err := p.Check(ctx)
	if err != nil {
		return "FAIL: " + err.Error(), false
	}
	var lines []string
	ok := true
	for _, r := range results {
		target := fmt.Sprintf("org %q bucket %q at %s", p.Organization, p.Bucket, r.URL)
		if r.Verdict == rotation.VerdictValid {
			lines = append(lines, fmt.Sprintf("OK: %s may write to %s (%d in %s)", cred, target, r.Status, r.Duration.Round(time.Millisecond)))
			continue
		}
		ok = false
		msg := r.Message
		if msg != "" {
			msg = ": " + msg
		}
		lines = append(lines, fmt.Sprintf("FAIL: %s cannot write to %s: %s (status %d)%s", cred, target, verdictText(r.Verdict), r.Status, msg))
	}
	return strings.Join(lines, "\n"), ok
}

func verdictText(v rotation.Verdict) string {
	switch v {
	case rotation.VerdictRefused:
		return "the server does not know this token"
	case rotation.VerdictForbidden:
		return "the token may not write there (inactive or missing permission)"
	case rotation.VerdictNotFound:
		return "the organization or bucket does not exist"
	default:
		return "the server could not be asked"
	}
}
