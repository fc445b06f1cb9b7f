package httpd_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/scalestack/scalestack/httpd"
	"github.com/scalestack/scalestack/httpwire"
	"github.com/scalestack/scalestack/reactor"
)

// TestStaticWithCurl checks the static handler's answers as curl sees
// them, on both drivers.
func TestStaticWithCurl(t *testing.T) {
	forEachDriver(t, func(t *testing.T, nd reactor.NewDriverFunc) {
		s := startServer(t, nd, httpd.Config{})
		head := curl(t, "-i", s.url+"/hello.txt")
		for _, want := range []string{"HTTP/1.1 200 OK", "Content-Type: text/plain", "Content-Length: 13",
			"Last-Modified: Fri, 02 Jan 2026 03:04:05 GMT", "Accept-Ranges: bytes", "hello, world"} {
			if !strings.Contains(head, want) {
				t.Errorf("GET /hello.txt lacks %q:\n%s", want, head)
			}
		}
		etag := regexp.MustCompile(`ETag: ("[0-9a-f]+-[0-9a-f]+")`).FindStringSubmatch(head)
		if etag == nil {
			t.Fatalf("no ETag in\n%s", head)
		}

		// HEAD: the same fields, no body.
		h := curl(t, "-I", s.url+"/hello.txt")
		if !strings.Contains(h, "Content-Length: 13") || strings.Contains(h, "hello, world") {
			t.Errorf("HEAD:\n%s", h)
		}
		// Conditional requests.
		if code := curlStatus(t, "-H", "If-None-Match: "+etag[1], s.url+"/hello.txt"); code != 304 {
			t.Errorf("If-None-Match with the ETag: %d, want 304", code)
		}
		if code := curlStatus(t, "-H", `If-None-Match: "other", W/`+etag[1], s.url+"/hello.txt"); code != 304 {
			t.Errorf("If-None-Match with a weak list: %d, want 304", code)
		}
		if code := curlStatus(t, "-H", `If-None-Match: "other"`, s.url+"/hello.txt"); code != 200 {
			t.Errorf("If-None-Match with another tag: %d, want 200", code)
		}
		if code := curlStatus(t, "-H", "If-Modified-Since: Fri, 02 Jan 2026 03:04:05 GMT", s.url+"/hello.txt"); code != 304 {
			t.Errorf("If-Modified-Since the mtime: %d, want 304", code)
		}
		// Ranges.
		if got := curl(t, "-r", "7-11", s.url+"/hello.txt"); got != "world" {
			t.Errorf("range 7-11: %q", got)
		}
		if got := curl(t, "-r", "-6", s.url+"/hello.txt"); got != "world\n" {
			t.Errorf("suffix range: %q", got)
		}
		r := curl(t, "-i", "-r", "1000-", s.url+"/hello.txt")
		if !strings.HasPrefix(r, "HTTP/1.1 416") || !strings.Contains(r, "Content-Range: bytes */13") {
			t.Errorf("unsatisfiable range:\n%s", r)
		}
		if code := curlStatus(t, "-r", "0-1,3-4", s.url+"/hello.txt"); code != 200 {
			t.Errorf("several ranges: %d, want 200 (the whole file)", code)
		}
		if code := curlStatus(t, "-r", "0-1", "-H", `If-Range: "stale"`, s.url+"/hello.txt"); code != 200 {
			t.Errorf("range with a stale If-Range: %d, want 200", code)
		}
		// Big file: streamed, byte for byte; a range deep inside it.
		big := curl(t, s.url+"/big.bin")
		if !bytes.Equal([]byte(big), bigBody()) {
			t.Errorf("big.bin: %d bytes, not the file", len(big))
		}
		if got := curl(t, "-r", "2000000-2000099", s.url+"/big.bin"); got != string(bigBody()[2000000:2000100]) {
			t.Errorf("range of big.bin differs")
		}
		// Directories, misses, methods, escapes.
		for _, tc := range []struct {
			args []string
			code int
		}{
			{[]string{s.url + "/"}, 200},
			{[]string{s.url + "/sub/"}, 200},
			{[]string{s.url + "/sub"}, 301},
			{[]string{s.url + "/missing"}, 404},
			{[]string{s.url + "/empty.txt"}, 200},
			{[]string{"-X", "POST", s.url + "/hello.txt"}, 405},
			{[]string{"--path-as-is", s.url + "/../secret.txt"}, 400},
			{[]string{"--path-as-is", s.url + "/sub/../../secret.txt"}, 400},
			{[]string{"--path-as-is", s.url + "/%2e%2e/secret.txt"}, 400},
			{[]string{"--path-as-is", s.url + "/sub/../hello.txt"}, 200},
			{[]string{s.url + "/inside"}, 200},
			{[]string{s.url + "/outside"}, 404},
			{[]string{s.url + "/a%00b"}, 400},
			{[]string{s.url + "/healthz"}, 200},
			{[]string{s.url + "/healthzz"}, 404},
		} {
			if code := curlStatus(t, tc.args...); code != tc.code {
				t.Errorf("curl %q: %d, want %d", tc.args, code, tc.code)
			}
		}
		if loc := curl(t, "-o", "/dev/null", "-w", "%{redirect_url}", s.url+"/sub?x=1"); !strings.HasSuffix(loc, "/sub/?x=1") {
			t.Errorf("redirect to %q", loc)
		}
		// Keep-alive: several URLs on one connection.
		out := curl(t, "-w", "%{num_connects} ", s.url+"/hello.txt", s.url+"/style.css", s.url+"/big.bin", s.url+"/hello.txt")
		if !strings.HasSuffix(out, "hello, world\n0 ") || strings.Count(out, "1 ") > 1 {
			t.Errorf("four URLs took more than one connection (num_connects: %q)", out[len(out)-8:])
		}
		// HTTP/1.0 closes unless asked to keep alive.
		if h := curl(t, "-0", "-i", s.url+"/hello.txt"); !strings.Contains(h, "Connection: close") {
			t.Errorf("HTTP/1.0 response without Connection: close:\n%s", h)
		}
	})
}

// TestLimitsGiveTheirStatus checks every limit and refusal end to end.
func TestLimitsGiveTheirStatus(t *testing.T) {
	s := startServer(t, reactor.NewEpoll, httpd.Config{Limits: httpwire.Limits{
		MaxRequestLine: 1024, MaxHeaderBytes: 2048, MaxHeaders: 20, MaxBody: 1000}})
	many := []string{}
	for i := 0; i < 25; i++ {
		many = append(many, "-H", fmt.Sprintf("X-%d: v", i))
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"URI too long", []string{s.url + "/" + strings.Repeat("a", 1100)}, 414},
		{"header too large", []string{"-H", "X-Big: " + strings.Repeat("b", 3000), s.url + "/hello.txt"}, 431},
		{"too many headers", append(many, s.url+"/hello.txt"), 431},
		{"body over the limit", []string{"--data-binary", strings.Repeat("c", 1001), s.url + "/count"}, 413},
		{"body at the limit", []string{"--data-binary", strings.Repeat("c", 1000), s.url + "/count"}, 200},
		{"chunked body over the limit", []string{"-H", "Transfer-Encoding: chunked", "--data-binary", strings.Repeat("c", 1001), s.url + "/count"}, 413},
		{"chunked body at the limit", []string{"-H", "Transfer-Encoding: chunked", "--data-binary", strings.Repeat("c", 1000), s.url + "/count"}, 200},
	} {
		if code := curlStatus(t, tc.args...); code != tc.code {
			t.Errorf("%s: %d, want %d", tc.name, code, tc.code)
		}
	}
	// A refusal after an answered request on the same connection still
	// gets its status.
	resps := rawExchange(t, s.addr, "GET /echo/1 HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost : a\r\n\r\n", 3)
	if len(resps) != 2 || resps[0].StatusCode != 200 || resps[1].StatusCode != 400 || !resps[1].Close {
		t.Errorf("refusal of a second request: %d responses", len(resps))
	}
	for _, tc := range []struct {
		name, req string
		code      int
	}{
		{"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
		{"unknown coding", "POST /body HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
		{"CL and TE", "POST /body HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"two CL", "POST /body HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", 400},
		{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
		{"bare CR", "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r2\r\n\r\n", 400},
		{"no Host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"bad chunk", "POST /body HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
		{"expectation", "GET / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n", 417},
	} {
		// A refusal is the last answer on its connection: the request
		// behind it is never served.
		resps := rawExchange(t, s.addr, tc.req+"GET /echo/after HTTP/1.1\r\nHost: a\r\n\r\n", 2)
		if len(resps) == 0 {
			t.Errorf("%s: no response", tc.name)
			continue
		}
		if resps[0].StatusCode != tc.code || !resps[0].Close {
			t.Errorf("%s: %d close=%v, want %d and close", tc.name, resps[0].StatusCode, resps[0].Close, tc.code)
		}
		if len(resps) > 1 {
			t.Errorf("%s: a request after the refusal was served: %d", tc.name, resps[1].StatusCode)
		}
	}
}

// TestRequestBodies sends Content-Length and chunked bodies, with and
// without Expect: 100-continue, through curl, and checks them echoed.
func TestRequestBodies(t *testing.T) {
	s := startServer(t, reactor.NewEpoll, httpd.Config{Limits: httpwire.Limits{MaxBody: 4 << 20}})
	body := strings.Repeat("0123456789abcdef", 100000) // 1.6 MB
	file := filepath.Join(t.TempDir(), "body")
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--data-binary", "@" + file},
		{"-H", "Transfer-Encoding: chunked", "--data-binary", "@" + file},
		{"-H", "Expect: 100-continue", "--data-binary", "@" + file},
		{"-H", "Expect: 100-continue", "-H", "Transfer-Encoding: chunked", "--data-binary", "@" + file},
	} {
		if got := curl(t, append(args, s.url+"/body")...); got != body {
			t.Errorf("curl %q: %d bytes back, want %d", args[:len(args)-1], len(got), len(body))
		}
	}
	// A handler that does not take bodies: the body is read and dropped
	// and the connection stays usable.
	resps := rawExchange(t, s.addr, "POST /echo/a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloPOST /echo/b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /echo/c HTTP/1.1\r\nHost: a\r\n\r\n", 3)
	if len(resps) != 3 || bodyOf(resps[0]) != "/echo/a" || bodyOf(resps[1]) != "/echo/b" || bodyOf(resps[2]) != "/echo/c" {
		t.Errorf("bodies dropped: got %d responses", len(resps))
	}
	// Expect: 100-continue to a handler that does not want the body: a
	// final answer, no 100, and the connection closes.
	resps = rawExchange(t, s.addr, "POST /echo/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n", 2)
	if len(resps) != 1 || resps[0].StatusCode != 200 || !resps[0].Close {
		t.Errorf("Expect to a bodiless handler: %d responses", len(resps))
	}
}

// TestPipelinedAnsweredInOrder writes many requests in one go, a streamed
// big file among them, and checks the answers come back in order.
func TestPipelinedAnsweredInOrder(t *testing.T) {
	forEachDriver(t, func(t *testing.T, nd reactor.NewDriverFunc) {
		s := startServer(t, nd, httpd.Config{})
		var req strings.Builder
		var want []string
		for i := 0; i < 40; i++ {
			switch i % 5 {
			case 0, 1, 3:
				fmt.Fprintf(&req, "GET /echo/%d HTTP/1.1\r\nHost: a\r\n\r\n", i)
				want = append(want, fmt.Sprintf("/echo/%d", i))
			case 2:
				req.WriteString("GET /hello.txt HTTP/1.1\r\nHost: a\r\n\r\n")
				want = append(want, "hello, world\n")
			case 4:
				if i == 19 {
					req.WriteString("GET /big.bin HTTP/1.1\r\nHost: a\r\n\r\n")
					want = append(want, "big")
				} else {
					req.WriteString("HEAD /hello.txt HTTP/1.1\r\nHost: a\r\n\r\n")
					want = append(want, "")
				}
			}
		}
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		go func() { _, _ = c.Write([]byte(req.String())) }()
		br := bufio.NewReader(c)
		for i, w := range want {
			method := "GET"
			if w == "" {
				method = "HEAD"
			}
			resp, err := http.ReadResponse(br, &http.Request{Method: method})
			if err != nil {
				t.Fatalf("response %d: %v", i, err)
			}
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("response %d body: %v", i, err)
			}
			if w == "big" {
				if !bytes.Equal(b, bigBody()) {
					t.Fatalf("response %d: big.bin differs (%d bytes)", i, len(b))
				}
			} else if string(b) != w {
				t.Fatalf("response %d: %q, want %q", i, b, w)
			}
		}
	})
}

// TestSlowClientsCutOff checks each timeout: a head that trickles in, a
// stalled body, an idle keep-alive connection, and a client that stops
// reading its response.
func TestSlowClientsCutOff(t *testing.T) {
	const limit = 400 * time.Millisecond
	s := startServer(t, reactor.NewEpoll, httpd.Config{HeaderTimeout: limit, BodyTimeout: limit, IdleTimeout: limit, SendTimeout: limit})

	// measure writes parts with pauses, then reads until the server closes.
	measure := func(name string, parts []string, pause time.Duration) (string, time.Duration) {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		go func() {
			for _, p := range parts {
				if _, err := c.Write([]byte(p)); err != nil {
					return
				}
				time.Sleep(pause)
			}
		}()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, err := io.ReadAll(c)
		if err != nil && !isReset(err) {
			t.Errorf("%s: read: %v", name, err)
		}
		return string(b), time.Since(start)
	}
	within := func(name string, took time.Duration) {
		if took < limit-50*time.Millisecond || took > limit+700*time.Millisecond {
			t.Errorf("%s: cut off after %v, want about %v", name, took, limit)
		}
	}
	// Slowloris: one byte every 100 ms, which would take 3 s in all.
	head := "GET /hello.txt HTTP/1.1\r\nHost: a\r\n\r\n"
	out, took := measure("slow head", strings.Split(head, ""), 100*time.Millisecond)
	if !strings.HasPrefix(out, "HTTP/1.1 408 ") {
		t.Errorf("slow head: %q", out)
	}
	within("slow head", took)

	out, took = measure("stalled body", []string{"POST /body HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab"}, 0)
	// The echo handler started its response at once: a stalled body then
	// cuts the connection without another status.
	if !strings.HasPrefix(out, "HTTP/1.1 200 ") || strings.HasSuffix(out, "0\r\n\r\n") {
		t.Errorf("stalled body: %q", out)
	}
	within("stalled body", took)
	out, took = measure("stalled body, no response yet", []string{"POST /echo/x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab"}, 0)
	if !strings.Contains(out, "/echo/x") {
		t.Errorf("stalled body to echo: %q", out)
	}
	within("stalled body to echo", took)

	// The second request on a keep-alive connection trickles in: 408 too.
	out, took = measure("slow second head", []string{"GET /echo/1 HTTP/1.1\r\nHost: a\r\n\r\nGET /echo/2 HTTP/1.1\r\n"}, 0)
	if !strings.Contains(out, "/echo/1") || !strings.Contains(out, "HTTP/1.1 408 ") {
		t.Errorf("slow second head: %q", out)
	}
	within("slow second head", took)

	out, took = measure("idle", []string{"GET /echo/1 HTTP/1.1\r\nHost: a\r\n\r\n"}, 0)
	if !strings.HasSuffix(out, "/echo/1") {
		t.Errorf("idle: %q, want the one response then a silent close", out)
	}
	within("idle", took)
	_, took = measure("silent", nil, 0)
	within("never a byte", took)

	// A client that asks for a big file and never reads.
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.(*net.TCPConn).SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	before := s.Snapshot().Timeouts
	if _, err := c.Write([]byte(strings.Repeat("GET /big.bin HTTP/1.1\r\nHost: a\r\n\r\n", 4))); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Snapshot().Timeouts == before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if s.Snapshot().Timeouts == before {
		t.Error("a client that never reads was not cut off")
	}
}

func isReset(err error) bool { return strings.Contains(err.Error(), "connection reset") }

// TestWrkKeepAlive runs wrk with keep-alive for a few seconds: every
// response must be a 2xx and no socket error may occur.
func TestWrkKeepAlive(t *testing.T) {
	forEachDriver(t, func(t *testing.T, nd reactor.NewDriverFunc) {
		s := startServer(t, nd, httpd.Config{})
		for _, path := range []string{"/hello.txt", "/healthz"} {
			out := runWrk(t, "-t1", "-c32", "-d2s", s.url+path)
			if hasLine(out, "Non-2xx") || hasLine(out, "Socket errors") {
				t.Errorf("wrk %s:\n%s", path, out)
			}
			var n int
			if m := regexp.MustCompile(`(\d+) requests in`).FindStringSubmatch(out); m != nil {
				fmt.Sscan(m[1], &n)
			}
			if n < 1000 {
				t.Errorf("wrk %s: %d requests:\n%s", path, n, out)
			}
		}
	})
}

func runWrk(t *testing.T, args ...string) string {
	t.Helper()
	out, err := execOutput(tool(t, "wrk"), args...)
	if err != nil {
		t.Fatalf("wrk: %v\n%s", err, out)
	}
	return out
}

// TestSameAnswersAsNginx sends the same static requests to nginx and to
// the module over the same directory and compares what matters: status,
// body, and the entity fields.
func TestSameAnswersAsNginx(t *testing.T) {
	t.Run("uncached", func(t *testing.T) { sameAnswersAsNginx(t, httpd.FileCacheConfig{}) })
	// From the file cache: every request is sent twice and the second
	// answer, a hit, compared.
	t.Run("cached", func(t *testing.T) {
		sameAnswersAsNginx(t, httpd.FileCacheConfig{Entries: 64, Bytes: 1 << 20, Valid: time.Hour})
	})
}

func sameAnswersAsNginx(t *testing.T, cache httpd.FileCacheConfig) {
	s := startCachingServer(t, reactor.NewEpoll, httpd.Config{}, cache)
	ng := nginx(t, s.root)
	if cache.Entries > 0 {
		time.Sleep(1100 * time.Millisecond) // files are cached once settled for a second
	}
	for _, tc := range []struct {
		name string
		req  string
	}{
		{"get", "GET /hello.txt HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"index", "GET / HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"sub index", "GET /sub/ HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"head", "HEAD /style.css HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"empty", "GET /empty.txt HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"missing", "GET /missing.txt HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"range", "GET /hello.txt HTTP/1.1\r\nHost: a\r\nRange: bytes=2-5\r\n\r\n"},
		{"open range", "GET /hello.txt HTTP/1.1\r\nHost: a\r\nRange: bytes=10-\r\n\r\n"},
		{"suffix range", "GET /hello.txt HTTP/1.1\r\nHost: a\r\nRange: bytes=-3\r\n\r\n"},
		{"range past the end", "GET /hello.txt HTTP/1.1\r\nHost: a\r\nRange: bytes=5-100\r\n\r\n"},
		{"unsatisfiable", "GET /hello.txt HTTP/1.1\r\nHost: a\r\nRange: bytes=100-200\r\n\r\n"},
		{"malformed range", "GET /hello.txt HTTP/1.1\r\nHost: a\r\nRange: bytes=5-2\r\n\r\n"},
		{"not modified since", "GET /hello.txt HTTP/1.1\r\nHost: a\r\nIf-Modified-Since: Fri, 02 Jan 2026 03:04:05 GMT\r\n\r\n"},
		{"modified since", "GET /hello.txt HTTP/1.1\r\nHost: a\r\nIf-Modified-Since: Thu, 01 Jan 2026 03:04:05 GMT\r\n\r\n"},
		{"escape", "GET /../secret.txt HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"dot segments", "GET /sub/../hello.txt HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"encoded", "GET /%68ello.txt HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"big", "GET /big.bin HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"big range", "GET /big.bin HTTP/1.1\r\nHost: a\r\nRange: bytes=1000000-1999999\r\n\r\n"},
		{"1.0", "GET /hello.txt HTTP/1.0\r\n\r\n"},
	} {
		ours := rawExchange(t, s.addr, tc.req, 1)
		if cache.Entries > 0 {
			ours = rawExchange(t, s.addr, tc.req, 1)
		}
		theirs := rawExchange(t, ng, tc.req, 1)
		if len(ours) != 1 || len(theirs) != 1 {
			t.Errorf("%s: %d and %d responses", tc.name, len(ours), len(theirs))
			continue
		}
		o, n := ours[0], theirs[0]
		if o.StatusCode != n.StatusCode {
			t.Errorf("%s: status %d, nginx %d", tc.name, o.StatusCode, n.StatusCode)
			continue
		}
		// Error pages differ in wording; their entity fields do not matter.
		fields := []string{"Content-Range"}
		if o.StatusCode < 400 {
			fields = append(fields, "Content-Length", "ETag", "Last-Modified")
		}
		if o.StatusCode < 300 {
			fields = append(fields, "Content-Type")
			if bodyOf(o) != bodyOf(n) {
				t.Errorf("%s: bodies differ (%d and %d bytes)", tc.name, len(bodyOf(o)), len(bodyOf(n)))
			}
		}
		for _, f := range fields {
			if o.Header.Get(f) != n.Header.Get(f) {
				t.Errorf("%s: %s %q, nginx %q", tc.name, f, o.Header.Get(f), n.Header.Get(f))
			}
		}
	}
	// An ETag from nginx works as a validator here, and the other way.
	first := rawExchange(t, ng, "GET /hello.txt HTTP/1.1\r\nHost: a\r\n\r\n", 1)[0]
	again := rawExchange(t, s.addr, "GET /hello.txt HTTP/1.1\r\nHost: a\r\nIf-None-Match: "+first.Header.Get("ETag")+"\r\n\r\n", 1)
	if len(again) != 1 || again[0].StatusCode != 304 {
		t.Errorf("nginx's ETag did not give 304 here")
	}
	if st := s.static.CacheStats(); cache.Entries > 0 && (st.Hits == 0 || st.Misses == 0) {
		t.Errorf("cache stats %+v: want hits and misses", st)
	}
}

// TestMaxConns refuses connections over the bound with 503.
func TestMaxConns(t *testing.T) {
	s := startServer(t, reactor.NewEpoll, httpd.Config{MaxConns: 2})
	var held []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	waitFor(t, func() bool { return s.Snapshot().Connections == 2 })
	resps := rawExchange(t, s.addr, "GET /hello.txt HTTP/1.1\r\nHost: a\r\n\r\n", 1)
	if len(resps) != 1 || resps[0].StatusCode != 503 {
		t.Fatalf("third connection: %d responses", len(resps))
	}
	held[0].Close()
	waitFor(t, func() bool { return s.Snapshot().Connections == 1 })
	if r := rawExchange(t, s.addr, "GET /hello.txt HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 1); len(r) != 1 || r[0].StatusCode != 200 {
		t.Fatal("a slot freed up but the next connection was not served")
	}
}

// TestDrain closes an idle keep-alive connection at once and lets a
// response in progress finish, then the connection closes.
func TestDrain(t *testing.T) {
	s := startServer(t, reactor.NewEpoll, httpd.Config{})
	idle, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if r := readAfterWrite(t, idle, "GET /echo/1 HTTP/1.1\r\nHost: a\r\n\r\n"); len(r) != 1 {
		t.Fatal("no first response")
	}
	busy, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	// A slow response in progress, and a request pipelined behind it that
	// will not be served: the connection closes after the first.
	if _, err := busy.Write([]byte("GET /slow HTTP/1.1\r\nHost: a\r\n\r\nGET /echo/2 HTTP/1.1\r\nHost: a\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(slowWait / 3)
	started := time.Now()
	done := s.Drain(10 * time.Second)

	_ = idle.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := idle.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("idle connection after Drain: %d %v, want EOF at once", n, err)
	}
	if took := time.Since(started); took > slowWait/2 {
		t.Errorf("idle connection closed %v after Drain, want at once", took)
	}
	_ = busy.SetReadDeadline(time.Now().Add(10 * time.Second))
	resps := readResponses(t, bufio.NewReader(busy), 2)
	if len(resps) != 1 || bodyOf(resps[0]) != "hello world" {
		t.Fatalf("in-flight response: %d responses", len(resps))
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Drain did not finish")
	}
	// New requests during a drain: the health handler says so.
	if !s.Draining() {
		t.Error("Draining() is false")
	}
}

func readAfterWrite(t *testing.T, c net.Conn, req string) []*http.Response {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	return readResponses(t, bufio.NewReader(c), 1)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRefusalSurvivesUnreadInput refuses a body over the limit and then
// the client sends more before it reads: the client must still get the
// 413, not a reset caused by the server closing with input unread.
func TestRefusalSurvivesUnreadInput(t *testing.T) {
	s := startServer(t, reactor.NewEpoll, httpd.Config{Limits: httpwire.Limits{MaxBody: 1000}})
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	chunk := fmt.Sprintf("%x\r\n%s\r\n", 2000, bytes.Repeat([]byte("x"), 2000))
	if _, err := c.Write([]byte("POST /count HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // refused and answered by now
	_, _ = c.Write([]byte(chunk))      // the client goes on sending
	time.Sleep(100 * time.Millisecond)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 413 {
		t.Fatalf("%v %v, want 413", err, resp)
	}
}

// TestHalfCloseGetsWholeResponse sends a request and half-closes at once
// (printf ... | nc): the response in progress is still sent whole.
func TestHalfCloseGetsWholeResponse(t *testing.T) {
	forEachDriver(t, func(t *testing.T, nd reactor.NewDriverFunc) {
		s := startServer(t, nd, httpd.Config{})
		for _, path := range []string{"/big.bin", "/slow"} {
			c, err := net.Dial("tcp", s.addr)
			if err != nil {
				t.Fatal(err)
			}
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write([]byte("GET " + path + " HTTP/1.1\r\nHost: a\r\n\r\n")); err != nil {
				t.Fatal(err)
			}
			if err := c.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			resps := readResponses(t, bufio.NewReader(c), 2)
			c.Close()
			want := "hello world"
			if path == "/big.bin" {
				want = string(bigBody())
			}
			if len(resps) != 1 || bodyOf(resps[0]) != want {
				t.Errorf("%s after half-close: %d responses", path, len(resps))
			}
		}
	})
}

// TestStaticAllocs measures the server's heap allocations per request
// under wrk (an external process, so every allocation counted is the
// server's): a static file from a keep-alive connection allocates nothing
// in steady state.
func TestStaticAllocs(t *testing.T) {
	t.Run("uncached", func(t *testing.T) { staticAllocs(t, httpd.FileCacheConfig{}) })
	t.Run("cached", func(t *testing.T) {
		staticAllocs(t, httpd.FileCacheConfig{Entries: 64, Bytes: 1 << 20, Valid: time.Hour})
	})
}

func staticAllocs(t *testing.T, cache httpd.FileCacheConfig) {
	s := startCachingServer(t, reactor.NewEpoll, httpd.Config{}, cache)
	if cache.Entries > 0 {
		time.Sleep(1100 * time.Millisecond) // settled: cached from the first request
	}
	runWrk(t, "-t1", "-c4", "-d1s", s.url+"/hello.txt") // warm the pools
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	out := runWrk(t, "-t1", "-c4", "-d2s", s.url+"/hello.txt")
	runtime.ReadMemStats(&after)
	var n float64
	if m := regexp.MustCompile(`(\d+) requests in`).FindStringSubmatch(out); m != nil {
		fmt.Sscan(m[1], &n)
	}
	if n < 1000 {
		t.Fatalf("wrk made %v requests:\n%s", n, out)
	}
	per := float64(after.Mallocs-before.Mallocs) / n
	t.Logf("%.0f requests, %.4f allocations per request", n, per)
	limit := 0.05
	if raceEnabled {
		// sync.Pool drops a share of Puts under -race by design; still at
		// most one pooled buffer per request.
		limit = 1
	}
	if per > limit {
		t.Errorf("%.3f heap allocations per static request, want none", per)
	}
	if st := s.static.CacheStats(); cache.Entries > 0 && st.Hits < uint64(n) {
		t.Errorf("cache stats %+v over %v requests: want every measured one a hit", st, n)
	}
}
