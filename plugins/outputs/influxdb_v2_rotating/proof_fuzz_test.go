package influxdb_v2_rotating

import (
	"strings"
	"testing"

	"github.com/influxdata/telegraf/config"
)

// FuzzConfig loads arbitrary option text as an [[outputs.influxdb_v2_rotating]]
// block with Telegraf's own loader and initialises the plugin: nothing may
// panic, and a configuration Init accepts must have exactly one token
// source, a known content encoding and probe mode, and no negative
// durations. (Connect is not called: it would reach out to the URLs.)
func FuzzConfig(f *testing.F) {
	f.Add(`token = "x"`)
	f.Add(`token_file = "/run/secrets/influx-token"` + "\nurls = [\"https://influx:8086\"]\norganization = \"acme\"\nbucket = \"telegraf\"")
	f.Add(`token_env = "INFLUX_TOKEN"` + "\nprobe = \"point\"\nprobe_bucket = \"probes\"")
	f.Add(`token = "x"` + "\ntoken_file = \"/t\"")
	f.Add(`token = "x"` + "\nurls = [\"http://[::1\"]")
	f.Add(`token = "x"` + "\ntimeout = \"-5s\"\nprobe_timeout = \"-1s\"")
	f.Add(`token = "x"` + "\nrate_limit = \"unlimited\"\ncontent_encoding = \"br\"")
	f.Add(`token = "x"` + "\n[outputs.influxdb_v2_rotating.http_headers]\n  Host = \"h\"")
	f.Add("\x00[[")
	f.Fuzz(func(t *testing.T, body string) {
		if strings.Contains(body, "secretstores") || strings.Contains(body, "@{") {
			return // secret stores would need a store plugin and are Telegraf's own code
		}
		if strings.Contains(body, "local_address") {
			return // Init resolves it: a fuzzed host name would reach a real DNS server
		}
		cfg := config.NewConfig()
		cfg.Agent.Quiet = true
		if err := cfg.LoadConfigData([]byte("[[outputs.influxdb_v2_rotating]]\n"+body+"\n"), config.EmptySourcePath); err != nil {
			return
		}
		for _, ro := range cfg.Outputs {
			p, ok := ro.Output.(*InfluxDB)
			if !ok {
				continue
			}
			p.Strict = false // Init would read files named by the fuzzer
			if err := p.Init(); err != nil {
				continue
			}
			sources := 0
			if !p.Token.Empty() {
				sources++
			}
			if p.TokenFile != "" {
				sources++
			}
			if p.TokenEnv != "" {
				sources++
			}
			if sources != 1 {
				t.Fatalf("Init accepted %d token sources", sources)
			}
			if p.ContentEncoding != "gzip" && p.ContentEncoding != "identity" {
				t.Fatalf("Init accepted content_encoding %q", p.ContentEncoding)
			}
			switch p.Probe {
			case ProbeEmptyWrite, ProbePoint, ProbeNone:
			default:
				t.Fatalf("Init accepted probe %q", p.Probe)
			}
			if p.ProbeTimeout < 0 || p.TokenDebounce < 0 {
				t.Fatalf("Init accepted a negative duration: probe_timeout %v, token_debounce %v", p.ProbeTimeout, p.TokenDebounce)
			}
		}
	})
}
