package loadgen

import (
	"bytes"
	"errors"
	"fmt"
)

// errCorrupt marks an answer that differs from what the server must send
// (an echo unlike the message sent, a reply unlike Exchange.Reply): the
// server is wrong, so the run must fail rather than count it.
var errCorrupt = errors.New("loadgen: wrong answer from the server")

// stream generates the messages of one connection and checks the bytes
// that come back against them.
type stream interface {
	// fill writes the next message into dst, exactly one message long.
	fill(dst []byte)
	// check verifies the next bytes received and returns how many
	// messages they completed.
	check(got []byte) (int, error)
}

// newStream returns the stream a connection of cfg (already checked) runs.
func newStream(cfg *Config) stream {
	if cfg.Exchange != nil {
		return &exchangeStream{request: cfg.Exchange.Request, reply: cfg.Exchange.Reply}
	}
	s := &echoStream{}
	s.init(cfg.Size)
	return s
}

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
	return fmt.Errorf("%w: echo differs from the message sent, in message %d, within echoed bytes %d..%d", errCorrupt, s.recvSeq, s.recvPos, s.recvPos+uint64(len(s.pattern)))
}

// exchangeStream sends Exchange.Request again and again and checks that
// the bytes coming back are Exchange.Reply as many times, byte for byte.
type exchangeStream struct {
	request, reply []byte
	recvOff        int    // offset of the next byte within the reply
	replies        uint64 // replies checked so far, for error messages
}

func (s *exchangeStream) fill(dst []byte) { copy(dst, s.request) }

func (s *exchangeStream) check(got []byte) (int, error) {
	done := 0
	for len(got) > 0 {
		n := min(len(got), len(s.reply)-s.recvOff)
		if !bytes.Equal(got[:n], s.reply[s.recvOff:s.recvOff+n]) {
			return done, fmt.Errorf("%w: reply %d differs from the expected %d-byte reply within its bytes %d..%d",
				errCorrupt, s.replies, len(s.reply), s.recvOff, s.recvOff+n)
		}
		got = got[n:]
		s.recvOff += n
		if s.recvOff == len(s.reply) {
			s.recvOff = 0
			s.replies++
			done++
		}
	}
	return done, nil
}
