package conn

import (
	"errors"
	"fmt"
	"time"

	"github.com/scalestack/scalestack/buffer"
	"github.com/scalestack/scalestack/reactor"
	"golang.org/x/sys/unix"
)

// Handler receives a connection's events on its loop.
type Handler interface {
	// OnOpen runs once the connection is established (accepted, or the
	// outbound connect completed).
	OnOpen(c *Conn)
	// OnData is given every received byte not yet consumed and returns how
	// many it consumed; the rest is presented again, followed by new data.
	// data is valid only during the call.
	OnData(c *Conn, data []byte) (consumed int)
	// OnClose runs exactly once when the connection is gone; err is nil
	// after an orderly close. c must not be used after it returns.
	OnClose(c *Conn, err error)
}

// EOFHandler is implemented by handlers that want the peer's half-close.
// Without it, end of input closes the connection once output is flushed.
type EOFHandler interface {
	OnEOF(c *Conn)
}

// WatermarkHandler is implemented by handlers that throttle a peer rather
// than the connection itself (a proxy pauses the other side). Without it the
// connection pauses its own reading while its output is over the high-water
// mark.
type WatermarkHandler interface {
	OnHighWater(c *Conn)
	OnLowWater(c *Conn)
}

// Options tune a connection; zero values take the defaults.
type Options struct {
	// HighWater is the queued-output size that triggers backpressure
	// (default 1 MiB); LowWater releases it (default HighWater/4).
	HighWater int
	LowWater  int
	// MaxInput bounds unconsumed input (default 64 MiB): a handler that
	// never consumes cannot make the buffer grow without limit.
	MaxInput int
	// NoDelay sets TCP_NODELAY on TCP connections (default true; set
	// Delay to keep Nagle).
	Delay bool
	// TLS, when set, runs the connection over TLS: as the server for
	// accepted connections, as the client for dialled ones. OnOpen then
	// follows the handshake; a failed handshake goes straight to OnClose.
	TLS *TLS
}

func (o Options) withDefaults() Options {
	if o.HighWater <= 0 {
		o.HighWater = 1 << 20
	}
	if o.LowWater <= 0 || o.LowWater > o.HighWater {
		o.LowWater = o.HighWater / 4
	}
	if o.MaxInput <= 0 {
		o.MaxInput = 64 << 20
	}
	return o
}

// Errors reported to OnClose.
var (
	ErrInputTooLarge  = errors.New("conn: unconsumed input over the limit")
	ErrConnectTimeout = errors.New("conn: connect timed out")
	ErrAborted        = errors.New("conn: aborted")
)

type connState uint8

const (
	stateConnecting connState = iota
	stateOpen
	stateClosing // graceful close: flushing output
	stateClosed
)

// Conn is a non-blocking stream connection owned by one loop.
type Conn struct {
	loop    *reactor.Loop
	drv     reactor.Driver
	handle  reactor.Handle
	fd      int
	handler Handler
	opts    Options

	in      *buffer.Buf // unconsumed input; nil when there is none
	out     *buffer.Buf // output written since the last send started
	sending *buffer.Buf // output handed to the driver
	sentOff int
	// sentTotal counts the output bytes the kernel has accepted, so an
	// owner can tell a peer that drains slowly from one that never reads.
	sentTotal uint64

	state        connState
	deferred     bool // queued for Flush at the end of the iteration
	sendInFlight bool // a driver Send is pending (io_uring)
	waitingOut   bool // waiting for OnWritable after a short write
	userPaused   bool
	autoPaused   bool // paused by our own high-water mark
	overHigh     bool
	eof          bool // peer finished sending
	wantShutWr   bool
	shutWrDone   bool
	inRecv       bool // inside OnData, to defer re-entrant closes
	closeErr     error
	notified     bool
	detached     bool // Detach gave the descriptor away; Reattach may take c up again

	counted      *Listener // decremented on close; nil for outbound and refused
	budget       *InputBudget
	charged      int64 // bytes of budget charged for c.in
	trackToken   int
	connectTimer reactor.Timer
	network      string
	peer         string
	tls          *tlsState // nil for a plain connection

	// Context is free for the handler's use.
	Context any
}

// Loop returns the owning loop.
func (c *Conn) Loop() *reactor.Loop { return c.loop }

// Fd returns the socket descriptor (for socket options; never close it).
func (c *Conn) Fd() int { return c.fd }

// RemoteAddr describes the peer ("ip:port" or the socket path).
func (c *Conn) RemoteAddr() string { return c.peer }

// Buffered returns the output bytes not yet accepted by the kernel.
func (c *Conn) Buffered() int {
	n := 0
	if c.out != nil {
		n += len(c.out.B)
	}
	if c.sending != nil {
		n += len(c.sending.B) - c.sentOff
	}
	if c.tls != nil {
		n += c.tls.buffered()
	}
	return n
}

// Sent returns the output bytes the kernel has accepted since the
// connection opened.
func (c *Conn) Sent() uint64 { return c.sentTotal }

// Delivered returns the output bytes the peer has taken: Sent less what
// the kernel still holds for it (SIOCOUTQ: unsent or unacknowledged on
// TCP, unread on a Unix socket). Unlike Sent it moves as soon as a slow
// peer reads a little, not only once the kernel's send buffer has room
// for more (a third of it, which can be a megabyte). It costs a system
// call: for occasional checks, not per write.
func (c *Conn) Delivered() uint64 {
	if c.state == stateClosed {
		return c.sentTotal
	}
	queued, err := unix.IoctlGetInt(c.fd, unix.SIOCOUTQ)
	if err != nil || queued < 0 || uint64(queued) > c.sentTotal {
		return c.sentTotal
	}
	return c.sentTotal - uint64(queued)
}

// OverHighWater reports whether queued output went over the high-water mark
// and has not yet drained to the low-water mark (between OnHighWater and
// OnLowWater).
func (c *Conn) OverHighWater() bool { return c.overHigh }

// Closed reports whether Close or Abort was called or the connection ended.
func (c *Conn) Closed() bool { return c.state >= stateClosing }

func newConn(l *reactor.Loop, fd int, network string, h Handler, opts Options) *Conn {
	c := &Conn{loop: l, drv: l.Driver(), fd: fd, handler: h, opts: opts.withDefaults(), network: network}
	c.connectTimer.Func = connectTimedOut
	c.connectTimer.Arg = c
	return c
}

func (c *Conn) register() error {
	h, err := c.drv.Register(c.fd, c)
	if err != nil {
		return err
	}
	c.handle = h
	c.trackToken = c.loop.Track(c)
	return nil
}

// Write queues p (copied) for sending at the end of this loop iteration.
// Writing to a closing or closed connection is a silent no-op: the close
// already decided the connection's fate.
func (c *Conn) Write(p []byte) {
	if c.state >= stateClosing || c.wantShutWr || len(p) == 0 {
		return
	}
	c.out = buffer.Append(c.out, p)
	c.afterWrite()
}

// WriteBuf hands b to the connection, which releases it when sent; it saves
// a copy when the caller already holds the bytes in a pooled buffer.
func (c *Conn) WriteBuf(b *buffer.Buf) {
	if c.state >= stateClosing || c.wantShutWr || len(b.B) == 0 {
		b.Release()
		return
	}
	if c.out == nil || len(c.out.B) == 0 {
		if c.out != nil {
			c.out.Release()
		}
		c.out = b
	} else {
		c.out = buffer.Append(c.out, b.B)
		b.Release()
	}
	c.afterWrite()
}

// Reserve returns a slice of n writable bytes at the end of the output queue
// for the caller to fill in place (no intermediate copy); the bytes are sent
// with the rest.
func (c *Conn) Reserve(n int) []byte {
	if c.state >= stateClosing || c.wantShutWr {
		return make([]byte, n) // discarded, like Write after close
	}
	c.out = buffer.Grow(c.out, n)
	start := len(c.out.B)
	c.out.B = c.out.B[:start+n]
	c.afterWrite()
	return c.out.B[start : start+n]
}

func (c *Conn) afterWrite() {
	c.scheduleFlush()
	if !c.overHigh && c.Buffered() > c.opts.HighWater {
		c.overHigh = true
		if wh, ok := c.handler.(WatermarkHandler); ok {
			wh.OnHighWater(c)
		} else if !c.autoPaused {
			c.autoPaused = true
			c.updateRecv()
		}
	}
}

func (c *Conn) scheduleFlush() {
	if !c.deferred {
		c.deferred = true
		c.loop.Defer(c)
	}
}

// PauseRead stops delivery of input until ResumeRead.
func (c *Conn) PauseRead() {
	if !c.userPaused {
		c.userPaused = true
		c.updateRecv()
	}
}

// ResumeRead undoes PauseRead.
func (c *Conn) ResumeRead() {
	if c.userPaused {
		c.userPaused = false
		c.updateRecv()
		c.Redeliver() // input held back while paused is presented again
	}
}

// Redeliver presents input the handler left unconsumed again at the end of
// this loop iteration, without waiting for new bytes: a handler that keeps
// reading (so a hang-up is noticed) but leaves input in place while it is
// busy calls it once it can take more. It costs no system call.
func (c *Conn) Redeliver() {
	if c.in != nil && len(c.in.B) > 0 && c.state == stateOpen {
		c.scheduleFlush()
	}
}

func (c *Conn) readingWanted() bool {
	return c.state == stateOpen && !c.userPaused && !c.autoPaused && !c.eof && (c.tls == nil || !c.tls.hold)
}

func (c *Conn) updateRecv() {
	if c.state != stateOpen && c.state != stateClosing {
		return
	}
	if c.eof {
		return
	}
	if err := c.drv.SetRecv(c.handle, c.readingWanted()); err != nil {
		c.fail(fmt.Errorf("conn %s: set receive: %w", c.peer, err))
	}
}

// CloseWrite half-closes: once queued output is sent the peer sees end of
// stream; reading continues.
func (c *Conn) CloseWrite() {
	if c.state >= stateClosing || c.wantShutWr {
		return
	}
	c.wantShutWr = true
	c.scheduleFlush()
}

// Close flushes queued output, then closes. OnClose follows with a nil error
// unless sending fails.
func (c *Conn) Close() {
	if c.state >= stateClosing {
		return
	}
	if c.state == stateConnecting {
		c.fail(ErrAborted)
		return
	}
	c.state = stateClosing
	c.updateRecvOff()
	if c.tls != nil && !c.tls.onLoop && c.out != nil {
		// Plaintext an upgraded connection's handler wrote for after its
		// handshake: closing ends the handshake, so it can never be sent.
		c.out.Release()
		c.out = nil
	}
	c.scheduleFlush()
}

// Abort closes at once, dropping queued output; OnClose gets err (or
// ErrAborted when err is nil).
func (c *Conn) Abort(err error) {
	if err == nil {
		err = ErrAborted
	}
	c.fail(err)
}

// Reset is Abort for a peer that stopped reading: the socket is closed
// with SO_LINGER 0, so what the kernel still holds for the peer (up to the
// send buffer, megabytes) is dropped and the peer gets a reset now, instead
// of the kernel keeping an orphaned socket to push the rest at the peer's
// pace.
func (c *Conn) Reset(err error) {
	if c.state != stateClosed {
		_ = unix.SetsockoptLinger(c.fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	}
	c.Abort(err)
}

// ForceClose implements reactor.Tracked: the engine is stopping.
func (c *Conn) ForceClose() { c.fail(ErrAborted) }

func (c *Conn) updateRecvOff() {
	if !c.eof {
		_ = c.drv.SetRecv(c.handle, false)
	}
}

// fail tears the connection down now and schedules OnClose.
func (c *Conn) fail(err error) {
	if c.state == stateClosed {
		return
	}
	if c.closeErr == nil {
		c.closeErr = err
	}
	c.teardown()
}

func (c *Conn) teardown() {
	c.state = stateClosed
	c.loop.Cancel(&c.connectTimer)
	c.loop.Untrack(c.trackToken)
	if err := c.drv.Close(c.handle); err != nil && c.closeErr == nil {
		c.closeErr = err
	}
	if c.in != nil {
		c.in.Release()
		c.in = nil
	}
	c.releaseBudget()
	if c.out != nil {
		c.out.Release()
		c.out = nil
	}
	if c.sending != nil {
		// The driver may still read it until its completion arrives; let
		// the garbage collector have it instead of the pool.
		if !c.sendInFlight {
			c.sending.Release()
		}
		c.sending = nil
	}
	if c.tls != nil {
		c.tls.teardown()
	}
	c.scheduleFlush() // OnClose runs from Flush, never re-entrantly
}

// Flush implements reactor.Flusher: it sends queued output, runs deferred
// input and state changes, and reports the close.
func (c *Conn) Flush() {
	c.deferred = false
	if c.state == stateClosed {
		if !c.notified {
			c.notified = true
			if c.counted != nil {
				c.counted.open.n.Add(-1)
			}
			err := c.closeErr
			if err == ErrGraceful {
				err = nil
			}
			if c.tls != nil && c.tls.upgraded {
				c.tls.finishStart(err) // StartTLS's done, if still owed
			}
			c.handler.OnClose(c, err)
		}
		return
	}
	if c.state == stateConnecting {
		return
	}
	if c.state == stateOpen && c.in != nil && len(c.in.B) > 0 && c.readingWanted() && !c.inRecv {
		c.deliver(nil)
		if c.state == stateClosed {
			c.scheduleFlush()
			return
		}
	}
	c.send()
	if c.state == stateClosed {
		return
	}
	if c.tls != nil && c.Buffered() == 0 && (c.wantShutWr && !c.shutWrDone || c.state == stateClosing) && c.tls.sayGoodbye() {
		// TLS ends its stream with close_notify before the socket's.
		c.send()
		if c.state == stateClosed {
			return
		}
	}
	if c.Buffered() == 0 {
		// An upgraded connection's half-close waits for its handshake.
		if c.wantShutWr && !c.shutWrDone && (c.tls == nil || c.tls.onLoop) {
			c.shutWrDone = true
			if err := unix.Shutdown(c.fd, unix.SHUT_WR); err != nil {
				c.fail(fmt.Errorf("conn %s: shutdown: %w", c.peer, err))
				return
			}
			if c.eof {
				c.closeErr = ErrGraceful
				c.teardown()
				return
			}
		}
		if c.state == stateClosing {
			c.closeErr = ErrGraceful
			c.teardown()
		}
	}
}

// ErrGraceful marks an orderly close internally; OnClose receives nil.
var ErrGraceful = errors.New("conn: closed")

func (c *Conn) send() {
	for !c.sendInFlight && !c.waitingOut {
		if c.sending == nil && !c.takeOutput() {
			return
		}
		n, pending, err := c.drv.Send(c.handle, c.sending.B[c.sentOff:])
		if err != nil {
			c.fail(fmt.Errorf("conn %s: send: %w", c.peer, err))
			return
		}
		if pending {
			c.sendInFlight = true
			return
		}
		if !c.advance(n) {
			c.waitingOut = true
			if err := c.drv.WaitWritable(c.handle); err != nil {
				c.fail(fmt.Errorf("conn %s: wait writable: %w", c.peer, err))
			}
			return
		}
	}
}

// takeOutput makes the queued output the buffer being sent; it reports
// whether there was any.
func (c *Conn) takeOutput() bool {
	if c.tls == nil {
		if c.out == nil || len(c.out.B) == 0 {
			return false
		}
		c.sending, c.out, c.sentOff = c.out, nil, 0
		return true
	}
	var plain *buffer.Buf
	if c.tls.onLoop {
		plain, c.out = c.out, nil
	}
	next, err := c.tls.output(plain)
	if err != nil {
		if next != nil {
			next.Release()
		}
		c.fail(fmt.Errorf("conn %s: TLS write: %w", c.peer, err))
		return false
	}
	if next == nil {
		return false
	}
	c.sending, c.sentOff = next, 0
	return true
}

// advance accounts n sent bytes and reports whether the in-flight buffer is
// finished.
func (c *Conn) advance(n int) bool {
	c.sentOff += n
	c.sentTotal += uint64(n)
	done := c.sentOff >= len(c.sending.B)
	if done {
		c.sending.Release()
		c.sending, c.sentOff = nil, 0
	}
	if c.overHigh && c.Buffered() <= c.opts.LowWater {
		c.overHigh = false
		if wh, ok := c.handler.(WatermarkHandler); ok {
			wh.OnLowWater(c)
		} else if c.autoPaused {
			c.autoPaused = false
			c.updateRecv()
			if c.in != nil && len(c.in.B) > 0 {
				c.scheduleFlush()
			}
		}
	}
	return done
}

// OnRecv implements reactor.IOHandler.
func (c *Conn) OnRecv(b []byte) {
	if c.state != stateOpen && c.state != stateClosing {
		return
	}
	if c.state == stateClosing {
		return // input after Close is discarded
	}
	if c.tls != nil {
		c.tls.recv(b)
		return
	}
	c.deliver(b)
}

// deliver presents buffered input plus b to the handler.
func (c *Conn) deliver(b []byte) {
	if c.in == nil && len(b) > 0 && c.readingWanted() {
		// Fast path: nothing buffered, hand the driver's bytes over as is.
		c.inRecv = true
		n := c.handler.OnData(c, b)
		c.inRecv = false
		if c.takeUnconsumed(b[min(n, len(b)):]) {
			return
		}
		if n < len(b) && c.state == stateOpen {
			c.in = buffer.Append(nil, b[n:])
		}
		c.checkInput()
		c.chargeInput()
		return
	}
	if len(b) > 0 {
		c.in = buffer.Append(c.in, b)
	}
	if c.in == nil || !c.readingWanted() {
		c.checkInput()
		c.chargeInput()
		return
	}
	c.inRecv = true
	n := c.handler.OnData(c, c.in.B)
	c.inRecv = false
	if c.in == nil { // closed during the callback
		return
	}
	if c.takeUnconsumed(c.in.B[min(n, len(c.in.B)):]) {
		c.in.Release()
		c.in = nil
		c.chargeInput()
		return
	}
	if n >= len(c.in.B) {
		c.in.Release()
		c.in = nil
		c.chargeInput()
		return
	}
	if n > 0 {
		// Nothing consumed (a large packet still arriving) must not cost a
		// copy of everything buffered on every read.
		rest := copy(c.in.B, c.in.B[n:])
		c.in.B = c.in.B[:rest]
	}
	c.checkInput()
	c.chargeInput()
}

func (c *Conn) checkInput() {
	if c.in != nil && len(c.in.B) > c.opts.MaxInput && c.state != stateClosed {
		c.fail(fmt.Errorf("conn %s: %w (%d bytes)", c.peer, ErrInputTooLarge, len(c.in.B)))
	}
}

// OnRecvEnd implements reactor.IOHandler.
func (c *Conn) OnRecvEnd(err error) {
	if c.state == stateClosed {
		return
	}
	if c.state == stateConnecting {
		// Only a failed connect ends the stream before it opened.
		if err == nil {
			err = unix.ENOTCONN
		}
		c.fail(fmt.Errorf("conn: connect %s: %w", c.peer, err))
		return
	}
	if err != nil {
		c.fail(fmt.Errorf("conn %s: receive: %w", c.peer, err))
		return
	}
	if c.tls != nil && c.state == stateOpen {
		// TLS first decides whether the stream ended cleanly.
		c.tls.peerStreamEnded()
		return
	}
	c.eof = true
	c.peerEOF()
}

// peerEOF tells the handler that the peer finished sending (c.eof is set).
func (c *Conn) peerEOF() {
	if c.state == stateClosing {
		return
	}
	if eh, ok := c.handler.(EOFHandler); ok {
		eh.OnEOF(c)
		return
	}
	c.Close()
}

// OnWritable implements reactor.IOHandler.
func (c *Conn) OnWritable() {
	if c.state == stateConnecting {
		c.finishConnect()
		return
	}
	c.waitingOut = false
	c.send()
	if c.state != stateClosed {
		c.scheduleFlush()
	}
}

// OnSent implements reactor.IOHandler.
func (c *Conn) OnSent(n int, err error) {
	c.sendInFlight = false
	if c.state == stateClosed {
		return
	}
	if err != nil {
		c.fail(fmt.Errorf("conn %s: send: %w", c.peer, err))
		return
	}
	if !c.advance(n) {
		// Short completion: send the rest.
		c.scheduleFlush()
		return
	}
	c.scheduleFlush()
}

func (c *Conn) finishConnect() {
	errno, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err == nil && errno != 0 {
		err = unix.Errno(errno)
	}
	if err != nil {
		c.fail(fmt.Errorf("conn: connect %s: %w", c.peer, err))
		return
	}
	if _, perr := unix.Getpeername(c.fd); perr != nil {
		// Writable, no pending error, yet not connected: the connect failed
		// and a receive the driver started at Register (io_uring arms one
		// at once) consumed the socket's error. The driver holds that
		// receive's end; let it through, still connecting, so OnClose gets
		// the real cause. The connect timer still bounds the wait.
		if err := c.drv.SetRecv(c.handle, true); err != nil {
			c.fail(fmt.Errorf("conn: connect %s: %w", c.peer, err))
		}
		return
	}
	c.loop.Cancel(&c.connectTimer)
	c.open()
}

func (c *Conn) open() {
	c.state = stateOpen
	if c.network != "unix" && !c.opts.Delay {
		_ = unix.SetsockoptInt(c.fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	}
	if c.tls != nil {
		// The handler opens once the handshake is done.
		c.tls.start()
		if c.state == stateOpen {
			c.updateRecv()
		}
		return
	}
	c.handler.OnOpen(c)
	if c.state == stateOpen {
		c.updateRecv()
	}
}

func connectTimedOut(arg any) {
	c := arg.(*Conn)
	if c.state != stateConnecting {
		return
	}
	// A loop runs due timers before the I/O of its iteration, so after a
	// stall (an overloaded machine, a long batch) the timer can come due
	// while the completed connect's writable event is still waiting to be
	// dispatched. A connect that did complete is not a timeout.
	if errno, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR); err == nil && errno == 0 {
		if _, err := unix.Getpeername(c.fd); err == nil {
			c.loop.Cancel(&c.connectTimer)
			c.open()
			return
		}
	}
	c.fail(fmt.Errorf("conn: connect %s: %w", c.peer, ErrConnectTimeout))
}

// Dial starts a non-blocking connect from loop l. It returns at once; the
// handler's OnOpen runs when the connection is up, or OnClose with the error
// when it fails or times out. Loop goroutine only.
func Dial(l *reactor.Loop, addr Addr, timeout time.Duration, h Handler, opts Options) (*Conn, error) {
	fd, err := unix.Socket(addr.family(), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("conn: socket for %s: %w", addr, err)
	}
	c := newConn(l, fd, addr.Network, h, opts)
	c.peer = addr.String()
	if opts.TLS != nil {
		c.tls = newTLSState(c, opts.TLS, false)
	}
	err = unix.Connect(fd, addr.sockaddrForCall())
	if err != nil && err != unix.EINPROGRESS && err != unix.EINTR {
		unix.Close(fd)
		return nil, fmt.Errorf("conn: connect %s: %w", addr, err)
	}
	if err := c.register(); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("conn: register %s: %w", addr, err)
	}
	if err := c.drv.SetRecv(c.handle, false); err != nil {
		c.fail(fmt.Errorf("conn: pause %s: %w", addr, err))
		return c, nil
	}
	if timeout > 0 {
		// Loop.Now is when the iteration began, which precedes the loop's
		// wait when Dial runs from an I/O callback: after an idle spell the
		// timer would be due at once. Measure from the Dial instead.
		l.Schedule(&c.connectTimer, timeout+time.Since(l.Now()))
	}
	if err := c.drv.WaitWritable(c.handle); err != nil {
		c.fail(fmt.Errorf("conn: wait for connect %s: %w", addr, err))
	}
	return c, nil
}

// ErrNotQuiet is returned by Detach when the connection still has data in
// flight in either direction.
var ErrNotQuiet = errors.New("conn: connection has data in flight")

// ErrTLSDetach is returned by Detach for a TLS connection, whose record
// state lives in this process's memory, not in the socket.
var ErrTLSDetach = errors.New("conn: a TLS connection cannot be detached")

// Detach takes the connection off its loop and returns its descriptor, for
// Adopt on another loop (a pooled backend moving to where it is needed), or
// for Reattach of c itself there. It succeeds only for an open, quiet
// connection: nothing queued, buffered or being sent. OnClose is not
// called; c must not be used afterwards, but by Reattach. An
// accepted connection leaves its listener's count (and MaxConns budget) here,
// since no OnClose will ever give the slot back.
func (c *Conn) Detach() (int, error) {
	if c.tls != nil {
		return -1, ErrTLSDetach
	}
	if c.state != stateOpen || c.Buffered() > 0 || c.sendInFlight || (c.in != nil && len(c.in.B) > 0) || c.eof {
		return -1, ErrNotQuiet
	}
	fd, err := c.drv.Detach(c.handle)
	if err != nil {
		return -1, fmt.Errorf("conn %s: detach: %w", c.peer, err)
	}
	c.loop.Cancel(&c.connectTimer)
	c.loop.Untrack(c.trackToken)
	if c.in != nil {
		c.in.Release()
		c.in = nil
	}
	c.releaseBudget()
	if c.counted != nil {
		c.counted.open.n.Add(-1)
		c.counted = nil
	}
	c.state = stateClosed
	c.notified = true
	c.detached = true
	return fd, nil
}

// Reattach is Adopt for a connection that Detach took off another loop,
// reusing c instead of allocating another Conn: its descriptor is
// registered on loop l, with the same handler, options, peer and Context,
// and OnOpen runs. Loop goroutine only (l's). c must have been handed to l
// by a Post from the loop that detached it, which publishes at the end of
// that loop's iteration, after its last look at c (a Flush it had queued);
// any other way of handing it over could let the two loops touch c at
// once. The socket's options (TCP_NODELAY) are not set again: they stayed
// with it. On failure the descriptor is closed and OnClose is not called.
func (c *Conn) Reattach(l *reactor.Loop) error {
	if !c.detached {
		return fmt.Errorf("conn %s: reattach: not detached", c.peer)
	}
	*c = Conn{loop: l, drv: l.Driver(), fd: c.fd, handler: c.handler, opts: c.opts,
		network: c.network, peer: c.peer, Context: c.Context}
	c.connectTimer.Func = connectTimedOut
	c.connectTimer.Arg = c
	if err := c.register(); err != nil {
		// Nobody else holds the descriptor: close it rather than leak it.
		_ = unix.Close(c.fd)
		c.state, c.notified = stateClosed, true
		return fmt.Errorf("conn: reattach %s: %w", c.peer, err)
	}
	c.state = stateOpen
	c.handler.OnOpen(c)
	if c.state == stateOpen {
		c.updateRecv()
	}
	return nil
}

// Adopt registers an open socket detached from another loop (or inherited
// from elsewhere) on loop l and runs h.OnOpen. Loop goroutine only.
func Adopt(l *reactor.Loop, fd int, network, peer string, h Handler, opts Options) (*Conn, error) {
	if opts.TLS != nil {
		return nil, fmt.Errorf("conn: adopt %s: Options.TLS is for accepted and dialled connections only", peer)
	}
	c := newConn(l, fd, network, h, opts)
	c.peer = peer
	if err := c.register(); err != nil {
		return nil, fmt.Errorf("conn: adopt %s: %w", peer, err)
	}
	c.open()
	return c, nil
}

// Network returns "tcp" or "unix".
func (c *Conn) Network() string { return c.network }
