package main

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
)

// sysbench 1.0 prints one latency percentile (--percentile) per run. With --histogram=on it also
// prints, just before its final statistics, the latency histogram of every event since the last
// checkpoint (so of the measured window alone, like the final statistics):
//
//	Latency histogram (values are in milliseconds)
//	       value  ------------- distribution ------------- count
//	       0.218 |****************                         747
//	       0.222 |**************************************** 1862
//
// Each row is one of sysbench's logarithmic buckets (1024 of them from 0.001 ms to 100 s, about 1.8 %
// apart) that holds at least one event: the bucket's value, a bar, and its count. From it any other
// percentile can be read the way sysbench reads its own.

// histBucket is one printed histogram row.
type histBucket struct {
	ValueMS float64
	Count   int64
}

var (
	reHistogramTitle = regexp.MustCompile(`^\s*Latency histogram \(values are in milliseconds\)\s*$`)
	reHistogramHead  = regexp.MustCompile(`^\s*value\s+-+ distribution -+ count\s*$`)
	reHistogramRow   = regexp.MustCompile(`^\s*(\d+\.\d+) \|\**\s+(\d+)\s*$`)
)

// parseHistogramLine folds one line into r while a histogram is being read; it reports whether the
// line belonged to the histogram. Rows must come in ascending order of value, as sysbench prints
// them (rows printed with equal values are merged): anything else means the output was not what this parser understands, and the run's
// percentiles would be wrong.
func parseHistogramLine(r *sysbenchResult, line string) (bool, error) {
	if reHistogramTitle.MatchString(line) {
		r.Histogram, r.inHistogram = []histBucket{}, true
		return true, nil
	}
	if !r.inHistogram {
		return false, nil
	}
	if reHistogramHead.MatchString(line) {
		return true, nil
	}
	m := reHistogramRow.FindStringSubmatch(line)
	if m == nil {
		// The blank line after the last row, or the statistics that follow it.
		r.inHistogram = false
		return false, nil
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return true, fmt.Errorf("sysbench histogram value %q: %w", m[1], err)
	}
	n, err := strconv.ParseInt(m[2], 10, 64)
	if err != nil {
		return true, fmt.Errorf("sysbench histogram count %q: %w", m[2], err)
	}
	if k := len(r.Histogram); k > 0 {
		prev := &r.Histogram[k-1]
		switch {
		case v < prev.ValueMS:
			return true, fmt.Errorf("sysbench histogram row %q is below the previous value %.3f", line, prev.ValueMS)
		case v == prev.ValueMS:
			// Below a millisecond neighbouring buckets differ by less than the three
			// decimals sysbench prints, so two rows can show the same value: they are
			// one bucket as far as any percentile of printed values goes.
			prev.Count += n
			return true, nil
		}
	}
	r.Histogram = append(r.Histogram, histBucket{ValueMS: v, Count: n})
	return true, nil
}

// histogramPercentile is the pct-th percentile (0 < pct <= 100) of the histogram, computed as
// sysbench computes its --percentile: the value of the first bucket at which the running count
// reaches round(total × pct / 100). It is NaN for an empty histogram. The result carries the printed
// value's three decimals; sysbench prints its own percentile with two.
func histogramPercentile(h []histBucket, pct float64) float64 {
	var total int64
	for _, b := range h {
		total += b.Count
	}
	if total <= 0 || pct <= 0 || pct > 100 {
		return math.NaN()
	}
	rank := int64(math.Floor(float64(total)*pct/100 + 0.5))
	var seen int64
	for _, b := range h {
		seen += b.Count
		if seen >= rank {
			return b.ValueMS
		}
	}
	return h[len(h)-1].ValueMS
}
