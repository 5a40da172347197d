// Package pipeline moves what the execd binary reads from stdin (and, at
// start, what the spool kept) through the spool into the buffer.
package pipeline

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/influxrotate/influxrotate/cmd/influxdb-v2-rotating/internal/buffer"
	"github.com/influxrotate/influxrotate/cmd/influxdb-v2-rotating/internal/lines"
	"github.com/influxrotate/influxrotate/cmd/influxdb-v2-rotating/internal/spool"
)

// Config is where a Pipeline reads and what it fills.
type Config struct {
	// Stdin is the input; its lines are checked by a Handler with Options.
	Stdin   io.Reader
	Options lines.Options
	Buffer  *buffer.Buffer
	Spool   *spool.Spool // nil without spool_dir
	Log     *slog.Logger
}

// Pipeline moves what is read from stdin (and, at start, what the spool
// kept) into the buffer.
type Pipeline struct {
	lr      *lines.Reader
	stdinH  *lines.Handler // lr's
	replayH *lines.Handler
	buf     *buffer.Buffer
	spool   *spool.Spool // nil without spool_dir
	log     *slog.Logger

	// LinesRead counts the valid lines read from stdin, Replayed those
	// buffered again from the spool.
	LinesRead atomic.Int64
	Replayed  atomic.Int64

	// busy is held while a block is being spooled and buffered, so that
	// shutdown never closes the spool under it.
	busy   sync.Mutex
	closed bool
	// lost counts metrics read from stdin that could be neither buffered
	// nor spooled (only at shutdown, and only without a spool).
	lost int64
}

// New returns a Pipeline for cfg.
func New(cfg Config) *Pipeline {
	stdinH := lines.NewHandler(cfg.Options, cfg.Log.With("input", "stdin"))
	return &Pipeline{
		lr:      lines.NewReader(cfg.Stdin, stdinH),
		stdinH:  stdinH,
		replayH: lines.NewHandler(cfg.Options, cfg.Log.With("input", "spool")),
		buf:     cfg.Buffer,
		spool:   cfg.Spool,
		log:     cfg.Log,
	}
}

// Malformed is the number of malformed lines dropped, from stdin and the
// spool, and how many of them were not logged one by one.
func (p *Pipeline) Malformed() (dropped, unlogged int64) {
	return p.stdinH.Malformed() + p.replayH.Malformed(), p.stdinH.Unlogged() + p.replayH.Unlogged()
}

// Replay buffers what the spool kept from an earlier run. It stops early,
// leaving the rest in the spool, when ctx ends.
func (p *Pipeline) Replay(ctx context.Context) error {
	if p.spool == nil {
		return nil
	}
	st, err := p.spool.Replay(func(seg int64, raw []byte) bool {
		blk := &lines.Block{}
		for line := range lines.Split(raw) {
			p.replayH.Handle(line, blk)
		}
		blk.Finish()
		n := blk.Count()
		if n == 0 {
			return true
		}
		if !p.buf.WaitRoom(ctx, n, len(blk.Out)) {
			return false
		}
		p.spool.Hold(seg, n)
		p.buf.Put(blk, seg)
		p.Replayed.Add(int64(n))
		return true
	})
	if st.Segments > 0 {
		p.log.Info("replayed the spool", "segments", st.Segments, "records", st.Records,
			"metrics", p.Replayed.Load(), "corrupt_records", st.Corrupt, "torn_bytes", st.TornBytes)
	}
	return err
}

// Ingest reads stdin until its end, a read error, or ctx ends. Each read is
// spooled (and fsynced) and buffered before the next read, so what was read
// is safe before more is taken from the pipe.
func (p *Pipeline) Ingest(ctx context.Context) error {
	for {
		blk := &lines.Block{}
		err := p.lr.Next(blk)
		if !p.accept(ctx, blk) {
			return ctx.Err()
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// accept spools and buffers one block, waiting for room in the buffer.
// It returns false once the pipeline is shutting down.
func (p *Pipeline) accept(ctx context.Context, blk *lines.Block) bool {
	p.busy.Lock()
	defer p.busy.Unlock()
	n := blk.Count()
	if p.closed {
		if n > 0 {
			p.lost += int64(n)
			p.log.Error("metrics read during shutdown are lost", "metrics", n)
		}
		return false
	}
	if n == 0 {
		return ctx.Err() == nil
	}
	p.LinesRead.Add(int64(n))
	room := p.buf.WaitRoom(ctx, n, len(blk.Out))
	var seg int64
	if p.spool != nil {
		// Spooled even when there is no room (shutdown): the spool is
		// where data goes that cannot be sent in time.
		s, err := p.spool.Append(blk.Raw, n)
		if err != nil {
			p.log.Error("spool write failed; these metrics are kept in memory only", "metrics", n, "error", err.Error())
		}
		seg = s
	}
	if !room {
		if seg == 0 {
			p.lost += int64(n)
		}
		return false
	}
	p.buf.Put(blk, seg)
	return ctx.Err() == nil
}

// Stop makes the pipeline refuse further blocks, after the one being
// handled (which ctx's end hurries) is spooled or buffered.
func (p *Pipeline) Stop() (lost int64) {
	p.busy.Lock()
	defer p.busy.Unlock()
	p.closed = true
	return p.lost
}
