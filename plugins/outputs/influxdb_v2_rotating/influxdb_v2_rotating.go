// Package influxdb_v2_rotating is Telegraf's outputs.influxdb_v2 with token
// rotation: the same options with the same names and defaults, plus a
// token_file that is watched, validated before use and swapped between
// flushes without losing a point. The plugin is glue from Telegraf to the
// rotation package and an HTTP writer.
package influxdb_v2_rotating

import (
	"context"
	_ "embed"
	"sync"
	"sync/atomic"
	"time"

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

// SampleConfig returns the embedded sample.conf.
func (*InfluxDB) SampleConfig() string { return sampleConfig }
func (p *InfluxDB) log() telegraf.Logger {
	if p.Log == nil {
		return discardLogger{}
	}
	return p.Log
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
