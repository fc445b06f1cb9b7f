package conn

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/scalestack/scalestack/buffer"
	"github.com/scalestack/scalestack/reactor"
)

// TLS runs connections over TLS with the standard crypto/tls, unmodified:
// accepted connections as the server, dialled ones as the client. One value
// serves any number of connections on any loops. See the package
// documentation for how the handshake and the record layer are placed.
type TLS struct {
	// Config returns the configuration for the next handshake; it is
	// called on the connection's loop when the connection opens, so a
	// reloaded certificate applies to new connections only. A server's
	// configuration needs a certificate (see TLSCerts); a client's needs
	// ServerName or InsecureSkipVerify.
	Config func() *tls.Config
	// HandshakeTimeout bounds a handshake from the moment the connection
	// is established, time spent waiting for a handshake goroutine
	// included (default 10 s). A connection still handshaking then is
	// closed with ErrTLSHandshakeTimeout.
	HandshakeTimeout time.Duration
	// Pool runs the handshakes (nil: a process-wide pool with the default
	// limits).
	Pool *HandshakePool
}

// DefaultHandshakeTimeout is TLS.HandshakeTimeout's default.
const DefaultHandshakeTimeout = 10 * time.Second

// Errors reported to OnClose of a TLS connection whose handshake did not
// finish.
var (
	ErrTLSHandshakeTimeout = errors.New("conn: TLS handshake timed out")
	ErrTLSHandshakeBusy    = errors.New("conn: TLS handshake queue full")
)

// errWouldBlock is what the record-layer transport returns when it has no
// more received bytes: crypto/tls keeps a partial record and returns the
// error to Read's caller without recording it (see the package doc).
var errWouldBlock net.Error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "conn: no TLS input buffered" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

// tlsMaxPlaintext is the largest plaintext of one TLS record.
const tlsMaxPlaintext = 16 << 10

// tlsState is a connection's TLS: the crypto/tls connection and the
// in-memory transport it runs over (tlsState is that net.Conn). Until the
// handshake finishes, the transport is the handshake pipe (hs), shared with
// one handshake goroutine; afterwards everything here is the loop's alone.
type tlsState struct {
	c      *Conn
	cfg    *TLS
	tc     *tls.Conn
	server bool

	// Written by the loop only once the handshake goroutine is done with
	// the tls.Conn (it posted its result), so the goroutine's reads of
	// them never race with the writes.
	hs     *handshake
	onLoop bool

	// Loop only.
	hold    bool // receiving stays off: queued for a goroutine, or pipe full
	started bool
	idle    bool // a server's handshake not yet submitted: no byte came
	timer   reactor.Timer
	src     []byte      // received bytes lent to crypto/tls during feed
	srcEOF  bool        // the peer ended the stream: reads report io.EOF
	raw     *buffer.Buf // records crypto/tls produced, not yet being sent
	goodbye bool        // close_notify queued

	// A plain connection upgraded by StartTLS (loop only): the handler is
	// open already and learns the handshake's end from done, not OnOpen.
	upgraded   bool
	done       func(err error)
	adoptInput bool // StartTLS ran inside OnData: take what it leaves
}

func newTLSState(c *Conn, cfg *TLS, server bool) *tlsState {
	s := &tlsState{c: c, cfg: cfg, server: server}
	s.timer.Func = tlsHandshakeTimedOut
	s.timer.Arg = s
	return s
}

// start begins the handshake once the socket is established (open runs it
// instead of the handler's OnOpen, which follows the handshake).
func (s *tlsState) start() {
	c := s.c
	cfg := s.cfg.Config()
	if cfg == nil {
		c.fail(fmt.Errorf("conn %s: TLS.Config returned nil", c.peer))
		return
	}
	if s.server {
		s.tc = tls.Server(s, cfg)
	} else {
		s.tc = tls.Client(s, cfg)
	}
	timeout := s.cfg.HandshakeTimeout
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	pool := s.cfg.Pool
	if pool == nil {
		pool = defaultHandshakePool()
	}
	s.hs = newHandshake(s, pool, time.Now().Add(timeout))
	// Loop.Now is when the iteration began, possibly well before this
	// connection (a long batch of accepts): measure from now.
	c.loop.Schedule(&s.timer, timeout+time.Since(c.loop.Now()))
	if s.server {
		// A server's handshake starts with the client's first bytes: until
		// they come it takes no goroutine (a client that connects and says
		// nothing costs only its connection until the timeout), and the
		// goroutine it then gets finds the ClientHello waiting instead of
		// parking for it at once.
		s.idle = true
		return
	}
	s.submit()
}

// submit hands the handshake to the pool.
func (s *tlsState) submit() {
	running, ok := s.hs.pool.submit(s.hs)
	if !ok {
		s.c.fail(fmt.Errorf("conn %s: %w", s.c.peer, ErrTLSHandshakeBusy))
		return
	}
	// A queued handshake reads nothing until a goroutine takes it: what a
	// client sends meanwhile waits in the kernel, not in our memory.
	s.hold = !running
	s.started = running
}

func tlsHandshakeTimedOut(arg any) {
	s := arg.(*tlsState)
	if !s.onLoop && s.c.state != stateClosed {
		s.hs.pool.Stats.TimedOut.Add(1)
		s.c.fail(fmt.Errorf("conn %s: %w", s.c.peer, ErrTLSHandshakeTimeout))
	}
}

// handshakeStarted runs on the loop when a goroutine took the queued
// handshake: receiving may begin.
func (s *tlsState) handshakeStarted() {
	if s.onLoop || s.c.state == stateClosed {
		return
	}
	s.started = true
	s.resumeHandshakeInput()
}

// resumeHandshakeInput turns receiving back on once the handshake goroutine
// has room for more input.
func (s *tlsState) resumeHandshakeInput() {
	if s.onLoop || s.c.state == stateClosed || !s.started {
		return
	}
	if s.hold {
		s.hold = false
		s.c.updateRecv()
	}
}

// handshakeOutput queues a flight the handshake goroutine produced.
func (s *tlsState) handshakeOutput(b *buffer.Buf) {
	if s.c.state == stateClosed {
		b.Release()
		return
	}
	if s.raw == nil || len(s.raw.B) == 0 {
		if s.raw != nil {
			s.raw.Release()
		}
		s.raw = b
	} else {
		s.raw = buffer.Append(s.raw, b.B)
		b.Release()
	}
	s.c.scheduleFlush()
}

// handshakeDone runs on the loop after the handshake goroutine finished
// with the tls.Conn: from here on the connection's loop does all of its
// record work.
func (s *tlsState) handshakeDone(err error) {
	c := s.c
	if c.state != stateOpen {
		// Closed, or closing (Close was called on a connection still
		// handshaking): the handler was never opened and will not be.
		return
	}
	c.loop.Cancel(&s.timer)
	if err != nil {
		c.fail(fmt.Errorf("conn %s: TLS handshake: %w", c.peer, err))
		return
	}
	rest, eof := s.hs.takeRest()
	s.onLoop = true
	s.hs = nil
	s.hold = false
	if s.upgraded {
		s.finishStart(nil)
	} else {
		c.handler.OnOpen(c)
	}
	if c.state != stateOpen {
		return
	}
	c.updateRecv()
	if c.out != nil && len(c.out.B) > 0 || c.wantShutWr {
		// Plaintext an upgraded connection's handler wrote while the
		// handshake ran, or a half-close it asked for, waited for it.
		c.scheduleFlush()
	}
	// Bytes that came with or after the peer's last handshake flight:
	// some may already sit in crypto/tls's own buffer, so feed even when
	// rest is empty.
	s.feed(rest)
	if eof && c.state == stateOpen {
		s.peerEnded()
	}
}

// recv takes bytes from the socket.
func (s *tlsState) recv(b []byte) {
	if !s.onLoop {
		full := s.hs.push(b)
		if s.idle {
			s.idle = false
			if s.submit(); s.hold || s.c.state != stateOpen {
				s.c.updateRecv() // queued: stop receiving
				return
			}
		}
		if full && !s.hold {
			s.hold = true
			s.c.updateRecv()
		}
		return
	}
	s.feed(b)
}

// feed lends b to crypto/tls and delivers what it decrypts. Each Read
// decrypts at most one record, and crypto/tls pulls everything the
// transport offers into its own buffer before it reports errWouldBlock, so
// b is never referenced after feed returns.
func (s *tlsState) feed(b []byte) {
	c := s.c
	s.src = b
	defer func() { s.src = nil }()
	for c.state == stateOpen {
		plain := buffer.Get(4 * tlsMaxPlaintext)
		var err error
		for cap(plain.B)-len(plain.B) >= tlsMaxPlaintext {
			var n int
			n, err = s.tc.Read(plain.B[len(plain.B):cap(plain.B)])
			plain.B = plain.B[:len(plain.B)+n]
			if err != nil {
				break
			}
		}
		if len(plain.B) > 0 {
			c.deliver(plain.B)
		}
		plain.Release()
		switch {
		case err == nil:
			continue // the buffer filled up; there may be more
		case err == errWouldBlock:
			return
		case errors.Is(err, io.EOF):
			// close_notify: the peer finished sending. Stop receiving
			// and report it like a half-close.
			if c.state == stateOpen && !c.eof {
				c.eof = true
				_ = c.drv.SetRecv(c.handle, false)
				c.peerEOF()
			}
			return
		default:
			if c.state != stateClosed {
				c.fail(fmt.Errorf("conn %s: TLS: %w", c.peer, err))
			}
			return
		}
	}
}

// peerEnded handles the end of the socket's stream after the handshake:
// crypto/tls says whether it came at a record boundary.
func (s *tlsState) peerEnded() {
	c := s.c
	s.srcEOF = true
	s.feed(nil)
	if c.state == stateClosed || c.eof {
		return // failed on a truncated record, or close_notify came first
	}
	c.eof = true
	c.peerEOF()
}

// peerStreamEnded reports an orderly end of the socket's stream.
func (s *tlsState) peerStreamEnded() {
	if !s.onLoop {
		s.c.eof = true
		s.handshakeInputEnded()
		return
	}
	s.peerEnded()
}

// handshakeInputEnded passes the peer's end of stream to the handshake,
// whose goroutine then reads io.EOF and fails; a server's handshake that
// never got a byte fails here, without a goroutine.
func (s *tlsState) handshakeInputEnded() {
	if s.idle {
		s.idle = false
		s.hs.pool.Stats.Failed.Add(1)
		s.c.fail(fmt.Errorf("conn %s: TLS handshake: %w", s.c.peer, io.EOF))
		return
	}
	s.hs.end()
}

// output returns what is ready for the socket as one buffer: records
// crypto/tls produced on its own (handshake flights, alerts, key updates),
// then plain, the handler's output, encrypted now. The caller passes plain
// only once the handshake has finished; it is consumed.
func (s *tlsState) output(plain *buffer.Buf) (*buffer.Buf, error) {
	var err error
	if plain != nil {
		if n := len(plain.B); n > 0 {
			// Room for the records' framing and tags, so a 1 MiB write
			// does not regrow the buffer record by record.
			s.raw = buffer.Grow(s.raw, n+(n/tlsMaxPlaintext+1)*64)
			_, err = s.tc.Write(plain.B)
		}
		plain.Release()
	}
	next := s.raw
	s.raw = nil
	if next != nil && len(next.B) == 0 {
		next.Release()
		next = nil
	}
	return next, err
}

// sayGoodbye queues close_notify once, before the connection shuts its
// writing side or closes; it reports whether it queued anything.
func (s *tlsState) sayGoodbye() bool {
	if s.goodbye || !s.onLoop {
		return false
	}
	s.goodbye = true
	_ = s.tc.CloseWrite() // the alert lands in raw through Write
	return s.raw != nil && len(s.raw.B) > 0
}

func (s *tlsState) buffered() int {
	if s.raw == nil {
		return 0
	}
	return len(s.raw.B)
}

// teardown releases what the loop holds and stops the handshake goroutine,
// if one is working on this connection, at its next read.
func (s *tlsState) teardown() {
	s.c.loop.Cancel(&s.timer)
	if !s.onLoop && s.hs != nil {
		s.hs.cancel()
	}
	if s.raw != nil {
		s.raw.Release()
		s.raw = nil
	}
}

// net.Conn, for crypto/tls. Before the handshake finished these run on the
// handshake goroutine and go through the pipe; afterwards on the loop.

func (s *tlsState) Read(p []byte) (int, error) {
	if !s.onLoop {
		return s.hs.read(p)
	}
	if len(s.src) == 0 {
		if s.srcEOF {
			return 0, io.EOF
		}
		return 0, errWouldBlock
	}
	n := copy(p, s.src)
	s.src = s.src[n:]
	return n, nil
}

func (s *tlsState) Write(p []byte) (int, error) {
	if !s.onLoop {
		return s.hs.write(p)
	}
	if s.c.state == stateClosed {
		return len(p), nil
	}
	s.raw = buffer.Append(s.raw, p)
	s.c.scheduleFlush()
	return len(p), nil
}

// Close is never what ends the socket: the Conn does that.
func (s *tlsState) Close() error                       { return nil }
func (s *tlsState) LocalAddr() net.Addr                { return tlsAddr{s.c.network, ""} }
func (s *tlsState) RemoteAddr() net.Addr               { return tlsAddr{s.c.network, s.c.peer} }
func (s *tlsState) SetDeadline(t time.Time) error      { return nil }
func (s *tlsState) SetReadDeadline(t time.Time) error  { return nil }
func (s *tlsState) SetWriteDeadline(t time.Time) error { return nil }

type tlsAddr struct{ network, addr string }

func (a tlsAddr) Network() string { return a.network }
func (a tlsAddr) String() string  { return a.addr }

// TLSState returns the connection's negotiated TLS parameters (version,
// cipher suite, ALPN protocol, SNI server name, peer certificates); ok is
// false for a plain connection or before the handshake finished (before
// OnOpen, or before StartTLS's done). Loop goroutine only.
func (c *Conn) TLSState() (st tls.ConnectionState, ok bool) {
	if c.tls == nil || !c.tls.onLoop {
		return st, false
	}
	return c.tls.tc.ConnectionState(), true
}
