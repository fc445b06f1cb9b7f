package httpd_test

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
	"github.com/scalestack/scalestack/httpwire"
	"github.com/scalestack/scalestack/internal/testutil"
	"github.com/scalestack/scalestack/reactor"
	"github.com/scalestack/scalestack/ring"
)

func TestMain(m *testing.M) {
	buffer.Debug = true
	testutil.VerifyNoLeaks(m)
}

var testDrivers = []struct {
	name      string
	newDriver reactor.NewDriverFunc
}{
	{"epoll", reactor.NewEpoll},
	{"uring", ring.New},
}

func forEachDriver(t *testing.T, fn func(t *testing.T, newDriver reactor.NewDriverFunc)) {
	for _, d := range testDrivers {
		t.Run(d.name, func(t *testing.T) { fn(t, d.newDriver) })
	}
}

// testServer is a server on its own engine, stopped when the test ends.
type testServer struct {
	*httpd.Server
	addr   string // host:port
	url    string // http://host:port
	root   string
	static *httpd.Static
}

// startServer serves a fresh copy of the test tree (see makeTree) with the
// static handler at /, the health handler at /healthz and the test
// handlers at /echo (request path back), /body (request body back).
func startServer(t *testing.T, newDriver reactor.NewDriverFunc, cfg httpd.Config) *testServer {
	t.Helper()
	return startCachingServer(t, newDriver, cfg, httpd.FileCacheConfig{})
}

// startCachingServer is startServer with the static handler's file cache
// sized by cache.
func startCachingServer(t *testing.T, newDriver reactor.NewDriverFunc, cfg httpd.Config, cache httpd.FileCacheConfig) *testServer {
	t.Helper()
	root := makeTree(t)
	router := httpd.NewRouter()
	cfg.Router = router
	srv := httpd.New(cfg)
	static, err := httpd.NewStatic(root)
	if err != nil {
		t.Fatal(err)
	}
	static.Cache = cache
	t.Cleanup(func() { static.Close() })
	mustHandle(t, router, "/", static)
	mustHandle(t, router, "/healthz", httpd.Health{Server: srv})
	mustHandle(t, router, "/echo", httpd.HandlerFunc(func(w *httpd.Response, req *httpwire.Request) {
		w.Reply(200, "text/plain", append([]byte(nil), req.Target...))
	}))
	mustHandle(t, router, "/body", &bodyEcho{})
	mustHandle(t, router, "/count", &bodyCount{})
	mustHandle(t, router, "/slow", httpd.HandlerFunc(serveSlow))

	e, err := reactor.New(reactor.Config{Loops: 2, NewDriver: newDriver, OnError: func(err error) { t.Errorf("engine: %v", err) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	srv.Attach(e)
	addr, err := conn.ParseAddr("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := conn.Listen(e, srv.ListenConfig(addr, false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	a := ln.Addr().Address
	return &testServer{Server: srv, addr: a, url: "http://" + a, root: root, static: static}
}

func mustHandle(t *testing.T, r *httpd.Router, prefix string, h httpd.Handler) {
	t.Helper()
	if err := r.Handle(prefix, h); err != nil {
		t.Fatal(err)
	}
}

// bodyEcho answers with the request body it received, as a chunked
// response started with the body's first bytes and written as they arrive.
type bodyEcho struct{}

func (*bodyEcho) Serve(*httpd.Response, *httpwire.Request) {}

func (*bodyEcho) OnBody(w *httpd.Response, data []byte, last bool) {
	if !w.Started() {
		w.Header("Content-Type", "application/octet-stream")
		w.WriteHeader(200, -1)
	}
	w.Write(data)
	if last {
		w.End()
	}
}

// bodyCount answers once the whole body is in, with its length: a refused
// body still gets its status, since no response has started.
type bodyCount struct{ n int }

func (b *bodyCount) Serve(*httpd.Response, *httpwire.Request) { b.n = 0 }

func (b *bodyCount) OnBody(w *httpd.Response, data []byte, last bool) {
	b.n += len(data) // one connection at a time in these tests
	if last {
		w.Reply(200, "text/plain", []byte(fmt.Sprint(b.n)))
	}
}

// serveSlow answers "hello" at once and " world" slowWait later: a
// response in progress for a while.
func serveSlow(w *httpd.Response, _ *httpwire.Request) {
	w.WriteHeader(200, int64(len("hello world")))
	w.Write([]byte("hello"))
	sr := &slowReply{w: w}
	sr.timer.Func, sr.timer.Arg = finishSlow, sr
	w.Loop().Schedule(&sr.timer, slowWait)
}

const slowWait = 300 * time.Millisecond

type slowReply struct {
	w     *httpd.Response
	timer reactor.Timer
}

func finishSlow(arg any) {
	sr := arg.(*slowReply)
	if sr.w.Closed() {
		return
	}
	sr.w.Write([]byte(" world"))
	sr.w.End()
}

// bigSize is larger than the server's streaming chunk and high-water mark.
const bigSize = 3<<20 + 12345

// makeTree writes the files the tests serve and returns the directory:
//
//	index.html, hello.txt, style.css, big.bin (bigSize bytes), empty.txt,
//	sub/index.html, sub/page.html, inside -> hello.txt (a symlink),
//	outside -> a file beside the root (a symlink out of it), secret.txt
//	beside the root.
func makeTree(t *testing.T) string {
	t.Helper()
	base := t.TempDir()
	root := filepath.Join(base, "www")
	write := func(name string, data []byte) {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("index.html", []byte("<h1>home</h1>\n"))
	write("hello.txt", []byte("hello, world\n"))
	write("style.css", []byte("body{}\n"))
	write("empty.txt", nil)
	write("sub/index.html", []byte("<h1>sub</h1>\n"))
	write("sub/page.html", []byte("<p>page</p>\n"))
	write("big.bin", bigBody())
	if err := os.WriteFile(filepath.Join(base, "secret.txt"), []byte("secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("hello.txt", filepath.Join(root, "inside")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../secret.txt", filepath.Join(root, "outside")); err != nil {
		t.Fatal(err)
	}
	// A fixed modification time, so nginx and the module see the same.
	mt := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	_ = filepath.Walk(root, func(p string, _ os.FileInfo, _ error) error {
		_ = os.Chtimes(p, mt, mt)
		return nil
	})
	return root
}

func bigBody() []byte {
	b := make([]byte, bigSize)
	for i := range b {
		b[i] = byte(i*7 + i>>10)
	}
	return b
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
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool(t, "curl"), append([]string{"-s", "--max-time", "15"}, args...)...)
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

// rawExchange writes req on a new connection and reads responses until
// the server closes or n responses came, returning them in order.
func rawExchange(t *testing.T, addr, req string, n int) []*http.Response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	var method *http.Request
	if strings.HasPrefix(req, "HEAD ") {
		method = &http.Request{Method: "HEAD"}
	}
	return readResponsesTo(t, bufio.NewReader(c), n, method)
}

func readResponses(t *testing.T, br *bufio.Reader, n int) []*http.Response {
	return readResponsesTo(t, br, n, nil)
}

func readResponsesTo(t *testing.T, br *bufio.Reader, n int, req *http.Request) []*http.Response {
	t.Helper()
	var out []*http.Response
	for len(out) < n {
		resp, err := http.ReadResponse(br, req)
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

// nginx starts a private nginx serving root on a free loopback port, one
// worker, access log off, and stops it when the test ends.
func nginx(t *testing.T, root string) string {
	t.Helper()
	bin := tool(t, "nginx")
	dir := t.TempDir()
	port := testutil.FreePort(t)
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 1024; }
http {
    types { text/html html; text/plain txt; text/css css; application/octet-stream bin; }
    default_type application/octet-stream;
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    server_tokens off;
    server {
        listen 127.0.0.1:%[2]d;
        root %[3]s;
    }
}
`, dir, port, root)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", confPath, "-p", dir, "-e", filepath.Join(dir, "error.log"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx exited: %s\n%s", out.String(), log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not listen on %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func hasLine(out, prefix string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), prefix) {
			return true
		}
	}
	return false
}

func execOutput(bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out), err
}
