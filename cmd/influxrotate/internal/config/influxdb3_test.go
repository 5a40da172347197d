package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const minimalV3 = `
url = "http://127.0.0.1:8181"
backend = "influxdb3"
edition = "enterprise"
operator_token_file = "op"
state_dir = "state"
audit_log = "audit.jsonl"
[[credential]]
name = "telegraf"
description = "telegraf"
max_age = "720h"
grace = "2m"
  [[credential.target]]
  type = "file"
  path = "/run/token"
`

func TestInfluxDB3Defaults(t *testing.T) {
	cfg, err := Parse([]byte(minimalV3))
	if err != nil {
		t.Fatal(err)
	}
	cr := cfg.Credentials[0]
	if cfg.Backend != BackendInfluxDB3 || cfg.Edition != EditionEnterprise || cr.ExpiryMargin != DefaultExpiryMargin {
		t.Fatalf("%+v %+v", cfg, cr)
	}
	want := 720*time.Hour + 2*time.Minute + time.Duration(DefaultExpiryMargin)
	if got := cr.TokenExpiry(); got != want {
		t.Errorf("token expiry %v, want max_age + grace + margin = %v", got, want)
	}
	if got := cfg.TokenExpiries(); len(got) != 1 || got["telegraf"] != want {
		t.Errorf("expiries %v", got)
	}
	margin := strings.Replace(minimalV3, `grace = "2m"`, "grace = \"2m\"\nexpiry_margin = \"36h\"", 1)
	cfg, err = Parse([]byte(margin))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Credentials[0].TokenExpiry(); got != 720*time.Hour+2*time.Minute+36*time.Hour {
		t.Errorf("token expiry with a margin %v", got)
	}
	core := strings.Replace(minimalV3, `edition = "enterprise"`, `edition = "core"`, 1)
	if _, err := Parse([]byte(core)); err != nil {
		t.Errorf("core: %v", err)
	}
}

func TestInfluxDB3Rejects(t *testing.T) {
	for name, c := range map[string]struct{ old, new, want string }{
		"no edition":          {`edition = "enterprise"`, ``, `backend influxdb3 needs edition = "core" or "enterprise"`},
		"unknown edition":     {`edition = "enterprise"`, `edition = "cloud"`, `edition "cloud"`},
		"org":                 {`description = "telegraf"`, "description = \"telegraf\"\norg = \"acme\"", "InfluxDB 3 has no organizations"},
		"operator by id":      {`description = "telegraf"`, `authorization_id = "_admin"`, "operator token _admin is never rotated"},
		"operator by name":    {`description = "telegraf"`, `description = "_admin"`, "operator token _admin is never rotated"},
		"negative margin":     {`grace = "2m"`, "grace = \"2m\"\nexpiry_margin = \"-1h\"", "expiry_margin must be positive"},
		"buckets on core":     {`edition = "enterprise"`, "edition = \"core\"", ""},
		"edition on 2.x":      {`backend = "influxdb3"`, `backend = "influxdb2"`, "edition applies to backend"},
		"margin on 2.x":       {"backend = \"influxdb3\"\nedition = \"enterprise\"", "", "expiry_margin applies to backend"},
		"observe":             {`grace = "2m"`, "grace = \"2m\"\nobserve = \"10m\"", "observe does not apply to backend influxdb3"},
		"negative activation": {`grace = "2m"`, "grace = \"2m\"\nactivation_timeout = \"-1s\"", "activation_timeout must be positive"},
	} {
		t.Run(name, func(t *testing.T) {
			doc := strings.Replace(minimalV3, c.old, c.new, 1)
			switch name {
			case "buckets on core":
				doc = strings.Replace(doc, `description = "telegraf"`, "buckets = [\"telemetry\"]", 1)
				c.want = "buckets need edition enterprise"
			case "edition on 2.x":
				doc = strings.Replace(doc, `description = "telegraf"`, "org = \"acme\"\ndescription = \"telegraf\"", 1)
			case "margin on 2.x":
				doc = strings.Replace(doc, `grace = "2m"`, "grace = \"2m\"\norg = \"acme\"\nexpiry_margin = \"1h\"", 1)
			}
			_, err := Parse([]byte(doc))
			var ce *Error
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want a configuration error containing %q", err, c.want)
			}
		})
	}
}

// TestActivationTimeout: 0 by default (an OSS server accepts a token once it
// is made), read as a duration, and no observe is defaulted for influxdb3,
// which has no such phase.
func TestActivationTimeout(t *testing.T) {
	cfg, err := Parse([]byte(minimalV3))
	if err != nil {
		t.Fatal(err)
	}
	if cr := cfg.Credentials[0]; cr.ActivationTimeout != 0 || cr.Observe != 0 {
		t.Errorf("defaults: activation_timeout %v, observe %v; want 0 and 0", cr.ActivationTimeout, cr.Observe)
	}
	cfg, err = Parse([]byte(strings.Replace(minimalV3, `grace = "2m"`, "grace = \"2m\"\nactivation_timeout = \"90s\"", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if got := time.Duration(cfg.Credentials[0].ActivationTimeout); got != 90*time.Second {
		t.Errorf("activation_timeout %v, want 90s", got)
	}
}
