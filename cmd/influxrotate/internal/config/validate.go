package config

import (
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"time"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/backend"
	"github.com/influxrotate/influxrotate/rotation"
)

// validate refuses a configuration that cannot work, with an error naming
// the option at fault, and fills in the defaults of what is left out.
func (c *Config) validate() error {
	if c.URL == "" {
		return errors.New("url is required")
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("url %q must be http(s)://host[:port]", rotation.RedactURL(c.URL))
	}
	if u.Scheme == "http" && !c.AllowInsecureHTTP && !IsLoopback(u.Hostname()) {
		return fmt.Errorf("url %q: refusing to send the operator token over plain http to a non-loopback host; use https or set allow_insecure_http = true", rotation.RedactURL(c.URL))
	}
	switch c.Backend {
	case "":
		c.Backend = BackendInfluxDB2
	case BackendInfluxDB2, BackendInfluxDB1, BackendInfluxDB3:
	default:
		return fmt.Errorf("backend %q: must be %q, %q or %q", c.Backend, BackendInfluxDB2, BackendInfluxDB1, BackendInfluxDB3)
	}
	switch {
	case c.Backend != BackendInfluxDB3 && c.Edition != "":
		return fmt.Errorf("edition applies to backend %q only", BackendInfluxDB3)
	case c.Backend == BackendInfluxDB3 && c.Edition != EditionCore && c.Edition != EditionEnterprise:
		return fmt.Errorf("edition %q: backend influxdb3 needs edition = %q or %q (Core has admin tokens only)",
			c.Edition, EditionCore, EditionEnterprise)
	}
	if c.OperatorTokenFile == "" {
		return errors.New("operator_token_file is required")
	}
	if c.AuditLog == "" && !c.AuditStdout {
		return errors.New("audit_log or audit_stdout = true is required")
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
	switch {
	case c.Retry.Attempts < 1:
		return fmt.Errorf("retry.attempts must be at least 1, not %d", c.Retry.Attempts)
	case c.Retry.Initial < 0:
		return fmt.Errorf("retry.initial must be positive, not %s", time.Duration(c.Retry.Initial))
	case c.Retry.Max < c.Retry.Initial:
		return fmt.Errorf("retry.max %s must not be less than retry.initial %s", time.Duration(c.Retry.Max), time.Duration(c.Retry.Initial))
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
		if err := cr.validate(c.Backend, c.Edition); err != nil {
			return fmt.Errorf("credential %d (%q): %w", i+1, cr.Name, err)
		}
		if seen[cr.Name] {
			return fmt.Errorf("credential %q is defined twice", cr.Name)
		}
		seen[cr.Name] = true
	}
	// After the credentials: their names make the Lease names.
	if err := c.validateState(); err != nil {
		return err
	}
	return c.validateRun()
}

func (cr *Credential) validate(backend, edition string) error {
	if !namePattern.MatchString(cr.Name) {
		return errors.New("name is required: letters, digits, '_', '.', '-'")
	}
	if err := cr.validateV3(backend, edition); err != nil {
		return err
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
	if cr.Observe == 0 && backend != BackendInfluxDB3 {
		cr.Observe = DefaultObserve
	}
	if err := notNegative(named{"max_age", cr.MaxAge}, named{"jitter", cr.Jitter}, named{"grace", cr.Grace},
		named{"observe", cr.Observe}, named{"activation_timeout", cr.ActivationTimeout}); err != nil {
		return err
	}
	if cr.Jitter >= cr.MaxAge {
		return errors.New("jitter must be less than max_age")
	}
	if backend == BackendInfluxDB3 && cr.ExpiryMargin == 0 {
		cr.ExpiryMargin = DefaultExpiryMargin
	}
	if a := cr.Adoption; a != nil {
		if err := a.validate(cr.Buckets); err != nil {
			return fmt.Errorf("adoption: %w", err)
		}
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

// validateV3 checks what differs with InfluxDB 3: no organisations, tokens
// named (authorization_id is the token name), the operator token never
// rotated, buckets (databases) only on Enterprise, expiry_margin only there.
func (cr *Credential) validateV3(backend, edition string) error {
	if backend != BackendInfluxDB3 {
		if cr.ExpiryMargin != 0 {
			return fmt.Errorf("expiry_margin applies to backend %q only", BackendInfluxDB3)
		}
		return nil
	}
	switch {
	case cr.Org != "":
		return errors.New("org does not apply to backend influxdb3: InfluxDB 3 has no organizations")
	case cr.AuthorizationID == V3OperatorToken || cr.Description == V3OperatorToken:
		return fmt.Errorf("the operator token %s is never rotated: use a named admin token", V3OperatorToken)
	case len(cr.Buckets) > 0 && edition == EditionCore:
		return errors.New("buckets need edition enterprise: InfluxDB 3 Core tokens are admin tokens")
	case cr.ExpiryMargin < 0:
		return errors.New("expiry_margin must be positive")
	case cr.Observe != 0:
		// Observe keeps a deactivated token around for a rollback; an
		// InfluxDB 3 token cannot be deactivated, so there is no such phase.
		return errors.New("observe does not apply to backend influxdb3: InfluxDB 3 has no inactive state, the old token is deleted after grace")
	}
	return nil
}

func (a *Adoption) validate(buckets []string) error {
	if a.Bucket == "" && len(buckets) > 0 {
		a.Bucket = buckets[0]
	}
	if a.Lookback == 0 {
		a.Lookback = Duration(backend.DefaultAdoptionLookback)
	}
	if a.MinClients == 0 {
		a.MinClients = 1
	}
	if a.Timeout == 0 {
		a.Timeout = Duration(DefaultAdoptionTimeout)
	}
	if a.PollInterval == 0 {
		a.PollInterval = Duration(DefaultAdoptionPoll)
	}
	switch a.OnTimeout {
	case "":
		a.OnTimeout = OnTimeoutAbort
	case OnTimeoutAbort, OnTimeoutProceed:
	default:
		return fmt.Errorf("on_timeout %q: must be %q or %q", a.OnTimeout, OnTimeoutAbort, OnTimeoutProceed)
	}
	if err := notNegative(named{"lookback", a.Lookback}, named{"timeout", a.Timeout}, named{"poll_interval", a.PollInterval}); err != nil {
		return err
	}
	if a.MinClients < 0 {
		return fmt.Errorf("min_clients must be positive, not %d", a.MinClients)
	}
	for _, o := range []named{{"poll_interval", a.PollInterval}, {"timeout", a.Timeout}} {
		if o.value < Duration(time.Millisecond) {
			return fmt.Errorf("%s %s: too short, use at least 1ms", o.name, time.Duration(o.value))
		}
	}
	if a.Lookback < Duration(time.Second) {
		return fmt.Errorf("lookback %s: InfluxQL reads whole seconds; use at least 1s", time.Duration(a.Lookback))
	}
	seen := map[string]bool{}
	for _, c := range a.Clients {
		if c == "" || seen[c] {
			return fmt.Errorf("clients: empty or repeated client id %q", c)
		}
		seen[c] = true
	}
	return nil
}

func (t *Target) validate() error {
	allowed := map[string][]string{
		TargetFile:       {"path", "mode", "owner", "group"},
		TargetSecretDir:  {"dir", "key", "mode"},
		TargetKubernetes: {"namespace", "secret", "key", "kubeconfig", "context"},
		TargetExec:       {"command", "read_command", "timeout"},
	}
	keys, ok := allowed[t.Type]
	if !ok {
		return fmt.Errorf("type %q: must be file, secret-dir, kubernetes or exec", t.Type)
	}
	set := map[string]bool{
		"path": t.Path != "", "mode": t.Mode != 0, "owner": t.Owner != "", "group": t.Group != "",
		"dir": t.Dir != "", "key": t.Key != "",
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
			t.ExecTimeout = Duration(30 * time.Second)
		}
	}
	// A file target without a mode keeps the mode of the file it replaces.
	if t.Mode == 0 && t.Type == TargetSecretDir {
		t.Mode = DefaultFileMode
	}
	return nil
}

// named is an option's value with its name, for errors that must say which
// of several options is at fault.
type named struct {
	name  string
	value Duration
}

// notNegative names the first negative option. A zero value was already
// replaced by its default, so "positive" is what the operator must write.
func notNegative(opts ...named) error {
	for _, o := range opts {
		if o.value < 0 {
			return fmt.Errorf("%s must be positive, not %s", o.name, time.Duration(o.value))
		}
	}
	return nil
}
