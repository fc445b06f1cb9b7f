package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Target names, as given to --targets.
const (
	targetDirect     = "direct"
	targetProxyEpoll = "proxy-epoll"
	targetProxyUring = "proxy-uring"
	targetHAProxy    = "haproxy"
	// targetProxyEpollScraped is proxy-epoll with its admin endpoint on and the sweep scraping its
	// /metrics every second during the measured window: beside proxy-epoll it measures what metrics cost.
	targetProxyEpollScraped = "proxy-epoll-scraped"
	// targetProxyEpollBase is proxy-epoll run from --base-bin, another build of scalestack (say, the
	// commit before a refactor): beside proxy-epoll in one run it shows what a change cost, measured
	// under the same load and noise instead of against an older results file.
	targetProxyEpollBase = "proxy-epoll-base"
	// targetProxyEpollTLS is proxy-epoll with TLS towards its clients: a certificate from a throwaway CA
	// the sweep makes (tlsfiles.go), and sysbench with --mysql-ssl=on. Beside proxy-epoll it measures
	// what client TLS costs the proxy per query.
	targetProxyEpollTLS = "proxy-epoll-tls"
	// targetProxyEpollPipelined is proxy-epoll with --pipeline-depth (the sweep's --pipeline-depth, 8 by
	// default) after --proxy-extra: beside proxy-epoll it measures what pipelining to the backend does.
	targetProxyEpollPipelined = "proxy-epoll-pipelined"
)

var knownTargets = []string{targetDirect, targetProxyEpoll, targetProxyUring, targetHAProxy, targetProxyEpollScraped, targetProxyEpollBase, targetProxyEpollTLS, targetProxyEpollPipelined}

func isProxyTarget(t string) bool {
	return t == targetProxyEpoll || t == targetProxyUring || t == targetProxyEpollScraped || t == targetProxyEpollBase || t == targetProxyEpollTLS ||
		t == targetProxyEpollPipelined
}

// isTLSTarget says whether the target's clients connect with TLS.
func isTLSTarget(t string) bool { return t == targetProxyEpollTLS }

// isScrapedTarget says whether the target runs with its admin endpoint on and is scraped.
func isScrapedTarget(t string) bool { return t == targetProxyEpollScraped }

// targetEnv is what every target needs to know to be started.
type targetEnv struct {
	WorkDir      string
	DBPort       int
	ProxyBin     string
	BaseBin      string // the binary of proxy-epoll-base
	ProxyLoops   int
	ProxyCPUs    string
	BackendConns int
	BackendUser  string
	PasswordFile string // the backend user's password, for --backend-password-file
	UsersFile    string // the proxy's client users
	MaxClients   int    // the largest thread count of the sweep, to size HAProxy
	// ProxyMaxClients is the proxy's --max-clients; 0 leaves the proxy's default. The idle-clients
	// mode sets it above its client count, which exceeds that default.
	ProxyMaxClients int
	ProxyExtra      []string
	// PipelineDepth is the proxy-epoll-pipelined target's --pipeline-depth.
	PipelineDepth int
	// TLSDir holds the TLS target's files (writeTLSFiles): the proxy's certificate and key, and the
	// CA and client files sysbench reads from its working directory.
	TLSDir string
}

// runningTarget is one started target: where sysbench connects and, for a process in front of the
// database, its pid (0 for direct).
type runningTarget struct {
	Name string
	Port int
	PID  int
	// AdminPort is the proxy's admin endpoint (/metrics) for a scraped target; 0 when it is off.
	AdminPort int
	Argv      []string
	stop      func() error
}

// startTarget starts the named target, fresh for each point, so that its CPU, memory and backend
// connections belong to that point alone and an idle proxy never holds connections during another
// target's point.
func startTarget(ctx context.Context, name string, env targetEnv, logPath string) (*runningTarget, error) {
	if name == targetDirect {
		return &runningTarget{Name: name, Port: env.DBPort, stop: func() error { return nil }}, nil
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	var argv []string
	adminPort := 0
	switch name {
	case targetHAProxy:
		cfgPath := filepath.Join(env.WorkDir, "haproxy.cfg")
		if err := os.WriteFile(cfgPath, []byte(haproxyConfig(port, env.DBPort, env.MaxClients)), 0o644); err != nil {
			return nil, fmt.Errorf("writing HAProxy config: %w", err)
		}
		// -db: stay in the foreground, so the pid we hold is the one process doing the work.
		argv = withCPUs(env.ProxyCPUs, "haproxy", "-db", "-f", cfgPath)
	case targetProxyEpoll, targetProxyUring, targetProxyEpollBase, targetProxyEpollTLS, targetProxyEpollPipelined:
		argv = withCPUs(env.ProxyCPUs, proxyArgv(name, port, 0, env)...)
	case targetProxyEpollScraped:
		if adminPort, err = freePort(); err != nil {
			return nil, err
		}
		argv = withCPUs(env.ProxyCPUs, proxyArgv(name, port, adminPort, env)...)
	default:
		return nil, fmt.Errorf("unknown target %q (known: %s)", name, strings.Join(knownTargets, ", "))
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating target log: %w", err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	// exited is closed (not sent on) so that both the readiness wait and stop can observe the exit.
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); logf.Close(); close(exited) }()
	t := &runningTarget{Name: name, Port: port, PID: cmd.Process.Pid, Argv: argv, AdminPort: adminPort}
	t.stop = func() error {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
			return nil
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("%s (pid %d) ignored SIGTERM for 15s; killed", name, t.PID)
		}
	}
	err = waitListening(ctx, port, exited, 20*time.Second)
	if err == nil && adminPort > 0 {
		err = waitListening(ctx, adminPort, exited, 20*time.Second)
	}
	if err != nil {
		_ = t.stop()
		b, _ := os.ReadFile(logPath)
		tail := strings.TrimSpace(lastLines(string(b), 15))
		// The first line is the short reason the CSV's status shows; the rest is for the log.
		reason := err.Error()
		if waitErr != nil {
			reason = waitErr.Error()
		}
		if tail != "" {
			reason += ": " + lastLines(tail, 1)
		}
		return nil, fmt.Errorf("%s did not start (%s)\ncommand: %s\nits log:\n%s", name, reason, strings.Join(argv, " "), tail)
	}
	return t, nil
}

// proxyArgv is the command line of the Scale Stack proxy for one target; adminPort 0 turns its
// admin endpoint (metrics) off.
func proxyArgv(name string, port, adminPort int, env targetEnv) []string {
	io := "epoll"
	if name == targetProxyUring {
		io = "uring"
	}
	admin := "" // metrics off unless asked: the sweep measures the data path
	if adminPort > 0 {
		admin = "127.0.0.1:" + strconv.Itoa(adminPort)
	}
	bin := env.ProxyBin
	if name == targetProxyEpollBase {
		bin = env.BaseBin
	}
	argv := []string{bin, "mysqlproxy",
		"--listen", "127.0.0.1:" + strconv.Itoa(port),
		"--backend", "127.0.0.1:" + strconv.Itoa(env.DBPort),
		"--backend-user", env.BackendUser,
		"--backend-password-file", env.PasswordFile,
		"--backend-conns", strconv.Itoa(env.BackendConns),
		"--users", env.UsersFile,
		"--io", io,
		"--admin", admin,
	}
	if env.ProxyLoops > 0 {
		argv = append(argv, "--loops", strconv.Itoa(env.ProxyLoops))
	}
	if env.ProxyCPUs != "" {
		argv = append(argv, "--cpus", env.ProxyCPUs)
	}
	if env.ProxyMaxClients > 0 {
		argv = append(argv, "--max-clients", strconv.Itoa(env.ProxyMaxClients))
	}
	if isTLSTarget(name) {
		argv = append(argv, "--tls-cert", filepath.Join(env.TLSDir, tlsServerCert), "--tls-key", filepath.Join(env.TLSDir, tlsServerKey))
	}
	// Last, so that a flag given with --proxy-extra wins over the sweep's own.
	argv = append(argv, env.ProxyExtra...)
	if name == targetProxyEpollPipelined {
		argv = append(argv, "--pipeline-depth", strconv.Itoa(env.PipelineDepth))
	}
	return argv
}

// haproxyConfig is a plain TCP-mode forwarder: each client connection gets its own server connection
// (1:1), the reference point for "what does merely sitting in the path cost".
func haproxyConfig(listenPort, dbPort, maxClients int) string {
	// Two sockets per client plus a margin; HAProxy derives its file limit from maxconn.
	maxconn := maxClients + 256
	return fmt.Sprintf(`# Generated by bench/sweep: TCP mode, one server connection per client connection.
global
    maxconn %d

defaults
    mode tcp
    timeout connect 10s
    timeout client 1h
    timeout server 1h
    maxconn %d

frontend mysql_in
    bind 127.0.0.1:%d
    default_backend mysql_out

backend mysql_out
    server db 127.0.0.1:%d maxconn %d
`, maxconn, maxconn, listenPort, dbPort, maxconn)
}

// waitListening dials the port until something accepts, failing early if the process exits.
func waitListening(ctx context.Context, port int, exited <-chan struct{}, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("process exited")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing accepted on %s within %s", addr, limit)
		}
	}
}

// freePort asks the kernel for an unused loopback port. Another process could take it before we bind
// it; the target then fails to start and says so, which is rare enough on a benchmark host.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
