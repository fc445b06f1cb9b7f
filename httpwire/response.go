package httpwire

import (
	"strconv"
	"time"
)

// AppendStatusLine appends "HTTP/1.1 CODE REASON\r\n". A server answers
// HTTP/1.0 clients with 1.1 too (RFC 9110 section 6.2: the highest minor
// version it conforms to).
func AppendStatusLine(dst []byte, code int) []byte {
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(code), 10)
	dst = append(dst, ' ')
	dst = append(dst, StatusText(code)...)
	return append(dst, "\r\n"...)
}

// AppendField appends "name: value\r\n". The caller vouches that neither
// holds CR or LF (values copied from a request are validated by
// ParseRequest and cannot).
func AppendField(dst []byte, name, value string) []byte {
	dst = append(dst, name...)
	dst = append(dst, ": "...)
	dst = append(dst, value...)
	return append(dst, "\r\n"...)
}

// AppendFieldBytes is AppendField for a value held as bytes.
func AppendFieldBytes(dst []byte, name string, value []byte) []byte {
	dst = append(dst, name...)
	dst = append(dst, ": "...)
	dst = append(dst, value...)
	return append(dst, "\r\n"...)
}

// AppendFieldInt appends "name: n\r\n" (Content-Length and the like).
func AppendFieldInt(dst []byte, name string, n int64) []byte {
	dst = append(dst, name...)
	dst = append(dst, ": "...)
	dst = strconv.AppendInt(dst, n, 10)
	return append(dst, "\r\n"...)
}

// AppendHTTPDate appends t in IMF-fixdate ("Sun, 06 Nov 1994 08:49:37
// GMT"), the only format a server may send (RFC 9110 section 5.6.7).
func AppendHTTPDate(dst []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(dst, "Mon, 02 Jan 2006 15:04:05 GMT")
}

// ParseHTTPDate parses an IMF-fixdate (If-Modified-Since); the obsolete
// formats are not accepted, which only costs a full response.
func ParseHTTPDate(b []byte) (time.Time, bool) {
	t, err := time.Parse("Mon, 02 Jan 2006 15:04:05 GMT", string(b))
	return t, err == nil
}

// AppendChunk appends data as one chunk (RFC 9112 section 7.1); empty data
// appends nothing, since a zero-size chunk ends the body.
func AppendChunk(dst, data []byte) []byte {
	if len(data) == 0 {
		return dst
	}
	dst = AppendChunkHeader(dst, len(data))
	dst = append(dst, data...)
	return append(dst, "\r\n"...)
}

// AppendChunkHeader appends the size line of a chunk of n > 0 bytes, for a
// caller that writes the data itself and then the CRLF that ends it.
func AppendChunkHeader(dst []byte, n int) []byte {
	dst = strconv.AppendInt(dst, int64(n), 16)
	return append(dst, "\r\n"...)
}

// LastChunk ends a chunked body without trailers.
const LastChunk = "0\r\n\r\n"

// Continue is the interim response to Expect: 100-continue.
const Continue = "HTTP/1.1 100 Continue\r\n\r\n"

// AppendError appends a complete response for a refused request: the
// status, a short plain-text body naming it, and Connection: close, since
// after a framing error the connection cannot carry another request.
func AppendError(dst []byte, status int, date []byte) []byte {
	text := StatusText(status)
	dst = AppendStatusLine(dst, status)
	if len(date) > 0 {
		dst = AppendFieldBytes(dst, "Date", date)
	}
	dst = append(dst, "Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n"...)
	dst = AppendFieldInt(dst, "Content-Length", int64(len(text)+1))
	dst = append(dst, "\r\n"...)
	dst = append(dst, text...)
	return append(dst, '\n')
}
