package httpwire

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"
)

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }

var fuzzSeeds = []string{
	"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a?b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
	"GET http://h/p HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n",
	"\r\nOPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
}

// FuzzParseRequest checks that no input makes ParseRequest panic, consume
// more than it was given or disagree with itself on a prefix, and that
// every request it accepts is one Go's net/http reads with the same
// method, target and body framing: two parsers that frame a message
// differently are what request smuggling exploits.
func FuzzParseRequest(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var req Request
		lim := Limits{MaxRequestLine: 256, MaxHeaderBytes: 512, MaxHeaders: 16, MaxBody: 1 << 16}
		n, err := ParseRequest(in, &req, lim)
		if n < 0 || n > len(in) {
			t.Fatalf("consumed %d of %d", n, len(in))
		}
		if err != nil {
			if n != 0 {
				t.Fatalf("error %v with n=%d", err, n)
			}
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %T is not *Error", err)
			}
			return
		}
		if n == 0 {
			return
		}
		// The head alone parses the same.
		var again Request
		if m, err := ParseRequest(in[:n], &again, lim); m != n || err != nil {
			t.Fatalf("head alone: %d %v, whole: %d", m, err, n)
		}
		// Go's server-side reader agrees on the framing.
		// (net/http does not skip the empty lines RFC 9112 allows first.)
		head := in[:n]
		for bytes.HasPrefix(head, []byte("\r\n")) {
			head = head[2:]
		}
		hr, herr := http.ReadRequest(bufioReader(head))
		if herr != nil {
			if strings.Contains(herr.Error(), "too long") || strings.Contains(herr.Error(), "invalid URI") {
				return // limits and target forms net/http does not share
			}
			t.Fatalf("accepted %q, net/http refuses: %v", head, herr)
		}
		if hr.Method != string(req.Method) || hr.RequestURI != string(req.Target) {
			t.Fatalf("net/http reads %s %s, we read %s %s", hr.Method, hr.RequestURI, req.Method, req.Target)
		}
		chunked := len(hr.TransferEncoding) > 0 && hr.TransferEncoding[0] == "chunked"
		if chunked != req.Chunked {
			t.Fatalf("chunked: net/http %v, we %v", chunked, req.Chunked)
		}
		if !chunked && hr.ContentLength != max(req.ContentLength, 0) {
			t.Fatalf("length: net/http %d, we %d", hr.ContentLength, req.ContentLength)
		}
		if hr.Close == req.KeepAlive && req.Minor == 1 {
			t.Fatalf("keep-alive: net/http close=%v, we keepAlive=%v", hr.Close, req.KeepAlive)
		}
	})
}

// FuzzBodyReader checks that decoding a body in pieces of any size gives
// the same result as decoding it whole, and never reads past its end.
func FuzzBodyReader(f *testing.F) {
	f.Add([]byte("5\r\nhello\r\n0\r\n\r\nNEXT"), true, uint8(1))
	f.Add([]byte("3;a=b\r\nabc\r\n0\r\nT: v\r\n\r\n"), true, uint8(2))
	f.Add([]byte("hello world"), false, uint8(3))
	f.Fuzz(func(t *testing.T, in []byte, chunked bool, step uint8) {
		req := &Request{Chunked: chunked, ContentLength: -1}
		if !chunked {
			req.ContentLength = int64(len(in) / 2)
		}
		lim := Limits{MaxBody: 1 << 12, MaxHeaderBytes: 64}
		whole, restWhole, errWhole := readBody(req, lim, in, len(in)+1)
		piece, restPiece, errPiece := readBody(req, lim, in, int(step%16)+1)
		if (errWhole == nil) != (errPiece == nil) {
			t.Fatalf("whole: %v, in pieces of %d: %v", errWhole, step%16+1, errPiece)
		}
		if errWhole != nil {
			return
		}
		if !bytes.Equal(whole, piece) || !bytes.Equal(restWhole, restPiece) {
			t.Fatalf("whole %q/%q, pieces %q/%q", whole, restWhole, piece, restPiece)
		}
		if len(whole)+len(restWhole) > len(in) || !bytes.HasSuffix(in, restWhole) {
			t.Fatalf("body %d + rest %d bytes of %d", len(whole), len(restWhole), len(in))
		}
	})
}

// FuzzAppendCleanPath checks that a cleaned path never climbs out of the
// root: no ".." segment, no NUL, always absolute.
func FuzzAppendCleanPath(f *testing.F) {
	for _, s := range []string{"/", "/a/../b", "/%2e%2e/x", "/a/./b//c/", "/a%2f..%2f..%2fb"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := AppendCleanPath(nil, in)
		if err != nil {
			return
		}
		if len(out) == 0 || out[0] != '/' || bytes.IndexByte(out, 0) >= 0 {
			t.Fatalf("%q -> %q", in, out)
		}
		for _, seg := range bytes.Split(out, []byte("/")) {
			if string(seg) == ".." || string(seg) == "." {
				t.Fatalf("%q -> %q keeps a dot segment", in, out)
			}
		}
		if bytes.Contains(out, []byte("//")) {
			t.Fatalf("%q -> %q keeps an empty segment", in, out)
		}
	})
}
