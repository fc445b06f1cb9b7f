// Command httpproxy benchmarks HTTP reverse proxies side by side on this
// machine, in one command: `scalestack http --proxy` and nginx as a
// reverse proxy (proxy_pass to an upstream block with keepalive), both in
// front of the same nginx backend serving a small static file. Each proxy
// runs alone, pinned to one CPU and capped at a share of it by a cgroup CPU
// quota, while wrk (keep-alive) and the backend share the other CPU;
// rounds are interleaved (the order rotates each round) and the medians
// reported, with each proxy's CPU time per request from /proc/PID/stat over
// the measured window. Results go to a Markdown file.
//
// Run it from the bench module, as root (the cgroup):
//
//	cd bench && go run ./httpproxy -out results/httpproxy.md
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
	"strconv"
	"strings"
	"time"

	"github.com/scalestack/scalestack/bench/internal/runner"
)

type settings struct {
	rounds      int
	conns       int
	threads     int
	upConns     int
	warmup      time.Duration
	duration    time.Duration
	proxyCPUs   string
	loadCPUs    string
	quota       float64
	proxies     []string
	out         string
	root        string
	body        string
	portBase    int
	dir         string
	www         string
	backend     string
	commandLine string
	cg          *runner.CPUQuota
}

type run struct {
	wrkrun.Result
	CPUSeconds float64 // the server's over the measured window
}

func main() {
	var s settings
	var proxies string
	flag.IntVar(&s.rounds, "rounds", 5, "interleaved rounds; medians are over these")
	flag.IntVar(&s.conns, "conns", 64, "wrk connections (keep-alive)")
	flag.IntVar(&s.threads, "threads", 1, "wrk threads")
	flag.IntVar(&s.upConns, "upstream-conns", 32, "scalestack's --proxy-conns; nginx's keepalive (idle connections kept per worker)")
	flag.DurationVar(&s.warmup, "warmup", 2*time.Second, "wrk warm-up run before each measured one")
	flag.DurationVar(&s.duration, "duration", 8*time.Second, "measured wrk run")
	flag.StringVar(&s.proxyCPUs, "proxy-cpus", "1", "taskset CPU list for the proxies")
	flag.StringVar(&s.loadCPUs, "load-cpus", "0", "taskset CPU list for wrk and the nginx backend")
	flag.Float64Var(&s.quota, "proxy-cpu-quota", 1, "cap each proxy at this share of one CPU with a cgroup CPU quota (needs root; 0: no cap)")
	flag.StringVar(&proxies, "proxies", "scalestack,nginx", "contenders, in first-round order")
	flag.StringVar(&s.body, "body", "hello world", "content of the backend's small static file")
	flag.StringVar(&s.out, "out", "results/httpproxy.md", "Markdown result file (empty: stdout)")
	flag.StringVar(&s.root, "root", "..", "the Scale Stack repository root")
	flag.IntVar(&s.portBase, "port", 17600, "first loopback port; each run uses a fresh one")
	flag.Parse()
	s.proxies = strings.Split(proxies, ",")
	s.commandLine = "go run ./httpproxy " + strings.Join(os.Args[1:], " ")
	if err := prepareAndRun(&s); err != nil {
		log.Fatal(err)
	}
}

func nginxBin() string {
	if bin, err := exec.LookPath("nginx"); err == nil {
		return bin
	}
	return "/usr/sbin/nginx"
}

func prepareAndRun(s *settings) error {
	for _, tool := range []string{"wrk", "taskset"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed (scripts/http-tools.sh installs wrk)", tool)
		}
	}
	dir, err := os.MkdirTemp("", "proxybench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	s.dir = dir
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
	// The backend, shared by every contender, on the load CPU.
	s.backend = s.nextAddr()
	conf, err := s.nginxConf("backend", s.backend, fmt.Sprintf("root %s;", s.www))
	if err != nil {
		return err
	}
	be, err := runner.Start("backend", s.loadCPUs, nginxBin(), "-c", conf, "-p", filepath.Dir(conf), "-e", filepath.Join(filepath.Dir(conf), "error.log"))
	if err != nil {
		return err
	}
	defer be.Stop()
	if err := runner.WaitDial("tcp", s.backend, 5*time.Second); err != nil {
		return fmt.Errorf("backend: %w; stderr: %s", err, be.Stderr())
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

// nginxConf writes a one-worker, foreground, access-log-off configuration
// whose server block holds body.
func (s *settings) nginxConf(name, addr, body string) (string, error) {
	dir, err := os.MkdirTemp(s.dir, name)
	if err != nil {
		return "", err
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
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    %[3]s
    server {
        listen %[2]s;
        %[4]s
    }
}
`, dir, addr, s.upstreamBlock(name), body)
	p := filepath.Join(dir, "nginx.conf")
	return p, os.WriteFile(p, []byte(conf), 0o644)
}

func (s *settings) upstreamBlock(name string) string {
	if name != "nginx" {
		return ""
	}
	return fmt.Sprintf("upstream backend { server %s; keepalive %d; keepalive_requests 100000000; }", s.backend, s.upConns)
}

// nginxProxyLocation is nginx as a keep-alive reverse proxy, setting the
// fields scalestack's proxy sets (X-Forwarded-For appended,
// X-Forwarded-Proto, the client's Host).
const nginxProxyLocation = `location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }`

func (s *settings) argv(name, addr string) ([]string, error) {
	switch name {
	case "scalestack":
		return []string{filepath.Join(s.dir, "scalestack"), "http", "--listen", addr, "--loops", "1", "--admin", "", "--health", "",
			"--proxy", "/=" + s.backend, "--proxy-conns", strconv.Itoa(s.upConns)}, nil
	case "scalestack-uring":
		return []string{filepath.Join(s.dir, "scalestack"), "http", "--listen", addr, "--loops", "1", "--admin", "", "--health", "",
			"--proxy", "/=" + s.backend, "--proxy-conns", strconv.Itoa(s.upConns), "--io", "uring"}, nil
	case "nginx":
		conf, err := s.nginxConf("nginx", addr, nginxProxyLocation)
		if err != nil {
			return nil, err
		}
		return []string{nginxBin(), "-c", conf, "-p", filepath.Dir(conf), "-e", filepath.Join(filepath.Dir(conf), "error.log")}, nil
	}
	return nil, fmt.Errorf("unknown proxy %q", name)
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
	r, cpu, err := wrkrun.MeasureServer(name, s.proxyCPUs, argv, addr, "http://"+addr+"/small.txt", load)
	return run{Result: r, CPUSeconds: cpu}, err
}

func bench(s *settings, w io.Writer) error {
	started := time.Now()
	loadStart := runner.LoadAvg()
	runs, broken := runner.Interleave(s.proxies, s.rounds, func(name string, round int) (run, error) {
		r, err := loadRun(s, name)
		if err == nil {
			log.Printf("round %d %-16s %8.0f req/s  %.2f µs CPU/req  %s", round, name, r.ReqPerSec, 1e6*r.CPUSeconds/r.Requests, r.Errors)
		}
		return r, err
	})
	fmt.Fprintf(w, "# HTTP reverse proxy: scalestack http --proxy vs nginx proxy_pass, small response\n\n")
	fmt.Fprintf(w, "Generated by `bench/httpproxy` on %s UTC in %s.\n\n", started.UTC().Format("2006-01-02 15:04"), time.Since(started).Round(time.Second))
	fmt.Fprintf(w, "Command (from `bench/`):\n\n    %s\n\n", s.commandLine)
	fmt.Fprintf(w, "Machine: %s. Load average (1/5/15 min) at start %s, at end %s.\n\n", runner.MachineFacts(), loadStart, runner.LoadAvg())
	fmt.Fprintf(w, "Load: `wrk --latency -t%d -c%d`, keep-alive, GET of an %d-byte file through the proxy, %s warm-up run then a %s measured run per proxy, %d interleaved rounds (order rotated each round); medians below. Proxies pinned to CPU %s", s.threads, s.conns, len(s.body), s.warmup, s.duration, s.rounds, s.proxyCPUs)
	if s.cg != nil {
		fmt.Fprintf(w, " and capped at %.2f of one CPU (a cgroup with CFS bandwidth control)", s.cg.Share)
	}
	fmt.Fprintf(w, "; wrk and the backend (nginx, one worker, access log off, serving the file) pinned to CPU %s. Proxy CPU is user+system time from /proc/PID/stat over the measured run.\n\n", s.loadCPUs)
	fmt.Fprintf(w, "Contenders: **scalestack** `scalestack http --loops 1 --proxy /=BACKEND --proxy-conns %d` (%d keep-alive connections to the backend shared by the %d clients; X-Forwarded-For and -Proto added, hop-by-hop fields dropped); **nginx** one worker, access log off, `proxy_pass` to an `upstream` block with `keepalive %d`, `proxy_http_version 1.1`, `Connection \"\"`, Host, X-Forwarded-For and X-Forwarded-Proto set (proxy buffering on, nginx's default).\n\n", s.upConns, s.upConns, s.conns, s.upConns)

	fmt.Fprintf(w, "| proxy | req/s (median) | CPU µs/req (median) | req per CPU-second | p50 | p99 | runs, req/s | runs, CPU µs/req | errors |\n|---|---:|---:|---:|---:|---:|---|---|---|\n")
	cpuPer := map[string]float64{}
	cpuRuns := map[string][]float64{}
	for _, name := range s.proxies {
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
		fmt.Fprintf(w, "\nRequests per CPU-second, scalestack against each (the inverse ratio of CPU per request): of the medians above, and the median of the per-round ratios (the contenders of a round ran back to back):\n\n")
		fmt.Fprintf(w, "| ratio | of medians | median per-round ratio | per-round ratios |\n|---|---:|---:|---|\n")
		for _, name := range s.proxies {
			if name == "scalestack" || cpuPer[name] == 0 {
				continue
			}
			var per []float64
			var perList []string
			for i := 0; i < len(cpuRuns[name]) && i < len(cpuRuns["scalestack"]); i++ {
				r := cpuRuns[name][i] / cpuRuns["scalestack"][i]
				per = append(per, r)
				perList = append(perList, fmt.Sprintf("%.2f", r))
			}
			fmt.Fprintf(w, "| scalestack / %s | %.2f× | **%.2f×** | %s |\n", name, cpuPer[name]/base, runner.Median(per), strings.Join(perList, ", "))
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
