// Package statsline renders a one-point report of rotation statistics (the
// execd binary's internal_token_rotation, the controller's token_rotation)
// as line protocol with line-protocol/v2's encoder, so that every tag and
// field is escaped by the one set of rules InfluxDB parses with.
package statsline

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
)

// Encode returns one line, ending in a newline, with tags and fields in
// key order and the timestamp at precision. Tags with an empty value are
// left out. A field value is an int, an int64 or any type
// lineprotocol.NewValue takes (uint64, float64, bool, string, []byte).
//
// A key or value that line protocol cannot carry (a newline, a trailing
// backslash, invalid UTF-8, NaN) is an error naming it; nothing is
// returned then, so no half line reaches the server.
func Encode[V any](measurement string, tags map[string]string, fields map[string]V, at time.Time, precision lineprotocol.Precision) ([]byte, error) {
	var enc lineprotocol.Encoder
	enc.SetPrecision(precision)
	enc.StartLine(measurement)
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		if tags[k] != "" {
			enc.AddTag(k, tags[k])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		v, ok := value(fields[k])
		if !ok {
			return nil, fmt.Errorf("%s: field %s: %v (%T) cannot be a line-protocol value", measurement, k, fields[k], fields[k])
		}
		enc.AddField(k, v)
	}
	enc.EndLine(at)
	if err := enc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", measurement, err)
	}
	return enc.Bytes(), nil
}

func value(x any) (lineprotocol.Value, bool) {
	if i, ok := x.(int); ok {
		return lineprotocol.IntValue(int64(i)), true
	}
	return lineprotocol.NewValue(x)
}
