package main

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/influxrotate/influxrotate/internal/statsline"
)

// backend is the output behind the binary: the plugin in production, a
// fake in unit tests.
type backend interface {
	sender
	// judge decides whether a failed batch is kept or dropped.
	judge(err error) verdict
	// lineOptions are the plugin options that change lines.
	lineOptions() lineOptions
	// statsFields are the plugin's internal_token_rotation fields.
	statsFields() map[string]int64
	// statsBucket receives the statistics point.
	statsBucket() string
	// reload re-reads the token source (SIGHUP).
	reload(ctx context.Context)
	close() error
}

// settings are the binary's own options (flags), as opposed to the plugin's
// (config file).
type settings struct {
	batchSize       int
	flushInterval   time.Duration
	bufferLimit     int
	bufferBytes     int
	spoolDir        string
	statsInterval   time.Duration
	shutdownTimeout time.Duration
	maxLineBytes    int
	clientID        string
}

func defaultSettings() settings {
	return settings{
		batchSize:       1000,
		flushInterval:   10 * time.Second,
		bufferLimit:     10000,
		bufferBytes:     32 << 20,
		statsInterval:   60 * time.Second,
		shutdownTimeout: 4 * time.Second,
		maxLineBytes:    defaultMaxLineBytes,
	}
}

// server is one run of the binary.
type server struct {
	set      settings
	be       backend
	log      *slog.Logger
	counters counters
	buf      *buffer
	spool    *spool
	pipe     *pipeline
	flusher  *flusher
}

func newServer(set settings, be backend, stdin io.Reader, log *slog.Logger) (*server, error) {
	s := &server{set: set, be: be, log: log}
	s.buf = newBuffer(set.bufferLimit, set.bufferBytes, set.batchSize)
	if set.spoolDir != "" {
		sp, err := openSpool(set.spoolDir, log)
		if err != nil {
			return nil, err
		}
		s.spool = sp
		s.buf.onPop = sp.ack
	}
	lo := be.lineOptions()
	lo.MaxLineBytes = set.maxLineBytes
	s.pipe = &pipeline{
		lr:       newLineReader(stdin, newLineHandler(lo, log.With("input", "stdin"))),
		replayH:  newLineHandler(lo, log.With("input", "spool")),
		buf:      s.buf,
		spool:    s.spool,
		counters: &s.counters,
		log:      log,
	}
	if set.statsInterval > 0 && be.statsBucket() == "" {
		log.Warn("the bucket option is empty, so internal statistics have nowhere to go; -stats-interval ignored")
		set.statsInterval = 0
		s.set.statsInterval = 0
	}
	s.flusher = &flusher{
		buf:        s.buf,
		send:       be,
		judge:      be.judge,
		batchSize:  set.batchSize,
		interval:   set.flushInterval,
		maxBackoff: max(set.flushInterval, time.Second),
		log:        log,
		counters:   &s.counters,
		statsEvery: set.statsInterval,
		statsPoint: s.statsPoint,
	}
	return s, nil
}

// fields are the statistics reported as internal_token_rotation: the
// plugin's own, under its names, and the binary's pipeline counters.
func (s *server) fields() map[string]int64 {
	f := maps.Clone(s.be.statsFields())
	if f == nil {
		f = make(map[string]int64)
	}
	metrics, bytes := s.buf.len()
	f["execd_lines_read"] = s.counters.linesRead.Load()
	f["execd_lines_malformed"] = s.pipe.lr.h.malformed.Load() + s.pipe.replayH.malformed.Load()
	f["execd_malformed_unlogged"] = s.pipe.lr.h.suppressed.Load() + s.pipe.replayH.suppressed.Load()
	f["execd_metrics_written"] = s.counters.written.Load()
	f["execd_metrics_dropped"] = s.counters.dropped.Load()
	f["execd_metrics_replayed"] = s.counters.replayed.Load()
	f["execd_write_failures"] = s.counters.writeFailures.Load()
	f["execd_buffer_metrics"] = int64(metrics)
	f["execd_buffer_bytes"] = int64(bytes)
	return f
}

func (s *server) statsPoint(now time.Time) (string, []byte, error) {
	tags := map[string]string{"client_id": s.set.clientID, "output": "influxdb_v2_rotating", "mode": "execd"}
	line, err := statsline.Encode("internal_token_rotation", tags, s.fields(), now, lineprotocol.Nanosecond)
	return s.be.statsBucket(), line, err
}

// run serves until stdin ends or ctx ends (SIGTERM), then flushes within
// the shutdown deadline. It returns the process exit code.
func (s *server) run(ctx context.Context, hup <-chan struct{}) int {
	flushCtx, cancelFlush := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelFlush()
	stopFlush := make(chan struct{})
	left := make(chan int, 1)
	go func() { left <- s.flusher.run(flushCtx, stopFlush) }()

	ingestCtx, cancelIngest := context.WithCancel(ctx)
	defer cancelIngest()
	ingestErr := make(chan error, 1)
	go func() {
		if err := s.pipe.replay(ingestCtx); err != nil {
			s.log.Error("spool replay failed", "error", err.Error())
		}
		ingestErr <- s.pipe.ingest(ingestCtx)
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
	deadline := time.AfterFunc(s.set.shutdownTimeout, cancelFlush)
	defer deadline.Stop()
	lost := s.pipe.stop()
	close(stopFlush)
	remaining := <-left
	deadline.Stop()

	switch {
	case remaining == 0 && lost == 0:
		s.log.Info("all metrics written", "written", s.counters.written.Load())
	case s.spool != nil:
		s.log.Warn("shutdown deadline reached; unsent metrics stay in the spool for the next start",
			"metrics", s.spool.pendingLines(), "spool_dir", s.set.spoolDir)
	default:
		s.log.Error("shutdown deadline reached; unsent metrics are lost (set -spool-dir to keep them)",
			"metrics", int64(remaining)+lost)
	}
	if s.spool != nil {
		if err := s.spool.close(); err != nil {
			s.log.Error("closing the spool", "error", err.Error())
		}
	}
	if err := s.be.close(); err != nil {
		s.log.Warn("closing the output", "error", err.Error())
	}
	return code
}
