package main

import (
	"math"
	"os"
	"strings"
	"testing"
)

func TestHistogramPercentile(t *testing.T) {
	// 100 events: 50 at 1 ms, 45 at 2 ms, 4 at 3 ms, 1 at 10 ms.
	h := []histBucket{{1, 50}, {2, 45}, {3, 4}, {10, 1}}
	tests := []struct {
		name string
		h    []histBucket
		pct  float64
		want float64
	}{
		{"median falls in the first bucket", h, 50, 1},
		{"rank just past the first bucket", h, 51, 2},
		{"p95 is the last event of the second bucket", h, 95, 2},
		{"p99", h, 99, 3},
		{"p100 is the largest bucket", h, 100, 10},
		// sysbench rounds the rank: 3 events × 50 % = 1.5 → 2, the second event.
		{"rank rounds half up", []histBucket{{1, 1}, {2, 1}, {3, 1}}, 50, 2},
		{"a tiny percentile is the first bucket", h, 0.001, 1},
		{"one event", []histBucket{{0.5, 1}}, 99, 0.5},
		{"empty", nil, 99, math.NaN()},
		{"only empty rows", []histBucket{{1, 0}}, 99, math.NaN()},
		{"zero percentile", h, 0, math.NaN()},
		{"above 100", h, 101, math.NaN()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := histogramPercentile(tc.h, tc.pct)
			if got != tc.want && !(math.IsNaN(got) && math.IsNaN(tc.want)) {
				t.Errorf("histogramPercentile(%v, %v) = %v, want %v", tc.h, tc.pct, got, tc.want)
			}
		})
	}
}

func TestParseHistogram(t *testing.T) {
	const title = "Latency histogram (values are in milliseconds)"
	const head = "       value  ------------- distribution ------------- count"
	tests := []struct {
		name    string
		lines   []string
		want    []histBucket
		wantErr string
		// open says the parser still expects rows after the last line.
		open bool
	}{
		{
			name: "rows end at the blank line",
			lines: []string{title, head,
				"       0.218 |****************                         747",
				"       0.222 |**************************************** 1862",
				"       4.329 |                                         1",
				" ", "    queries:                             10  (1.00 per sec.)"},
			want: []histBucket{{0.218, 747}, {0.222, 1862}, {4.329, 1}},
		},
		{
			name:  "a long tail value",
			lines: []string{title, head, "   99999.999 |*                                        12"},
			want:  []histBucket{{99999.999, 12}}, open: true,
		},
		{
			name:  "rows without a title are not a histogram",
			lines: []string{"       0.218 |****                                     747"},
		},
		{
			name:    "descending rows are refused",
			lines:   []string{title, head, "       0.300 |*                                        5", "       0.200 |*                                        5"},
			wantErr: "below the previous value",
		},
		{
			// Seen in real runs: sub-millisecond buckets print with equal values.
			name: "rows printed with equal values are one bucket",
			lines: []string{title, head,
				"       0.031 |*                                        5",
				"       0.031 |**                                       9",
				"       0.032 |*                                        4", " "},
			want: []histBucket{{0.031, 14}, {0.032, 4}},
		},
		{
			name:    "a count too large",
			lines:   []string{title, head, "       0.300 |*                                        99999999999999999999"},
			wantErr: "histogram count",
		},
		{
			name: "a second histogram replaces the first",
			lines: []string{title, head, "       0.300 |*                                        5", " ",
				title, head, "       0.100 |*                                        7"},
			want: []histBucket{{0.1, 7}}, open: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r sysbenchResult
			var err error
			for _, l := range tc.lines {
				if err = parseSysbenchLine(&r, l); err != nil {
					break
				}
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Histogram) != len(tc.want) {
				t.Fatalf("histogram = %v, want %v", r.Histogram, tc.want)
			}
			for i := range tc.want {
				if r.Histogram[i] != tc.want[i] {
					t.Errorf("row %d = %v, want %v", i, r.Histogram[i], tc.want[i])
				}
			}
			if r.inHistogram != tc.open {
				t.Errorf("still reading rows = %v, want %v", r.inHistogram, tc.open)
			}
		})
	}
}

// The real output of `sysbench oltp_point_select ... --report-checkpoints=2 --histogram=on run`
// (sysbench 1.0.20, through the proxy): the histogram must cover the measured window only, like the
// final statistics, and give back sysbench's own p95 when asked for it.
func TestHistogramFromRealRun(t *testing.T) {
	f, err := os.Open("testdata/histogram-run.log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := parseSysbenchOutput(f)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Complete || len(r.Histogram) < 10 {
		t.Fatalf("complete %v, %d histogram rows; want a finished run with a histogram", r.Complete, len(r.Histogram))
	}
	var events int64
	for _, b := range r.Histogram {
		events += b.Count
	}
	// sysbench prints the histogram a moment before its final counts; events finishing in between
	// appear only in the counts. The checkpoint's (warm-up's) events must not be in it at all.
	if events > r.Transactions || events < r.Transactions-r.Transactions/100 {
		t.Errorf("histogram holds %d events, final statistics %d transactions", events, r.Transactions)
	}
	p95 := histogramPercentile(r.Histogram, 95)
	if math.Abs(p95-r.LatP95MS) > 0.01 {
		t.Errorf("p95 from the histogram %.3f, sysbench's own %.2f", p95, r.LatP95MS)
	}
	p99 := histogramPercentile(r.Histogram, 99)
	if !(p99 >= p95) || p99 > r.Histogram[len(r.Histogram)-1].ValueMS {
		t.Errorf("p99 %.3f must lie between p95 %.3f and the largest bucket", p99, p95)
	}
}

func FuzzParseSysbenchOutput(f *testing.F) {
	for _, name := range []string{"testdata/histogram-run.log", "testdata/checkpoint-run.log"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("Latency histogram (values are in milliseconds)\n   1.000 |* 3\n   0.500 |* 1\n")
	f.Fuzz(func(t *testing.T, out string) {
		r, err := parseSysbenchOutput(strings.NewReader(out))
		if err != nil {
			return
		}
		for i := 1; i < len(r.Histogram); i++ {
			if !(r.Histogram[i].ValueMS > r.Histogram[i-1].ValueMS) {
				t.Fatalf("rows out of order: %v", r.Histogram)
			}
		}
		if p := histogramPercentile(r.Histogram, 99); !math.IsNaN(p) &&
			(p < r.Histogram[0].ValueMS || p > r.Histogram[len(r.Histogram)-1].ValueMS) {
			t.Fatalf("p99 %v outside the histogram %v", p, r.Histogram)
		}
	})
}
