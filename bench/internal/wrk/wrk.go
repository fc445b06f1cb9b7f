// Package wrk runs the wrk HTTP load generator pinned to CPUs and reads
// its summary. The HTTP benches (bench/http, bench/httpproxy) measure
// through it, so that they count requests, latency and errors the same way.
// It only starts wrk and parses text: it never talks HTTP itself.
package wrk

import (
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/scalestack/scalestack/bench/internal/runner"
)

// Result is what one wrk run reports.
type Result struct {
	Requests  float64
	Seconds   float64
	ReqPerSec float64
	P50, P99  time.Duration
	Errors    string // non-2xx responses or socket errors, when any
}

// Run runs `wrk --latency -tTHREADS -cCONNS -dD URL` pinned to loadCPUs
// (taskset's list form) and parses its summary.
func Run(loadCPUs string, threads, conns int, url string, d time.Duration) (Result, error) {
	args := []string{"-c", loadCPUs, "wrk", "--latency", "-t" + strconv.Itoa(threads),
		"-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(int(d.Seconds())) + "s", url}
	out, err := exec.Command("taskset", args...).CombinedOutput()
	if err != nil {
		return Result{}, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	return Parse(string(out))
}

var (
	reRequests = regexp.MustCompile(`(\d+) requests in ([\d.]+)(ms|s|m)`)
	reLatency  = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s)`)
	reErrors   = regexp.MustCompile(`(?m)^\s*(Non-2xx or 3xx responses: \d+|Socket errors: .*)$`)
)

// Parse reads wrk's summary (with --latency).
func Parse(out string) (Result, error) {
	m := reRequests.FindStringSubmatch(out)
	if m == nil {
		return Result{}, fmt.Errorf("wrk printed no request count:\n%s", out)
	}
	var r Result
	r.Requests, _ = strconv.ParseFloat(m[1], 64)
	r.Seconds = parseDur(m[2], m[3]).Seconds()
	if r.Seconds > 0 {
		r.ReqPerSec = r.Requests / r.Seconds
	}
	for _, l := range reLatency.FindAllStringSubmatch(out, -1) {
		v := parseDur(l[2], l[3])
		if l[1] == "50" {
			r.P50 = v
		} else {
			r.P99 = v
		}
	}
	for _, e := range reErrors.FindAllStringSubmatch(out, -1) {
		r.Errors += strings.TrimSpace(e[1]) + "; "
	}
	return r, nil
}

func parseDur(v, unit string) time.Duration {
	f, _ := strconv.ParseFloat(v, 64)
	switch unit {
	case "us":
		return time.Duration(f * float64(time.Microsecond))
	case "ms":
		return time.Duration(f * float64(time.Millisecond))
	case "m":
		return time.Duration(f * float64(time.Minute))
	}
	return time.Duration(f * float64(time.Second))
}

// Load is how wrk loads a server: pinned to CPUs, with Threads and Conns
// (keep-alive), a Warmup run then a measured run of Duration.
type Load struct {
	CPUs             string
	Threads, Conns   int
	Warmup, Duration time.Duration
}

// MeasureServer starts argv (a server that listens on addr) pinned to
// cpus, loads url with l (a warm-up run, then the measured one) and
// returns the measured run and the server's CPU seconds (user+system)
// over it. The server is stopped before it returns.
func MeasureServer(name, cpus string, argv []string, addr, url string, l Load) (Result, float64, error) {
	p, err := runner.Start(name, cpus, argv...)
	if err != nil {
		return Result{}, 0, err
	}
	defer p.Stop()
	if err := runner.WaitDial("tcp", addr, 5*time.Second); err != nil {
		return Result{}, 0, fmt.Errorf("%s: %w; stderr: %s", name, err, p.Stderr())
	}
	if _, err := Run(l.CPUs, l.Threads, l.Conns, url, l.Warmup); err != nil {
		return Result{}, 0, err
	}
	before, err := runner.CPUSeconds(p.Pid())
	if err != nil {
		return Result{}, 0, err
	}
	r, err := Run(l.CPUs, l.Threads, l.Conns, url, l.Duration)
	if err != nil {
		return Result{}, 0, err
	}
	after, err := runner.CPUSeconds(p.Pid())
	if err != nil {
		return Result{}, 0, err
	}
	return r, after - before, nil
}
