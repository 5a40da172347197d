package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/models"
	// The docker secret store reads Docker and Kubernetes file secrets
	// (dynamic = true re-reads them), which the stock execd shim cannot
	// use at all. Other stores need only another import here.
	_ "github.com/influxdata/telegraf/plugins/secretstores/docker"

	plugin "github.com/influxrotate/influxrotate/plugins/outputs/influxdb_v2_rotating"
	"github.com/influxrotate/influxrotate/rotation"
)

const pluginName = "influxdb_v2_rotating"

// loadPlugin reads the config file with Telegraf's own loader, so that
// environment variables, secret stores and the "option not used" errors
// behave exactly as in telegraf.conf, and returns the initialised plugin.
func loadPlugin(path string) (*plugin.InfluxDB, error) {
	if path == "" {
		return nil, errors.New("-config: missing; the binary needs a file holding one [[outputs.influxdb_v2_rotating]] block")
	}
	c := config.NewConfig()
	c.Agent.Quiet = true // no "Loading config" line on stderr
	if err := c.LoadAll(path); err != nil {
		return nil, fmt.Errorf("config %q: %w", path, err)
	}
	var other []string
	for _, ri := range c.Inputs {
		other = append(other, "inputs."+ri.Config.Name)
	}
	for _, rp := range c.Processors {
		other = append(other, "processors."+rp.Config.Name)
	}
	for _, ra := range c.Aggregators {
		other = append(other, "aggregators."+ra.Config.Name)
	}
	var outs []*models.RunningOutput
	for _, ro := range c.Outputs {
		if ro.Config.Name != pluginName {
			other = append(other, "outputs."+ro.Config.Name)
			continue
		}
		outs = append(outs, ro)
	}
	if len(other) > 0 {
		sort.Strings(other)
		return nil, fmt.Errorf("config %q: only [[outputs.%s]] (and [[secretstores.*]]) may appear here, found %s",
			path, pluginName, strings.Join(other, ", "))
	}
	if len(outs) != 1 {
		return nil, fmt.Errorf("config %q: needs exactly one [[outputs.%s]] block, found %d", path, pluginName, len(outs))
	}
	p, ok := outs[0].Output.(*plugin.InfluxDB)
	if !ok {
		return nil, fmt.Errorf("config %q: outputs.%s is not the rotating plugin (%T)", path, pluginName, outs[0].Output)
	}
	if err := outs[0].Init(); err != nil {
		return nil, fmt.Errorf("config %q: [[outputs.%s]]: %w", path, pluginName, err)
	}
	return p, nil
}

// pluginBackend adapts the plugin to the binary.
type pluginBackend struct {
	p *plugin.InfluxDB
}

func (b pluginBackend) WriteRaw(ctx context.Context, bucket string, lines []byte, count int) error {
	return b.p.WriteRaw(ctx, bucket, lines, count)
}

func (b pluginBackend) judge(err error) verdict {
	v := verdict{retry: plugin.IsRetryable(err)}
	var we *plugin.WriteError
	if errors.As(err, &we) {
		v.wait = we.RetryAfter
	}
	return v
}

func (b pluginBackend) lineOptions() lineOptions {
	return lineOptions{
		DefaultBucket:    b.p.Bucket,
		BucketTag:        b.p.BucketTag,
		ExcludeBucketTag: b.p.ExcludeBucketTag,
		UintSupport:      b.p.UintSupport,
		OmitTimestamp:    b.p.OmitTimestamp,
	}
}

func (b pluginBackend) statsFields() map[string]int64 { return b.p.StatsFields() }

func (b pluginBackend) statsBucket() string { return b.p.Bucket }

func (b pluginBackend) reload(ctx context.Context) {
	if r := b.p.Rotator(); r != nil {
		r.Reload(ctx)
	}
}

func (b pluginBackend) close() error { return b.p.Close() }

// check probes the active token at every URL with the plugin's own Check,
// which sends through the writers themselves, and returns a readable
// verdict.
func check(ctx context.Context, p *plugin.InfluxDB) (string, bool) {
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
