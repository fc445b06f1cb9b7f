package loadgen

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsCoverValuesInOrder(t *testing.T) {
	prev := -1
	for _, ns := range []uint64{0, 1, 63, 64, 65, 127, 128, 1000, 1 << 20, 1<<40 + 12345} {
		b := bucketOf(ns)
		if b < prev {
			t.Fatalf("bucket of %d is %d, below the previous %d", ns, b, prev)
		}
		prev = b
		mid := bucketMid(b)
		if diff := float64(mid) - float64(ns); diff > 0.04*float64(ns)+1 || -diff > 0.04*float64(ns)+1 {
			t.Fatalf("value %d lands in bucket %d represented by %d", ns, b, mid)
		}
	}
}

func TestQuantilesMatchSortedSamples(t *testing.T) {
	cases := []struct {
		name string
		draw func(r *rand.Rand) time.Duration
	}{
		{"uniform 10-100µs", func(r *rand.Rand) time.Duration {
			return 10*time.Microsecond + time.Duration(r.Int64N(int64(90*time.Microsecond)))
		}},
		{"heavy tail", func(r *rand.Rand) time.Duration {
			if r.IntN(100) == 0 {
				return time.Duration(r.Int64N(int64(50 * time.Millisecond)))
			}
			return time.Duration(r.Int64N(int64(200 * time.Microsecond)))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			var a, b Histogram
			var samples []time.Duration
			for i := 0; i < 100000; i++ {
				d := tc.draw(r)
				samples = append(samples, d)
				if i%2 == 0 {
					a.Record(d)
				} else {
					b.Record(d)
				}
			}
			a.Merge(&b)
			slices.Sort(samples)
			for _, q := range []float64{0.5, 0.9, 0.99} {
				exact := samples[int(q*float64(len(samples)))]
				got := a.Quantile(q)
				if diff := float64(got-exact) / float64(exact); diff > 0.05 || diff < -0.05 {
					t.Errorf("p%v = %v, exact %v", q*100, got, exact)
				}
			}
			if a.Count() != uint64(len(samples)) {
				t.Fatalf("count %d, want %d", a.Count(), len(samples))
			}
		})
	}
}
