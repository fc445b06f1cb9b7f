package conn

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/scalestack/scalestack/reactor"
	"golang.org/x/sys/unix"
)

// UDP lives beside the stream Conn, in this package, because it shares
// what a listener needs (address resolution, one SO_REUSEPORT socket per
// loop, registration and force-close on the loops) but none of a stream's
// machinery: a datagram is whole, has no order to keep across the socket
// and no peer to pause, so a PacketConn has no input buffer, no watermarks
// and no TLS. Its backpressure is the one UDP servers have: what the kernel
// cannot take in is dropped by the kernel, and what the output queue cannot
// take is dropped and counted here.

// UDPConfig describes a UDP listener.
type UDPConfig struct {
	// Addr is host:port as ParseAddr or ResolveAddr("tcp", ...) resolve
	// it; the port is the UDP port. Unix sockets are refused.
	Addr Addr
	// MaxDatagram is the largest datagram delivered (default 65535, every
	// UDP datagram). A larger one is counted in Truncated and dropped, so
	// a handler never sees a datagram cut short.
	MaxDatagram int
	// QueueDatagrams and QueueBytes bound each loop's output queue
	// (defaults 4096 datagrams and 4 MiB); WriteTo beyond either drops the
	// datagram and counts it in QueueDrops.
	QueueDatagrams int
	QueueBytes     int
	// RecvBuffer sets SO_RCVBUF when positive, for bursts larger than the
	// kernel's default socket buffer.
	RecvBuffer int
	// OnDatagram receives every datagram on the loop that owns its socket.
	// data is valid only during the call; reply with pc.WriteTo.
	OnDatagram func(pc *PacketConn, from netip.AddrPort, data []byte)
}

// UDPListener receives datagrams on one SO_REUSEPORT socket per loop: the
// kernel spreads senders over the sockets by a hash of their address.
type UDPListener struct {
	cfg    UDPConfig
	addr   Addr
	parts  []*PacketConn
	mu     sync.Mutex
	closed bool
}

// UDPStats are a listener's datagram counts, summed over its loops.
type UDPStats struct {
	Received   uint64 // delivered to OnDatagram
	Truncated  uint64 // larger than MaxDatagram: dropped on receipt
	Sent       uint64 // accepted by the kernel
	QueueDrops uint64 // WriteTo found the output queue full (or closed)
	SendErrors uint64 // refused by the kernel (EMSGSIZE, unreachable) or an address of the wrong family
	RecvErrors uint64 // receive failures that stopped a loop's socket
}

// PacketConn is one loop's datagram socket. Its methods may only be called
// on that loop, as with Conn.
type PacketConn struct {
	ln       *UDPListener
	loop     *reactor.Loop
	fd       int
	family   int
	handle   reactor.Handle
	token    int
	closed   bool
	deferred bool // a Flush is due at the end of the iteration
	pending  bool // a SendPackets batch is in the driver
	waiting  bool // the socket's send buffer is full: WaitWritable asked

	// The output queue: a ring of datagrams whose bytes are copied into
	// arena, itself used as a ring in queue order; offs[i] is where q[i]'s
	// bytes start. Datagrams leave the queue only when the driver is done
	// with them, so a batch in flight is never overwritten.
	q     []reactor.Packet
	offs  []int
	qHead int
	qLen  int
	arena []byte
	aTail int

	received, truncated, sent, queueDrops, sendErrors, recvErrors atomic.Uint64
}

// ListenUDP binds one socket per loop and starts receiving. Call it from
// outside the loops, after Engine.Start.
func ListenUDP(e *reactor.Engine, cfg UDPConfig) (*UDPListener, error) {
	if cfg.OnDatagram == nil {
		return nil, errors.New("conn: UDPConfig.OnDatagram is nil")
	}
	if cfg.Addr.Network == "unix" || cfg.Addr.sockaddr == nil {
		return nil, fmt.Errorf("conn: UDP needs a host:port address, not %s", cfg.Addr)
	}
	if cfg.MaxDatagram <= 0 {
		cfg.MaxDatagram = 65535
	}
	if cfg.MaxDatagram > 65535 {
		return nil, fmt.Errorf("conn: MaxDatagram %d is larger than any UDP datagram", cfg.MaxDatagram)
	}
	if cfg.QueueDatagrams <= 0 {
		cfg.QueueDatagrams = 4096
	}
	if cfg.QueueBytes <= 0 {
		cfg.QueueBytes = 4 << 20
	}
	ln := &UDPListener{cfg: cfg, addr: cfg.Addr}
	loops := e.Loops()
	reuse := len(loops) > 1
	if reuse {
		if err := checkUDPPortFree(cfg.Addr); err != nil {
			return nil, err
		}
	}
	for _, l := range loops {
		fd, err := udpSocket(ln.addr, reuse, cfg.RecvBuffer)
		if err != nil {
			ln.Close()
			return nil, err
		}
		if sa, err := unix.Getsockname(fd); err == nil {
			// Port 0 becomes the real port, shared by the other loops.
			ln.addr.sockaddr = sa
			ln.addr.Address = sockaddrString(sa)
		}
		pc := &PacketConn{
			ln: ln, loop: l, fd: fd, family: ln.addr.family(),
			q:     make([]reactor.Packet, cfg.QueueDatagrams),
			offs:  make([]int, cfg.QueueDatagrams),
			arena: make([]byte, cfg.QueueBytes),
		}
		var regErr error
		if err := l.Exec(func(l *reactor.Loop) {
			h, err := l.Driver().ListenPacket(fd, pc, cfg.MaxDatagram)
			if err != nil {
				regErr = err
				return
			}
			pc.handle = h
			pc.token = l.Track(pc)
		}); err != nil {
			regErr = err
		}
		if regErr != nil {
			unix.Close(fd)
			ln.Close()
			return nil, fmt.Errorf("conn: listen udp on %s: %w", ln.addr.Address, regErr)
		}
		ln.parts = append(ln.parts, pc)
	}
	return ln, nil
}

// checkUDPPortFree refuses a fixed port that another socket holds, for the
// same reason as checkPortFree: SO_REUSEPORT would share it silently.
func checkUDPPortFree(addr Addr) error {
	if sockaddrPort(addr.sockaddr) == 0 {
		return nil
	}
	fd, err := udpSocket(addr, false, 0)
	if err != nil {
		return err
	}
	unix.Close(fd)
	return nil
}

func udpSocket(addr Addr, reusePort bool, rcvbuf int) (int, error) {
	fd, err := unix.Socket(addr.family(), unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("conn: udp socket for %s: %w", addr.Address, err)
	}
	if reusePort {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("conn: SO_REUSEPORT on udp %s: %w", addr.Address, err)
		}
	}
	if rcvbuf > 0 {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf)
	}
	if err := unix.Bind(fd, addr.sockaddrForCall()); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("conn: bind udp %s: %w", addr.Address, err)
	}
	return fd, nil
}

// Addr returns the bound address (with the real port when 0 was asked).
func (ln *UDPListener) Addr() Addr { return ln.addr }

// Stats sums the loops' counters; safe from any goroutine.
func (ln *UDPListener) Stats() UDPStats {
	var s UDPStats
	for _, pc := range ln.parts {
		s.Received += pc.received.Load()
		s.Truncated += pc.truncated.Load()
		s.Sent += pc.sent.Load()
		s.QueueDrops += pc.queueDrops.Load()
		s.SendErrors += pc.sendErrors.Load()
		s.RecvErrors += pc.recvErrors.Load()
	}
	return s
}

// Close closes every loop's socket; datagrams still queued are dropped
// and counted in QueueDrops. Call it from outside the loops, like
// Listener.Close: it waits for each loop to run the close.
func (ln *UDPListener) Close() error {
	ln.mu.Lock()
	if ln.closed {
		ln.mu.Unlock()
		return nil
	}
	ln.closed = true
	ln.mu.Unlock()
	for _, pc := range ln.parts {
		_ = pc.loop.Exec(func(*reactor.Loop) { pc.closeNow() }) // a stopped loop closed it already
	}
	return nil
}

// Loop returns the loop that owns the socket.
func (pc *PacketConn) Loop() *reactor.Loop { return pc.loop }

// WriteTo queues data for to; the queue is sent in batches at the end of
// the loop's iteration. It reports false when the datagram was dropped: the
// queue is full (counted in QueueDrops) or to cannot be reached from this
// socket's address family (counted in SendErrors).
func (pc *PacketConn) WriteTo(data []byte, to netip.AddrPort) bool {
	if pc.closed {
		pc.queueDrops.Add(1)
		return false
	}
	if !pc.enqueue(data, to) {
		return false
	}
	if !pc.deferred {
		pc.deferred = true
		pc.loop.Defer(pc)
	}
	return true
}

// enqueue copies data into the output queue, counting a drop.
func (pc *PacketConn) enqueue(data []byte, to netip.AddrPort) bool {
	if pc.qLen == len(pc.q) {
		pc.queueDrops.Add(1)
		return false
	}
	idx := pc.qHead + pc.qLen
	if idx >= len(pc.q) {
		idx -= len(pc.q)
	}
	p := &pc.q[idx]
	if !p.Addr.SetAddrPort(to, pc.family) {
		pc.sendErrors.Add(1)
		return false
	}
	off, ok := pc.reserve(len(data))
	if !ok {
		pc.queueDrops.Add(1)
		return false
	}
	end := off + copy(pc.arena[off:off+len(data)], data)
	p.Data = pc.arena[off:end:end]
	pc.offs[idx] = off
	pc.aTail = end
	pc.qLen++
	return true
}

// reserve finds n bytes of arena after the newest queued datagram, wrapping
// to the start when the oldest one has left room there. A strict < keeps
// the tail from catching up with the head, so tail >= head always means
// "not wrapped".
func (pc *PacketConn) reserve(n int) (int, bool) {
	if pc.qLen == 0 {
		pc.aTail = 0
		return 0, n <= len(pc.arena)
	}
	head := pc.offs[pc.qHead]
	switch {
	case pc.aTail >= head && pc.aTail+n <= len(pc.arena):
		return pc.aTail, true
	case pc.aTail >= head && n < head:
		return 0, true
	case pc.aTail < head && pc.aTail+n < head:
		return pc.aTail, true
	}
	return 0, false
}

// Flush implements reactor.Flusher: the iteration's datagrams go out.
func (pc *PacketConn) Flush() {
	pc.deferred = false
	pc.flush()
}

func (pc *PacketConn) flush() {
	drv := pc.loop.Driver()
	for !pc.closed && !pc.pending && !pc.waiting && pc.qLen > 0 {
		batch := pc.q[pc.qHead:min(pc.qHead+pc.qLen, len(pc.q))]
		consumed, failed, pending, err := drv.SendPackets(pc.handle, batch)
		if err != nil {
			pc.sendErrors.Add(uint64(pc.qLen))
			pc.qHead, pc.qLen = 0, 0
			return
		}
		if pending {
			pc.pending = true
			return
		}
		pc.dequeue(consumed, failed)
		if consumed < len(batch) {
			pc.waiting = true
			if err := drv.WaitWritable(pc.handle); err != nil {
				pc.sendErrors.Add(uint64(pc.qLen))
				pc.qHead, pc.qLen, pc.waiting = 0, 0, false
			}
			return
		}
	}
}

func (pc *PacketConn) dequeue(consumed, failed int) {
	pc.sent.Add(uint64(consumed - failed))
	if failed > 0 {
		pc.sendErrors.Add(uint64(failed))
	}
	pc.qHead += consumed
	if pc.qHead >= len(pc.q) {
		pc.qHead -= len(pc.q)
	}
	pc.qLen -= consumed
	if pc.qLen == 0 {
		pc.qHead = 0
	}
}

// OnPacket implements reactor.PacketHandler.
func (pc *PacketConn) OnPacket(b []byte, from *reactor.PacketAddr) {
	pc.received.Add(1)
	pc.ln.cfg.OnDatagram(pc, from.AddrPort(), b)
}

// OnPacketTruncated implements reactor.PacketHandler.
func (pc *PacketConn) OnPacketTruncated(int, *reactor.PacketAddr) { pc.truncated.Add(1) }

// OnPacketError implements reactor.PacketHandler: the loop's socket stops
// receiving; the others go on.
func (pc *PacketConn) OnPacketError(error) { pc.recvErrors.Add(1) }

// OnPacketsSent implements reactor.PacketHandler.
func (pc *PacketConn) OnPacketsSent(consumed, failed int) {
	pc.pending = false
	pc.dequeue(consumed, failed)
	pc.flush()
}

// OnWritable implements reactor.PacketHandler.
func (pc *PacketConn) OnWritable() {
	pc.waiting = false
	pc.flush()
}

// ForceClose implements reactor.Tracked.
func (pc *PacketConn) ForceClose() { pc.closeNow() }

func (pc *PacketConn) closeNow() {
	if pc.closed {
		return
	}
	pc.closed = true
	pc.loop.Untrack(pc.token)
	_ = pc.loop.Driver().Close(pc.handle)
	if pc.qLen > 0 {
		pc.queueDrops.Add(uint64(pc.qLen))
		pc.qHead, pc.qLen = 0, 0
	}
}
