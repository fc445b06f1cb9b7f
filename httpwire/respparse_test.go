package httpwire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// readResponse parses the head at the start of in and decodes its body
// the way a proxy does, at most step new bytes at a time; eof says the
// connection ends after in. It returns the head, the body, whether the
// connection may carry another exchange, the bytes after the body, and the
// first error.
func readResponse(in []byte, headRequest bool, step int, eof bool) (h ResponseHead, body []byte, reusable bool, rest []byte, err error) {
	var n int
	for k := min(step, len(in)); ; k = min(k+step, len(in)) {
		n, err = ParseResponseHead(in[:k], &h, Limits{})
		if err != nil {
			return h, nil, false, nil, err
		}
		if n > 0 {
			break
		}
		if k == len(in) {
			return h, nil, false, nil, errors.New("input ended inside the head")
		}
	}
	var br BodyReader
	br.ResetResponse(&h, headRequest, Limits{})
	pending, in := []byte(nil), in[n:]
	for !br.Done() {
		if len(in) == 0 {
			if br.UntilClose() && eof {
				return h, body, false, nil, nil
			}
			return h, body, false, nil, errors.New("input ended before the body did")
		}
		k := min(step, len(in))
		pending = append(pending, in[:k]...)
		in = in[k:]
		for !br.Done() {
			n, data, err := br.Read(pending)
			if err != nil {
				return h, body, false, nil, err
			}
			body = append(body, data...)
			pending = pending[n:]
			if n == 0 {
				break
			}
		}
	}
	return h, body, h.KeepAlive, append(pending, in...), nil
}

func TestParseResponse(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		head     bool // the request was HEAD
		eof      bool // the connection closes after in
		status   int
		body     string
		reusable bool
		rest     string
		want     error
	}{
		{name: "length", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1", status: 200, body: "hello", reusable: true, rest: "HTTP/1.1"},
		{name: "chunked", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;x\r\n!\r\n0\r\nT: v\r\n\r\nNEXT", status: 200, body: "hello!", reusable: true, rest: "NEXT"},
		{name: "close delimited", in: "HTTP/1.1 200 OK\r\n\r\nall of it", eof: true, status: 200, body: "all of it"},
		{name: "other coding reads to close", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz", eof: true, status: 200, body: "zz"},
		{name: "chunked then other", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nzz", eof: true, status: 200, body: "zz"},
		{name: "head has no body", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nNEXT", head: true, status: 200, reusable: true, rest: "NEXT"},
		{name: "204", in: "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nNEXT", status: 204, reusable: true, rest: "NEXT"},
		{name: "304", in: "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\nNEXT", status: 304, reusable: true, rest: "NEXT"},
		{name: "100 interim", in: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK", status: 100, reusable: true, rest: "HTTP/1.1 200 OK"},
		{name: "connection close", in: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx", status: 200, body: "x"},
		{name: "1.0 without keep-alive", in: "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", status: 200, body: "x"},
		{name: "1.0 keep-alive", in: "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\nx", status: 200, body: "x", reusable: true},
		{name: "no reason", in: "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n", status: 404, reusable: true},
		{name: "no reason nor space", in: "HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n", status: 404, reusable: true},
		{name: "two lengths", in: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", want: ErrResponseLengthTwice},
		{name: "length and chunked", in: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", want: ErrResponseLengthTwice},
		{name: "bad length", in: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", want: ErrBadLength},
		{name: "chunked in 1.0", in: "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", want: ErrResponseTE10},
		{name: "http/2", in: "HTTP/2.0 200 OK\r\n\r\n", want: ErrBadStatusLine},
		{name: "two-digit status", in: "HTTP/1.1 20 OK\r\n\r\n", want: ErrBadStatusLine},
		{name: "status below 100", in: "HTTP/1.1 099 OK\r\n\r\n", want: ErrBadStatusLine},
		{name: "bare LF", in: "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", want: ErrBareLF},
		{name: "obs-fold", in: "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", want: ErrObsFold},
		{name: "space before colon", in: "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n", want: ErrSpaceBeforeColon},
		{name: "bad chunk", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", want: ErrBadChunk},
		{name: "header too large", in: "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", 17<<10) + "\r\n\r\n", want: ErrHeaderTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, step := range []int{1, 7, len(tt.in) + 1} {
				h, body, reusable, rest, err := readResponse([]byte(tt.in), tt.head, step, tt.eof)
				if tt.want != nil || err != nil {
					if !errors.Is(err, tt.want) {
						t.Fatalf("step %d: error %v, want %v", step, err, tt.want)
					}
					continue
				}
				if h.Status != tt.status || string(body) != tt.body || reusable != tt.reusable || string(rest) != tt.rest {
					t.Fatalf("step %d: status %d body %q reusable %v rest %q; want %d %q %v %q",
						step, h.Status, body, reusable, rest, tt.status, tt.body, tt.reusable, tt.rest)
				}
			}
		})
	}
}

// A status line or field section still arriving is refused as soon as it
// is over its limit, not buffered.
func TestParseResponsePartialOverLimit(t *testing.T) {
	var h ResponseHead
	if _, err := ParseResponseHead([]byte("HTTP/1.1 200 "+strings.Repeat("x", 9000)), &h, Limits{}); err != ErrBadStatusLine {
		t.Fatalf("long status line: %v", err)
	}
	if _, err := ParseResponseHead([]byte("HTTP/1.1 200 OK\r\nX: "+strings.Repeat("x", 17<<10)), &h, Limits{}); err != ErrHeaderTooLarge {
		t.Fatalf("long field section: %v", err)
	}
}

func TestParseResponseHeadAllocs(t *testing.T) {
	in := []byte("HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: x\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello")
	h := ResponseHead{Headers: make([]Header, 0, 16)}
	var br BodyReader
	if n := testing.AllocsPerRun(100, func() {
		n, err := ParseResponseHead(in, &h, Limits{})
		if err != nil || n == 0 {
			t.Fatal(n, err)
		}
		br.ResetResponse(&h, false, Limits{})
		br.Read(in[n:])
	}); n != 0 {
		t.Fatalf("%v allocations per response", n)
	}
}

// FuzzParseResponseHead checks that no input makes the response parser
// panic, disagree with itself when fed in pieces, or accept a response
// that Go's net/http frames differently (status and body).
func FuzzParseResponseHead(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"HTTP/1.0 200 OK\r\n\r\nto the end",
		"HTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
	} {
		f.Add([]byte(s), false, uint8(3))
	}
	f.Fuzz(func(t *testing.T, in []byte, head bool, step uint8) {
		h1, body1, reuse1, rest1, err1 := readResponse(in, head, len(in)+1, true)
		_, body2, reuse2, rest2, err2 := readResponse(in, head, int(step%16)+1, true)
		if (err1 == nil) != (err2 == nil) || !bytes.Equal(body1, body2) || reuse1 != reuse2 || !bytes.Equal(rest1, rest2) {
			t.Fatalf("whole: %q %v %q %v; pieces: %q %v %q %v", body1, reuse1, rest1, err1, body2, reuse2, rest2, err2)
		}
		if err1 != nil {
			return
		}
		method := "GET"
		if head {
			method = "HEAD"
		}
		req, _ := http.NewRequest(method, "http://h/", nil)
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(in)), req)
		if err != nil {
			return // net/http is stricter in places (reason phrases, some fields); no disagreement on framing
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		if err != nil {
			return
		}
		if resp.StatusCode != h1.Status {
			t.Fatalf("status %d, net/http %d", h1.Status, resp.StatusCode)
		}
		if h1.Status >= 200 && !bytes.Equal(got, body1) {
			t.Fatalf("body %q, net/http %q", body1, got)
		}
	})
}
