// Package backend manages authorizations on an InfluxDB server for the
// controller: InfluxDB 2.x authorizations through /api/v2/authorizations,
// InfluxDB 1.8+ users (token "user:password") through InfluxQL and InfluxDB 3
// tokens through /api/v3/configure/token and system.tokens. Every call
// is retried on 429, 5xx and network errors with a bounded exponential
// backoff; errors never carry a token.
package backend

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/influxrotate/influxrotate/rotation"
)

// Authorization is a token's server-side record. Token is "" when the server
// does not show it (hashed tokens in InfluxDB 2.9+, any 1.x user).
type Authorization struct {
	ID          string
	Token       string
	Description string
	Active      bool
	OrgID       string
	Org         string
	Permissions []Permission
	CreatedAt   time.Time
	// ExpiresAt is when the server stops accepting the token by itself; zero
	// for never (always zero where Capabilities().Expiry is false).
	ExpiresAt time.Time
}

// String keeps the token out of %v, %+v and %s: an Authorization is a
// natural thing to print in an error or a debug line, and the token must
// never reach either. The token shows as its fingerprint.
func (a Authorization) String() string {
	tok := "no token"
	if a.Token != "" {
		tok = rotation.Fingerprint(a.Token)
	}
	return fmt.Sprintf("authorization %q (%s, active=%t, %d permissions)", a.ID, tok, a.Active, len(a.Permissions))
}

// GoString keeps the token out of %#v.
func (a Authorization) GoString() string { return a.String() }

// LogValue keeps the token out of slog output.
func (a Authorization) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("id", a.ID), slog.Bool("active", a.Active)}
	if a.Token != "" {
		attrs = append(attrs, slog.String("fingerprint", rotation.Fingerprint(a.Token)))
	}
	return slog.GroupValue(attrs...)
}

// Capabilities say which parts of the rotation cycle a backend's server has.
type Capabilities struct {
	// Inactive: an authorization can be deactivated and activated again
	// (SetActive), so the cycle can deactivate the old token, observe, and
	// only then delete it, and a rollback can re-activate it. True for
	// InfluxDB 1.x and 2.x. Without it (InfluxDB 3) a token is valid until
	// it is deleted or expires: the cycle is provision → publish → verify →
	// wait (grace, or the adoption gate) → delete; SetActive(false) fails
	// with ErrNoInactiveState and SetActive(true) only checks that the token
	// still exists; a rollback before the delete keeps both tokens valid,
	// after it nothing can be undone.
	Inactive bool
	// Expiry: Create gives every token a server-side expiry (reported in
	// Authorization.ExpiresAt), so an old token the controller failed to
	// delete still stops working on its own.
	Expiry bool
}

// ErrNoInactiveState is SetActive(false) on a server without an inactive
// state (Capabilities.Inactive false).
var ErrNoInactiveState = errors.New("this server has no inactive state: a token is valid until it is deleted or expires")

// Permission is one grant of an authorization. The controller's journal
// stores it so that a deactivated 1.x user can be re-granted on rollback
// and so that comparing permission sets survives a restart.
type Permission struct {
	Action string `json:"action"`
	Type   string `json:"type"`
	OrgID  string `json:"org_id,omitempty"`
	ID     string `json:"id,omitempty"`
	Name   string `json:"name,omitempty"`
}

// Label marks an authorization as made by the controller for a credential
// in one rotation, so that an orphan left by a crash can be found again.
type Label struct {
	Credential  string
	Description string
	RotationID  string
}

// ErrNotFound is returned when an authorization does not exist.
var ErrNotFound = errors.New("authorization not found")

// Backend manages authorizations.
type Backend interface {
	// Get returns one authorization or ErrNotFound.
	Get(ctx context.Context, id string) (*Authorization, error)
	// List returns the authorizations of org (1.x: every user).
	List(ctx context.Context, org string) ([]*Authorization, error)
	// Create makes an active authorization with exactly perms.
	Create(ctx context.Context, org string, label Label, perms []Permission) (*Authorization, error)
	// SetActive activates or deactivates a; a deleted one is ErrNotFound.
	SetActive(ctx context.Context, a *Authorization, active bool) error
	// Delete removes an authorization; one already gone counts as deleted.
	Delete(ctx context.Context, id string) error
	// LabelOf reads the label of a, if it has one.
	LabelOf(a *Authorization) (Label, bool)
	// BucketPermissions returns write permissions on the named buckets.
	BucketPermissions(ctx context.Context, org string, buckets []string) ([]Permission, error)
	// ProbeTargets lists the buckets a may write, for the verify probe.
	ProbeTargets(ctx context.Context, a *Authorization) ([]rotation.Target, error)
	// WriteLines writes line protocol with the operator token (or token).
	WriteLines(ctx context.Context, org, bucket, token string, lines []byte) error
	// Capabilities say which phases of the cycle the server supports.
	Capabilities() Capabilities
}

// HTTPError is a non-success API answer.
type HTTPError struct {
	Op      string
	Status  int
	Message string
	// RetryAfter is the server's Retry-After, 0 without one.
	RetryAfter time.Duration
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("%s: HTTP %d: %s", e.Op, e.Status, e.Message)
}

// permanentError marks an error that retrying cannot fix (a bad answer body).
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as not retryable.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// Options configure a backend.
type Options struct {
	URL           string
	OperatorToken string
	Client        *http.Client
	Retry         Retry
	Logger        *slog.Logger
	UserAgent     string
	// Scrubber removes tokens from the server's messages before they reach
	// an error. The backend pins the operator token and adds every token
	// it creates or writes with; the controller pins the ones it holds.
	// Default: a new one.
	Scrubber *rotation.Scrubber
}

func (o *Options) defaults() {
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 10 * time.Second, CheckRedirect: rotation.NoRedirect}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.UserAgent = cmp.Or(o.UserAgent, "influxrotate")
	o.Retry.defaults()
	if o.Scrubber == nil {
		o.Scrubber = rotation.NewScrubber()
	}
	o.Scrubber.Pin(o.OperatorToken)
}
