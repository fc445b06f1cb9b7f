package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestParseVariants(t *testing.T) {
	got, err := parseVariants("1@0.5, 2@1.0,1@1,direct")
	if err != nil {
		t.Fatal(err)
	}
	want := []variant{{1, 0.5}, {2, 1.0}, {1, 1.0}, {}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("variant %d: %v, want %v", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"", "2", "0@1", "1@0", "1@-1", "x@1", "1@y", "1@0.5,"} {
		if _, err := parseVariants(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseMetrics(t *testing.T) {
	page := `# HELP scalestack_loop_events_total I/O events each loop handled.
# TYPE scalestack_loop_events_total counter
scalestack_loop_events_total{loop="0"} 1234
scalestack_loop_events_total{loop="1"} 4.5e+03
scalestack_mysqlproxy_backends_adopted_total 17
not a number here x
`
	m, err := parseMetrics(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	if m[`scalestack_loop_events_total{loop="1"}`] != 4500 || m["scalestack_mysqlproxy_backends_adopted_total"] != 17 {
		t.Fatalf("parsed %v", m)
	}
	if got := sumSeries(m, "scalestack_loop_events_total"); got != 5734 {
		t.Errorf("sum over loops %v, want 5734", got)
	}
	if got := sumSeries(m, "scalestack_loop_events"); got != 0 {
		t.Errorf("a prefix of a name summed %v", got)
	}
}

func TestProxyCPUsAreTheLastOnes(t *testing.T) {
	one, two := proxyCPUs(1), proxyCPUs(2)
	if strings.Contains(one, ",") || (two != "0" && !strings.HasSuffix(two, one)) {
		t.Errorf("1 loop on %q, 2 loops on %q", one, two)
	}
}

func TestRatioPairs(t *testing.T) {
	vs := []variant{{1, 0.5}, {}, {2, 1.0}, {1, 1.0}, {1, 0.25}, {2, 0.5}}
	var got []string
	for _, p := range ratioPairs(vs) {
		got = append(got, p[0].String()+" / "+p[1].String())
	}
	want := []string{
		"2 loop(s) @ 1 CPU / 1 loop(s) @ 0.5 CPU",
		"2 loop(s) @ 0.5 CPU / 1 loop(s) @ 0.25 CPU",
		"1 loop(s) @ 0.5 CPU / 1 loop(s) @ 0.25 CPU",
		"2 loop(s) @ 1 CPU / 2 loop(s) @ 0.5 CPU",
		"1 loop(s) @ 1 CPU / 1 loop(s) @ 0.5 CPU",
		"2 loop(s) @ 1 CPU / 1 loop(s) @ 1 CPU",
		"2 loop(s) @ 0.5 CPU / 1 loop(s) @ 0.5 CPU",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("pairs\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if target(vs[2], vs[0]) != "≥ 1.8×" || target(vs[3], vs[0]) != "" || target(vs[2], vs[3]) != "" ||
		target(variant{2, 0.5}, variant{1, 0.25}) != "≥ 1.8×" || target(vs[1], vs[1]) != "" {
		t.Error("the acceptance target is on the wrong ratio")
	}
}

// TestReportComputesRatiosPerRound renders a report of made-up runs and
// checks the figures a reader acts on: medians, CPU per query, the share
// of the quota used, and the ratio per round.
func TestReportComputesRatiosPerRound(t *testing.T) {
	s := &settings{rounds: 3, conns: 256, quotaPeriod: 100 * time.Millisecond, backendConns: []int{16}, variants: []variant{{1, 0.5}, {2, 1.0}, {}},
		warmup: time.Second, duration: 5 * time.Second, loadWorkers: 1, io: "epoll", commandLine: "go run ./loops"}
	mk := func(round int, qps, proxyCPU float64) run {
		r := run{Round: round, ProxyCPU: proxyCPU, FakeCPU: 0.5, SoftirqCPU: 1, Window: 5, Periods: 500, Throttled: 450,
			Metrics: map[string]float64{"scalestack_mysqlproxy_backends_adopted_total": qps * 5 / 10}}
		r.MsgsPerSec, r.Msgs = qps, uint64(qps*5)
		return r
	}
	runs := map[string][]run{
		"1@0.5/b16": {mk(0, 10000, 2.5), mk(1, 12000, 2.5), mk(2, 11000, 2.5)},
		"2@1/b16":   {mk(0, 19000, 5), mk(1, 18000, 5), mk(2, 23100, 5)},
		"direct":    {mk(0, 80000, 0), mk(1, 90000, 0), mk(2, 70000, 0)},
	}
	all := []contender{{variant{1, 0.5}, 16, false}, {variant{2, 1.0}, 16, false}, {variant{}, 0, false}}
	var buf bytes.Buffer
	report(&buf, s, all, runs, map[string]string{}, time.Now(), "1 1 1")
	out := buf.String()
	for _, want := range []string{
		"| 1 loop(s) @ 0.5 CPU | 11000 |",
		"CFS quota (100ms period)",
		"| 100 % | 90 % | 45.5 |", // 2.5 CPU-s over 5 s at 0.5 CPU; 450 of 500 periods; 2.5 s / 55000 q
		"| 2 loop(s) @ 1 CPU | 19000 |",
		"| 100.0 |", // moved per 1000 queries
		"| 2 loop(s) @ 1 CPU / 1 loop(s) @ 0.5 CPU | 1.73× | **1.90×** | 1.90, 1.50, 2.10 | 100 % / 100 % | ≥ 1.8× |",
		"| direct (no proxy) | 80000 | 0.0 | 0.0 | — | — | — | 0.0 | 1.2 | 0.20 |",
		"| 100.0 | 0.0 | 0 | 0 | — |", // moved, tasks, waits, iterations per 1000 queries; one loop // 0.5 CPU-s of the fake over 400000 queries; 1 s of softirq over 5
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestParseHostCPU(t *testing.T) {
	got := parseHostCPU("cpu  1138068 46155 520556 414524 23488 0 52882 0 0 0")
	if want := (hostCPU{procs: 17047.79, softirq: 528.82}); got.procs < want.procs-0.01 || got.procs > want.procs+0.01 || got.softirq != want.softirq {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if (parseHostCPU("cpu0 1 2 3 4 5 6 7") != hostCPU{}) || (parseHostCPU("cpu 1 2") != hostCPU{}) {
		t.Error("parsed a line that is not the total or too short")
	}
}

// TestReportComparesTwoBuilds checks the rows and ratios of a run with
// -other-bin: each build's own ratios, and other / this per variant.
func TestReportComparesTwoBuilds(t *testing.T) {
	s := &settings{rounds: 2, conns: 256, backendConns: []int{16}, variants: []variant{{1, 0.5}, {2, 1.0}},
		warmup: time.Second, duration: 5 * time.Second, loadWorkers: 1, io: "epoll", commandLine: "go run ./loops",
		otherBin: "/tmp/candidate", otherName: "candidate"}
	mk := func(round int, qps float64) run {
		r := run{Round: round, ProxyCPU: 1, Window: 5, Metrics: map[string]float64{}}
		r.MsgsPerSec, r.Msgs = qps, uint64(qps*5)
		return r
	}
	runs := map[string][]run{
		"1@0.5/b16":       {mk(0, 10000), mk(1, 10000)},
		"2@1/b16":         {mk(0, 5000), mk(1, 6000)},
		"other:1@0.5/b16": {mk(0, 10000), mk(1, 11000)},
		"other:2@1/b16":   {mk(0, 20000), mk(1, 19800)},
	}
	var all []contender
	for _, other := range []bool{false, true} {
		all = append(all, contender{variant{1, 0.5}, 16, other}, contender{variant{2, 1.0}, 16, other})
	}
	var buf bytes.Buffer
	report(&buf, s, all, runs, map[string]string{}, time.Now(), "1 1 1")
	out := buf.String()
	for _, want := range []string{
		"| 2 loop(s) @ 1 CPU [candidate] | 19900 |",
		"| 2 loop(s) @ 1 CPU / 1 loop(s) @ 0.5 CPU | 0.55× | **0.55×** | 0.50, 0.60 | 20 % / 40 % | ≥ 1.8× |",
		"| 2 loop(s) @ 1 CPU [other] / 1 loop(s) @ 0.5 CPU [other] | 1.90× | **1.90×** | 2.00, 1.80 | 20 % / 40 % | ≥ 1.8× |",
		"| 2 loop(s) @ 1 CPU [other] / 2 loop(s) @ 1 CPU | 3.62× | **3.65×** | 4.00, 3.30 | 20 % / 20 % |  |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}
