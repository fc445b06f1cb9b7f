// Command tcpproxy benchmarks `scalestack tcpproxy` against HAProxy in TCP
// mode, side by side, in one command: both forward the same echo load to
// the same kind of echo backend (`scalestack echo` on epoll), and the
// report gives throughput and the proxy's CPU time per million messages,
// read from /proc/PID/stat over the measured window. Runs are interleaved
// and repeated; medians are reported. Loopback only.
//
// Run it from the bench module:
//
//	cd bench && go run ./tcpproxy -out results/tcpproxy.md
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/scalestack/scalestack/bench/internal/runner"
)

type settings struct {
	rounds      int
	conns       int
	size        int
	inFlight    int
	warmup      time.Duration
	duration    time.Duration
	proxyCPUs   string
	otherCPUs   string
	loops       int
	proxies     []string
	out         string
	root        string
	port        int
	bin         string
	commandLine string
	engine      string
	loadWorkers int
}

type proxy struct {
	name  string
	start func(s *settings, listen, backend string) (*runner.Proc, error)
}

type run struct {
	runner.LoadReport
	ProxyCPU float64
	Load     string
	Round    int
}

// cpuPerMillion is the proxy's CPU seconds per million messages.
func (r run) cpuPerMillion() float64 { return r.ProxyCPU * 1e6 / float64(max(r.Msgs, 1)) }

func main() {
	var s settings
	var proxies string
	flag.IntVar(&s.rounds, "rounds", 3, "interleaved rounds; medians are over these")
	flag.IntVar(&s.conns, "conns", 1000, "client connections (each proxied to its own backend connection)")
	flag.IntVar(&s.size, "size", 64, "message size in bytes")
	flag.IntVar(&s.inFlight, "inflight", 1, "messages in flight per connection")
	flag.DurationVar(&s.warmup, "warmup", time.Second, "warm-up before each measured window")
	flag.DurationVar(&s.duration, "duration", 5*time.Second, "measured window per run")
	flag.StringVar(&s.engine, "engine", "epoll", "load generator engine: epoll (locked threads with an epoll instance each) or net (Go net, one goroutine per connection)")
	flag.IntVar(&s.loadWorkers, "load-workers", 0, "epoll generator threads (0: one per CPU in -other-cpus)")
	flag.StringVar(&s.proxyCPUs, "proxy-cpus", "1", "taskset CPU list for the proxy (empty: no pinning)")
	flag.StringVar(&s.otherCPUs, "other-cpus", "0", "taskset CPU list for the echo backend and the load generator (empty: no pinning)")
	flag.IntVar(&s.loops, "loops", 1, "proxy event loops (HAProxy nbthread)")
	flag.StringVar(&proxies, "proxies", "scalestack,haproxy", "contenders, in first-round order (scalestack, scalestack-uring, haproxy)")
	flag.StringVar(&s.out, "out", "results/tcpproxy.md", "Markdown result file (empty: stdout)")
	flag.StringVar(&s.root, "root", "..", "the Scale Stack repository root")
	flag.IntVar(&s.port, "port", 18000, "first loopback port; each run uses fresh ones")
	flag.IntVar(&runner.Nice, "nice", 0, "niceness of every started process (negative needs root; 0: inherit)")
	flag.Parse()
	for _, p := range strings.Split(proxies, ",") {
		if p = strings.TrimSpace(p); p != "" {
			s.proxies = append(s.proxies, p)
		}
	}
	s.commandLine = "go run ./tcpproxy " + strings.Join(os.Args[1:], " ")
	if _, err := exec.LookPath("haproxy"); err != nil {
		log.Fatalf("haproxy not found: %v", err)
	}
	dir, err := os.MkdirTemp("", "proxybench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	s.bin = dir
	log.Printf("building into %s", dir)
	if err := runner.Build(s.root, filepath.Join(dir, "scalestack"), "./cmd/scalestack"); err != nil {
		log.Fatal(err)
	}
	if err := runner.Build(".", filepath.Join(dir, "echoload"), "./cmd/echoload"); err != nil {
		log.Fatal(err)
	}
	var w io.Writer = os.Stdout
	if s.out != "" {
		f, err := os.Create(s.out)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		w = f
	}
	if err := benchmark(w, &s); err != nil {
		log.Fatal(err)
	}
}

func (s *settings) nextAddr() string {
	s.port++
	return fmt.Sprintf("127.0.0.1:%d", s.port)
}

func ours(io string) func(s *settings, listen, backend string) (*runner.Proc, error) {
	return func(s *settings, listen, backend string) (*runner.Proc, error) {
		return runner.Start("scalestack tcpproxy", s.proxyCPUs, filepath.Join(s.bin, "scalestack"), "tcpproxy",
			"--listen", listen, "--backend", backend, "--loops", strconv.Itoa(s.loops), "--io", io, "--log-level", "warn")
	}
}

// haproxyConfig is a minimal TCP-mode forwarder: no logging, no health
// checks, one server, as many threads as our proxy has loops.
const haproxyConfig = `global
    nbthread %d
    maxconn 8000

defaults
    mode tcp
    timeout connect 5s
    timeout client 1m
    timeout server 1m

frontend fe
    bind %s
    default_backend be

backend be
    server echo %s
`

func startHAProxy(s *settings, listen, backend string) (*runner.Proc, error) {
	cfg := filepath.Join(s.bin, fmt.Sprintf("haproxy-%s.cfg", strings.ReplaceAll(listen, ":", "_")))
	if err := os.WriteFile(cfg, fmt.Appendf(nil, haproxyConfig, s.loops, listen, backend), 0o644); err != nil {
		return nil, err
	}
	return runner.Start("haproxy", s.proxyCPUs, "haproxy", "-db", "-f", cfg)
}

func contenders() map[string]proxy {
	return map[string]proxy{
		"scalestack":       {"scalestack tcpproxy (epoll)", ours("epoll")},
		"scalestack-uring": {"scalestack tcpproxy (io_uring)", ours("uring")},
		"haproxy":          {haproxyVersion(), startHAProxy},
	}
}

func haproxyVersion() string {
	out, err := exec.Command("haproxy", "-v").Output()
	if err != nil {
		return "HAProxy"
	}
	f := strings.Fields(string(out))
	if len(f) >= 3 {
		return "HAProxy " + f[2]
	}
	return "HAProxy"
}

func loadRun(s *settings, p proxy) (run, error) {
	backendAddr := s.nextAddr()
	backend, err := runner.Start("echo backend", s.otherCPUs, filepath.Join(s.bin, "scalestack"), "echo",
		"--listen", backendAddr, "--loops", "1", "--log-level", "warn")
	if err != nil {
		return run{}, err
	}
	defer backend.Stop()
	if err := runner.WaitDial("tcp", backendAddr, 5*time.Second); err != nil {
		return run{}, fmt.Errorf("echo backend: %w; stderr: %s", err, backend.Stderr())
	}
	listen := s.nextAddr()
	px, err := p.start(s, listen, backendAddr)
	if err != nil {
		return run{}, err
	}
	defer px.Stop()
	if err := runner.WaitDial("tcp", listen, 5*time.Second); err != nil {
		return run{}, fmt.Errorf("%s: %w; stderr: %s", p.name, err, px.Stderr())
	}
	rep, cpu, err := runner.RunLoad(filepath.Join(s.bin, "echoload"), s.otherCPUs, []string{
		"-addr", listen, "-conns", strconv.Itoa(s.conns), "-size", strconv.Itoa(s.size),
		"-inflight", strconv.Itoa(s.inFlight), "-warmup", s.warmup.String(), "-duration", s.duration.String(),
		"-engine", s.engine, "-workers", strconv.Itoa(s.loadWorkers),
	}, s.warmup+s.duration+time.Minute, px.Pid())
	if err != nil {
		return run{}, fmt.Errorf("%s: %w", p.name, err)
	}
	return run{LoadReport: rep, ProxyCPU: cpu[0], Load: runner.LoadAvg()}, nil
}

func benchmark(w io.Writer, s *settings) error {
	all := contenders()
	for _, name := range s.proxies {
		if _, ok := all[name]; !ok {
			return fmt.Errorf("unknown proxy %q", name)
		}
	}
	started := time.Now()
	loadStart := runner.LoadAvg()
	runs, broken := runner.Interleave(s.proxies, s.rounds, func(name string, round int) (run, error) {
		log.Printf("round %d: %s", round+1, all[name].name)
		r, err := loadRun(s, all[name])
		if err != nil {
			return run{}, err
		}
		log.Printf("  %.0f msgs/s, p50 %.0f µs, p99 %.0f µs, proxy CPU %.2f s, load %s", r.MsgsPerSec, r.P50Micros, r.P99Micros, r.ProxyCPU, r.Load)
		r.Round = round
		return r, nil
	})

	fmt.Fprintf(w, "# TCP proxy: Scale Stack vs HAProxy\n\n")
	fmt.Fprintf(w, "Generated by `bench/tcpproxy` on %s in %s.\n\n", started.UTC().Format("2006-01-02 15:04 UTC"), time.Since(started).Round(time.Second))
	fmt.Fprintf(w, "Command (from `bench/`):\n\n    %s\n\n", s.commandLine)
	fmt.Fprintf(w, "Machine: %s. Load average (1/5/15 min) at start %s, at end %s: other work shared the machine.\n\n", runner.MachineFacts(), loadStart, runner.LoadAvg())
	if runner.Nice != 0 {
		fmt.Fprintf(w, "Every server, proxy and generator process ran at niceness %d, to win the CPU against that other work more often (the same for every contender).\n\n", runner.Nice)
	}
	fmt.Fprintf(w, "Load: %d client connections through the proxy, each forwarded to its own connection to a `scalestack echo` backend (epoll, 1 loop); %d-byte messages, %d in flight per connection; %v warm-up then %v measured; %d interleaved rounds (order rotated), medians below. The proxy runs with %d loop(s)/thread(s), %s; the backend and the generator (`bench/cmd/echoload -engine %s`) %s. Proxy CPU is user+system time from /proc/PID/stat over the measured window; generator CPU is echoload's own (getrusage) over the same window, as a share of one CPU (it shares its CPU with the backend).\n\n",
		s.conns, s.size, s.inFlight, s.warmup, s.duration, s.rounds, s.loops, pinned(s.proxyCPUs), s.engine, pinned(s.otherCPUs))
	fmt.Fprintf(w, "HAProxy configuration (generated per run): `nbthread %d`, `maxconn 8000`, `mode tcp`, one frontend bound to the loopback port, one backend server, no logging.\n\n", s.loops)
	fmt.Fprintf(w, "| proxy | msgs/s (median) | p50 µs | p99 µs | proxy CPU s per million msgs | generator CPU %% | runs: msgs/s (CPU s/M msgs) |\n|---|---:|---:|---:|---:|---:|---|\n")
	cpuMedian := map[string]float64{}
	rateMedian := map[string]float64{}
	for _, name := range s.proxies {
		rs := runs[name]
		if len(rs) == 0 {
			fmt.Fprintf(w, "| %s | — | — | — | — | — | failed: %s |\n", all[name].name, oneLine(broken[name]))
			continue
		}
		var rate, p50, p99, cpu, genShare []float64
		var each []string
		for _, r := range rs {
			rate = append(rate, r.MsgsPerSec)
			p50 = append(p50, r.P50Micros)
			p99 = append(p99, r.P99Micros)
			perM := r.cpuPerMillion()
			cpu = append(cpu, perM)
			if r.Seconds > 0 {
				genShare = append(genShare, 100*r.GeneratorCPUSeconds/r.Seconds)
			}
			each = append(each, fmt.Sprintf("%.0f (%.1f)", r.MsgsPerSec, perM))
		}
		cpuMedian[name], rateMedian[name] = runner.Median(cpu), runner.Median(rate)
		note := strings.Join(each, ", ")
		if broken[name] != "" {
			note += "; then failed: " + oneLine(broken[name])
		}
		fmt.Fprintf(w, "| %s | %.0f | %.0f | %.0f | %.1f | %.0f | %s |\n", all[name].name, rateMedian[name], runner.Median(p50), runner.Median(p99), cpuMedian[name], runner.Median(genShare), note)
	}
	if cpuMedian["scalestack"] > 0 && cpuMedian["haproxy"] > 0 {
		var cpuPer, ratePer []float64
		var each []string
		for _, a := range runs["scalestack"] {
			for _, b := range runs["haproxy"] {
				if a.Round == b.Round {
					cpuPer = append(cpuPer, a.cpuPerMillion()/b.cpuPerMillion())
					ratePer = append(ratePer, a.MsgsPerSec/b.MsgsPerSec)
					each = append(each, fmt.Sprintf("%.2f", a.cpuPerMillion()/b.cpuPerMillion()))
				}
			}
		}
		fmt.Fprintf(w, "\nscalestack / HAProxy: proxy CPU per message **%.2f** as the median of per-round ratios (%s), %.2f as the ratio of medians (target ≤ 1.00); msgs/s %.2f (median of per-round ratios), %.2f (ratio of medians).\n",
			runner.Median(cpuPer), strings.Join(each, ", "), cpuMedian["scalestack"]/cpuMedian["haproxy"], runner.Median(ratePer), rateMedian["scalestack"]/rateMedian["haproxy"])
	}
	return nil
}

func pinned(cpus string) string {
	if cpus == "" {
		return "not pinned"
	}
	return "pinned to CPU " + cpus
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
