package main

import (
	"testing"
	"time"
)

// TestPow2Counts checks that a latency lands in the smallest power-of-two
// bound of microseconds at or above it.
func TestPow2Counts(t *testing.T) {
	tests := []struct {
		latency time.Duration
		want    string
	}{
		{0, "≤1"},
		{time.Microsecond, "≤1"},
		{2 * time.Microsecond, "≤2"},
		{3 * time.Microsecond, "≤4"},
		{64 * time.Microsecond, "≤64"},
		{65 * time.Microsecond, "≤128"},
		{1500 * time.Microsecond, "≤2048"},
		{3 * time.Second, "≤4194304"},
	}
	for _, tc := range tests {
		var c pow2Counts
		c.record(tc.latency)
		got := c.labelled()
		if len(got) != 1 || got[tc.want] != 1 {
			t.Errorf("%v: buckets %v, want one in %s", tc.latency, got, tc.want)
		}
	}
	var a, b pow2Counts
	a.record(time.Microsecond)
	b.record(time.Microsecond)
	b.record(100 * time.Microsecond)
	a.merge(&b)
	if got := a.labelled(); got["≤1"] != 2 || got["≤128"] != 1 || len(got) != 2 {
		t.Errorf("merged buckets %v", got)
	}
}
