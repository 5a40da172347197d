package spool

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// segmentStats says what scanSegment found in one segment.
type segmentStats struct {
	corrupt, oversized, torn int
	// stopped is set when fn returned false.
	stopped bool
}

// scanSegment reads a segment and hands each intact record's payload to fn
// (valid only during the call) until fn returns false. It holds at most
// maxRecord bytes of one record: a longer one cannot have been written by
// append, so it is dropped as it is read and counted as corrupt and
// oversized once its trailer line is reached; the records after it are
// read as usual. Bytes after the last trailer line are torn.
func scanSegment(r io.Reader, maxRecord int, fn func(payload []byte) bool) (segmentStats, error) {
	var st segmentStats
	br := bufio.NewReaderSize(r, 64<<10)
	prefix := []byte(commitPrefix)
	var (
		rec       []byte // the record read so far, payload and the current line
		lineStart int    // where the current line starts in rec
		since     int    // bytes since the last trailer line
		oversized bool   // the record outgrew maxRecord; rec is not kept
		head      []byte // while oversized, the current line's first bytes
	)
	for {
		// A part is a line or, for a line longer than the buffer, a
		// part of one.
		part, err := br.ReadSlice('\n')
		since += len(part)
		if !oversized && len(rec)+len(part) > maxRecord {
			oversized = true
			head = append(head[:0], rec[lineStart:min(len(rec), lineStart+len(prefix))]...)
			rec, lineStart = rec[:0], 0
		}
		if oversized {
			if n := len(prefix) - len(head); n > 0 {
				head = append(head, part[:min(len(part), n)]...)
			}
		} else {
			rec = append(rec, part...)
		}
		if len(part) > 0 && part[len(part)-1] == '\n' {
			switch {
			case oversized:
				if bytes.HasPrefix(head, prefix) {
					st.corrupt++
					st.oversized++
					oversized, since = false, 0
				}
				head = head[:0]
			default:
				if rest, ok := bytes.CutPrefix(rec[lineStart:len(rec)-1], prefix); ok {
					payload := rec[:lineStart]
					since = 0
					if !checkTrailer(rest, payload) {
						st.corrupt++
					} else if !fn(payload) {
						st.stopped = true
						return st, nil
					}
					rec = rec[:0]
				}
				lineStart = len(rec)
			}
		}
		switch {
		case errors.Is(err, io.EOF):
			st.torn = since
			return st, nil
		case err != nil && !errors.Is(err, bufio.ErrBufferFull):
			return st, err
		}
	}
}

func trailer(payload []byte) []byte {
	return fmt.Appendf(nil, "%slen=%d crc32c=%08x\n", commitPrefix, len(payload), crc32.Checksum(payload, crcTable))
}

// checkTrailer accepts only the exact trailer append writes for payload:
// length and checksum must match, and nothing else may differ.
func checkTrailer(rest, payload []byte) bool {
	want := trailer(payload)
	return bytes.Equal(rest, want[len(commitPrefix):len(want)-1])
}
