package config

import (
	"strings"
	"testing"
	"time"
)

// FuzzParse feeds arbitrary text to the controller's configuration parser:
// it must never panic, every error must say it is about the configuration,
// and a configuration it accepts must be usable: a URL, at least one
// credential, every credential named and with a target, and the names
// unique (Credential finds each one).
func FuzzParse(f *testing.F) {
	f.Add([]byte(`url = "https://influx.example.com:8086"
backend = "influxdb2"
operator_token_file = "/etc/influxrotate/operator-token"
state_dir = "/var/lib/influxrotate"
[[credential]]
name = "telegraf"
org = "acme"
authorization_id = "0123456789abcdef"
  [[credential.target]]
  type = "file"
  path = "/etc/telegraf/token"
`))
	f.Add([]byte(`url = "${INFLUX_URL:-http://127.0.0.1:8086}"
allow_insecure_http = true
backend = "influxdb1"
[[credential]]
name = "a"
  [[credential.target]]
  type = "secret-dir"
  dir = "/run/secrets/a"
  mode = "0640"
`))
	f.Add([]byte("url = 1\n[[credential]]\nname = \"x\"\n"))
	f.Add([]byte("[[credential]]\nname = \"dup\"\n[[credential]]\nname = \"dup\"\n"))
	f.Add([]byte("grace = \"-1s\"\n"))
	f.Add([]byte("\x00\xff[[["))
	f.Fuzz(func(t *testing.T, data []byte) {
		type result struct {
			cfg *Config
			err error
		}
		res := make(chan result, 1)
		go func() { c, e := Parse(data); res <- result{c, e} }()
		var r result
		select {
		case r = <-res:
		case <-time.After(5 * time.Second):
			t.Fatalf("Parse hangs on %q", data)
		}
		cfg, err := r.cfg, r.err
		if err != nil {
			if !strings.HasPrefix(err.Error(), "configuration: ") {
				t.Fatalf("error %q does not say it is about the configuration", err)
			}
			return
		}
		if cfg.URL == "" {
			t.Fatal("accepted a configuration without a url")
		}
		if len(cfg.Credentials) == 0 {
			t.Fatal("accepted a configuration without a credential")
		}
		for i := range cfg.Credentials {
			c := &cfg.Credentials[i]
			if c.Name == "" || len(c.Targets) == 0 {
				t.Fatalf("accepted credential %d with name %q and %d targets", i, c.Name, len(c.Targets))
			}
			got, err := cfg.Credential(c.Name)
			if err != nil || got.Name != c.Name {
				t.Fatalf("Credential(%q) = %v, %v", c.Name, got, err)
			}
			if c.Grace < 0 || c.Observe < 0 || c.MaxAge < 0 {
				t.Fatalf("accepted a negative duration in credential %q", c.Name)
			}
		}
	})
}
