package memcachewire

import "bytes"

// RespKind classifies one element of a server's response.
type RespKind uint8

// Response elements. A retrieval is answered by RespValue elements and
// RespEnd; stats by RespStat lines and RespEnd; everything else by one
// element.
const (
	RespNone        RespKind = iota
	RespValue                // VALUE <key> <flags> <bytes> [<cas>] + data block
	RespEnd                  // END
	RespStored               // STORED
	RespNotStored            // NOT_STORED
	RespExists               // EXISTS
	RespNotFound             // NOT_FOUND
	RespDeleted              // DELETED
	RespTouched              // TOUCHED
	RespOK                   // OK
	RespNumber               // incr/decr result
	RespVersion              // VERSION <version>
	RespStat                 // STAT <name> <value>
	RespError                // ERROR
	RespClientError          // CLIENT_ERROR <message>
	RespServerError          // SERVER_ERROR <message>
	RespMetaVA               // VA <size> <flags>* + data block
	RespMetaHD               // HD <flags>*
	RespMetaNS               // NS <flags>*
	RespMetaEX               // EX <flags>*
	RespMetaNF               // NF <flags>*
	RespMetaEN               // EN
	RespMetaMN               // MN
	RespMetaME               // ME <key> <key=value>*
	RespOther                // any other single line (RESET, BUSY ..., ...)
)

// IsError reports whether k is ERROR, CLIENT_ERROR or SERVER_ERROR, which
// end any response.
func (k RespKind) IsError() bool {
	return k == RespError || k == RespClientError || k == RespServerError
}

// MaxResponseLine bounds a response line (VALUE, STAT, ME lines are short).
const MaxResponseLine = 8192

// Response is one parsed response element. Its slices alias the input.
type Response struct {
	Kind RespKind
	// Line is the element's first line without its ending.
	Line []byte
	// Key, Flags and Cas (HasCas) describe a VALUE item.
	Key    []byte
	Flags  uint32
	Cas    uint64
	HasCas bool
	// Data is the data block of VALUE and VA, without its \r\n.
	Data []byte
	// Size is how many input bytes the element occupies.
	Size int
}

// ParseResponse parses the response element at the start of in. Incomplete
// asks for more input; ErrTooLarge means a data block over maxValue and
// ErrBadResponse anything a memcached server never sends (the caller closes
// that server connection: its stream cannot be trusted).
func ParseResponse(in []byte, maxValue int, r *Response) Status {
	*r = Response{}
	n, term, ok := lineEnd(in, MaxResponseLine)
	if !ok {
		if len(in) > MaxResponseLine+1 {
			return ErrBadResponse
		}
		return Incomplete
	}
	line := in[:n]
	r.Line = line
	r.Size = n + term
	s, e := token(line, 0)
	if s != 0 || e == 0 {
		return ErrBadResponse
	}
	word := line[:e]
	switch string(word) {
	case "VALUE":
		ks, ke := token(line, e)
		fs, fe := token(line, ke)
		ls, le := token(line, fe)
		cs, ce := token(line, le)
		xs, _ := token(line, ce)
		if ke == ks || le == ls || xs != len(line) || ke-ks > MaxKeyLen {
			return ErrBadResponse
		}
		f, ok1 := parseUint(line[fs:fe], 32)
		l, ok2 := parseInt(line[ls:le])
		if !ok1 || !ok2 || l < 0 {
			return ErrBadResponse
		}
		if cs != ce {
			c, ok := parseUint(line[cs:ce], 64)
			if !ok {
				return ErrBadResponse
			}
			r.Cas, r.HasCas = c, true
		}
		r.Kind, r.Key, r.Flags = RespValue, line[ks:ke], uint32(f)
		return r.data(in, int(l), maxValue)
	case "VA":
		ls, le := token(line, e)
		l, ok := parseInt(line[ls:le])
		if !ok || l < 0 {
			return ErrBadResponse
		}
		r.Kind = RespMetaVA
		return r.data(in, int(l), maxValue)
	case "END":
		r.Kind = RespEnd
	case "STORED":
		r.Kind = RespStored
	case "NOT_STORED":
		r.Kind = RespNotStored
	case "EXISTS":
		r.Kind = RespExists
	case "NOT_FOUND":
		r.Kind = RespNotFound
	case "DELETED":
		r.Kind = RespDeleted
	case "TOUCHED":
		r.Kind = RespTouched
	case "OK":
		r.Kind = RespOK
	case "VERSION":
		r.Kind = RespVersion
	case "STAT":
		r.Kind = RespStat
	case "ERROR":
		r.Kind = RespError
	case "CLIENT_ERROR":
		r.Kind = RespClientError
	case "SERVER_ERROR":
		r.Kind = RespServerError
	case "HD":
		r.Kind = RespMetaHD
	case "NS":
		r.Kind = RespMetaNS
	case "EX":
		r.Kind = RespMetaEX
	case "NF":
		r.Kind = RespMetaNF
	case "EN":
		r.Kind = RespMetaEN
	case "MN":
		r.Kind = RespMetaMN
	case "ME":
		r.Kind = RespMetaME
	default:
		if _, ok := parseUint(bytes.TrimRight(word, " "), 64); ok {
			r.Kind = RespNumber
		} else {
			r.Kind = RespOther
		}
	}
	return OK
}

func (r *Response) data(in []byte, l, maxValue int) Status {
	return dataBlock(in, l, maxValue, ErrBadResponse, &r.Size, &r.Data)
}

// Ends reports whether element k completes the response to cmd: retrievals
// and stats end with END (or an error); every other command's response is
// one element.
func Ends(cmd Command, k RespKind) bool {
	if cmd.Retrieval() {
		return k == RespEnd || k.IsError()
	}
	if cmd == CmdStats {
		return k != RespStat
	}
	return true
}
