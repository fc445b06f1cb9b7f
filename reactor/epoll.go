package reactor

import (
	"fmt"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// readBufferSize is the loop-wide receive buffer: one per loop, never per
// connection, so an idle connection holds no memory for input.
const readBufferSize = 64 << 10

// maxReadsPerEvent bounds how long one busy socket may keep the loop: after
// this many full buffers the loop serves the others and comes back.
const maxReadsPerEvent = 4

// maxAcceptsPerEvent does the same for listeners under a connection storm.
const maxAcceptsPerEvent = 256

type epollSlot struct {
	fd       int
	gen      uint32
	io       IOHandler
	acceptor AcceptHandler
	pkt      PacketHandler // a datagram socket (epoll_packet.go)
	maxPkt   int
	interest uint32
	recvOn   bool
	ended    bool // OnRecvEnd delivered: the stream is over for good
	wantOut  bool
	used     bool
	readMore bool // on readMore: the read budget ran out with data left
}

// epollDriver is the epoll implementation of Driver.
//
// Stream sockets are edge-triggered while they receive: a level-triggered
// socket that was reported is put back on epoll's ready list and polled
// again by the next epoll_wait only to be dropped, a cost paid per message
// (echo server-bound, edge vs level: see bench/results/echo-server-bound.md).
// Edges are safe here because a read that returns less than the buffer has
// drained the socket at that moment, and any later data raises a new edge;
// a socket whose read budget ran out with data left goes on readMore, which
// the next Poll reads without waiting. Pausing and resuming use
// EPOLL_CTL_MOD, which reports a socket that is already readable, so no
// edge is lost across backpressure. Listening sockets stay level-triggered:
// accepting stops early on EMFILE and must see the backlog again.
type epollDriver struct {
	epfd     int
	eventfd  int
	events   []unix.EpollEvent
	slots    []epollSlot
	free     []uint32
	readBuf  []byte
	readMore []Handle
	spare    []Handle
	pktIO    packetIO // datagram batches, shared by the loop's datagram sockets
	calls    epollCalls
}

// epollCalls counts the driver's system calls on stream sockets, so tests
// can pin what a message costs: one recv and one send per request and
// response, no read that only finds EAGAIN, no epoll_ctl per write. Plain
// increments of the loop's own fields: nothing on the hot path is shared.
type epollCalls struct {
	recv, send, ctl, wait uint64
}

// NewEpoll returns an epoll driver; it is the default NewDriverFunc.
func NewEpoll() (Driver, error) { return &epollDriver{}, nil }

func (d *epollDriver) Name() string { return "epoll" }

// wakeSlot marks the eventfd in event data; real slots start at zero and the
// eventfd never needs a generation.
const wakeSlot = ^uint32(0)

func (d *epollDriver) Init() error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("epoll_create1: %w", err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return fmt.Errorf("eventfd: %w", err)
	}
	// Edge-triggered: every write to the eventfd raises a new edge, so the
	// loop never has to read the counter back.
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET}
	setEventData(&ev, wakeSlot, 0)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &ev); err != nil {
		unix.Close(efd)
		unix.Close(epfd)
		return fmt.Errorf("epoll_ctl add eventfd: %w", err)
	}
	d.epfd, d.eventfd = epfd, efd
	d.events = make([]unix.EpollEvent, 512)
	d.readBuf = make([]byte, readBufferSize)
	return nil
}

func setEventData(ev *unix.EpollEvent, slot, gen uint32) {
	ev.Fd = int32(slot)
	ev.Pad = int32(gen)
}

func (d *epollDriver) Wake() error {
	var one = [8]byte{1}
	for {
		_, err := unix.Write(d.eventfd, one[:])
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN { // counter saturated: a wakeup is already pending
			return nil
		}
		return err
	}
}

func (d *epollDriver) Shutdown() error {
	err := unix.Close(d.epfd)
	if e := unix.Close(d.eventfd); err == nil {
		err = e
	}
	return err
}

func (d *epollDriver) alloc(fd int) uint32 {
	var i uint32
	if n := len(d.free); n > 0 {
		i = d.free[n-1]
		d.free = d.free[:n-1]
	} else {
		d.slots = append(d.slots, epollSlot{})
		i = uint32(len(d.slots) - 1)
	}
	s := &d.slots[i]
	s.fd, s.used = fd, true
	return i
}

func (d *epollDriver) lookup(h Handle) (*epollSlot, error) {
	i := h.Slot()
	if int(i) >= len(d.slots) || !d.slots[i].used || d.slots[i].gen != h.Gen() {
		return nil, fmt.Errorf("epoll: stale handle %#x", uint64(h))
	}
	return &d.slots[i], nil
}

func (d *epollDriver) ctl(op int, s *epollSlot, slot uint32, interest uint32) error {
	ev := unix.EpollEvent{Events: interest}
	setEventData(&ev, slot, s.gen)
	d.calls.ctl++
	if err := unix.EpollCtl(d.epfd, op, s.fd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl fd %d: %w", s.fd, err)
	}
	s.interest = interest
	return nil
}

// interestFor computes the epoll mask. A socket that wants neither input nor
// output is kept edge-triggered so a hang-up on a paused socket is reported
// once instead of spinning the loop.
func interestFor(s *epollSlot) uint32 {
	var m uint32
	if s.recvOn {
		m |= unix.EPOLLIN | unix.EPOLLRDHUP
		if s.io != nil {
			m |= unix.EPOLLET
		}
	}
	if s.wantOut {
		m |= unix.EPOLLOUT
	}
	if m == 0 {
		m = unix.EPOLLET
	}
	return m
}

func (d *epollDriver) Register(fd int, h IOHandler) (Handle, error) {
	i := d.alloc(fd)
	s := &d.slots[i]
	s.io, s.recvOn = h, true
	if err := d.ctl(unix.EPOLL_CTL_ADD, s, i, interestFor(s)); err != nil {
		d.release(i)
		return 0, err
	}
	return MakeHandle(i, s.gen), nil
}

func (d *epollDriver) Listen(fd int, h AcceptHandler) (Handle, error) {
	i := d.alloc(fd)
	s := &d.slots[i]
	s.acceptor, s.recvOn = h, true
	if err := d.ctl(unix.EPOLL_CTL_ADD, s, i, interestFor(s)); err != nil {
		d.release(i)
		return 0, err
	}
	return MakeHandle(i, s.gen), nil
}

func (d *epollDriver) release(i uint32) {
	s := &d.slots[i]
	gen := s.gen + 1
	*s = epollSlot{gen: gen}
	d.free = append(d.free, i)
}

func (d *epollDriver) SetRecv(h Handle, on bool) error {
	s, err := d.lookup(h)
	if err != nil {
		return err
	}
	if s.pkt != nil {
		return errPacketRecv
	}
	if s.recvOn == on || (on && s.ended) {
		return nil
	}
	s.recvOn = on
	return d.ctl(unix.EPOLL_CTL_MOD, s, h.Slot(), interestFor(s))
}

func (d *epollDriver) WaitWritable(h Handle) error {
	s, err := d.lookup(h)
	if err != nil {
		return err
	}
	if s.wantOut {
		return nil
	}
	s.wantOut = true
	return d.ctl(unix.EPOLL_CTL_MOD, s, h.Slot(), interestFor(s))
}

func (d *epollDriver) Send(h Handle, b []byte) (int, bool, error) {
	s, err := d.lookup(h)
	if err != nil {
		return 0, false, err
	}
	d.calls.send++
	n, err := sendNoSignal(s.fd, b)
	if err == unix.EAGAIN {
		return 0, false, nil
	}
	return n, false, err
}

// sendNoSignal writes with MSG_NOSIGNAL so a peer that went away yields EPIPE
// instead of a SIGPIPE; it works for TCP and Unix stream sockets alike and,
// unlike the x/sys wrappers for sendmsg, never allocates.
//
// It and recvNoAddr enter the kernel with RawSyscall6, skipping the Go
// runtime's entersyscall/exitsyscall bookkeeping, which exists so a
// blocking call can hand its P to another thread. Registered sockets are
// non-blocking (the Driver contract), so these calls never block: the
// bookkeeping bought nothing and cost about 3% of a forwarding loop's CPU
// (tcpproxy, old and new binary alternating, 22 rounds).
func sendNoSignal(fd int, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for {
		n, _, errno := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), unix.MSG_NOSIGNAL, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, ErrnoErr(errno)
		}
		return int(n), nil
	}
}

// recvNoAddr reads a stream socket with recvfrom(2) and no address. On a
// socket read(2) does the same, but through the VFS layer first (file
// position lock, access checks, fsnotify): about 4% of a forwarding
// loop's kernel time in a profile of tcpproxy, which recvfrom skips.
func recvNoAddr(fd int, b []byte) (int, error) {
	n, _, errno := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0, 0, 0)
	if errno != 0 {
		return 0, ErrnoErr(errno)
	}
	return int(n), nil
}

// ErrnoErr returns shared values for the common errors so the hot path does
// not box an Errno each time; drivers use it for raw system call results.
func ErrnoErr(e unix.Errno) error {
	switch e {
	case unix.EAGAIN:
		return unix.EAGAIN
	case unix.EPIPE:
		return unix.EPIPE
	case unix.ECONNRESET:
		return unix.ECONNRESET
	}
	return e
}

func (d *epollDriver) Close(h Handle) error {
	s, err := d.lookup(h)
	if err != nil {
		return err
	}
	fd := s.fd
	// Deregister explicitly: a descriptor duplicated elsewhere would keep its
	// epoll registration alive after close.
	_ = unix.EpollCtl(d.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	d.release(h.Slot())
	if err := unix.Close(fd); err != nil {
		return fmt.Errorf("close fd %d: %w", fd, err)
	}
	return nil
}

func (d *epollDriver) Detach(h Handle) (int, error) {
	s, err := d.lookup(h)
	if err != nil {
		return -1, err
	}
	if s.pkt != nil {
		return -1, errPacketDetach
	}
	fd := s.fd
	if err := unix.EpollCtl(d.epfd, unix.EPOLL_CTL_DEL, fd, nil); err != nil {
		return -1, fmt.Errorf("epoll_ctl del fd %d: %w", fd, err)
	}
	d.release(h.Slot())
	return fd, nil
}

func (d *epollDriver) Poll(timeout time.Duration) (int, error) {
	msec := -1
	if timeout >= 0 {
		msec = int((timeout + time.Millisecond - 1) / time.Millisecond)
	}
	if len(d.readMore) > 0 {
		msec = 0 // sockets with data left send no new edge: read them now
	}
	d.calls.wait++
	n, err := unix.EpollWait(d.epfd, d.events, msec)
	if err != nil {
		if err == unix.EINTR {
			return 0, nil
		}
		return 0, fmt.Errorf("epoll_wait: %w", err)
	}
	leftovers := d.readLeftovers()
	for k := 0; k < n; k++ {
		ev := &d.events[k]
		slot, gen := uint32(ev.Fd), uint32(ev.Pad)
		if slot == wakeSlot {
			continue
		}
		if int(slot) >= len(d.slots) || !d.slots[slot].used || d.slots[slot].gen != gen {
			continue // closed earlier in this batch
		}
		d.dispatch(slot, gen, ev.Events)
	}
	if n == len(d.events) && n < 1<<16 {
		d.events = make([]unix.EpollEvent, 2*n)
	}
	return n + leftovers, nil
}

// readLeftovers reads the sockets whose read budget ran out in an earlier
// Poll; one that runs out again goes back on the list once.
func (d *epollDriver) readLeftovers() int {
	if len(d.readMore) == 0 {
		return 0
	}
	batch := d.readMore
	d.readMore = d.spare[:0]
	count := 0
	for _, h := range batch {
		slot, gen := h.Slot(), h.Gen()
		if !d.alive(slot, gen) || !d.slots[slot].readMore { // closed or read since
			continue
		}
		d.slots[slot].readMore = false
		if d.slots[slot].recvOn {
			// Its event may have reported the end already: read to it.
			d.read(slot, gen, unix.EPOLLRDHUP)
			count++
		}
	}
	clear(batch)
	d.spare = batch[:0]
	return count
}

func (d *epollDriver) alive(slot, gen uint32) bool {
	return d.slots[slot].used && d.slots[slot].gen == gen
}

func (d *epollDriver) dispatch(slot, gen uint32, events uint32) {
	s := &d.slots[slot]
	if s.acceptor != nil {
		if s.recvOn {
			d.accept(slot, gen)
		}
		return
	}
	if s.pkt != nil {
		d.dispatchPacket(slot, gen, events)
		return
	}
	if s.wantOut && events&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
		s.wantOut = false
		if err := d.ctl(unix.EPOLL_CTL_MOD, s, slot, interestFor(s)); err != nil {
			s.io.OnRecvEnd(err)
			return
		}
		s.io.OnWritable()
		if !d.alive(slot, gen) {
			return
		}
		s = &d.slots[slot]
	}
	if !s.recvOn {
		if events&unix.EPOLLERR != 0 && !s.ended {
			d.failPaused(slot, s)
		}
		return
	}
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) == 0 {
		return
	}
	d.read(slot, gen, events)
}

// failPaused ends the stream of a socket whose receiving is paused when it
// fails (a reset from the peer, say): epoll reports EPOLLERR whatever the
// interest, and the owner must hear of it now rather than when it resumes,
// which may be never (a proxy pauses a server connection behind a client
// that stopped reading). What the socket still held unread is lost with
// it, as it would be for a reader: a reset stream has no orderly end. A
// FIN or a hang-up without an error is left for the reads after a resume,
// since the data before it is still good.
func (d *epollDriver) failPaused(slot uint32, s *epollSlot) {
	errno, err := unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err == nil {
		if errno == 0 {
			return // the error was already collected (by a send)
		}
		err = ErrnoErr(unix.Errno(errno))
	}
	s.ended = true
	_ = d.ctl(unix.EPOLL_CTL_MOD, s, slot, interestFor(s))
	s.io.OnRecvEnd(err)
}

// read delivers what a readable socket holds, up to maxReadsPerEvent full
// buffers; if the budget runs out first, the socket goes on readMore.
//
// A short read ends it: the socket was drained at that moment, and later
// data raises a new edge. Not so when the event already reported the
// peer's end (RDHUP, HUP or ERR): no edge will follow, so reading goes on
// until the end is read.
func (d *epollDriver) read(slot, gen uint32, events uint32) {
	s := &d.slots[slot]
	untilEnd := events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0
	for i := 0; i < maxReadsPerEvent; i++ {
		d.calls.recv++
		n, err := recvNoAddr(s.fd, d.readBuf)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return
		}
		if err != nil || n == 0 {
			s.recvOn, s.ended = false, true
			_ = d.ctl(unix.EPOLL_CTL_MOD, s, slot, interestFor(s))
			s.io.OnRecvEnd(err)
			return
		}
		s.io.OnRecv(d.readBuf[:n])
		if !d.alive(slot, gen) {
			return
		}
		s = &d.slots[slot]
		if !s.recvOn || (n < len(d.readBuf) && !untilEnd) {
			return
		}
	}
	if !s.readMore { // else it is on the list already
		s.readMore = true
		d.readMore = append(d.readMore, MakeHandle(slot, gen))
	}
}

func (d *epollDriver) accept(slot, gen uint32) {
	for i := 0; i < maxAcceptsPerEvent; i++ {
		s := &d.slots[slot]
		nfd, _, err := unix.Accept4(s.fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		switch err {
		case nil:
			s.acceptor.OnAccept(nfd)
			if !d.alive(slot, gen) || !d.slots[slot].recvOn {
				return // closed or paused from inside the callback
			}
		case unix.EAGAIN:
			return
		case unix.EINTR, unix.ECONNABORTED, unix.EPROTO:
			continue
		default:
			// EMFILE and friends included: the owner must pause the
			// listener (SetRecv false) and retry later, or level
			// triggering would spin on the full backlog.
			s.acceptor.OnAcceptError(fmt.Errorf("accept4: %w", err))
			return
		}
	}
}
