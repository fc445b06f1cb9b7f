package httpproxy

import "github.com/scalestack/scalestack/httpwire"

// dropRequestField reports whether a request field stays behind: the
// hop-by-hop ones (RFC 9110 section 7.6.1), Expect (the client module
// answered 100-continue itself), and the X-Forwarded fields the proxy
// writes itself.
func dropRequestField(name []byte) bool {
	switch len(name) {
	case 2:
		return foldEqual(name, "te")
	case 6:
		return foldEqual(name, "expect")
	case 7:
		return foldEqual(name, "trailer") || foldEqual(name, "upgrade")
	case 10:
		return foldEqual(name, "connection") || foldEqual(name, "keep-alive")
	case 15:
		return foldEqual(name, "x-forwarded-for")
	case 16:
		return foldEqual(name, "proxy-connection")
	case 17:
		return foldEqual(name, "transfer-encoding") || foldEqual(name, "x-forwarded-proto")
	}
	return false
}

// dropResponseField reports whether a response field stays behind: the
// hop-by-hop ones, Content-Length (the module writes the framing it
// sends) and Date and Server (the module writes its own, as nginx does).
func dropResponseField(name []byte) bool {
	switch len(name) {
	case 2:
		return foldEqual(name, "te")
	case 4:
		return foldEqual(name, "date")
	case 6:
		return foldEqual(name, "server")
	case 7:
		return foldEqual(name, "trailer") || foldEqual(name, "upgrade")
	case 10:
		return foldEqual(name, "connection") || foldEqual(name, "keep-alive")
	case 14:
		return foldEqual(name, "content-length")
	case 16:
		return foldEqual(name, "proxy-connection")
	case 17:
		return foldEqual(name, "transfer-encoding")
	}
	return false
}

// connectionNames reports whether a Connection field of headers lists
// name: such a field is meant for this hop only (RFC 9110 section 7.6.1).
func connectionNames(headers []httpwire.Header, name []byte) bool {
	for i := range headers {
		if !foldEqual(headers[i].Name, "connection") {
			continue
		}
		v := headers[i].Value
		for len(v) > 0 {
			j := 0
			for j < len(v) && v[j] != ',' {
				j++
			}
			item := trimSpace(v[:j])
			if len(item) == len(name) && foldBytes(item, name) {
				return true
			}
			if j == len(v) {
				break
			}
			v = v[j+1:]
		}
	}
	return false
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func appendField(dst, name, value []byte) []byte {
	dst = append(dst, name...)
	dst = append(dst, ": "...)
	dst = append(dst, value...)
	return append(dst, "\r\n"...)
}

// foldEqual compares b with the lower-case ASCII string s ignoring b's
// case.
func foldEqual(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if lower(b[i]) != s[i] {
			return false
		}
	}
	return true
}

func foldBytes(a, b []byte) bool {
	for i := range a {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
