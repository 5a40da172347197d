package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	telegrafconfig "github.com/influxdata/telegraf/config"
)

const minimal = `
url = "http://127.0.0.1:8086"
operator_token_file = "op"
state_dir = "state"
audit_log = "audit.jsonl"
[[credential]]
name = "telegraf"
org = "acme"
authorization_id = "0123456789abcdef"
  [[credential.target]]
  type = "file"
  path = "/run/token"
`

func TestDefaults(t *testing.T) {
	cfg, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	cr := cfg.Credentials[0]
	if cfg.Backend != BackendInfluxDB2 || cr.Grace != DefaultGrace || cr.Observe != DefaultObserve || cr.MaxAge != DefaultMaxAge {
		t.Errorf("defaults not applied: %+v %+v", cfg, cr)
	}
	if time.Duration(cr.Grace) <= 60*time.Second {
		t.Errorf("default grace %s is not above the kubelet sync period", cr.Grace)
	}
	if cr.Targets[0].Mode != 0 {
		t.Errorf("file mode %o, want 0 (keep the existing file's)", cr.Targets[0].Mode)
	}
	if !strings.HasPrefix(cfg.ClientID, "influxrotate@") {
		t.Errorf("client_id %q", cfg.ClientID)
	}
}

func TestRejects(t *testing.T) {
	cases := map[string]struct{ edit, want string }{
		"unknown key":           {`gracee = "1s"`, "unknown option(s): gracee"},
		"unknown nested key":    {"[[credential.target]]\ntype = \"file\"\npath = \"/x\"\nmod = \"0600\"", "credential.target.mod"},
		"plain http remote":     {`url = "http://influx.example.com:8086"`, "refusing to send the operator token over plain http"},
		"bad backend":           {`backend = "influxdb4"`, `backend "influxdb4"`},
		"bad target type":       {"[[credential.target]]\ntype = \"ftp\"", `type "ftp"`},
		"option of other type":  {"[[credential.target]]\ntype = \"exec\"\ncommand = [\"x\"]\npath = \"/x\"", `option "path" does not apply to a exec target`},
		"bad mode":              {"[[credential.target]]\ntype = \"file\"\npath = \"/x\"\nmode = \"rw\"", "octal"},
		"owner of a secret-dir": {"[[credential.target]]\ntype = \"secret-dir\"\ndir = \"/x\"\nowner = \"telegraf\"", `option "owner" does not apply to a secret-dir target`},
		"unset variable":        {`client_id = "${INFLUXROTATE_TEST_UNSET_VAR}"`, "INFLUXROTATE_TEST_UNSET_VAR"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			doc := minimal
			if strings.HasPrefix(c.edit, "[[") {
				doc += c.edit + "\n"
			} else {
				key := strings.SplitN(c.edit, " ", 2)[0]
				lines := strings.Split(doc, "\n")
				replaced := false
				for i, l := range lines {
					if strings.HasPrefix(l, key+" ") {
						lines[i], replaced = c.edit, true
					}
				}
				if !replaced {
					lines = append([]string{c.edit}, lines...)
				}
				doc = strings.Join(lines, "\n")
			}
			_, err := Parse([]byte(doc))
			var ce *Error
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want a configuration error containing %q", err, c.want)
			}
		})
	}
}

func TestInsecureHTTPAllowedExplicitly(t *testing.T) {
	doc := strings.Replace(minimal, `url = "http://127.0.0.1:8086"`, "url = \"http://influx.example.com:8086\"\nallow_insecure_http = true", 1)
	if _, err := Parse([]byte(doc)); err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"localhost", "127.0.0.1", "[::1]"} {
		doc := strings.Replace(minimal, "127.0.0.1:8086", host+":8086", 1)
		if _, err := Parse([]byte(doc)); err != nil {
			t.Errorf("%s: %v", host, err)
		}
	}
}

func TestEnvExpansion(t *testing.T) {
	t.Setenv("INFLUXROTATE_TEST_ORG", "from-env")
	doc := strings.Replace(minimal, `org = "acme"`, `org = "${INFLUXROTATE_TEST_ORG}"`, 1) +
		"# a comment with ${INFLUXROTATE_TEST_NOT_SET} is left alone\n"
	doc = strings.Replace(doc, `state_dir = "state"`, `state_dir = "${INFLUXROTATE_TEST_DIR:-/var/lib/influxrotate}"`, 1)
	cfg, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Credentials[0].Org != "from-env" || cfg.StateDir != "/var/lib/influxrotate" {
		t.Errorf("org %q state_dir %q", cfg.Credentials[0].Org, cfg.StateDir)
	}
}

func TestLoadResolvesRelativePaths(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.toml")
	if err := os.WriteFile(p, []byte(minimal), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.StateDir != filepath.Join(dir, "state") || cfg.OperatorTokenFile != filepath.Join(dir, "op") {
		t.Errorf("paths not resolved: %q %q", cfg.StateDir, cfg.OperatorTokenFile)
	}
	if cfg.Credentials[0].Targets[0].Path != "/run/token" {
		t.Errorf("absolute path changed")
	}
}

func TestExampleConfigLoads(t *testing.T) {
	t.Setenv("INFLUX_URL", "https://influx.example.com")
	cfg, err := Load("../../example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Credentials) == 0 {
		t.Fatal("no credential in the example")
	}
}

// TestExampleInfluxDB3SectionLoads: the commented InfluxDB 3 configuration
// at the end of example.toml, uncommented, is a valid configuration.
func TestExampleInfluxDB3SectionLoads(t *testing.T) {
	data, err := os.ReadFile("../../example.toml")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "# --- InfluxDB 3 (Core and Enterprise)")
	if !ok {
		t.Fatal("example.toml has no InfluxDB 3 section")
	}
	// The prose ends at the first empty comment line; after it, "# " starts
	// a line of the configuration and "# # " a comment in it.
	_, section, _ = strings.Cut(section, "\n#\n")
	var doc strings.Builder
	for _, line := range strings.Split(section, "\n") {
		if rest, ok := strings.CutPrefix(line, "# "); ok && !strings.HasPrefix(rest, "#") {
			doc.WriteString(rest + "\n")
		}
	}
	cfg, err := Parse([]byte(doc.String()))
	if err != nil {
		t.Fatalf("the InfluxDB 3 section: %v\n%s", err, doc.String())
	}
	if cfg.Backend != BackendInfluxDB3 || cfg.Edition != EditionEnterprise || len(cfg.Credentials) != 1 ||
		time.Duration(cfg.Credentials[0].ExpiryMargin) != 168*time.Hour {
		t.Errorf("the InfluxDB 3 section reads as %+v", cfg)
	}
	if a := cfg.Credentials[0].Adoption; a == nil || a.Bucket != "telemetry" {
		t.Errorf("the InfluxDB 3 section's adoption gate reads as %+v", a)
	}
}

// TestURLPasswordIsMasked: a configuration error naming the url masks the
// password of its userinfo.
func TestURLPasswordIsMasked(t *testing.T) {
	for _, u := range []string{
		"ftp://user:url-s3cret-pw@influx.example.com",
		"http://user:url-s3cret-pw@influx.example.com:8086",
		"http://user:url-s3cret-pw@influx.example.com:port",
	} {
		doc := strings.Replace(minimal, `url = "http://127.0.0.1:8086"`, "url = \""+u+"\"", 1)
		_, err := Parse([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), "user:xxxxx@") || strings.Contains(err.Error(), "url-s3cret-pw") {
			t.Errorf("url %s: error %v, want one naming the url with its password masked", "user:…@", err)
		}
	}
}

// TestDurationsReadAsTelegrafReadsThem: a bare number is seconds, as in
// the plugin's and the execd binary's Telegraf configuration (it was read
// as nanoseconds: max_age = 720 rotated on every run).
func TestDurationsReadAsTelegrafReadsThem(t *testing.T) {
	for _, v := range []string{`90`, `2.5`, `0`, `"90"`, `"90s"`, `"1h30m"`, `"250ms"`, `'2m'`} {
		t.Run(v, func(t *testing.T) {
			doc := strings.Replace(minimal, "[[credential]]\n", "[[credential]]\ngrace = "+v+"\n", 1)
			cfg, err := Parse([]byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			var want telegrafconfig.Duration
			if err := want.UnmarshalText([]byte(strings.Trim(v, `"'`))); err != nil {
				t.Fatal(err)
			}
			if time.Duration(want) == 0 {
				want = telegrafconfig.Duration(DefaultGrace) // 0 selects the default
			}
			if got := cfg.Credentials[0].Grace; time.Duration(got) != time.Duration(want) {
				t.Errorf("grace = %s read as %s; Telegraf reads it as %s", v, got, time.Duration(want))
			}
		})
	}
	doc := strings.Replace(minimal, "[[credential]]\n", "timeout = 3\n[retry]\ninitial = 1\nmax = 2\n[[credential]]\nmax_age = 720\njitter = 60\nobserve = 30\n", 1) +
		"  timeout = 45\n"
	doc = strings.Replace(doc, `type = "file"`+"\n  path = \"/run/token\"", `type = "exec"`+"\n  command = [\"/bin/true\"]", 1)
	cfg, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	cr := cfg.Credentials[0]
	for name, c := range map[string]struct{ got, want time.Duration }{
		"timeout":        {time.Duration(cfg.Timeout), 3 * time.Second},
		"retry.initial":  {time.Duration(cfg.Retry.Initial), time.Second},
		"retry.max":      {time.Duration(cfg.Retry.Max), 2 * time.Second},
		"max_age":        {time.Duration(cr.MaxAge), 720 * time.Second},
		"jitter":         {time.Duration(cr.Jitter), time.Minute},
		"observe":        {time.Duration(cr.Observe), 30 * time.Second},
		"target.timeout": {time.Duration(cr.Targets[0].ExecTimeout), 45 * time.Second},
	} {
		if c.got != c.want {
			t.Errorf("%s: bare integer read as %s, want %s", name, c.got, c.want)
		}
	}
}

func TestBadDurationsNameTheOption(t *testing.T) {
	for v, want := range map[string]string{
		`"90d"`:            `duration "90d"`,
		`"soon"`:           `duration "soon"`,
		`true`:             "not bool",
		`9999999999999999`: "out of range",
		`-5`:               "grace must be positive, not -5s",
		`"-1s"`:            "grace must be positive, not -1s",
	} {
		t.Run(v, func(t *testing.T) {
			doc := strings.Replace(minimal, "[[credential]]\n", "[[credential]]\ngrace = "+v+"\n", 1)
			_, err := Parse([]byte(doc))
			var ce *Error
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "grace") {
				t.Fatalf("grace = %s: %v, want a configuration error naming grace and containing %q", v, err, want)
			}
		})
	}
}

func TestAdoptionOptions(t *testing.T) {
	doc := strings.Replace(minimal, `authorization_id = "0123456789abcdef"`, `authorization_id = "0123456789abcdef"
buckets = ["telemetry", "other"]
  [credential.adoption]`, 1)
	cfg, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Credentials[0].Adoption
	if a == nil || a.Bucket != "telemetry" || time.Duration(a.Lookback) != 15*time.Minute || a.MinClients != 1 ||
		time.Duration(a.Timeout) != DefaultAdoptionTimeout || a.OnTimeout != OnTimeoutAbort || time.Duration(a.PollInterval) != DefaultAdoptionPoll {
		t.Errorf("adoption defaults not applied: %+v", a)
	}
	if cfg, err := Parse([]byte(minimal)); err != nil || cfg.Credentials[0].Adoption != nil {
		t.Errorf("no [credential.adoption] must mean no gate: %+v %v", cfg.Credentials[0].Adoption, err)
	}
	// Durations read as everywhere else: a bare number is seconds.
	if cfg, err := Parse([]byte(strings.Replace(doc, "[credential.adoption]", "[credential.adoption]\npoll_interval = 5", 1))); err != nil ||
		time.Duration(cfg.Credentials[0].Adoption.PollInterval) != 5*time.Second {
		t.Errorf("poll_interval = 5: %v", err)
	}
	for edit, want := range map[string]string{
		`on_timeout = "wait"`:         `on_timeout "wait"`,
		`lookback = "500ms"`:          "whole seconds",
		`timeout = "-1s"`:             "timeout must be positive, not -1s",
		`clients = ["a", "a"]`:        `repeated client id "a"`,
		`clients = [""]`:              "empty or repeated",
		`poll_interval = "1us"`:       "poll_interval 1µs: too short",
		`min_clients = -1`:            "min_clients must be positive, not -1",
		`unknown_adoption_opt = true`: "credential.adoption.unknown_adoption_opt",
	} {
		_, err := Parse([]byte(strings.Replace(doc, "[credential.adoption]", "[credential.adoption]\n"+edit, 1)))
		if err == nil {
			t.Errorf("%s: accepted", edit)
			continue
		}
		if want != "" && !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %q, want %q", edit, err, want)
		}
	}
}

// TestBadOptionsNameTheOneAtFault: an error listing several options leaves
// the operator to guess which of them is wrong.
func TestBadOptionsNameTheOneAtFault(t *testing.T) {
	for edit, want := range map[string]string{
		"[retry]\nattempts = -1\n":            "retry.attempts must be at least 1, not -1",
		"[retry]\ninitial = \"-1s\"\n":        "retry.initial must be positive, not -1s",
		"[retry]\ninitial = 5\nmax = 2\n":     "retry.max 2s must not be less than retry.initial 5s",
		"[[credential]]\nmax_age = \"-1h\"\n": "max_age must be positive, not -1h0m0s",
		"[[credential]]\njitter = -3\n":       "jitter must be positive, not -3s",
		"[[credential]]\nobserve = -3\n":      "observe must be positive, not -3s",
	} {
		doc := strings.Replace(minimal, "[[credential]]\n", edit, 1)
		if !strings.HasPrefix(edit, "[[credential]]") {
			doc = strings.Replace(minimal, "[[credential]]\n", edit+"[[credential]]\n", 1)
		}
		_, err := Parse([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", edit, err, want)
		}
	}
}
