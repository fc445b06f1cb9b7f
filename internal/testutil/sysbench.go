package testutil

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sysbenchStartAllowance is added to a run's --time: connecting thousands of threads and sysbench's
// own start-up and report happen outside the measured window.
const sysbenchStartAllowance = 2 * time.Minute

// sysbenchDefaultTime is sysbench's own --time default.
const sysbenchDefaultTime = 10 * time.Second

// SysbenchResult holds the totals of one `sysbench ... run`, as its final report gives them.
type SysbenchResult struct {
	Reads, Writes, Other int64   // "queries performed" by kind
	Queries              int64   // all queries
	QPS                  float64 // queries per second
	Transactions         int64   // events of the OLTP scripts
	TPS                  float64
	Errors               int64 // "ignored errors" (only those --mysql-ignore-errors lets through)
	Reconnects           int64
	TotalTime            time.Duration
	Events               int64
	LatencyMin           time.Duration
	LatencyAvg           time.Duration
	LatencyMax           time.Duration
	Percentile           int           // which percentile LatencyPercentile is; 95 unless --percentile
	LatencyPercentile    time.Duration // e.g. p95
}

// SysbenchConnArgs are the sysbench options that point its MySQL driver at addr.
func SysbenchConnArgs(addr, user, password, database string) []string {
	host, port, _ := strings.Cut(addr, ":")
	return []string{"--mysql-host=" + host, "--mysql-port=" + port, "--mysql-user=" + user,
		"--mysql-password=" + password, "--mysql-db=" + database}
}

// RunSysbench runs `sysbench args...` and, for the run command, parses its report. It returns the parsed totals even when
// sysbench exits non-zero after reporting (err is then non-nil too), and its combined output always.
// The run is killed once its --time plus a start-up allowance has passed; --time=0 (no limit) is
// refused.
func RunSysbench(ctx context.Context, args ...string) (SysbenchResult, string, error) {
	limit, err := sysbenchTimeLimit(args)
	if err != nil {
		return SysbenchResult{}, "", err
	}
	bin, err := exec.LookPath("sysbench")
	if err != nil {
		return SysbenchResult{}, "", fmt.Errorf("sysbench not installed (scripts/mariadb.sh deps --sysbench installs it): %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, limit+sysbenchStartAllowance)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run()
	if ctx.Err() != nil {
		return SysbenchResult{}, out.String(), fmt.Errorf("sysbench %s: killed after %v: %w",
			strings.Join(args, " "), limit+sysbenchStartAllowance, ctx.Err())
	}
	if sysbenchCommand(args) != "run" {
		// prepare, cleanup and help print no report.
		if runErr != nil {
			return SysbenchResult{}, out.String(), fmt.Errorf("sysbench %s: %w", strings.Join(args, " "), runErr)
		}
		return SysbenchResult{}, out.String(), nil
	}
	res, parseErr := ParseSysbench(out.String())
	if runErr != nil && parseErr != nil {
		// The parse error quotes sysbench's FATAL lines, which say why it failed.
		return res, out.String(), fmt.Errorf("sysbench %s: %w: %w", strings.Join(args, " "), runErr, parseErr)
	}
	if runErr != nil {
		return res, out.String(), fmt.Errorf("sysbench %s: %w", strings.Join(args, " "), runErr)
	}
	if parseErr != nil {
		return res, out.String(), fmt.Errorf("sysbench %s: %w", strings.Join(args, " "), parseErr)
	}
	return res, out.String(), nil
}

// Sysbench runs sysbench (see RunSysbench) and fails the test, showing sysbench's output, if it
// fails or (for the run command) prints no report; for other commands the result is zero.
func Sysbench(t testing.TB, args ...string) SysbenchResult {
	t.Helper()
	res, out, err := RunSysbench(context.Background(), args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return res
}

// sysbenchCommand is sysbench's command word (run, prepare, cleanup...): its last non-option argument.
func sysbenchCommand(args []string) string {
	for i := len(args) - 1; i >= 0; i-- {
		if !strings.HasPrefix(args[i], "-") {
			return args[i]
		}
	}
	return ""
}

// sysbenchTimeLimit reads --time from args the way sysbench does (the last one wins).
func sysbenchTimeLimit(args []string) (time.Duration, error) {
	limit := sysbenchDefaultTime
	for _, a := range args {
		v, ok := strings.CutPrefix(a, "--time=")
		if !ok {
			continue
		}
		secs, err := strconv.Atoi(v)
		if err != nil || secs < 0 {
			return 0, fmt.Errorf("sysbench --time=%q is not a number of seconds", v)
		}
		if secs == 0 {
			return 0, errors.New("sysbench --time=0 would run without a time limit; give --time=N")
		}
		limit = time.Duration(secs) * time.Second
	}
	return limit, nil
}

// ParseSysbench extracts the totals from the final report of sysbench 1.0 (the "SQL statistics",
// "General statistics" and "Latency (ms)" sections); per-second interim lines are ignored. It fails
// when the report is absent, as it is when sysbench aborts, and then quotes sysbench's FATAL lines.
func ParseSysbench(output string) (SysbenchResult, error) {
	var (
		res                    SysbenchResult
		section                string
		sawQueries, sawTotTime bool
		fatal                  []string
	)
	sc := bufio.NewScanner(strings.NewReader(output))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "FATAL:") {
			fatal = append(fatal, line)
			continue
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok || strings.HasPrefix(line, "[") {
			continue
		}
		value = strings.TrimSpace(value)
		if value == "" {
			// A section header such as "SQL statistics:" or "Latency (ms):".
			section = key
			continue
		}
		var err error
		switch {
		case section == "Latency (ms)":
			err = parseLatency(&res, key, value)
		case section == "Threads fairness":
			// Per-thread spread; not a total.
		default:
			switch key {
			case "read":
				res.Reads, err = leadingInt(value)
			case "write":
				res.Writes, err = leadingInt(value)
			case "other":
				res.Other, err = leadingInt(value)
			case "transactions":
				res.Transactions, res.TPS, err = countAndRate(value)
			case "queries":
				res.Queries, res.QPS, err = countAndRate(value)
				sawQueries = err == nil
			case "ignored errors":
				res.Errors, _, err = countAndRate(value)
			case "reconnects":
				res.Reconnects, _, err = countAndRate(value)
			case "total time":
				res.TotalTime, err = seconds(value)
				sawTotTime = err == nil
			case "total number of events":
				res.Events, err = leadingInt(value)
			}
		}
		if err != nil {
			return SysbenchResult{}, fmt.Errorf("sysbench report line %q: %w", line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return SysbenchResult{}, fmt.Errorf("reading sysbench output: %w", err)
	}
	if !sawQueries || !sawTotTime {
		if len(fatal) > 0 {
			return SysbenchResult{}, fmt.Errorf("sysbench printed no report: %s", strings.Join(fatal, "; "))
		}
		return SysbenchResult{}, errors.New("sysbench printed no report (no queries or total time line)")
	}
	return res, nil
}

func parseLatency(res *SysbenchResult, key, value string) error {
	var dst *time.Duration
	switch key {
	case "min":
		dst = &res.LatencyMin
	case "avg":
		dst = &res.LatencyAvg
	case "max":
		dst = &res.LatencyMax
	case "sum":
		return nil
	default:
		pct, ok := strings.CutSuffix(key, "th percentile")
		if !ok {
			return nil
		}
		n, err := strconv.Atoi(pct)
		if err != nil || n <= 0 || n > 100 {
			return fmt.Errorf("percentile %q is not 1-100", pct)
		}
		res.Percentile = n
		dst = &res.LatencyPercentile
	}
	ms, err := leadingFloat(value)
	if err != nil {
		return err
	}
	*dst = time.Duration(ms * float64(time.Millisecond))
	return nil
}

// countAndRate parses "42544  (14148.89 per sec.)".
func countAndRate(value string) (int64, float64, error) {
	n, err := leadingInt(value)
	if err != nil {
		return 0, 0, err
	}
	_, rest, ok := strings.Cut(value, "(")
	if !ok {
		return 0, 0, errors.New("no per-second rate")
	}
	rate, err := leadingFloat(strings.TrimSpace(rest))
	if err != nil {
		return 0, 0, fmt.Errorf("per-second rate: %w", err)
	}
	return n, rate, nil
}

// seconds parses "3.0065s".
func seconds(value string) (time.Duration, error) {
	s, err := leadingFloat(strings.TrimSuffix(firstField(value), "s"))
	if err != nil {
		return 0, err
	}
	return time.Duration(s * float64(time.Second)), nil
}

func firstField(value string) string {
	f := strings.Fields(value)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

func leadingInt(value string) (int64, error) {
	n, err := strconv.ParseInt(firstField(value), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("count: %w", err)
	}
	if n < 0 {
		return 0, fmt.Errorf("count %d is negative", n)
	}
	return n, nil
}

// leadingFloat accepts only finite, non-negative values of a size a Duration can hold.
func leadingFloat(value string) (float64, error) {
	f, err := strconv.ParseFloat(firstField(value), 64)
	if err != nil {
		return 0, fmt.Errorf("number: %w", err)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e9 {
		return 0, fmt.Errorf("number %v out of range", f)
	}
	return f, nil
}
