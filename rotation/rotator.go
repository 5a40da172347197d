package rotation

import (
	"context"
	"log/slog"
	"time"
)

// Config configures a Rotator.
type Config struct {
	// Source supplies tokens. The Rotator does not close it.
	Source Source
	// Prober validates new tokens; nil accepts them unchecked (probe mode "none").
	Prober Prober
	// Fallback allows switching back to the previous token when the active
	// one is refused and no valid new one exists.
	Fallback bool
	// OnPromote runs after each promotion, typically the writer's
	// http.Transport.CloseIdleConnections; its duration is recorded in
	// Stats.ConnectionDrain.
	OnPromote func()
	// ProbeBackoff bounds the re-probing of a candidate while the server is
	// unreachable: the delay starts at Initial (default 1s), doubles with
	// jitter up to Max (default 1m).
	ProbeBackoff Backoff
	// Logger receives rotation events. Default: discard.
	Logger *slog.Logger
	// Stats is updated by the Rotator. Default: a new Stats, see Stats().
	Stats *Stats
	// Audit, when set, receives one record per rotation event.
	Audit *AuditLog
	// ClientID identifies this writer in audit records (default hostname).
	ClientID string
}

// Backoff describes an exponential backoff with jitter.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
}
