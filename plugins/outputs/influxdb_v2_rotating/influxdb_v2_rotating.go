// Package influxdb_v2_rotating is Telegraf's outputs.influxdb_v2 with token
// rotation: the same options with the same names and defaults, plus a
// token_file that is watched, validated before use and swapped between
// flushes without losing a point. The plugin is glue from Telegraf to the
// rotation package and an HTTP writer.
package influxdb_v2_rotating

import (
	"bytes"
	"cmp"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/plugins/common/ratelimiter"
	commontls "github.com/influxdata/telegraf/plugins/common/tls"
	"github.com/influxdata/telegraf/plugins/outputs"
	"github.com/influxdata/telegraf/selfstat"

	"github.com/influxrotate/influxrotate/rotation"
)

//go:embed sample.conf
var sampleConfig string

// The plugin is an Output with Init. It is not a StatefulPlugin: the token
// file is its state, and nothing else needs to survive a restart.
var (
	_ telegraf.Output      = (*InfluxDB)(nil)
	_ telegraf.Initializer = (*InfluxDB)(nil)
)

// Probe modes, the values of the probe option.
const (
	ProbeEmptyWrite = "empty_write"
	ProbePoint      = "point"
	ProbeNone       = "none"
)

// InfluxDB is the plugin. Options up to ConcurrentWrites, TLS and rate
// limits are the stock plugin's, with its names, defaults and meanings.
type InfluxDB struct {
	URLs             []string                  `toml:"urls"`
	LocalAddr        string                    `toml:"local_address"`
	Token            config.Secret             `toml:"token"`
	Organization     string                    `toml:"organization"`
	Bucket           string                    `toml:"bucket"`
	BucketTag        string                    `toml:"bucket_tag"`
	ExcludeBucketTag bool                      `toml:"exclude_bucket_tag"`
	Timeout          config.Duration           `toml:"timeout"`
	HTTPHeaders      map[string]*config.Secret `toml:"http_headers"`
	HTTPProxy        string                    `toml:"http_proxy"`
	UserAgent        string                    `toml:"user_agent"`
	ContentEncoding  string                    `toml:"content_encoding"`
	UintSupport      bool                      `toml:"influx_uint_support"`
	OmitTimestamp    bool                      `toml:"influx_omit_timestamp"`
	PingTimeout      config.Duration           `toml:"ping_timeout"`
	ReadIdleTimeout  config.Duration           `toml:"read_idle_timeout"`
	ConcurrentWrites uint64                    `toml:"concurrent_writes"`
	commontls.ClientConfig
	RateLimitConfig

	// Rotation options.
	TokenFile           string          `toml:"token_file"`
	TokenEnv            string          `toml:"token_env"`
	Probe               string          `toml:"probe"`
	ProbeBucket         string          `toml:"probe_bucket"`
	ProbeTimeout        config.Duration `toml:"probe_timeout"`
	TokenRereadInterval config.Duration `toml:"token_reread_interval"`
	TokenDebounce       config.Duration `toml:"token_debounce"`
	Fallback            bool            `toml:"fallback"`
	AuditLog            string          `toml:"audit_log"`
	AuditKeyFile        string          `toml:"audit_key_file"`
	ClientID            string          `toml:"client_id"`
	Strict              bool            `toml:"strict"`

	// Adoption reports, see rotation.AdoptionReporter. AdoptionReport is
	// nil when not set: on with token_file or token_env, off otherwise.
	AdoptionReport         *bool           `toml:"adoption_report"`
	AdoptionReportInterval config.Duration `toml:"adoption_report_interval"`
	AdoptionMeasurement    string          `toml:"adoption_measurement"`
	AdoptionBucket         string          `toml:"adoption_bucket"`

	Log        telegraf.Logger     `toml:"-"`
	Statistics *selfstat.Collector `toml:"-"`

	// initialized is set by a successful Init, which Connect needs.
	initialized bool
	ser         serializer
	writers     []*httpWriter
	limiter     *ratelimiter.RateLimiter

	source  rotation.Source
	rotator *rotation.Rotator
	audit   *rotation.AuditLog
	// auditKey keys the audit chain (audit_key_file); nil for a plain one.
	auditKey []byte
	stats    *rotation.Stats
	// adoption is nil when adoption reports are off.
	adoption *rotation.AdoptionReporter
	cancel   context.CancelFunc
	ctx      context.Context

	queue         atomic.Int64 // write_queue_depth
	retryAt       atomic.Int64 // Unix ns before which the server asked us not to write
	throttleCount atomic.Int64
	// writeThrottled counts answers asking to back off (429, 502, 503,
	// 504); writeTransportErrors counts requests without an answer.
	writeThrottled       atomic.Int64
	writeTransportErrors atomic.Int64
	// adoptionReports and adoptionReportFailures count adoption reports
	// stored and not stored.
	adoptionReports        atomic.Int64
	adoptionReportFailures atomic.Int64
	selfStats              map[string]selfstat.Stat
	statsMu                sync.Mutex
}

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

// SampleConfig returns the embedded sample.conf.
func (*InfluxDB) SampleConfig() string { return sampleConfig }

// Init sets defaults and validates the options; every error names the
// option at fault. It starts nothing: Connect does.
func (p *InfluxDB) Init() error {
	if p.UserAgent == "" {
		p.UserAgent = productToken() // reads the build info: only when needed
	}
	if len(p.URLs) == 0 {
		p.URLs = []string{"http://localhost:8086"}
	}
	// urls, http_proxy and local_address are checked by Connect, as the
	// stock plugin does, so that `telegraf --test` passes where stock does.
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

	// Exactly one token source.
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
	default:
		return fmt.Errorf("token_file: options %s are exclusive: set only one", strings.Join(set, " and "))
	}

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
	if p.TokenFile != "" && p.Strict {
		if _, err := rotation.ReadTokenFile(p.TokenFile); err != nil {
			return fmt.Errorf("token_file %q: %w (strict = true)", p.TokenFile, err)
		}
	}
	if p.TokenEnv != "" && p.Strict {
		if _, ok := os.LookupEnv(p.TokenEnv); !ok {
			return fmt.Errorf("token_env: variable %q is not set (strict = true)", p.TokenEnv)
		}
	}

	if err := p.initAdoption(); err != nil {
		return err
	}
	if err := p.initProbeBucket(); err != nil {
		return err
	}

	p.ser = serializer{uintSupport: p.UintSupport, omitTimestamp: p.OmitTimestamp}
	if p.ExcludeBucketTag {
		p.ser.excludeTag = p.BucketTag
	}
	p.initialized = true
	return nil
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

// Connect builds one HTTP writer per URL and starts the token source and
// the Rotator. A token file that does not exist yet is not an error (unless
// strict): writes wait for it.
func (p *InfluxDB) Connect() error {
	if !p.initialized {
		return errors.New("influxdb_v2_rotating: Connect called before Init")
	}
	proxy, local, err := p.networkOptions()
	if err != nil {
		return err
	}
	tlsCfg, err := p.ClientConfig.TLSConfig()
	if err != nil {
		return fmt.Errorf("tls: setting up TLS failed: %w", err)
	}
	// The agent may call Connect again after a failed attempt.
	p.writers = p.writers[:0]
	// One Scrubber for the writers, the prober and the Rotator, which
	// registers each token with it before it is used.
	scrub := rotation.NewScrubber()
	for _, u := range p.URLs {
		w, err := newHTTPWriter(writerConfig{
			url:             u,
			org:             p.Organization,
			localAddr:       local,
			proxy:           proxy,
			tls:             tlsCfg,
			timeout:         time.Duration(p.Timeout),
			pingTimeout:     time.Duration(p.PingTimeout),
			readIdleTimeout: time.Duration(p.ReadIdleTimeout),
			gzip:            p.ContentEncoding == "gzip",
			userAgent:       p.UserAgent,
			headers:         p.HTTPHeaders,
			scrub:           scrub,
		})
		if err != nil {
			return err
		}
		p.writers = append(p.writers, w)
	}
	limiter, err := (&ratelimiter.RateLimitConfig{Limit: config.Size(p.Limit), Period: p.Period}).CreateRateLimiter()
	if err != nil {
		return fmt.Errorf("rate_limit: %w", err)
	}
	p.limiter = limiter

	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.stats = new(rotation.Stats)
	logger := newSlogLogger(p.log())

	p.source, err = p.newSource(logger)
	if err != nil {
		p.cancel()
		return err
	}

	var prober rotation.Prober
	if p.Probe != ProbeNone {
		hp, err := p.newProber(p.writers[0], p.probeMode())
		if err != nil {
			p.closeSource()
			p.cancel()
			return fmt.Errorf("probe: %w", err)
		}
		prober = hp
	}

	if p.AuditLog != "" {
		a, err := rotation.OpenAuditLogWith(p.AuditLog, rotation.AuditOptions{Key: p.auditKey})
		if err != nil {
			p.closeSource()
			p.cancel()
			return fmt.Errorf("audit_log %q: %w", p.AuditLog, err)
		}
		if aside := a.Recovered(); aside != "" {
			p.log().Warnf("audit_log %q ended in a torn record (a crash in the middle of an append); its bytes were moved to %q and the recovery recorded",
				p.AuditLog, aside)
		}
		p.audit = a
	}

	r, err := rotation.NewRotator(p.ctx, rotation.Config{
		Source:    p.source,
		Prober:    prober,
		Fallback:  p.Fallback,
		OnPromote: p.closeIdleConnections,
		Logger:    logger,
		Stats:     p.stats,
		Audit:     p.audit,
		ClientID:  p.ClientID,
		// The first token is used whatever a probe says, so it is probed
		// only when strict asks for the verdict at start: otherwise no
		// request precedes the first metric, as in the stock plugin, and
		// the first write (and adoption report) tells.
		TrustFirst: p.fixedToken() || !p.Strict,
		Scrubber:   scrub,
	})
	if err != nil {
		p.closeSource()
		if p.audit != nil {
			_ = p.audit.Close()
		}
		p.cancel()
		return fmt.Errorf("token rotation: %w", err)
	}
	p.rotator = r
	p.registerStats()
	switch c := r.Current(); {
	case c == nil:
		p.log().Warnf("No valid token yet from %s; writes wait for it and metrics stay buffered", p.source.Name())
	case !p.fixedToken() && !p.Strict:
		p.log().Infof("Using %s from %s, not probed at start (strict = true probes it)", c, p.source.Name())
	}
	return nil
}

// fixedToken reports whether the token is the token option (a value or a
// secret-store reference), which nothing rotates.
func (p *InfluxDB) fixedToken() bool { return p.TokenFile == "" && p.TokenEnv == "" }

func (p *InfluxDB) newSource(logger *slog.Logger) (rotation.Source, error) {
	switch {
	case p.TokenFile != "":
		s, err := rotation.NewFileSource(rotation.FileSourceConfig{
			Path:     p.TokenFile,
			Debounce: time.Duration(p.TokenDebounce),
			Reread:   time.Duration(p.TokenRereadInterval),
			Logger:   logger,
			Stats:    p.stats,
		})
		if err != nil {
			return nil, fmt.Errorf("token_file: %w", err)
		}
		return s, nil
	case p.TokenEnv != "":
		s, err := rotation.NewEnvSource(p.TokenEnv)
		if err != nil {
			return nil, fmt.Errorf("token_env: %w", err)
		}
		return s, nil
	default:
		return newSecretSource(&p.Token, time.Duration(p.TokenRereadInterval)), nil
	}
}

// closeIdleConnections makes the next request of every writer open a new
// connection after a promotion, so no keep-alive connection that a proxy
// may have tied to the old token is reused.
func (p *InfluxDB) closeIdleConnections() {
	for _, w := range p.writers {
		w.close()
	}
}

func (p *InfluxDB) closeSource() {
	if p.source != nil {
		_ = p.source.Close()
	}
}

// Close stops the Rotator and the token source, closes the audit log and
// the idle connections, and publishes the final statistics.
func (p *InfluxDB) Close() error {
	var errs []error
	if p.rotator != nil {
		errs = append(errs, p.rotator.Close())
	}
	p.closeSource()
	if p.audit != nil {
		errs = append(errs, p.audit.Close())
	}
	if p.cancel != nil {
		p.cancel()
	}
	for _, w := range p.writers {
		w.close()
	}
	p.updateStats()
	return errors.Join(errs...)
}

func (p *InfluxDB) log() telegraf.Logger {
	if p.Log == nil {
		return discardLogger{}
	}
	return p.Log
}

// errNotConnected is returned by writes before Connect (or after a failed one).
var errNotConnected = &WriteError{Action: rotation.ActionRetry, Message: "influxdb_v2_rotating: not connected"}

// noToken is the error of a flush before any valid token exists.
func (p *InfluxDB) noToken() *WriteError {
	name := "token"
	if p.source != nil {
		name = p.source.Name()
	}
	return &WriteError{
		Action:  rotation.ActionAuth,
		Message: fmt.Sprintf("waiting for %s: no valid token yet; metrics stay buffered", strings.Replace(name, "file ", "token_file ", 1)),
	}
}

// trackFlush counts a flush in write_queue_depth until the returned func
// runs, which also refreshes the internal statistics.
func (p *InfluxDB) trackFlush() (done func()) {
	p.queue.Add(1)
	return func() {
		p.queue.Add(-1)
		p.updateStats()
	}
}

// flushCredential picks the one credential a flush uses, or says why the
// flush cannot be sent now: the server asked to wait, the plugin is not
// connected, or no valid token exists yet. Every such error keeps the batch.
func (p *InfluxDB) flushCredential() (*rotation.Credential, error) {
	if wait := p.retryWait(); wait > 0 {
		return nil, &WriteError{Action: rotation.ActionThrottle, RetryAfter: wait, Message: "retry time has not elapsed"}
	}
	if p.rotator == nil {
		return nil, errNotConnected
	}
	cred := p.rotator.Current()
	if cred == nil {
		return nil, p.noToken()
	}
	return cred, nil
}

// Write sends metrics to one of the configured servers, chosen at random
// per flush; the next one is tried only when no server answered. It uses one
// credential for the whole flush. The error tells the agent which metrics
// were stored, which must be dropped and which to keep.
func (p *InfluxDB) Write(metrics []telegraf.Metric) error {
	defer p.trackFlush()()
	if len(metrics) == 0 {
		return nil
	}
	cred, err := p.flushCredential()
	if err != nil {
		var we *WriteError
		if errors.As(err, &we) && we.Action == rotation.ActionThrottle {
			// Worded as the stock plugin's clients, each of which waits.
			for _, w := range p.writers {
				p.log().Errorf("When writing to [%s]: %v", w, err)
			}
			return &WriteError{Action: rotation.ActionThrottle, RetryAfter: we.RetryAfter, Message: errNoServer}
		}
		return err
	}

	workers := int(max(p.ConcurrentWrites, 1))
	size := (len(metrics) + workers - 1) / workers
	var batches []*batch
	if p.BucketTag == "" {
		batches = createBatches(metrics, p.Bucket, size)
	} else {
		batches = createBatchesFromTag(metrics, p.BucketTag, p.Bucket, size)
	}

	// Serialise within the rate limit. Metrics past the limit are neither
	// accepted nor rejected, so the agent keeps them for the next flush.
	now := time.Now()
	defer p.limiter.Release()
	var rejected []int
	var rejectErrs []error
	chunks := make([]*chunk, 0, len(batches))
	bufs := make([]*[]byte, 0, len(batches))
	var keepBuffers bool
	defer func() {
		if keepBuffers {
			return
		}
		for _, b := range bufs {
			bufPool.Put(b)
		}
	}()
	for _, b := range batches {
		remaining := p.limiter.Remaining(now)
		if remaining <= 0 {
			break
		}
		buf := bufPool.Get().(*[]byte)
		bufs = append(bufs, buf)
		c, rej, rerr, err := p.ser.serialize(*buf, b, remaining)
		*buf = c.body[:0]
		rejected = append(rejected, rej...)
		rejectErrs = append(rejectErrs, rerr...)
		if c.count > 0 {
			p.limiter.Reserve(int64(len(c.body)))
			chunks = append(chunks, c)
		}
		if errors.Is(err, errLimit) {
			break
		}
	}
	if len(rejectErrs) > 0 {
		// The stock plugin says only that serialization failed; which
		// metric and why is what the operator needs to fix it. One line
		// per flush, however many.
		p.log().Errorf("Dropping %d metric(s) that cannot be serialized; the first: %v", len(rejectErrs), rejectErrs[0])
	}

	var results []outcome
	var lastErr error
	var reached *httpWriter
	for _, n := range rand.Perm(len(p.writers)) {
		w := p.writers[n]
		f := &flush{rotator: p.rotator, cred: cred}
		results = p.sendAll(f, w, chunks, now)
		keepBuffers = keepBuffers || f.keepBuffers.Load()
		if reachedAny(results) || len(chunks) == 0 {
			p.reportAdoption(p.ctx, f, w, results)
			reached = w
			break
		}
		// No answer from this server: say so as the stock plugin does, and
		// try the next one.
		for _, r := range results {
			if r.err != nil {
				p.log().Error(r.err)
			}
		}
		lastErr = firstErr(results)
		p.log().Errorf("When writing to [%s]: %v", w, lastErr)
		results = nil
	}
	err = p.settle(len(metrics), results, rejected, rejectErrs, lastErr)
	if err != nil && reached != nil {
		// The stock plugin's summary line of a flush that failed in part.
		p.log().Errorf("When writing to [%s]: %v", reached, err)
	}
	return err
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// sendAll sends the chunks with up to concurrent_writes requests at once.
func (p *InfluxDB) sendAll(f *flush, w *httpWriter, chunks []*chunk, now time.Time) []outcome {
	if len(chunks) == 1 {
		p.limiter.Accept(now, int64(len(chunks[0].body)))
		return p.send(p.ctx, f, w, chunks[0], nil)
	}
	per := make([][]outcome, len(chunks))
	sem := make(chan struct{}, max(p.ConcurrentWrites, 1))
	var wg sync.WaitGroup
	for i, c := range chunks {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			p.limiter.Accept(now, int64(len(c.body)))
			per[i] = p.send(p.ctx, f, w, c, nil)
		}()
	}
	wg.Wait()
	var all []outcome
	for _, o := range per {
		all = append(all, o...)
	}
	return all
}

func reachedAny(results []outcome) bool {
	for _, r := range results {
		if r.reached {
			return true
		}
	}
	return false
}

func firstErr(results []outcome) error {
	for _, r := range results {
		if r.err != nil {
			return r.err
		}
	}
	return nil
}

// settle turns the outcomes of a flush into what the agent understands:
// nil when everything was stored, a plain error to keep the whole batch,
// or a batchError listing stored and dropped metrics (the rest is kept).
func (p *InfluxDB) settle(total int, results []outcome, rejected []int, rejectErrs []error, lastErr error) error {
	var accepted []int
	var keepErr, dropErr error
	for _, r := range results {
		switch {
		case r.err == nil:
			accepted = append(accepted, r.chunk.indices...)
		case r.err.Retryable():
			if keepErr == nil {
				keepErr = r.err
			}
			p.log().Error(r.err)
		default:
			if dropErr == nil {
				dropErr = r.err
			}
			p.log().Error(r.err)
			rejected = append(rejected, r.chunk.indices...)
			for range r.chunk.indices {
				rejectErrs = append(rejectErrs, r.err)
			}
		}
	}
	if len(accepted) == total {
		return nil
	}
	err := cmpOr(keepErr, dropErr, lastErr)
	switch {
	case err != nil:
	case len(accepted)+len(rejected) < total:
		// Only the rate limit held metrics back.
		err = errSizeLimitReached
	default:
		// Everything was sent except metrics that cannot be serialised.
		err = errSerialization
	}
	// Always a partial write, as the stock plugin's, even when nothing
	// was sent: the agent keeps what is neither accepted nor rejected.
	return &batchError{err: err, accept: accepted, reject: rejected, rejectErrs: rejectErrs}
}

func cmpOr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// WriteRaw posts already-serialised line protocol (newline-terminated lines,
// count of them; count <= 0 counts the newlines) to bucket ("" means the
// bucket option) with the same rotation, retry and split rules as Write.
// It returns nil when every line was stored, otherwise a *WriteError whose
// Retryable (or IsRetryable) says whether the caller must keep the batch
// (true) or drop it (false). When part of a split batch was stored and
// another part must be kept, the error is retryable and re-sending the
// whole batch is safe: InfluxDB stores a point with the same series and
// timestamp once. It is safe for concurrent use once Connect has returned.
func (p *InfluxDB) WriteRaw(ctx context.Context, bucket string, lines []byte, count int) error {
	defer p.trackFlush()()
	if len(lines) == 0 {
		return nil
	}
	cred, err := p.flushCredential()
	if err != nil {
		return err
	}
	bucket = cmp.Or(bucket, p.Bucket)
	if count <= 0 {
		count = bytes.Count(lines, newline)
		if lines[len(lines)-1] != '\n' {
			count++
		}
	}
	c := &chunk{bucket: bucket, body: lines, count: count}
	var lastErr error
	for _, n := range rand.Perm(len(p.writers)) {
		w := p.writers[n]
		f := &flush{rotator: p.rotator, cred: cred}
		results := p.send(ctx, f, w, c, nil)
		if !reachedAny(results) {
			lastErr = firstErr(results)
			p.log().Errorf("When writing to [%s]: %v", w, lastErr)
			continue
		}
		p.reportAdoption(ctx, f, w, results)
		var keep, drop *WriteError
		for _, r := range results {
			switch {
			case r.err == nil:
			case r.err.Retryable():
				if keep == nil {
					keep = r.err
				}
			default:
				if drop == nil {
					drop = r.err
				}
			}
		}
		if keep != nil {
			return keep
		}
		if drop != nil {
			return drop
		}
		return nil
	}
	var we *WriteError
	if errors.As(lastErr, &we) {
		return we
	}
	return &WriteError{Action: rotation.ActionRetry, Message: fmt.Sprintf("%v: %v", errNoAnswer, lastErr), Err: lastErr}
}

var newline = []byte{'\n'}

// reportAdoption writes the adoption report when one is due, after a flush
// that stored metrics on w, with the credential that stored them. It is
// posted on its own so that it can neither hold back nor fail the metrics,
// and without the refusal handling of send: a report the server refuses
// (no write permission on adoption_bucket) says nothing about the token's
// right to write metrics and must not make the Rotator fall back. A report
// that fails stays due and goes out after the next flush.
func (p *InfluxDB) reportAdoption(ctx context.Context, f *flush, w *httpWriter, results []outcome) {
	if p.adoption == nil || f.throttled.Load() || !storedAny(results) {
		return
	}
	cred := f.current()
	rep, line, ok := p.adoption.Due(cred, p.stats.Rotations.Load())
	if !ok {
		return
	}
	d, _, err := w.post(ctx, p.AdoptionBucket, line, cred)
	switch {
	case err != nil:
		if te := (*transportError)(nil); errors.As(err, &te) {
			p.writeTransportErrors.Add(1)
		}
	case d.Action == rotation.ActionAccept:
	case d.Action == rotation.ActionThrottle:
		p.writeThrottled.Add(1)
		p.throttle(d.RetryAfter)
		err = newDecisionError(p.AdoptionBucket, d, cred)
	default:
		err = newDecisionError(p.AdoptionBucket, d, cred)
	}
	if err != nil {
		p.adoptionReportFailures.Add(1)
	} else {
		p.adoptionReports.Add(1)
	}
	p.adoption.Done(rep, err)
}

func storedAny(results []outcome) bool {
	for _, r := range results {
		if r.err == nil {
			return true
		}
	}
	return false
}

// Rotator returns the plugin's Rotator (nil before Connect), for a SIGHUP
// Reload and for statistics.
func (p *InfluxDB) Rotator() *rotation.Rotator { return p.rotator }

func init() {
	outputs.Add("influxdb_v2_rotating", func() telegraf.Output { return New() })
}

// New returns the plugin with the defaults the registry uses.
func New() *InfluxDB {
	return &InfluxDB{
		Timeout:             config.Duration(5 * time.Second),
		TokenRereadInterval: config.Duration(time.Minute),
		TokenDebounce:       config.Duration(100 * time.Millisecond),
		Fallback:            true,
	}
}
