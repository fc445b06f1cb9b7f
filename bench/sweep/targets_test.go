package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestProxyArgv(t *testing.T) {
	env := targetEnv{DBPort: 3400, ProxyBin: "bin/scalestack", BackendConns: 128, BackendUser: "sb",
		PasswordFile: "/w/pw", UsersFile: "/w/users"}
	tests := []struct {
		name   string
		target string
		loops  int
		cpus   string
		want   []string
		absent []string
	}{
		{"epoll with proxy defaults", targetProxyEpoll, 0, "", []string{"--io epoll", "--backend-conns 128", "--listen 127.0.0.1:7000",
			"--backend 127.0.0.1:3400", "--backend-user sb", "--backend-password-file /w/pw", "--users /w/users"}, []string{"--loops", "--cpus"}},
		{"uring pinned", targetProxyUring, 4, "0-3", []string{"--io uring", "--loops 4", "--cpus 0-3 --queue-timeout 60s"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := env
			e.ProxyLoops, e.ProxyCPUs = tc.loops, tc.cpus
			if tc.cpus != "" {
				e.ProxyExtra = []string{"--queue-timeout", "60s"}
			}
			argv := proxyArgv(tc.target, 7000, 0, e)
			if argv[0] != "bin/scalestack" || argv[1] != "mysqlproxy" {
				t.Fatalf("argv = %v", argv)
			}
			line := strings.Join(argv, " ")
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("%q lacks %q", line, w)
				}
			}
			for _, a := range tc.absent {
				if slices.Contains(argv, a) {
					t.Errorf("%q has %q", line, a)
				}
			}
		})
	}
}

// The base target runs the other binary, with the same flags as proxy-epoll: any difference
// between the two must come from the binaries alone.
func TestProxyArgvBase(t *testing.T) {
	env := targetEnv{DBPort: 3400, ProxyBin: "bin/scalestack", BaseBin: "/tmp/old/scalestack", BackendConns: 8}
	base := proxyArgv(targetProxyEpollBase, 7000, 0, env)
	plain := proxyArgv(targetProxyEpoll, 7000, 0, env)
	if base[0] != env.BaseBin || plain[0] != env.ProxyBin {
		t.Fatalf("binaries: base %q, plain %q; want %q and %q", base[0], plain[0], env.BaseBin, env.ProxyBin)
	}
	if !slices.Equal(base[1:], plain[1:]) {
		t.Errorf("flags differ:\nbase  %q\nplain %q", base[1:], plain[1:])
	}
}

// Only the scraped target turns the admin endpoint on; the others must keep metrics off, or the
// comparison between them measures nothing.
func TestProxyArgvAdmin(t *testing.T) {
	env := targetEnv{DBPort: 3400, ProxyBin: "bin/scalestack", BackendConns: 8}
	tests := []struct {
		name      string
		adminPort int
		want      string
	}{
		{"off", 0, ""},
		{"scraped", 7100, "127.0.0.1:7100"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			argv := proxyArgv(targetProxyEpollScraped, 7000, tc.adminPort, env)
			i := slices.Index(argv, "--admin")
			if i < 0 || i+1 >= len(argv) || argv[i+1] != tc.want {
				t.Errorf("argv %q: want --admin %q", argv, tc.want)
			}
			if !slices.Contains(argv, "epoll") {
				t.Errorf("argv %q: the scraped target must run the epoll driver", argv)
			}
		})
	}
}

// The idle-clients mode raises the proxy's client limit; the sweep leaves the proxy's default; a
// --max-clients given with --proxy-extra comes later on the command line, so it wins.
func TestProxyArgvMaxClients(t *testing.T) {
	tests := []struct {
		name       string
		maxClients int
		extra      []string
		want       []string // every --max-clients value, in order
	}{
		{"sweep leaves the default", 0, nil, nil},
		{"idle mode", 17000, nil, []string{"17000"}},
		{"proxy-extra wins", 17000, []string{"--max-clients", "20000"}, []string{"17000", "20000"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := targetEnv{DBPort: 3400, ProxyBin: "bin/scalestack", BackendConns: 8, ProxyMaxClients: tc.maxClients, ProxyExtra: tc.extra}
			argv := proxyArgv(targetProxyEpoll, 7000, 0, env)
			var got []string
			for i, a := range argv {
				if a == "--max-clients" && i+1 < len(argv) {
					got = append(got, argv[i+1])
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("argv %q: --max-clients values %v, want %v", argv, got, tc.want)
			}
		})
	}
}

func TestWithCPUs(t *testing.T) {
	if got := withCPUs("", "sysbench", "run"); !slices.Equal(got, []string{"sysbench", "run"}) {
		t.Errorf("no CPUs: %v", got)
	}
	if got := withCPUs("12-15", "sysbench"); !slices.Equal(got, []string{"taskset", "-c", "12-15", "sysbench"}) {
		t.Errorf("with CPUs: %v", got)
	}
}

func TestHAProxyConfig(t *testing.T) {
	cfg := haproxyConfig(7001, 3400, 8192)
	for _, want := range []string{"mode tcp", "bind 127.0.0.1:7001", "server db 127.0.0.1:3400 maxconn 8448", "maxconn 8448", "timeout client 1h"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config lacks %q:\n%s", want, cfg)
		}
	}
}

// startTarget must fail quickly and clearly when the program exits instead of listening, and the
// readiness wait must tell a listening port from a dead one.
func TestStartTargetProxyLifecycle(t *testing.T) {
	dir := t.TempDir()
	// A fake proxy that exits at once, as a proxy with a bad flag would.
	failing := filepath.Join(dir, "failing")
	if err := os.WriteFile(failing, []byte("#!/bin/sh\necho 'no backend' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	env := targetEnv{WorkDir: dir, DBPort: 1, ProxyBin: failing, BackendConns: 1, BackendUser: "u",
		PasswordFile: "p", UsersFile: "u"}
	start := time.Now()
	_, err := startTarget(context.Background(), targetProxyEpoll, env, filepath.Join(dir, "log"))
	if err == nil || !strings.Contains(err.Error(), "no backend") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("err = %v; want the exit status and the program's own message", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("took %s to notice the exit", time.Since(start))
	}

	// A live listener, then a port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if err := waitListening(context.Background(), l.Addr().(*net.TCPAddr).Port, make(chan struct{}), 5*time.Second); err != nil {
		t.Errorf("waitListening on a live listener: %v", err)
	}
	free, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	if err := waitListening(context.Background(), free, make(chan struct{}), 300*time.Millisecond); err == nil {
		t.Error("waitListening succeeded on a port nobody listens on")
	}
}

func TestStartTargetDirectAndUnknown(t *testing.T) {
	d, err := startTarget(context.Background(), targetDirect, targetEnv{DBPort: 3999}, "")
	if err != nil || d.Port != 3999 || d.PID != 0 || d.stop() != nil {
		t.Errorf("direct = %+v, %v", d, err)
	}
	if _, err := startTarget(context.Background(), "proxysql", targetEnv{}, filepath.Join(t.TempDir(), "l")); err == nil {
		t.Error("unknown target started")
	}
}
