package main

import (
	"bytes"
	"encoding/csv"
	"math"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name string
		in   []float64
		want float64
	}{
		{"odd", []float64{3, 1, 2}, 2},
		{"even", []float64{4, 1, 3, 2}, 2.5},
		{"NaN ignored", []float64{nan, 5, nan}, 5},
		{"all NaN", []float64{nan}, nan},
		{"empty", nil, nan},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := median(tc.in)
			if got != tc.want && !(math.IsNaN(got) && math.IsNaN(tc.want)) {
				t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func okPoint(target string, threads int, qps float64) point {
	return point{Test: "oltp_read_only", Threads: threads, Target: target, Rep: 1, Status: "ok", QPS: qps,
		TPS: qps / 16, LatAvgMS: 1, LatP95MS: 2, TargetCPUPerKQ: math.NaN(), DBCPUPerKQ: 0.05, TargetRSSKB: -1,
		BackendConnsMax: int64(threads), ConnectS: 0.1, WindowS: 15, SysbenchQPS: qps, OtherCPUPct: 3}
}

func TestSummarizeSkipsFailedRunsButCountsTheirErrors(t *testing.T) {
	failed := point{Test: "oltp_read_only", Threads: 16, Target: targetDirect, Rep: 3, Status: "failed: FATAL: boom",
		Errors: 2, QPS: math.NaN(), TargetRSSKB: -1, BackendConnsMax: 20}
	pts := []point{okPoint(targetDirect, 16, 100), okPoint(targetDirect, 16, 300), failed}
	c := summarize(pts)[cellKey{"oltp_read_only", 16, targetDirect}]
	if c.Runs != 3 || c.OK != 2 || c.QPS != 200 || c.Errors != 2 || c.BackendConnsMax != 20 || len(c.Failures) != 1 {
		t.Errorf("cell = %+v", c)
	}
	if !math.IsNaN(c.TargetRSSMB) {
		t.Errorf("direct has no middle process, yet RSS = %v", c.TargetRSSMB)
	}
}

func TestWriteMarkdown(t *testing.T) {
	hp := okPoint(targetHAProxy, 16, 50)
	hp.TargetCPUPerKQ, hp.TargetRSSKB = 0.04, 14*1024
	pts := []point{okPoint(targetDirect, 16, 100), hp, okPoint(targetDirect, 1024, 12345)}
	meta := reportMeta{Title: "T", Command: "bench/run.sh --quick", Started: time.Unix(0, 0), Finished: time.Unix(65, 0), PNG: "x.png"}
	var b bytes.Buffer
	if err := writeMarkdown(&b, meta, pts, []string{"oltp_read_only"}, []int{16, 1024}, []string{targetDirect, targetHAProxy}); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"bench/run.sh --quick",
		"![QPS by client threads](x.png)",
		"| 16 | haproxy | 1/1 | 50 | 1.00 | 2.00 | 0 | 0 | 0.0400 | 0.0500 | 14.0 | 16 | 3 |",
		"| 1024 | direct | 1/1 | 12,345 |",
		"| threads | haproxy / direct |",
		"| 16 | 0.50 |",
		"| 1024 | – |", // no HAProxy run at 1024: no ratio, not a zero
		"(1m5s)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "proxy-epoll") {
		t.Error("ratios name a target that was not measured")
	}
}

func TestCSVSinkRoundTrip(t *testing.T) {
	var b bytes.Buffer
	s, err := newCSVSink(&b)
	if err != nil {
		t.Fatal(err)
	}
	p := okPoint(targetDirect, 8192, 22052.5)
	p.Status = `failed: FATAL: "quoted", with comma`
	if err := s.add(p); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || len(recs[0]) != len(csvHeader) || len(recs[1]) != len(csvHeader) {
		t.Fatalf("got %d records of widths %d/%d", len(recs), len(recs[0]), len(recs[1]))
	}
	col := map[string]string{}
	for i, h := range recs[0] {
		col[h] = recs[1][i]
	}
	if col["threads"] != "8192" || col["qps"] != "22052.50" || col["status"] != p.Status ||
		col["target_cpu_s_per_kq"] != "" || col["target_rss_mb"] != "" {
		t.Errorf("row = %v", col)
	}
}

func TestMdNum(t *testing.T) {
	tests := []struct {
		v         float64
		prec      int
		thousands bool
		want      string
	}{
		{1234567, 0, true, "1,234,567"},
		{999, 0, true, "999"},
		{-12345.5, 1, true, "-12,345.5"},
		{0.04567, 4, false, "0.0457"},
		{math.NaN(), 2, false, "–"},
	}
	for _, tc := range tests {
		if got := mdNum(tc.v, tc.prec, tc.thousands); got != tc.want {
			t.Errorf("mdNum(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

func TestDisturbedWarning(t *testing.T) {
	quiet, busy, failed := okPoint(targetDirect, 1, 1), okPoint(targetDirect, 16, 1), okPoint(targetDirect, 64, 1)
	busy.OtherCPUPct = 60
	failed.Status, failed.OtherCPUPct = "failed: x", 90
	if w := disturbedWarning([]point{quiet, failed}); w != "" {
		t.Errorf("quiet runs (and failed ones) gave a warning: %q", w)
	}
	if w := disturbedWarning([]point{quiet, busy, failed}); !strings.Contains(w, "In 1 of 2 runs") {
		t.Errorf("warning = %q, want it to count 1 of 2 successful runs", w)
	}
}
