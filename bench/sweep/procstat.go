package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// clockTicksPerSecond is USER_HZ, the unit of utime and stime in /proc/PID/stat. Linux fixes it at 100
// on every architecture Go supports for this tool, whatever the kernel's internal HZ.
const clockTicksPerSecond = 100

// cpuTicks returns utime+stime of pid (all its threads), in clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("reading cpu time of pid %d: %w", pid, err)
	}
	return parseStatCPU(string(b))
}

// parseStatCPU extracts utime+stime from the text of /proc/PID/stat. The command name (field 2) may
// hold spaces and parentheses, so fields are counted from the last ')'.
func parseStatCPU(stat string) (int64, error) {
	end := strings.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, fmt.Errorf("malformed /proc stat line %q", stat)
	}
	// After ") " come field 3 (state) onwards; utime is field 14 and stime field 15.
	fields := strings.Fields(stat[end+1:])
	const utimeIdx, stimeIdx = 14 - 3, 15 - 3
	if len(fields) <= stimeIdx {
		return 0, fmt.Errorf("short /proc stat line %q", stat)
	}
	u, err := strconv.ParseInt(fields[utimeIdx], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("utime %q: %w", fields[utimeIdx], err)
	}
	s, err := strconv.ParseInt(fields[stimeIdx], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stime %q: %w", fields[stimeIdx], err)
	}
	return u + s, nil
}

// voluntarySwitches returns the voluntary context switches of all of pid's threads alive now (a
// thread's count lives in /proc/PID/task/TID/status; /proc/PID/status has the main thread's only).
// A thread that sleeps to wait for its next request switches once per wait, so per query this says
// how often the server's threads went to sleep between statements.
func voluntarySwitches(pid int) (int64, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("listing threads of pid %d: %w", pid, err)
	}
	var total int64
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/status")
		if err != nil {
			continue // the thread ended meanwhile; its switches are gone with it
		}
		n, err := parseVoluntarySwitches(string(b))
		if err != nil {
			return 0, fmt.Errorf("thread %s of pid %d: %w", t.Name(), pid, err)
		}
		total += n
	}
	return total, nil
}

func parseVoluntarySwitches(status string) (int64, error) {
	for line := range strings.Lines(status) {
		rest, ok := strings.CutPrefix(line, "voluntary_ctxt_switches:")
		if !ok {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("voluntary_ctxt_switches %q: %w", strings.TrimSpace(rest), err)
		}
		return v, nil
	}
	return 0, fmt.Errorf("no voluntary_ctxt_switches line")
}

// rssKB returns VmRSS of pid in KiB.
func rssKB(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("reading rss of pid %d: %w", pid, err)
	}
	defer f.Close()
	return parseVmRSS(f)
}

func parseVmRSS(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("unexpected VmRSS line %q", sc.Text())
		}
		v, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmRSS value %q: %w", f[0], err)
		}
		return v, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("reading status: %w", err)
	}
	return 0, fmt.Errorf("no VmRSS line (kernel thread or exited process)")
}

// hostBusyTicks returns the busy time of all CPUs together (everything but idle and iowait), in clock
// ticks, from the first line of /proc/stat.
func hostBusyTicks() (int64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("reading host cpu time: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return parseHostBusy(line)
}

// parseHostBusy sums user, nice, system, irq, softirq and steal of a "cpu ..." line. Guest time is
// already counted in user and nice.
func parseHostBusy(line string) (int64, error) {
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("unexpected /proc/stat line %q", line)
	}
	var busy int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system [idle iowait] irq softirq steal
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat field %d %q: %w", i, f[i], err)
		}
		busy += v
	}
	return busy, nil
}
