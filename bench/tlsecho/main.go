// Command tlsecho benchmarks TLS echo servers side by side on this
// machine: Scale Stack's echo with --tls-cert on epoll and on io_uring, a
// goroutine per connection on Go's crypto/tls over net, and HAProxy
// terminating TLS. HAProxy cannot echo by itself, so it runs twice: with a
// Lua echo service (HAProxy terminates TLS and answers in-process, the same
// job as an echo server) and forwarding to a plain echo backend, where it
// is compared with `scalestack tcpproxy` terminating TLS in front of the
// same backend (the same job again; the backend's CPU counts for neither).
//
// Each server runs under a cgroup CPU quota (as bench/echo's server-bound
// runs do), so that it, not the generator, sets the rate on a small
// machine, and three figures are taken per server: messages per server
// CPU-second on established connections, then full and resumed handshakes
// per server CPU-second (connect, handshake, one echo, reset). Rounds are
// interleaved with the order rotated, and medians reported. The load is
// bench/cmd/echoload with -tls (crypto/tls clients, one goroutine per
// connection).
//
//	cd bench && go run ./tlsecho -out results/tls-echo-YYYYMMDD.md
//
// Everything listens and connects on loopback only. HAProxy comes from
// the system (scripts/apt-install.sh haproxy); without it the HAProxy
// contenders are reported as failed.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/scalestack/scalestack/bench/internal/runner"
)

type settings struct {
	rounds      int
	conns       int
	size        int
	warmup      time.Duration
	duration    time.Duration
	hsWorkers   int
	hsDuration  time.Duration
	handshakes  bool
	tlsVersion  string
	serverCPUs  string
	loadCPUs    string
	backendCPUs string
	quotaShare  float64
	prioritize  bool
	quota       *runner.CPUQuota
	loops       int
	contenders  []string
	haproxy     string
	out         string
	root        string
	port        int
	commandLine string

	dir      string // build output, certificates, configurations
	scale    string // scalestack binary
	echoload string
	self     string
	backend  string // plain echo backend for the proxies
}

// contender is one server under test.
type contender struct {
	name  string
	label string
	proxy bool // needs the plain echo backend
	argv  func(s *settings, addr string) ([]string, error)
}

var contenders = []contender{
	{"epoll", "scalestack echo, epoll", false, scalestackArgv("echo", "epoll")},
	{"uring", "scalestack echo, io_uring", false, scalestackArgv("echo", "uring")},
	{"go", "Go crypto/tls over net (goroutine per conn)", false, goArgv},
	{"haproxy-lua", "HAProxy, TLS + Lua echo service", false, haproxyArgv(true)},
	{"tcpproxy", "scalestack tcpproxy, epoll (TLS → plain echo)", true, scalestackArgv("tcpproxy", "epoll")},
	{"haproxy", "HAProxy (TLS → plain echo)", true, haproxyArgv(false)},
}

func findContender(name string) (contender, bool) {
	for _, c := range contenders {
		if c.name == name {
			return c, true
		}
	}
	return contender{}, false
}

// phase is one kind of measurement.
type phase struct {
	name, label string
	args        func(s *settings, addr string) []string
	unit        string // what msgs counts
}

var phases = []phase{
	{"msgs", "messages on established connections", msgsArgs, "msg"},
	{"full", "full handshakes", handshakeArgs(false), "handshake"},
	{"resumed", "resumed handshakes", handshakeArgs(true), "handshake"},
}

func msgsArgs(s *settings, addr string) []string {
	return []string{"-addr", addr, "-tls", s.tlsVersion, "-conns", strconv.Itoa(s.conns), "-size", strconv.Itoa(s.size),
		"-warmup", s.warmup.String(), "-duration", s.duration.String()}
}

func handshakeArgs(resume bool) func(s *settings, addr string) []string {
	return func(s *settings, addr string) []string {
		a := []string{"-addr", addr, "-tls", s.tlsVersion, "-churn", "-conns", strconv.Itoa(s.hsWorkers), "-size", strconv.Itoa(s.size),
			"-warmup", s.warmup.String(), "-duration", s.hsDuration.String()}
		if resume {
			a = append(a, "-tls-resume")
		}
		return a
	}
}

// result is one measured window.
type result struct {
	runner.LoadReport
	serverCPU float64
	round     int
	load      string
}

func (r result) perCPU() float64 {
	if r.serverCPU <= 0 {
		return 0
	}
	return float64(r.Msgs) / r.serverCPU
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-serve-go" {
		log.Fatal(serveGo(os.Args[2:])) // it returns only on failure
	}
	var s settings
	var names string
	flag.IntVar(&s.rounds, "rounds", 3, "interleaved rounds; medians are over these")
	flag.IntVar(&s.conns, "conns", 1000, "established connections in the message runs")
	flag.IntVar(&s.size, "size", 64, "message size in bytes")
	flag.DurationVar(&s.warmup, "warmup", 2*time.Second, "warm-up before each measured window")
	flag.DurationVar(&s.duration, "duration", 5*time.Second, "measured window of the message runs")
	flag.IntVar(&s.hsWorkers, "handshake-workers", 32, "generator goroutines opening connections in the handshake runs")
	flag.DurationVar(&s.hsDuration, "handshake-duration", 5*time.Second, "measured window of each handshake run")
	flag.BoolVar(&s.handshakes, "handshakes", true, "measure full and resumed handshakes too")
	flag.StringVar(&s.tlsVersion, "tls", "1.3", "TLS version: 1.2 or 1.3")
	flag.StringVar(&s.serverCPUs, "server-cpus", "1", "taskset CPU list for the servers (empty: no pinning)")
	flag.StringVar(&s.loadCPUs, "load-cpus", "0", "taskset CPU list for the generator (empty: no pinning)")
	flag.StringVar(&s.backendCPUs, "backend-cpus", "0", "taskset CPU list for the proxies' plain echo backend")
	flag.Float64Var(&s.quotaShare, "server-cpu-quota", 0.5, "cap each server at this share of one CPU with a cgroup (needs root; 0: no cap)")
	flag.BoolVar(&s.prioritize, "server-priority", true, "give the servers' CPU cgroup the highest CPU weight, so that other work on the machine cannot take their quota (the cap still bounds them)")
	flag.IntVar(&s.loops, "loops", 1, "server event loops (scalestack --loops, HAProxy nbthread, Go GOMAXPROCS)")
	flag.StringVar(&names, "contenders", "epoll,uring,go,haproxy-lua,tcpproxy,haproxy", "servers, in first-round order")
	flag.StringVar(&s.haproxy, "haproxy", "haproxy", "the HAProxy binary")
	flag.StringVar(&s.scale, "scalestack", "", "a scalestack binary to measure (default: built from -root)")
	flag.StringVar(&s.out, "out", "", "Markdown result file (empty: stdout only)")
	flag.StringVar(&s.root, "root", "..", "the Scale Stack repository root")
	flag.IntVar(&s.port, "port", 18400, "first loopback port; each server gets a fresh one")
	flag.IntVar(&runner.Nice, "nice", 0, "niceness of every started process (negative needs root; 0: inherit)")
	flag.Parse()
	for _, n := range strings.Split(names, ",") {
		if n = strings.TrimSpace(n); n == "" {
			continue
		}
		if _, ok := findContender(n); !ok {
			log.Fatalf("unknown contender %q", n)
		}
		s.contenders = append(s.contenders, n)
	}
	if s.tlsVersion != "1.2" && s.tlsVersion != "1.3" {
		log.Fatalf("-tls %q: want 1.2 or 1.3", s.tlsVersion)
	}
	s.commandLine = "go run ./tlsecho " + strings.Join(os.Args[1:], " ")
	if err := run(&s); err != nil {
		log.Fatal(err)
	}
}

func run(s *settings) error {
	dir, err := os.MkdirTemp("", "tlsecho")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	s.dir = dir
	if s.self, err = os.Executable(); err != nil {
		return err
	}
	log.Printf("building into %s", dir)
	if s.scale == "" {
		s.scale = filepath.Join(dir, "scalestack")
		if err := runner.Build(s.root, s.scale, "./cmd/scalestack"); err != nil {
			return err
		}
	}
	s.echoload = filepath.Join(dir, "echoload")
	if err := runner.Build(".", s.echoload, "./cmd/echoload"); err != nil {
		return err
	}
	if err := writeCerts(dir); err != nil {
		return err
	}
	if s.quotaShare > 0 {
		if s.quota, err = runner.NewCPUQuota(s.quotaShare); err != nil {
			return err
		}
		if s.prioritize {
			if err := s.quota.Prioritize(); err != nil {
				return err
			}
		}
		defer func() {
			if err := s.quota.Remove(); err != nil {
				log.Print(err)
			}
		}()
	}
	needBackend := false
	for _, n := range s.contenders {
		if c, _ := findContender(n); c.proxy {
			needBackend = true
		}
	}
	if needBackend {
		s.backend = s.nextAddr()
		b, err := runner.Start("backend", s.backendCPUs, s.scale, "echo", "--listen", s.backend, "--loops", "1", "--io", "epoll", "--log-level", "warn", "--admin", "")
		if err != nil {
			return err
		}
		defer b.Stop()
		if err := runner.WaitDial("tcp", s.backend, 10*time.Second); err != nil {
			return fmt.Errorf("backend: %w; stderr: %s", err, b.Stderr())
		}
	}
	ctx := make(chan os.Signal, 1)
	signal.Notify(ctx, os.Interrupt, syscall.SIGTERM)
	started := time.Now()
	loadStart := runner.LoadAvg()
	runs, broken := runner.Interleave(s.contenders, s.rounds, func(name string, round int) (map[string]result, error) {
		select {
		case sig := <-ctx:
			return nil, fmt.Errorf("stopped by %v", sig)
		default:
		}
		c, _ := findContender(name)
		log.Printf("round %d: %s", round+1, c.label)
		return measure(s, c, round)
	})
	var w io.Writer = os.Stdout
	if s.out != "" {
		f, err := os.Create(s.out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = io.MultiWriter(os.Stdout, f)
	}
	report(w, s, runs, broken, started, loadStart)
	return nil
}

func (s *settings) nextAddr() string {
	s.port++
	return fmt.Sprintf("127.0.0.1:%d", s.port)
}

// measure starts one contender under the quota and runs every phase
// against it.
func measure(s *settings, c contender, round int) (map[string]result, error) {
	addr := s.nextAddr()
	argv, err := c.argv(s, addr)
	if err != nil {
		return nil, err
	}
	if s.quota != nil {
		argv = s.quota.Wrap(argv)
	}
	p, err := runner.Start(c.name, s.serverCPUs, argv...)
	if err != nil {
		return nil, err
	}
	defer p.Stop()
	if err := runner.WaitDial("tcp", addr, 10*time.Second); err != nil {
		return nil, fmt.Errorf("%s: %w; stderr: %s", c.label, err, p.Stderr())
	}
	out := map[string]result{}
	for _, ph := range phases {
		if ph.name != "msgs" && !s.handshakes {
			continue
		}
		rep, cpu, err := runner.RunLoad(s.echoload, s.loadCPUs, ph.args(s, addr), s.warmup+s.duration+s.hsDuration+2*time.Minute, p.Pid())
		if err != nil {
			return nil, fmt.Errorf("%s, %s: %w; server stderr: %s", c.label, ph.label, err, p.Stderr())
		}
		r := result{LoadReport: rep, serverCPU: cpu[0], round: round, load: runner.LoadAvg()}
		log.Printf("  %-8s %8.0f/s  %8.0f per server CPU-s  server CPU %.2f/s  generator CPU %.2f/s  p50 %.0f µs  %s resumed %d",
			ph.name, rep.MsgsPerSec, r.perCPU(), cpu[0]/rep.Seconds, rep.GeneratorCPUSeconds/rep.Seconds, rep.P50Micros, rep.TLS, rep.Resumed)
		out[ph.name] = r
	}
	return out, nil
}

func scalestackArgv(module, io string) func(*settings, string) ([]string, error) {
	return func(s *settings, addr string) ([]string, error) {
		a := []string{s.scale, module, "--listen", addr, "--loops", strconv.Itoa(s.loops), "--io", io,
			"--tls-cert", filepath.Join(s.dir, "cert.pem"), "--tls-key", filepath.Join(s.dir, "key.pem"),
			"--log-level", "warn", "--admin", ""}
		if module == "tcpproxy" {
			a = append(a, "--backend", s.backend)
		}
		return a, nil
	}
}

func goArgv(s *settings, addr string) ([]string, error) {
	return []string{s.self, "-serve-go", addr, filepath.Join(s.dir, "cert.pem"), filepath.Join(s.dir, "key.pem"), strconv.Itoa(s.loops)}, nil
}

// haproxyArgv writes an HAProxy configuration that terminates TLS with the
// same certificate and echoes, with a Lua service, or forwards to the
// plain backend.
func haproxyArgv(lua bool) func(*settings, string) ([]string, error) {
	return func(s *settings, addr string) ([]string, error) {
		var b strings.Builder
		// Two descriptors per forwarded connection within the 20,000 a process may open here.
		fmt.Fprintf(&b, "global\n    nbthread %d\n    maxconn 9000\n", s.loops)
		// The cipher suite every contender negotiates with the generator
		// (Go's client prefers AES-128-GCM on hardware with AES).
		b.WriteString("    ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256\n")
		b.WriteString("    ssl-default-bind-ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305\n")
		b.WriteString("    ssl-default-bind-options ssl-min-ver TLSv1.2\n")
		b.WriteString("    tune.ssl.cachesize 100000\n")
		if lua {
			luaFile := filepath.Join(s.dir, "echo.lua")
			// receive(size) waits for a whole message of the generator's
			// fixed size (or the end of the stream).
			script := fmt.Sprintf(`core.register_service("echo", "tcp", function(applet)
    while true do
        local d = applet:receive(%d)
        if d == nil or d == "" then return end
        applet:send(d)
    end
end)
`, s.size)
			if err := os.WriteFile(luaFile, []byte(script), 0o644); err != nil {
				return nil, err
			}
			fmt.Fprintf(&b, "    lua-load %s\n", luaFile)
		}
		b.WriteString("defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n")
		fmt.Fprintf(&b, "frontend fe\n    bind %s ssl crt %s\n", addr, filepath.Join(s.dir, "haproxy.pem"))
		if lua {
			b.WriteString("    tcp-request content use-service lua.echo\n")
		} else {
			fmt.Fprintf(&b, "    default_backend be\nbackend be\n    server echo %s\n", s.backend)
		}
		cfg := filepath.Join(s.dir, "haproxy-"+strings.ReplaceAll(addr, ":", "-")+".cfg")
		if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
			return nil, err
		}
		return []string{s.haproxy, "-db", "-f", cfg}, nil
	}
}

// writeCerts makes a throwaway CA and an ECDSA P-256 certificate for
// 127.0.0.1 signed by it: cert.pem (leaf and CA), key.pem, and
// haproxy.pem (both, as HAProxy wants them).
func writeCerts(dir string) error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tlsecho CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	certPEM := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})...)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	for name, data := range map[string][]byte{"cert.pem": certPEM, "key.pem": keyPEM, "haproxy.pem": append(append([]byte{}, certPEM...), keyPEM...)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// serveGo is the reference: crypto/tls over net, a goroutine per
// connection, the echo loop of bench/cmd/echoserver. Args: address,
// certificate file, key file, GOMAXPROCS.
func serveGo(args []string) error {
	if len(args) != 4 {
		return fmt.Errorf("-serve-go ADDR CERT KEY PROCS")
	}
	procs, err := strconv.Atoi(args[3])
	if err != nil || procs < 1 {
		return fmt.Errorf("-serve-go: PROCS %q", args[3])
	}
	runtime.GOMAXPROCS(procs)
	cert, err := tls.LoadX509KeyPair(args[1], args[2])
	if err != nil {
		return err
	}
	// Session tickets are on by default: resumption as the others do it.
	ln, err := tls.Listen("tcp", args[0], &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		return err
	}
	fmt.Printf("go tls echo listening on %s\n", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			buf := make([]byte, 16<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

func report(w io.Writer, s *settings, runs map[string][]map[string]result, broken map[string]string, started time.Time, loadStart string) {
	fmt.Fprintf(w, "# TLS echo: Scale Stack vs Go crypto/tls vs HAProxy\n\n")
	fmt.Fprintf(w, "Generated by `bench/tlsecho` on %s in %s.\n\n", started.UTC().Format("2006-01-02 15:04 UTC"), time.Since(started).Round(time.Second))
	fmt.Fprintf(w, "Command (from `bench/`):\n\n    %s\n\n", s.commandLine)
	fmt.Fprintf(w, "Machine: %s. Load average (1/5/15 min) at start %s, at end %s.\n\n", runner.MachineFacts(), loadStart, runner.LoadAvg())
	hap := "HAProxy: not run"
	if out, err := runCmd(s.haproxy, "-v"); err == nil {
		hap = strings.SplitN(strings.TrimSpace(out), "\n", 2)[0]
	}
	fmt.Fprintf(w, "%s; TLS %s, ECDSA P-256 certificate, every server negotiating what the column TLS shows.\n\n", hap, s.tlsVersion)
	if runner.Nice != 0 {
		fmt.Fprintf(w, "Every server, backend and generator process ran at niceness %d, to win the CPU against other work on the machine more often (the same for every contender).\n\n", runner.Nice)
	}
	quota := "no CPU cap"
	if s.quota != nil {
		quota = fmt.Sprintf("a cgroup CPU quota of %.2f of one CPU (as in echo-server-bound.md)", s.quotaShare)
		if s.prioritize {
			quota += " with the highest CPU weight, so that other work could not take that share"
		}
	}
	fmt.Fprintf(w, "Each server: %d loop/thread/P, pinned to CPU %s, under %s. Generator `bench/cmd/echoload -tls %s` (crypto/tls clients, a goroutine per connection, certificates not verified) pinned to CPU %s. ",
		s.loops, s.serverCPUs, quota, s.tlsVersion, s.loadCPUs)
	fmt.Fprintf(w, "Messages: %d connections, %d-byte messages, one in flight each, %v warm-up, %v measured. Handshakes: %d generator goroutines each connecting, handshaking, echoing one message and resetting, %v measured; resumed ones share a client session cache (tickets). The proxies (tcpproxy, HAProxy forwarding) send to a plain `scalestack echo` pinned to CPU %s, whose CPU is not counted. %d interleaved rounds, medians. Server CPU is user+system from /proc/PID/stat over each window.\n\n",
		s.conns, s.size, s.warmup, s.duration, s.hsWorkers, s.hsDuration, s.backendCPUs, s.rounds)

	for _, ph := range phases {
		if ph.name != "msgs" && !s.handshakes {
			continue
		}
		fmt.Fprintf(w, "## %s\n\n", strings.ToUpper(ph.label[:1])+ph.label[1:])
		fmt.Fprintf(w, "| server | %ss/s | %ss per server CPU-second | server CPU µs/%s | server CPU (of %.2f) | generator CPU | p50 µs | p99 µs | resumed | TLS | per round, per CPU-second |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n",
			ph.unit, ph.unit, ph.unit, s.quotaShare)
		for _, name := range s.contenders {
			c, _ := findContender(name)
			var rate, per, cpuPer, cpuShare, gen, p50, p99 []float64
			var each []string
			var msgs, resumed uint64
			tlsDesc := ""
			for _, m := range runs[name] {
				r, ok := m[ph.name]
				if !ok {
					continue
				}
				rate = append(rate, r.MsgsPerSec)
				per = append(per, r.perCPU())
				if r.Msgs > 0 {
					cpuPer = append(cpuPer, r.serverCPU*1e6/float64(r.Msgs))
				}
				cpuShare = append(cpuShare, r.serverCPU/r.Seconds)
				gen = append(gen, r.GeneratorCPUSeconds/r.Seconds)
				p50 = append(p50, r.P50Micros)
				p99 = append(p99, r.P99Micros)
				each = append(each, fmt.Sprintf("%.0f", r.perCPU()))
				msgs += r.Msgs
				resumed += r.Resumed
				tlsDesc = r.TLS
			}
			if len(rate) == 0 {
				fmt.Fprintf(w, "| %s | — | — | — | — | — | — | — | — | — | failed: %s |\n", c.label, oneLine(broken[name]))
				continue
			}
			res := "—"
			if ph.name != "msgs" && msgs > 0 {
				res = fmt.Sprintf("%.0f %%", 100*float64(resumed)/float64(msgs))
			}
			note := strings.Join(each, ", ")
			if broken[name] != "" {
				note += "; then failed: " + oneLine(broken[name])
			}
			fmt.Fprintf(w, "| %s | %.0f | **%.0f** | %.2f | %.2f | %.2f | %.0f | %.0f | %s | %s | %s |\n", c.label,
				runner.Median(rate), runner.Median(per), runner.Median(cpuPer), runner.Median(cpuShare), runner.Median(gen),
				runner.Median(p50), runner.Median(p99), res, tlsDesc, note)
		}
		fmt.Fprintf(w, "\nRatios of %ss per server CPU-second, median of the per-round ratios (contenders of a round ran minutes apart at most):\n\n", ph.unit)
		fmt.Fprintf(w, "| ratio | median | per round | target |\n|---|---:|---|---|\n")
		for _, rt := range []struct{ a, b, target string }{
			{"epoll", "go", "≥ 1.2×"}, {"uring", "go", "≥ 1.2×"},
			{"epoll", "haproxy-lua", "≥ 1.0×"}, {"uring", "haproxy-lua", "≥ 1.0×"},
			{"tcpproxy", "haproxy", "≥ 1.0×"},
		} {
			if ph.name != "msgs" {
				rt.target = ""
			}
			ratioRow(w, runs, ph.name, rt.a, rt.b, rt.target)
		}
		fmt.Fprintln(w)
	}
}

func ratioRow(w io.Writer, runs map[string][]map[string]result, ph, a, b, target string) {
	ca, okA := findContender(a)
	cb, okB := findContender(b)
	if !okA || !okB {
		return
	}
	var per []float64
	var each []string
	for _, ma := range runs[a] {
		for _, mb := range runs[b] {
			ra, okA := ma[ph]
			rb, okB := mb[ph]
			if okA && okB && ra.round == rb.round && rb.perCPU() > 0 {
				per = append(per, ra.perCPU()/rb.perCPU())
				each = append(each, fmt.Sprintf("%.2f", ra.perCPU()/rb.perCPU()))
			}
		}
	}
	if len(per) == 0 {
		return
	}
	fmt.Fprintf(w, "| %s / %s | **%.2f×** | %s | %s |\n", ca.label, cb.label, runner.Median(per), strings.Join(each, ", "), target)
}

func runCmd(name string, args ...string) (string, error) {
	p, err := runner.Start(name, "", append([]string{name}, args...)...)
	if err != nil {
		return "", err
	}
	line, err := p.WaitLine("", 10*time.Second)
	p.Stop()
	return line, err
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
