package influxdb_v2_rotating

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/influxdata/telegraf/config"

	"github.com/influxrotate/influxrotate/internal/lineproto"
	"github.com/influxrotate/influxrotate/rotation"
)

// RateLimitConfig is ratelimiter.RateLimitConfig with the same option
// names, except that rate_limit also accepts "unlimited", the value the
// stock sample configuration documents but Telegraf 1.37.2 refuses.
type RateLimitConfig struct {
	Limit  RateLimit       `toml:"rate_limit"`
	Period config.Duration `toml:"rate_limit_period"`
}

// RateLimit is a size in bytes as config.Size reads it, or "unlimited" (0).
type RateLimit config.Size

// UnmarshalText accepts "unlimited" in any case and otherwise defers to
// config.Size ("5MB", "1024", ...).
func (r *RateLimit) UnmarshalText(b []byte) error {
	s := strings.Trim(strings.TrimSpace(string(b)), `"'`)
	if strings.EqualFold(s, "unlimited") {
		*r = 0
		return nil
	}
	var size config.Size
	if err := size.UnmarshalText([]byte(s)); err != nil {
		return fmt.Errorf("rate_limit: %w", err)
	}
	*r = RateLimit(size)
	return nil
}

// Init sets defaults and validates the options; every error names the
// option at fault. It starts nothing: Connect does. The steps run in a fixed
// order, so that of several bad options the same one is always reported.
func (p *InfluxDB) Init() error {
	for _, step := range []func() error{
		p.initHTTPOptions,
		p.initTokenOptions,
		p.initProbeOptions,
		p.initIdentity,
		p.checkStrict,
		p.initAdoption,
		p.initProbeBucket,
	} {
		if err := step(); err != nil {
			return err
		}
	}
	p.ser = serializer{lines: lineproto.NewSerializer(p.LineOptions())}
	p.initialized = true
	return nil
}

// initHTTPOptions sets the defaults of the stock plugin's HTTP options and
// validates those Connect does not (urls, http_proxy and local_address are
// checked by Connect, as the stock plugin does, so that `telegraf --test`
// passes where stock does).
func (p *InfluxDB) initHTTPOptions() error {
	if p.UserAgent == "" {
		p.UserAgent = productToken() // reads the build info: only when needed
	}
	if len(p.URLs) == 0 {
		p.URLs = []string{"http://localhost:8086"}
	}
	switch p.ContentEncoding {
	case "", "gzip":
		p.ContentEncoding = "gzip"
	case "identity":
	default:
		return fmt.Errorf("content_encoding: invalid content encoding %q (use \"gzip\" or \"identity\")", p.ContentEncoding)
	}
	for name, d := range map[string]config.Duration{
		"timeout": p.Timeout, "ping_timeout": p.PingTimeout, "read_idle_timeout": p.ReadIdleTimeout, "rate_limit_period": p.Period,
	} {
		if d < 0 {
			return fmt.Errorf("%s: must not be negative, got %s", name, time.Duration(d))
		}
	}
	if p.Limit > 0 && p.Period <= 0 {
		return errors.New("rate_limit_period: must be positive when rate_limit is set")
	}
	if _, err := p.ClientConfig.TLSConfig(); err != nil {
		return fmt.Errorf("tls: setting up TLS failed: %w", err)
	}
	if p.BucketTag == "" && p.ExcludeBucketTag {
		p.ExcludeBucketTag = false
	}
	return nil
}

// initTokenOptions requires exactly one token source.
func (p *InfluxDB) initTokenOptions() error {
	var set []string
	if !p.Token.Empty() {
		set = append(set, `"token"`)
	}
	if p.TokenFile != "" {
		set = append(set, `"token_file"`)
	}
	if p.TokenEnv != "" {
		set = append(set, `"token_env"`)
	}
	switch len(set) {
	case 0:
		return errors.New(`token: no token configured: set one of "token", "token_file" or "token_env"`)
	case 1:
		return nil
	default:
		return fmt.Errorf("token_file: options %s are exclusive: set only one", strings.Join(set, " and "))
	}
}

// initProbeOptions validates how a new token is probed and how often its
// source is read.
func (p *InfluxDB) initProbeOptions() error {
	switch p.Probe {
	case "":
		p.Probe = ProbeEmptyWrite
	case ProbeEmptyWrite, ProbeNone:
	case ProbePoint:
		if p.ProbeBucket == "" && p.Bucket == "" {
			return errors.New(`probe_bucket: required with probe = "point" when bucket is empty`)
		}
	default:
		return fmt.Errorf("probe: invalid value %q (use %q, %q or %q)", p.Probe, ProbeEmptyWrite, ProbePoint, ProbeNone)
	}
	if p.ProbeTimeout < 0 {
		return errors.New("probe_timeout: must not be negative")
	}
	if p.ProbeTimeout == 0 {
		p.ProbeTimeout = p.Timeout
	}
	if p.TokenDebounce < 0 {
		return errors.New("token_debounce: must not be negative")
	}
	// A negative interval would silently turn the safety-net re-read off.
	if p.TokenRereadInterval < 0 {
		return fmt.Errorf("token_reread_interval: must not be negative, got %s", time.Duration(p.TokenRereadInterval))
	}
	return nil
}

// initIdentity sets client_id and reads the audit chain's key.
func (p *InfluxDB) initIdentity() error {
	if p.ClientID == "" {
		if h, err := os.Hostname(); err == nil {
			p.ClientID = h
		}
	}
	// client_id is a tag of the statistics point and a field of audit
	// records: a control character (a newline) cannot be written as line
	// protocol and emptied every statistics write.
	if i := strings.IndexFunc(p.ClientID, unicode.IsControl); i >= 0 {
		return fmt.Errorf("client_id: must not contain control characters (%q at byte %d)", p.ClientID[i], i)
	}
	if p.AuditKeyFile != "" {
		if p.AuditLog == "" {
			return errors.New("audit_key_file: set without audit_log")
		}
		key, err := rotation.ReadAuditKeyFile(p.AuditKeyFile)
		if err != nil {
			return fmt.Errorf("audit_key_file: %w", err)
		}
		p.auditKey = key
	}
	return nil
}

// checkStrict makes a missing token a start-up error with strict = true.
func (p *InfluxDB) checkStrict() error {
	if !p.Strict {
		return nil
	}
	if p.TokenFile != "" {
		if _, err := rotation.ReadTokenFile(p.TokenFile); err != nil {
			return fmt.Errorf("token_file %q: %w (strict = true)", p.TokenFile, err)
		}
	}
	if p.TokenEnv != "" {
		if _, ok := os.LookupEnv(p.TokenEnv); !ok {
			return fmt.Errorf("token_env: variable %q is not set (strict = true)", p.TokenEnv)
		}
	}
	return nil
}

// LineOptions are the options that change what a line says, for the execd
// binary, which checks and rewrites lines with the same rules.
func (p *InfluxDB) LineOptions() lineproto.Options {
	return lineproto.Options{
		BucketTag:        p.BucketTag,
		ExcludeBucketTag: p.ExcludeBucketTag,
		UintSupport:      p.UintSupport,
		OmitTimestamp:    p.OmitTimestamp,
	}
}

// initAdoption validates the adoption_* options and builds the reporter
// when reports are on: by default with a token that can change (token_file,
// token_env), never with a fixed token unless asked, so that a renamed stock
// configuration writes exactly what the stock plugin writes.
func (p *InfluxDB) initAdoption() error {
	on := !p.fixedToken()
	if p.AdoptionReport != nil {
		on = *p.AdoptionReport
	}
	if !on {
		p.adoption = nil
		return nil
	}
	if p.AdoptionReportInterval < 0 {
		return fmt.Errorf("adoption_report_interval: must be positive, got %s", time.Duration(p.AdoptionReportInterval))
	}
	if p.AdoptionBucket == "" {
		// With neither bucket nor bucket_tag the configuration is as
		// incomplete as the stock sample's, and the metrics fail with the
		// same 404 as the report.
		if p.Bucket == "" && p.BucketTag != "" {
			return errors.New("adoption_bucket: required when bucket is empty (bucket_tag only) and adoption_report is on; " +
				"name the bucket the controller reads, or set adoption_report = false")
		}
		p.AdoptionBucket = p.Bucket
	}
	if p.ClientID == "" {
		return errors.New("client_id: required with adoption_report (the host name could not be read)")
	}
	a, err := rotation.NewAdoptionReporter(rotation.AdoptionConfig{
		Measurement: p.AdoptionMeasurement,
		ClientID:    p.ClientID,
		Interval:    time.Duration(p.AdoptionReportInterval),
		Logger:      newSlogLogger(p.log()),
	})
	if err != nil {
		return fmt.Errorf("adoption_measurement, client_id: %w", err)
	}
	p.adoption = a
	return nil
}

// initProbeBucket picks the bucket a new token is validated against:
// probe_bucket, bucket, or adoption_bucket. With bucket_tag alone there is
// none: a fixed token needs no validation, as in the stock plugin, which
// connects and routes by tag; a token that rotates does.
func (p *InfluxDB) initProbeBucket() error {
	if p.ProbeBucket == "" {
		p.ProbeBucket = cmp.Or(p.Bucket, p.AdoptionBucket)
	}
	if p.ProbeBucket != "" || p.Probe == ProbeNone || p.BucketTag == "" {
		return nil
	}
	if !p.fixedToken() {
		return errors.New(`probe_bucket: required when bucket is empty (bucket_tag only) and the token comes from ` +
			`token_file or token_env, to validate new tokens against; or set probe = "none"`)
	}
	p.Probe = ProbeNone
	return nil
}

// fixedToken reports whether the token is the token option (a value or a
// secret-store reference), which nothing rotates.
func (p *InfluxDB) fixedToken() bool { return p.TokenFile == "" && p.TokenEnv == "" }

// networkOptions parses http_proxy and local_address.
func (p *InfluxDB) networkOptions() (proxy *url.URL, local *net.TCPAddr, err error) {
	if p.HTTPProxy != "" {
		if proxy, err = url.Parse(p.HTTPProxy); err != nil {
			return nil, nil, fmt.Errorf("http_proxy: error parsing %q: %w", rotation.RedactURL(p.HTTPProxy), rotation.URLParseError(err))
		}
	}
	if p.LocalAddr != "" {
		if local, err = resolveLocalAddr(p.LocalAddr); err != nil {
			return nil, nil, fmt.Errorf("local_address: %w", err)
		}
	}
	return proxy, local, nil
}

func resolveLocalAddr(s string) (*net.TCPAddr, error) {
	addr, sPort, err := net.SplitHostPort(s)
	if err != nil {
		if !strings.Contains(err.Error(), "missing port") {
			return nil, fmt.Errorf("invalid local address %q: %w", s, err)
		}
		addr = s
	}
	ip, err := net.ResolveIPAddr("ip", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot resolve local address %q: %w", s, err)
	}
	var port int
	if sPort != "" {
		p, err := strconv.ParseUint(sPort, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("invalid port in %q: %w", s, err)
		}
		port = int(p)
	}
	return &net.TCPAddr{IP: ip.IP, Port: port, Zone: ip.Zone}, nil
}

// productToken is the default User-Agent, "Telegraf/<version> Go/<version>"
// like the stock plugin's.
func productToken() string {
	info, _ := debug.ReadBuildInfo()
	return productTokenOf(info, runtime.Version())
}

// telegrafVersionFlag is the variable whose linker flag (-X) sets the
// version that Telegraf's internal.ProductToken reports.
const telegrafVersionFlag = "github.com/influxdata/telegraf/internal.Version="

// productTokenOf finds Telegraf's version the way it is known to the build:
// in a Telegraf binary, the linker flag that set its version (the stock
// plugin's source of it, in a package only Telegraf may import); in any
// other program, the version of the Telegraf module it requires.
func productTokenOf(info *debug.BuildInfo, goVersion string) string {
	version := "unknown"
	if info != nil {
		for _, dep := range info.Deps {
			if dep.Path == "github.com/influxdata/telegraf" {
				version = strings.TrimPrefix(dep.Version, "v")
			}
		}
		for _, setting := range info.Settings {
			if setting.Key != "-ldflags" {
				continue
			}
			if _, v, ok := strings.Cut(setting.Value, telegrafVersionFlag); ok {
				v, _, _ = strings.Cut(v, " ")
				if v = strings.Trim(v, `"'`); v != "" {
					version = v
				}
			}
		}
	}
	goVersion, _, _ = strings.Cut(strings.TrimPrefix(goVersion, "go"), " ")
	return "Telegraf/" + version + " Go/" + goVersion
}
