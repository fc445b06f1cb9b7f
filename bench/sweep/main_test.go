package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name        string
		args        []string
		wantThreads []int
		wantTime    int
		wantWarmup  int
		wantReps    int
		wantTargets []string
		wantTests   []string
		wantErr     string
	}{
		{name: "defaults", args: nil, wantThreads: []int{1, 4, 16, 64, 256, 1024, 2048, 4096, 8192},
			wantTime: 15, wantWarmup: 5, wantReps: 3, wantTargets: []string{"direct", "proxy-epoll", "proxy-uring", "haproxy"}},
		{name: "quick", args: []string{"--quick"}, wantThreads: []int{16, 256}, wantTime: 5, wantWarmup: 2, wantReps: 1,
			wantTargets: []string{"direct", "proxy-epoll", "proxy-uring", "haproxy"}},
		{name: "metrics cost", args: []string{"--metrics-cost"}, wantThreads: []int{256}, wantTime: 10, wantWarmup: 3, wantReps: 7,
			wantTargets: []string{"proxy-epoll", "proxy-epoll-scraped"}, wantTests: []string{"oltp_point_select", "oltp_read_only"}},
		{name: "quick metrics cost keeps quick's points", args: []string{"--metrics-cost", "--quick"}, wantThreads: []int{16, 256},
			wantTime: 5, wantWarmup: 2, wantReps: 1, wantTargets: []string{"proxy-epoll", "proxy-epoll-scraped"}},
		{name: "explicit flags beat metrics cost", args: []string{"--metrics-cost", "--threads", "64", "--reps", "8", "--tests", "oltp_read_only"},
			wantThreads: []int{64}, wantTime: 10, wantWarmup: 3, wantReps: 8, wantTargets: []string{"proxy-epoll", "proxy-epoll-scraped"},
			wantTests: []string{"oltp_read_only"}},
		{name: "explicit flags beat quick", args: []string{"--quick", "--time", "9", "--threads=1,8", "--targets", "direct,haproxy"},
			wantThreads: []int{1, 8}, wantTime: 9, wantWarmup: 2, wantReps: 1, wantTargets: []string{"direct", "haproxy"}},
		{name: "unknown target", args: []string{"--targets", "direct,proxysql"}, wantErr: "unknown target"},
		{name: "base target without its binary", args: []string{"--targets", "proxy-epoll,proxy-epoll-base"}, wantErr: "--base-bin"},
		{name: "base target", args: []string{"--quick", "--targets", "proxy-epoll,proxy-epoll-base", "--base-bin", "/tmp/old"},
			wantThreads: []int{16, 256}, wantTime: 5, wantWarmup: 2, wantReps: 1, wantTargets: []string{"proxy-epoll", "proxy-epoll-base"}},
		{name: "bad thread count", args: []string{"--threads", "1,zero"}, wantErr: "--threads"},
		{name: "max_connections too small", args: []string{"--threads", "9990"}, wantErr: "--max-connections"},
		{name: "not a database test", args: []string{"--tests", "cpu"}, wantErr: "not a sysbench database test"},
		{name: "stray argument", args: []string{"run"}, wantErr: "unexpected arguments"},
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
			if !reflect.DeepEqual(c.Threads, tc.wantThreads) || c.TimeS != tc.wantTime || c.WarmupS != tc.wantWarmup ||
				c.Reps != tc.wantReps || !reflect.DeepEqual(c.Targets, tc.wantTargets) {
				t.Errorf("got threads %v time %d warmup %d reps %d targets %v", c.Threads, c.TimeS, c.WarmupS, c.Reps, c.Targets)
			}
			if tc.wantTests != nil && !reflect.DeepEqual(c.Tests, tc.wantTests) {
				t.Errorf("got tests %v, want %v", c.Tests, tc.wantTests)
			}
		})
	}
}

func TestPlanPointsAlternatesTargetsAndRotates(t *testing.T) {
	cfg := config{Tests: []string{"a"}, Threads: []int{1, 64}, Reps: 2, Targets: []string{"x", "y", "z"}}
	var got []string
	for _, p := range planPoints(cfg) {
		got = append(got, strings.Join([]string{p.Test, itoa(p.Threads), p.Target, itoa(p.Rep)}, "/"))
	}
	want := []string{
		"a/1/x/1", "a/1/y/1", "a/1/z/1", "a/1/y/2", "a/1/z/2", "a/1/x/2",
		"a/64/x/1", "a/64/y/1", "a/64/z/1", "a/64/y/2", "a/64/z/2", "a/64/x/2",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("plan\n got %v\nwant %v", got, want)
	}
}

func itoa(n int) string { return joinInts([]int{n}) }

func TestShellQuote(t *testing.T) {
	got := shellQuote([]string{"bench/run.sh", "--threads", "1,16", "--name", "it's mine", ""})
	want := `bench/run.sh --threads 1,16 --name 'it'\''s mine' ''`
	if got != want {
		t.Errorf("shellQuote = %s, want %s", got, want)
	}
}

func TestResolveMariaDBScript(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "m.sh")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain.txt")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"none", "", false},
		{exe, exe, false},
		{plain, "", true},
		{filepath.Join(dir, "missing"), "", true},
	}
	for _, tc := range tests {
		got, err := resolveMariaDBScript(tc.in)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("resolveMariaDBScript(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestNeededFiles(t *testing.T) {
	tests := []struct {
		targets []string
		want    uint64
	}{
		{[]string{targetDirect, targetProxyEpoll}, 8292},
		{[]string{targetDirect, targetHAProxy}, 16984},
	}
	for _, tc := range tests {
		if got := neededFiles(config{Threads: []int{16, 8192, 1}, Targets: tc.targets}); got != tc.want {
			t.Errorf("neededFiles(%v) = %d, want %d", tc.targets, got, tc.want)
		}
	}
}

// The raised limit must reach the children (sysbench does not raise its own).
func TestRaiseFileLimitReachesChildren(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Max < 2048 {
		t.Fatalf("hard open-file limit %d is too low for this test to mean anything", lim.Max)
	}
	low := lim
	low.Cur = 1024
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	defer syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	if err := raiseFileLimit(config{Threads: []int{1}, Targets: []string{targetDirect}}); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sh", "-c", "ulimit -Sn").Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != strconv.FormatUint(lim.Max, 10) {
		t.Errorf("child's soft limit %s, want the hard limit %d", got, lim.Max)
	}
	if err := raiseFileLimit(config{Threads: []int{int(lim.Max)}, Targets: []string{targetHAProxy}}); err == nil {
		t.Error("a point needing more files than the hard limit passed the check")
	}
}
