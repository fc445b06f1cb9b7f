package runner

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestNiceWeight(t *testing.T) {
	for nice, want := range map[int]int64{0: 1024, -20: 88761, 19: 15, -10: 9548, 5: 335, -30: 88761, 40: 15} {
		if got := niceWeight(nice); got != want {
			t.Errorf("nice %d: weight %d, want %d", nice, got, want)
		}
	}
}

func TestParseKeyValues(t *testing.T) {
	tests := []struct {
		name, in string
		want     map[string]int64
	}{
		{"v1", "nr_periods 10\nnr_throttled 4\nthrottled_time 123456\n", map[string]int64{"nr_periods": 10, "nr_throttled": 4, "throttled_time": 123456}},
		{"v2", "usage_usec 5\nnr_throttled 2\nthrottled_usec 70", map[string]int64{"usage_usec": 5, "nr_throttled": 2, "throttled_usec": 70}},
		{"junk skipped", "a b\nc\n\nd 7 8\ne 9", map[string]int64{"e": 9}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := parseKeyValues(tc.in)
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %d, want %d", k, got[k], v)
				}
			}
		})
	}
}

// TestCPUQuotaCapsABusyProcess runs a CPU-bound shell loop under a quota
// of a fifth of a CPU and checks the kernel held it to about that. Like
// `bench/echo -server-cpu-quota`, it needs root and a writable cgroup file
// system (make test runs as root, for apt-get); without them it fails and
// says so rather than pass without having checked anything.
func TestCPUQuotaCapsABusyProcess(t *testing.T) {
	q, err := NewCPUQuota(0.2)
	if err != nil {
		t.Fatalf("cannot create the cgroup this test and -server-cpu-quota need (uid %d): %v", os.Geteuid(), err)
	}
	t.Cleanup(func() {
		if err := q.Remove(); err != nil {
			t.Error(err)
		}
	})
	argv := q.Wrap([]string{"sh", "-c", "while :; do :; done"})
	cmd := exec.Command(argv[0], argv[1:]...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	const window = time.Second
	time.Sleep(100 * time.Millisecond) // in the cgroup and spinning
	before, err := CPUSeconds(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(window)
	after, err := CPUSeconds(cmd.Process.Pid)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if err != nil {
		t.Fatal(err)
	}
	// Capped at 0.2 CPU; uncapped it would take up to a whole one. The
	// upper bound leaves room for tick-granular accounting.
	t.Logf("used %.2f CPU-seconds", after-before)
	if used := after - before; used > 0.35 || used < 0.05 {
		t.Errorf("spinning process under a 0.2 CPU quota used %.2f CPU-seconds in %v", used, window)
	}
	periods, throttled, err := q.Throttled()
	if err != nil {
		t.Fatal(err)
	}
	if periods == 0 || throttled <= 0 {
		t.Errorf("cgroup reports no throttling (periods %d, %v): the quota was not applied", periods, throttled)
	}
	st, err := q.Stat()
	if err != nil {
		t.Fatal(err)
	}
	// Periods of 10 ms over about a second, some throttled (on a busy
	// host a spinning process does not get its whole quota every period).
	if st.Periods < 20 || st.Throttled < 1 || st.Throttled > st.Periods {
		t.Errorf("over about %v: %d periods, %d throttled; want about 100, some throttled", window, st.Periods, st.Throttled)
	}
}

func TestCPUQuotaRefusesBadSettings(t *testing.T) {
	for _, tc := range []struct {
		share  float64
		period time.Duration
	}{{0, 10 * time.Millisecond}, {65, 10 * time.Millisecond}, {0.5, 0}, {0.5, 2 * time.Second}} {
		if q, err := NewCPUQuotaPeriod(tc.share, tc.period); err == nil {
			q.Remove()
			t.Errorf("share %v, period %v accepted", tc.share, tc.period)
		}
	}
}
