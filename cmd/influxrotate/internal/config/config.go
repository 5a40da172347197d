// Package config reads and validates the influxrotate controller's TOML
// configuration. Unknown keys are refused so that a misspelt option (a
// "grace" that silently falls back to its default) never reaches production.
package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Backend names.
const (
	BackendInfluxDB2 = "influxdb2"
	BackendInfluxDB1 = "influxdb1"
	BackendInfluxDB3 = "influxdb3"
)

// InfluxDB 3 editions (option edition).
const (
	EditionCore       = "core"
	EditionEnterprise = "enterprise"
)

// V3OperatorToken is the name of InfluxDB 3's operator token, never rotated.
const V3OperatorToken = "_admin"

// Target types.
const (
	TargetFile       = "file"
	TargetSecretDir  = "secret-dir"
	TargetKubernetes = "kubernetes"
	TargetExec       = "exec"
)

// Defaults. DefaultGrace is above the kubelet's propagation time for a Secret
// volume (sync period of 1 minute plus its cache delay), so that every pod
// has seen the new token before the old one is deactivated.
const (
	DefaultGrace        = Duration(90 * time.Second)
	DefaultObserve      = Duration(10 * time.Minute)
	DefaultMaxAge       = Duration(30 * 24 * time.Hour)
	DefaultTimeout      = Duration(10 * time.Second)
	DefaultRetries      = 6
	DefaultRetryInitial = Duration(200 * time.Millisecond)
	DefaultRetryMax     = Duration(10 * time.Second)
	DefaultFileMode     = FileMode(0o600)
	// DefaultExpiryMargin is how long an InfluxDB 3 token outlives its planned
	// end (max_age + grace): a week for the controller to be down or failing
	// before the writers' token dies by itself.
	DefaultExpiryMargin = Duration(7 * 24 * time.Hour)
)

// Config is the whole configuration file.
type Config struct {
	URL     string `toml:"url"`
	Backend string `toml:"backend"`
	// Edition is "core" or "enterprise", with backend influxdb3 only.
	Edition           string `toml:"edition"`
	OperatorTokenFile string `toml:"operator_token_file"`
	StateDir          string `toml:"state_dir"`
	AuditLog          string `toml:"audit_log"`
	// AuditStdout writes every audit record to stdout as well, as one JSON
	// line, for a log collector (a pod's disk does not outlive it).
	AuditStdout bool `toml:"audit_stdout"`
	// AuditKeyFile, when set, holds the key of an HMAC-SHA256 keyed audit
	// chain, which cannot be rebuilt by someone without the key.
	AuditKeyFile      string       `toml:"audit_key_file"`
	ClientID          string       `toml:"client_id"`
	AllowInsecureHTTP bool         `toml:"allow_insecure_http"`
	Timeout           Duration     `toml:"timeout"`
	Retry             Retry        `toml:"retry"`
	Metrics           *Metrics     `toml:"metrics"`
	State             StateStore   `toml:"state"`
	Run               Run          `toml:"run"`
	Credentials       []Credential `toml:"credential"`

	// Path is the file the configuration was read from.
	Path string `toml:"-"`
}

// State store types ([state] type).
const (
	StateDirectory  = "directory"
	StateKubernetes = "kubernetes"
)

// Defaults of the kubernetes state store and of `influxrotate run`.
const (
	DefaultStateConfigMap = "influxrotate-state"
	DefaultLeasePrefix    = "influxrotate-"
	DefaultLeaseDuration  = 30 * time.Second
	DefaultLeaderLease    = "influxrotate-leader"
	DefaultRunWorkers     = 4
)

// StateStore is where the journal and the per-credential lock live: files
// in state_dir under flock ("directory"), or one ConfigMap and one Lease per
// credential in the Kubernetes API ("kubernetes").
type StateStore struct {
	Type      string `toml:"type"`
	Namespace string `toml:"namespace"`
	// ConfigMap holds one key per credential, <credential>.json.
	ConfigMap string `toml:"configmap"`
	// LeasePrefix + the credential name is the credential's Lease.
	LeasePrefix string `toml:"lease_prefix"`
	// LeaseDuration is how long a Lease outlives its holder's last renewal
	// (whole seconds, at least 1s): how long a crashed controller keeps the
	// next one out.
	LeaseDuration Duration `toml:"lease_duration"`
	Kubeconfig    string   `toml:"kubeconfig"`
	Context       string   `toml:"context"`
}

// LeaseName is the name of a credential's Lease.
func (s *StateStore) LeaseName(credential string) string { return s.LeasePrefix + credential }

// Run configures `influxrotate run`.
type Run struct {
	// Listen is the address of /healthz, /readyz and /metrics; empty: none.
	Listen string `toml:"listen"`
	// LeaderLease is the Lease of the leader election, with the kubernetes
	// state store: only its holder rotates.
	LeaderLease string `toml:"leader_lease"`
	// Workers bounds the credentials rotated at once.
	Workers int `toml:"workers"`
}

// Retry bounds the retries of every API call.
type Retry struct {
	Attempts int      `toml:"attempts"`
	Initial  Duration `toml:"initial"`
	Max      Duration `toml:"max"`
}

// Metrics selects the optional monitoring bucket for token_rotation points.
type Metrics struct {
	Org       string `toml:"org"`
	Bucket    string `toml:"bucket"`
	TokenFile string `toml:"token_file"`
}

// Credential is one managed token.
type Credential struct {
	Name string `toml:"name"`
	Org  string `toml:"org"`
	// AuthorizationID is the authorization (InfluxDB 1.x: the user) in use
	// before the first rotation. Later rotations follow the state file.
	AuthorizationID string `toml:"authorization_id"`
	// Description finds the current authorization when AuthorizationID is
	// empty and prefixes the description of new ones (1.x: the user name prefix).
	Description string `toml:"description"`
	// Buckets, when set, are the buckets the token may write, instead of
	// the permissions cloned from the current authorization.
	Buckets []string `toml:"buckets"`
	MaxAge  Duration `toml:"max_age"`
	Jitter  Duration `toml:"jitter"`
	Grace   Duration `toml:"grace"`
	Observe Duration `toml:"observe"`
	// ExpiryMargin (influxdb3 only) is added to max_age + grace to make the
	// expiry every new token gets (TokenExpiry).
	ExpiryMargin Duration `toml:"expiry_margin"`
	// ActivationTimeout is how long verify keeps probing a new token the
	// server refuses with 401 before it declares it refused: InfluxDB Cloud
	// Dedicated and Clustered warn that a new token may take seconds to
	// minutes to become valid. 0 (the default, right for OSS servers, where
	// a token is valid once created) declares it refused at the first 401.
	ActivationTimeout Duration `toml:"activation_timeout"`
	// Adoption, when set, replaces the fixed grace: the old token is
	// deactivated once the writers report that they write with the new one.
	Adoption *Adoption `toml:"adoption"`
	Targets  []Target  `toml:"target"`
}

// Adoption gate defaults.
const (
	DefaultAdoptionTimeout = 30 * time.Minute
	DefaultAdoptionPoll    = 10 * time.Second
	OnTimeoutAbort         = "abort"
	OnTimeoutProceed       = "proceed"
)

// Adoption configures the adopt phase: where the writers' adoption reports
// are (the plugin's adoption_bucket and adoption_measurement) and how long
// to wait for them.
type Adoption struct {
	// Bucket holds the reports (1.x: "db" or "db/rp"). Default: the
	// credential's first bucket, else the first bucket the token may write.
	Bucket      string `toml:"bucket"`
	Measurement string `toml:"measurement"`
	// Lookback: a writer whose latest report is older has left the fleet.
	Lookback Duration `toml:"lookback"`
	// Clients must adopt, whether or not they reported within lookback.
	Clients []string `toml:"clients"`
	// MinClients is how many writers must have adopted: an empty fleet is
	// never "all adopted".
	MinClients int `toml:"min_clients"`
	// Timeout bounds one run's wait; OnTimeout says what happens then.
	Timeout   Duration `toml:"timeout"`
	OnTimeout string   `toml:"on_timeout"`
	// PollInterval is the time between two reads of the reports.
	PollInterval Duration `toml:"poll_interval"`
}

// TokenExpiry is the lifetime an InfluxDB 3 token of this credential gets:
// max_age + grace + expiry_margin, so a token the controller failed to
// delete still stops working on its own.
func (cr *Credential) TokenExpiry() time.Duration {
	return time.Duration(cr.MaxAge + cr.Grace + cr.ExpiryMargin)
}

// TokenExpiries is TokenExpiry of each credential by name, for backend influxdb3.
func (c *Config) TokenExpiries() map[string]time.Duration {
	out := make(map[string]time.Duration, len(c.Credentials))
	for i := range c.Credentials {
		out[c.Credentials[i].Name] = c.Credentials[i].TokenExpiry()
	}
	return out
}

// Target is one place the token is published to.
type Target struct {
	Type string `toml:"type"`
	// file
	Path string `toml:"path"`
	// Mode is the file's permission bits (also secret-dir). For a file
	// target, 0 keeps the mode of the file it replaces (DefaultFileMode
	// for a new one).
	Mode FileMode `toml:"mode"`
	// Owner and Group (a name or a numeric id) own the token file; unset,
	// the file keeps the owner and group of the one it replaces.
	Owner string `toml:"owner"`
	Group string `toml:"group"`
	// secret-dir
	Dir string `toml:"dir"`
	Key string `toml:"key"` // also kubernetes
	// kubernetes
	Namespace  string `toml:"namespace"`
	Secret     string `toml:"secret"`
	Kubeconfig string `toml:"kubeconfig"`
	Context    string `toml:"context"`
	// exec
	Command     []string `toml:"command"`
	ReadCommand []string `toml:"read_command"`
	ExecTimeout Duration `toml:"timeout"`
}

// Duration is a time.Duration read as Telegraf's config.Duration reads one,
// so that the controller, the plugin and the execd binary agree: a string
// such as "90s" or "1h30m", or a number of seconds (grace = 90 is 90
// seconds; BurntSushi/toml alone would read it as 90 nanoseconds, and
// max_age = 720 would rotate on every run).
type Duration time.Duration

// UnmarshalTOML implements toml.Unmarshaler.
func (d *Duration) UnmarshalTOML(v any) error {
	if s, ok := v.(string); ok {
		// Telegraf reads a quoted number as seconds too.
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			v = f
		}
	}
	switch x := v.(type) {
	case string:
		dur, err := time.ParseDuration(x)
		if err != nil {
			return fmt.Errorf("duration %q: use a number of seconds or a string such as \"90s\" or \"1h30m\"", x)
		}
		*d = Duration(dur)
	case int64:
		if x > math.MaxInt64/int64(time.Second) || x < math.MinInt64/int64(time.Second) {
			return fmt.Errorf("duration of %d seconds is out of range", x)
		}
		*d = Duration(time.Duration(x) * time.Second)
	case float64:
		if math.IsNaN(x) || math.Abs(x) > float64(math.MaxInt64/int64(time.Second)) {
			return fmt.Errorf("duration of %v seconds is out of range", x)
		}
		*d = Duration(x * float64(time.Second))
	default:
		return fmt.Errorf("duration must be a number of seconds or a string such as \"90s\", not %T", v)
	}
	return nil
}

// String formats the duration as time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// FileMode accepts 0o600 (a TOML integer) or "0600" (a string).
type FileMode os.FileMode

// UnmarshalTOML implements toml.Unmarshaler.
func (m *FileMode) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case int64:
		if x < 0 || x > 0o777 {
			return fmt.Errorf("mode %o is not a permission mode", x)
		}
		*m = FileMode(x)
	case string:
		n, err := strconv.ParseUint(strings.TrimPrefix(x, "0o"), 8, 32)
		if err != nil || n > 0o777 {
			return fmt.Errorf("mode %q is not an octal permission mode such as \"0600\"", x)
		}
		*m = FileMode(n)
	default:
		return fmt.Errorf("mode must be an octal string such as \"0600\", not %T", v)
	}
	return nil
}

// Error is a configuration error: the command exits with code 2.
type Error struct{ Err error }

func (e *Error) Error() string { return "configuration: " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Load reads, expands and validates the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{err}
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, &Error{fmt.Errorf("%s: %w", path, unwrapConfig(err))}
	}
	cfg.Path = path
	cfg.resolvePaths(filepath.Dir(path))
	return cfg, nil
}

func unwrapConfig(err error) error {
	var ce *Error
	if errors.As(err, &ce) {
		return ce.Err
	}
	return err
}

// Parse decodes and validates a configuration.
func Parse(data []byte) (*Config, error) {
	expanded, err := ExpandEnv(string(data))
	if err != nil {
		return nil, &Error{err}
	}
	var cfg Config
	md, err := toml.Decode(expanded, &cfg)
	if err != nil {
		return nil, &Error{err}
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return nil, &Error{fmt.Errorf("unknown option(s): %s", strings.Join(keys, ", "))}
	}
	if err := cfg.validate(); err != nil {
		return nil, &Error{err}
	}
	return &cfg, nil
}

// envRef matches ${NAME} and ${NAME:-default}, as Telegraf does. A bare
// $NAME is left alone: passwords and regular expressions contain dollars.
var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// ExpandEnv replaces ${NAME} and ${NAME:-default} outside comment lines. An
// unset variable without a default is an error naming it.
func ExpandEnv(s string) (string, error) {
	lines := strings.Split(s, "\n")
	var missing []string
	for i, line := range lines {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		lines[i] = envRef.ReplaceAllStringFunc(line, func(ref string) string {
			m := envRef.FindStringSubmatch(ref)
			if v, ok := os.LookupEnv(m[1]); ok && (v != "" || m[2] == "") {
				return v
			}
			if m[2] != "" {
				return m[3]
			}
			missing = append(missing, m[1])
			return ref
		})
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("environment variable(s) not set: %s", strings.Join(missing, ", "))
	}
	return strings.Join(lines, "\n"), nil
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// resolvePaths makes relative paths relative to the configuration file.
func (c *Config) resolvePaths(base string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	abs(&c.OperatorTokenFile)
	abs(&c.StateDir)
	abs(&c.AuditLog)
	abs(&c.State.Kubeconfig)
	abs(&c.AuditKeyFile)
	if c.Metrics != nil {
		abs(&c.Metrics.TokenFile)
	}
	for i := range c.Credentials {
		for j := range c.Credentials[i].Targets {
			t := &c.Credentials[i].Targets[j]
			abs(&t.Path)
			abs(&t.Dir)
			abs(&t.Kubeconfig)
		}
	}
}

// Credential returns the named credential.
func (c *Config) Credential(name string) (*Credential, error) {
	for i := range c.Credentials {
		if c.Credentials[i].Name == name {
			return &c.Credentials[i], nil
		}
	}
	return nil, &Error{fmt.Errorf("no [[credential]] named %q in %s", name, c.Path)}
}

// IsLoopback reports whether host is localhost or a loopback address.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
