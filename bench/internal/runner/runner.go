// Package runner starts and measures the processes of Scale Stack's
// side-by-side benchmarks: servers and load generators pinned to CPUs,
// their CPU time and resident memory from /proc, and the medians and
// machine facts the result files report. Benchmark use only; it never
// starts anything that listens beyond loopback.
package runner

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is a started child process whose stdout is read line by line.
type Proc struct {
	Name   string
	cmd    *exec.Cmd
	lines  chan string
	stderr *lockedBuffer
	exited chan struct{}
	err    error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Nice, when not zero, is the niceness every started process runs at (a
// negative value needs root): on a machine shared with other work it makes
// the measured processes win the CPU more often, equally for every
// contender.
var Nice int

// Start runs argv, pinned with taskset to cpus (a list such as "1" or
// "0,1") unless cpus is empty, at niceness Nice.
func Start(name, cpus string, argv ...string) (*Proc, error) {
	if cpus != "" {
		argv = append([]string{"taskset", "-c", cpus}, argv...)
	}
	if Nice != 0 {
		argv = append([]string{"nice", "-n", strconv.Itoa(Nice)}, argv...)
	}
	p := &Proc{Name: name, lines: make(chan string, 1024), stderr: &lockedBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Stderr = p.stderr
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			default: // nobody is reading; drop rather than block the child
			}
		}
		p.err = p.cmd.Wait()
		close(p.lines)
		close(p.exited)
	}()
	return p, nil
}

// Stderr returns what the process wrote to stderr so far (its tail).
func (p *Proc) Stderr() string { return tail(p.stderr.String()) }

// Pid returns the process id (that of the program itself: taskset execs it).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// WaitLine waits for a stdout line starting with prefix and returns it.
func (p *Proc) WaitLine(prefix string, timeout time.Duration) (string, error) {
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				return "", fmt.Errorf("%s exited before printing %q: %v; stderr: %s", p.Name, prefix, p.err, tail(p.stderr.String()))
			}
			if strings.HasPrefix(l, prefix) {
				return l, nil
			}
		case <-deadline:
			return "", fmt.Errorf("%s did not print %q within %v; stderr: %s", p.Name, prefix, timeout, tail(p.stderr.String()))
		}
	}
}

// Wait waits for the process to exit on its own.
func (p *Proc) Wait(timeout time.Duration) error {
	select {
	case <-p.exited:
		if p.err != nil {
			return fmt.Errorf("%s: %w; stderr: %s", p.Name, p.err, tail(p.stderr.String()))
		}
		return nil
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("%s did not finish within %v", p.Name, timeout)
	}
}

// Stop sends SIGTERM and, if the process lingers, SIGKILL.
func (p *Proc) Stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

func tail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 600 {
		s = "..." + s[len(s)-600:]
	}
	return s
}

// WaitDial waits until a TCP or Unix address accepts connections.
func WaitDial(network, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout(network, addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s %s not accepting: %w", network, addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

// CPUSeconds returns a process's user plus system CPU time.
func CPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return float64(utime+stime) / clockTicks, nil
}

// RSSKiB returns a process's resident set size (VmRSS) in KiB.
func RSSKiB(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				break
			}
			return strconv.Atoi(f[0])
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// OpenFDs counts a process's open descriptors.
func OpenFDs(pid int) (int, error) {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(entries), err
}

// Median returns the median of xs (the mean of the middle two for an even
// count), or 0 for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// LoadAvg returns /proc/loadavg's first three fields.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// MachineFacts describes the machine for a result file.
func MachineFacts() string {
	model := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(rest), ":"))
				break
			}
		}
	}
	kernel := "?"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	mem := "?"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0]); len(f) >= 2 {
			if kib, err := strconv.Atoi(f[1]); err == nil {
				mem = fmt.Sprintf("%.0f GiB", float64(kib)/(1<<20))
			}
		}
	}
	return fmt.Sprintf("%d CPUs (%s), %s RAM, Linux %s, %s", runtime.NumCPU(), model, mem, kernel, runtime.Version())
}

// Build compiles pkg in module directory dir into out.
func Build(dir, out, pkg string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = dir
	if cmd.Env = os.Environ(); os.Getenv("GOFLAGS") == "" {
		// giouring only links with this; see the project's build rules.
		cmd.Env = append(cmd.Env, "GOFLAGS=-ldflags=-checklinkname=0 -buildvcs=false")
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s in %s: %w\n%s", pkg, dir, err, b)
	}
	return nil
}

// LoadReport is the JSON line cmd/echoload prints after a run.
type LoadReport struct {
	Msgs       uint64  `json:"msgs"`
	Seconds    float64 `json:"seconds"`
	MsgsPerSec float64 `json:"msgs_per_sec"`
	P50Micros  float64 `json:"p50_us"`
	P99Micros  float64 `json:"p99_us"`
	Failures   int     `json:"failures"`
	FirstError string  `json:"first_error,omitempty"`
	// GeneratorCPUSeconds is the generator's own CPU time over the window.
	GeneratorCPUSeconds float64 `json:"generator_cpu_s"`
	// TLS is the negotiated version and cipher suite of a -tls run;
	// Resumed counts the -churn handshakes that resumed a session.
	TLS     string `json:"tls,omitempty"`
	Resumed uint64 `json:"resumed,omitempty"`
}

// RunLoad runs the echoload binary with args, pinned to cpus, and returns
// its report with the CPU seconds each watched process used during the
// measured window (sampled when echoload announces the window's edges).
func RunLoad(echoload, cpus string, args []string, limit time.Duration, watch ...int) (LoadReport, []float64, error) {
	var before, after []float64
	sample := func() ([]float64, error) {
		out := make([]float64, len(watch))
		for i, pid := range watch {
			v, err := CPUSeconds(pid)
			if err != nil {
				return nil, fmt.Errorf("watched process %d: %w", pid, err)
			}
			out[i] = v
		}
		return out, nil
	}
	rep, err := RunLoadHook(echoload, cpus, args, limit, func(open bool) error {
		var err error
		if open {
			before, err = sample()
		} else {
			after, err = sample()
		}
		return err
	})
	if after == nil {
		return rep, nil, err
	}
	for i := range after {
		after[i] -= before[i]
	}
	return rep, after, err
}

// RunLoadHook runs a generator that speaks echoload's protocol on stdout
// ("window open", "window closed", then a LoadReport JSON line: echoload,
// queryload) with args, pinned to cpus, and calls atWindow(true) and
// atWindow(false) as it announces the measured window's edges, so the
// caller samples what it observes over exactly that window. An error from
// atWindow ends the run with it.
func RunLoadHook(generator, cpus string, args []string, limit time.Duration, atWindow func(open bool) error) (LoadReport, error) {
	var rep LoadReport
	gen, err := Start(filepath.Base(generator), cpus, append([]string{generator}, args...)...)
	if err != nil {
		return rep, err
	}
	defer gen.Stop()
	for _, edge := range []struct {
		line string
		open bool
	}{{"window open", true}, {"window closed", false}} {
		if _, err := gen.WaitLine(edge.line, limit); err != nil {
			return rep, err
		}
		if err := atWindow(edge.open); err != nil {
			return rep, err
		}
	}
	line, err := gen.WaitLine("{", 30*time.Second)
	if err != nil {
		return rep, err
	}
	if err := json.Unmarshal([]byte(line), &rep); err != nil {
		return rep, fmt.Errorf("%s output %q: %w", gen.Name, line, err)
	}
	if err := gen.Wait(30 * time.Second); err != nil {
		return rep, err
	}
	if rep.Failures > 0 {
		return rep, fmt.Errorf("%d connections failed: %s", rep.Failures, rep.FirstError)
	}
	return rep, nil
}
