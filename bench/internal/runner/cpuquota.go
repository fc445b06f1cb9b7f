package runner

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// CPUQuota is a cgroup whose processes together get at most a fixed share
// of one CPU (the kernel's CFS bandwidth control). A benchmark puts the
// server under test in one so that the server, not a load generator that
// costs as much per message as the server does, sets the rate on a small
// machine: msgs/s then measures how much work the server does per CPU
// second, as it would on a host where the generator has cores to spare.
//
// It needs root and a writable cgroup file system: the cpu controller of
// cgroup v1 (/sys/fs/cgroup/cpu) or cgroup v2 (/sys/fs/cgroup with cpu in
// its controllers).
type CPUQuota struct {
	dir    string
	Share  float64       // of one CPU, e.g. 0.5
	Period time.Duration // the enforcement period
}

// cpuQuotaPeriod is short so that a capped server is throttled in slices
// of a few milliseconds, not stopped for a long stretch of each second.
const cpuQuotaPeriod = 10 * time.Millisecond

var quotaSeq atomic.Int64

// NewCPUQuota creates the cgroup, capped at share of one CPU in periods of
// 10 ms.
func NewCPUQuota(share float64) (*CPUQuota, error) {
	return NewCPUQuotaPeriod(share, cpuQuotaPeriod)
}

// NewCPUQuotaPeriod is NewCPUQuota with another enforcement period. A
// process with threads on several CPUs needs a longer one: the kernel
// hands a cgroup's quota to each CPU in slices of
// /proc/sys/kernel/sched_cfs_bandwidth_slice_us (5 ms by default), so with
// a quota of one slice or less per period the first CPU to run takes all
// of it and the process's threads on other CPUs wait for the next period.
func NewCPUQuotaPeriod(share float64, every time.Duration) (*CPUQuota, error) {
	if share <= 0 || share > 64 {
		return nil, fmt.Errorf("CPU quota %v: want a share of one CPU in (0, 64]", share)
	}
	if every < time.Millisecond || every > time.Second {
		return nil, fmt.Errorf("CPU quota period %v: want 1ms to 1s", every)
	}
	period := every.Microseconds()
	quota := int64(share * float64(period))
	// One process may hold several (bench/loops: one per quota).
	name := fmt.Sprintf("scalestack-bench-%d-%d", os.Getpid(), quotaSeq.Add(1))
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		// cgroup v2: the parent must hand the cpu controller down.
		root := "/sys/fs/cgroup"
		_ = os.WriteFile(filepath.Join(root, "cgroup.subtree_control"), []byte("+cpu"), 0)
		dir := filepath.Join(root, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return nil, fmt.Errorf("CPU quota: creating cgroup (needs root and cgroup v2 write access): %w", err)
		}
		q := &CPUQuota{dir: dir, Share: share, Period: every}
		if err := os.WriteFile(filepath.Join(dir, "cpu.max"), fmt.Appendf(nil, "%d %d", quota, period), 0); err != nil {
			q.Remove()
			return nil, fmt.Errorf("CPU quota: setting %s/cpu.max (is the cpu controller enabled?): %w", dir, err)
		}
		if Nice != 0 {
			if err := os.WriteFile(filepath.Join(dir, "cpu.weight.nice"), []byte(strconv.Itoa(Nice)), 0); err != nil {
				q.Remove()
				return nil, fmt.Errorf("CPU quota: setting %s/cpu.weight.nice: %w", dir, err)
			}
		}
		return q, nil
	}
	dir := filepath.Join("/sys/fs/cgroup/cpu", name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("CPU quota: creating cgroup (needs root and the cgroup v1 cpu controller at /sys/fs/cgroup/cpu): %w", err)
	}
	q := &CPUQuota{dir: dir, Share: share, Period: every}
	for _, f := range []struct {
		file string
		v    int64
	}{{"cpu.cfs_period_us", period}, {"cpu.cfs_quota_us", quota}, {"cpu.shares", niceWeight(Nice)}} {
		if err := os.WriteFile(filepath.Join(dir, f.file), []byte(strconv.FormatInt(f.v, 10)), 0); err != nil {
			q.Remove()
			return nil, fmt.Errorf("CPU quota: writing %s/%s: %w", dir, f.file, err)
		}
	}
	return q, nil
}

// niceWeight is the scheduler's weight of a task at niceness nice (the
// kernel's sched_prio_to_weight; 1024 at 0), which is also a cgroup v1
// cpu.shares value. The cgroup competes for the CPU with the processes
// outside it as one entity of this weight, whatever the niceness of the
// processes in it, so with Nice set the cgroup gets Nice's weight: -nice
// then favours a capped server as much as the processes it is compared
// with.
func niceWeight(nice int) int64 {
	weights := [40]int64{
		88761, 71755, 56483, 46273, 36291, 29154, 23254, 18705, 14949, 11916,
		9548, 7620, 6100, 4904, 3906, 3121, 2501, 1991, 1586, 1277,
		1024, 820, 655, 526, 423, 335, 272, 215, 172, 137,
		110, 87, 70, 56, 45, 36, 29, 23, 18, 15,
	}
	return weights[min(max(nice, -20), 19)+20]
}

// Wrap returns argv run inside the cgroup: a shell moves itself into it
// and then execs argv, so the program (and every thread it starts) is
// capped from its first instruction and keeps the shell's process id.
func (q *CPUQuota) Wrap(argv []string) []string {
	script := `echo $$ > "$0/cgroup.procs" && exec "$@"`
	return append([]string{"sh", "-c", script, q.dir}, argv...)
}

// Throttled reports how often and for how long the kernel has held the
// cgroup's processes back so far (the cgroup's cpu.stat).
func (q *CPUQuota) Throttled() (periods int64, total time.Duration, err error) {
	st, err := q.Stat()
	return st.Throttled, st.ThrottledTime, err
}

// CPUStat is a cgroup's CPU bandwidth accounting so far (cpu.stat).
type CPUStat struct {
	Periods       int64         // enforcement periods in which the cgroup ran
	Throttled     int64         // of those, periods in which it used up its quota and was held back
	ThrottledTime time.Duration // how long it was held back in all
}

// Stat reads the cgroup's cpu.stat. Throttled periods over periods near 1
// mean the cgroup wanted more CPU than its quota in nearly every period:
// the quota, nothing else, limited it.
func (q *CPUQuota) Stat() (CPUStat, error) {
	stat, err := os.ReadFile(filepath.Join(q.dir, "cpu.stat"))
	if err != nil {
		return CPUStat{}, err
	}
	fields := parseKeyValues(string(stat))
	st := CPUStat{Periods: fields["nr_periods"], Throttled: fields["nr_throttled"]}
	if us, ok := fields["throttled_usec"]; ok { // v2
		st.ThrottledTime = time.Duration(us) * time.Microsecond
	} else {
		st.ThrottledTime = time.Duration(fields["throttled_time"]) // v1: nanoseconds
	}
	return st, nil
}

// Remove deletes the cgroup; it fails while a process is still in it.
func (q *CPUQuota) Remove() error {
	var err error
	for range 50 { // a process just killed leaves the cgroup a moment later
		if err = os.Remove(q.dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("removing cgroup %s: %w", q.dir, err)
}

// parseKeyValues reads "key value" lines (cgroup stat files).
func parseKeyValues(s string) map[string]int64 {
	out := map[string]int64{}
	for _, line := range strings.Split(s, "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			if v, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				out[f[0]] = v
			}
		}
	}
	return out
}
