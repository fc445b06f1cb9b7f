package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseFlagsIdle(t *testing.T) {
	tests := []struct {
		name        string
		args        []string
		wantTargets []string
		wantActive  int
		wantErr     string
	}{
		{name: "defaults to the two proxies and 100 active", args: []string{"--idle-clients", "16000"},
			wantTargets: []string{targetProxyEpoll, targetProxyUring}, wantActive: 100},
		{name: "explicit target and active", args: []string{"--idle-clients=500", "--idle-active", "0", "--targets", "proxy-uring"},
			wantTargets: []string{targetProxyUring}, wantActive: 0},
		{name: "direct rejected", args: []string{"--idle-clients", "100", "--targets", "proxy-epoll,direct"}, wantErr: "direct makes no sense"},
		{name: "haproxy rejected", args: []string{"--idle-clients", "100", "--targets", "haproxy"}, wantErr: "one MariaDB connection"},
		{name: "scraped proxy rejected", args: []string{"--idle-clients", "100", "--targets", "proxy-epoll-scraped"}, wantErr: "not for --idle-clients"},
		{name: "active without clients", args: []string{"--idle-active", "5"}, wantErr: "needs --idle-clients"},
		{name: "negative clients", args: []string{"--idle-clients", "-3"}, wantErr: "needs --idle-clients"},
		{name: "more active than clients", args: []string{"--idle-clients", "50", "--idle-active", "51"}, wantErr: "lower --idle-active"},
		// 18,001 clients are three processes of about 6,000: the first cannot run 7,000 active ones.
		{name: "more active than the first process holds", args: []string{"--idle-clients", "18001", "--idle-active", "7000"}, wantErr: "holds 6001"},
		{name: "sysbench flag refused", args: []string{"--idle-clients", "100", "--threads", "64"}, wantErr: "--threads is for the sysbench sweep"},
		{name: "quick refused", args: []string{"--idle-clients", "100", "--quick"}, wantErr: "mode of its own"},
		{name: "metrics cost refused", args: []string{"--idle-clients", "100", "--metrics-cost"}, wantErr: "mode of its own"},
		{name: "active phase too long", args: []string{"--idle-clients", "100", "--time", "601"}, wantErr: "1 to 600 s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseFlags(tc.args, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Targets, tc.wantTargets) || c.IdleActive != tc.wantActive {
				t.Errorf("targets %v active %d, want %v and %d", c.Targets, c.IdleActive, tc.wantTargets, tc.wantActive)
			}
		})
	}
}

func TestSplitClients(t *testing.T) {
	tests := []struct {
		n    int
		want []int
	}{
		{1, []int{1}},
		{9000, []int{9000}},
		{9001, []int{4501, 4500}},
		{16000, []int{8000, 8000}},
		{18001, []int{6001, 6000, 6000}},
		{45000, []int{9000, 9000, 9000, 9000, 9000}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.n), func(t *testing.T) {
			got := splitClients(tc.n)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("splitClients(%d) = %v, want %v", tc.n, got, tc.want)
			}
		})
	}
	// Whatever n, the shares add up, none exceeds a process's limit and no process more than needed.
	for n := 1; n <= 50000; n += 997 {
		s := splitClients(n)
		sum := 0
		for _, x := range s {
			sum += x
		}
		if sum != n || slices.Max(s) > loadProcessClients || len(s) != (n+loadProcessClients-1)/loadProcessClients || slices.Max(s)-slices.Min(s) > 1 {
			t.Fatalf("splitClients(%d) = %v", n, s)
		}
	}
}

func TestPlanIdleRunsRotatesTargets(t *testing.T) {
	var got []string
	for _, p := range planIdleRuns([]string{"a", "b"}, 3) {
		got = append(got, fmt.Sprintf("%s/%d", p.Target, p.Rep))
	}
	want := []string{"a/1", "b/1", "b/2", "a/2", "a/3", "b/3"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("plan %v, want %v", got, want)
	}
}

// The password travels in the environment, and only the first process runs active clients.
func TestLoadArgs(t *testing.T) {
	tests := []struct {
		name            string
		active          int
		settle, active_ time.Duration
		want            []string
	}{
		{"holder", 0, 5 * time.Minute, 0, []string{"-conns 8000", "-active 0", "-settle 5m0s", "-duration 0s", "-user " + benchUser}},
		{"active", 100, 5 * time.Second, 10 * time.Second, []string{"-conns 8000", "-active 100", "-settle 5s", "-duration 10s", "-addr 127.0.0.1:7000"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			line := strings.Join(loadArgs("127.0.0.1:7000", 8000, tc.active, tc.settle, tc.active_), " ")
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("%q lacks %q", line, w)
				}
			}
			if strings.Contains(line, benchPassword) || strings.Contains(line, "-password") {
				t.Errorf("%q puts the password on the command line", line)
			}
		})
	}
}

func TestLoadProcessWaitLine(t *testing.T) {
	tests := []struct {
		name    string
		script  string
		prefix  string
		limit   time.Duration
		want    string
		wantErr string
	}{
		{"found after other output", `echo starting; echo "holding 3"; sleep 5`, "holding ", 5 * time.Second, "holding 3", ""},
		{"sees the password in its environment", `echo "{\"pw\":\"$MYSQLLOAD_PASSWORD\"}"`, "{", 5 * time.Second, `{"pw":"` + benchPassword + `"}`, ""},
		{"exits first, with its error", `echo "mysqlload: client 7 of 9: access denied" >&2; exit 1`, "holding ", 5 * time.Second, "", "access denied"},
		{"silent too long", `sleep 5`, "holding ", 200 * time.Millisecond, "", "within 200ms"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := startLoadProcess(context.Background(), "/bin/sh", []string{"-c", tc.script}, filepath.Join(t.TempDir(), "load"))
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			line, err := p.waitLine(context.Background(), tc.prefix, tc.limit)
			p.stop()
			if !p.hasExited() {
				t.Error("stop returned before the process exited")
			}
			if time.Since(start) > 4*time.Second {
				t.Errorf("took %s: stop did not end the sleeping process", time.Since(start))
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || line != tc.want {
				t.Fatalf("line %q err %v, want %q", line, err, tc.want)
			}
		})
	}
}

func idleOK(target string, rep int, beforeKB, idleKB int64, perSec, p99 float64) idleRun {
	return idleRun{Target: target, Rep: rep, Clients: 16000, Status: "ok", RSSBeforeKB: beforeKB, RSSIdleKB: idleKB,
		RSSAfterKB: idleKB + 100, FDs: 16030, ConnectS: 12.5,
		Load: mysqlloadReport{Conns: 8000, Active: 100, PerSec: perSec, P50Micros: 400, P99Micros: p99, P999Micros: 3 * p99, MaxMicros: 9 * p99}}
}

func TestWriteIdleMarkdown(t *testing.T) {
	failed := idleRun{Target: targetProxyUring, Rep: 2, Clients: 16000, Status: "failed: mysqlload load2 exited | early",
		RSSBeforeKB: 10000, RSSIdleKB: 99999, Load: mysqlloadReport{Errors: 4}}
	erring := idleOK(targetProxyUring, 1, 12000, 12000+16000*3, 9000, 2000)
	erring.Load.Errors, erring.Load.FirstError = 2, "Error 9001 (HY000): queue timeout"
	runs := []idleRun{
		// proxy-epoll: 1.5 and 2.5 KiB per client; the median of 2.0 is just within the target.
		idleOK(targetProxyEpoll, 1, 10000, 10000+24000, 20000, 1000),
		idleOK(targetProxyEpoll, 2, 11000, 11000+40000, 30000, 3000),
		erring, failed,
	}
	meta := reportMeta{Title: "Idle clients T", Command: "bench/run.sh --idle-clients 16000", Started: time.Unix(0, 0),
		Finished: time.Unix(95, 0), Host: []string{"Host: test"}, Settings: []string{"setting line"}}
	var b strings.Builder
	writeIdleMarkdown(&b, meta, runs, []string{targetProxyEpoll, targetProxyUring})
	md := b.String()
	for _, want := range []string{
		"bench/run.sh --idle-clients 16000\n```",
		"(1m35s)",
		"- Host: test\n- setting line\n",
		"÷ the number of clients",
		"- proxy-epoll: 2.00 KiB per client with 16,000 idle clients: meets the target",
		"- proxy-uring: 3.00 KiB per client with 16,000 idle clients: misses the target",
		// medians: before (10000+11000)/2, idle (34000+51000)/2, stmt/s 25,000, p99 2,000, max 18,000
		"| proxy-epoll | 2/2 | 10,500 | 42,500 | 2.00 | 16,030 | 12.5 | 25,000 | 400 | 2,000 | 6,000 | 18,000 | 0 | 42,600 |",
		// the failed run's errors count, its measurements do not
		"| proxy-uring | 1/2 | 12,000 | 60,000 | 3.00 |",
		"| 6 | 60,100 |",
		"- proxy-uring rep 2: failed: mysqlload load2 exited | early",
		"| proxy-uring | 2 | failed: mysqlload load2 exited / early | – |",
		"first error: Error 9001 (HY000): queue timeout",
		"| proxy-epoll | 1 | ok | 10,000 | 34,000 | 1.50 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "99,999") {
		t.Errorf("the failed run's RSS made it into the report:\n%s", md)
	}
}

func TestWriteIdleMarkdownWithoutSuccess(t *testing.T) {
	runs := []idleRun{{Target: targetProxyEpoll, Rep: 1, Clients: 100, Status: "failed: proxy-epoll did not start"}}
	var b strings.Builder
	writeIdleMarkdown(&b, reportMeta{Title: "x"}, runs, []string{targetProxyEpoll})
	if md := b.String(); !strings.Contains(md, "- proxy-epoll: – KiB per client with 100 idle clients: no successful run") ||
		!strings.Contains(md, "| proxy-epoll | 0/1 | – | – | – |") {
		t.Errorf("report:\n%s", md)
	}
}
