// Package config reads and validates the influxrotate controller's TOML
// configuration. Unknown keys are refused so that a misspelt option (a
// "grace" that silently falls back to its default) never reaches production.
package config

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Backend names.
const (
	BackendInfluxDB2 = "influxdb2"
	BackendInfluxDB1 = "influxdb1"
)

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
	DefaultGrace        = 90 * time.Second
	DefaultObserve      = 10 * time.Minute
	DefaultMaxAge       = 30 * 24 * time.Hour
	DefaultTimeout      = 10 * time.Second
	DefaultRetries      = 6
	DefaultRetryInitial = 200 * time.Millisecond
	DefaultRetryMax     = 10 * time.Second
	DefaultFileMode     = FileMode(0o600)
)

// Config is the whole configuration file.
type Config struct {
	URL               string        `toml:"url"`
	Backend           string        `toml:"backend"`
	OperatorTokenFile string        `toml:"operator_token_file"`
	StateDir          string        `toml:"state_dir"`
	AuditLog          string        `toml:"audit_log"`
	ClientID          string        `toml:"client_id"`
	AllowInsecureHTTP bool          `toml:"allow_insecure_http"`
	Timeout           time.Duration `toml:"timeout"`
	Retry             Retry         `toml:"retry"`
	Metrics           *Metrics      `toml:"metrics"`
	Credentials       []Credential  `toml:"credential"`

	// Path is the file the configuration was read from.
	Path string `toml:"-"`
}

// Retry bounds the retries of every API call.
type Retry struct {
	Attempts int           `toml:"attempts"`
	Initial  time.Duration `toml:"initial"`
	Max      time.Duration `toml:"max"`
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
	Buckets []string      `toml:"buckets"`
	MaxAge  time.Duration `toml:"max_age"`
	Jitter  time.Duration `toml:"jitter"`
	Grace   time.Duration `toml:"grace"`
	Observe time.Duration `toml:"observe"`
	Targets []Target      `toml:"target"`
}

// Target is one place the token is published to.
type Target struct {
	Type string `toml:"type"`
	// file
	Path string   `toml:"path"`
	Mode FileMode `toml:"mode"`
	// secret-dir
	Dir string `toml:"dir"`
	Key string `toml:"key"` // also kubernetes
	// kubernetes
	Namespace  string `toml:"namespace"`
	Secret     string `toml:"secret"`
	Kubeconfig string `toml:"kubeconfig"`
	Context    string `toml:"context"`
	// exec
	Command     []string      `toml:"command"`
	ReadCommand []string      `toml:"read_command"`
	ExecTimeout time.Duration `toml:"timeout"`
}

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

func (c *Config) validate() error {
	if c.URL == "" {
		return errors.New("url is required")
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("url %q must be http(s)://host[:port]", c.URL)
	}
	if u.Scheme == "http" && !c.AllowInsecureHTTP && !IsLoopback(u.Hostname()) {
		return fmt.Errorf("url %q: refusing to send the operator token over plain http to a non-loopback host; use https or set allow_insecure_http = true", c.URL)
	}
	switch c.Backend {
	case "":
		c.Backend = BackendInfluxDB2
	case BackendInfluxDB2, BackendInfluxDB1:
	default:
		return fmt.Errorf("backend %q: must be %q or %q", c.Backend, BackendInfluxDB2, BackendInfluxDB1)
	}
	if c.OperatorTokenFile == "" {
		return errors.New("operator_token_file is required")
	}
	if c.StateDir == "" {
		return errors.New("state_dir is required")
	}
	if c.AuditLog == "" {
		return errors.New("audit_log is required")
	}
	if c.ClientID == "" {
		host, _ := os.Hostname()
		c.ClientID = "influxrotate@" + host
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Timeout < 0 {
		return errors.New("timeout must be positive")
	}
	if c.Retry.Attempts == 0 {
		c.Retry.Attempts = DefaultRetries
	}
	if c.Retry.Initial == 0 {
		c.Retry.Initial = DefaultRetryInitial
	}
	if c.Retry.Max == 0 {
		c.Retry.Max = DefaultRetryMax
	}
	if c.Retry.Attempts < 1 || c.Retry.Initial < 0 || c.Retry.Max < c.Retry.Initial {
		return errors.New("retry: attempts must be >= 1 and 0 <= initial <= max")
	}
	if m := c.Metrics; m != nil {
		if m.Bucket == "" {
			return errors.New("metrics.bucket is required when [metrics] is present")
		}
		if m.Org == "" && c.Backend == BackendInfluxDB2 {
			return errors.New("metrics.org is required with backend influxdb2")
		}
	}
	if len(c.Credentials) == 0 {
		return errors.New("at least one [[credential]] is required")
	}
	seen := map[string]bool{}
	for i := range c.Credentials {
		cr := &c.Credentials[i]
		if err := cr.validate(c.Backend); err != nil {
			return fmt.Errorf("credential %d (%q): %w", i+1, cr.Name, err)
		}
		if seen[cr.Name] {
			return fmt.Errorf("credential %q is defined twice", cr.Name)
		}
		seen[cr.Name] = true
	}
	return nil
}

func (cr *Credential) validate(backend string) error {
	if !namePattern.MatchString(cr.Name) {
		return errors.New("name is required: letters, digits, '_', '.', '-'")
	}
	if backend == BackendInfluxDB2 && cr.Org == "" {
		return errors.New("org is required with backend influxdb2")
	}
	if cr.AuthorizationID == "" && cr.Description == "" && len(cr.Buckets) == 0 {
		return errors.New("authorization_id, description or buckets is required to find or create the authorization")
	}
	cr.Description = cmp.Or(cr.Description, cr.Name)
	if backend == BackendInfluxDB1 && !namePattern.MatchString(cr.Description) {
		return fmt.Errorf("description %q is the user name prefix with backend influxdb1: letters, digits, '_', '.', '-'", cr.Description)
	}
	for _, b := range cr.Buckets {
		if b == "" {
			return errors.New("buckets: empty bucket name")
		}
	}
	if cr.MaxAge == 0 {
		cr.MaxAge = DefaultMaxAge
	}
	if cr.Grace == 0 {
		cr.Grace = DefaultGrace
	}
	if cr.Observe == 0 {
		cr.Observe = DefaultObserve
	}
	if cr.MaxAge < 0 || cr.Grace < 0 || cr.Observe < 0 || cr.Jitter < 0 {
		return errors.New("max_age, jitter, grace and observe must be positive")
	}
	if cr.Jitter >= cr.MaxAge {
		return errors.New("jitter must be less than max_age")
	}
	if len(cr.Targets) == 0 {
		return errors.New("at least one [[credential.target]] is required")
	}
	for i := range cr.Targets {
		if err := cr.Targets[i].validate(); err != nil {
			return fmt.Errorf("target %d (%s): %w", i+1, cr.Targets[i].Type, err)
		}
	}
	return nil
}

func (t *Target) validate() error {
	allowed := map[string][]string{
		TargetFile:       {"path", "mode"},
		TargetSecretDir:  {"dir", "key", "mode"},
		TargetKubernetes: {"namespace", "secret", "key", "kubeconfig", "context"},
		TargetExec:       {"command", "read_command", "timeout"},
	}
	keys, ok := allowed[t.Type]
	if !ok {
		return fmt.Errorf("type %q: must be file, secret-dir, kubernetes or exec", t.Type)
	}
	set := map[string]bool{
		"path": t.Path != "", "mode": t.Mode != 0, "dir": t.Dir != "", "key": t.Key != "",
		"namespace": t.Namespace != "", "secret": t.Secret != "", "kubeconfig": t.Kubeconfig != "",
		"context": t.Context != "", "command": len(t.Command) > 0, "read_command": len(t.ReadCommand) > 0,
		"timeout": t.ExecTimeout != 0,
	}
	for k, v := range set {
		if v && !slices.Contains(keys, k) {
			return fmt.Errorf("option %q does not apply to a %s target", k, t.Type)
		}
	}
	switch t.Type {
	case TargetFile:
		if t.Path == "" {
			return errors.New("path is required")
		}
	case TargetSecretDir:
		if t.Dir == "" {
			return errors.New("dir is required")
		}
		t.Key = cmp.Or(t.Key, "token")
	case TargetKubernetes:
		if t.Secret == "" || t.Key == "" {
			return errors.New("secret and key are required")
		}
		t.Namespace = cmp.Or(t.Namespace, "default")
	case TargetExec:
		if len(t.Command) == 0 {
			return errors.New("command is required (an argv list; the token arrives on stdin)")
		}
		if t.ExecTimeout == 0 {
			t.ExecTimeout = 30 * time.Second
		}
	}
	if t.Mode == 0 && (t.Type == TargetFile || t.Type == TargetSecretDir) {
		t.Mode = DefaultFileMode
	}
	return nil
}

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
