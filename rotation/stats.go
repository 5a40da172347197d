package rotation

import (
	"sync/atomic"
	"time"
)

// Stats are the counters and gauges of one writer's rotation. Every field is
// safe for concurrent use; consumers export them with Fields.
type Stats struct {
	Rotations        atomic.Int64 // candidates promoted to active
	RotationFailures atomic.Int64 // new tokens refused by a probe
	ProbeUnreachable atomic.Int64 // probes that could not reach a verdict
	ProbeRefused     atomic.Int64 // probes answered 401
	ProbeForbidden   atomic.Int64 // probes answered 403
	ProbeNotFound    atomic.Int64 // probes answered 404 (configuration error)
	AuthFailures     atomic.Int64 // writes answered 401 or 403
	Fallbacks        atomic.Int64 // switches back to the previous token
	SourceErrors     atomic.Int64 // failed or invalid reads of the source
	// RotationLatency is the last time from a change seen to its promotion.
	RotationLatency atomic.Int64 // nanoseconds
	// ConnectionDrain is how long the last CloseIdleConnections took.
	ConnectionDrain atomic.Int64 // nanoseconds
	// activeSince is when the active token became active, in Unix nanoseconds.
	activeSince atomic.Int64
	fingerprint atomic.Pointer[string]
}

// SetActive records the credential that has just become active.
func (s *Stats) SetActive(c *Credential, at time.Time) {
	fp := c.Fingerprint()
	s.fingerprint.Store(&fp)
	s.activeSince.Store(at.UnixNano())
}

// Fingerprint returns the active token's fingerprint, or "".
func (s *Stats) Fingerprint() string {
	if p := s.fingerprint.Load(); p != nil {
		return *p
	}
	return ""
}

// TokenAge is how long the active token has been active.
func (s *Stats) TokenAge(now time.Time) time.Duration {
	since := s.activeSince.Load()
	if since == 0 {
		return 0
	}
	return now.Sub(time.Unix(0, since))
}

// Fields returns every integer statistic under its snake_case name, the
// names the Telegraf plugin and the execd binary report.
func (s *Stats) Fields(now time.Time) map[string]int64 {
	return map[string]int64{
		"rotations":                s.Rotations.Load(),
		"rotation_failures":        s.RotationFailures.Load(),
		"probe_errors_unreachable": s.ProbeUnreachable.Load(),
		"probe_errors_refused":     s.ProbeRefused.Load(),
		"probe_errors_forbidden":   s.ProbeForbidden.Load(),
		"probe_errors_not_found":   s.ProbeNotFound.Load(),
		"auth_failures":            s.AuthFailures.Load(),
		"fallbacks":                s.Fallbacks.Load(),
		"source_errors":            s.SourceErrors.Load(),
		"rotation_latency_ms":      time.Duration(s.RotationLatency.Load()).Milliseconds(),
		"connection_drain_us":      time.Duration(s.ConnectionDrain.Load()).Microseconds(),
		"token_age_s":              int64(s.TokenAge(now) / time.Second),
	}
}
