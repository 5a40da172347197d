// Package backend manages authorizations on an InfluxDB server for the
// controller: InfluxDB 2.x authorizations through /api/v2/authorizations and
// InfluxDB 1.8+ users (token "user:password") through InfluxQL. Every call
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

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/state"
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
	Permissions []state.Permission
	CreatedAt   time.Time
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
	Create(ctx context.Context, org string, label Label, perms []state.Permission) (*Authorization, error)
	// SetActive activates or deactivates a; a deleted one is ErrNotFound.
	SetActive(ctx context.Context, a *Authorization, active bool) error
	// Delete removes an authorization; one already gone counts as deleted.
	Delete(ctx context.Context, id string) error
	// LabelOf reads the label of a, if it has one.
	LabelOf(a *Authorization) (Label, bool)
	// BucketPermissions returns write permissions on the named buckets.
	BucketPermissions(ctx context.Context, org string, buckets []string) ([]state.Permission, error)
	// ProbeTargets lists the buckets a may write, for the verify probe.
	ProbeTargets(ctx context.Context, a *Authorization) ([]rotation.Target, error)
	// WriteLines writes line protocol with the operator token (or token).
	WriteLines(ctx context.Context, org, bucket, token string, lines []byte) error
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

// Retryable reports whether err is worth retrying: an answer that
// rotation.Classify says to retry or throttle (429, 5xx), or a network
// error. A context error is not.
func Retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var he *HTTPError
	if errors.As(err, &he) {
		a := rotation.Classify(he.Status, nil, nil).Action
		return a == rotation.ActionRetry || a == rotation.ActionThrottle
	}
	var pe *permanentError
	return !errors.As(err, &pe)
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

// StatusOf returns the HTTP status of err, or 0.
func StatusOf(err error) int {
	var he *HTTPError
	if errors.As(err, &he) {
		return he.Status
	}
	return 0
}

// Options configure a backend.
type Options struct {
	URL           string
	OperatorToken string
	Client        *http.Client
	Retry         Retry
	Logger        *slog.Logger
	UserAgent     string
}

func (o *Options) defaults() {
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.UserAgent = cmp.Or(o.UserAgent, "influxrotate")
	o.Retry.defaults()
}
