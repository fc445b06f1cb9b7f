package mysqlwire

import (
	"errors"
	"fmt"
)

// HeaderSize is the size of a packet header: a 3-byte little-endian payload
// length followed by a 1-byte sequence id.
const HeaderSize = 4

// MaxPacketPayload is the largest payload one packet can carry. A logical
// payload of this size or more is split into several packets; a packet of
// exactly this size always announces that another packet follows.
const MaxPacketPayload = 1<<24 - 1

// DefaultMaxPayload is a sensible bound for a logical payload when the caller
// has no better idea: MySQL's own max_allowed_packet ceiling (1 GiB).
const DefaultMaxPayload = 1 << 30

// Sentinel errors. They are predeclared so that the hot path can report them
// without allocating; callers compare with errors.Is.
var (
	// ErrTruncated means a payload ended before a field it announces.
	ErrTruncated = errors.New("mysqlwire: truncated payload")
	// ErrPacketTooLarge means a packet or a reassembled payload exceeds the
	// caller's limit.
	ErrPacketTooLarge = errors.New("mysqlwire: packet exceeds size limit")
	// ErrMalformed means a payload does not follow the protocol grammar.
	ErrMalformed = errors.New("mysqlwire: malformed payload")
)

// Packet is one wire packet found in a buffer.
type Packet struct {
	// Payload aliases the buffer passed to ReadPacket; it is valid only as
	// long as the caller keeps those bytes unchanged.
	Payload []byte
	// Seq is the packet's sequence id.
	Seq uint8
	// Size is the number of buffer bytes the packet occupies (header
	// included), i.e. how far the caller advances its read position.
	Size int
}

// PeekHeader decodes the header at the start of buf. ok is false when fewer
// than HeaderSize bytes are available.
func PeekHeader(buf []byte) (payloadLen int, seq uint8, ok bool) {
	if len(buf) < HeaderSize {
		return 0, 0, false
	}
	return int(buf[0]) | int(buf[1])<<8 | int(buf[2])<<16, buf[3], true
}

// ReadPacket finds the complete packet at the start of buf without copying.
// It returns ok == false and a nil error when buf does not yet hold the whole
// packet (the caller reads more and retries). A packet whose announced payload
// exceeds maxPayload is an error as soon as its header is visible, so a
// hostile peer cannot make the caller buffer without bound. maxPayload <= 0
// means MaxPacketPayload.
func ReadPacket(buf []byte, maxPayload int) (p Packet, ok bool, err error) {
	n, seq, ok := PeekHeader(buf)
	if !ok {
		return Packet{}, false, nil
	}
	if maxPayload <= 0 || maxPayload > MaxPacketPayload {
		maxPayload = MaxPacketPayload
	}
	if n > maxPayload {
		return Packet{}, false, ErrPacketTooLarge
	}
	end := HeaderSize + n
	if len(buf) < end {
		return Packet{}, false, nil
	}
	return Packet{Payload: buf[HeaderSize:end:end], Seq: seq, Size: end}, true, nil
}

// PutHeader writes a header for a payload of payloadLen bytes into b[0:4].
// payloadLen must be at most MaxPacketPayload.
func PutHeader(b []byte, payloadLen int, seq uint8) {
	_ = b[3]
	b[0] = byte(payloadLen)
	b[1] = byte(payloadLen >> 8)
	b[2] = byte(payloadLen >> 16)
	b[3] = seq
}

// AppendPacket appends payload to dst framed as one or more packets starting
// at sequence id seq, and returns the sequence id the next packet of the same
// exchange must use. Payloads of MaxPacketPayload bytes or more are split into
// full chunks followed by a shorter, possibly empty, terminating packet.
func AppendPacket(dst []byte, seq uint8, payload []byte) ([]byte, uint8) {
	for {
		chunk := payload
		if len(chunk) > MaxPacketPayload {
			chunk = chunk[:MaxPacketPayload]
		}
		dst = append(dst, byte(len(chunk)), byte(len(chunk)>>8), byte(len(chunk)>>16), seq)
		dst = append(dst, chunk...)
		seq++
		payload = payload[len(chunk):]
		if len(chunk) < MaxPacketPayload {
			return dst, seq
		}
	}
}

// FramedLen is the number of wire bytes a logical payload of n bytes takes
// once framed by AppendPacket: one header per MaxPacketPayload-byte chunk and
// one for the final, shorter (possibly empty) packet. A writer that reserves
// output space first (conn.Reserve) sizes it with this, so that no payload of
// 16 MiB or more can be written behind a single header whose 3-byte length
// dropped its high bits.
func FramedLen(n int) int { return n + HeaderSize*(n/MaxPacketPayload+1) }

// AppendHeader reserves a header at the end of dst for a payload the caller
// appends afterwards, and returns the offset to hand to FinishPacket. This
// lets builders write a payload straight into the output buffer.
func AppendHeader(dst []byte) (out []byte, headerAt int) {
	return append(dst, 0, 0, 0, 0), len(dst)
}

// FinishPacket fills in the header reserved by AppendHeader at headerAt,
// treating everything after it as the payload, and returns the next sequence
// id. A payload of MaxPacketPayload bytes or more is split in place (rare: it
// moves the data to make room for the extra headers).
func FinishPacket(buf []byte, headerAt int, seq uint8) ([]byte, uint8) {
	n := len(buf) - headerAt - HeaderSize
	if n < MaxPacketPayload {
		PutHeader(buf[headerAt:], n, seq)
		return buf, seq + 1
	}
	chunks := n/MaxPacketPayload + 1 // the last chunk is shorter, possibly empty
	extra := (chunks - 1) * HeaderSize
	oldLen := len(buf)
	buf = append(buf, make([]byte, extra)...)
	// Move chunks from the last to the first so no data is overwritten
	// before it has been moved.
	src := oldLen
	dstEnd := len(buf)
	for i := chunks - 1; i >= 0; i-- {
		start := headerAt + HeaderSize + i*MaxPacketPayload
		size := src - start
		copy(buf[dstEnd-size:dstEnd], buf[start:src])
		PutHeader(buf[dstEnd-size-HeaderSize:], size, seq+uint8(i))
		dstEnd -= size + HeaderSize
		src = start
	}
	return buf, seq + uint8(chunks)
}

// Joiner reassembles logical payloads that were split over several packets.
// The zero value is ready to use with a limit of DefaultMaxPayload; set
// MaxPayload to bound memory. A Joiner reuses its internal buffer, so a
// returned payload is valid only until the next call.
type Joiner struct {
	// MaxPayload bounds the reassembled payload; <= 0 means DefaultMaxPayload.
	MaxPayload int
	buf        []byte
}

// Next returns the next complete logical payload at the start of in. When the
// payload fits in one packet it aliases in and nothing is copied; otherwise
// the chunks are copied into the Joiner's buffer. size is the number of bytes
// of in that were consumed; ok == false with a nil error means more input is
// needed. lastSeq is the sequence id of the final packet. Sequence ids of the
// chunks must be consecutive. A payload over MaxPayload is an error as soon
// as the header that takes it over is visible, so a caller that buffers
// until Next succeeds never holds more than MaxPayload plus the headers.
func (j *Joiner) Next(in []byte) (payload []byte, lastSeq uint8, size int, ok bool, err error) {
	limit := j.MaxPayload
	if limit <= 0 {
		limit = DefaultMaxPayload
	}
	n, _, ok := PeekHeader(in)
	if !ok {
		return nil, 0, 0, false, nil
	}
	if n < MaxPacketPayload {
		// Checked before the payload arrives: a header announcing
		// 16 MiB must not make the caller buffer 16 MiB first.
		if n > limit {
			return nil, 0, 0, false, ErrPacketTooLarge
		}
		first, ok, _ := ReadPacket(in, 0)
		if !ok {
			return nil, 0, 0, false, nil
		}
		return first.Payload, first.Seq, first.Size, true, nil
	}
	// Walk the headers first so nothing is copied until the whole logical
	// payload is present and known to be within the limit.
	total, off, seq := 0, 0, uint8(0)
	for {
		n, s, ok := PeekHeader(in[off:])
		if !ok {
			return nil, 0, 0, false, nil
		}
		if off > 0 && s != seq+1 {
			return nil, 0, 0, false, fmt.Errorf("%w: continuation packet has sequence id %d, want %d", ErrMalformed, s, seq+1)
		}
		seq = s
		total += n
		if total > limit {
			return nil, 0, 0, false, ErrPacketTooLarge
		}
		if len(in) < off+HeaderSize+n {
			return nil, 0, 0, false, nil
		}
		off += HeaderSize + n
		if n < MaxPacketPayload {
			break
		}
	}
	j.buf = j.buf[:0]
	for pos := 0; pos < off; {
		n, _, _ := PeekHeader(in[pos:])
		j.buf = append(j.buf, in[pos+HeaderSize:pos+HeaderSize+n]...)
		pos += HeaderSize + n
	}
	return j.buf, seq, off, true, nil
}
