package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"

	"github.com/influxrotate/influxrotate/cmd/influxdb-v2-rotating/internal/buffer"
	"github.com/influxrotate/influxrotate/cmd/influxdb-v2-rotating/internal/lines"
	"github.com/influxrotate/influxrotate/cmd/influxdb-v2-rotating/internal/spool"
)

// pipeline moves what is read from stdin (and, at start, what the spool
// kept) into the buffer.
type pipeline struct {
	lr       *lines.Reader
	stdinH   *lines.Handler // lr's
	replayH  *lines.Handler
	buf      *buffer.Buffer
	spool    *spool.Spool // nil without spool_dir
	counters *counters
	log      *slog.Logger

	// busy is held while a block is being spooled and buffered, so that
	// shutdown never closes the spool under it.
	busy   sync.Mutex
	closed bool
	// lost counts metrics read from stdin that could be neither buffered
	// nor spooled (only at shutdown, and only without a spool).
	lost int64
}

// replay buffers what the spool kept from an earlier run. It stops early,
// leaving the rest in the spool, when ctx ends.
func (p *pipeline) replay(ctx context.Context) error {
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
		p.counters.replayed.Add(int64(n))
		return true
	})
	if st.Segments > 0 {
		p.log.Info("replayed the spool", "segments", st.Segments, "records", st.Records,
			"metrics", p.counters.replayed.Load(), "corrupt_records", st.Corrupt, "torn_bytes", st.TornBytes)
	}
	return err
}

// ingest reads stdin until its end, a read error, or ctx ends. Each read is
// spooled (and fsynced) and buffered before the next read, so what was read
// is safe before more is taken from the pipe.
func (p *pipeline) ingest(ctx context.Context) error {
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
func (p *pipeline) accept(ctx context.Context, blk *lines.Block) bool {
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
	p.counters.linesRead.Add(int64(n))
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

// stop makes the pipeline refuse further blocks, after the one being
// handled (which ctx's end hurries) is spooled or buffered.
func (p *pipeline) stop() (lost int64) {
	p.busy.Lock()
	defer p.busy.Unlock()
	p.closed = true
	return p.lost
}
