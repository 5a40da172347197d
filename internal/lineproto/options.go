// Package lineproto writes Telegraf metrics as InfluxDB line protocol and
// holds the rules that both deliverables apply to lines: the plugin when it
// serialises metrics, the execd binary when it checks and rewrites the
// lines Telegraf hands it. One set of byte classes (Class) and one set of
// option rules (Options) serve both, so the two cannot drift apart.
//
// The serializer is the plugin's hot path: a word-at-a-time fast path for
// the plain names nearly all metrics have, and line-protocol/v2's Encoder
// for everything else. docs/benchmarks.md has its measurements.
package lineproto

import (
	"math"
	"strconv"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
)

// Options are the output options that change what a line says, with the
// stock influxdb_v2 plugin's meanings.
type Options struct {
	// BucketTag names the tag whose value routes a line to a bucket.
	BucketTag string
	// ExcludeBucketTag leaves BucketTag out of the line that is written.
	ExcludeBucketTag bool
	// UintSupport writes unsigned integers as such ("1u"); without it they
	// become signed integers saturated at MaxInt64, as Telegraf's influx
	// serializer writes them.
	UintSupport bool
	// OmitTimestamp leaves the timestamp out, so the server assigns one.
	OmitTimestamp bool
}

// ExcludedTag is the tag key left out of every line, "" when none is.
func (o *Options) ExcludedTag() string {
	if o.ExcludeBucketTag {
		return o.BucketTag
	}
	return ""
}

// IsBucketTag reports whether key is the bucket tag.
func (o *Options) IsBucketTag(key []byte) bool {
	return o.BucketTag != "" && string(key) == o.BucketTag
}

// DropsTag reports whether the tag key is left out of the written line.
func (o *Options) DropsTag(key []byte) bool {
	return o.ExcludeBucketTag && o.IsBucketTag(key)
}

// AppendUint appends the field value an unsigned integer is written as.
func (o *Options) AppendUint(dst []byte, v uint64) []byte {
	if o.UintSupport {
		return append(strconv.AppendUint(dst, v, 10), 'u')
	}
	return append(strconv.AppendUint(dst, min(v, math.MaxInt64), 10), 'i')
}

// UintValue is AppendUint for the Encoder.
func (o *Options) UintValue(v uint64) lineprotocol.Value {
	if o.UintSupport {
		return lineprotocol.UintValue(v)
	}
	return lineprotocol.IntValue(int64(min(v, math.MaxInt64)))
}
