package httpwire

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httputil"
	"strings"
	"testing"
	"time"
)

// readBody feeds in to a BodyReader the way a connection does: at most
// step new bytes at a time, with whatever was left unconsumed in front. It
// returns the body, the bytes after it, and the first error.
func readBody(req *Request, lim Limits, in []byte, step int) (body, rest []byte, err error) {
	var br BodyReader
	br.Reset(req, lim)
	var pending []byte
	for !br.Done() {
		if len(in) == 0 && len(pending) == 0 {
			return body, nil, errors.New("input ended before the body did")
		}
		k := min(step, len(in))
		pending = append(pending, in[:k]...)
		in = in[k:]
		for !br.Done() {
			n, data, err := br.Read(pending)
			if err != nil {
				return body, nil, err
			}
			body = append(body, data...)
			pending = pending[n:]
			if n == 0 {
				if len(in) == 0 {
					return body, nil, errors.New("need more at the end of the input")
				}
				break
			}
		}
	}
	return body, append(pending, in...), nil
}

func TestBodyReader(t *testing.T) {
	chunked := &Request{Chunked: true, ContentLength: -1}
	tests := []struct {
		name string
		req  *Request
		lim  Limits
		in   string
		body string
		rest string
		want error
	}{
		{name: "length", req: &Request{ContentLength: 5}, in: "hello NEXT", body: "hello", rest: " NEXT"},
		{name: "no body", req: &Request{ContentLength: -1}, in: "NEXT", rest: "NEXT"},
		{name: "chunked", req: chunked, in: "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nNEXT", body: "hello world", rest: "NEXT"},
		{name: "chunked upper hex", req: chunked, in: "A\r\n0123456789\r\n0\r\n\r\n", body: "0123456789"},
		{name: "chunk extension", req: chunked, in: "5;name=value ; x=\"q\"\r\nhello\r\n0;y\r\n\r\n", body: "hello"},
		{name: "trailers", req: chunked, in: "1\r\nx\r\n0\r\nT: 1\r\nU: 2\r\n\r\nNEXT", body: "x", rest: "NEXT"},
		{name: "leading zeros", req: chunked, in: "0001\r\nx\r\n000\r\n\r\n", body: "x"},
		{name: "no digits", req: chunked, in: ";x\r\nhello\r\n0\r\n\r\n", want: ErrBadChunk},
		{name: "size with space", req: chunked, in: "5 \r\nhello\r\n0\r\n\r\n", want: ErrBadChunk},
		{name: "negative", req: chunked, in: "-5\r\nhello\r\n0\r\n\r\n", want: ErrBadChunk},
		{name: "0x prefix", req: chunked, in: "0x5\r\nhello\r\n0\r\n\r\n", want: ErrBadChunk},
		{name: "data longer than size", req: chunked, in: "3\r\nhello\r\n0\r\n\r\n", want: ErrBadChunk},
		{name: "bare LF after size", req: chunked, in: "5\nhello\r\n0\r\n\r\n", want: ErrBadChunk},
		{name: "bare CR in extension", req: chunked, in: "5;a\rb\r\nhello\r\n0\r\n\r\n", want: ErrBadChunk},
		{name: "bare LF after data", req: chunked, in: "5\r\nhello\n0\r\n\r\n", want: ErrBadChunk},
		{name: "overflowing size", req: chunked, in: "fffffffffffffffffff\r\n", want: ErrBodyTooLarge},
		{name: "chunks over the limit", req: chunked, lim: Limits{MaxBody: 8}, in: "5\r\nhello\r\n4\r\nabcd\r\n0\r\n\r\n", want: ErrBodyTooLarge},
		{name: "chunks at the limit", req: chunked, lim: Limits{MaxBody: 9}, in: "5\r\nhello\r\n4\r\nabcd\r\n0\r\n\r\n", body: "helloabcd"},
		{name: "obs-fold trailer", req: chunked, in: "0\r\nT: 1\r\n 2\r\n\r\n", want: ErrObsFold},
		{name: "bad trailer", req: chunked, in: "0\r\nT : 1\r\n\r\n", want: ErrSpaceBeforeColon},
		{name: "trailers over the limit", req: chunked, lim: Limits{MaxHeaderBytes: 16}, in: "0\r\nT: 0123456789abcdef\r\n\r\n", want: ErrHeaderTooLarge},
		{name: "long chunk line", req: chunked, in: "5;" + strings.Repeat("x", maxChunkLine) + "\r\n", want: ErrBadChunk},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, step := range []int{1, 2, 3, 7, 1 << 20} {
				body, rest, err := readBody(tt.req, tt.lim, []byte(tt.in), step)
				if tt.want != nil {
					if !errors.Is(err, tt.want) {
						t.Fatalf("step %d: err %v, want %v", step, err, tt.want)
					}
					continue
				}
				if err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
				if string(body) != tt.body || string(rest) != tt.rest {
					t.Fatalf("step %d: body %q rest %q, want %q %q", step, body, rest, tt.body, tt.rest)
				}
			}
		})
	}
}

// TestBodyReaderAgainstNetHTTP decodes chunked bodies that Go's own
// chunked writer produced.
func TestBodyReaderAgainstNetHTTP(t *testing.T) {
	for _, size := range []int{1, 100, 4095, 70000} {
		var enc bytes.Buffer
		w := httputil.NewChunkedWriter(&enc)
		want := bytes.Repeat([]byte("0123456789abcdef"), size/16+1)[:size]
		for off := 0; off < size; off += 777 {
			_, _ = w.Write(want[off:min(off+777, size)])
		}
		_ = w.Close()
		enc.WriteString("\r\n")
		got, rest, err := readBody(&Request{Chunked: true}, Limits{}, enc.Bytes(), 1000)
		if err != nil || !bytes.Equal(got, want) || len(rest) != 0 {
			t.Fatalf("size %d: err %v, %d bytes, rest %q", size, err, len(got), rest)
		}
	}
}

func TestBodyReaderNoAllocs(t *testing.T) {
	in := []byte("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
	req := &Request{Chunked: true}
	var br BodyReader
	allocs := testing.AllocsPerRun(1000, func() {
		br.Reset(req, Limits{})
		buf := in
		for !br.Done() {
			n, _, err := br.Read(buf)
			if err != nil || n == 0 {
				t.Fatal(n, err)
			}
			buf = buf[n:]
		}
	})
	if allocs != 0 {
		t.Errorf("BodyReader allocates %.1f times per body", allocs)
	}
}

func TestAppendCleanPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/", "/"},
		{"/a/b", "/a/b"},
		{"/a/b/", "/a/b/"},
		{"/a//b", "/a/b"},
		{"/a/./b", "/a/b"},
		{"/a/.", "/a/"},
		{"/a/../b", "/b"},
		{"/a/b/..", "/a/"},
		{"/a/%2e%2e/b", "/b"},
		{"/%61%2Fb", "/a/b"},
		{"/a%20b", "/a b"},
		{"/..", ""},
		{"/../a", ""},
		{"/a/../..", ""},
		{"/a/../../b", ""},
		{"/%2e%2e/etc/passwd", ""},
		{"/%2E%2E%2Fetc", ""},
		{"/a%2f..%2f..%2fb", ""},
		{"/a%00b", ""},
		{"/a%", ""},
		{"/a%4", ""},
		{"/a%zz", ""},
		{"a/b", ""},
		{"", ""},
	}
	for _, tt := range tests {
		got, err := AppendCleanPath([]byte("keep"), []byte(tt.in))
		if tt.want == "" {
			if err == nil || string(got) != "keep" {
				t.Errorf("AppendCleanPath(%q) = %q, %v; want refused", tt.in, got, err)
			}
			continue
		}
		if err != nil || string(got) != "keep"+tt.want {
			t.Errorf("AppendCleanPath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestResponseWriters(t *testing.T) {
	var b []byte
	b = AppendStatusLine(b, 206)
	b = AppendField(b, "Content-Type", "text/plain")
	b = AppendFieldInt(b, "Content-Length", 0)
	b = AppendHTTPDate(append(b, "Date: "...), time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC))
	b = append(b, "\r\n\r\n"...)
	want := "HTTP/1.1 206 Partial Content\r\nContent-Type: text/plain\r\nContent-Length: 0\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n"
	if string(b) != want {
		t.Errorf("got %q\nwant %q", b, want)
	}
	if d, ok := ParseHTTPDate([]byte("Sun, 06 Nov 1994 08:49:37 GMT")); !ok || d.Unix() != 784111777 {
		t.Errorf("ParseHTTPDate = %v %v", d, ok)
	}
	chunks := AppendChunk(AppendChunk(nil, []byte("hello world, 26 bytes long")), nil)
	chunks = append(chunks, LastChunk...)
	if string(chunks) != "1a\r\nhello world, 26 bytes long\r\n0\r\n\r\n" {
		t.Errorf("chunks %q", chunks)
	}
	// Go's own client reads what AppendError writes.
	resp := AppendError(nil, 431, []byte("Sun, 06 Nov 1994 08:49:37 GMT"))
	r, err := http.ReadResponse(bufioReader(resp), nil)
	if err != nil || r.StatusCode != 431 || !r.Close {
		t.Fatalf("ReadResponse: %v %+v", err, r)
	}
}
