package main

import (
	"bytes"
	"encoding/csv"
	"math"
	"runtime"
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
		TPS: qps / 16, LatAvgMS: 1, LatP95MS: 2, LatP99MS: 3.5, TargetCPUPerKQ: math.NaN(), DBCPUPerKQ: 0.05, ClientCPUPerKQ: 0.03, DBVCSWPerQ: 1.25, TargetRSSKB: -1,
		BackendConnsMax: int64(threads), ConnectS: 0.1, WindowS: 15, SysbenchQPS: qps, OtherCPUPct: 3,
		Scrapes: -1, ScrapeMaxMS: math.NaN(), ScrapeCPUMS: math.NaN()}
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
		"| threads | target | ok/runs | QPS | avg ms | p95 ms | p99 ms | errors |",
		"| 16 | haproxy | 1/1 | 50 | 1.00 | 2.00 | 3.50 | 0 | 0 | 0.0400 | 0.0500 | 0.0300 | 1.25 | 14.0 | 16 | 3 |",
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
	if strings.Contains(md, "Metrics cost") {
		t.Error("a metrics-cost section without the scraped target")
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
	if col["threads"] != "8192" || col["qps"] != "22052.50" || col["status"] != p.Status || col["lat_p99_ms"] != "3.50" ||
		col["target_cpu_s_per_kq"] != "" || col["target_rss_mb"] != "" || col["scrapes"] != "" || col["scrape_max_ms"] != "" || col["scrape_cpu_ms"] != "" ||
		col["client_cpu_s_per_kq"] != "0.0300" {
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

func scrapedPoint(test string, threads, rep int, qps float64, scrapes int) point {
	p := okPoint(targetProxyEpollScraped, threads, qps)
	p.Test, p.Rep, p.Scrapes, p.ScrapeMaxMS, p.ScrapeCPUMS = test, rep, scrapes, 4+float64(rep), float64(rep)
	return p
}

func offPoint(test string, threads, rep int, qps float64) point {
	p := okPoint(targetProxyEpoll, threads, qps)
	p.Test, p.Rep = test, rep
	return p
}

func TestMetricsCostRows(t *testing.T) {
	const ps, ro = "oltp_point_select", "oltp_read_only"
	failedScrape := scrapedPoint(ro, 256, 3, math.NaN(), 10)
	failedScrape.Status, failedScrape.ScrapeFailures = "failed: 1 of 10 metrics scrapes failed", 1
	points := []point{
		// point_select: rounds of off 1000/1000/1100 against scraped 990/1000/1089.
		offPoint(ps, 256, 1, 1000), scrapedPoint(ps, 256, 1, 990, 10),
		scrapedPoint(ps, 256, 2, 1000, 10), offPoint(ps, 256, 2, 1000),
		offPoint(ps, 256, 3, 1100), scrapedPoint(ps, 256, 3, 1089, 9),
		// read_only: the scraped runs are 10 % slower; round 3's scraped run failed.
		offPoint(ro, 256, 1, 500), scrapedPoint(ro, 256, 1, 450, 10),
		offPoint(ro, 256, 2, 520), scrapedPoint(ro, 256, 2, 468, 10),
		offPoint(ro, 256, 3, 510), failedScrape,
		// Another target at the same point is no part of the comparison.
		okPoint(targetDirect, 256, 9999),
	}
	rows := metricsCostRows(points, []string{ps, ro, "oltp_write_only"}, []int{64, 256})
	if len(rows) != 2 {
		t.Fatalf("got %d rows, want one per test and thread count that ran: %+v", len(rows), rows)
	}
	tests := []struct {
		row               metricsCostRow
		off, scraped      float64
		paired            []float64
		spread            float64
		scrapes, failures int
		maxMS             float64
		cpuMS             float64
		within            bool
	}{
		{rows[0], 1000, 1000, []float64{0.99, 1, 0.99}, 0.1, 29, 0, 7, 2, true},
		{rows[1], 510, 459, []float64{0.9, 0.9}, 20.0 / 510, 30, 1, 7, 2, false},
	}
	for _, tc := range tests {
		r := tc.row
		if r.OffQPS != tc.off || r.ScrapedQPS != tc.scraped || math.Abs(r.Ratio-tc.scraped/tc.off) > 1e-12 {
			t.Errorf("%s: off %v scraped %v ratio %v; want %v %v", r.Test, r.OffQPS, r.ScrapedQPS, r.Ratio, tc.off, tc.scraped)
		}
		if len(r.Paired) != len(tc.paired) {
			t.Fatalf("%s: paired %v, want %v", r.Test, r.Paired, tc.paired)
		}
		for i := range tc.paired {
			if math.Abs(r.Paired[i]-tc.paired[i]) > 1e-12 {
				t.Errorf("%s: paired %v, want %v", r.Test, r.Paired, tc.paired)
			}
		}
		if math.Abs(r.OffSpread-tc.spread) > 1e-12 || r.Scrapes != tc.scrapes || r.ScrapeFailures != tc.failures ||
			r.ScrapeMaxMS != tc.maxMS || r.ScrapeCPUMS != tc.cpuMS || r.Within() != tc.within {
			t.Errorf("%s: spread %v scrapes %d failed %d max %v within %v; want %v %d %d %v %v", r.Test,
				r.OffSpread, r.Scrapes, r.ScrapeFailures, r.ScrapeMaxMS, r.Within(), tc.spread, tc.scrapes, tc.failures, tc.maxMS, tc.within)
		}
	}
}

func TestWriteMarkdownMetricsCost(t *testing.T) {
	const ps = "oltp_point_select"
	points := []point{offPoint(ps, 256, 1, 1000), scrapedPoint(ps, 256, 1, 960, 10),
		scrapedPoint(ps, 256, 2, 1010, 10), offPoint(ps, 256, 2, 1000)}
	var b bytes.Buffer
	meta := reportMeta{Title: "T", Command: "bench/run.sh --metrics-cost", Started: time.Unix(0, 0), Finished: time.Unix(1, 0)}
	if err := writeMarkdown(&b, meta, points, []string{ps}, []int{256}, []string{targetProxyEpoll, targetProxyEpollScraped}); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"## Metrics cost",
		"bench/run.sh --metrics-cost",
		// medians 1000 and 985: ratio 0.985; rounds 0.96 and 1.01; 1.5 CPU-ms per scrape, one a second.
		"| oltp_point_select | 256 | 2 | 1,000 | 985 | 0.985 | 0.985 [0.960, 1.010] | 0.0 % | 20 (0) | 6.0 | 1.50 | " +
			pctNum2(1.5/(1000*float64(runtime.NumCPU()))) + " | yes |",
		"Every compared row is within 3 %.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	points[1].QPS = 900 // medians 1000 and 955: 4.5 % slower
	b.Reset()
	if err := writeMarkdown(&b, meta, points, []string{ps}, []int{256}, []string{targetProxyEpoll, targetProxyEpollScraped}); err != nil {
		t.Fatal(err)
	}
	if md := b.String(); !strings.Contains(md, "| 0.955 |") || !strings.Contains(md, "**no**") || !strings.Contains(md, "1 of 1 rows are outside 3 %") {
		t.Errorf("a 4.5 %% cost is not called out:\n%s", md)
	}
}

func TestMetricsCostVerdict(t *testing.T) {
	tests := []struct {
		name   string
		row    metricsCostRow
		want   float64
		within bool
	}{
		{"rounds decide over medians", metricsCostRow{Ratio: 0.9, Paired: []float64{0.99, 1.02, 0.98}}, 0.99, true},
		{"a cost beyond 3 % in the rounds", metricsCostRow{Ratio: 1, Paired: []float64{0.95, 0.96}}, 0.955, false},
		{"no complete round: the medians", metricsCostRow{Ratio: 0.96}, 0.96, false},
	}
	for _, tc := range tests {
		if got := tc.row.Verdict(); math.Abs(got-tc.want) > 1e-12 || tc.row.Within() != tc.within {
			t.Errorf("%s: verdict %v within %v; want %v %v", tc.name, got, tc.row.Within(), tc.want, tc.within)
		}
	}
}
