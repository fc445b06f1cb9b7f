package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// sysbenchResult is what one `sysbench ... run` reported at its end.
type sysbenchResult struct {
	Transactions  int64
	Queries       int64
	QPS           float64
	TPS           float64
	IgnoredErrors int64
	Reconnects    int64
	LatAvgMS      float64
	LatP95MS      float64
	TotalTimeS    float64
	// Histogram is the --histogram=on table of the measured window's latencies; nil when sysbench
	// printed none (runs made before the sweep asked for it).
	Histogram   []histBucket
	inHistogram bool
	// Fatal holds sysbench's FATAL lines: a run that has them aborted early and its numbers are not a
	// measurement.
	Fatal []string
	// Complete is true once the latency section was seen, i.e. sysbench printed its final statistics.
	Complete bool
	// Intervals are the --report-interval lines, in order.
	Intervals []interval
}

// interval is one `[ Ns ] thds: ... qps: ...` line: the rates over the second(s) ending at At.
type interval struct {
	At      int
	Threads int
	TPS     float64
	QPS     float64
}

// windowQPS is the mean of the interval rates over (fromS, toS], the nominal measured window. Unlike
// sysbench's final figure it leaves out the drain after --time, when threads finish transactions already
// started (at thousands of threads that drain lasts as long as a transaction's latency: many seconds).
// sysbench often skips the report due at the very moment its --time ends, and on an overloaded host
// its reporting thread misses seconds (each line's rate still covers the time since the previous
// line), so gaps are tolerated; ok is false when more than one second and more than a third of the
// window's seconds went unreported.
func (r *sysbenchResult) windowQPS(fromS, toS int) (qps, tps float64, ok bool) {
	n := 0
	for _, iv := range r.Intervals {
		if iv.At > fromS && iv.At <= toS {
			qps += iv.QPS
			tps += iv.TPS
			n++
		}
	}
	window := toS - fromS
	if n == 0 || (n < window-1 && 3*n < 2*window) {
		return 0, 0, false
	}
	return qps / float64(n), tps / float64(n), true
}

// Errors counts the errors the run saw: the ones sysbench was told to ignore, plus one per client
// thread an error killed (with errors not ignored, a thread stops at its first; sysbench then prints
// the error and a "`thread_run' function failed" line). A fatal error outside the threads counts once.
func (r *sysbenchResult) Errors() int64 {
	var died int64
	for _, l := range r.Fatal {
		if strings.Contains(l, "function failed") {
			died++
		}
	}
	if died == 0 && len(r.Fatal) > 0 {
		died = 1
	}
	return r.IgnoredErrors + died
}

var (
	reCountPerSec = regexp.MustCompile(`^\s*(transactions|queries|ignored errors|reconnects):\s+(\d+)\s+\(([\d.]+) per sec\.\)`)
	reTotalTime   = regexp.MustCompile(`^\s*total time:\s+([\d.]+)s`)
	reLatency     = regexp.MustCompile(`^\s*(avg|95th percentile):\s+([\d.]+)`)
	reInterval    = regexp.MustCompile(`^\[ (\d+)s \] thds: (\d+) tps: ([\d.]+) qps: ([\d.]+) `)
)

// parseSysbenchLine folds one line of sysbench 1.0 output into r. It is fed line by line because the
// driver also watches the stream live (for "Threads started!").
func parseSysbenchLine(r *sysbenchResult, line string) error {
	if strings.HasPrefix(strings.TrimSpace(line), "SQL statistics:") {
		// A new statistics block (a checkpoint's or the final one): only the last one describes the
		// measured window. Fatal errors stay whichever block they came in.
		// The histogram is printed just before the final block, never with a checkpoint's, so it stays.
		*r = sysbenchResult{Fatal: r.Fatal, Intervals: r.Intervals, Histogram: r.Histogram}
		return nil
	}
	if inHist, err := parseHistogramLine(r, line); inHist || err != nil {
		return err
	}
	if m := reInterval.FindStringSubmatch(line); m != nil {
		at, err1 := strconv.Atoi(m[1])
		thds, err2 := strconv.Atoi(m[2])
		tps, err3 := strconv.ParseFloat(m[3], 64)
		qps, err4 := strconv.ParseFloat(m[4], 64)
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			return fmt.Errorf("sysbench interval line %q: %w", line, err)
		}
		r.Intervals = append(r.Intervals, interval{At: at, Threads: thds, TPS: tps, QPS: qps})
		return nil
	}
	if strings.Contains(line, "FATAL:") {
		r.Fatal = append(r.Fatal, strings.TrimSpace(line))
		return nil
	}
	if m := reCountPerSec.FindStringSubmatch(line); m != nil {
		n, err := strconv.ParseInt(m[2], 10, 64)
		if err != nil {
			return fmt.Errorf("sysbench %s count %q: %w", m[1], m[2], err)
		}
		rate, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			return fmt.Errorf("sysbench %s rate %q: %w", m[1], m[3], err)
		}
		switch m[1] {
		case "transactions":
			r.Transactions, r.TPS = n, rate
		case "queries":
			r.Queries, r.QPS = n, rate
		case "ignored errors":
			r.IgnoredErrors = n
		case "reconnects":
			r.Reconnects = n
		}
		return nil
	}
	if m := reTotalTime.FindStringSubmatch(line); m != nil {
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			return fmt.Errorf("sysbench total time %q: %w", m[1], err)
		}
		r.TotalTimeS = v
		return nil
	}
	if m := reLatency.FindStringSubmatch(line); m != nil {
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			return fmt.Errorf("sysbench latency %s %q: %w", m[1], m[2], err)
		}
		if m[1] == "avg" {
			r.LatAvgMS = v
		} else {
			r.LatP95MS = v
			r.Complete = true
		}
	}
	return nil
}

// parseSysbenchOutput parses a whole sysbench output; the live driver uses parseSysbenchLine directly.
func parseSysbenchOutput(rd io.Reader) (sysbenchResult, error) {
	var r sysbenchResult
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if err := parseSysbenchLine(&r, sc.Text()); err != nil {
			return r, err
		}
	}
	if err := sc.Err(); err != nil {
		return r, fmt.Errorf("reading sysbench output: %w", err)
	}
	return r, nil
}

// sysbenchArgs builds the `sysbench TEST run` argument list for one point. Options are chosen to stay
// sane at thousands of threads: uniform keys (no hot-spot artefacts), prepared statements where the
// server supports them (as users run it), no ignored errors (an error fails the point and is counted).
func sysbenchArgs(test string, threads int, p pointTiming, db dbLogin, tables, tableSize int) []string {
	args := append(sysbenchConnArgs(test, db, tables, tableSize),
		"--threads="+strconv.Itoa(threads),
		"--time="+strconv.Itoa(p.WarmupS+p.MeasureS))
	if p.WarmupS > 0 {
		// sysbench 1.0 has no --warmup-time: it runs warm-up plus window, and a checkpoint at the end of
		// the warm-up prints and resets every counter, so the final statistics cover the window alone.
		args = append(args, "--report-checkpoints="+strconv.Itoa(p.WarmupS))
	}
	return append(args,
		// Per-second lines give the rate over exactly the measured window (see windowQPS).
		"--report-interval=1",
		"--rand-type=uniform",
		"--db-ps-mode=auto",
		"--percentile=95",
		// The histogram gives the other percentiles (p99) that sysbench 1.0 does not print itself.
		"--histogram=on",
		"run",
	)
}

// sysbenchConnArgs are the options shared by prepare and run: the test, where to connect, the data set.
func sysbenchConnArgs(test string, db dbLogin, tables, tableSize int) []string {
	return []string{
		test,
		"--db-driver=mysql",
		"--mysql-host=" + db.Host,
		"--mysql-port=" + strconv.Itoa(db.Port),
		"--mysql-user=" + db.User,
		"--mysql-password=" + db.Password,
		"--mysql-db=" + db.Database,
		"--tables=" + strconv.Itoa(tables),
		"--table-size=" + strconv.Itoa(tableSize),
	}
}

// pointTiming is the warm-up and the measured window of one point, in whole seconds as sysbench takes them.
type pointTiming struct {
	WarmupS  int
	MeasureS int
}

// dbLogin is where and as whom sysbench connects (MariaDB itself or a target in front of it).
type dbLogin struct {
	Host     string
	Port     int
	User     string
	Password string
	Database string
}
