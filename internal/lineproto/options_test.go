package lineproto

import (
	"math"
	"testing"
)

// The two ways of writing an unsigned integer, by hand on the fast paths and
// through the Encoder, must write the same value.
func TestAppendUintMatchesUintValue(t *testing.T) {
	for _, support := range []bool{false, true} {
		o := Options{UintSupport: support}
		for _, v := range []uint64{0, 1, 42, math.MaxInt64 - 1, math.MaxInt64, math.MaxInt64 + 1, math.MaxUint64} {
			got := string(o.AppendUint(nil, v))
			want := string(o.UintValue(v).AppendBytes(nil))
			if got != want {
				t.Fatalf("uint_support=%t, %d: AppendUint %q, UintValue %q", support, v, got, want)
			}
		}
	}
}

func TestBucketTagRules(t *testing.T) {
	cases := []struct {
		opts           Options
		key            string
		isBucket, drop bool
		excluded       string
	}{
		{Options{}, "bucket", false, false, ""},
		{Options{BucketTag: "bucket"}, "bucket", true, false, ""},
		{Options{BucketTag: "bucket", ExcludeBucketTag: true}, "bucket", true, true, "bucket"},
		{Options{BucketTag: "bucket", ExcludeBucketTag: true}, "host", false, false, "bucket"},
		{Options{ExcludeBucketTag: true}, "", false, false, ""},
	}
	for _, c := range cases {
		if got := c.opts.IsBucketTag([]byte(c.key)); got != c.isBucket {
			t.Errorf("%+v IsBucketTag(%q) = %t", c.opts, c.key, got)
		}
		if got := c.opts.DropsTag([]byte(c.key)); got != c.drop {
			t.Errorf("%+v DropsTag(%q) = %t", c.opts, c.key, got)
		}
		if got := c.opts.ExcludedTag(); got != c.excluded {
			t.Errorf("%+v ExcludedTag() = %q", c.opts, got)
		}
	}
}
