// Command memcache benchmarks memcached proxies side by side on this
// machine, in one command: Debian's memcaslap (libmemcached-tools) loads
// one memcached directly, through twemproxy (Debian's nutcracker) and
// through `scalestack memcache`, both proxies in front of that same
// memcached. The load generator is pinned to its own CPU (-load-cpus), the
// proxy and memcached to the other (-server-cpus). The figures that matter
// are CPU time per operation, from /proc/PID/stat (user+system) over the
// measured run: the proxy's own, and memcached's, which pipelining lowers
// (a proxy sends many clients' requests to memcached in few reads and
// writes). Each load runs every contender once per round, the order
// rotated each round; the report gives medians and per-round ratios.
//
// Run it from the bench module (it builds scalestack from -root):
//
//	cd bench && go run ./memcache -out results/memcache-YYYYMMDD.md
//
// It needs memcached, nutcracker and memcaslap (scripts/mariadb.sh deps
// --memcached installs them). Everything listens and connects on loopback
// only.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/scalestack/scalestack/bench/internal/runner"
)

// defaultLoads are the memcaslap workloads: the plain run, many
// concurrent clients, and multi-key gets (-d keys per get; memcaslap then
// counts every key as an operation). -X 64: 64-byte values.
const defaultLoads = "plain=-T 1 -c 64 -X 64;many=-T 1 -c 512 -X 64;multiget=-T 1 -c 64 -X 64 -d 16"

type load struct {
	name string
	args []string
}

type settings struct {
	rounds      int
	warmup      time.Duration
	duration    time.Duration
	serverCPUs  string
	loadCPUs    string
	contenders  []string
	loads       []load
	mcThreads   int
	mcMemory    int
	out         string
	root        string
	bin         string
	dir         string
	commandLine string
	memcached   string // its address
	memcachedPD int
}

// run is one measured memcaslap run against one contender.
type run struct {
	Ops       float64
	Seconds   float64
	ProxyCPU  float64 // seconds, 0 for direct
	MemcCPU   float64 // memcached's seconds
	GenCPU    float64 // memcaslap's seconds
	GetMisses float64
}

func (r run) perOp(cpu float64) float64 { return 1e6 * cpu / r.Ops }

func main() {
	var s settings
	var contenders, loads string
	flag.IntVar(&s.rounds, "rounds", 3, "interleaved rounds per load; medians are over these")
	flag.DurationVar(&s.warmup, "warmup", 2*time.Second, "memcaslap warm-up run before each measured one")
	flag.DurationVar(&s.duration, "duration", 10*time.Second, "measured memcaslap run (whole seconds)")
	flag.StringVar(&s.serverCPUs, "server-cpus", "1", "taskset CPU list for memcached and the proxies")
	flag.StringVar(&s.loadCPUs, "load-cpus", "0", "taskset CPU list for memcaslap")
	flag.StringVar(&contenders, "contenders", "direct,twemproxy,scalestack", "direct (memcaslap to memcached), twemproxy (nutcracker), scalestack (scalestack memcache --loops 1), in first-round order")
	flag.StringVar(&loads, "loads", defaultLoads, "memcaslap workloads, NAME=ARGS separated by ';' (-s and -t are added)")
	flag.IntVar(&s.mcThreads, "memcached-threads", 1, "memcached -t")
	flag.IntVar(&s.mcMemory, "memcached-mb", 1024, "memcached -m (MiB)")
	flag.StringVar(&s.out, "out", "", "Markdown result file (empty: stdout)")
	flag.StringVar(&s.root, "root", "..", "the Scale Stack repository root")
	flag.Parse()
	s.contenders = strings.Split(contenders, ",")
	var err error
	if s.loads, err = parseLoads(loads); err != nil {
		log.Fatal(err)
	}
	s.commandLine = "go run ./memcache " + strings.Join(os.Args[1:], " ")
	if err := prepareAndRun(&s); err != nil {
		log.Fatal(err)
	}
}

func parseLoads(spec string) ([]load, error) {
	var out []load
	for _, part := range strings.Split(spec, ";") {
		name, args, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || name == "" || strings.TrimSpace(args) == "" {
			return nil, fmt.Errorf("-loads: want NAME=ARGS, got %q", part)
		}
		out = append(out, load{name: name, args: strings.Fields(args)})
	}
	return out, nil
}

func tool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if p := filepath.Join("/usr/sbin", name); fileExists(p) {
		return p, nil
	}
	return "", fmt.Errorf("%s is not installed (scripts/mariadb.sh deps --memcached installs memcached, nutcracker and libmemcached-tools)", name)
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func prepareAndRun(s *settings) error {
	for _, t := range []string{"memcached", "nutcracker", "memcaslap", "taskset"} {
		if _, err := tool(t); err != nil {
			return err
		}
	}
	dir, err := os.MkdirTemp("", "memcachebench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	s.dir = dir
	s.bin = filepath.Join(dir, "scalestack")
	if err := runner.Build(s.root, s.bin, "./cmd/scalestack"); err != nil {
		return err
	}
	mc, err := startMemcached(s)
	if err != nil {
		return err
	}
	defer mc.Stop()
	var w io.Writer = os.Stdout
	if s.out != "" {
		f, err := os.Create(s.out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	return bench(s, w)
}

// freeAddr returns a loopback TCP address nothing listens on now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startMemcached starts the one memcached every contender talks to.
func startMemcached(s *settings) (*runner.Proc, error) {
	bin, _ := tool("memcached")
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	argv := []string{bin, "-p", port, "-l", "127.0.0.1", "-U", "0", "-t", strconv.Itoa(s.mcThreads),
		"-m", strconv.Itoa(s.mcMemory), "-c", "4096"}
	if os.Geteuid() == 0 {
		argv = append(argv, "-u", "root") // memcached refuses root without it
	}
	p, err := runner.Start("memcached", s.serverCPUs, argv...)
	if err != nil {
		return nil, err
	}
	if err := runner.WaitDial("tcp", addr, 5*time.Second); err != nil {
		p.Stop()
		return nil, fmt.Errorf("memcached: %w; stderr: %s", err, p.Stderr())
	}
	s.memcached, s.memcachedPD = addr, p.Pid()
	return p, nil
}

// proxyArgv returns the command line of a proxy listening on addr in
// front of the memcached.
func (s *settings) proxyArgv(name, addr string) ([]string, error) {
	switch name {
	case "scalestack":
		return []string{s.bin, "memcache", "--loops", "1", "--listen", addr, "--servers", s.memcached, "--admin", ""}, nil
	case "twemproxy":
		bin, _ := tool("nutcracker")
		stats, err := freeAddr()
		if err != nil {
			return nil, err
		}
		_, statsPort, _ := net.SplitHostPort(stats)
		conf := filepath.Join(s.dir, "nutcracker.yml")
		// nutcracker's defaults otherwise: one connection per server,
		// 16 KiB mbufs, no timeout.
		yml := fmt.Sprintf("pool:\n  listen: %s\n  hash: fnv1a_64\n  distribution: ketama\n  auto_eject_hosts: false\n  servers:\n   - %s:1\n", addr, s.memcached)
		if err := os.WriteFile(conf, []byte(yml), 0o644); err != nil {
			return nil, err
		}
		return []string{bin, "-c", conf, "-s", statsPort, "-a", "127.0.0.1", "-o", filepath.Join(s.dir, "nutcracker.log")}, nil
	}
	return nil, fmt.Errorf("unknown contender %q", name)
}

func measure(s *settings, ld load, name string) (run, error) {
	target := s.memcached
	proxyPid := 0
	if name != "direct" {
		addr, err := freeAddr()
		if err != nil {
			return run{}, err
		}
		argv, err := s.proxyArgv(name, addr)
		if err != nil {
			return run{}, err
		}
		p, err := runner.Start(name, s.serverCPUs, argv...)
		if err != nil {
			return run{}, err
		}
		defer p.Stop()
		if err := runner.WaitDial("tcp", addr, 5*time.Second); err != nil {
			return run{}, fmt.Errorf("%s: %w; stderr: %s", name, err, p.Stderr())
		}
		target, proxyPid = addr, p.Pid()
	}
	if s.warmup > 0 {
		if _, err := memcaslap(s, ld, target, s.warmup); err != nil {
			return run{}, fmt.Errorf("%s warm-up: %w", name, err)
		}
	}
	cpu := func() (proxy, memc float64, err error) {
		if proxyPid != 0 {
			if proxy, err = runner.CPUSeconds(proxyPid); err != nil {
				return 0, 0, fmt.Errorf("%s: %w", name, err)
			}
		}
		memc, err = runner.CPUSeconds(s.memcachedPD)
		return proxy, memc, err
	}
	p0, m0, err := cpu()
	if err != nil {
		return run{}, err
	}
	r, err := memcaslap(s, ld, target, s.duration)
	if err != nil {
		return run{}, fmt.Errorf("%s: %w", name, err)
	}
	p1, m1, err := cpu()
	if err != nil {
		return run{}, err
	}
	r.ProxyCPU, r.MemcCPU = p1-p0, m1-m0
	return r, nil
}

// memcaslap runs the load against addr for d, pinned to the load CPUs.
func memcaslap(s *settings, ld load, addr string, d time.Duration) (run, error) {
	bin, _ := tool("memcaslap")
	args := append([]string{"-c", s.loadCPUs, bin, "-s", addr, "-t", strconv.Itoa(int(d.Seconds())) + "s"}, ld.args...)
	ctx, cancel := context.WithTimeout(context.Background(), d+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "taskset", args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return run{}, fmt.Errorf("memcaslap %s: %w\n%s", strings.Join(args[2:], " "), err, tailOf(out))
	}
	r, err := parseMemcaslap(string(out))
	if err != nil {
		return run{}, err
	}
	// taskset execs memcaslap: the child's rusage is memcaslap's.
	r.GenCPU = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	return r, nil
}

var (
	reTotal  = regexp.MustCompile(`(?m)^Run time: ([\d.]+)s Ops: (\d+) TPS: (\d+)`)
	reMisses = regexp.MustCompile(`(?m)^get_misses: (\d+)`)
	// memcaslap prints "<FD LINE" for a response it did not expect (a
	// SERVER_ERROR, a protocol error).
	reBadResponse = regexp.MustCompile(`(?m)^<\d+ .*$`)
)

// parseMemcaslap reads memcaslap's final totals; a response it did not
// expect fails the run (a proxy that answers errors fast must not look
// cheap).
func parseMemcaslap(out string) (run, error) {
	if bad := reBadResponse.FindAllString(out, -1); len(bad) > 0 {
		return run{}, fmt.Errorf("memcaslap got %d unexpected responses, the first %q", len(bad), bad[0])
	}
	all := reTotal.FindAllStringSubmatch(out, -1)
	if len(all) == 0 {
		return run{}, errors.New("memcaslap printed no totals:\n" + tailOf([]byte(out)))
	}
	m := all[len(all)-1] // with -S, the last line is the run's total
	var r run
	r.Seconds, _ = strconv.ParseFloat(m[1], 64)
	r.Ops, _ = strconv.ParseFloat(m[2], 64)
	if r.Seconds <= 0 || r.Ops <= 0 {
		return run{}, fmt.Errorf("memcaslap ran %s s, %s ops", m[1], m[2])
	}
	if mm := reMisses.FindAllStringSubmatch(out, -1); len(mm) > 0 {
		r.GetMisses, _ = strconv.ParseFloat(mm[len(mm)-1][1], 64)
	}
	return r, nil
}

func tailOf(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 800 {
		s = "..." + s[len(s)-800:]
	}
	return s
}

func version(argv ...string) string {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil && len(out) == 0 {
		return "?"
	}
	return strings.TrimSpace(strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0])
}

func bench(s *settings, w io.Writer) error {
	started := time.Now()
	loadStart := runner.LoadAvg()
	type result struct {
		runs   map[string][]run
		broken map[string]string
	}
	results := make([]result, len(s.loads))
	for i, ld := range s.loads {
		log.Printf("load %s: memcaslap %s", ld.name, strings.Join(ld.args, " "))
		runs, broken := runner.Interleave(s.contenders, s.rounds, func(name string, round int) (run, error) {
			r, err := measure(s, ld, name)
			if err == nil {
				log.Printf("  round %d %-10s %8.0f ops/s  proxy %6.2f µs/op  memcached %6.2f µs/op  memcaslap %6.2f µs/op",
					round+1, name, r.Ops/r.Seconds, r.perOp(r.ProxyCPU), r.perOp(r.MemcCPU), r.perOp(r.GenCPU))
			}
			return r, err
		})
		results[i] = result{runs, broken}
	}
	memcachedBin, _ := tool("memcached")
	nutcrackerBin, _ := tool("nutcracker")
	memcaslapBin, _ := tool("memcaslap")

	fmt.Fprintf(w, "# memcached proxies: scalestack memcache vs twemproxy (nutcracker), memcaslap\n\n")
	fmt.Fprintf(w, "Generated by `bench/memcache` on %s UTC in %s.\n\n", started.UTC().Format("2006-01-02 15:04"), time.Since(started).Round(time.Second))
	fmt.Fprintf(w, "Command (from `bench/`):\n\n    %s\n\n", s.commandLine)
	fmt.Fprintf(w, "Machine: %s. Load average (1/5/15 min) at start %s, at end %s.\n\n", runner.MachineFacts(), loadStart, runner.LoadAvg())
	fmt.Fprintf(w, "Versions: %s; %s; memcaslap %s.\n\n", version(memcachedBin, "-V"), version(nutcrackerBin, "--version"), version(memcaslapBin, "-V"))
	fmt.Fprintf(w, "One memcached (`-t %d -m %d`) serves every contender, pinned with memcached and each proxy to CPU %s; memcaslap is pinned to CPU %s. "+
		"**direct**: memcaslap to memcached; **twemproxy**: nutcracker (one pool, ketama, fnv1a_64, its defaults: one server connection, 16 KiB mbufs); "+
		"**scalestack**: `scalestack memcache --loops 1 --admin \"\"` (defaults: one server connection per loop). "+
		"Each proxy is started fresh for each run; a %s memcaslap warm-up precedes each %s measured run; %d interleaved rounds per load (order rotated each round), medians below. "+
		"CPU is user+system time from /proc/PID/stat over the measured run, divided by memcaslap's operations (with `-d`, each key of a multi-get is one operation); "+
		"memcaslap's own from its rusage.\n\n",
		s.mcThreads, s.mcMemory, s.serverCPUs, s.loadCPUs, s.warmup, s.duration, s.rounds)

	for i, ld := range s.loads {
		res := results[i]
		fmt.Fprintf(w, "## %s: `memcaslap %s`\n\n", ld.name, strings.Join(ld.args, " "))
		fmt.Fprintf(w, "| contender | ops/s | proxy CPU µs/op | memcached CPU µs/op | proxy + memcached µs/op | memcaslap CPU µs/op | runs, proxy µs/op | runs, memcached µs/op | get misses |\n")
		fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---|---|---:|\n")
		proxyRuns := map[string][]float64{}
		for _, name := range s.contenders {
			rs := res.runs[name]
			if len(rs) == 0 {
				fmt.Fprintf(w, "| %s | failed: %s ||||||||\n", name, oneLine(res.broken[name]))
				continue
			}
			var ops, px, mc, both, gen []float64
			var pxList, mcList []string
			misses := 0.0
			for _, r := range rs {
				ops = append(ops, r.Ops/r.Seconds)
				px = append(px, r.perOp(r.ProxyCPU))
				mc = append(mc, r.perOp(r.MemcCPU))
				both = append(both, r.perOp(r.ProxyCPU+r.MemcCPU))
				gen = append(gen, r.perOp(r.GenCPU))
				pxList = append(pxList, fmt.Sprintf("%.2f", r.perOp(r.ProxyCPU)))
				mcList = append(mcList, fmt.Sprintf("%.2f", r.perOp(r.MemcCPU)))
				misses += r.GetMisses
			}
			proxyRuns[name] = px
			proxy := fmt.Sprintf("%.2f", runner.Median(px))
			if name == "direct" {
				proxy, pxList = "–", nil
			}
			fmt.Fprintf(w, "| %s | %.0f | %s | %.2f | %.2f | %.2f | %s | %s | %.0f |\n", name, runner.Median(ops), proxy,
				runner.Median(mc), runner.Median(both), runner.Median(gen), strings.Join(pxList, ", "), strings.Join(mcList, ", "), misses)
		}
		ours, theirs := proxyRuns["scalestack"], proxyRuns["twemproxy"]
		if len(ours) > 0 && len(theirs) > 0 {
			var per []float64
			var perList []string
			for j := 0; j < len(ours) && j < len(theirs); j++ {
				per = append(per, ours[j]/theirs[j])
				perList = append(perList, fmt.Sprintf("%.2f", ours[j]/theirs[j]))
			}
			fmt.Fprintf(w, "\nProxy CPU per operation, scalestack / twemproxy: %.2f of the medians, **%.2f** the median of the per-round ratios (%s); issue 20's target ≤ 1.00.\n",
				runner.Median(ours)/runner.Median(theirs), runner.Median(per), strings.Join(perList, ", "))
		}
		fmt.Fprintln(w)
	}
	for i, ld := range s.loads {
		for name, e := range results[i].broken {
			fmt.Fprintf(w, "Failed: %s, %s: %s\n\n", ld.name, name, oneLine(e))
		}
	}
	return nil
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "\\|")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
