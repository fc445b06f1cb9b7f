package main

import (
	"math"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestParseSysbenchOutput(t *testing.T) {
	tests := []struct {
		name          string
		file          string
		wantQueries   int64
		wantQPS       float64
		wantAvg       float64
		wantP95       float64
		wantFatal     int
		wantComplete  bool
		wantIntervals int
		wantErrors    int64
	}{
		{
			// The checkpoint block (warm-up) comes first; only the final block may count.
			name: "checkpoint then final", file: "testdata/checkpoint-run.log",
			wantQueries: 40956, wantQPS: 13645.62, wantAvg: 0.29, wantP95: 0.46, wantComplete: true, wantIntervals: 4,
		},
		{
			name: "connection failure", file: "testdata/fatal-run.log",
			// Three FATAL lines, one dead thread: one error.
			wantFatal: 3, wantErrors: 1,
		},
		{
			name: "two threads time out", file: "testdata/queue-timeout.log",
			wantFatal: 5, wantErrors: 2, wantIntervals: 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.Open(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			r, err := parseSysbenchOutput(f)
			if err != nil {
				t.Fatal(err)
			}
			if r.Queries != tc.wantQueries || r.QPS != tc.wantQPS || r.LatAvgMS != tc.wantAvg || r.LatP95MS != tc.wantP95 {
				t.Errorf("got queries %d qps %v avg %v p95 %v; want %d %v %v %v",
					r.Queries, r.QPS, r.LatAvgMS, r.LatP95MS, tc.wantQueries, tc.wantQPS, tc.wantAvg, tc.wantP95)
			}
			if len(r.Fatal) != tc.wantFatal || r.Complete != tc.wantComplete || len(r.Intervals) != tc.wantIntervals {
				t.Errorf("got %d fatal, complete %v, %d intervals; want %d, %v, %d",
					len(r.Fatal), r.Complete, len(r.Intervals), tc.wantFatal, tc.wantComplete, tc.wantIntervals)
			}
			if r.Errors() != tc.wantErrors {
				t.Errorf("Errors() = %d, want %d", r.Errors(), tc.wantErrors)
			}
		})
	}
}

func TestParseSysbenchLineCounters(t *testing.T) {
	var r sysbenchResult
	for _, l := range []string{
		"    ignored errors:                      7      (0.70 per sec.)",
		"    reconnects:                          3      (0.30 per sec.)",
		"    transactions:                        100  (10.00 per sec.)",
		"    total time:                          10.0012s",
	} {
		if err := parseSysbenchLine(&r, l); err != nil {
			t.Fatal(err)
		}
	}
	if r.IgnoredErrors != 7 || r.Reconnects != 3 || r.TPS != 10 || r.TotalTimeS != 10.0012 || r.Errors() != 7 {
		t.Errorf("got %+v", r)
	}
}

func TestWindowQPS(t *testing.T) {
	iv := func(at int, qps float64) interval { return interval{At: at, Threads: 8, QPS: qps, TPS: qps / 10} }
	tests := []struct {
		name      string
		intervals []interval
		from, to  int
		wantQPS   float64
		wantOK    bool
	}{
		{"warm-up and drain excluded", []interval{iv(1, 1), iv(2, 1), iv(3, 10), iv(4, 20), iv(5, 30), iv(6, 1000)}, 2, 5, 20, true},
		{"last report missing is tolerated", []interval{iv(3, 10), iv(4, 20)}, 2, 5, 15, true},
		{"a third missing is tolerated", []interval{iv(3, 10), iv(5, 30)}, 2, 5, 20, true},
		{"more than a third missing is not", []interval{iv(3, 10)}, 2, 5, 0, false},
		{"nothing reported", nil, 0, 5, 0, false},
		{"short window, last report missing", []interval{iv(2, 40)}, 1, 3, 40, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := sysbenchResult{Intervals: tc.intervals}
			qps, tps, ok := r.windowQPS(tc.from, tc.to)
			if ok != tc.wantOK || qps != tc.wantQPS || (ok && tps != tc.wantQPS/10) {
				t.Errorf("windowQPS = %v, %v, %v; want %v, %v, %v", qps, tps, ok, tc.wantQPS, tc.wantQPS/10, tc.wantOK)
			}
		})
	}
}

func TestSysbenchArgs(t *testing.T) {
	db := dbLogin{Host: "127.0.0.1", Port: 4000, User: "u", Password: "p", Database: "d"}
	tests := []struct {
		name     string
		timing   pointTiming
		want     []string
		unwanted string
	}{
		{"warm-up becomes a checkpoint", pointTiming{WarmupS: 5, MeasureS: 15},
			[]string{"--time=20", "--report-checkpoints=5", "--threads=64", "--mysql-port=4000", "--rand-type=uniform", "--db-ps-mode=auto", "--report-interval=1"}, "--mysql-ignore-errors"},
		{"no warm-up, no checkpoint", pointTiming{WarmupS: 0, MeasureS: 15},
			[]string{"--time=15"}, "--report-checkpoints"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := sysbenchArgs("oltp_read_only", 64, tc.timing, db, 1, 1000)
			if args[0] != "oltp_read_only" || args[len(args)-1] != "run" {
				t.Errorf("args must start with the test and end with run: %v", args)
			}
			for _, w := range tc.want {
				if !slices.Contains(args, w) {
					t.Errorf("missing %s in %v", w, args)
				}
			}
			for _, a := range args {
				if strings.HasPrefix(a, tc.unwanted) {
					t.Errorf("unexpected %s in %v", a, args)
				}
			}
		})
	}
}

func FuzzParseSysbenchLine(f *testing.F) {
	b, err := os.ReadFile("testdata/checkpoint-run.log")
	if err != nil {
		f.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f.Add(l)
	}
	f.Add("[ 99999999999999999999s ] thds: 1 tps: 1 qps: 1 (")
	f.Add("    queries:  99999999999999999999 (1.0 per sec.)")
	f.Fuzz(func(t *testing.T, line string) {
		var r sysbenchResult
		if err := parseSysbenchLine(&r, line); err != nil {
			return
		}
		if math.IsNaN(r.QPS) || r.Queries < 0 || len(r.Intervals) > 1 || len(r.Fatal) > 1 {
			t.Fatalf("one line produced %+v", r)
		}
	})
}
