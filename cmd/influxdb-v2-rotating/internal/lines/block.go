// Package lines cuts the execd binary's input into lines, checks each
// line as InfluxDB would, routes it to its bucket and rewrites it as the
// plugin's options say (with lineproto's rules). What it accepts goes to
// the buffer and the spool as Blocks.
package lines

import "github.com/influxrotate/influxrotate/internal/lineproto"

// Options are the plugin options that decide whether a line can be
// forwarded byte for byte or must be re-encoded.
type Options struct {
	// Options are the plugin's, with the rules the plugin applies.
	lineproto.Options
	// DefaultBucket receives lines without BucketTag.
	DefaultBucket string
	// MaxLineBytes refuses longer lines (counted as malformed). Default 1 MiB.
	MaxLineBytes int
}

// DefaultMaxLineBytes is the default of Options.MaxLineBytes.
const DefaultMaxLineBytes = 1 << 20

// Block is what one read of stdin (or one spool record) produced.
type Block struct {
	// Raw holds the valid input lines exactly as read, each ending in
	// '\n': this is what the spool keeps, so a replay routes them again
	// (a removed bucket tag could not be routed twice).
	Raw []byte
	// Out holds the lines to send; it is Raw itself when nothing was
	// rewritten.
	Out   []byte
	Lines []Line
}

// Line is one valid line of a Block: its bucket and where it is in Out.
type Line struct {
	Bucket   string
	Off, End int // in Out
}

// Count is the number of lines in b.
func (b *Block) Count() int { return len(b.Lines) }

// reset empties b without reusing its memory: the buffer may still hold
// slices of the previous contents.
func (b *Block) reset() { *b = Block{} }

// Finish makes Out valid for a block whose lines were never rewritten.
func (b *Block) Finish() {
	if b.Out == nil {
		b.Out = b.Raw
	}
}

// Split yields the lines of b without their newline.
func Split(b []byte) func(func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for len(b) > 0 {
			i := 0
			for i < len(b) && b[i] != '\n' {
				i++
			}
			if !yield(b[:i]) {
				return
			}
			if i == len(b) {
				return
			}
			b = b[i+1:]
		}
	}
}
