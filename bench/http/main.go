// Command http benchmarks HTTP/1.1 servers side by side on this machine,
// in one command: `scalestack http` serving a small static file, nginx (one
// worker, access log off) serving the same file, and Go's net/http (a
// minimal handler with a fixed body, and http.FileServer over the same
// directory). Each server runs alone, pinned to one CPU and capped at a
// share of it by a cgroup CPU quota, while wrk (keep-alive) loads it from
// the other CPU; rounds are interleaved (the order rotates each round) and
// the medians reported, with each server's CPU time per request from
// /proc/PID/stat over the measured window. Results go to a Markdown file.
//
// Run it from the bench module, as root (the cgroup):
//
//	cd bench && go run ./http -out results/http.md
//
// It needs wrk and nginx (scripts/http-tools.sh installs them). Everything
// listens and connects on loopback only.
package main

import (
	"flag"
	"fmt"
	wrkrun "github.com/scalestack/scalestack/bench/internal/wrk"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/scalestack/scalestack/bench/internal/runner"
)

type settings struct {
	rounds      int
	conns       int
	threads     int
	warmup      time.Duration
	duration    time.Duration
	serverCPUs  string
	loadCPUs    string
	quota       float64
	servers     []string
	out         string
	root        string
	body        string
	portBase    int
	bin         string
	www         string
	commandLine string
	cg          *runner.CPUQuota
}

// run is one measured wrk run against one server.
type run struct {
	wrkrun.Result
	CPUSeconds float64 // the server's over the measured window
}

func main() {
	var s settings
	var servers string
	flag.IntVar(&s.rounds, "rounds", 5, "interleaved rounds; medians are over these")
	flag.IntVar(&s.conns, "conns", 64, "wrk connections (keep-alive)")
	flag.IntVar(&s.threads, "threads", 1, "wrk threads")
	flag.DurationVar(&s.warmup, "warmup", 2*time.Second, "wrk warm-up run before each measured one")
	flag.DurationVar(&s.duration, "duration", 8*time.Second, "measured wrk run")
	flag.StringVar(&s.serverCPUs, "server-cpus", "1", "taskset CPU list for servers")
	flag.StringVar(&s.loadCPUs, "load-cpus", "0", "taskset CPU list for wrk")
	flag.Float64Var(&s.quota, "server-cpu-quota", 1, "cap each server at this share of one CPU with a cgroup CPU quota (needs root; 0: no cap)")
	flag.StringVar(&servers, "servers", "scalestack,nginx,go-fixed,go-file", "contenders, in first-round order")
	flag.StringVar(&s.body, "body", "hello world", "content of the small static file (11 bytes by default)")
	flag.StringVar(&s.out, "out", "results/http.md", "Markdown result file (empty: stdout)")
	flag.StringVar(&s.root, "root", "..", "the Scale Stack repository root")
	flag.IntVar(&s.portBase, "port", 17400, "first loopback port; each run uses a fresh one")
	flag.Parse()
	s.servers = strings.Split(servers, ",")
	s.commandLine = "go run ./http " + strings.Join(os.Args[1:], " ")
	if err := prepareAndRun(&s); err != nil {
		log.Fatal(err)
	}
}

func prepareAndRun(s *settings) error {
	for _, tool := range []string{"wrk", "taskset"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed (scripts/http-tools.sh installs wrk)", tool)
		}
	}
	dir, err := os.MkdirTemp("", "httpbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	s.bin = dir
	s.www = filepath.Join(dir, "www")
	if err := os.MkdirAll(s.www, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(s.www, "small.txt"), []byte(s.body), 0o644); err != nil {
		return err
	}
	if err := runner.Build(s.root, filepath.Join(dir, "scalestack"), "./cmd/scalestack"); err != nil {
		return err
	}
	if err := runner.Build(".", filepath.Join(dir, "httpserver"), "./cmd/httpserver"); err != nil {
		return err
	}
	if s.quota > 0 {
		if s.cg, err = runner.NewCPUQuota(s.quota); err != nil {
			return err
		}
		defer func() {
			if err := s.cg.Remove(); err != nil {
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
	return bench(s, w)
}

// argv returns the command line of a contender listening on addr.
func (s *settings) argv(name, addr string) ([]string, error) {
	switch name {
	case "scalestack":
		return []string{filepath.Join(s.bin, "scalestack"), "http", "--listen", addr, "--root", s.www,
			"--loops", "1", "--admin", "", "--health", ""}, nil
	case "scalestack-uring":
		return []string{filepath.Join(s.bin, "scalestack"), "http", "--listen", addr, "--root", s.www,
			"--loops", "1", "--admin", "", "--health", "", "--io", "uring"}, nil
	case "scalestack-nocache":
		return []string{filepath.Join(s.bin, "scalestack"), "http", "--listen", addr, "--root", s.www,
			"--loops", "1", "--admin", "", "--health", "", "--file-cache", "0"}, nil
	case "nginx", "nginx-cache":
		conf, err := s.nginxConf(addr, name == "nginx-cache")
		if err != nil {
			return nil, err
		}
		bin, err := exec.LookPath("nginx")
		if err != nil {
			bin = "/usr/sbin/nginx"
		}
		return []string{bin, "-c", conf, "-p", filepath.Dir(conf), "-e", filepath.Join(filepath.Dir(conf), "error.log")}, nil
	case "go-fixed":
		return []string{filepath.Join(s.bin, "httpserver"), "-listen", addr, "-mode", "fixed", "-body", s.body}, nil
	case "go-file":
		return []string{filepath.Join(s.bin, "httpserver"), "-listen", addr, "-mode", "file", "-root", s.www}, nil
	}
	return nil, fmt.Errorf("unknown server %q", name)
}

// nginxConf writes a configuration for one worker in the foreground, access
// log off, nginx's compiled-in defaults otherwise (sendfile off); with
// cache, open_file_cache keeps descriptors and metadata (revalidated every
// second, as scalestack's --file-cache-valid default).
func (s *settings) nginxConf(addr string, cache bool) (string, error) {
	dir, err := os.MkdirTemp(s.bin, "nginx")
	if err != nil {
		return "", err
	}
	openFileCache := ""
	if cache {
		openFileCache = "open_file_cache max=1024 inactive=60s;\n    open_file_cache_valid 1s;\n    open_file_cache_min_uses 1;"
	}
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
    types { text/plain txt; }
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    %[4]s
    server {
        listen %[2]s;
        root %[3]s;
    }
}
`, dir, addr, s.www, openFileCache)
	p := filepath.Join(dir, "nginx.conf")
	return p, os.WriteFile(p, []byte(conf), 0o644)
}

func (s *settings) nextAddr() string {
	s.portBase++
	return fmt.Sprintf("127.0.0.1:%d", s.portBase)
}

func loadRun(s *settings, name string) (run, error) {
	addr := s.nextAddr()
	argv, err := s.argv(name, addr)
	if err != nil {
		return run{}, err
	}
	if s.cg != nil {
		argv = s.cg.Wrap(argv)
	}
	load := wrkrun.Load{CPUs: s.loadCPUs, Threads: s.threads, Conns: s.conns, Warmup: s.warmup, Duration: s.duration}
	r, cpu, err := wrkrun.MeasureServer(name, s.serverCPUs, argv, addr, "http://"+addr+"/small.txt", load)
	return run{Result: r, CPUSeconds: cpu}, err
}

func bench(s *settings, w io.Writer) error {
	started := time.Now()
	loadStart := runner.LoadAvg()
	runs, broken := runner.Interleave(s.servers, s.rounds, func(name string, round int) (run, error) {
		r, err := loadRun(s, name)
		if err == nil {
			log.Printf("round %d %-16s %8.0f req/s  %.2f µs CPU/req  %s", round, name, r.ReqPerSec, 1e6*r.CPUSeconds/r.Requests, r.Errors)
		}
		return r, err
	})
	fmt.Fprintf(w, "# HTTP: scalestack http vs nginx vs Go net/http, small static response\n\n")
	fmt.Fprintf(w, "Generated by `bench/http` on %s UTC in %s.\n\n", started.UTC().Format("2006-01-02 15:04"), time.Since(started).Round(time.Second))
	fmt.Fprintf(w, "Command (from `bench/`):\n\n    %s\n\n", s.commandLine)
	fmt.Fprintf(w, "Machine: %s. Load average (1/5/15 min) at start %s, at end %s.\n\n", runner.MachineFacts(), loadStart, runner.LoadAvg())
	fmt.Fprintf(w, "Load: `wrk --latency -t%d -c%d`, keep-alive, GET of an %d-byte file (`small.txt`), %s warm-up run then a %s measured run per server, %d interleaved rounds (order rotated each round); medians below. Servers pinned to CPU %s", s.threads, s.conns, len(s.body), s.warmup, s.duration, s.rounds, s.serverCPUs)
	if s.cg != nil {
		fmt.Fprintf(w, " and capped at %.2f of one CPU (a cgroup with CFS bandwidth control)", s.cg.Share)
	}
	fmt.Fprintf(w, ", wrk pinned to CPU %s. Server CPU is user+system time from /proc/PID/stat over the measured run.\n\n", s.loadCPUs)
	fmt.Fprintf(w, "Contenders: **scalestack** `scalestack http --loops 1 --root DIR` (the static handler with its default per-loop file cache: a hit makes no system call; the file is checked again every second); **scalestack-nocache** the same with `--file-cache 0` (openat2, fstat, pread into the output, close per request); **scalestack-uring** the default with `--io uring`; **nginx** %s, one worker, `master_process off`, access log off, compiled-in defaults otherwise (sendfile off, no open_file_cache); **nginx-cache** the same with `open_file_cache max=1024 inactive=60s; open_file_cache_valid 1s` (descriptors and metadata kept: read per request, no open, fstat or close); **go-fixed** a minimal net/http handler writing the same 11 bytes from memory (GOMAXPROCS 1; the 2026-12-06 anchor's \"minimal Go net/http server\"); **go-file** net/http's http.FileServer over the same directory (GOMAXPROCS 1).\n\n", nginxVersion())

	fmt.Fprintf(w, "| server | req/s (median) | CPU µs/req (median) | req per CPU-second | p50 | p99 | runs, req/s | runs, CPU µs/req | errors |\n|---|---:|---:|---:|---:|---:|---|---|---|\n")
	cpuPer := map[string]float64{}
	cpuRuns := map[string][]float64{}
	for _, name := range s.servers {
		rs := runs[name]
		if len(rs) == 0 {
			fmt.Fprintf(w, "| %s | failed: %s |||||||\n", name, broken[name])
			continue
		}
		var rps, cpu, p50, p99 []float64
		var rpsList, cpuList []string
		errs := ""
		for _, r := range rs {
			rps = append(rps, r.ReqPerSec)
			c := 1e6 * r.CPUSeconds / r.Requests
			cpu = append(cpu, c)
			p50 = append(p50, float64(r.P50))
			p99 = append(p99, float64(r.P99))
			rpsList = append(rpsList, fmt.Sprintf("%.0f", r.ReqPerSec))
			cpuList = append(cpuList, fmt.Sprintf("%.2f", c))
			errs += r.Errors
		}
		cpuPer[name] = runner.Median(cpu)
		cpuRuns[name] = cpu
		if errs == "" {
			errs = "0"
		}
		fmt.Fprintf(w, "| %s | %.0f | %.2f | %.0f | %s | %s | %s | %s | %s |\n", name, runner.Median(rps), cpuPer[name], 1e6/cpuPer[name],
			time.Duration(runner.Median(p50)).Round(time.Microsecond), time.Duration(runner.Median(p99)).Round(time.Microsecond),
			strings.Join(rpsList, ", "), strings.Join(cpuList, ", "), errs)
	}
	if base, ok := cpuPer["scalestack"]; ok {
		fmt.Fprintf(w, "\nRequests per CPU-second, scalestack against each (the inverse ratio of CPU per request): of the medians above, and the median of the per-round ratios (the contenders of a round ran back to back, so a per-round ratio cancels most of the background drift); targets from issue #19:\n\n")
		fmt.Fprintf(w, "| ratio | of medians | median per-round ratio | per-round ratios | target |\n|---|---:|---:|---|---|\n")
		for _, name := range s.servers {
			if name == "scalestack" || cpuPer[name] == 0 {
				continue
			}
			target := ""
			switch name {
			case "nginx", "nginx-cache":
				target = "≥ 1.0×"
			case "go-fixed":
				target = "≥ 1.2×"
			}
			var per []float64
			var perList []string
			for i := 0; i < len(cpuRuns[name]) && i < len(cpuRuns["scalestack"]); i++ {
				r := cpuRuns[name][i] / cpuRuns["scalestack"][i]
				per = append(per, r)
				perList = append(perList, fmt.Sprintf("%.2f", r))
			}
			fmt.Fprintf(w, "| scalestack / %s | %.2f× | **%.2f×** | %s | %s |\n", name, cpuPer[name]/base, runner.Median(per), strings.Join(perList, ", "), target)
		}
	}
	if len(broken) > 0 {
		fmt.Fprintf(w, "\nFailed runs:\n\n")
		for name, e := range broken {
			fmt.Fprintf(w, "- %s: %s\n", name, e)
		}
	}
	return nil
}

func nginxVersion() string {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		bin = "/usr/sbin/nginx"
	}
	out, err := exec.Command(bin, "-v").CombinedOutput()
	if err != nil {
		return "nginx"
	}
	return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "nginx version: "))
}
