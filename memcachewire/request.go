package memcachewire

import "bytes"

// Command identifies a request.
type Command uint8

// The commands ParseRequest knows.
const (
	CmdNone Command = iota
	CmdGet
	CmdGets
	CmdGat
	CmdGats
	CmdSet
	CmdAdd
	CmdReplace
	CmdAppend
	CmdPrepend
	CmdCas
	CmdDelete
	CmdIncr
	CmdDecr
	CmdTouch
	CmdMetaGet        // mg
	CmdMetaSet        // ms
	CmdMetaDelete     // md
	CmdMetaArithmetic // ma
	CmdMetaNoop       // mn
	CmdMetaDebug      // me
	CmdVersion
	CmdStats
	CmdVerbosity
	CmdFlushAll
	CmdQuit
	numCommands
)

var commandNames = [numCommands]string{
	"", "get", "gets", "gat", "gats", "set", "add", "replace", "append", "prepend", "cas",
	"delete", "incr", "decr", "touch", "mg", "ms", "md", "ma", "mn", "me",
	"version", "stats", "verbosity", "flush_all", "quit",
}

// String returns the command's name on the wire.
func (c Command) String() string {
	if c < numCommands {
		return commandNames[c]
	}
	return "unknown"
}

// Retrieval reports whether c takes a list of keys (get, gets, gat, gats)
// and is answered by VALUE items and END.
func (c Command) Retrieval() bool { return c >= CmdGet && c <= CmdGats }

// Storage reports whether c is followed by a data block.
func (c Command) Storage() bool { return (c >= CmdSet && c <= CmdCas) || c == CmdMetaSet }

// Meta reports whether c is one of the meta commands.
func (c Command) Meta() bool { return c >= CmdMetaGet && c <= CmdMetaDebug }

// Keyed reports whether c names exactly one key (Request.Key).
func (c Command) Keyed() bool {
	return (c >= CmdSet && c <= CmdMetaArithmetic) || c == CmdMetaDebug
}

// MaxKeyLen is the longest key memcached accepts.
const MaxKeyLen = 250

// Limits bound what ParseRequest accepts; zero fields take the defaults.
type Limits struct {
	// MaxLine is the longest command line other than a retrieval's
	// (default 2048, memcached's own bound).
	MaxLine int
	// MaxKeysLine is the longest get/gets/gat/gats line, which carries
	// many keys (default 64 KiB).
	MaxKeysLine int
	// MaxValue is the largest data block (default 1 MiB, memcached's
	// default item size).
	MaxValue int
}

// Default limits.
const (
	DefaultMaxLine     = 2048
	DefaultMaxKeysLine = 64 << 10
	DefaultMaxValue    = 1 << 20
)

// WithDefaults fills zero fields.
func (l Limits) WithDefaults() Limits {
	if l.MaxLine <= 0 {
		l.MaxLine = DefaultMaxLine
	}
	if l.MaxKeysLine < l.MaxLine {
		l.MaxKeysLine = DefaultMaxKeysLine
		if l.MaxKeysLine < l.MaxLine {
			l.MaxKeysLine = l.MaxLine
		}
	}
	if l.MaxValue <= 0 {
		l.MaxValue = DefaultMaxValue
	}
	return l
}

// Status is the outcome of a parse.
type Status uint8

// Parse outcomes. Every error status has the Reply memcached sends for it.
const (
	OK         Status = iota
	Incomplete        // more input is needed; nothing was consumed
	// ErrUnknown: an unknown command, a wrong number of arguments, or an
	// empty line ("ERROR").
	ErrUnknown
	// ErrBadFormat: a malformed argument or a key over MaxKeyLen.
	ErrBadFormat
	// ErrBadDelta: incr/decr with a non-numeric delta.
	ErrBadDelta
	// ErrBadExptime: touch/gat/gats/flush_all with a bad time.
	ErrBadExptime
	// ErrDeleteUsage: delete with arguments it does not take.
	ErrDeleteUsage
	// ErrTooLarge: a data block over Limits.MaxValue; Size covers the
	// line and the whole block, which the caller discards as it arrives.
	ErrTooLarge
	// ErrBadChunk: a data block not followed by \r\n; Size covers it.
	ErrBadChunk
	// ErrLineTooLong: no end of line within the limit; the caller sends
	// the reply and closes the connection (the stream cannot be resynced).
	ErrLineTooLong
	// ErrBadResponse: ParseResponse met something a server never sends.
	ErrBadResponse
)

var statusReplies = [...]string{
	ErrUnknown:     "ERROR\r\n",
	ErrBadFormat:   "CLIENT_ERROR bad command line format\r\n",
	ErrBadDelta:    "CLIENT_ERROR invalid numeric delta argument\r\n",
	ErrBadExptime:  "CLIENT_ERROR invalid exptime argument\r\n",
	ErrDeleteUsage: "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n",
	ErrTooLarge:    "SERVER_ERROR object too large for cache\r\n",
	ErrBadChunk:    "CLIENT_ERROR bad data chunk\r\n",
	ErrLineTooLong: "CLIENT_ERROR line too long\r\n",
	ErrBadResponse: "SERVER_ERROR bad response from server\r\n",
}

var statusReplyBytes = func() [len(statusReplies)][]byte {
	var b [len(statusReplies)][]byte
	for i, s := range statusReplies {
		b[i] = []byte(s)
	}
	return b
}()

// Reply returns the line (with \r\n) a server sends for an error status;
// nil for OK and Incomplete. The slice is shared: do not modify it.
func (s Status) Reply() []byte {
	if s >= ErrUnknown && int(s) < len(statusReplyBytes) {
		return statusReplyBytes[s]
	}
	return nil
}

func (s Status) String() string {
	switch s {
	case OK:
		return "ok"
	case Incomplete:
		return "incomplete"
	}
	if r := s.Reply(); r != nil {
		return string(r[:len(r)-2])
	}
	return "unknown status"
}

// Request is one parsed client request. Its slices alias the input.
type Request struct {
	Cmd Command
	// Line is the command line without its line ending.
	Line []byte
	// Key is the key of a single-key command (Cmd.Keyed).
	Key []byte
	// Keys holds a retrieval's keys as they appear in Line (NextKey walks
	// them); KeysAt is where they start in Line, so Line[:KeysAt] is the
	// command with its exptime ("get ", "gat 100 ").
	Keys   []byte
	KeysAt int
	// NKeys counts the keys of a retrieval.
	NKeys int

	Flags   uint32
	Exptime int64
	Cas     uint64 // cas
	Delta   uint64 // incr/decr
	// Data is a storage command's data block, without its \r\n.
	Data []byte
	// Noreply is set when the text command ends with "noreply" (or a meta
	// command carries the q flag): the client expects no success reply.
	Noreply bool
	// ReplyCut is the length of Line without its trailing noreply token;
	// for a meta command with q, QuietAt is the q token's offset in Line
	// (-1 without it). A proxy forwards the line without them and drops
	// the replies the client asked not to see, so that every request it
	// sends gets exactly one reply.
	ReplyCut int
	QuietAt  int
	// MetaFlags are a meta command's flag tokens as they appear in Line.
	MetaFlags []byte
	// Base64 is the meta b flag: Key is base64 encoded.
	Base64 bool
	// Size is how many input bytes the request occupies (line, line
	// ending and data block). On ErrTooLarge and ErrBadChunk it is what to
	// discard, which may exceed what has arrived.
	Size int
}

// token returns the bounds of the first space-separated token of s at or
// after i; start == len(s) when there is none.
func token(s []byte, i int) (start, end int) {
	for i < len(s) && s[i] == ' ' {
		i++
	}
	start = i
	for i < len(s) && s[i] != ' ' {
		i++
	}
	return start, i
}

// lineEnd finds the end of the line at the start of in. It returns the
// line's length without its ending and the ending's length, or ok false.
func lineEnd(in []byte, max int) (n, term int, ok bool) {
	search := in
	if len(search) > max+2 {
		search = search[:max+2]
	}
	i := bytes.IndexByte(search, '\n')
	if i < 0 {
		return 0, 0, false
	}
	if i > 0 && in[i-1] == '\r' {
		return i - 1, 2, true
	}
	return i, 1, true
}

func isRetrievalPrefix(in []byte) bool {
	return bytes.HasPrefix(in, []byte("get ")) || bytes.HasPrefix(in, []byte("gets ")) ||
		bytes.HasPrefix(in, []byte("gat ")) || bytes.HasPrefix(in, []byte("gats "))
}

// ParseRequest parses the request at the start of in into r. On OK,
// r.Size bytes make up the request. Incomplete means more input is needed
// (nothing is consumed). Any other status is an error whose Reply the
// caller sends unless r.Noreply is set (memcached suppresses it then), after
// discarding r.Size bytes; after ErrLineTooLong the caller closes.
func ParseRequest(in []byte, lim *Limits, r *Request) Status {
	*r = Request{QuietAt: -1}
	maxLine, maxKeys := lim.MaxLine, lim.MaxKeysLine
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	if maxKeys < maxLine {
		maxKeys = max(maxLine, DefaultMaxKeysLine)
	}
	n, term, ok := lineEnd(in, maxKeys)
	if !ok {
		if len(in) > maxKeys+1 || (len(in) > maxLine+1 && !isRetrievalPrefix(in)) {
			return ErrLineTooLong
		}
		return Incomplete
	}
	line := in[:n]
	r.Line = line
	r.Size = n + term
	r.ReplyCut = n
	s, e := token(line, 0)
	if s == len(line) {
		return ErrUnknown
	}
	name := line[s:e]
	var cmd Command
	switch string(name) {
	case "get":
		cmd = CmdGet
	case "gets":
		cmd = CmdGets
	case "gat":
		cmd = CmdGat
	case "gats":
		cmd = CmdGats
	case "set":
		cmd = CmdSet
	case "add":
		cmd = CmdAdd
	case "replace":
		cmd = CmdReplace
	case "append":
		cmd = CmdAppend
	case "prepend":
		cmd = CmdPrepend
	case "cas":
		cmd = CmdCas
	case "delete":
		cmd = CmdDelete
	case "incr":
		cmd = CmdIncr
	case "decr":
		cmd = CmdDecr
	case "touch":
		cmd = CmdTouch
	case "mg":
		cmd = CmdMetaGet
	case "ms":
		cmd = CmdMetaSet
	case "md":
		cmd = CmdMetaDelete
	case "ma":
		cmd = CmdMetaArithmetic
	case "mn":
		cmd = CmdMetaNoop
	case "me":
		cmd = CmdMetaDebug
	case "version":
		cmd = CmdVersion
	case "stats":
		cmd = CmdStats
	case "verbosity":
		cmd = CmdVerbosity
	case "flush_all":
		cmd = CmdFlushAll
	case "quit":
		cmd = CmdQuit
	default:
		return ErrUnknown
	}
	r.Cmd = cmd
	if n > maxLine && !cmd.Retrieval() {
		return ErrLineTooLong
	}
	// The arguments, at most eight of them are looked at one by one.
	var args [8][2]int
	nargs := 0
	for i := e; ; {
		as, ae := token(line, i)
		if as == len(line) {
			break
		}
		if nargs < len(args) {
			args[nargs] = [2]int{as, ae}
		}
		nargs++
		i = ae
	}
	arg := func(k int) []byte { return line[args[k][0]:args[k][1]] }
	// noreplyLast recognises a trailing noreply among want+1 arguments.
	noreplyLast := func(want int) {
		if nargs == want+1 && string(arg(want)) == "noreply" {
			r.Noreply = true
			r.ReplyCut = args[want-1][1]
		}
	}
	switch cmd {
	case CmdGet, CmdGets, CmdGat, CmdGats:
		first := 0
		if cmd == CmdGat || cmd == CmdGats {
			if nargs < 2 {
				return ErrUnknown
			}
			t, ok := parseInt(arg(0))
			if !ok {
				return ErrBadExptime
			}
			r.Exptime = t
			first = 1
		} else if nargs < 1 {
			return ErrUnknown
		}
		r.KeysAt = args[first][0]
		r.Keys = line[r.KeysAt:]
		for rest := r.Keys; ; {
			var k []byte
			k, rest = NextKey(rest)
			if k == nil {
				break
			}
			if len(k) > MaxKeyLen {
				return ErrBadFormat
			}
			r.NKeys++
		}
		return OK
	case CmdSet, CmdAdd, CmdReplace, CmdAppend, CmdPrepend, CmdCas:
		want := 4
		if cmd == CmdCas {
			want = 5
		}
		if nargs != want && nargs != want+1 {
			return ErrUnknown
		}
		noreplyLast(want)
		r.Key = arg(0)
		f, ok1 := parseUint(arg(1), 32)
		t, ok2 := parseInt(arg(2))
		l, ok3 := parseInt(arg(3))
		ok4 := true
		if cmd == CmdCas {
			r.Cas, ok4 = parseUint(arg(4), 64)
		}
		if len(r.Key) > MaxKeyLen || !ok1 || !ok2 || !ok3 || !ok4 || l < 0 || l > 1<<31-3 {
			return ErrBadFormat
		}
		r.Flags, r.Exptime = uint32(f), t
		return r.data(in, int(l), lim)
	case CmdDelete:
		if nargs < 1 {
			return ErrUnknown
		}
		if nargs > 3 {
			return ErrUnknown
		}
		r.Key = arg(0)
		if len(r.Key) > MaxKeyLen {
			return ErrBadFormat
		}
		if nargs > 1 {
			zero := string(arg(1)) == "0"
			last := string(arg(nargs-1)) == "noreply"
			if last {
				r.Noreply = true
				r.ReplyCut = args[nargs-2][1]
			}
			if !(nargs == 2 && (zero || last)) && !(nargs == 3 && zero && last) {
				return ErrDeleteUsage
			}
		}
		return OK
	case CmdIncr, CmdDecr:
		if nargs != 2 && nargs != 3 {
			return ErrUnknown
		}
		noreplyLast(2)
		r.Key = arg(0)
		if len(r.Key) > MaxKeyLen {
			return ErrBadFormat
		}
		d, ok := parseUint(arg(1), 64)
		if !ok {
			return ErrBadDelta
		}
		r.Delta = d
		return OK
	case CmdTouch:
		if nargs != 2 && nargs != 3 {
			return ErrUnknown
		}
		noreplyLast(2)
		r.Key = arg(0)
		if len(r.Key) > MaxKeyLen {
			return ErrBadFormat
		}
		t, ok := parseInt(arg(1))
		if !ok {
			return ErrBadExptime
		}
		r.Exptime = t
		return OK
	case CmdMetaNoop:
		return OK
	case CmdMetaGet, CmdMetaSet, CmdMetaDelete, CmdMetaArithmetic, CmdMetaDebug:
		if nargs < 1 {
			return ErrUnknown
		}
		r.Key = arg(0)
		flagsFrom := args[0][1]
		dataLen := -1
		if cmd == CmdMetaSet {
			if nargs < 2 {
				return ErrBadFormat
			}
			l, ok := parseInt(arg(1))
			if !ok || l < 0 || l > 1<<31-3 {
				return ErrBadFormat
			}
			dataLen = int(l)
			flagsFrom = args[1][1]
		}
		r.MetaFlags = line[flagsFrom:]
		if len(r.MetaFlags) > 0 {
			r.MetaFlags = r.MetaFlags[1:]
		}
		for i := 0; ; {
			fs, fe := token(r.MetaFlags, i)
			if fs == len(r.MetaFlags) {
				break
			}
			switch string(r.MetaFlags[fs:fe]) {
			case "q":
				r.Noreply = true
				r.QuietAt = flagsFrom + 1 + fs
			case "b":
				r.Base64 = true
			}
			i = fe
		}
		if len(r.Key) > MaxKeyLen || (r.Base64 && !validBase64Key(r.Key)) {
			return ErrBadFormat
		}
		if dataLen >= 0 {
			return r.data(in, dataLen, lim)
		}
		return OK
	case CmdVersion, CmdQuit:
		return OK // memcached ignores arguments to both
	case CmdStats:
		if nargs > 0 && string(arg(nargs-1)) == "noreply" {
			return ErrUnknown
		}
		return OK
	case CmdVerbosity:
		if nargs < 1 || nargs > 2 {
			return ErrUnknown
		}
		if string(arg(nargs-1)) == "noreply" {
			r.Noreply = true
			r.ReplyCut = e
			if nargs == 2 {
				r.ReplyCut = args[0][1]
			}
		}
		if nargs == 2 || !r.Noreply {
			if _, ok := parseUint(arg(0), 32); !ok {
				return ErrBadFormat
			}
		}
		return OK
	case CmdFlushAll:
		if nargs > 2 {
			return ErrUnknown
		}
		if nargs >= 1 && string(arg(nargs-1)) == "noreply" {
			r.Noreply = true
			r.ReplyCut = e
			if nargs == 2 {
				r.ReplyCut = args[0][1]
			}
		}
		if nargs == 2 || (nargs == 1 && !r.Noreply) {
			if _, ok := parseInt(arg(0)); !ok {
				return ErrBadExptime
			}
		}
		return OK
	}
	return ErrUnknown
}

// data takes the data block of l bytes that follows the command line.
func (r *Request) data(in []byte, l int, lim *Limits) Status {
	return dataBlock(in, l, lim.MaxValue, ErrBadChunk, &r.Size, &r.Data)
}

// dataBlock takes the data block of l bytes (and its CRLF) that follows a
// command or response line of *size bytes: it sets *size to the line and
// block together and *data to the block, refusing a block over maxValue
// (<= 0: DefaultMaxValue) before any of it is needed, and one whose CRLF is
// missing with bad.
func dataBlock(in []byte, l, maxValue int, bad Status, size *int, data *[]byte) Status {
	if maxValue <= 0 {
		maxValue = DefaultMaxValue
	}
	line := *size
	*size = line + l + 2
	if l > maxValue {
		return ErrTooLarge
	}
	if len(in) < *size {
		return Incomplete
	}
	if in[line+l] != '\r' || in[line+l+1] != '\n' {
		return bad
	}
	*data = in[line : line+l]
	return OK
}

// NextKey returns the first key of a space-separated list and the rest of
// the list; key is nil when the list holds no more keys.
func NextKey(keys []byte) (key, rest []byte) {
	s, e := token(keys, 0)
	if s == len(keys) {
		return nil, nil
	}
	return keys[s:e], keys[e:]
}

// CutQuiet returns Line without its meta q flag as two pieces to send one
// after the other (the second is empty when there is no q flag).
func (r *Request) CutQuiet() (head, tail []byte) {
	if r.QuietAt < 0 {
		return r.Line, nil
	}
	// The q token is always preceded by a space (it follows the key).
	return r.Line[:r.QuietAt-1], r.Line[r.QuietAt+1:]
}

// QuietHides reports whether a meta command sent with q hides a response of
// kind k from the client: mg hides a miss (EN), ms, md and ma hide success
// (HD; ma also VA), as memcached does.
func QuietHides(cmd Command, k RespKind) bool {
	switch cmd {
	case CmdMetaGet:
		return k == RespMetaEN
	case CmdMetaSet, CmdMetaDelete:
		return k == RespMetaHD
	case CmdMetaArithmetic:
		return k == RespMetaHD || k == RespMetaVA
	}
	return false
}

func validBase64Key(k []byte) bool {
	if len(k) == 0 || len(k)%4 != 0 {
		return false
	}
	for i, c := range k {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/':
		case c == '=' && (i == len(k)-1 || (i == len(k)-2 && k[i+1] == '=')):
		default:
			return false
		}
	}
	return true
}

// DecodeBase64Key decodes a meta command's base64 key into dst (which
// needs MaxKeyLen bytes) and returns the decoded key, or nil if it is not
// valid base64 or decodes to more than len(dst) bytes.
func DecodeBase64Key(dst, k []byte) []byte {
	if !validBase64Key(k) {
		return nil
	}
	n := 0
	var acc uint32
	bits := 0
	for _, c := range k {
		var v byte
		switch {
		case c >= 'A' && c <= 'Z':
			v = c - 'A'
		case c >= 'a' && c <= 'z':
			v = c - 'a' + 26
		case c >= '0' && c <= '9':
			v = c - '0' + 52
		case c == '+':
			v = 62
		case c == '/':
			v = 63
		default: // padding
			continue
		}
		acc = acc<<6 | uint32(v)
		bits += 6
		if bits >= 8 {
			bits -= 8
			if n == len(dst) {
				return nil
			}
			dst[n] = byte(acc >> bits)
			n++
		}
	}
	return dst[:n]
}

// parseUint parses a decimal unsigned number that fits in bits.
func parseUint(b []byte, bits uint) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	if bits < 64 && v >= 1<<bits {
		return 0, false
	}
	return v, true
}

// parseInt parses a decimal number that fits in 32 signed bits, as
// memcached's times and lengths must.
func parseInt(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg = true
		b = b[1:]
	}
	v, ok := parseUint(b, 32)
	if !ok || v > 1<<31 || (!neg && v == 1<<31) {
		return 0, false
	}
	if neg {
		return -int64(v), true
	}
	return int64(v), true
}
