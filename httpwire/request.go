package httpwire

import "bytes"

// Limits bound what a request may make a server hold. Zero fields take the
// defaults of DefaultLimits.
type Limits struct {
	// MaxRequestLine bounds the request line without its CRLF (414 beyond).
	MaxRequestLine int
	// MaxHeaderBytes bounds the header section after the request line,
	// CRLFs included (431 beyond); it also bounds a chunked body's trailer
	// section.
	MaxHeaderBytes int
	// MaxHeaders bounds the number of field lines (431 beyond).
	MaxHeaders int
	// MaxBody bounds a request body, declared or chunked (413 beyond).
	MaxBody int64
}

// DefaultLimits are the limits zero fields take: nginx's defaults for the
// request line and the header section (8 KiB and 4x8 KiB buffers) are of
// the same order; 100 fields is net/http's and Apache's count.
var DefaultLimits = Limits{MaxRequestLine: 8 << 10, MaxHeaderBytes: 16 << 10, MaxHeaders: 100, MaxBody: 1 << 20}

func (l Limits) withDefaults() Limits {
	if l.MaxRequestLine <= 0 {
		l.MaxRequestLine = DefaultLimits.MaxRequestLine
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultLimits.MaxHeaderBytes
	}
	if l.MaxHeaders <= 0 {
		l.MaxHeaders = DefaultLimits.MaxHeaders
	}
	if l.MaxBody <= 0 {
		l.MaxBody = DefaultLimits.MaxBody
	}
	return l
}

// Header is one field line; Name and Value alias the parsed input, Value
// without its surrounding whitespace.
type Header struct {
	Name, Value []byte
}

// Request is a parsed request head. Its slices alias the buffer given to
// ParseRequest. A server keeps one Request per connection and reuses it:
// ParseRequest resets it and keeps Headers' capacity, so steady state
// allocates nothing.
type Request struct {
	Method []byte
	// Target is the request-target as sent; Path is its path (origin-form,
	// or the path of an absolute-form target; "*" for asterisk-form, the
	// authority for CONNECT) and Query what follows '?', without it.
	Target []byte
	Path   []byte
	Query  []byte
	// Minor is the HTTP/1.x minor version: 0 or 1 (a higher one is
	// answered as 1.1, RFC 9110 section 6.2).
	Minor   int
	Headers []Header

	// Host is the Host field's value (nil when absent, which HTTP/1.0
	// allows).
	Host []byte
	// ContentLength is the declared body length, -1 without one; Chunked
	// is set for Transfer-Encoding: chunked. A request with neither has no
	// body (RFC 9112 section 6.3).
	ContentLength int64
	Chunked       bool
	// KeepAlive says whether the connection may carry another request
	// after this one, by the version and the Connection field.
	KeepAlive bool
	// Expect100 is set for Expect: 100-continue.
	Expect100 bool
	// ConnKeepAlive is set when the client asked for keep-alive explicitly
	// (an HTTP/1.0 client expects "Connection: keep-alive" back).
	ConnKeepAlive bool
}

// HasBody reports whether a body follows the head.
func (r *Request) HasBody() bool { return r.Chunked || r.ContentLength > 0 }

// Header returns the value of the first field named name (ASCII
// case-insensitive), or nil.
func (r *Request) Header(name string) []byte {
	for i := range r.Headers {
		if foldEqual(r.Headers[i].Name, name) {
			return r.Headers[i].Value
		}
	}
	return nil
}

// IsMethod reports whether the method is m (methods are case-sensitive).
func (r *Request) IsMethod(m string) bool { return string(r.Method) == m }

func (r *Request) reset() {
	hs := r.Headers[:0]
	clear(r.Headers)
	*r = Request{Headers: hs, ContentLength: -1}
}

// slashPath is the path of an absolute-form target without one.
var slashPath = []byte("/")

// maxEmptyLines is how many CRLFs may precede a request line (RFC 9112
// section 2.2 asks to ignore "at least one"; some clients send a stray
// CRLF after a POST body).
const maxEmptyLines = 4

// ParseRequest parses the request head at the start of buf into req. It
// returns the length of the head (request line, fields and the empty line)
// once all of it is in buf, 0 and a nil error when more bytes are needed,
// or an *Error with the status to answer.
func ParseRequest(buf []byte, req *Request, lim Limits) (int, error) {
	lim = lim.withDefaults()
	req.reset()
	pos := 0
	for empty := 0; ; empty++ {
		if pos >= len(buf) {
			return 0, nil
		}
		if buf[pos] != '\r' && buf[pos] != '\n' {
			break
		}
		if empty == maxEmptyLines {
			return 0, ErrEmptyLines
		}
		if buf[pos] == '\n' {
			return 0, ErrBareLF
		}
		if pos+1 >= len(buf) {
			return 0, nil
		}
		if buf[pos+1] != '\n' {
			return 0, ErrBareCR
		}
		pos += 2
	}

	// Request line.
	eol := bytes.IndexByte(buf[pos:], '\n')
	if eol < 0 {
		if err := checkPartialLine(buf[pos:], lim.MaxRequestLine, ErrURITooLong); err != nil {
			return 0, err
		}
		return 0, nil
	}
	if eol == 0 || buf[pos+eol-1] != '\r' {
		return 0, ErrBareLF
	}
	line := buf[pos : pos+eol-1]
	if len(line) > lim.MaxRequestLine {
		return 0, ErrURITooLong
	}
	if err := parseRequestLine(line, req); err != nil {
		return 0, err
	}
	pos += eol + 1

	// Field lines.
	start := pos
	var seenCL, seenTE, unknownTE, chunkedLast, closeOpt bool
	hosts := 0
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
		if len(req.Headers) == lim.MaxHeaders {
			return 0, ErrTooManyHeaders
		}
		name, value, err := splitField(line)
		if err != nil {
			return 0, err
		}
		req.Headers = append(req.Headers, Header{Name: name, Value: value})

		switch len(name) {
		case len("host"):
			if equalFold(name, "host") {
				hosts++
				if hosts > 1 {
					return 0, ErrDuplicateHost
				}
				if !validHost(value) {
					return 0, ErrBadHost
				}
				req.Host = value
			}
		case len("expect"):
			if equalFold(name, "expect") {
				if !equalFold(value, "100-continue") {
					return 0, ErrExpectation
				}
				req.Expect100 = true
			}
		case len("connection"):
			if equalFold(name, "connection") {
				forEachListItem(value, func(item []byte) {
					if equalFold(item, "close") {
						closeOpt = true
					} else if equalFold(item, "keep-alive") {
						req.ConnKeepAlive = true
					}
				})
			}
		case len("content-length"):
			if equalFold(name, "content-length") {
				if seenCL {
					return 0, ErrDuplicateLength
				}
				seenCL = true
				n, ok := parseDecimal(value)
				if !ok {
					return 0, ErrBadLength
				}
				req.ContentLength = n
			}
		case len("transfer-encoding"):
			if equalFold(name, "transfer-encoding") {
				seenTE = true
				bad := false
				forEachListItem(value, func(item []byte) {
					if chunkedLast {
						bad = true // something after chunked, or chunked twice
					}
					if equalFold(item, "chunked") {
						chunkedLast = true
					} else {
						unknownTE = true
					}
				})
				if bad {
					return 0, ErrChunkedNotLast
				}
			}
		}
	}

	if req.Minor >= 1 && hosts == 0 {
		return 0, ErrMissingHost
	}
	if seenTE {
		switch {
		case req.Minor == 0:
			return 0, ErrTransferEncoding10
		case seenCL:
			return 0, ErrLengthAndChunked
		case !chunkedLast:
			return 0, ErrChunkedNotLast
		case unknownTE:
			return 0, ErrUnknownCoding
		}
		req.Chunked = true
	}
	if req.ContentLength > lim.MaxBody {
		return 0, ErrBodyTooLarge
	}
	if req.Minor >= 1 {
		req.KeepAlive = !closeOpt
	} else {
		req.KeepAlive = req.ConnKeepAlive && !closeOpt
	}
	return pos, nil
}

// checkPartialLine refuses a line whose end has not arrived yet when what is
// there already breaks a rule, so a hostile peer cannot make the caller
// buffer it: too long, or holding a bare CR.
func checkPartialLine(b []byte, max int, tooLong *Error) error {
	if len(b) > max+1 { // +1: the CR of the CRLF
		return tooLong
	}
	if i := bytes.IndexByte(b, '\r'); i >= 0 && i != len(b)-1 {
		return ErrBareCR
	}
	return nil
}

// checkPartialField refuses an incomplete field line holding a bare CR.
func checkPartialField(b []byte) error {
	if i := bytes.IndexByte(b, '\r'); i >= 0 && i != len(b)-1 {
		return ErrBareCR
	}
	return nil
}

// parseRequestLine splits method SP request-target SP HTTP-version, with
// exactly one space between them (RFC 9112 section 3).
func parseRequestLine(line []byte, req *Request) error {
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return ErrBadRequestLine
	}
	method := line[:sp]
	for _, c := range method {
		if charClass[c]&isToken == 0 {
			return ErrBadRequestLine
		}
	}
	rest := line[sp+1:]
	sp = bytes.IndexByte(rest, ' ')
	if sp <= 0 {
		return ErrBadRequestLine
	}
	target, version := rest[:sp], rest[sp+1:]
	for i, c := range target {
		if charClass[c]&isTarget == 0 {
			if c == '\r' {
				return ErrBareCR
			}
			return ErrBadRequestLine
		}
		// pct-encoded = "%" HEXDIG HEXDIG (RFC 3986 section 2.1)
		if c == '%' && (i+2 >= len(target) || charClass[target[i+1]]&isHex == 0 || charClass[target[i+2]]&isHex == 0) {
			return ErrBadTarget
		}
		// A fragment is never part of a request-target (RFC 9112
		// section 3.2): a client must not send one.
		if c == '#' {
			return ErrBadTarget
		}
	}
	if len(version) != len("HTTP/1.1") || string(version[:5]) != "HTTP/" || version[6] != '.' ||
		!isDigit(version[5]) || !isDigit(version[7]) {
		if bytes.IndexByte(version, '\r') >= 0 {
			return ErrBareCR
		}
		return ErrBadRequestLine
	}
	if version[5] != '1' {
		return ErrVersion
	}
	req.Method, req.Target = method, target
	req.Minor = int(version[7] - '0')
	if req.Minor > 1 {
		req.Minor = 1
	}
	return splitTarget(req)
}

// splitTarget sets Path and Query for the four request-target forms
// (RFC 9112 section 3.2).
func splitTarget(req *Request) error {
	t := req.Target
	switch {
	case t[0] == '/':
	case string(req.Method) == "CONNECT":
		req.Path = t // authority-form
		return nil
	case len(t) == 1 && t[0] == '*':
		if string(req.Method) != "OPTIONS" {
			return ErrBadTarget
		}
		req.Path = t
		return nil
	default:
		// absolute-form: scheme "://" authority path-abempty [ "?" query ]
		i := bytes.Index(t, []byte("://"))
		if i <= 0 {
			return ErrBadTarget
		}
		for _, c := range t[:i] {
			if !isAlpha(c) && !isDigit(c) && c != '+' && c != '-' && c != '.' {
				return ErrBadTarget
			}
		}
		rest := t[i+3:]
		j := bytes.IndexAny(rest, "/?")
		authority := rest
		if j >= 0 {
			authority = rest[:j]
		}
		if at := bytes.LastIndexByte(authority, '@'); at >= 0 {
			authority = authority[at+1:] // userinfo@host
		}
		if !validHost(authority) {
			return ErrBadTarget
		}
		if j < 0 {
			req.Path = slashPath
			return nil
		}
		if rest[j] == '?' {
			req.Path = slashPath
			req.Query = rest[j+1:]
			return nil
		}
		t = rest[j:]
	}
	if q := bytes.IndexByte(t, '?'); q >= 0 {
		req.Path, req.Query = t[:q], t[q+1:]
	} else {
		req.Path = t
	}
	return nil
}

// splitField splits a field line into its name and its value without
// surrounding whitespace, validating both (RFC 9112 section 5, RFC 9110
// section 5.5).
func splitField(line []byte) (name, value []byte, err error) {
	colon := bytes.IndexByte(line, ':')
	if colon < 0 {
		if bytes.IndexByte(line, '\r') >= 0 {
			return nil, nil, ErrBareCR
		}
		return nil, nil, ErrBadHeader
	}
	if colon == 0 {
		return nil, nil, ErrBadHeader
	}
	name = line[:colon]
	for _, c := range name {
		if charClass[c]&isToken == 0 {
			if c == ' ' || c == '\t' {
				return nil, nil, ErrSpaceBeforeColon
			}
			if c == '\r' {
				return nil, nil, ErrBareCR
			}
			return nil, nil, ErrBadHeader
		}
	}
	v := line[colon+1:]
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	for _, c := range v {
		if charClass[c]&isFieldValue == 0 {
			if c == '\r' {
				return nil, nil, ErrBareCR
			}
			return nil, nil, ErrBadHeader
		}
	}
	return name, v, nil
}

// forEachListItem calls fn for each non-empty element of a comma-separated
// list (RFC 9110 section 5.6.1), trimmed of whitespace.
func forEachListItem(v []byte, fn func(item []byte)) {
	for len(v) > 0 {
		var item []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			item, v = v[:i], v[i+1:]
		} else {
			item, v = v, nil
		}
		for len(item) > 0 && (item[0] == ' ' || item[0] == '\t') {
			item = item[1:]
		}
		for len(item) > 0 && (item[len(item)-1] == ' ' || item[len(item)-1] == '\t') {
			item = item[:len(item)-1]
		}
		if len(item) > 0 {
			fn(item)
		}
	}
}

// maxDecimalDigits keeps a Content-Length far from int64 overflow (10^18).
const maxDecimalDigits = 18

// parseDecimal parses 1*DIGIT, nothing else (no sign, no list, no spaces).
func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > maxDecimalDigits {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// validHost accepts the characters of uri-host [ ":" port ] (RFC 3986:
// reg-name, IP literals in brackets, percent-encoding).
func validHost(v []byte) bool {
	for _, c := range v {
		if charClass[c]&isHost == 0 {
			return false
		}
	}
	return true
}

// equalFold compares b with the lower-case ASCII string s, ignoring the
// case of b.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// foldEqual compares b and s ignoring ASCII case on both sides.
func foldEqual(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

const (
	isToken      = 1 << iota // tchar (RFC 9110 section 5.6.2)
	isFieldValue             // field-vchar, SP, HTAB (obs-text included)
	isTarget                 // what a request-target may hold: visible ASCII
	isHost                   // uri-host and port characters
	isHex
)

var charClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		if isAlpha(b) || isDigit(b) {
			t[c] |= isToken | isHost
		}
		if b >= 0x21 && b <= 0x7e || b >= 0x80 || b == ' ' || b == '\t' {
			t[c] |= isFieldValue
		}
		if b >= 0x21 && b <= 0x7e {
			t[c] |= isTarget
		}
		if isDigit(b) || 'a' <= b && b <= 'f' || 'A' <= b && b <= 'F' {
			t[c] |= isHex
		}
	}
	for _, c := range []byte("!#$%&'*+-.^_`|~") {
		t[c] |= isToken
	}
	for _, c := range []byte("-._~!$&'()*+,;=:[]%") {
		t[c] |= isHost
	}
	return t
}()
