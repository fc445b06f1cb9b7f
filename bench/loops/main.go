// Command loops measures whether the MySQL proxy's loops scale: queries per
// second of `scalestack mysqlproxy` with 1 loop under a CPU quota of 0.5
// CPU against 2 loops under 1.0 CPU (issue 21, item 5: the second must
// reach at least 1.8 times the first), with 1 loop under 1.0 CPU as the
// reference for what the extra half CPU alone buys.
//
// On a two-core host the load generator and the database share the CPUs
// with the proxy, so the proxy runs in a cgroup whose CFS quota caps it
// (bench/internal/runner.CPUQuota, as bench/echo -server-cpu-quota), and
// the rest is made cheap: the backend is bench/internal/fastmysql (one
// epoll thread that knows SELECT 1) and the clients are cmd/queryload
// (raw protocol, epoll, one write and one read per query). The proxy
// is then the bottleneck, which every run checks: its CPU over the window
// against its quota, and the share of the cgroup's enforcement periods in
// which the kernel throttled it.
//
// Every contender runs once per round, in an order that rotates, each
// with a fresh fake server and proxy; medians over the rounds, and the
// ratios of runs of the same round, go to a Markdown file.
//
// Run it from the bench module, as root (the cgroup):
//
//	cd bench && go run ./loops -out results/loops.md
//
// Everything listens and connects on loopback only.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/scalestack/scalestack/bench/internal/runner"
)

// variant is one proxy configuration: loops under a CPU quota. The zero
// variant is "direct": no proxy, the generator against the fake server,
// to show what those two cost and can reach on their own.
type variant struct {
	loops int
	quota float64 // share of one CPU
}

func (v variant) direct() bool { return v.loops == 0 }

func (v variant) String() string {
	if v.direct() {
		return "direct (no proxy)"
	}
	return fmt.Sprintf("%d loop(s) @ %.2g CPU", v.loops, v.quota)
}

// contender is a variant at one backend-connection count (direct runs
// once, with backendConns 0: it has no backends).
type contender struct {
	variant
	backendConns int
	other        bool // run with -other-bin instead of this tree's build
}

func (c contender) key() string {
	if c.direct() {
		return "direct"
	}
	k := fmt.Sprintf("%d@%g/b%d", c.loops, c.quota, c.backendConns)
	if c.other {
		k = "other:" + k
	}
	return k
}

// name is the variant, marked when it ran with the other build.
func (c contender) name() string {
	if c.other {
		return c.variant.String() + " [other]"
	}
	return c.variant.String()
}

// label is name with the other build's name spelled out.
func (c contender) label(s *settings) string {
	if c.other {
		return fmt.Sprintf("%s [%s]", c.variant, s.otherName)
	}
	return c.variant.String()
}

type settings struct {
	rounds       int
	conns        int
	backendConns []int
	variants     []variant
	warmup       time.Duration
	duration     time.Duration
	loadWorkers  int
	loadCPUs     string
	fakeCPUs     string
	pin          bool
	io           string
	network      string // tcp or unix, for the clients' and the backends' connections
	sockets      int    // Unix sockets named so far
	profileDir   string
	out          string
	root         string
	bin          string
	portBase     int
	commandLine  string
	otherBin     string // a second scalestack binary run beside this tree's
	otherName    string
	quotaPeriod  time.Duration
	quotas       map[float64]*runner.CPUQuota
	work         string // users and password files
}

func main() {
	var s settings
	var variants, backendConns string
	flag.IntVar(&s.rounds, "rounds", 5, "interleaved rounds; medians are over these")
	flag.IntVar(&s.conns, "conns", 256, "client connections, each with one query in flight")
	flag.StringVar(&backendConns, "backend-conns", "16", "the proxy's --backend-conns; a comma-separated list runs every variant at each")
	flag.StringVar(&variants, "variants", "1@0.5,2@1.0,1@1.0,direct", "proxy configurations LOOPS@CPU-QUOTA, in first-round order; direct: the generator against the fake server without a proxy (their own cost and ceiling)")
	flag.DurationVar(&s.warmup, "warmup", 2*time.Second, "traffic before each measured window")
	flag.DurationVar(&s.duration, "duration", 5*time.Second, "measured window per run")
	flag.DurationVar(&s.quotaPeriod, "quota-period", 100*time.Millisecond, "the CPU quota's enforcement period: the kernel gives a cgroup's quota to each CPU in slices of sched_cfs_bandwidth_slice_us (5 ms), so with the 10 ms of bench/echo a 2-loop proxy's first CPU takes a whole period's quota and its other loop stalls; 100 ms leaves each CPU several slices")
	flag.IntVar(&s.loadWorkers, "load-workers", 1, "queryload epoll threads")
	flag.StringVar(&s.loadCPUs, "load-cpus", "", "taskset CPU list for queryload (empty: not pinned)")
	flag.StringVar(&s.fakeCPUs, "fake-cpus", "", "taskset CPU list for the fake server (empty: not pinned)")
	flag.BoolVar(&s.pin, "pin", true, "pin the proxy's loops (--cpus) to the last LOOPS CPUs of the host, and the process to them")
	flag.StringVar(&s.io, "io", "epoll", "the proxy's --io")
	flag.StringVar(&s.network, "net", "unix", "how the clients reach the proxy and the proxy the fake: unix (Unix sockets; the kernel's part of each message costs a fraction of loopback TCP's, which on two cores the proxy would share with the generator and the fake) or tcp (loopback)")
	flag.StringVar(&s.otherBin, "other-bin", "", "a second scalestack binary (e.g. a candidate change built elsewhere): every proxy variant also runs with it, in the same rounds, and the report adds the ratios other / this tree's")
	flag.StringVar(&s.otherName, "other-name", "other build", "what the report calls -other-bin")
	flag.StringVar(&s.profileDir, "profile", "", "directory for a CPU profile of the proxy over each measured window (through its /debug/pprof; profiling costs CPU: leave it out of runs you quote)")
	flag.StringVar(&s.out, "out", "results/loops.md", "Markdown result file (empty: stdout)")
	flag.StringVar(&s.root, "root", "..", "the Scale Stack repository root")
	flag.IntVar(&s.portBase, "port", 27000, "first loopback port; each run takes three fresh ones")
	flag.IntVar(&runner.Nice, "nice", 0, "niceness of every started process (negative needs root; 0: inherit)")
	flag.Parse()
	s.commandLine = "go run ./loops " + strings.Join(os.Args[1:], " ")
	var err error
	if s.variants, err = parseVariants(variants); err != nil {
		log.Fatal(err)
	}
	if s.backendConns, err = parseInts(backendConns); err != nil {
		log.Fatalf("-backend-conns: %v", err)
	}
	if s.network != "tcp" && s.network != "unix" {
		log.Fatalf("-net %q: want tcp or unix", s.network)
	}
	if s.otherBin != "" {
		abs, err := filepath.Abs(s.otherBin)
		if err != nil {
			log.Fatal(err)
		}
		if _, err := os.Stat(abs); err != nil {
			log.Fatalf("-other-bin: %v", err)
		}
		s.otherBin = abs
	}
	if s.rounds < 1 || s.conns < 1 || s.duration <= 0 {
		log.Fatal("-rounds, -conns and -duration must be positive")
	}
	if err := prepareAndRun(&s); err != nil {
		log.Fatal(err)
	}
}

func parseVariants(list string) ([]variant, error) {
	var out []variant
	for _, item := range strings.Split(list, ",") {
		if strings.TrimSpace(item) == "direct" {
			out = append(out, variant{})
			continue
		}
		l, q, ok := strings.Cut(strings.TrimSpace(item), "@")
		loops, err1 := strconv.Atoi(l)
		quota, err2 := strconv.ParseFloat(q, 64)
		if !ok || err1 != nil || err2 != nil || loops < 1 || quota <= 0 {
			return nil, fmt.Errorf("-variants: %q is not LOOPS@CPU-QUOTA (e.g. 2@1.0)", item)
		}
		out = append(out, variant{loops, quota})
	}
	return out, nil
}

func parseInts(list string) ([]int, error) {
	var out []int
	for _, item := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(item))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", item)
		}
		out = append(out, n)
	}
	return out, nil
}

// prepareAndRun builds the binaries, creates the cgroups and the account
// files, runs the benchmark and writes the report; everything it set up is
// removed on every return.
func prepareAndRun(s *settings) error {
	dir, err := os.MkdirTemp("", "loopsbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	s.bin, s.work = filepath.Join(dir, "bin"), dir
	log.Printf("building into %s", s.bin)
	if err := runner.Build(s.root, filepath.Join(s.bin, "scalestack"), "./cmd/scalestack"); err != nil {
		return err
	}
	for _, pkg := range []string{"fastmysql", "queryload"} {
		if err := runner.Build(".", filepath.Join(s.bin, pkg), "./cmd/"+pkg); err != nil {
			return err
		}
	}
	if err := writeAccounts(s); err != nil {
		return err
	}
	s.quotas = map[float64]*runner.CPUQuota{}
	defer func() {
		for _, q := range s.quotas {
			if err := q.Remove(); err != nil {
				log.Print(err)
			}
		}
	}()
	for _, v := range s.variants {
		if !v.direct() && s.quotas[v.quota] == nil {
			q, err := runner.NewCPUQuotaPeriod(v.quota, s.quotaPeriod)
			if err != nil {
				return err
			}
			s.quotas[v.quota] = q
		}
	}
	if s.profileDir != "" {
		if err := os.MkdirAll(s.profileDir, 0o755); err != nil {
			return err
		}
	}
	var w io.Writer = os.Stdout
	if s.out != "" {
		f, err := os.Create(s.out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	return benchmark(w, s)
}

// Passwords of the benchmark's throwaway accounts (loopback only, files
// removed at the end). The client account is the fake's one account, with
// its password, as for a direct connection: the proxy, which runs each
// client as its own server account, then runs it as the account its
// backends log in as, without a COM_CHANGE_USER.
const (
	backendPassword = "bench-backend"
	clientPassword  = backendPassword
)

// writeAccounts writes the proxy's users file (made by `scalestack
// passwd`, as an operator would) and the backend password file, both
// private to the owner as the proxy requires.
func writeAccounts(s *settings) error {
	cmd := exec.Command(filepath.Join(s.bin, "scalestack"), "passwd", "bench")
	cmd.Stdin = strings.NewReader(clientPassword + "\n")
	line, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("scalestack passwd: %w", err)
	}
	if err := os.WriteFile(filepath.Join(s.work, "users"), line, 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(s.work, "backend-password"), []byte(backendPassword+"\n"), 0o600)
}

// run is one measured load run.
type run struct {
	runner.LoadReport
	Round      int
	ProxyCPU   float64 // CPU-seconds over the window, /proc/PID/stat
	FakeCPU    float64
	OtherCPU   float64 // CPU-seconds of every other process on the host over the window
	SoftirqCPU float64 // CPU-seconds of softirq work on the host over the window
	Window     float64 // seconds between the two samples
	Periods    int64   // cgroup enforcement periods over the window
	Throttled  int64   // of those, throttled
	Metrics    map[string]float64
	Load       string
	LoopEvents []float64 // I/O events per loop over the window
}

func (r run) perQuery(cpu float64) float64 {
	if r.Msgs == 0 {
		return 0
	}
	return cpu * 1e6 / float64(r.Msgs)
}

func (s *settings) nextAddr() string {
	s.portBase++
	return fmt.Sprintf("127.0.0.1:%d", s.portBase)
}

// nextDataAddr is a fresh address for a data connection's listener: a
// loopback port, or with -net unix a socket in the work directory.
func (s *settings) nextDataAddr(name string) string {
	if s.network == "unix" {
		s.sockets++
		return fmt.Sprintf("unix:%s/%s%d.sock", s.work, name, s.sockets)
	}
	return s.nextAddr()
}

// proxyCPUs is the CPU list the proxy's loops are pinned to: the last
// loops CPUs of the host (CPU 1 for one loop on two CPUs, as bench/echo
// pins its servers; both for two).
func proxyCPUs(loops int) string {
	n := runtime.NumCPU()
	var cpus []string
	for c := max(0, n-loops); c < n; c++ {
		cpus = append(cpus, strconv.Itoa(c))
	}
	return strings.Join(cpus, ",")
}

func loadRun(s *settings, c contender, round int) (run, error) {
	fake, err := runner.Start("fastmysql", s.fakeCPUs, filepath.Join(s.bin, "fastmysql"),
		"-listen", s.nextDataAddr("fake"), "-user", "bench", "-password-file", filepath.Join(s.work, "backend-password"))
	if err != nil {
		return run{}, err
	}
	defer fake.Stop()
	line, err := fake.WaitLine("listening ", 10*time.Second)
	if err != nil {
		return run{}, err
	}
	fakeAddr := strings.TrimPrefix(line, "listening ")
	if c.direct() {
		return directRun(s, c, round, fake, fakeAddr)
	}

	listen, admin := s.nextDataAddr("proxy"), s.nextAddr()
	bin := filepath.Join(s.bin, "scalestack")
	if c.other {
		bin = s.otherBin
	}
	argv := []string{bin, "mysqlproxy",
		"--listen", listen, "--backend", fakeAddr, "--backend-user", "bench",
		"--backend-password-file", filepath.Join(s.work, "backend-password"),
		"--users", filepath.Join(s.work, "users"),
		"--backend-conns", strconv.Itoa(c.backendConns), "--loops", strconv.Itoa(c.loops),
		"--io", s.io, "--admin", admin, "--log-level", "warn", "--queue-timeout", "60s"}
	cpus := ""
	if s.pin {
		cpus = proxyCPUs(c.loops)
		argv = append(argv, "--cpus", cpus)
	}
	quota := s.quotas[c.quota]
	proxy, err := runner.Start("scalestack mysqlproxy", cpus, quota.Wrap(argv)...)
	if err != nil {
		return run{}, err
	}
	defer proxy.Stop()
	if err := waitReady("http://"+admin+"/readyz", 15*time.Second); err != nil {
		return run{}, fmt.Errorf("proxy: %w; stderr: %s", err, proxy.Stderr())
	}

	var r run
	var cpu0, fake0 float64
	var host0 hostCPU
	var stat0 runner.CPUStat
	var metrics0 map[string]float64
	var t0 time.Time
	profileDone := make(chan error, 1)
	args := []string{"-addr", listen, "-user", "bench", "-password", clientPassword,
		"-conns", strconv.Itoa(s.conns), "-workers", strconv.Itoa(s.loadWorkers),
		"-warmup", s.warmup.String(), "-duration", s.duration.String()}
	rep, err := runner.RunLoadHook(filepath.Join(s.bin, "queryload"), s.loadCPUs, args, s.warmup+s.duration+2*time.Minute, func(open bool) error {
		var err error
		if open {
			// The scrape goes first and the CPU samples last, so its cost
			// falls outside the window.
			if metrics0, err = scrape("http://" + admin + "/metrics"); err != nil {
				return err
			}
			if s.profileDir != "" {
				file := filepath.Join(s.profileDir, fmt.Sprintf("round%d-%s.pprof", round+1, strings.NewReplacer("@", "-at-", "/", "-", ":", "-").Replace(c.key())))
				go func() { profileDone <- fetchProfile("http://"+admin, file, s.duration) }()
			}
			if stat0, err = quota.Stat(); err != nil {
				return err
			}
			t0 = time.Now()
			host0 = readHostCPU()
			if cpu0, err = runner.CPUSeconds(proxy.Pid()); err != nil {
				return err
			}
			fake0, err = runner.CPUSeconds(fake.Pid())
			return err
		}
		cpu1, err := runner.CPUSeconds(proxy.Pid())
		if err != nil {
			return err
		}
		fake1, err := runner.CPUSeconds(fake.Pid())
		if err != nil {
			return err
		}
		host1 := readHostCPU()
		r.Window = time.Since(t0).Seconds()
		stat1, err := quota.Stat()
		if err != nil {
			return err
		}
		r.ProxyCPU, r.FakeCPU = cpu1-cpu0, fake1-fake0
		r.OtherCPU = host1.procs - host0.procs - r.ProxyCPU - r.FakeCPU // the generator's is taken off below
		r.SoftirqCPU = host1.softirq - host0.softirq
		r.Periods, r.Throttled = stat1.Periods-stat0.Periods, stat1.Throttled-stat0.Throttled
		metrics1, err := scrape("http://" + admin + "/metrics")
		if err != nil {
			return err
		}
		r.Metrics = map[string]float64{}
		for k, v := range metrics1 {
			r.Metrics[k] = v - metrics0[k]
		}
		for i := range c.loops {
			r.LoopEvents = append(r.LoopEvents, r.Metrics[fmt.Sprintf(`scalestack_loop_events_total{loop="%d"}`, i)])
		}
		return nil
	})
	if err != nil {
		return run{}, fmt.Errorf("%s: %w", c.key(), err)
	}
	if s.profileDir != "" {
		if err := <-profileDone; err != nil {
			log.Printf("  profile: %v", err)
		}
	}
	r.LoadReport, r.Round, r.Load = rep, round, runner.LoadAvg()
	r.OtherCPU -= rep.GeneratorCPUSeconds
	return r, nil
}

// directRun runs the generator against the fake server alone.
func directRun(s *settings, c contender, round int, fake *runner.Proc, fakeAddr string) (run, error) {
	var r run
	var fake0 float64
	var host0 hostCPU
	var t0 time.Time
	args := []string{"-addr", fakeAddr, "-user", "bench", "-password", backendPassword,
		"-conns", strconv.Itoa(s.conns), "-workers", strconv.Itoa(s.loadWorkers),
		"-warmup", s.warmup.String(), "-duration", s.duration.String()}
	rep, err := runner.RunLoadHook(filepath.Join(s.bin, "queryload"), s.loadCPUs, args, s.warmup+s.duration+2*time.Minute, func(open bool) error {
		fakeCPU, err := runner.CPUSeconds(fake.Pid())
		if open {
			t0, host0, fake0 = time.Now(), readHostCPU(), fakeCPU
			return err
		}
		r.Window = time.Since(t0).Seconds()
		r.FakeCPU = fakeCPU - fake0
		host1 := readHostCPU()
		r.OtherCPU = host1.procs - host0.procs - r.FakeCPU
		r.SoftirqCPU = host1.softirq - host0.softirq
		return err
	})
	if err != nil {
		return run{}, fmt.Errorf("%s: %w", c.key(), err)
	}
	r.LoadReport, r.Round, r.Load = rep, round, runner.LoadAvg()
	r.OtherCPU -= rep.GeneratorCPUSeconds
	return r, nil
}

// hostCPU is what /proc/stat's cpu line says every CPU has done so far,
// in CPU-seconds: process time (user, nice, system) and softirq time. The
// softirq part is mostly the loopback network path (a packet's receive
// processing), which the kernel charges to no process: on a host running
// only the benchmark, most of it is the benchmark's.
type hostCPU struct{ procs, softirq float64 }

func readHostCPU() hostCPU {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return hostCPU{}
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return hostCPU{}
	}
	return parseHostCPU(sc.Text())
}

// parseHostCPU reads "cpu user nice system idle iowait irq softirq ...".
func parseHostCPU(line string) hostCPU {
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return hostCPU{}
	}
	v := func(i int) float64 {
		n, _ := strconv.ParseFloat(f[i], 64)
		return n / 100 // USER_HZ
	}
	return hostCPU{procs: v(1) + v(2) + v(3), softirq: v(7)}
}

func waitReady(url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %v (last: %v)", url, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// scrape reads a Prometheus text page into series -> value (series keep
// their labels as written).
func scrape(url string) (map[string]float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return parseMetrics(resp.Body)
}

func parseMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// fetchProfile saves a CPU profile of d from the proxy's pprof endpoint.
func fetchProfile(base, file string, d time.Duration) error {
	secs := max(1, int(d.Round(time.Second)/time.Second))
	resp, err := http.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, secs))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile: %s", resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func benchmark(w io.Writer, s *settings) error {
	var all []contender
	byKey := map[string]contender{}
	var keys []string
	builds := []bool{false}
	if s.otherBin != "" {
		builds = append(builds, true)
	}
	for _, b := range s.backendConns {
		for _, v := range s.variants {
			for _, other := range builds {
				c := contender{v, b, other}
				if v.direct() {
					c.backendConns, c.other = 0, false
				}
				if _, dup := byKey[c.key()]; dup {
					continue
				}
				all = append(all, c)
				byKey[c.key()] = c
				keys = append(keys, c.key())
			}
		}
	}
	started := time.Now()
	loadStart := runner.LoadAvg()
	runs, broken := runner.Interleave(keys, s.rounds, func(key string, round int) (run, error) {
		c := byKey[key]
		log.Printf("round %d: %s, %d backend conns", round+1, c.label(s), c.backendConns) // 0 for direct
		r, err := loadRun(s, c, round)
		if err != nil {
			return run{}, err
		}
		log.Printf("  %.0f q/s, proxy %.2f CPU-s (%.1f µs/q), throttled %d/%d periods, generator %.1f µs/q, fake %.1f µs/q, softirq %.2f CPU-s, other %.2f CPU-s, adopted %.0f, load %s",
			r.MsgsPerSec, r.ProxyCPU, r.perQuery(r.ProxyCPU), r.Throttled, r.Periods,
			r.perQuery(r.GeneratorCPUSeconds), r.perQuery(r.FakeCPU), r.SoftirqCPU, r.OtherCPU, r.Metrics["scalestack_mysqlproxy_backends_adopted_total"], r.Load)
		return r, nil
	})
	report(w, s, all, runs, broken, started, loadStart)
	return nil
}
