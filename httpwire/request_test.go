package httpwire

import (
	"errors"
	"strings"
	"testing"
)

func TestParseRequestAccepts(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		method    string
		path      string
		query     string
		minor     int
		keepAlive bool
		length    int64
		chunked   bool
		expect    bool
		headers   int
	}{
		{name: "minimal 1.1", in: "GET / HTTP/1.1\r\nHost: a\r\n\r\n", method: "GET", path: "/", minor: 1, keepAlive: true, length: -1, headers: 1},
		{name: "query", in: "GET /x/y?a=1&b HTTP/1.1\r\nHost: a\r\n\r\n", method: "GET", path: "/x/y", query: "a=1&b", minor: 1, keepAlive: true, length: -1, headers: 1},
		{name: "1.0 closes by default", in: "GET / HTTP/1.0\r\n\r\n", method: "GET", path: "/", minor: 0, length: -1},
		{name: "1.0 keep-alive", in: "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", method: "GET", path: "/", minor: 0, keepAlive: true, length: -1, headers: 1},
		{name: "1.1 close", in: "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n", method: "GET", path: "/", minor: 1, length: -1, headers: 2},
		{name: "1.1 close in second field", in: "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", method: "GET", path: "/", minor: 1, length: -1, headers: 3},
		{name: "1.2 is answered as 1.1", in: "GET / HTTP/1.2\r\nHost: a\r\n\r\n", method: "GET", path: "/", minor: 1, keepAlive: true, length: -1, headers: 1},
		{name: "content-length", in: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n", method: "POST", path: "/p", minor: 1, keepAlive: true, length: 12, headers: 2},
		{name: "content-length zero", in: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", method: "POST", path: "/p", minor: 1, keepAlive: true, length: 0, headers: 2},
		{name: "chunked", in: "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n", method: "POST", path: "/p", minor: 1, keepAlive: true, length: -1, chunked: true, headers: 2},
		{name: "chunked in a list with empty items", in: "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked,\r\n\r\n", method: "POST", path: "/p", minor: 1, keepAlive: true, length: -1, chunked: true, headers: 2},
		{name: "expect", in: "PUT /p HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 5\r\n\r\n", method: "PUT", path: "/p", minor: 1, keepAlive: true, length: 5, expect: true, headers: 3},
		{name: "leading empty line", in: "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", method: "GET", path: "/", minor: 1, keepAlive: true, length: -1, headers: 1},
		{name: "value whitespace trimmed, empty value", in: "GET / HTTP/1.1\r\nHost: a\r\nX-A: \t v v \t\r\nX-B:\r\n\r\n", method: "GET", path: "/", minor: 1, keepAlive: true, length: -1, headers: 3},
		{name: "absolute form", in: "GET http://example.com/a/b?q HTTP/1.1\r\nHost: example.com\r\n\r\n", method: "GET", path: "/a/b", query: "q", minor: 1, keepAlive: true, length: -1, headers: 1},
		{name: "absolute form without path", in: "GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n", method: "GET", path: "/", minor: 1, keepAlive: true, length: -1, headers: 1},
		{name: "asterisk", in: "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", method: "OPTIONS", path: "*", minor: 1, keepAlive: true, length: -1, headers: 1},
		{name: "obs-text in a value", in: "GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n", method: "GET", path: "/", minor: 1, keepAlive: true, length: -1, headers: 2},
		{name: "IPv6 host with port", in: "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", method: "GET", path: "/", minor: 1, keepAlive: true, length: -1, headers: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var req Request
			in := tt.in + "NEXT"
			n, err := ParseRequest([]byte(in), &req, Limits{})
			if err != nil {
				t.Fatalf("ParseRequest: %v", err)
			}
			if n != len(tt.in) {
				t.Fatalf("consumed %d, want %d", n, len(tt.in))
			}
			if string(req.Method) != tt.method || string(req.Path) != tt.path || string(req.Query) != tt.query {
				t.Errorf("method %q path %q query %q, want %q %q %q", req.Method, req.Path, req.Query, tt.method, tt.path, tt.query)
			}
			if req.Minor != tt.minor || req.KeepAlive != tt.keepAlive || req.ContentLength != tt.length ||
				req.Chunked != tt.chunked || req.Expect100 != tt.expect || len(req.Headers) != tt.headers {
				t.Errorf("minor %d keepAlive %v length %d chunked %v expect %v headers %d; want %d %v %d %v %v %d",
					req.Minor, req.KeepAlive, req.ContentLength, req.Chunked, req.Expect100, len(req.Headers),
					tt.minor, tt.keepAlive, tt.length, tt.chunked, tt.expect, tt.headers)
			}
			// Every proper prefix needs more bytes, and none is refused.
			for i := 0; i < len(tt.in); i++ {
				var r Request
				if n, err := ParseRequest([]byte(tt.in[:i]), &r, Limits{}); n != 0 || err != nil {
					t.Fatalf("prefix of %d bytes: n=%d err=%v, want need-more", i, n, err)
				}
			}
		})
	}
}

func TestParseRequestFieldValues(t *testing.T) {
	var req Request
	in := "GET / HTTP/1.1\r\nHost: example.com\r\nX-A: \t v v \t\r\nX-Empty:\r\n\r\n"
	if _, err := ParseRequest([]byte(in), &req, Limits{}); err != nil {
		t.Fatal(err)
	}
	if got := string(req.Header("x-a")); got != "v v" {
		t.Errorf("X-A = %q, want %q", got, "v v")
	}
	if got := req.Header("X-EMPTY"); got == nil || len(got) != 0 {
		t.Errorf("X-Empty = %q (nil %v), want present and empty", got, got == nil)
	}
	if req.Header("x-missing") != nil {
		t.Error("a missing field is not nil")
	}
	if string(req.Host) != "example.com" {
		t.Errorf("Host = %q", req.Host)
	}
}

func TestParseRequestRefuses(t *testing.T) {
	long := strings.Repeat("a", 200)
	tests := []struct {
		name string
		in   string
		lim  Limits
		want *Error
	}{
		{"no version", "GET /\r\n\r\n", Limits{}, ErrBadRequestLine},
		{"two spaces", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", Limits{}, ErrBadRequestLine},
		{"trailing space", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", Limits{}, ErrBadRequestLine},
		{"tab separator", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", Limits{}, ErrBadRequestLine},
		{"lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n", Limits{}, ErrBadRequestLine},
		{"bad method char", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", Limits{}, ErrBadRequestLine},
		{"space in target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", Limits{}, ErrBadRequestLine},
		{"raw UTF-8 in target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", Limits{}, ErrBadRequestLine},
		{"bad escape in target", "GET /a%0X HTTP/1.1\r\nHost: a\r\n\r\n", Limits{}, ErrBadTarget},
		{"cut escape in target", "GET /a%4 HTTP/1.1\r\nHost: a\r\n\r\n", Limits{}, ErrBadTarget},
		{"relative target", "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", Limits{}, ErrBadTarget},
		// Found by FuzzParseRequest's comparison with net/http.
		{"fragment in target", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", Limits{}, ErrBadTarget},
		{"bad authority", "GET http://a{b/ HTTP/1.1\r\nHost: a\r\n\r\n", Limits{}, ErrBadTarget},
		{"asterisk for GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", Limits{}, ErrBadTarget},
		{"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", Limits{}, ErrVersion},
		{"HTTP/0.9", "GET / HTTP/0.9\r\n\r\n", Limits{}, ErrVersion},
		{"bare LF request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", Limits{}, ErrBareLF},
		{"bare LF field", "GET / HTTP/1.1\r\nHost: a\n\r\n", Limits{}, ErrBareLF},
		{"bare LF end", "GET / HTTP/1.1\r\nHost: a\r\n\n", Limits{}, ErrBareLF},
		{"bare CR in target", "GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n", Limits{}, ErrBareCR},
		{"bare CR in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", Limits{}, ErrBareCR},
		{"bare CR in name", "GET / HTTP/1.1\r\nHost: a\r\nX\rY: a\r\n\r\n", Limits{}, ErrBareCR},
		{"bare CR in partial line", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb", Limits{}, ErrBareCR},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", Limits{}, ErrObsFold},
		{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", Limits{}, ErrSpaceBeforeColon},
		{"tab before colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", Limits{}, ErrSpaceBeforeColon},
		{"no colon", "GET / HTTP/1.1\r\nHost: a\r\nnocolon\r\n\r\n", Limits{}, ErrBadHeader},
		{"empty name", "GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n", Limits{}, ErrBadHeader},
		{"NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", Limits{}, ErrBadHeader},
		{"missing host", "GET / HTTP/1.1\r\n\r\n", Limits{}, ErrMissingHost},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", Limits{}, ErrDuplicateHost},
		{"bad host", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", Limits{}, ErrBadHost},
		{"CL and TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", Limits{}, ErrLengthAndChunked},
		{"TE and CL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", Limits{}, ErrLengthAndChunked},
		{"two CL equal", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", Limits{}, ErrDuplicateLength},
		{"CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", Limits{}, ErrBadLength},
		{"CL sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", Limits{}, ErrBadLength},
		{"CL negative", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", Limits{}, ErrBadLength},
		{"CL hex", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", Limits{}, ErrBadLength},
		{"CL empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", Limits{}, ErrBadLength},
		{"CL overflow", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", Limits{}, ErrBadLength},
		{"CL over the body limit", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n", Limits{MaxBody: 100}, ErrBodyTooLarge},
		{"TE in 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", Limits{}, ErrTransferEncoding10},
		{"TE gzip only", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", Limits{}, ErrChunkedNotLast},
		{"TE chunked then gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", Limits{}, ErrChunkedNotLast},
		{"TE chunked twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", Limits{}, ErrChunkedNotLast},
		{"TE gzip then chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", Limits{}, ErrUnknownCoding},
		{"TE identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", Limits{}, ErrChunkedNotLast},
		{"TE xchunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", Limits{}, ErrChunkedNotLast},
		{"expectation", "GET / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", Limits{}, ErrExpectation},
		{"too many empty lines", "\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", Limits{}, ErrEmptyLines},
		{"request line over the limit", "GET /" + long + " HTTP/1.1\r\nHost: a\r\n\r\n", Limits{MaxRequestLine: 100}, ErrURITooLong},
		{"partial request line over the limit", "GET /" + long, Limits{MaxRequestLine: 100}, ErrURITooLong},
		{"header section over the limit", "GET / HTTP/1.1\r\nHost: a\r\nX: " + long + "\r\n\r\n", Limits{MaxHeaderBytes: 100}, ErrHeaderTooLarge},
		{"partial header section over the limit", "GET / HTTP/1.1\r\nHost: a\r\nX: " + long, Limits{MaxHeaderBytes: 100}, ErrHeaderTooLarge},
		{"too many fields", "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", Limits{MaxHeaders: 3}, ErrTooManyHeaders},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var req Request
			n, err := ParseRequest([]byte(tt.in), &req, tt.lim)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseRequest = %d, %v; want %v", n, err, tt.want)
			}
			var herr *Error
			if !errors.As(err, &herr) || herr.Status != tt.want.Status {
				t.Fatalf("status of %v is not %d", err, tt.want.Status)
			}
		})
	}
}

// TestParseRequestLimitsBoundaries checks that a limit admits exactly its
// value: one byte more is refused, not one byte less.
func TestParseRequestLimitsBoundaries(t *testing.T) {
	line := "GET /" + strings.Repeat("a", 86) + " HTTP/1.1" // 100 bytes
	if len(line) != 100 {
		t.Fatalf("line is %d bytes", len(line))
	}
	var req Request
	in := line + "\r\nHost: a\r\n\r\n"
	if _, err := ParseRequest([]byte(in), &req, Limits{MaxRequestLine: 100}); err != nil {
		t.Errorf("request line of exactly the limit: %v", err)
	}
	if _, err := ParseRequest([]byte(in), &req, Limits{MaxRequestLine: 99}); err != ErrURITooLong {
		t.Errorf("request line one over the limit: %v", err)
	}
	// Partial: 100 bytes plus the CR is still possibly fine, more is not.
	if n, err := ParseRequest([]byte(line+"\r"), &req, Limits{MaxRequestLine: 100}); n != 0 || err != nil {
		t.Errorf("partial line at the limit: %d %v", n, err)
	}
	if _, err := ParseRequest([]byte(line+"x\r"), &req, Limits{MaxRequestLine: 100}); err != ErrURITooLong {
		t.Errorf("partial line over the limit: %v", err)
	}
	head := "Host: a\r\n\r\n" // 11 bytes of header section
	if _, err := ParseRequest([]byte("GET / HTTP/1.1\r\n"+head), &req, Limits{MaxHeaderBytes: 11}); err != nil {
		t.Errorf("header section of exactly the limit: %v", err)
	}
	if _, err := ParseRequest([]byte("GET / HTTP/1.1\r\n"+head), &req, Limits{MaxHeaderBytes: 10}); err != ErrHeaderTooLarge {
		t.Errorf("header section one over the limit: %v", err)
	}
}

// TestParseRequestPipelined parses several requests from one buffer, in
// order, each consuming exactly its own bytes.
func TestParseRequestPipelined(t *testing.T) {
	reqs := []string{
		"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
		"POST /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n",
		"HEAD /4 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
	}
	buf := []byte(strings.Join(reqs, ""))
	var req Request
	var body BodyReader
	var paths, bodies []string
	for len(buf) > 0 {
		n, err := ParseRequest(buf, &req, Limits{})
		if err != nil || n == 0 {
			t.Fatalf("ParseRequest at %q: %d %v", buf, n, err)
		}
		paths = append(paths, string(req.Path))
		body.Reset(&req, Limits{})
		buf = buf[n:]
		var got []byte
		for !body.Done() {
			n, data, err := body.Read(buf)
			if err != nil || n == 0 {
				t.Fatalf("body: %d %v", n, err)
			}
			got = append(got, data...)
			buf = buf[n:]
		}
		bodies = append(bodies, string(got))
	}
	if strings.Join(paths, ",") != "/1,/2,/3,/4" || strings.Join(bodies, ",") != ",abc,xy," {
		t.Errorf("paths %q bodies %q", paths, bodies)
	}
	if req.KeepAlive {
		t.Error("the last request asked to close")
	}
}

func TestParseRequestNoAllocs(t *testing.T) {
	in := []byte("GET /index.html?x=1 HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: curl/7.88.1\r\n" +
		"Accept: */*\r\nAccept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\nIf-None-Match: \"abc\"\r\n\r\n")
	req := Request{Headers: make([]Header, 0, 16)}
	var path []byte
	allocs := testing.AllocsPerRun(1000, func() {
		n, err := ParseRequest(in, &req, Limits{})
		if err != nil || n != len(in) {
			t.Fatalf("%d %v", n, err)
		}
		if req.Header("if-none-match") == nil {
			t.Fatal("no If-None-Match")
		}
		path, err = AppendCleanPath(path[:0], req.Path)
		if err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("ParseRequest allocates %.1f times per request", allocs)
	}
	bad := []byte("GET / HTTP/1.1\r\nHost : a\r\n\r\n")
	allocs = testing.AllocsPerRun(100, func() {
		if _, err := ParseRequest(bad, &req, Limits{}); err == nil {
			t.Fatal("accepted")
		}
	})
	if allocs != 0 {
		t.Errorf("refusing a request allocates %.1f times", allocs)
	}
}

func BenchmarkParseRequest(b *testing.B) {
	in := []byte("GET /index.html HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n")
	req := Request{Headers: make([]Header, 0, 16)}
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRequest(in, &req, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}
