package httpwire

import "bytes"

// BodyReader decodes a request body as its bytes arrive: Content-Length
// bodies are counted off, chunked ones are unframed (RFC 9112 section 7.1),
// their chunk extensions and trailer fields validated and dropped. It keeps
// only counters: a chunk-size or trailer line not yet complete is left
// unconsumed for the caller to present again with more bytes.
type BodyReader struct {
	state     bodyState
	remaining int64 // bytes left in the body (length) or in the chunk (chunked)
	total     int64 // body bytes so far
	max       int64
	trailer   int // trailer-section bytes so far
	maxTrail  int
}

type bodyState uint8

const (
	bodyDone bodyState = iota
	bodyLength
	bodyChunkSize
	bodyChunkData
	bodyChunkEnd // the CRLF after chunk data
	bodyTrailer
	bodyUntilClose // a response body delimited by the end of the connection
)

// maxChunkLine bounds a chunk-size line, extensions included (400 beyond).
const maxChunkLine = 4096

// Reset prepares the reader for req's body under lim. A request without a
// body leaves it done at once.
func (b *BodyReader) Reset(req *Request, lim Limits) {
	lim = lim.withDefaults()
	*b = BodyReader{max: lim.MaxBody, maxTrail: lim.MaxHeaderBytes}
	switch {
	case req.Chunked:
		b.state = bodyChunkSize
	case req.ContentLength > 0:
		b.state = bodyLength
		b.remaining = req.ContentLength
	}
}

// Done reports whether the whole body has been read.
func (b *BodyReader) Done() bool { return b.state == bodyDone }

// Total is the number of body bytes decoded so far.
func (b *BodyReader) Total() int64 { return b.total }

// Read decodes from the start of in. It returns how many bytes of in it
// consumed and the body data among them (a sub-slice of in, possibly
// empty): call it again with in[n:] while n > 0 and the body is not done,
// then present what is left together with the next bytes. An *Error means
// the body is malformed (400) or over the limit (413).
func (b *BodyReader) Read(in []byte) (n int, data []byte, err error) {
	switch b.state {
	case bodyUntilClose:
		b.total += int64(len(in))
		return len(in), in, nil
	case bodyLength, bodyChunkData:
		if len(in) == 0 {
			return 0, nil, nil
		}
		k := int64(len(in))
		if k > b.remaining {
			k = b.remaining
		}
		b.remaining -= k
		b.total += k
		if b.remaining == 0 {
			if b.state == bodyLength {
				b.state = bodyDone
			} else {
				b.state = bodyChunkEnd
			}
		}
		return int(k), in[:k], nil
	case bodyChunkEnd:
		if len(in) < 2 {
			if len(in) == 1 && in[0] != '\r' {
				return 0, nil, ErrBadChunk
			}
			return 0, nil, nil
		}
		if in[0] != '\r' || in[1] != '\n' {
			return 0, nil, ErrBadChunk
		}
		b.state = bodyChunkSize
		return 2, nil, nil
	case bodyChunkSize:
		return b.readChunkSize(in)
	case bodyTrailer:
		return b.readTrailer(in)
	}
	return 0, nil, nil
}

// readChunkSize parses chunk-size [ chunk-ext ] CRLF.
func (b *BodyReader) readChunkSize(in []byte) (int, []byte, error) {
	eol := bytes.IndexByte(in, '\n')
	if eol < 0 {
		if len(in) > maxChunkLine {
			return 0, nil, ErrBadChunk
		}
		if i := bytes.IndexByte(in, '\r'); i >= 0 && i != len(in)-1 {
			return 0, nil, ErrBadChunk
		}
		return 0, nil, nil
	}
	if eol == 0 || in[eol-1] != '\r' || eol > maxChunkLine {
		return 0, nil, ErrBadChunk
	}
	line := in[:eol-1]
	var size int64
	digits := 0
	for digits < len(line) && charClass[line[digits]]&isHex != 0 {
		if digits == 15 { // 16^15 is far beyond any limit; stops overflow
			return 0, nil, ErrBodyTooLarge
		}
		size = size<<4 | int64(unhex(line[digits]))
		digits++
	}
	if digits == 0 || !validChunkExt(line[digits:]) {
		return 0, nil, ErrBadChunk
	}
	if size > b.max-b.total {
		return 0, nil, ErrBodyTooLarge
	}
	if size == 0 {
		b.state = bodyTrailer
	} else {
		b.state = bodyChunkData
		b.remaining = size
	}
	return eol + 1, nil, nil
}

// validChunkExt checks *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
// loosely: it must start with ';' after optional whitespace and hold no
// control character but HTAB. Extensions carry nothing this stack uses.
func validChunkExt(ext []byte) bool {
	i := 0
	for i < len(ext) && (ext[i] == ' ' || ext[i] == '\t') {
		i++
	}
	if i == len(ext) {
		return i == 0 // whitespace alone after the size is not an extension
	}
	if ext[i] != ';' {
		return false
	}
	for _, c := range ext[i:] {
		if charClass[c]&isFieldValue == 0 {
			return false
		}
	}
	return true
}

// readTrailer consumes trailer field lines up to the empty line.
func (b *BodyReader) readTrailer(in []byte) (int, []byte, error) {
	eol := bytes.IndexByte(in, '\n')
	if eol < 0 {
		if b.trailer+len(in) > b.maxTrail {
			return 0, nil, ErrHeaderTooLarge
		}
		if err := checkPartialField(in); err != nil {
			return 0, nil, err
		}
		return 0, nil, nil
	}
	if eol == 0 || in[eol-1] != '\r' {
		return 0, nil, ErrBareLF
	}
	b.trailer += eol + 1
	if b.trailer > b.maxTrail {
		return 0, nil, ErrHeaderTooLarge
	}
	line := in[:eol-1]
	if len(line) == 0 {
		b.state = bodyDone
		return eol + 1, nil, nil
	}
	if line[0] == ' ' || line[0] == '\t' {
		return 0, nil, ErrObsFold
	}
	if _, _, err := splitField(line); err != nil {
		return 0, nil, err
	}
	return eol + 1, nil, nil
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
