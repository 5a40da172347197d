package server

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/models"

	// The docker secret store reads Docker and Kubernetes file secrets
	// (dynamic = true re-reads them), which the stock execd shim cannot
	// use at all. Other stores need only another import here.
	_ "github.com/influxdata/telegraf/plugins/secretstores/docker"

	"github.com/influxrotate/influxrotate/cmd/influxdb-v2-rotating/internal/flusher"
	"github.com/influxrotate/influxrotate/cmd/influxdb-v2-rotating/internal/lines"
	plugin "github.com/influxrotate/influxrotate/plugins/outputs/influxdb_v2_rotating"
)

const pluginName = "influxdb_v2_rotating"

// loadPlugin reads the config file with Telegraf's own loader, so that
// environment variables, secret stores and the "option not used" errors
// behave exactly as in telegraf.conf, and returns the initialised plugin.
func LoadPlugin(path string) (*plugin.InfluxDB, error) {
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

// PluginBackend adapts the plugin to the binary.
type PluginBackend struct {
	Plugin *plugin.InfluxDB
}

func (b PluginBackend) WriteRaw(ctx context.Context, bucket string, lines []byte, count int) error {
	return b.Plugin.WriteRaw(ctx, bucket, lines, count)
}

func (b PluginBackend) advise(err error) flusher.Advice {
	v := flusher.Advice{Retry: plugin.IsRetryable(err)}
	var we *plugin.WriteError
	if errors.As(err, &we) {
		v.Wait = we.RetryAfter
	}
	return v
}

func (b PluginBackend) lineOptions() lines.Options {
	return lines.Options{Options: b.Plugin.LineOptions(), DefaultBucket: b.Plugin.Bucket}
}

func (b PluginBackend) statsFields() map[string]int64 { return b.Plugin.StatsFields() }

func (b PluginBackend) statsBucket() string { return b.Plugin.Bucket }

func (b PluginBackend) reload(ctx context.Context) {
	if r := b.Plugin.Rotator(); r != nil {
		r.Reload(ctx)
	}
}

func (b PluginBackend) close() error { return b.Plugin.Close() }
