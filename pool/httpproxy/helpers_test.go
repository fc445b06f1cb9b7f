package httpproxy_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scalestack/scalestack/buffer"
	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/httpd"
	"github.com/scalestack/scalestack/internal/testutil"
	"github.com/scalestack/scalestack/pool/httpproxy"
	"github.com/scalestack/scalestack/reactor"
)

func TestMain(m *testing.M) {
	buffer.Debug = true
	testutil.VerifyNoLeaks(m)
}

// testProxy is the proxy handler mounted at / of an httpd server on its
// own 2-loop engine, stopped when the test ends.
type testProxy struct {
	px   *httpproxy.Proxy
	srv  *httpd.Server
	addr string
	url  string
}

func startProxy(t *testing.T, cfg httpproxy.Config, hcfg httpd.Config) *testProxy {
	t.Helper()
	if cfg.Logf == nil {
		cfg.Logf = t.Logf
	}
	px, err := httpproxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	router := httpd.NewRouter()
	if err := router.Handle("/", px); err != nil {
		t.Fatal(err)
	}
	hcfg.Router = router
	srv := httpd.New(hcfg)
	e, err := reactor.New(reactor.Config{Loops: 2, OnError: func(err error) { t.Errorf("engine: %v", err) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	t.Cleanup(px.Stop) // before the engine stops: no reconnects
	srv.Attach(e)
	if err := px.Start(e); err != nil {
		t.Fatal(err)
	}
	addr, _ := conn.ParseAddr("127.0.0.1:0")
	ln, err := conn.Listen(e, srv.ListenConfig(addr, false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	a := ln.Addr().Address
	tp := &testProxy{px: px, srv: srv, addr: a, url: "http://" + a}
	return tp
}

// waitReady waits until every upstream has all its connections.
func (tp *testProxy) waitReady(t *testing.T, conns int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok := true
		for _, u := range tp.px.Upstreams() {
			if u.Connected < conns {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("upstream connections not ready: %+v", tp.px.Upstreams())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mustAddr(t *testing.T, s string) conn.Addr {
	t.Helper()
	a, err := conn.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// tool returns the path of a command the tests need; a missing one fails
// the test (scripts/http-tools.sh installs them), it never skips it.
func tool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if p := filepath.Join(dir, name); fileExists(p) {
			return p
		}
	}
	t.Fatalf("%s is not installed: run scripts/http-tools.sh (make test does)", name)
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// curl runs curl with args and returns its stdout; -s and a time limit are
// added.
func curl(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool(t, "curl"), append([]string{"-s", "--max-time", "50"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("curl %q: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}

// curlStatus returns the status code curl saw for one request.
func curlStatus(t *testing.T, args ...string) int {
	t.Helper()
	out := curl(t, append([]string{"-o", "/dev/null", "-w", "%{http_code}"}, args...)...)
	var code int
	if _, err := fmt.Sscan(out, &code); err != nil {
		t.Fatalf("curl %q printed %q", args, out)
	}
	return code
}

// nginxServer is a private nginx on a loopback port: one worker, access
// log off, keep-alive connections kept for long; Kill and Start stop it
// and bring it back on the same port.
type nginxServer struct {
	t    *testing.T
	bin  string
	dir  string
	addr string
	cmd  *exec.Cmd
	done chan struct{}
}

// nginxLocations are the test locations: /echo-headers/ answers with the
// fields the proxy sent, /uri/... with the request's URI.
const nginxLocations = `
        location /echo-headers/ {
            default_type text/plain;
            return 200 "xff=[$http_x_forwarded_for] proto=[$http_x_forwarded_proto] host=[$http_host] connection=[$http_connection] keepalive=[$http_keep_alive] te=[$http_te] upgrade=[$http_upgrade] custom=[$http_x_custom] hop=[$http_x_hop]\n";
        }
        location /uri/ {
            default_type text/plain;
            return 200 "$request_uri\n";
        }
`

func startNginx(t *testing.T, root string) *nginxServer {
	t.Helper()
	n := &nginxServer{t: t, bin: tool(t, "nginx"), dir: t.TempDir()}
	n.addr = fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
    types { text/html html; text/plain txt; application/octet-stream bin; }
    default_type application/octet-stream;
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    server_tokens off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    server {
        listen %[2]s;
        root %[3]s;
%[4]s
    }
}
`, n.dir, n.addr, root, nginxLocations)
	if err := os.WriteFile(filepath.Join(n.dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	n.Start()
	t.Cleanup(n.Kill)
	return n
}

// Start runs nginx and waits until it listens.
func (n *nginxServer) Start() {
	t := n.t
	t.Helper()
	cmd := exec.Command(n.bin, "-c", filepath.Join(n.dir, "nginx.conf"), "-p", n.dir, "-e", filepath.Join(n.dir, "error.log"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	n.cmd, n.done = cmd, done
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("tcp", n.addr); err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(n.dir, "error.log"))
			t.Fatalf("nginx exited: %s\n%s", out.String(), log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not listen on %s", n.addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill stops nginx at once (SIGKILL: its connections are reset or closed
// by the kernel, as in a crash).
func (n *nginxServer) Kill() {
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Kill()
	<-n.done
	n.cmd = nil
}

// readResponses reads n responses (or until the connection ends), bodies
// read whole.
func readResponses(t *testing.T, br *bufio.Reader, n int, method string) []*http.Response {
	t.Helper()
	var out []*http.Response
	for len(out) < n {
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			break
		}
		body := new(bytes.Buffer)
		_, err = body.ReadFrom(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("response %d body: %v", len(out), err)
		}
		resp.Body = nopCloser{body}
		out = append(out, resp)
	}
	return out
}

type nopCloser struct{ *bytes.Buffer }

func (nopCloser) Close() error { return nil }

func bodyOf(r *http.Response) string { return r.Body.(nopCloser).String() }

// makeRoot writes the files nginx serves: index.html and big.bin of size
// bytes (sparse: zeros, from the page cache).
func makeRoot(t *testing.T, big int64) string {
	t.Helper()
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "index.html"), []byte("hello from nginx\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(root, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(big); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return root
}

// buildScalestack compiles the scalestack command (without the race
// detector, whatever this test binary has).
func buildScalestack(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "scalestack")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/scalestack/scalestack/cmd/scalestack")
	cmd.Env = append(os.Environ(), "GOFLAGS=-ldflags=-checklinkname=0 -buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// vmRSS is this process's resident set in bytes.
func vmRSS(t *testing.T) int64 { return statusRSS(t, "/proc/self/status") }

// processRSS is process pid's resident set in bytes.
func processRSS(t *testing.T, pid int) int64 {
	return statusRSS(t, fmt.Sprintf("/proc/%d/status", pid))
}

func statusRSS(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimPrefix(l, "VmRSS:")), &kb)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}
