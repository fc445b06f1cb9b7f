package loadgen

import (
	"bytes"
	"errors"
	"fmt"
)

// errCorrupt marks an echo that differs from what was sent: the server is
// wrong, so the run must fail rather than count it.
var errCorrupt = errors.New("loadgen: echo differs from the message sent")

// seqBytes is how many leading bytes of each message carry its sequence
// number on the connection (little-endian), so that an echo that drops,
// repeats or reorders whole messages is caught as well as a changed byte.
const seqBytes = 8

// echoStream generates the messages of one connection and checks the byte
// stream echoed back against them. Message k is a fixed letter pattern
// whose first seqBytes bytes (when the message is at least twice that
// long) are replaced by k.
type echoStream struct {
	pattern []byte
	seqLen  int
	sendSeq uint64 // next message to fill
	recvSeq uint64 // message the next echoed byte belongs to
	recvOff int    // offset of the next echoed byte within it
	recvPos uint64 // echoed bytes checked so far, for error messages
}

func (s *echoStream) init(size int) {
	s.pattern = make([]byte, size)
	for i := range s.pattern {
		s.pattern[i] = byte('a' + i%26)
	}
	if size >= 2*seqBytes {
		s.seqLen = seqBytes
	}
}

// fill writes the next message into dst, which is exactly one message long.
func (s *echoStream) fill(dst []byte) {
	copy(dst, s.pattern)
	for i := 0; i < s.seqLen; i++ {
		dst[i] = byte(s.sendSeq >> (8 * i))
	}
	s.sendSeq++
}

// check verifies the next echoed bytes and returns how many messages they
// completed.
func (s *echoStream) check(got []byte) (int, error) {
	done := 0
	size := len(s.pattern)
	for len(got) > 0 {
		off := s.recvOff
		n := min(len(got), size-off)
		i := 0
		for ; off+i < s.seqLen && i < n; i++ {
			if got[i] != byte(s.recvSeq>>(8*(off+i))) {
				return done, s.corrupt()
			}
		}
		if !bytes.Equal(got[i:n], s.pattern[off+i:off+n]) {
			return done, s.corrupt()
		}
		got = got[n:]
		s.recvPos += uint64(n)
		s.recvOff += n
		if s.recvOff == size {
			s.recvOff = 0
			s.recvSeq++
			done++
		}
	}
	return done, nil
}

func (s *echoStream) corrupt() error {
	return fmt.Errorf("%w: in message %d, within echoed bytes %d..%d", errCorrupt, s.recvSeq, s.recvPos, s.recvPos+uint64(len(s.pattern)))
}
