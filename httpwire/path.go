package httpwire

// ErrBadPath refuses a path that cannot name a file under a root.
var ErrBadPath = &Error{400, "malformed path, or one that leaves the root"}

// AppendCleanPath appends path percent-decoded and with its dot segments
// resolved (RFC 3986 section 5.2.4), always starting with '/': what a
// handler joins to a directory. It refuses (ErrBadPath) a path that does
// not start with '/', a malformed escape, a NUL byte, and a ".." that would
// climb above the root, so the result can never name anything outside it.
// Decoding happens before resolving, so "%2e%2e" is a "..", as the file
// system would see it. A trailing '/' is kept (a directory was asked for).
func AppendCleanPath(dst, path []byte) ([]byte, error) {
	if len(path) == 0 || path[0] != '/' {
		return dst, ErrBadPath
	}
	base := len(dst)
	for i := 0; i < len(path); i++ {
		c := path[i]
		if c == '%' {
			if i+2 >= len(path) || charClass[path[i+1]]&isHex == 0 || charClass[path[i+2]]&isHex == 0 {
				return dst[:base], ErrBadPath
			}
			c = unhex(path[i+1])<<4 | unhex(path[i+2])
			i += 2
		}
		if c == 0 {
			return dst[:base], ErrBadPath
		}
		dst = append(dst, c)
	}
	// Resolve segments in place: the output never overtakes the input.
	in := dst[base:]
	out := 0
	r := 0
	for r < len(in) {
		// in[r] == '/': a segment runs to the next '/'.
		end := r + 1
		for end < len(in) && in[end] != '/' {
			end++
		}
		seg := in[r+1 : end]
		last := end == len(in)
		switch {
		case len(seg) == 0 && !last:
			// "//": an empty segment names nothing; collapse it.
		case string(seg) == ".":
			if last {
				in[out] = '/'
				out++
			}
		case string(seg) == "..":
			if out == 0 {
				return dst[:base], ErrBadPath
			}
			for out > 0 && in[out-1] != '/' {
				out--
			}
			if !last {
				out-- // drop the '/' too; the next segment brings its own
			}
		default:
			out += copy(in[out:], in[r:end])
		}
		r = end
	}
	if out == 0 {
		in[0] = '/'
		out = 1
	}
	return dst[:base+out], nil
}
