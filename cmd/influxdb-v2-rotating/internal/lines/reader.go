package lines

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Reader cuts a stream into lines and hands them to a Handler one
// read at a time, so that a caller can make each read durable before it
// reads again.
type Reader struct {
	r       io.Reader
	h       *Handler
	buf     []byte
	partial []byte
	// skipping is set while the rest of an over-long line is discarded.
	skipping bool
	eof      bool
}

const readSize = 64 << 10

// NewReader reads r, handing its lines to h.
func NewReader(r io.Reader, h *Handler) *Reader {
	return &Reader{r: r, h: h, buf: make([]byte, readSize)}
}

// Next reads once and fills blk (reset first) with the valid complete lines
// read. It returns io.EOF, together with the last lines, at the end of the
// stream.
func (lr *Reader) Next(blk *Block) error {
	blk.reset()
	if lr.eof {
		return io.EOF
	}
	n, err := lr.r.Read(lr.buf)
	data := lr.buf[:n]
	// Sized once for everything this read can yield: growing by append
	// made most of the garbage (docs/benchmarks.md, "execd pipeline").
	if n > 0 {
		blk.Raw = make([]byte, 0, len(lr.partial)+n+1)
		blk.Lines = make([]Line, 0, bytes.Count(data, []byte{'\n'})+1)
	}
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			lr.addPartial(data)
			break
		}
		if lr.skipping {
			lr.skipping = false
		} else if len(lr.partial) > 0 {
			lr.partial = append(lr.partial, data[:i]...)
			lr.h.Handle(lr.partial, blk)
			lr.partial = lr.partial[:0]
		} else {
			lr.h.Handle(data[:i], blk)
		}
		data = data[i+1:]
	}
	if err != nil {
		if len(lr.partial) > 0 && !lr.skipping {
			lr.h.Handle(lr.partial, blk)
		}
		lr.partial = lr.partial[:0]
		blk.Finish()
		lr.h.summarizeSuppressed()
		if errors.Is(err, io.EOF) {
			lr.eof = true
			return io.EOF
		}
		return err
	}
	blk.Finish()
	return nil
}

func (lr *Reader) addPartial(data []byte) {
	if lr.skipping {
		return
	}
	if len(lr.partial)+len(data) > lr.h.opts.MaxLineBytes {
		// Counted now as malformed; the rest up to the newline is dropped.
		lr.h.lineNo++
		lr.h.dropMalformed("dropped a malformed line", fmt.Sprintf("line is longer than %d bytes", lr.h.opts.MaxLineBytes))
		lr.partial = lr.partial[:0]
		lr.skipping = true
		return
	}
	lr.partial = append(lr.partial, data...)
}
