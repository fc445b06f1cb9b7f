package main

import (
	"math"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name    string
		stat    string
		want    int64
		wantErr bool
	}{
		{"plain", "1234 (haproxy) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 4 0 100 1000 200", 325, false},
		// A command name may hold spaces and ')'; fields count from the last ')'.
		{"odd command name", "99 (a) b) c) R 1 99 99 0 -1 0 0 0 0 0 7 8 0 0 20 0 1 0 5 6 7", 15, false},
		{"truncated", "99 (x) R 1 2 3", 0, true},
		{"no parenthesis", "garbage", 0, true},
		{"non-numeric utime", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 u 8 0 0", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStatCPU(tc.stat)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("parseStatCPU = %d, %v; want %d, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestParseVmRSS(t *testing.T) {
	tests := []struct {
		name    string
		status  string
		want    int64
		wantErr bool
	}{
		{"present", "Name:\thaproxy\nVmPeak:\t  99 kB\nVmRSS:\t   14512 kB\nThreads:\t2\n", 14512, false},
		{"kernel thread has none", "Name:\tkworker\nThreads:\t1\n", 0, true},
		{"odd unit", "VmRSS:\t 12 MB\n", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseVmRSS(strings.NewReader(tc.status))
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("parseVmRSS = %d, %v; want %d, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// The live readers must agree with the kernel about this very process.
func TestProcReadersOnSelf(t *testing.T) {
	pid := os.Getpid()
	// Burn a little CPU so utime+stime is not zero.
	x := 0
	for i := range 50_000_000 {
		x += i % 7
	}
	_ = x
	ticks, err := cpuTicks(pid)
	if err != nil || ticks <= 0 {
		t.Errorf("cpuTicks(self) = %d, %v; want > 0", ticks, err)
	}
	rss, err := rssKB(pid)
	if err != nil || rss < 1024 {
		t.Errorf("rssKB(self) = %d, %v; want at least 1 MiB", rss, err)
	}
	if _, err := cpuTicks(1 << 30); err == nil {
		t.Error("cpuTicks of a pid that cannot exist succeeded")
	}
}

func TestParseHostBusy(t *testing.T) {
	tests := []struct {
		line    string
		want    int64
		wantErr bool
	}{
		// user nice system idle iowait irq softirq steal guest guest_nice
		{"cpu  100 2 30 5000 40 5 6 7 0 0", 150, false},
		{"cpu0 100 2 30 5000 40 5 6 7 0 0", 0, true},
		{"cpu  1 2 3", 0, true},
		{"cpu  1 2 x 4 5 6 7 8", 0, true},
	}
	for _, tc := range tests {
		got, err := parseHostBusy(tc.line)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("parseHostBusy(%q) = %d, %v; want %d, error %v", tc.line, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestOtherCPUPercent(t *testing.T) {
	at0 := time.Unix(100, 0)
	s0 := sample{at: at0, targetCPU: 10, dbCPU: 100, sysbenchCPU: 50, hostBusy: 1000}
	// 10 s on 2 CPUs is 2000 ticks of capacity; the host did 1000 more, ours 600, others 400 = 20%.
	s1 := sample{at: at0.Add(10 * time.Second), targetCPU: 110, dbCPU: 400, sysbenchCPU: 250, hostBusy: 2000}
	if got := otherCPUPercent(s0, s1, 2); got != 20 {
		t.Errorf("otherCPUPercent = %v, want 20", got)
	}
	s0.targetCPU, s1.targetCPU = -1, -1 // direct: no middle process
	if got := otherCPUPercent(s0, s1, 2); got != 25 {
		t.Errorf("otherCPUPercent without a target = %v, want 25", got)
	}
	if got := otherCPUPercent(s0, s0, 2); !math.IsNaN(got) {
		t.Errorf("an empty window gave %v, want NaN", got)
	}
}

func FuzzParseStatCPU(f *testing.F) {
	f.Add("1234 (haproxy) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 4 0 100 1000 200")
	f.Add("1 ()) ) S")
	f.Fuzz(func(t *testing.T, stat string) {
		v, err := parseStatCPU(stat)
		if err != nil && v != 0 {
			t.Fatalf("error %v with value %d", err, v)
		}
	})
}

func TestParseVoluntarySwitches(t *testing.T) {
	tests := []struct {
		name, status string
		want         int64
		wantErr      bool
	}{
		{"present", "Name:\tmariadbd\nvoluntary_ctxt_switches:\t4217\nnonvoluntary_ctxt_switches:\t12\n", 4217, false},
		{"missing", "Name:\tmariadbd\nVmRSS:\t 100 kB\n", 0, true},
		{"garbled", "voluntary_ctxt_switches:\tmany\n", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseVoluntarySwitches(tc.status)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("parseVoluntarySwitches = %d, %v; want %d, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// The sum covers every thread: a process with a thread that sleeps often must count more switches
// than its main thread alone reports.
func TestVoluntarySwitchesSumsThreads(t *testing.T) {
	before, err := voluntarySwitches(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread() // a thread of its own, which sleeps 50 times
		for range 50 {
			time.Sleep(time.Millisecond)
		}
		close(done)
		time.Sleep(time.Second) // keep the thread (and its count) alive while it is read
	}()
	<-done
	after, err := voluntarySwitches(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after-before < 50 {
		t.Errorf("voluntary switches grew by %d over 50 sleeps on one thread; want at least 50", after-before)
	}
}
