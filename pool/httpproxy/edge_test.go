package httpproxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/httpd"
	"github.com/scalestack/scalestack/httpwire"
	"github.com/scalestack/scalestack/pool/httpproxy"
)

// rawUpstream answers every request on its connections with answer(n),
// n counting requests from 0, written raw; close says whether to close the
// connection after it.
func rawUpstream(t *testing.T, answer func(n int64) (resp string, close bool)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var count atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					resp, closeAfter := answer(count.Add(1) - 1)
					if _, err := io.WriteString(c, resp); err != nil || closeAfter {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// A body delimited by the upstream's close is relayed whole (chunked to
// an HTTP/1.1 client), and so are responses after which the upstream
// closes; the next requests get fresh connections.
func TestProxyUpstreamCloses(t *testing.T) {
	big := strings.Repeat("z", 300<<10)
	up := rawUpstream(t, func(n int64) (string, bool) {
		switch n % 3 {
		case 0:
			return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + big, true // until close
		case 1:
			return "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nshort", true // 1.0: closes
		}
		return "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 4\r\n\r\nlast", true
	})
	tp := startProxy(t, httpproxy.Config{Upstreams: []conn.Addr{mustAddr(t, up)}, Conns: 1, HealthInterval: time.Hour}, httpd.Config{})
	tp.waitReady(t, 1)
	client := &http.Client{}
	defer client.CloseIdleConnections()
	for i := 0; i < 6; i++ {
		resp, err := client.Get(tp.url + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := []string{big, "short", "last"}[i%3]
		if err != nil || string(b) != want {
			t.Fatalf("request %d: %d bytes, %v; want %d bytes", i, len(b), err, len(want))
		}
		if i%3 == 0 && (len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked") {
			t.Fatalf("close-delimited body relayed as %v", resp.TransferEncoding)
		}
	}
}

// A request waits at most the queue timeout for a free connection: 504.
func TestProxyQueueTimeout504(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			<-release
		}
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	tp := startProxy(t, httpproxy.Config{Upstreams: []conn.Addr{mustAddr(t, up.Listener.Addr().String())}, Conns: 1,
		QueueTimeout: 300 * time.Millisecond}, httpd.Config{})
	tp.waitReady(t, 1)
	held := make(chan string, 1)
	go func() {
		resp, err := http.Get(tp.url + "/hold")
		if err != nil {
			held <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		held <- string(b)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for tp.px.Upstreams()[0].InFlight == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	out := curl(t, "-w", "\n%{http_code}", tp.url+"/other")
	if took := time.Since(start); out != "504 Gateway Timeout: no upstream connection became free in time\n\n504" || took < 300*time.Millisecond || took > 3*time.Second {
		t.Fatalf("while the only connection is held: %q after %v", out, took)
	}
	close(release)
	if got := <-held; got != "ok" {
		t.Fatalf("held request: %q", got)
	}
	http.DefaultClient.CloseIdleConnections()
}

// A client that leaves in the middle of a large response: the upstream
// connection is dropped and replaced, and the proxy serves on.
func TestProxyClientLeavesMidResponse(t *testing.T) {
	ng := startNginx(t, makeRoot(t, 64<<20))
	tp := startProxy(t, httpproxy.Config{Upstreams: []conn.Addr{mustAddr(t, ng.addr)}, Conns: 1}, httpd.Config{})
	tp.waitReady(t, 1)
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", tp.addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
		if _, err := io.ReadFull(c, make([]byte, 1<<20)); err != nil {
			t.Fatal(err)
		}
		c.Close()
		got := curl(t, tp.url+"/index.html")
		if got != "hello from nginx\n" {
			t.Fatalf("after client %d left: %q", i, got)
		}
	}
	tp.waitReady(t, 1)
	if u := tp.px.Upstreams()[0]; u.InFlight != 0 || u.Connected != 1 {
		t.Fatalf("upstream after the clients left: %+v", u)
	}
}

// An upstream that answers before reading the request body (413): the
// client gets that answer, and the connection, whose request was not
// wholly sent, is not reused.
func TestProxyEarlyAnswer(t *testing.T) {
	up := rawUpstream(t, func(int64) (string, bool) {
		return "HTTP/1.1 413 Content Too Large\r\nContent-Length: 9\r\n\r\ntoo large", false
	})
	tp := startProxy(t, httpproxy.Config{Upstreams: []conn.Addr{mustAddr(t, up)}, Conns: 1, HealthInterval: time.Hour}, httpd.Config{})
	tp.waitReady(t, 1)
	out := curl(t, "-w", "\n%{http_code}", "--data-binary", "@-", tp.url+"/upload")
	if out != "too large\n413" {
		t.Fatalf("got %q", out)
	}
	out = curl(t, "-w", "\n%{http_code}", tp.url+"/again")
	if out != "too large\n413" {
		t.Fatalf("next request: %q", out)
	}
}

// Least busy sends new requests to the server with fewer in flight.
func TestProxyLeastBusy(t *testing.T) {
	release := make(chan struct{})
	var slowHits, fastHits atomic.Int64
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/hold":
			<-release
		case "/quick":
			slowHits.Add(1)
		}
	}))
	defer slow.Close()
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	defer unblock() // before slow.Close, even when the test fails
	fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/quick" {
			fastHits.Add(1)
		}
	}))
	defer fast.Close()
	tp := startProxy(t, httpproxy.Config{Upstreams: []conn.Addr{mustAddr(t, slow.Listener.Addr().String()), mustAddr(t, fast.Listener.Addr().String())},
		Conns: 4, Balance: httpproxy.LeastBusy}, httpd.Config{})
	tp.waitReady(t, 4)
	// Requests to /hold until one is held on the slow server (those that
	// go to the fast one return at once).
	done := make(chan struct{}, 64)
	holds := 0
	for tp.px.Upstreams()[0].InFlight < 1 {
		if holds == 20 {
			t.Fatalf("upstreams: %+v", tp.px.Upstreams())
		}
		holds++
		go func() {
			resp, err := http.Get(tp.url + "/hold")
			if err == nil {
				resp.Body.Close()
			}
			done <- struct{}{}
		}()
		time.Sleep(50 * time.Millisecond)
	}
	before := slowHits.Load()
	for i := 0; i < 20; i++ {
		if code := curlStatus(t, tp.url+"/quick"); code != 200 {
			t.Fatalf("quick %d: %d", i, code)
		}
	}
	if got := slowHits.Load() - before; got != 0 || fastHits.Load() != 20 {
		t.Fatalf("%d of 20 quick requests went to the busy server, %d to the other", got, fastHits.Load())
	}
	unblock()
	for ; holds > 0; holds-- {
		<-done
	}
	http.DefaultClient.CloseIdleConnections()
}

// A client uploading faster than the upstream reads is held back: the
// body waits in the sockets, not in the proxy's memory.
func TestProxyUploadBackpressure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept() // and never read: a stalled upstream
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	}()
	tp := startProxy(t, httpproxy.Config{Upstreams: []conn.Addr{mustAddr(t, ln.Addr().String())}, Conns: 1,
		ResponseHeaderTimeout: 3 * time.Second}, httpd.Config{Limits: httpwire.Limits{MaxBody: 1 << 30}})
	tp.waitReady(t, 1)
	base := vmRSS(t)
	c, err := net.Dial("tcp", tp.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const size = 256 << 20
	fmt.Fprintf(c, "POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n", size)
	sent := make(chan int64, 1)
	go func() {
		chunk := make([]byte, 1<<20)
		var n int64
		_ = c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		for n < size {
			k, err := c.Write(chunk)
			n += int64(k)
			if err != nil {
				break
			}
		}
		sent <- n
	}()
	n := <-sent
	grew := vmRSS(t) - base
	// What the client gets in is what the sockets hold (a few MiB each
	// way) plus the upstream connection's high-water mark; the RSS is
	// logged only, since this process is also the client.
	t.Logf("client wrote %d MiB before stalling; RSS +%d MiB", n>>20, grew>>20)
	if n > 24<<20 {
		t.Fatalf("upload to a stalled upstream: client wrote %d MiB in 2s: not held back", n>>20)
	}
}

// A connection that breaks before any answer (a keep-alive connection the
// server closed as the request went out): a safe request without a body
// is sent again once, an unsafe one gets 502.
func TestProxyRetrySafeRequest(t *testing.T) {
	var drop atomic.Bool
	up := rawUpstream(t, func(int64) (string, bool) {
		if drop.Swap(false) {
			return "", true // close without a word
		}
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	tp := startProxy(t, httpproxy.Config{Upstreams: []conn.Addr{mustAddr(t, up)}, Conns: 1, HealthInterval: time.Hour}, httpd.Config{})
	tp.waitReady(t, 1)
	drop.Store(true)
	if out := curl(t, "-w", "\n%{http_code}", tp.url+"/get"); out != "ok\n200" {
		t.Fatalf("GET after a dropped connection: %q", out)
	}
	if u := tp.px.Upstreams()[0]; u.Retries != 1 {
		t.Fatalf("retries: %+v", u)
	}
	tp.waitReady(t, 1)
	drop.Store(true)
	if out := curl(t, "-w", "\n%{http_code}", "--data", "x=1", tp.url+"/post"); out != "502 Bad Gateway: the upstream connection broke before the response arrived\n\n502" {
		t.Fatalf("POST after a dropped connection: %q", out)
	}
}

// With a health path, a server failing it is not used (502) until it
// passes again; idle connections are checked every health interval.
func TestProxyHealthPath(t *testing.T) {
	var healthy atomic.Bool
	var checks atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			checks.Add(1)
			if !healthy.Load() {
				w.WriteHeader(503)
			}
			return
		}
		io.WriteString(w, "served")
	}))
	defer up.Close()
	tp := startProxy(t, httpproxy.Config{Upstreams: []conn.Addr{mustAddr(t, up.Listener.Addr().String())}, Conns: 2,
		HealthPath: "/health", HealthInterval: 100 * time.Millisecond, ConnectTimeout: time.Second}, httpd.Config{})
	deadline := time.Now().Add(10 * time.Second)
	for tp.px.Upstreams()[0].Available {
		if time.Now().After(deadline) {
			t.Fatalf("a server failing its health check is still available: %+v", tp.px.Upstreams()[0])
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code := curlStatus(t, tp.url+"/x"); code != 502 {
		t.Fatalf("while unhealthy: %d", code)
	}
	healthy.Store(true)
	tp.waitReady(t, 2)
	if got := curl(t, tp.url+"/x"); got != "served" {
		t.Fatalf("once healthy: %q", got)
	}
	before := checks.Load()
	time.Sleep(500 * time.Millisecond)
	if n := checks.Load() - before; n < 2 {
		t.Fatalf("%d health checks of idle connections in 500ms at a 100ms interval", n)
	}
}

// An upstream silent in the middle of a body for the idle timeout: the
// client's connection is cut (its response cannot be completed), and the
// upstream connection replaced.
func TestProxyIdleTimeoutMidBody(t *testing.T) {
	up := rawUpstream(t, func(n int64) (string, bool) {
		if n == 0 {
			return "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", false // and then nothing
		}
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	tp := startProxy(t, httpproxy.Config{Upstreams: []conn.Addr{mustAddr(t, up)}, Conns: 1, HealthInterval: time.Hour,
		IdleTimeout: 300 * time.Millisecond}, httpd.Config{})
	tp.waitReady(t, 1)
	c, err := net.Dial("tcp", tp.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	fmt.Fprintf(c, "GET /stall HTTP/1.1\r\nHost: t\r\n\r\n")
	got, _ := io.ReadAll(c)
	took := time.Since(start)
	if !strings.HasSuffix(string(got), "\r\n\r\nabc") || took < 300*time.Millisecond || took > 5*time.Second {
		t.Fatalf("after %v: %q", took, got)
	}
	if out := curl(t, tp.url+"/next"); out != "ok" {
		t.Fatalf("next request: %q", out)
	}
	if u := tp.px.Upstreams()[0]; u.Cut != 1 {
		t.Fatalf("cut: %+v", u)
	}
}

// An upload that must wait for a connection waits in the client's socket
// (the client can write only what the sockets hold) and reaches the
// upstream whole once one is free.
func TestProxyUploadWaitsForConnection(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			<-release
		}
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, n)
	}))
	defer up.Close()
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock()
	tp := startProxy(t, httpproxy.Config{Upstreams: []conn.Addr{mustAddr(t, up.Listener.Addr().String())}, Conns: 1},
		httpd.Config{Limits: httpwire.Limits{MaxBody: 1 << 30}})
	tp.waitReady(t, 1)
	held := make(chan struct{})
	go func() {
		defer close(held)
		if resp, err := http.Get(tp.url + "/hold"); err == nil {
			resp.Body.Close()
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for tp.px.Upstreams()[0].InFlight == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	c, err := net.Dial("tcp", tp.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const size = 128 << 20
	fmt.Fprintf(c, "POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n", size)
	chunk := make([]byte, 1<<20)
	var n int64
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	for n < size {
		k, err := c.Write(chunk)
		n += int64(k)
		if err != nil {
			break
		}
	}
	t.Logf("the client got %d MiB out while no connection was free", n>>20)
	if n > 24<<20 {
		t.Fatalf("the client wrote %d MiB while its request waited for a connection: the proxy read its body", n>>20)
	}
	unblock()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	for n < size {
		k, err := c.Write(chunk[:min(len(chunk), int(size-n))])
		n += int64(k)
		if err != nil {
			t.Fatal(err)
		}
	}
	rs := readResponses(t, bufio.NewReader(c), 1, "POST")
	if len(rs) != 1 || bodyOf(rs[0]) != strconv.Itoa(size) {
		t.Fatalf("upload after the wait: %v", rs)
	}
	<-held
	http.DefaultClient.CloseIdleConnections()
}

// A server that closes after every response (its keep-alive requests used
// up, as nginx does after keepalive_requests and Apache after
// MaxKeepAliveRequests) costs a reconnect, not a backoff: 200 requests
// over one connection slot go at connect speed.
func TestProxyRecycledConnections(t *testing.T) {
	up := rawUpstream(t, func(int64) (string, bool) {
		return "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", true
	})
	var logged atomic.Int64
	tp := startProxy(t, httpproxy.Config{Upstreams: []conn.Addr{mustAddr(t, up)}, Conns: 1, HealthInterval: time.Hour,
		Logf: func(string, ...any) { logged.Add(1) }}, httpd.Config{})
	tp.waitReady(t, 1)
	client := &http.Client{}
	defer client.CloseIdleConnections()
	start := time.Now()
	const n = 200
	for i := 0; i < n; i++ {
		resp, err := client.Get(tp.url + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "ok" {
			t.Fatalf("request %d: %q", i, b)
		}
	}
	took := time.Since(start)
	t.Logf("%d requests, each on a fresh upstream connection, in %v", n, took)
	// With the pool's backoff (25-75 ms before each reconnect) they take
	// 5 s at least.
	if took > 4*time.Second {
		t.Fatalf("%d requests took %v: the recycled connections waited out a backoff", n, took)
	}
	if logged.Load() != 0 {
		t.Fatalf("%d log lines for connections the server closed as it said it would", logged.Load())
	}
}

// The client's body timeout does not run while its body waits for the
// proxy (a connection to free up): the wait is not the client's.
func TestProxyBodyWaitIsNotTheClients(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			<-release
		}
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, n)
	}))
	defer up.Close()
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock()
	tp := startProxy(t, httpproxy.Config{Upstreams: []conn.Addr{mustAddr(t, up.Listener.Addr().String())}, Conns: 1},
		httpd.Config{BodyTimeout: 300 * time.Millisecond})
	tp.waitReady(t, 1)
	held := make(chan struct{})
	go func() {
		defer close(held)
		if resp, err := http.Get(tp.url + "/hold"); err == nil {
			resp.Body.Close()
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for tp.px.Upstreams()[0].InFlight == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.AfterFunc(time.Second, unblock) // three body timeouts later
	out := curl(t, "-w", "\n%{http_code}", "--data-binary", "0123456789", tp.url+"/up")
	if out != "10\n200" {
		t.Fatalf("upload that waited 1s for a connection, body timeout 300ms: %q", out)
	}
	<-held
	http.DefaultClient.CloseIdleConnections()
}
