package mysqlwire

import "encoding/binary"

// Length-encoded integer prefixes.
const (
	lenEncNull   = 0xFB // NULL in a text row; LOCAL INFILE request as a first byte
	lenEnc2Bytes = 0xFC
	lenEnc3Bytes = 0xFD
	lenEnc8Bytes = 0xFE
)

// ReadLenEncInt decodes a length-encoded integer at the start of b and returns
// the value and the number of bytes it occupied. The NULL marker (0xFB) is
// reported as isNull; 0xFF is not a valid prefix.
func ReadLenEncInt(b []byte) (v uint64, isNull bool, n int, err error) {
	if len(b) == 0 {
		return 0, false, 0, ErrTruncated
	}
	switch c := b[0]; {
	case c < lenEncNull:
		return uint64(c), false, 1, nil
	case c == lenEncNull:
		return 0, true, 1, nil
	case c == lenEnc2Bytes:
		if len(b) < 3 {
			return 0, false, 0, ErrTruncated
		}
		return uint64(binary.LittleEndian.Uint16(b[1:])), false, 3, nil
	case c == lenEnc3Bytes:
		if len(b) < 4 {
			return 0, false, 0, ErrTruncated
		}
		return uint64(b[1]) | uint64(b[2])<<8 | uint64(b[3])<<16, false, 4, nil
	case c == lenEnc8Bytes:
		if len(b) < 9 {
			return 0, false, 0, ErrTruncated
		}
		return binary.LittleEndian.Uint64(b[1:]), false, 9, nil
	default:
		return 0, false, 0, ErrMalformed
	}
}

// LenEncIntSize is the number of bytes AppendLenEncInt writes for v.
//
// Kept although the proxy does not call it: the other side of a message the proxy
// parses or builds; tests and fuzz targets round-trip through it.
func LenEncIntSize(v uint64) int {
	switch {
	case v < lenEncNull:
		return 1
	case v < 1<<16:
		return 3
	case v < 1<<24:
		return 4
	default:
		return 9
	}
}

// AppendLenEncInt appends v as a length-encoded integer.
func AppendLenEncInt(dst []byte, v uint64) []byte {
	switch {
	case v < lenEncNull:
		return append(dst, byte(v))
	case v < 1<<16:
		return append(dst, lenEnc2Bytes, byte(v), byte(v>>8))
	case v < 1<<24:
		return append(dst, lenEnc3Bytes, byte(v), byte(v>>8), byte(v>>16))
	default:
		dst = append(dst, lenEnc8Bytes)
		return binary.LittleEndian.AppendUint64(dst, v)
	}
}

// ReadLenEncString decodes a length-encoded string at the start of b. The
// returned slice aliases b. A NULL marker is reported as isNull with a nil
// string. A length that runs past the end of b is ErrTruncated.
func ReadLenEncString(b []byte) (s []byte, isNull bool, n int, err error) {
	l, isNull, n, err := ReadLenEncInt(b)
	if err != nil || isNull {
		return nil, isNull, n, err
	}
	if l > uint64(len(b)-n) {
		return nil, false, 0, ErrTruncated
	}
	end := n + int(l)
	return b[n:end:end], false, end, nil
}

// AppendLenEncString appends s prefixed with its length-encoded length.
func AppendLenEncString(dst, s []byte) []byte {
	return append(AppendLenEncInt(dst, uint64(len(s))), s...)
}

// AppendLenEncStr is AppendLenEncString for a Go string.
//
// Kept although the proxy does not call it: the server side, for internal/mysqlfake (the test double).
func AppendLenEncStr(dst []byte, s string) []byte {
	return append(AppendLenEncInt(dst, uint64(len(s))), s...)
}

// ReadNulString returns the bytes of b up to the first NUL and the number of
// bytes consumed including the NUL. A missing terminator is ErrTruncated.
func ReadNulString(b []byte) (s []byte, n int, err error) {
	for i, c := range b {
		if c == 0 {
			return b[:i:i], i + 1, nil
		}
	}
	return nil, 0, ErrTruncated
}

// AppendNulString appends s followed by a NUL byte. s must not contain NUL.
func AppendNulString(dst []byte, s string) []byte {
	return append(append(dst, s...), 0)
}

// reader is a bounds-checked cursor over a payload. The first failure is
// sticky: later reads return zero values and err keeps the first error, so a
// parser can read a whole structure and check once. It is a value type and
// never allocates.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.off = len(r.b)
}

func (r *reader) remaining() int { return len(r.b) - r.off }

func (r *reader) u8() uint8 {
	if r.err != nil || r.off+1 > len(r.b) {
		r.fail(ErrTruncated)
		return 0
	}
	v := r.b[r.off]
	r.off++
	return v
}

func (r *reader) u16() uint16 {
	if r.err != nil || r.off+2 > len(r.b) {
		r.fail(ErrTruncated)
		return 0
	}
	v := binary.LittleEndian.Uint16(r.b[r.off:])
	r.off += 2
	return v
}

func (r *reader) u32() uint32 {
	if r.err != nil || r.off+4 > len(r.b) {
		r.fail(ErrTruncated)
		return 0
	}
	v := binary.LittleEndian.Uint32(r.b[r.off:])
	r.off += 4
	return v
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil || n < 0 || n > len(r.b)-r.off {
		r.fail(ErrTruncated)
		return nil
	}
	v := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return v
}

func (r *reader) rest() []byte {
	if r.err != nil {
		return nil
	}
	v := r.b[r.off:len(r.b):len(r.b)]
	r.off = len(r.b)
	return v
}

func (r *reader) lenEncInt() uint64 {
	if r.err != nil {
		return 0
	}
	v, isNull, n, err := ReadLenEncInt(r.b[r.off:])
	if err != nil {
		r.fail(err)
		return 0
	}
	if isNull {
		r.fail(ErrMalformed)
		return 0
	}
	r.off += n
	return v
}

func (r *reader) lenEncString() []byte {
	if r.err != nil {
		return nil
	}
	s, isNull, n, err := ReadLenEncString(r.b[r.off:])
	if err != nil {
		r.fail(err)
		return nil
	}
	if isNull {
		r.fail(ErrMalformed)
		return nil
	}
	r.off += n
	return s
}

func (r *reader) nulString() []byte {
	if r.err != nil {
		return nil
	}
	s, n, err := ReadNulString(r.b[r.off:])
	if err != nil {
		r.fail(err)
		return nil
	}
	r.off += n
	return s
}

// nulStringOrRest reads a NUL-terminated string, accepting a missing
// terminator at the end of the payload (some servers omit it on the last
// field).
func (r *reader) nulStringOrRest() []byte {
	if r.err != nil {
		return nil
	}
	s, n, err := ReadNulString(r.b[r.off:])
	if err != nil {
		return r.rest()
	}
	r.off += n
	return s
}

func appendUint16(dst []byte, v uint16) []byte {
	return append(dst, byte(v), byte(v>>8))
}

func appendUint32(dst []byte, v uint32) []byte {
	return append(dst, byte(v), byte(v>>8), byte(v>>16), byte(v>>24))
}
