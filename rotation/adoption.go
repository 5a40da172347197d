package rotation

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
)

// Adoption report defaults.
const (
	DefaultAdoptionMeasurement = "influxrotate_adoption"
	DefaultAdoptionInterval    = 5 * time.Minute
)

// AdoptionConfig configures NewAdoptionReporter.
type AdoptionConfig struct {
	// Measurement of the report point. Default DefaultAdoptionMeasurement.
	Measurement string
	// ClientID is the client_id tag: what names this writer to the
	// controller. Required.
	ClientID string
	// Interval between reports while the active token does not change.
	// Default DefaultAdoptionInterval.
	Interval time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives one warning when reports start failing and one
	// line when they succeed again. Default: discard.
	Logger *slog.Logger
}

// AdoptionReport is one adoption point: which token a writer writes with.
// It holds fingerprints only.
type AdoptionReport struct {
	// Fingerprint of the active token, the one the report is written with.
	Fingerprint string
	// Previous is the fingerprint of the token it replaced, "" before the
	// first change.
	Previous string
	// Rotations is the writer's promotion count since it started.
	Rotations int64
	// Time is the point's timestamp.
	Time time.Time
}

// AdoptionReporter decides when a writer reports which token it writes
// with, and builds the report: one point
//
//	influxrotate_adoption,client_id=<id> fingerprint="sha256:…",previous="sha256:…",rotations=<n>i <ts>
//
// written with the active token through the writer's own write path, so its
// arrival proves that token writes. A report is due at start, as soon as
// the active token differs from the one last reported (a promotion or a
// fallback), and every Interval. A report that fails stays due and goes out
// with the next flush; the writer never holds metrics back for it.
//
// The writer calls Due with the credential of a flush that stored metrics,
// writes the line it gets, and calls Done with the outcome. It is safe for
// concurrent use: while one report is in flight, Due says no to others.
type AdoptionReporter struct {
	measurement string
	clientID    string
	interval    time.Duration
	now         func() time.Time
	log         *slog.Logger

	mu       sync.Mutex
	inFlight bool
	// active is the fingerprint last passed to Due and previous the one
	// before it: the writer's own history, so no Rotator state is needed.
	active, previous string
	// reported is the fingerprint of the last report stored, at reportedAt.
	reported   string
	reportedAt time.Time
	failing    bool
}

// NewAdoptionReporter checks cfg: the measurement and client ID must make
// a valid line-protocol point.
func NewAdoptionReporter(cfg AdoptionConfig) (*AdoptionReporter, error) {
	if cfg.Measurement == "" {
		cfg.Measurement = DefaultAdoptionMeasurement
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultAdoptionInterval
	}
	if cfg.Interval < 0 {
		return nil, fmt.Errorf("adoption report interval must be positive, got %s", cfg.Interval)
	}
	if cfg.ClientID == "" {
		return nil, errors.New("adoption report: client ID is empty")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &AdoptionReporter{measurement: cfg.Measurement, clientID: cfg.ClientID,
		interval: cfg.Interval, now: cfg.Now, log: cfg.Logger}
	if _, err := a.encode(AdoptionReport{Fingerprint: Fingerprint("x"), Time: time.Unix(0, 0)}); err != nil {
		return nil, fmt.Errorf("adoption report: %w", err)
	}
	return a, nil
}

// Measurement is the report's measurement name.
func (a *AdoptionReporter) Measurement() string { return a.measurement }

// Due reports whether a report for cred, the credential a flush has just
// written with, is due, and if so returns it and its line protocol
// (nanosecond precision, newline-terminated). rotations is the writer's
// Stats.Rotations. The caller must call Done with the report once written.
func (a *AdoptionReporter) Due(cred *Credential, rotations int64) (AdoptionReport, []byte, bool) {
	if cred == nil {
		return AdoptionReport{}, nil, false
	}
	fp := cred.Fingerprint()
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if fp != a.active {
		if a.active != "" {
			a.previous = a.active
		}
		a.active = fp
	}
	due := a.reported != fp || now.Sub(a.reportedAt) >= a.interval
	if !due || a.inFlight {
		return AdoptionReport{}, nil, false
	}
	rep := AdoptionReport{Fingerprint: fp, Previous: a.previous, Rotations: rotations, Time: now}
	line, err := a.encode(rep)
	if err != nil {
		// Unreachable: the measurement and client ID were checked, and
		// fingerprints are plain ASCII.
		a.log.Error("cannot encode adoption report", "error", err)
		return AdoptionReport{}, nil, false
	}
	a.inFlight = true
	return rep, line, true
}

// Done records the outcome of writing rep. After a failure the report stays
// due, so the next flush sends it again.
func (a *AdoptionReporter) Done(rep AdoptionReport, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.inFlight = false
	if err != nil {
		if !a.failing {
			a.log.Warn("adoption report not stored; it will be sent again with the next flush",
				"measurement", a.measurement, "fingerprint", rep.Fingerprint, "error", err)
		}
		a.failing = true
		return
	}
	if a.failing {
		a.log.Info("adoption report stored again", "fingerprint", rep.Fingerprint)
	}
	a.failing = false
	a.reported, a.reportedAt = rep.Fingerprint, rep.Time
}

func (a *AdoptionReporter) encode(rep AdoptionReport) ([]byte, error) {
	var enc lineprotocol.Encoder
	enc.SetPrecision(lineprotocol.Nanosecond)
	enc.StartLine(a.measurement)
	enc.AddTag("client_id", a.clientID)
	enc.AddField("fingerprint", lineprotocol.MustNewValue(rep.Fingerprint))
	enc.AddField("previous", lineprotocol.MustNewValue(rep.Previous))
	enc.AddField("rotations", lineprotocol.IntValue(rep.Rotations))
	enc.EndLine(rep.Time)
	if err := enc.Err(); err != nil {
		return nil, err
	}
	return enc.Bytes(), nil
}
