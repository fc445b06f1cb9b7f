package httpproxy_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
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

// curl and wrk with keep-alive through the proxy to nginx: bodies and
// statuses as nginx sends them, every wrk request answered 2xx, and nginx
// sees no more connections than the pool keeps however many clients wrk
// opens (M:N).
func TestProxyCurlAndWrkToNginx(t *testing.T) {
	ng := startNginx(t, makeRoot(t, 1<<20))
	tp := startProxy(t, httpproxy.Config{Upstreams: []conn.Addr{mustAddr(t, ng.addr)}, Conns: 4}, httpd.Config{})
	tp.waitReady(t, 4)

	if got := curl(t, tp.url+"/index.html"); got != "hello from nginx\n" {
		t.Fatalf("GET /index.html: %q", got)
	}
	if code := curlStatus(t, tp.url+"/missing"); code != 404 {
		t.Fatalf("GET /missing: %d, want nginx's 404", code)
	}
	head := curl(t, "-I", tp.url+"/big.bin")
	if !strings.Contains(head, "Content-Length: 1048576") || !strings.HasPrefix(head, "HTTP/1.1 200") {
		t.Fatalf("HEAD /big.bin:\n%s", head)
	}
	// Three requests on one keep-alive connection (curl reuses it).
	out := curl(t, "-w", "%{num_connects}\n", tp.url+"/index.html", tp.url+"/uri/a?b=c", tp.url+"/index.html")
	if want := "hello from nginx\n1\n/uri/a?b=c\n0\nhello from nginx\n0\n"; out != want {
		t.Fatalf("three requests on one connection:\n%q\nwant\n%q", out, want)
	}

	wrk := exec.Command(tool(t, "wrk"), "-t2", "-c64", "-d2s", tp.url+"/index.html")
	res, err := wrk.CombinedOutput()
	if err != nil {
		t.Fatalf("wrk: %v\n%s", err, res)
	}
	m := regexp.MustCompile(`(\d+) requests in`).FindSubmatch(res)
	if m == nil || bytes.Contains(res, []byte("Non-2xx")) || bytes.Contains(res, []byte("Socket errors")) {
		t.Fatalf("wrk:\n%s", res)
	}
	if n, _ := strconv.Atoi(string(m[1])); n < 200 {
		t.Fatalf("wrk: only %d requests:\n%s", n, res)
	}
	t.Logf("wrk: %s", regexp.MustCompile(`Requests/sec:\s+\S+`).Find(res))
	u := tp.px.Upstreams()[0]
	if u.Connected != 4 || u.Pool.BackendConnects != 4 || u.BadGateway != 0 || u.Responses[1] < 200 {
		t.Fatalf("upstream after wrk's 64 connections: %+v (want its 4 connections, opened once)", u)
	}
}

// Pipelined requests come back in order, each with its own answer, over
// one client connection; HEAD in the middle carries no body.
func TestProxyPipelined(t *testing.T) {
	ng := startNginx(t, makeRoot(t, 1<<10))
	tp := startProxy(t, httpproxy.Config{Upstreams: []conn.Addr{mustAddr(t, ng.addr)}, Conns: 2}, httpd.Config{})
	tp.waitReady(t, 2)
	c, err := net.Dial("tcp", tp.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	var req strings.Builder
	const n = 40
	for i := 0; i < n; i++ {
		if i == n/2 {
			req.WriteString("HEAD /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
			continue
		}
		fmt.Fprintf(&req, "GET /uri/%d HTTP/1.1\r\nHost: t\r\n\r\n", i)
	}
	if _, err := c.Write([]byte(req.String())); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for i := 0; i < n; i++ {
		method, want := "GET", fmt.Sprintf("/uri/%d\n", i)
		if i == n/2 {
			method, want = "HEAD", ""
		}
		rs := readResponses(t, br, 1, method)
		if len(rs) != 1 {
			t.Fatalf("response %d missing", i)
		}
		if rs[0].StatusCode != 200 || bodyOf(rs[0]) != want {
			t.Fatalf("response %d: %d %q, want %q", i, rs[0].StatusCode, bodyOf(rs[0]), want)
		}
		if i == n/2 && rs[0].ContentLength != 1<<10 {
			t.Fatalf("HEAD: Content-Length %d", rs[0].ContentLength)
		}
	}
}

// Hop-by-hop fields stay behind, the ones Connection names too;
// X-Forwarded-For gets the client appended; end-to-end fields pass.
func TestProxyForwardedFields(t *testing.T) {
	ng := startNginx(t, makeRoot(t, 1))
	tp := startProxy(t, httpproxy.Config{Upstreams: []conn.Addr{mustAddr(t, ng.addr)}, Conns: 1}, httpd.Config{})
	tp.waitReady(t, 1)
	got := curl(t, "-H", "X-Forwarded-For: 10.1.1.1", "-H", "X-Forwarded-Proto: https", "-H", "Connection: keep-alive, X-Hop",
		"-H", "X-Hop: secret", "-H", "Keep-Alive: timeout=5", "-H", "TE: trailers", "-H", "Upgrade: websocket",
		"-H", "X-Custom: kept", tp.url+"/echo-headers/")
	want := fmt.Sprintf("xff=[10.1.1.1, 127.0.0.1] proto=[http] host=[%s] connection=[] keepalive=[] te=[] upgrade=[] custom=[kept] hop=[]\n", tp.addr)
	if got != want {
		t.Fatalf("upstream saw\n%s\nwant\n%s", got, want)
	}
	// HTTP/1.0 without Host: the upstream gets HTTP/1.1 with its own
	// address as Host; the client's connection closes after the answer.
	c, err := net.Dial("tcp", tp.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET /echo-headers/ HTTP/1.0\r\n\r\n")
	raw, _ := io.ReadAll(c)
	if want := "host=[" + ng.addr + "]"; !strings.HasPrefix(string(raw), "HTTP/1.1 200 ") || !strings.Contains(string(raw), want) {
		t.Fatalf("HTTP/1.0 request without Host: %q, want %s", raw, want)
	}
	resp := curl(t, "-i", tp.url+"/index.html")
	if strings.Count(resp, "Server:") != 1 || !strings.Contains(resp, "Server: scalestack") || strings.Count(resp, "Date:") != 1 {
		t.Fatalf("response head: one Server and one Date, the module's:\n%s", resp)
	}
}

// A killed upstream gives 502 (with a body that says so) and is used
// again once it is back.
func TestProxyUpstreamKilledAndBack(t *testing.T) {
	ng := startNginx(t, makeRoot(t, 1))
	tp := startProxy(t, httpproxy.Config{Upstreams: []conn.Addr{mustAddr(t, ng.addr)}, Conns: 2, ConnectTimeout: time.Second}, httpd.Config{})
	tp.waitReady(t, 2)
	if code := curlStatus(t, tp.url+"/index.html"); code != 200 {
		t.Fatalf("before: %d", code)
	}
	ng.Kill()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := curl(t, "-w", "\n%{http_code}", tp.url+"/index.html")
		if strings.HasSuffix(out, "\n502") {
			if !strings.HasPrefix(out, "502 Bad Gateway: ") {
				t.Fatalf("502 body: %q", out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no 502 after the upstream was killed: %q", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if u := tp.px.Upstreams()[0]; u.Available {
		t.Errorf("upstream still available after 502s: %+v", u)
	}
	ng.Start()
	deadline = time.Now().Add(20 * time.Second) // the pool's backoff reaches seconds
	for {
		code := curlStatus(t, tp.url+"/index.html")
		if code == 200 {
			break
		}
		if code != 502 || time.Now().After(deadline) {
			t.Fatalf("after the upstream came back: %d", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A slow upstream gives 504 at the response-header timeout, and its
// connection is replaced.
func TestProxySlowUpstream504(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		io.WriteString(w, "fast\n")
	}))
	defer up.Close()
	defer close(release)
	tp := startProxy(t, httpproxy.Config{Upstreams: []conn.Addr{mustAddr(t, up.Listener.Addr().String())}, Conns: 1,
		ResponseHeaderTimeout: 400 * time.Millisecond}, httpd.Config{})
	tp.waitReady(t, 1)
	start := time.Now()
	out := curl(t, "-w", "\n%{http_code}", tp.url+"/slow")
	took := time.Since(start)
	if !strings.HasSuffix(out, "\n504") || !strings.HasPrefix(out, "504 Gateway Timeout: ") {
		t.Fatalf("slow upstream: %q", out)
	}
	if took < 400*time.Millisecond || took > 3*time.Second {
		t.Fatalf("504 after %v, want at the 400ms timeout", took)
	}
	if got := curl(t, tp.url+"/fast"); got != "fast\n" {
		t.Fatalf("after the timeout: %q", got)
	}
	if u := tp.px.Upstreams()[0]; u.Timeouts != 1 {
		t.Fatalf("timeouts: %+v", u)
	}
}

// A 100 MB response streams through `scalestack http --proxy` (the
// binary, built without the race detector, so its RSS is the proxy's
// alone) with its memory flat: the upstream is read only as fast as the
// rate-limited client takes the response.
func TestProxyLargeResponseRSSFlat(t *testing.T) {
	const size = 100 << 20
	ng := startNginx(t, makeRoot(t, size))
	bin := buildScalestack(t)
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command(bin, "http", "--listen", listen, "--loops", "1", "--health", "", "--proxy", "/="+ng.addr, "--proxy-conns", "1")
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	defer func() {
		_ = cmd.Process.Kill()
		<-done
	}()
	deadline := time.Now().Add(10 * time.Second)
	// Until the binary listens, curl fails to connect (exit 7), which
	// curlStatus treats as fatal: wait for the port first.
	for {
		c, err := net.DialTimeout("tcp", listen, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy not listening: %v: %s", err, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for curlStatus(t, "http://"+listen+"/index.html") != 200 {
		if time.Now().After(deadline) {
			t.Fatalf("proxy not serving: %s", log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	base := processRSS(t, cmd.Process.Pid)
	var peak atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			if r := processRSS(t, cmd.Process.Pid); r > peak.Load() {
				peak.Store(r)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	out := curl(t, "--limit-rate", "40M", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", "http://"+listen+"/big.bin")
	close(stop)
	wg.Wait()
	if out != fmt.Sprintf("200 %d", size) {
		t.Fatalf("download: %q", out)
	}
	grew := peak.Load() - base
	t.Logf("proxy RSS %d MiB before, peak %d MiB during the 100 MiB response (+%d MiB)", base>>20, peak.Load()>>20, grew>>20)
	if grew > 16<<20 {
		t.Fatalf("proxy RSS grew %d MiB while streaming 100 MiB: not flat", grew>>20)
	}
}

// Request bodies stream to the upstream whole, with Content-Length and
// chunked, larger than the proxy buffers, to an upstream that reads
// slowly; the answers are the upstream's.
func TestProxyRequestBodies(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		buf := make([]byte, 32<<10)
		var n int64
		for {
			k, err := r.Body.Read(buf)
			h.Write(buf[:k])
			n += int64(k)
			if err != nil {
				break
			}
			if r.URL.Path == "/slow" {
				time.Sleep(time.Millisecond)
			}
		}
		fmt.Fprintf(w, "%d %x te=%v", n, h.Sum(nil), r.TransferEncoding)
	}))
	defer up.Close()
	tp := startProxy(t, httpproxy.Config{Upstreams: []conn.Addr{mustAddr(t, up.Listener.Addr().String())}, Conns: 1},
		httpd.Config{Limits: httpwire.Limits{MaxBody: 64 << 20}})
	tp.waitReady(t, 1)
	body := bytes.Repeat([]byte("0123456789abcdef"), 8<<16) // 8 MiB
	sum := sha256.Sum256(body)
	for _, tc := range []struct{ name, path, te string }{
		{"length", "/fast", "[]"},
		{"length slow reader", "/slow", "[]"},
		{"chunked", "/fast", "[chunked]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", tp.url+tc.path, bytes.NewReader(body))
			if tc.te == "[chunked]" {
				req.ContentLength = -1
				req.Body = io.NopCloser(bytes.NewReader(body))
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := fmt.Sprintf("%d %x te=%s", len(body), sum, tc.te); string(got) != want {
				t.Fatalf("upstream got %q, want %q", got, want)
			}
		})
	}
	http.DefaultClient.CloseIdleConnections()
}

// Round robin spreads requests over the servers evenly; an unavailable one
// is skipped.
func TestProxyRoundRobin(t *testing.T) {
	var hits [3]atomic.Int64
	var ups []conn.Addr
	for i := range hits {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits[i].Add(1)
			fmt.Fprint(w, i)
		}))
		defer s.Close()
		ups = append(ups, mustAddr(t, s.Listener.Addr().String()))
	}
	dead := mustAddr(t, fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	ups = append(ups, dead)
	tp := startProxy(t, httpproxy.Config{Upstreams: ups, Conns: 2, ConnectTimeout: 500 * time.Millisecond}, httpd.Config{})
	deadline := time.Now().Add(10 * time.Second)
	for tp.px.Upstreams()[3].Available || tp.px.Upstreams()[0].Connected < 2 || tp.px.Upstreams()[2].Connected < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("upstreams: %+v", tp.px.Upstreams())
		}
		time.Sleep(10 * time.Millisecond)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	const n = 300
	for i := 0; i < n; i++ {
		resp, err := client.Get(tp.url + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
	}
	for i := range hits {
		if h := hits[i].Load(); h < n/3-5 || h > n/3+5 {
			t.Fatalf("server %d got %d of %d requests; want about a third each", i, h, n)
		}
	}
}

// Malformed or ambiguous upstream responses give 502, never relayed.
func TestProxyBadUpstreamResponse(t *testing.T) {
	for _, tc := range []struct{ name, resp string }{
		{"garbage", "SSH-2.0-OpenSSH\r\n\r\n"},
		{"two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx"},
		{"length and chunked", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n"},
		{"switching protocols", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
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
							if _, err := c.Write([]byte(tc.resp)); err != nil {
								return
							}
						}
					}()
				}
			}()
			tp := startProxy(t, httpproxy.Config{Upstreams: []conn.Addr{mustAddr(t, ln.Addr().String())}, Conns: 1, HealthInterval: time.Hour}, httpd.Config{})
			tp.waitReady(t, 1)
			out := curl(t, "-w", "\n%{http_code}", tp.url+"/")
			if out != "502 Bad Gateway: the upstream server sent a malformed response\n\n502" {
				t.Fatalf("got %q", out)
			}
		})
	}
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
