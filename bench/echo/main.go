// Command echo benchmarks echo servers side by side on this machine, in one
// command: Scale Stack's engine on epoll and on io_uring, a goroutine per
// connection on Go's net package, and gnet v2. Runs are interleaved (the
// server order rotates each round) and repeated, and the medians are
// reported, because a shared two-core machine drifts by tens of percent
// between minutes. It then holds many idle connections on each server and
// reports resident memory per connection. Results go to a Markdown file.
//
// Run it from the bench module:
//
//	cd bench && go run ./echo -out results/echo.md
//
// Everything listens and connects on loopback only.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/scalestack/scalestack/bench/internal/runner"
)

type settings struct {
	rounds         int
	conns          int
	size           int
	inFlight       int
	warmup         time.Duration
	duration       time.Duration
	serverCPUs     string
	loadCPUs       string
	loops          int
	servers        []string
	uringBin       string
	memConns       int
	memProcs       int
	memServers     []string
	out            string
	root           string
	portBase       int
	bin            string
	commandLine    string
	memHoldTimeout time.Duration
	churnRounds    int
	churnLoops     int
	churnWorkers   int
	engine         string
	loadWorkers    int
	serverQuota    float64
	quota          *runner.CPUQuota // set when serverQuota > 0
}

// server is one contender.
type server struct {
	name string
	argv func(addr string) []string
}

// run is one measured load run.
type run struct {
	runner.LoadReport
	CPUSeconds float64 // the server's, over the measured window
	Load       string  // load average when the run ended
	Round      int
}

func main() {
	var s settings
	var servers, memServers string
	flag.IntVar(&s.rounds, "rounds", 3, "interleaved rounds; medians are over these")
	flag.IntVar(&s.conns, "conns", 1000, "connections per load run")
	flag.IntVar(&s.size, "size", 64, "message size in bytes")
	flag.IntVar(&s.inFlight, "inflight", 1, "messages in flight per connection")
	flag.DurationVar(&s.warmup, "warmup", time.Second, "warm-up before each measured window")
	flag.DurationVar(&s.duration, "duration", 5*time.Second, "measured window per run")
	flag.StringVar(&s.engine, "engine", "epoll", "load generator engine: epoll (locked threads with an epoll instance each) or net (Go net, one goroutine per connection)")
	flag.IntVar(&s.loadWorkers, "load-workers", 0, "epoll generator threads (0: one per CPU in -load-cpus)")
	flag.StringVar(&s.serverCPUs, "server-cpus", "1", "taskset CPU list for servers (empty: no pinning)")
	flag.Float64Var(&s.serverQuota, "server-cpu-quota", 0, "cap each server in the msgs/s runs at this share of one CPU with a cgroup CPU quota (e.g. 0.5; needs root), so that the server, not the generator, sets the rate on a small machine (0: no cap)")
	flag.StringVar(&s.loadCPUs, "load-cpus", "0", "taskset CPU list for the load generator (empty: no pinning)")
	flag.IntVar(&s.loops, "loops", 1, "event loops (GOMAXPROCS for the Go server) per server")
	flag.StringVar(&servers, "servers", "epoll,uring,go,gnet", "contenders, in first-round order")
	flag.StringVar(&s.uringBin, "uring-bin", "", "scalestack binary to use for the uring contender (default: the one built from this tree)")
	flag.IntVar(&s.memConns, "mem-conns", 16000, "idle connections for the memory figure (0: skip)")
	flag.IntVar(&s.memProcs, "mem-procs", 2, "generator processes holding the idle connections")
	flag.StringVar(&memServers, "mem-servers", "epoll,uring,go,gnet", "servers whose memory is measured")
	flag.DurationVar(&s.memHoldTimeout, "mem-timeout", 3*time.Minute, "how long opening the idle connections may take")
	flag.IntVar(&s.churnRounds, "churn-rounds", 5, "interleaved rounds of the accept comparison (0: skip)")
	flag.IntVar(&s.churnLoops, "churn-loops", 2, "event loops of the servers in the accept comparison")
	flag.IntVar(&s.churnWorkers, "churn-workers", 64, "generator goroutines opening connections in the accept comparison")
	flag.StringVar(&s.out, "out", "results/echo.md", "Markdown result file (empty: stdout)")
	flag.StringVar(&s.root, "root", "..", "the Scale Stack repository root")
	flag.IntVar(&s.portBase, "port", 17000, "first loopback port; each run uses a fresh one")
	flag.IntVar(&runner.Nice, "nice", 0, "niceness of every started process (negative needs root; 0: inherit)")
	flag.Parse()
	s.servers = splitList(servers)
	s.memServers = splitList(memServers)
	s.commandLine = "go run ./echo " + strings.Join(os.Args[1:], " ")

	if err := prepareAndRun(&s); err != nil {
		log.Fatal(err)
	}
}

// prepareAndRun builds the contenders, runs the benchmark and writes the
// report; what it sets up (a build directory, a cgroup) is removed on
// every return.
func prepareAndRun(s *settings) error {
	dir, err := os.MkdirTemp("", "echobench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	s.bin = dir
	if err := buildAll(s); err != nil {
		return err
	}
	if s.serverQuota > 0 {
		if s.quota, err = runner.NewCPUQuota(s.serverQuota); err != nil {
			return err
		}
		defer func() {
			if err := s.quota.Remove(); err != nil {
				log.Print(err)
			}
		}()
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

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func buildAll(s *settings) error {
	log.Printf("building into %s", s.bin)
	if err := runner.Build(s.root, filepath.Join(s.bin, "scalestack"), "./cmd/scalestack"); err != nil {
		return err
	}
	for _, pkg := range []string{"echoserver", "echoload"} {
		if err := runner.Build(".", filepath.Join(s.bin, pkg), "./cmd/"+pkg); err != nil {
			return err
		}
	}
	return nil
}

func contenders(s *settings) map[string]server {
	loops := strconv.Itoa(s.loops)
	ours := func(bin, io string) func(string) []string {
		return func(addr string) []string {
			return []string{bin, "echo", "--listen", addr, "--loops", loops, "--io", io, "--log-level", "warn"}
		}
	}
	scalestack := filepath.Join(s.bin, "scalestack")
	uringBin := scalestack
	if s.uringBin != "" {
		uringBin = s.uringBin
	}
	other := func(impl string) func(string) []string {
		return func(addr string) []string {
			return []string{filepath.Join(s.bin, "echoserver"), "-impl", impl, "-listen", addr, "-loops", loops}
		}
	}
	return map[string]server{
		"epoll": {"scalestack epoll", ours(scalestack, "epoll")},
		"uring": {"scalestack io_uring", ours(uringBin, "uring")},
		"go":    {"Go net (goroutine per conn)", other("go")},
		"gnet":  {"gnet v2", other("gnet")},
	}
}

// acceptors are the two ways Scale Stack accepts on several loops.
func acceptors(s *settings) map[string]server {
	bin := filepath.Join(s.bin, "scalestack")
	argv := func(extra ...string) func(string) []string {
		return func(addr string) []string {
			return append([]string{bin, "echo", "--listen", addr, "--loops", strconv.Itoa(s.churnLoops), "--io", "epoll", "--log-level", "warn"}, extra...)
		}
	}
	return map[string]server{
		"reuseport": {"SO_REUSEPORT socket per loop", argv()},
		"spread":    {"one acceptor spreading (--spread)", argv("--spread")},
	}
}

func churnRun(s *settings, srv server) (run, error) {
	p, addr, err := startServer(s, srv, s.serverCPUs, nil)
	if err != nil {
		return run{}, err
	}
	defer p.Stop()
	rep, cpu, err := runner.RunLoad(filepath.Join(s.bin, "echoload"), s.loadCPUs, []string{
		"-churn", "-addr", addr, "-conns", strconv.Itoa(s.churnWorkers), "-size", strconv.Itoa(s.size),
		"-warmup", s.warmup.String(), "-duration", s.duration.String(),
	}, s.warmup+s.duration+time.Minute, p.Pid())
	if err != nil {
		return run{}, fmt.Errorf("%s: %w", srv.name, err)
	}
	return run{LoadReport: rep, CPUSeconds: cpu[0], Load: runner.LoadAvg()}, nil
}

func (s *settings) nextAddr() string {
	s.portBase++
	return fmt.Sprintf("127.0.0.1:%d", s.portBase)
}

// startServer starts a contender and waits until it accepts; under quota
// unless that is nil.
func startServer(s *settings, srv server, cpus string, quota *runner.CPUQuota) (*runner.Proc, string, error) {
	addr := s.nextAddr()
	argv := srv.argv(addr)
	if quota != nil {
		argv = quota.Wrap(argv)
	}
	p, err := runner.Start(srv.name, cpus, argv...)
	if err != nil {
		return nil, "", err
	}
	if err := runner.WaitDial("tcp", addr, 5*time.Second); err != nil {
		p.Stop()
		return nil, "", fmt.Errorf("%s: %w; stderr: %s", srv.name, err, p.Stderr())
	}
	return p, addr, nil
}

func loadRun(s *settings, srv server) (run, error) {
	p, addr, err := startServer(s, srv, s.serverCPUs, s.quota)
	if err != nil {
		return run{}, err
	}
	defer p.Stop()
	rep, cpu, err := runner.RunLoad(filepath.Join(s.bin, "echoload"), s.loadCPUs, []string{
		"-addr", addr, "-conns", strconv.Itoa(s.conns), "-size", strconv.Itoa(s.size),
		"-inflight", strconv.Itoa(s.inFlight), "-warmup", s.warmup.String(), "-duration", s.duration.String(),
		"-engine", s.engine, "-workers", strconv.Itoa(s.loadWorkers),
	}, s.warmup+s.duration+time.Minute, p.Pid())
	if err != nil {
		return run{}, fmt.Errorf("%s: %w", srv.name, err)
	}
	return run{LoadReport: rep, CPUSeconds: cpu[0], Load: runner.LoadAvg()}, nil
}

// memory is one idle-connection measurement.
type memory struct {
	rssBefore, rssAfter, fds int
}

func memoryRun(s *settings, srv server) (memory, error) {
	p, addr, err := startServer(s, srv, "", nil)
	if err != nil {
		return memory{}, err
	}
	defer p.Stop()
	time.Sleep(300 * time.Millisecond)
	var m memory
	if m.rssBefore, err = runner.RSSKiB(p.Pid()); err != nil {
		return m, err
	}
	per := (s.memConns + s.memProcs - 1) / s.memProcs
	var holders []*runner.Proc
	defer func() {
		for _, h := range holders {
			h.Stop()
		}
	}()
	left := s.memConns
	for i := 0; i < s.memProcs && left > 0; i++ {
		n := min(per, left)
		left -= n
		h, err := runner.Start("holder", "", filepath.Join(s.bin, "echoload"),
			"-addr", addr, "-conns", strconv.Itoa(n), "-hold", "10m")
		if err != nil {
			return m, err
		}
		holders = append(holders, h)
	}
	for _, h := range holders {
		if _, err := h.WaitLine("holding", s.memHoldTimeout); err != nil {
			return m, err
		}
	}
	time.Sleep(time.Second)
	if m.rssAfter, err = runner.RSSKiB(p.Pid()); err != nil {
		return m, err
	}
	if m.fds, err = runner.OpenFDs(p.Pid()); err != nil {
		return m, err
	}
	return m, nil
}

func benchmark(w io.Writer, s *settings) error {
	all := contenders(s)
	for _, name := range append(append([]string{}, s.servers...), s.memServers...) {
		if _, ok := all[name]; !ok {
			return fmt.Errorf("unknown server %q (want epoll, uring, go, gnet)", name)
		}
	}
	started := time.Now()
	loadStart := runner.LoadAvg()
	runs, broken := runner.Interleave(s.servers, s.rounds, func(name string, round int) (run, error) {
		log.Printf("round %d: %s", round+1, all[name].name)
		r, err := loadRun(s, all[name])
		if err != nil {
			return run{}, err
		}
		log.Printf("  %.0f msgs/s, p50 %.0f µs, p99 %.0f µs, server CPU %.2f s, generator CPU %.2f s, load %s", r.MsgsPerSec, r.P50Micros, r.P99Micros, r.CPUSeconds, r.GeneratorCPUSeconds, r.Load)
		r.Round = round
		return r, nil
	})
	var churnRuns map[string][]run
	var churnBroken map[string]string
	if s.churnRounds > 0 {
		acc := acceptors(s)
		churnRuns, churnBroken = runner.Interleave([]string{"reuseport", "spread"}, s.churnRounds, func(name string, round int) (run, error) {
			log.Printf("accept round %d: %s", round+1, acc[name].name)
			r, err := churnRun(s, acc[name])
			if err != nil {
				return run{}, err
			}
			log.Printf("  %.0f conns/s, p50 %.0f µs, p99 %.0f µs, server CPU %.2f s", r.MsgsPerSec, r.P50Micros, r.P99Micros, r.CPUSeconds)
			r.Round = round
			return r, nil
		})
	}
	mems := map[string]memory{}
	memBroken := map[string]string{}
	if s.memConns > 0 {
		for _, name := range s.memServers {
			log.Printf("memory: %s with %d idle connections", all[name].name, s.memConns)
			m, err := memoryRun(s, all[name])
			if err != nil {
				log.Printf("  %v", err)
				memBroken[name] = err.Error()
				continue
			}
			log.Printf("  RSS %d KiB -> %d KiB, %d fds", m.rssBefore, m.rssAfter, m.fds)
			mems[name] = m
		}
	}
	report(w, s, all, runs, broken, mems, memBroken, started, loadStart)
	if s.churnRounds > 0 {
		reportChurn(w, s, acceptors(s), churnRuns, churnBroken)
	}
	return nil
}

func reportChurn(w io.Writer, s *settings, acc map[string]server, runs map[string][]run, broken map[string]string) {
	fmt.Fprintf(w, "\n## Accepting: SO_REUSEPORT per loop vs one spreading acceptor\n\n")
	fmt.Fprintf(w, "`scalestack echo --loops %d` (epoll), pinned like the servers above, with and without `--spread`. The generator (`echoload -churn`) runs %d goroutines that each connect, echo one %d-byte message, reset the connection and start over, so every message is a new connection; %v warm-up then %v measured, %d interleaved rounds, medians. Server CPU is per connection (accept, register, one read and one send, close).\n\n",
		s.churnLoops, s.churnWorkers, s.size, s.warmup, s.duration, s.churnRounds)
	fmt.Fprintf(w, "| accepting | conns/s (median) | p50 µs | p99 µs | server CPU µs/conn | runs, conns/s |\n|---|---:|---:|---:|---:|---|\n")
	for _, name := range []string{"reuseport", "spread"} {
		rs := runs[name]
		if len(rs) == 0 {
			fmt.Fprintf(w, "| %s | — | — | — | — | failed: %s |\n", acc[name].name, oneLine(broken[name]))
			continue
		}
		var rate, p50, p99, cpu []float64
		var each []string
		for _, r := range rs {
			rate = append(rate, r.MsgsPerSec)
			p50 = append(p50, r.P50Micros)
			p99 = append(p99, r.P99Micros)
			if r.Msgs > 0 {
				cpu = append(cpu, r.CPUSeconds*1e6/float64(r.Msgs))
			}
			each = append(each, fmt.Sprintf("%.0f", r.MsgsPerSec))
		}
		note := strings.Join(each, ", ")
		if broken[name] != "" {
			note += "; then failed: " + oneLine(broken[name])
		}
		fmt.Fprintf(w, "| %s | %.0f | %.0f | %.0f | %.2f | %s |\n", acc[name].name, runner.Median(rate), runner.Median(p50), runner.Median(p99), runner.Median(cpu), note)
	}
	var per []float64
	var each []string
	for _, a := range runs["spread"] {
		for _, b := range runs["reuseport"] {
			if a.Round == b.Round && b.MsgsPerSec > 0 {
				per = append(per, a.MsgsPerSec/b.MsgsPerSec)
				each = append(each, fmt.Sprintf("%.2f", a.MsgsPerSec/b.MsgsPerSec))
			}
		}
	}
	if len(per) > 0 {
		fmt.Fprintf(w, "\nspread / reuseport, conns/s: **%.2f×** (median of per-round ratios: %s).\n", runner.Median(per), strings.Join(each, ", "))
	}
}

func report(w io.Writer, s *settings, all map[string]server, runs map[string][]run, broken map[string]string,
	mems map[string]memory, memBroken map[string]string, started time.Time, loadStart string) {
	fmt.Fprintf(w, "# Echo: Scale Stack vs Go net vs gnet\n\n")
	fmt.Fprintf(w, "Generated by `bench/echo` on %s in %s.\n\n", started.UTC().Format("2006-01-02 15:04 UTC"), time.Since(started).Round(time.Second))
	fmt.Fprintf(w, "Command (from `bench/`):\n\n    %s\n\n", s.commandLine)
	fmt.Fprintf(w, "Machine: %s. Load average (1/5/15 min) at start %s, at end %s: other work shared the machine.\n\n", runner.MachineFacts(), loadStart, runner.LoadAvg())
	if runner.Nice != 0 {
		fmt.Fprintf(w, "Every server, proxy and generator process ran at niceness %d, to win the CPU against that other work more often (the same for every contender).\n\n", runner.Nice)
	}
	pin := func(cpus string) string {
		if cpus == "" {
			return "not pinned"
		}
		return "pinned to CPU " + cpus
	}
	fmt.Fprintf(w, "Load: %d connections, %d-byte messages, %d in flight per connection, %v warm-up then %v measured, %d interleaved rounds (order rotated each round); medians below. Servers %s with %d event loop(s) each; the generator (`bench/cmd/echoload -engine %s`: %s) %s. Server CPU is user+system time from /proc/PID/stat over the measured window; generator CPU is echoload's own (getrusage) over the same window, as a share of one CPU: near 100%% would mean the generator, not the server, set the rate.\n\n",
		s.conns, s.size, s.inFlight, s.warmup, s.duration, s.rounds, pin(s.serverCPUs), s.loops, s.engine, engineWords(s), pin(s.loadCPUs))
	if s.quota != nil {
		fmt.Fprintf(w, "**Server-bound:** each server ran under a CPU quota of %.2f of one CPU (a cgroup with CFS bandwidth control, `-server-cpu-quota`), so the server, not the generator, set the rate: msgs/s here is how many messages a server handles per %.2f CPU-second, as on a host where the generator has cores to spare. Generator CPU well below 100%% confirms it.\n\n", s.quota.Share, s.quota.Share)
	}

	fmt.Fprintf(w, "| server | msgs/s (median) | p50 µs | p99 µs | server CPU µs/msg | generator CPU %% | generator CPU µs/msg | runs, msgs/s |\n|---|---:|---:|---:|---:|---:|---:|---|\n")
	median := map[string]float64{}
	for _, name := range s.servers {
		rs := runs[name]
		if len(rs) == 0 {
			fmt.Fprintf(w, "| %s | — | — | — | — | — | — | failed: %s |\n", all[name].name, oneLine(broken[name]))
			continue
		}
		var rate, p50, p99, cpu, genShare, genCPU []float64
		var each []string
		for _, r := range rs {
			rate = append(rate, r.MsgsPerSec)
			p50 = append(p50, r.P50Micros)
			p99 = append(p99, r.P99Micros)
			if r.Msgs > 0 {
				cpu = append(cpu, r.CPUSeconds*1e6/float64(r.Msgs))
				genCPU = append(genCPU, r.GeneratorCPUSeconds*1e6/float64(r.Msgs))
			}
			if r.Seconds > 0 {
				genShare = append(genShare, 100*r.GeneratorCPUSeconds/r.Seconds)
			}
			each = append(each, fmt.Sprintf("%.0f", r.MsgsPerSec))
		}
		median[name] = runner.Median(rate)
		note := strings.Join(each, ", ")
		if broken[name] != "" {
			note += "; then failed: " + oneLine(broken[name])
		}
		fmt.Fprintf(w, "| %s | %.0f | %.0f | %.0f | %.2f | %.0f | %.2f | %s |\n", all[name].name, median[name], runner.Median(p50), runner.Median(p99), runner.Median(cpu), runner.Median(genShare), runner.Median(genCPU), note)
	}
	fmt.Fprintf(w, "\nRatios of msgs/s: of the medians above, and the median of the per-round ratios (contenders of one round ran back to back, so a per-round ratio cancels most of the background drift):\n\n")
	fmt.Fprintf(w, "| ratio | of medians | median per-round ratio | per-round ratios | target |\n|---|---:|---:|---|---|\n")
	ratio := func(a, b, target string) {
		if median[a] == 0 || median[b] == 0 {
			return
		}
		var per []float64
		var each []string
		for _, ra := range runs[a] {
			for _, rb := range runs[b] {
				if ra.Round == rb.Round && rb.MsgsPerSec > 0 {
					per = append(per, ra.MsgsPerSec/rb.MsgsPerSec)
					each = append(each, fmt.Sprintf("%.2f", ra.MsgsPerSec/rb.MsgsPerSec))
				}
			}
		}
		fmt.Fprintf(w, "| %s / %s | %.2f× | **%.2f×** | %s | %s |\n", all[a].name, all[b].name, median[a]/median[b], runner.Median(per), strings.Join(each, ", "), target)
	}
	ratio("epoll", "go", "≥ 1.2×")
	ratio("epoll", "gnet", "≥ 1.0×")
	ratio("uring", "epoll", "")
	ratio("uring", "go", "")
	ratio("uring", "gnet", "")

	if s.memConns > 0 {
		fmt.Fprintf(w, "\n## Memory: %d idle connections\n\n", s.memConns)
		fmt.Fprintf(w, "Each server (not pinned, %d loop(s)) is started, its VmRSS read, then %d `echoload -hold` processes open %d connections in all and exchange one byte on each; a second later VmRSS is read again. Per connection = (after − before) / connections.\n\n", s.loops, s.memProcs, s.memConns)
		fmt.Fprintf(w, "| server | RSS before KiB | RSS after KiB | open fds | KiB per connection |\n|---|---:|---:|---:|---:|\n")
		for _, name := range s.memServers {
			m, ok := mems[name]
			if !ok {
				fmt.Fprintf(w, "| %s | — | — | — | failed: %s |\n", all[name].name, oneLine(memBroken[name]))
				continue
			}
			fmt.Fprintf(w, "| %s | %d | %d | %d | %.2f |\n", all[name].name, m.rssBefore, m.rssAfter, m.fds, float64(m.rssAfter-m.rssBefore)/float64(s.memConns))
		}
	}
}

// engineWords says how the generator drives its connections.
func engineWords(s *settings) string {
	if s.engine != "epoll" {
		return "Go net, one goroutine per connection"
	}
	threads := "one per CPU it may run on"
	if s.loadWorkers > 0 {
		threads = strconv.Itoa(s.loadWorkers)
	}
	return "locked threads (" + threads + "), each with its own epoll instance and non-blocking sockets, one clock read per epoll_wait batch"
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
