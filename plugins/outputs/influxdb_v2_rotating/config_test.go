package influxdb_v2_rotating

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/plugins/outputs"
	stockplugin "github.com/influxdata/telegraf/plugins/outputs/influxdb_v2"
)

// stockSampleConfig is the sample.conf of Telegraf's own outputs.influxdb_v2
// at the version in go.mod, read from the module cache.
func stockSampleConfig(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/influxdata/telegraf").Output()
	if err != nil {
		t.Skipf("cannot locate Telegraf's module: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "plugins", "outputs", "influxdb_v2", "sample.conf"))
	if err != nil {
		t.Fatalf("stock sample.conf: %v", err)
	}
	return string(b)
}

func loadOutputs(t *testing.T, text string) (*config.Config, error) {
	t.Helper()
	c := config.NewConfig()
	if err := c.LoadConfigData([]byte(text), ""); err != nil {
		return c, err
	}
	if len(c.Outputs) != 1 {
		t.Fatalf("%d outputs loaded, want 1", len(c.Outputs))
	}
	return c, c.Outputs[0].Init()
}

// A working stock configuration keeps working when only the plugin name
// changes. A working one has a token: the stock sample's token = "" is the
// one value we refuse, as no token at all cannot be rotated.
func TestStockConfigWithTheNameReplaced(t *testing.T) {
	stock := stockSampleConfig(t)
	renamed := strings.Replace(stock, "[[outputs.influxdb_v2]]", "[[outputs.influxdb_v2_rotating]]", 1)
	if renamed == stock {
		t.Fatal("stock sample.conf has no [[outputs.influxdb_v2]] header")
	}

	_, err := loadOutputs(t, renamed)
	if err == nil || !strings.Contains(err.Error(), `"token"`) {
		t.Fatalf("empty token: %v, want an error naming the token option", err)
	}

	withToken := strings.Replace(renamed, `token = ""`, `token = "my-secret-token"`, 1)
	c, err := loadOutputs(t, withToken)
	if err != nil {
		t.Fatalf("renamed stock config: %v", err)
	}
	p := c.Outputs[0].Output.(*InfluxDB)
	if p.URLs[0] != "http://127.0.0.1:8086" || p.ContentEncoding != "gzip" || time.Duration(p.Timeout) != 5*time.Second || p.ConcurrentWrites != 0 {
		t.Fatalf("stock defaults not kept: %+v", p)
	}

	// Every option of the stock sample, uncommented with its documented
	// value, is accepted, including rate_limit = "unlimited".
	var b strings.Builder
	for _, line := range strings.Split(withToken, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "# ") && strings.Contains(trimmed, " = ") && !strings.HasPrefix(trimmed, "## ") {
			opt := strings.TrimPrefix(trimmed, "# ")
			name := strings.TrimSpace(strings.SplitN(opt, "=", 2)[0])
			switch name {
			case "tls_ca", "tls_cert", "tls_key", "local_address":
				continue // files and addresses that do not exist here
			}
			line = "  " + opt
		}
		b.WriteString(line + "\n")
	}
	c, err = loadOutputs(t, b.String())
	if err != nil {
		t.Fatalf("stock sample with every option set: %v\n%s", err, b.String())
	}
	p = c.Outputs[0].Output.(*InfluxDB)
	if p.Limit != 0 || p.UserAgent != "telegraf" || p.HTTPProxy != "http://corporate.proxy:3128" || p.ConcurrentWrites != 1 {
		t.Fatalf("options not read: limit=%d ua=%q proxy=%q concurrent=%d", p.Limit, p.UserAgent, p.HTTPProxy, p.ConcurrentWrites)
	}
}

func TestRateLimitValues(t *testing.T) {
	for value, want := range map[string]RateLimit{`"unlimited"`: 0, `"UNLIMITED"`: 0, `"5MB"`: 5_000_000, `1024`: 1024, `"1KiB"`: 1024} {
		text := "[[outputs.influxdb_v2_rotating]]\n  token = \"x\"\n  rate_limit = " + value + "\n  rate_limit_period = \"1m\"\n"
		c, err := loadOutputs(t, text)
		if err != nil {
			t.Fatalf("rate_limit = %s: %v", value, err)
		}
		if got := c.Outputs[0].Output.(*InfluxDB).Limit; got != want {
			t.Fatalf("rate_limit = %s gives %d, want %d", value, got, want)
		}
	}
	if _, err := loadOutputs(t, "[[outputs.influxdb_v2_rotating]]\n  token = \"x\"\n  rate_limit = \"lots\"\n"); err == nil || !strings.Contains(err.Error(), "rate_limit") {
		t.Fatalf("rate_limit = lots: %v, want an error naming rate_limit", err)
	}
	// Why we have our own type: the stock plugin's config.Size refuses the
	// value its own sample configuration documents.
	if _, err := loadOutputs(t, "[[outputs.influxdb_v2]]\n  token = \"x\"\n  rate_limit = \"unlimited\"\n"); err == nil {
		t.Fatal("stock influxdb_v2 now accepts rate_limit = \"unlimited\"; our RateLimit type may be unnecessary")
	}
}

func TestOurSampleConfigLoads(t *testing.T) {
	c, err := loadOutputs(t, sampleConfig)
	if err != nil {
		t.Fatalf("sample.conf: %v", err)
	}
	p := c.Outputs[0].Output.(*InfluxDB)
	if p.Probe != ProbeEmptyWrite || !p.Fallback || time.Duration(p.TokenRereadInterval) != time.Minute || time.Duration(p.TokenDebounce) != 100*time.Millisecond || p.ClientID == "" {
		t.Fatalf("rotation defaults: probe=%q fallback=%t reread=%s debounce=%s client_id=%q",
			p.Probe, p.Fallback, time.Duration(p.TokenRereadInterval), time.Duration(p.TokenDebounce), p.ClientID)
	}
}

func TestReadmeConfigIsTheSampleConfig(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	const open = "```toml @sample.conf\n"
	start := strings.Index(string(readme), open)
	if start < 0 {
		t.Fatal("README has no ```toml @sample.conf block")
	}
	rest := string(readme)[start+len(open):]
	end := strings.Index(rest, "```\n")
	if end < 0 {
		t.Fatal("README's sample.conf block is not closed")
	}
	if rest[:end] != sampleConfig {
		t.Fatal("README's configuration block differs from sample.conf: copy sample.conf into it")
	}
}

func TestInitErrorsNameTheOption(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("k3y\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		mutate func(*InfluxDB)
		want   string // "" means Init succeeds
	}{
		{"no token", func(*InfluxDB) {}, `"token", "token_file" or "token_env"`},
		{"token and token_file", func(p *InfluxDB) { p.Token = config.NewSecret([]byte("x")); p.TokenFile = missing }, `token_file: options "token" and "token_file" are exclusive`},
		{"token_file and token_env", func(p *InfluxDB) { p.TokenFile = missing; p.TokenEnv = "X" }, `"token_file" and "token_env" are exclusive`},
		{"missing token_file waits", func(p *InfluxDB) { p.TokenFile = missing }, ""},
		{"missing token_file strict", func(p *InfluxDB) { p.TokenFile = missing; p.Strict = true }, `token_file "` + missing + `": no such file or directory`},
		{"empty token_file strict", func(p *InfluxDB) { p.TokenFile = empty; p.Strict = true }, `token_file "` + empty + `": token is empty`},
		{"unset token_env strict", func(p *InfluxDB) { p.TokenEnv = "INFLUXROTATE_TEST_UNSET"; p.Strict = true }, `token_env: variable "INFLUXROTATE_TEST_UNSET" is not set`},
		{"probe", func(p *InfluxDB) { p.TokenFile = missing; p.Probe = "ping" }, `probe: invalid value "ping"`},
		{"probe point without bucket", func(p *InfluxDB) { p.TokenFile = missing; p.Probe = ProbePoint; p.Bucket = "" }, "probe_bucket: required"},
		{"content_encoding", func(p *InfluxDB) { p.TokenFile = missing; p.ContentEncoding = "br" }, `content_encoding: invalid content encoding "br"`},
		// urls, http_proxy and local_address fail at Connect, like stock:
		// TestBadAddressesFailAtConnectLikeStock.
		{"rate_limit_period", func(p *InfluxDB) { p.TokenFile = missing; p.Limit = 10 }, "rate_limit_period: must be positive"},
		{"tls", func(p *InfluxDB) { p.TokenFile = missing; p.TLSCA = missing }, "tls: setting up TLS failed"},
		{"timeout", func(p *InfluxDB) { p.TokenFile = missing; p.Timeout = config.Duration(-time.Second) }, "timeout: must not be negative"},
		{"token_debounce", func(p *InfluxDB) { p.TokenFile = missing; p.TokenDebounce = -1 }, "token_debounce: must not be negative"},
		{"token_reread_interval", func(p *InfluxDB) { p.TokenFile = missing; p.TokenRereadInterval = config.Duration(-time.Second) }, "token_reread_interval: must not be negative"},
		{"client_id with a newline", func(p *InfluxDB) { p.TokenFile = missing; p.ClientID = "edge\n01" }, `client_id: must not contain control characters ('\n' at byte 4)`},
		{"audit_key_file without audit_log", func(p *InfluxDB) { p.TokenFile = missing; p.AuditKeyFile = empty }, "audit_key_file: set without audit_log"},
		{"audit_key_file missing", func(p *InfluxDB) { p.TokenFile = missing; p.AuditLog = missing; p.AuditKeyFile = missing }, "audit_key_file: key file " + fmt.Sprintf("%q", missing) + ": no such file"},
		{"audit_key_file too short", func(p *InfluxDB) { p.TokenFile = missing; p.AuditLog = missing; p.AuditKeyFile = short }, "audit_key_file: key file " + fmt.Sprintf("%q", short) + ": the key is shorter than 32 characters"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := New()
			p.Bucket = "b"
			tc.mutate(p)
			err := p.Init()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Init: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Init error %v, want one containing %q", err, tc.want)
			case err != nil && strings.Contains(err.Error(), "url-s3cret-pw"):
				t.Fatalf("Init error shows the URL's password")
			}
		})
	}
}

// tomlOptions lists the toml option names of a plugin struct, embedded
// structs included.
func tomlOptions(t reflect.Type, into map[string]reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("toml")
		if f.Anonymous && tag == "" {
			tomlOptions(f.Type, into)
			continue
		}
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		into[strings.Split(tag, ",")[0]] = f.Type
	}
}

func TestEveryStockOptionExists(t *testing.T) {
	stock, ours := map[string]reflect.Type{}, map[string]reflect.Type{}
	tomlOptions(reflect.TypeOf(stockplugin.InfluxDB{}), stock)
	tomlOptions(reflect.TypeOf(InfluxDB{}), ours)
	if len(stock) < 20 {
		t.Fatalf("only %d stock options found: %v", len(stock), stock)
	}
	for name, typ := range stock {
		got, ok := ours[name]
		if !ok {
			t.Errorf("stock option %q missing", name)
			continue
		}
		// rate_limit has its own type to accept "unlimited"; the rest match.
		if got != typ && name != "rate_limit" {
			t.Errorf("option %q is %v here, %v in the stock plugin", name, got, typ)
		}
	}
	// The same defaults as the stock registry entry.
	stockDefault := outputs.Outputs["influxdb_v2"]().(*stockplugin.InfluxDB)
	if New().Timeout != stockDefault.Timeout {
		t.Errorf("timeout default %v, stock %v", New().Timeout, stockDefault.Timeout)
	}
}

func TestReadmeDocumentsEveryMetricField(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for name := range New().StatsFields() {
		if !strings.Contains(string(readme), "    - "+name+" (integer") {
			t.Errorf("README's Metrics section does not document field %q", name)
		}
	}
}

// The default User-Agent names Telegraf's version as the stock plugin's
// does: in a Telegraf binary the version its build set with -X (the module
// itself is "(devel)" there), elsewhere the Telegraf module required.
func TestProductToken(t *testing.T) {
	telegrafDep := []*debug.Module{{Path: "github.com/influxdata/telegraf", Version: "v1.37.2"}}
	cases := []struct {
		name string
		info *debug.BuildInfo
		want string
	}{
		{"no build info", nil, "Telegraf/unknown Go/1.26.8"},
		{"execd binary", &debug.BuildInfo{Deps: telegrafDep}, "Telegraf/1.37.2 Go/1.26.8"},
		{"make telegraf", &debug.BuildInfo{
			Main: debug.Module{Path: "github.com/influxdata/telegraf", Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "-ldflags",
				Value: "-s -w -X github.com/influxdata/telegraf/internal.Version=1.40.1 -X github.com/influxdata/telegraf/internal.Commit=abc"}},
		}, "Telegraf/1.40.1 Go/1.26.8"},
		{"quoted flag", &debug.BuildInfo{Settings: []debug.BuildSetting{{Key: "-ldflags",
			Value: `-X "github.com/influxdata/telegraf/internal.Version=1.39.2"`}}}, "Telegraf/1.39.2 Go/1.26.8"},
	}
	for _, c := range cases {
		if got := productTokenOf(c.info, "go1.26.8 X:nocoverageredesign"); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

// bucket_tag alone with a fixed token connects, as the stock plugin does
// (issue 11); there is no bucket to check the token against, and Check
// says so instead of failing inside the prober.
func TestBucketTagOnlyFixedToken(t *testing.T) {
	p := New()
	p.Token = config.NewSecret([]byte("fixed-token"))
	p.BucketTag = "bucket"
	p.URLs = []string{"http://127.0.0.1:1"}
	if err := p.Init(); err != nil {
		t.Fatalf("Init: %v", err)
	}
	if err := p.Connect(); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	defer p.Close()
	_, _, err := p.Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "set probe_bucket") {
		t.Fatalf("Check: %v, want an error asking for probe_bucket", err)
	}
	p.ProbeBucket = "telegraf"
	if _, results, err := p.Check(context.Background()); err != nil || len(results) != 1 {
		t.Fatalf("Check with probe_bucket: %v %+v", err, results)
	}
}

// TestSampleConfigDocumentsEveryOption keeps sample.conf (and through
// TestReadmeConfigIsTheSampleConfig the README) complete: every toml option
// of the plugin, its embedded Telegraf option sets included, is shown there,
// set or commented out, so a new option cannot ship undocumented.
func TestSampleConfigDocumentsEveryOption(t *testing.T) {
	ours := map[string]reflect.Type{}
	tomlOptions(reflect.TypeOf(InfluxDB{}), ours)
	if len(ours) < 30 {
		t.Fatalf("only %d options found: %v", len(ours), ours)
	}
	for name := range ours {
		shown := regexp.MustCompile(`(?m)^\s*(#\s*)?` + regexp.QuoteMeta(name) + `\s*=`)
		if !shown.MatchString(sampleConfig) {
			t.Errorf("option %q is not in sample.conf", name)
		}
	}
}
