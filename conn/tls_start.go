package conn

import (
	"errors"
	"fmt"
)

// Errors StartTLSServer and StartTLSClient return when they cannot begin;
// done is not called then.
var (
	ErrTLSActive    = errors.New("conn: the connection already runs TLS")
	ErrTLSNotOpen   = errors.New("conn: StartTLS on a connection that is not open, or is closing or half-closed")
	errTLSNilConfig = errors.New("conn: StartTLS needs a *TLS with a Config")
)

// errClosedDuringHandshake is what a StartTLS done callback gets when the
// connection closed in an orderly way (Close) before its handshake ended.
var errClosedDuringHandshake = fmt.Errorf("%w during the TLS handshake", ErrAborted)

// StartTLSServer upgrades an open plain connection to TLS in place, as the
// server: the protocol's own upgrade request (MySQL's SSLRequest, SMTP's or
// IMAP's STARTTLS) has been read, and the peer's ClientHello comes next on
// the same socket. StartTLSClient is the same as the client, for a
// connection the handler dialled: it sends the ClientHello.
//
// Called from OnData, the bytes that OnData does not consume are the
// handshake's: a client that sent its ClientHello right behind its
// upgrade request loses nothing. Called from elsewhere, the input not yet
// consumed (normally none) is the handshake's. Output written before the
// call goes out in the clear, ahead of the handshake; output written after
// it is plaintext, encrypted once the handshake has finished (and dropped
// if the connection is closed first).
//
// The handshake runs as for Options.TLS, on t.Pool within
// t.HandshakeTimeout (counted from this call). done, when not nil, is
// called once, on the loop: with nil when the handshake finished, before
// any decrypted input reaches OnData (TLSState is available from then on);
// or with the error when it failed, timed out or found the pool's queue
// full, or when the connection closed first for any reason (its own Close
// included), and then OnClose follows with the connection closed. PauseRead
// holds the handshake too: it reads nothing while reading is paused, and
// so does output over the high-water mark written while it runs. An
// upgraded connection, like any TLS one, cannot be detached to another
// loop.
//
// It returns an error, and changes nothing, for a connection that is not
// open, is closing or half-closed, or already runs TLS. Loop goroutine
// only.
func (c *Conn) StartTLSServer(t *TLS, done func(err error)) error {
	return c.startTLS(t, true, done)
}

// StartTLSClient is StartTLSServer for the client's side of the handshake:
// t.Config's configuration needs ServerName or InsecureSkipVerify, as for a
// dialled TLS connection.
func (c *Conn) StartTLSClient(t *TLS, done func(err error)) error {
	return c.startTLS(t, false, done)
}

func (c *Conn) startTLS(t *TLS, server bool, done func(err error)) error {
	if t == nil || t.Config == nil {
		return errTLSNilConfig
	}
	if c.tls != nil {
		return fmt.Errorf("conn %s: %w", c.peer, ErrTLSActive)
	}
	if c.state != stateOpen || c.wantShutWr {
		return fmt.Errorf("conn %s: %w", c.peer, ErrTLSNotOpen)
	}
	s := newTLSState(c, t, server)
	s.upgraded, s.done = true, done
	c.tls = s
	// What the handler wrote so far belongs to the plain protocol: it goes
	// out as it is, before the first handshake flight.
	if c.out != nil {
		if len(c.out.B) > 0 {
			s.raw = c.out
		} else {
			c.out.Release()
		}
		c.out = nil
	}
	s.start()
	if c.state != stateOpen {
		return nil // failed at once (queue full); done follows from Flush
	}
	if c.inRecv {
		// OnData is running: what it leaves unconsumed is known only
		// once it returns (see takeUnconsumed).
		s.adoptInput = true
	} else {
		var rest []byte
		if c.in != nil {
			rest = c.in.B
		}
		s.adopt(rest)
		if c.in != nil {
			c.in.Release()
			c.in = nil
		}
		c.chargeInput()
	}
	c.updateRecv()
	return nil
}

// takeUnconsumed runs in deliver right after OnData returned: when OnData
// called StartTLS, the bytes it did not consume go to the handshake. It
// reports whether it took them.
func (c *Conn) takeUnconsumed(rest []byte) bool {
	if c.tls == nil || !c.tls.adoptInput {
		return false
	}
	c.tls.adoptInput = false
	if c.state == stateOpen {
		c.tls.adopt(rest)
	}
	return true
}

// adopt hands bytes received before the switch to TLS to the handshake
// (copied), and the peer's end of stream if it came already.
func (s *tlsState) adopt(rest []byte) {
	if len(rest) > 0 {
		s.recv(rest)
	}
	if s.c.eof && s.c.state == stateOpen {
		s.handshakeInputEnded()
	}
}

// finishStart tells the handler of an upgraded connection how its handshake
// ended, once: from handshakeDone with nil, or from Flush, before OnClose,
// with why the connection closed first.
func (s *tlsState) finishStart(err error) {
	done := s.done
	s.done = nil
	if done == nil {
		return
	}
	if err == nil && !s.onLoop {
		err = errClosedDuringHandshake
	}
	done(err)
}
