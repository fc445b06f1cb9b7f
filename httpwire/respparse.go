package httpwire

import (
	"bytes"
	"math"
)

// ResponseHead is a parsed response head, as a reverse proxy reads it from
// an upstream server. Its slices alias the buffer given to
// ParseResponseHead; a proxy keeps one per backend connection and reuses it,
// so steady state allocates nothing.
type ResponseHead struct {
	Status int
	// Minor is the HTTP/1.x minor version (0 or 1).
	Minor   int
	Reason  []byte
	Headers []Header
	// ContentLength is the declared body length, -1 without one; Chunked
	// is set for Transfer-Encoding ending in chunked; OtherCoding for a
	// Transfer-Encoding that does not end in chunked (the body then ends
	// when the connection closes, RFC 9112 section 6.3).
	ContentLength int64
	Chunked       bool
	OtherCoding   bool
	// KeepAlive says whether the server leaves the connection open after
	// this response, by the version and the Connection field (the body's
	// framing may still forbid reuse: see BodyReader.UntilClose).
	KeepAlive bool
}

// Header returns the value of the first field named name (ASCII
// case-insensitive), or nil.
func (h *ResponseHead) Header(name string) []byte {
	for i := range h.Headers {
		if foldEqual(h.Headers[i].Name, name) {
			return h.Headers[i].Value
		}
	}
	return nil
}

// Errors of a response head. A proxy answers its client 502 for any of
// them (and for the request errors ParseResponseHead shares, whatever
// status they carry) and closes the upstream connection.
var (
	ErrBadStatusLine       = &Error{502, "malformed status line"}
	ErrResponseLengthTwice = &Error{502, "response with more than one Content-Length, or with both Content-Length and Transfer-Encoding"}
	// An HTTP/1.0 response with Transfer-Encoding: some recipients ignore
	// the field there (net/http does), others do not.
	ErrResponseTE10 = &Error{502, "Transfer-Encoding in an HTTP/1.0 response"}
)

// ParseResponseHead parses the response head at the start of buf into h.
// It returns the length of the head once all of it is in buf, 0 and a nil
// error when more bytes are needed, or an *Error. lim.MaxRequestLine bounds
// the status line and lim.MaxHeaderBytes and lim.MaxHeaders the fields.
//
// It is as strict as ParseRequest about what could frame a message two
// ways: a response with two Content-Length fields, or with both
// Content-Length and Transfer-Encoding, is refused rather than guessed at
// (RFC 9112 section 6.3 lets a recipient refuse the latter).
func ParseResponseHead(buf []byte, h *ResponseHead, lim Limits) (int, error) {
	lim = lim.withDefaults()
	hs := h.Headers[:0]
	clear(h.Headers)
	*h = ResponseHead{Headers: hs, ContentLength: -1}

	// Status line: HTTP-version SP status-code SP [ reason-phrase ].
	eol := bytes.IndexByte(buf, '\n')
	if eol < 0 {
		if err := checkPartialLine(buf, lim.MaxRequestLine, ErrBadStatusLine); err != nil {
			return 0, err
		}
		return 0, nil
	}
	if eol == 0 || buf[eol-1] != '\r' {
		return 0, ErrBareLF
	}
	line := buf[:eol-1]
	if len(line) > lim.MaxRequestLine || len(line) < len("HTTP/1.1 200") ||
		string(line[:7]) != "HTTP/1." || !isDigit(line[7]) || line[8] != ' ' ||
		!isDigit(line[9]) || !isDigit(line[10]) || !isDigit(line[11]) ||
		(len(line) > 12 && line[12] != ' ') {
		return 0, ErrBadStatusLine
	}
	h.Minor = min(int(line[7]-'0'), 1)
	h.Status = int(line[9]-'0')*100 + int(line[10]-'0')*10 + int(line[11]-'0')
	if h.Status < 100 {
		return 0, ErrBadStatusLine
	}
	if len(line) > 13 {
		h.Reason = line[13:]
		for _, c := range h.Reason {
			if charClass[c]&isFieldValue == 0 {
				return 0, ErrBadStatusLine
			}
		}
	}
	pos := eol + 1

	start := pos
	var seenCL, seenTE, closeOpt, keepOpt bool
	for {
		eol := bytes.IndexByte(buf[pos:], '\n')
		if eol < 0 {
			if len(buf)-start > lim.MaxHeaderBytes {
				return 0, ErrHeaderTooLarge
			}
			if err := checkPartialField(buf[pos:]); err != nil {
				return 0, err
			}
			return 0, nil
		}
		if pos+eol+1-start > lim.MaxHeaderBytes {
			return 0, ErrHeaderTooLarge
		}
		if eol == 0 || buf[pos+eol-1] != '\r' {
			return 0, ErrBareLF
		}
		line := buf[pos : pos+eol-1]
		pos += eol + 1
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return 0, ErrObsFold
		}
		if len(h.Headers) == lim.MaxHeaders {
			return 0, ErrTooManyHeaders
		}
		name, value, err := splitField(line)
		if err != nil {
			return 0, err
		}
		h.Headers = append(h.Headers, Header{Name: name, Value: value})
		switch len(name) {
		case len("connection"):
			if equalFold(name, "connection") {
				forEachListItem(value, func(item []byte) {
					if equalFold(item, "close") {
						closeOpt = true
					} else if equalFold(item, "keep-alive") {
						keepOpt = true
					}
				})
			}
		case len("content-length"):
			if equalFold(name, "content-length") {
				if seenCL {
					return 0, ErrResponseLengthTwice
				}
				seenCL = true
				n, ok := parseDecimal(value)
				if !ok {
					return 0, ErrBadLength
				}
				h.ContentLength = n
			}
		case len("transfer-encoding"):
			if equalFold(name, "transfer-encoding") {
				if seenTE {
					// Two fields are one list (RFC 9110 section 5.3);
					// what came before is not the final coding.
					h.OtherCoding = true
				}
				seenTE = true
				last := false
				forEachListItem(value, func(item []byte) {
					if last {
						h.OtherCoding = true // something after chunked, or chunked twice
					}
					last = equalFold(item, "chunked")
					if !last {
						h.OtherCoding = true
					}
				})
				h.Chunked = last && !h.OtherCoding
			}
		}
	}
	if seenTE && seenCL {
		return 0, ErrResponseLengthTwice
	}
	if seenTE && h.Minor == 0 {
		return 0, ErrResponseTE10
	}
	if h.OtherCoding {
		h.Chunked = false
	}
	if h.Minor >= 1 {
		h.KeepAlive = !closeOpt
	} else {
		h.KeepAlive = keepOpt && !closeOpt
	}
	return pos, nil
}

// HasNoBody reports whether a response of this status to a request of
// this kind carries no body whatever its fields say (RFC 9112 section
// 6.3): the answer to HEAD, and 1xx, 204 and 304.
func HasNoBody(status int, headRequest bool) bool {
	return headRequest || status < 200 || status == 204 || status == 304
}

// ResetResponse prepares the reader for the body of the response h, the
// answer to a HEAD request when headRequest is set (RFC 9112 section 6.3):
// none for HEAD, 1xx, 204 and 304; chunked; Content-Length; otherwise the
// body runs until the connection closes (UntilClose). A response body has
// no size limit here: the proxy streams it; lim bounds the trailer section.
func (b *BodyReader) ResetResponse(h *ResponseHead, headRequest bool, lim Limits) {
	lim = lim.withDefaults()
	*b = BodyReader{max: math.MaxInt64, maxTrail: lim.MaxHeaderBytes}
	switch {
	case HasNoBody(h.Status, headRequest):
	case h.Chunked:
		b.state = bodyChunkSize
	case h.OtherCoding || h.ContentLength < 0:
		b.state = bodyUntilClose
	case h.ContentLength > 0:
		b.state = bodyLength
		b.remaining = h.ContentLength
	}
}

// UntilClose reports whether the body ends only when the connection does:
// every byte that arrives is body, Done never becomes true, and the
// connection cannot carry another exchange.
func (b *BodyReader) UntilClose() bool { return b.state == bodyUntilClose }
