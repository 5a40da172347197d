package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/influxrotate/influxrotate/cmd/influxdb-v2-rotating/internal/buffer"
	"github.com/influxrotate/influxrotate/cmd/influxdb-v2-rotating/internal/flusher"
	"github.com/influxrotate/influxrotate/cmd/influxdb-v2-rotating/internal/lines"
	"github.com/influxrotate/influxrotate/cmd/influxdb-v2-rotating/internal/pipeline"
	"github.com/influxrotate/influxrotate/cmd/influxdb-v2-rotating/internal/spool"
	"github.com/influxrotate/influxrotate/internal/lifecycle"
	"github.com/influxrotate/influxrotate/internal/statsline"
)

// backend is the output behind the binary: the plugin in production, a
// fake in unit tests.
type backend interface {
	flusher.Sender
	// advise decides whether a failed batch is kept or dropped.
	advise(err error) flusher.Advice
	// lines.Options are the plugin options that change lines.
	lineOptions() lines.Options
	// statsFields are the plugin's internal_token_rotation fields.
	statsFields() map[string]int64
	// statsBucket receives the statistics point.
	statsBucket() string
	// reload re-reads the token source (SIGHUP).
	reload(ctx context.Context)
	close() error
}

// Settings are the binary's own options (flags), as opposed to the plugin's
// (config file).
type Settings struct {
	BatchSize       int
	FlushInterval   time.Duration
	BufferLimit     int
	BufferBytes     int
	SpoolDir        string
	StatsInterval   time.Duration
	ShutdownTimeout time.Duration
	MaxLineBytes    int
	ClientID        string
}

func DefaultSettings() Settings {
	return Settings{
		BatchSize:       1000,
		FlushInterval:   10 * time.Second,
		BufferLimit:     10000,
		BufferBytes:     32 << 20,
		StatsInterval:   60 * time.Second,
		ShutdownTimeout: 4 * time.Second,
		MaxLineBytes:    lines.DefaultMaxLineBytes,
	}
}

// Validate checks the Settings; every error names the flag at fault.
func (s Settings) Validate() error {
	switch {
	case s.BatchSize <= 0:
		return errors.New("-batch-size: must be positive")
	case s.FlushInterval <= 0:
		return errors.New("-flush-interval: must be positive")
	case s.BufferLimit < s.BatchSize:
		return fmt.Errorf("-buffer-limit: must be at least -batch-size (%d)", s.BatchSize)
	case s.BufferBytes <= 0:
		return errors.New("-buffer-bytes: must be positive")
	case s.StatsInterval < 0:
		return errors.New("-stats-interval: must not be negative")
	case s.ShutdownTimeout <= 0:
		return errors.New("-shutdown-timeout: must be positive")
	case s.MaxLineBytes <= 0:
		return errors.New("-max-line-bytes: must be positive")
	case s.MaxLineBytes > spool.MaxRecordBytes/2:
		// One read of stdin, a partial line and all, is one spool record.
		return fmt.Errorf("-max-line-bytes: at most %d", spool.MaxRecordBytes/2)
	}
	return nil
}

// server is one run of the binary.
type Server struct {
	set     Settings
	be      backend
	log     *slog.Logger
	buf     *buffer.Buffer
	spool   *spool.Spool
	pipe    *pipeline.Pipeline
	flusher *flusher.Flusher
}

func New(set Settings, be backend, stdin io.Reader, log *slog.Logger) (*Server, error) {
	s := &Server{set: set, be: be, log: log}
	var onPop func(map[int64]int)
	if set.SpoolDir != "" {
		sp, err := spool.Open(set.SpoolDir, log)
		if err != nil {
			return nil, err
		}
		s.spool = sp
		onPop = sp.Ack
	}
	s.buf = buffer.New(set.BufferLimit, set.BufferBytes, set.BatchSize, onPop)
	lo := be.lineOptions()
	lo.MaxLineBytes = set.MaxLineBytes
	s.pipe = pipeline.New(pipeline.Config{Stdin: stdin, Options: lo, Buffer: s.buf, Spool: s.spool, Log: log})
	if set.StatsInterval > 0 && be.statsBucket() == "" {
		log.Warn("the bucket option is empty, so internal statistics have nowhere to go; -stats-interval ignored")
		set.StatsInterval = 0
		s.set.StatsInterval = 0
	}
	s.flusher = flusher.New(flusher.Config{
		Buffer:     s.buf,
		Sender:     be,
		Advise:     be.advise,
		BatchSize:  set.BatchSize,
		Interval:   set.FlushInterval,
		MaxBackoff: max(set.FlushInterval, time.Second),
		Log:        log,
		StatsEvery: set.StatsInterval,
		StatsPoint: s.statsPoint,
	})
	return s, nil
}

// fields are the statistics reported as internal_token_rotation: the
// plugin's own, under its names, and the binary's pipeline counters.
func (s *Server) fields() map[string]int64 {
	f := maps.Clone(s.be.statsFields())
	if f == nil {
		f = make(map[string]int64)
	}
	metrics, bytes := s.buf.Len()
	f["execd_lines_read"] = s.pipe.LinesRead.Load()
	malformed, unlogged := s.pipe.Malformed()
	f["execd_lines_malformed"] = malformed
	f["execd_malformed_unlogged"] = unlogged
	f["execd_metrics_written"] = s.flusher.Counters.Written.Load()
	f["execd_metrics_dropped"] = s.flusher.Counters.Dropped.Load()
	f["execd_metrics_replayed"] = s.pipe.Replayed.Load()
	f["execd_write_failures"] = s.flusher.Counters.WriteFailures.Load()
	f["execd_buffer_metrics"] = int64(metrics)
	f["execd_buffer_bytes"] = int64(bytes)
	return f
}

func (s *Server) statsPoint(now time.Time) (string, []byte, error) {
	tags := map[string]string{"client_id": s.set.ClientID, "output": "influxdb_v2_rotating", "mode": "execd"}
	line, err := statsline.Encode("internal_token_rotation", tags, s.fields(), now, lineprotocol.Nanosecond)
	return s.be.statsBucket(), line, err
}

// Run serves until stdin ends or ctx ends (SIGTERM), then flushes within
// the shutdown deadline. It returns the process exit code.
func (s *Server) Run(ctx context.Context, hup <-chan struct{}) int {
	// The flusher's writes end with flushCtx (the shutdown deadline); the
	// goroutine's own context, which Stop cancels, tells it to drain.
	flushCtx, cancelFlush := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelFlush()
	var remaining int
	flushing := lifecycle.Go(func(stop context.Context) { remaining = s.flusher.Run(flushCtx, stop.Done()) })

	ingestCtx, cancelIngest := context.WithCancel(ctx)
	defer cancelIngest()
	ingestErr := make(chan error, 1)
	// Not a lifecycle.Goroutine: its Stop waits, and a read of stdin may
	// never return (see below).
	go func() {
		if err := s.pipe.Replay(ingestCtx); err != nil {
			s.log.Error("spool replay failed", "error", err.Error())
		}
		ingestErr <- s.pipe.Ingest(ingestCtx)
	}()

	code := 0
wait:
	for {
		select {
		case err := <-ingestErr:
			if err != nil && ctx.Err() == nil {
				s.log.Error("reading stdin failed", "error", err.Error())
				code = 1
			} else {
				s.log.Info("stdin closed; flushing and exiting")
			}
			break wait
		case <-ctx.Done():
			s.log.Info("terminating; flushing and exiting")
			break wait
		case <-hup:
			s.log.Info("SIGHUP: re-reading the token source")
			s.be.reload(ctx)
		}
	}

	// The reader may be blocked in a read of stdin that will never
	// return; it is left behind once the block in hand is safe.
	cancelIngest()
	deadline := time.AfterFunc(s.set.ShutdownTimeout, cancelFlush)
	defer deadline.Stop()
	lost := s.pipe.Stop()
	flushing.Stop()
	deadline.Stop()

	switch {
	case remaining == 0 && lost == 0:
		s.log.Info("all metrics written", "written", s.flusher.Counters.Written.Load())
	case s.spool != nil:
		s.log.Warn("shutdown deadline reached; unsent metrics stay in the spool for the next start",
			"metrics", s.spool.Unacked(), "spool_dir", s.set.SpoolDir)
	default:
		s.log.Error("shutdown deadline reached; unsent metrics are lost (set -spool-dir to keep them)",
			"metrics", int64(remaining)+lost)
	}
	if s.spool != nil {
		if err := s.spool.Close(); err != nil {
			s.log.Error("closing the spool", "error", err.Error())
		}
	}
	if err := s.be.close(); err != nil {
		s.log.Warn("closing the output", "error", err.Error())
	}
	return code
}
