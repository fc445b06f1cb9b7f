package ring

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
	"unsafe"

	"github.com/pawelgaczynski/giouring"
	"golang.org/x/sys/unix"

	"github.com/scalestack/scalestack/reactor"
)

// Sizing. The submission queue holds one iteration's sends and re-arms; when
// it fills up mid-iteration the driver submits early rather than failing. The
// completion queue is twice as large (the kernel default), and overflow is
// buffered by the kernel (IORING_FEAT_NODROP), at worst ending a multishot
// request, which the driver re-arms.
const (
	sqEntries = 2048

	// bufCount buffers of bufSize bytes form the loop's provided-buffer
	// ring: 8 MiB of address space per loop, touched only as traffic needs
	// it. One buffer is in use only while its OnRecv runs.
	bufCount = 512
	bufSize  = 16 << 10
	bufGroup = 0

	// maxSend bounds one send request; a longer buffer completes with a
	// short count, which Send's contract allows.
	maxSend = 1 << 30

	// shutdownGrace bounds how long Shutdown waits for cancelled requests.
	shutdownGrace = 2 * time.Second
)

// user_data layout: op (4 bits) | arm sequence (4 bits) | generation (32
// bits) | slot (24 bits). The arm sequence makes a cancel aimed at one
// multishot request unable to hit the next one armed on the same slot.
const (
	slotBits  = 24
	maxSlots  = 1 << slotBits
	genShift  = slotBits
	seqShift  = 56
	opShift   = 60
	slotMask  = maxSlots - 1
	seqMask   = 0xf
	allCancel = giouring.AsyncCancelAny | giouring.AsyncCancelAll
)

type op uint8

const (
	opWake    op = iota + 1 // multishot poll on the wake eventfd
	opRecv                  // multishot recv into provided buffers
	opAccept                // multishot accept
	opSend                  // one send of a caller's buffer
	opPoll                  // one-shot POLLOUT for WaitWritable
	opClose                 // asynchronous close of a released descriptor
	opCancel                // cancel requests; only failures complete
	opRecvMsg               // multishot recvmsg on a datagram socket (packet.go)
	opSendMsg               // one sendmsg of a datagram batch
)

func userData(o op, seq uint8, gen, slot uint32) uint64 {
	return uint64(o)<<opShift | uint64(seq&seqMask)<<seqShift | uint64(gen)<<genShift | uint64(slot)
}

func splitUserData(ud uint64) (o op, gen, slot uint32) {
	return op(ud >> opShift), uint32(ud >> genShift), uint32(ud & slotMask)
}

// slot is the driver's record of one registered socket. The kernel knows a
// slot only by index and generation; Go pointers never reach it except the
// data address of a pending send, whose slice the slot keeps referenced.
type slot struct {
	fd       int
	gen      uint32
	io       reactor.IOHandler
	acceptor reactor.AcceptHandler
	pkt      reactor.PacketHandler // a datagram socket
	pr       *packetRing           // its buffers and send headers

	// Input that completed after the owner paused receiving (the cancel of
	// the multishot request was still on its way) is kept here, in order,
	// and delivered on resume; heldEnd then says how the stream ended.
	held    []byte
	heldFds []int
	heldEnd error

	// sendBuf keeps the pending send's buffer reachable: the kernel reads
	// it by address until the send completes, and Go heap objects do not
	// move.
	sendBuf []byte

	recvSeq uint8 // arm sequence of the current multishot request

	used      bool
	closing   bool // Close ran; the slot waits for its requests to finish
	recvOn    bool // the owner wants deliveries
	recvArmed bool // a multishot recv/accept is in the kernel
	cancelled bool // a cancel for the armed multishot request is queued
	ended     bool // the stream ended or accepting failed for good: never re-arm
	endHeld   bool // the end was seen while paused and is not yet reported
	queued    bool // in the ready list for delivery of held input
	sendArmed bool
	pollArmed bool
}

func (s *slot) hasHeld() bool { return len(s.held) > 0 || len(s.heldFds) > 0 || s.endHeld }

// Driver is the io_uring implementation of reactor.Driver. Everything but
// Wake must run on the goroutine that called Init, which must be locked to
// its OS thread: the ring is created single-issuer with deferred task work.
type Driver struct {
	ring    *giouring.Ring
	flags   uint32 // setup flags the kernel accepted
	eventfd int

	// mem is one anonymous mapping outside the Go heap: the provided-buffer
	// ring's entries followed by the buffers themselves.
	mem       []byte
	bufs      []byte
	br        *giouring.BufAndRing
	bufRingOn bool

	slots []slot
	free  []uint32
	ready []reactor.Handle // resumed slots with held input to deliver

	nextGroup  uint16   // last provided-buffer group id given to a datagram socket
	freeGroups []uint16 // group ids of closed datagram sockets

	cqes      []*giouring.CompletionQueueEvent
	peek      []*giouring.CompletionQueueEvent // Detach's look at the queue, apart from the batch in dispatch
	reaping   bool                             // reap is dispatching cqes
	reapNext  uint32                           // index in cqes of the next completion reap dispatches
	ts        syscall.Timespec                 // Poll's wait limit; a heap field, so its address is stable
	inflight  int                              // requests whose final completion has not been reaped
	wakeArmed bool
	stopping  bool
}

// New returns an io_uring driver; it is a reactor.NewDriverFunc. The ring
// itself is created by Init, on the loop's goroutine.
func New() (reactor.Driver, error) { return &Driver{eventfd: -1}, nil }

var _ reactor.NewDriverFunc = New

// Name implements reactor.Driver.
func (d *Driver) Name() string { return "uring" }

// setupAttempts are tried in order until the kernel accepts one: the first
// gives the cheapest completions on 6.1+, the later ones keep the driver
// working, more slowly, on kernels that lack a flag.
var setupAttempts = []uint32{
	giouring.SetupSingleIssuer | giouring.SetupDeferTaskrun | giouring.SetupCoopTaskrun | giouring.SetupSubmitAll,
	giouring.SetupSingleIssuer | giouring.SetupDeferTaskrun | giouring.SetupSubmitAll,
	giouring.SetupSingleIssuer | giouring.SetupCoopTaskrun | giouring.SetupSubmitAll,
	giouring.SetupCoopTaskrun | giouring.SetupSubmitAll,
	0,
}

// Features describes the setup flags in effect, for logs.
func (d *Driver) Features() string {
	names := []struct {
		flag uint32
		name string
	}{
		{giouring.SetupSingleIssuer, "SINGLE_ISSUER"},
		{giouring.SetupDeferTaskrun, "DEFER_TASKRUN"},
		{giouring.SetupCoopTaskrun, "COOP_TASKRUN"},
		{giouring.SetupSubmitAll, "SUBMIT_ALL"},
	}
	s := "multishot recv+accept+recvmsg, provided-buffer rings"
	for _, n := range names {
		if d.flags&n.flag != 0 {
			s += ", " + n.name
		}
	}
	return s
}

// Init implements reactor.Driver: it creates the ring on the calling thread,
// maps and registers the provided buffers and arms the wake eventfd.
func (d *Driver) Init() (err error) {
	if d.ring != nil {
		return errors.New("ring: Init called twice")
	}
	r := giouring.NewRing()
	var setupErr error
	for _, flags := range setupAttempts {
		setupErr = r.QueueInit(sqEntries, flags)
		if setupErr == nil {
			d.flags = flags
			break
		}
		if !errors.Is(setupErr, unix.EINVAL) {
			break
		}
		r = giouring.NewRing()
	}
	if setupErr != nil {
		return fmt.Errorf("io_uring_setup: %w%s", setupErr, setupHint(setupErr))
	}
	d.ring = r
	defer func() {
		if err != nil {
			d.release()
		}
	}()

	if err := d.setupBuffers(); err != nil {
		return err
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("eventfd: %w", err)
	}
	d.eventfd = efd
	d.cqes = make([]*giouring.CompletionQueueEvent, 2*sqEntries)
	d.peek = make([]*giouring.CompletionQueueEvent, 2*sqEntries)
	if err := d.armWake(); err != nil {
		return err
	}
	// Submit now so that a setup problem (an unsupported opcode, a thread
	// mismatch) shows here rather than in the first Poll.
	if _, err := d.ring.Submit(); err != nil {
		return fmt.Errorf("io_uring_enter: %w", err)
	}
	return nil
}

func setupHint(err error) string {
	switch {
	case errors.Is(err, unix.EPERM):
		return " (io_uring is disabled: see /proc/sys/kernel/io_uring_disabled, or a seccomp filter blocks it)"
	case errors.Is(err, unix.ENOSYS):
		return " (the kernel was built without io_uring)"
	case errors.Is(err, unix.ENOMEM):
		return " (RLIMIT_MEMLOCK may be too low for the ring)"
	}
	return ""
}

// setupBuffers maps the provided-buffer ring and its buffers with mmap, so
// the memory the kernel writes into is never Go heap, and registers it.
func (d *Driver) setupBuffers() error {
	page := os.Getpagesize()
	ringBytes := (bufCount*int(unsafe.Sizeof(giouring.BufAndRing{})) + page - 1) &^ (page - 1)
	mem, err := unix.Mmap(-1, 0, ringBytes+bufCount*bufSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("mmap provided buffers: %w", err)
	}
	d.mem = mem
	d.bufs = mem[ringBytes:]
	d.br = (*giouring.BufAndRing)(unsafe.Pointer(&mem[0]))
	d.br.BufRingInit()
	reg := giouring.BufReg{
		RingAddr:    uint64(uintptr(unsafe.Pointer(&mem[0]))),
		RingEntries: bufCount,
		Bgid:        bufGroup,
	}
	if _, err := d.ring.RegisterBufferRing(&reg, 0); err != nil {
		return fmt.Errorf("register provided-buffer ring (needs Linux 5.19): %w", err)
	}
	d.bufRingOn = true
	for bid := 0; bid < bufCount; bid++ {
		d.br.BufRingAdd(d.bufAddr(uint16(bid)), bufSize, uint16(bid), giouring.BufRingMask(bufCount), bid)
	}
	d.br.BufRingAdvance(bufCount)
	return nil
}

func (d *Driver) bufAddr(bid uint16) uintptr {
	return uintptr(unsafe.Pointer(&d.bufs[int(bid)*bufSize]))
}

// recycle hands a provided buffer back to the kernel. It runs after the
// handler's OnRecv returned, so the bytes it saw are never overwritten under
// it.
func (d *Driver) recycle(bid uint16) {
	d.br.BufRingAdd(d.bufAddr(bid), bufSize, bid, giouring.BufRingMask(bufCount), 0)
	d.br.BufRingAdvance(1)
}

// release frees what Init or Shutdown own. Buffers are unmapped only when no
// request can still write into them.
func (d *Driver) release() {
	if d.ring == nil {
		return
	}
	if d.bufRingOn {
		_, _ = d.ring.UnregisterBufferRing(bufGroup)
		d.bufRingOn = false
	}
	if d.eventfd >= 0 {
		_ = unix.Close(d.eventfd)
		d.eventfd = -1
	}
	d.ring.QueueExit()
	d.ring = nil
	if d.mem != nil && d.inflight == 0 {
		_ = unix.Munmap(d.mem)
	}
	d.mem, d.bufs, d.br = nil, nil, nil
}

// getSQE returns a zeroed submission entry, submitting what is queued when
// the queue is full.
func (d *Driver) getSQE() (*giouring.SubmissionQueueEntry, error) {
	sqe := d.ring.GetSQE()
	if sqe == nil {
		if _, err := d.ring.Submit(); err != nil && !transient(err) {
			return nil, fmt.Errorf("io_uring submit: %w", err)
		}
		if sqe = d.ring.GetSQE(); sqe == nil {
			return nil, errors.New("ring: submission queue full")
		}
	}
	// The prepare helpers leave some fields alone, and the kernel rejects
	// requests whose unused fields are not zero.
	*sqe = giouring.SubmissionQueueEntry{}
	return sqe, nil
}

// transient reports errors of io_uring_enter after which the loop simply
// goes on: a signal, the timeout, or a completion queue the kernel must
// flush first.
func transient(err error) bool {
	return err == unix.EINTR || err == unix.ETIME || err == unix.EAGAIN || err == unix.EBUSY
}

func (d *Driver) armWake() error {
	sqe, err := d.getSQE()
	if err != nil {
		return err
	}
	// A multishot poll completes once per write to the eventfd without the
	// counter ever being read, like the epoll driver's edge-triggered
	// registration.
	sqe.PreparePollMultishot(d.eventfd, unix.POLLIN)
	sqe.SetData64(userData(opWake, 0, 0, 0))
	d.wakeArmed = true
	d.inflight++
	return nil
}

// Wake implements reactor.Driver. It only writes the eventfd, which stays
// open until Shutdown, so it is safe from any goroutine.
func (d *Driver) Wake() error {
	one := [8]byte{1}
	for {
		_, err := unix.Write(d.eventfd, one[:])
		switch err {
		case unix.EINTR:
			continue
		case unix.EAGAIN: // counter saturated: a wakeup is already pending
			return nil
		}
		return err
	}
}

func (d *Driver) alloc(fd int) (uint32, error) {
	var i uint32
	if n := len(d.free); n > 0 {
		i = d.free[n-1]
		d.free = d.free[:n-1]
	} else {
		if len(d.slots) >= maxSlots {
			return 0, fmt.Errorf("ring: more than %d registered sockets", maxSlots)
		}
		d.slots = append(d.slots, slot{})
		i = uint32(len(d.slots) - 1)
	}
	s := &d.slots[i]
	s.fd, s.used = fd, true
	return i, nil
}

// maybeFree makes a slot reusable once it is closed and the kernel holds none of
// its requests, so a completion can never be attributed to the wrong owner
// and a send buffer stays referenced until the kernel is done with it.
func (d *Driver) maybeFree(i uint32) {
	s := &d.slots[i]
	if !s.closing || s.recvArmed || s.sendArmed || s.pollArmed {
		return
	}
	if s.pr != nil {
		d.freePacketRing(s.pr)
	}
	*s = slot{gen: s.gen}
	d.free = append(d.free, i)
}

func (d *Driver) lookup(h reactor.Handle) (*slot, error) {
	i := h.Slot()
	if int(i) >= len(d.slots) {
		return nil, fmt.Errorf("ring: stale handle %#x", uint64(h))
	}
	s := &d.slots[i]
	if !s.used || s.closing || s.gen != h.Gen() {
		return nil, fmt.Errorf("ring: stale handle %#x", uint64(h))
	}
	return s, nil
}

func (d *Driver) alive(i, gen uint32) bool {
	s := &d.slots[i]
	return s.used && !s.closing && s.gen == gen
}

// Register implements reactor.Driver.
func (d *Driver) Register(fd int, h reactor.IOHandler) (reactor.Handle, error) {
	return d.add(fd, h, nil)
}

// Listen implements reactor.Driver.
func (d *Driver) Listen(fd int, h reactor.AcceptHandler) (reactor.Handle, error) {
	return d.add(fd, nil, h)
}

func (d *Driver) add(fd int, io reactor.IOHandler, acceptor reactor.AcceptHandler) (reactor.Handle, error) {
	i, err := d.alloc(fd)
	if err != nil {
		return 0, err
	}
	s := &d.slots[i]
	s.io, s.acceptor, s.recvOn = io, acceptor, true
	if err := d.armRecv(i); err != nil {
		s.closing = true
		d.maybeFree(i)
		return 0, err
	}
	return reactor.MakeHandle(i, s.gen), nil
}

// armRecv queues the slot's multishot request: accept for a listener,
// recv with kernel-selected buffers otherwise.
func (d *Driver) armRecv(i uint32) error {
	if d.stopping {
		return nil
	}
	sqe, err := d.getSQE()
	if err != nil {
		return err
	}
	s := &d.slots[i]
	s.recvSeq++
	if s.acceptor != nil {
		sqe.PrepareMultishotAccept(s.fd, 0, 0, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		sqe.SetData64(userData(opAccept, s.recvSeq, s.gen, i))
	} else {
		sqe.PrepareRecvMultishot(s.fd, 0, 0, 0)
		sqe.Flags |= giouring.SqeBufferSelect
		sqe.BufIG = bufGroup
		sqe.SetData64(userData(opRecv, s.recvSeq, s.gen, i))
	}
	s.recvArmed, s.cancelled = true, false
	d.inflight++
	return nil
}

// cancel queues an ASYNC_CANCEL of the request with the given user_data.
// Only a failed cancel posts a completion, which is ignored: the request's
// own final completion is what the driver waits for.
func (d *Driver) cancel(target uint64) error {
	sqe, err := d.getSQE()
	if err != nil {
		return err
	}
	sqe.PrepareCancel64(target, 0)
	sqe.Flags |= giouring.SqeCQESkipSuccess
	sqe.SetData64(userData(opCancel, 0, 0, 0))
	return nil
}

func (s *slot) recvOp() op {
	if s.pkt != nil {
		return opRecvMsg
	}
	if s.acceptor != nil {
		return opAccept
	}
	return opRecv
}

// SetRecv implements reactor.Driver. Pausing cancels the multishot request;
// input that completes before the cancel lands is held in the slot and
// delivered, in order, after a resume.
func (d *Driver) SetRecv(h reactor.Handle, on bool) error {
	s, err := d.lookup(h)
	if err != nil {
		return err
	}
	if s.pkt != nil {
		return reactor.ErrPacketSocket
	}
	if s.recvOn == on {
		return nil
	}
	s.recvOn = on
	i := h.Slot()
	if !on {
		if s.recvArmed && !s.cancelled {
			s.cancelled = true
			return d.cancel(userData(s.recvOp(), s.recvSeq, s.gen, i))
		}
		return nil
	}
	if s.hasHeld() && !s.queued {
		s.queued = true
		d.ready = append(d.ready, h)
	}
	if !s.recvArmed && !s.ended {
		return d.armRecv(i)
	}
	// Still armed: either the pause's cancel has not landed yet (its final
	// completion re-arms) or it was never sent.
	return nil
}

// Send implements reactor.Driver. It always completes later, in OnSent, so
// that the sends of a whole loop iteration reach the kernel in one
// io_uring_enter.
func (d *Driver) Send(h reactor.Handle, b []byte) (int, bool, error) {
	s, err := d.lookup(h)
	if err != nil {
		return 0, false, err
	}
	if len(b) == 0 {
		return 0, false, nil
	}
	if s.sendArmed {
		return 0, false, errors.New("ring: Send while a previous send is pending")
	}
	sqe, err := d.getSQE()
	if err != nil {
		return 0, false, err
	}
	n := min(len(b), maxSend)
	// No MSG_WAITALL: a short send completes with what the socket took and
	// conn sends the rest, so a send never sits in the kernel waiting for a
	// peer that backpressure has paused (with WAITALL one such send was
	// seen never to complete). MSG_NOSIGNAL turns a vanished peer into
	// EPIPE instead of SIGPIPE.
	sqe.PrepareSend(s.fd, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uint32(n), unix.MSG_NOSIGNAL)
	sqe.SetData64(userData(opSend, 0, h.Gen(), h.Slot()))
	s.sendBuf, s.sendArmed = b, true
	d.inflight++
	return 0, true, nil
}

// WaitWritable implements reactor.Driver with a one-shot POLLOUT request.
func (d *Driver) WaitWritable(h reactor.Handle) error {
	s, err := d.lookup(h)
	if err != nil {
		return err
	}
	if s.pollArmed {
		return nil
	}
	sqe, err := d.getSQE()
	if err != nil {
		return err
	}
	sqe.PreparePollAdd(s.fd, unix.POLLOUT)
	sqe.SetData64(userData(opPoll, 0, h.Gen(), h.Slot()))
	s.pollArmed = true
	d.inflight++
	return nil
}

// Close implements reactor.Driver. The handle is dead on return: the
// generation moves on, so completions still in flight reach no handler. The
// slot's requests are cancelled and the descriptor is closed by the ring,
// after the cancels and after every request queued earlier for it, so its
// number cannot be reused while an unsubmitted request still names it.
func (d *Driver) Close(h reactor.Handle) error {
	s, err := d.lookup(h)
	if err != nil {
		return err
	}
	i, gen := h.Slot(), h.Gen()
	op := s.recvOp()
	s.gen++
	s.closing = true
	s.io, s.acceptor, s.pkt = nil, nil, nil
	s.held, s.heldEnd = nil, nil
	for _, fd := range s.heldFds {
		_ = unix.Close(fd)
	}
	s.heldFds = nil
	var first error
	note := func(err error) {
		if first == nil {
			first = err
		}
	}
	if s.recvArmed && !s.cancelled {
		s.cancelled = true
		note(d.cancel(userData(op, s.recvSeq, gen, i)))
	}
	if s.sendArmed && s.pr != nil {
		note(d.cancelAll(userData(opSendMsg, 0, gen, i)))
	} else if s.sendArmed {
		note(d.cancel(userData(opSend, 0, gen, i)))
	}
	if s.pollArmed {
		note(d.cancel(userData(opPoll, 0, gen, i)))
	}
	fd := s.fd
	d.maybeFree(i)
	if sqe, err := d.getSQE(); err == nil {
		sqe.PrepareClose(fd)
		sqe.SetData64(userData(opClose, 0, 0, 0))
		d.inflight++
	} else {
		note(err)
		if err := unix.Close(fd); err != nil {
			note(fmt.Errorf("close fd %d: %w", fd, err))
		}
	}
	return first
}

// errNotQuiet is returned by Detach for a socket the driver still has input
// or output for.
var errNotQuiet = errors.New("ring: socket not quiet")

// Detach implements reactor.Driver. The kernel must stop consuming the
// socket's input for this ring before another loop's ring arms its own
// receive, so the slot's requests are cancelled synchronously
// (IORING_REGISTER_SYNC_CANCEL) rather than in the next Poll. A send in
// flight, input held across a pause, or a receive completion not yet
// dispatched makes Detach fail with the socket left as it was (a cancelled
// receive re-arms itself), since handing the descriptor over would lose
// that data.
func (d *Driver) Detach(h reactor.Handle) (int, error) {
	s, err := d.lookup(h)
	if err != nil {
		return -1, err
	}
	if s.pkt != nil {
		return -1, reactor.ErrPacketSocket
	}
	if s.sendArmed || s.hasHeld() {
		return -1, fmt.Errorf("%w: send pending %v, undelivered input %v", errNotQuiet, s.sendArmed, s.hasHeld())
	}
	i, gen := h.Slot(), h.Gen()
	// Requests queued this iteration must be in the kernel before the
	// cancel, or one could be submitted after the descriptor has left.
	if _, err := d.ring.Submit(); err != nil && !transient(err) {
		return -1, fmt.Errorf("ring: detach: io_uring submit: %w", err)
	}
	s = &d.slots[i]
	if s.recvArmed || s.pollArmed {
		reg := giouring.SyncCancelReg{
			Fd:      int32(s.fd),
			Flags:   giouring.AsyncCancelFd | giouring.AsyncCancelAll,
			Timeout: syscall.Timespec{Sec: 1},
		}
		if _, err := d.ring.RegisterSyncCancel(&reg); err != nil && !errors.Is(err, unix.ENOENT) {
			return -1, fmt.Errorf("ring: detach: cancel requests on fd %d: %w", s.fd, err)
		}
	}
	if d.inputPending(i, gen) {
		return -1, fmt.Errorf("%w: input arrived before the receive was cancelled", errNotQuiet)
	}
	s = &d.slots[i]
	fd := s.fd
	s.gen++
	s.closing, s.cancelled = true, true
	s.io, s.acceptor = nil, nil
	d.maybeFree(i)
	return fd, nil
}

// inputPending reports whether a completion still waiting in the queue
// carries input or an accepted socket for the slot. Inside a dispatch, the
// completions already handled are skipped.
func (d *Driver) inputPending(i, gen uint32) bool {
	ready := d.ring.CQReady()
	if ready > uint32(len(d.peek)) {
		ready = uint32(len(d.peek))
	}
	n := d.ring.PeekBatchCQE(d.peek[:ready])
	first := uint32(0)
	if d.reaping {
		first = d.reapNext
	}
	for _, c := range d.peek[first:n] {
		o, cgen, ci := splitUserData(c.UserData)
		if ci == i && cgen == gen && (o == opRecv || o == opAccept) && c.Res > 0 {
			return true
		}
	}
	return false
}

// Poll implements reactor.Driver: one io_uring_enter submits everything
// queued since the last call and waits (EXT_ARG timeout), then every
// completion that is ready is dispatched.
func (d *Driver) Poll(timeout time.Duration) (int, error) {
	if d.ring == nil {
		return 0, errors.New("ring: Poll without a ring (before Init or after Shutdown)")
	}
	if len(d.ready) > 0 {
		timeout = 0
	}
	var err error
	switch {
	case timeout == 0:
		_, err = d.ring.SubmitAndGetEvents()
	case timeout < 0:
		_, err = d.ring.SubmitAndWait(1)
	default:
		d.ts = syscall.NsecToTimespec(int64(timeout))
		_, err = d.ring.SubmitAndWaitTimeout(1, &d.ts, nil)
	}
	if err != nil && !transient(err) {
		err = fmt.Errorf("io_uring_enter: %w", err)
	} else {
		err = nil
	}
	n := d.reap()
	d.deliverReady()
	return n, err
}

// reap dispatches the completions that are ready now. Completions posted
// while it runs wait for the next Poll, which then does not block.
func (d *Driver) reap() int {
	ready := d.ring.CQReady()
	if ready == 0 {
		return 0
	}
	if ready > uint32(len(d.cqes)) {
		ready = uint32(len(d.cqes))
	}
	got := d.ring.PeekBatchCQE(d.cqes[:ready])
	d.reaping = true
	for k, c := range d.cqes[:got] {
		d.reapNext = uint32(k) + 1
		d.complete(c.UserData, c.Res, c.Flags)
	}
	d.reaping = false
	d.ring.CQAdvance(got)
	return int(got)
}

func (d *Driver) complete(ud uint64, res int32, flags uint32) {
	o, gen, i := splitUserData(ud)
	more := flags&giouring.CQEFMore != 0
	switch o {
	case opCancel:
		return
	case opClose:
		d.inflight--
		return
	case opWake:
		if !more {
			d.inflight--
			d.wakeArmed = false
			if !d.stopping {
				_ = d.armWake()
			}
		}
		return
	}
	if int(i) >= len(d.slots) {
		if o != opRecvMsg { // a datagram socket's buffers are its own
			d.dropBuffer(res, flags)
		}
		return
	}
	s := &d.slots[i]
	live := s.used && !s.closing && s.gen == gen
	draining := s.used && s.closing && s.gen == gen+1
	if !live && !draining {
		// A completion for an owner the slot no longer has. Requests are
		// tracked until their final completion, so this cannot come from
		// the kernel; it is dropped without touching the current owner.
		if o != opRecvMsg {
			d.dropBuffer(res, flags)
		}
		if o == opAccept && res >= 0 {
			_ = unix.Close(int(res))
		}
		return
	}
	switch o {
	case opRecvMsg:
		d.completeRecvMsg(i, gen, live, res, flags)
	case opSendMsg:
		d.completeSendMsg(i, live, res)
	case opRecv:
		d.completeRecv(i, gen, live, res, flags)
	case opAccept:
		d.completeAccept(i, gen, live, res, more)
	case opSend:
		s.sendArmed, s.sendBuf = false, nil
		d.inflight--
		if !live {
			d.maybeFree(i)
			return
		}
		if res < 0 {
			s.io.OnSent(0, reactor.ErrnoErr(unix.Errno(-res)))
		} else {
			s.io.OnSent(int(res), nil)
		}
	case opPoll:
		s.pollArmed = false
		d.inflight--
		if !live {
			d.maybeFree(i)
			return
		}
		if res == -int32(unix.ECANCELED) {
			// Cancelled by a Detach that then refused: the wait stands.
			if err := d.WaitWritable(reactor.MakeHandle(i, gen)); err == nil {
				return
			}
		}
		// An error (the socket failed, say) is reported as writability too:
		// the handler's next write or SO_ERROR check tells it what happened,
		// as with epoll's EPOLLERR.
		s.io.OnWritable()
	}
}

func (d *Driver) dropBuffer(res int32, flags uint32) {
	if flags&giouring.CQEFBuffer != 0 {
		d.recycle(uint16(flags >> giouring.CQEBufferShift))
	}
}

func (d *Driver) completeRecv(i, gen uint32, live bool, res int32, flags uint32) {
	s := &d.slots[i]
	if flags&giouring.CQEFMore == 0 {
		s.recvArmed, s.cancelled = false, false
		d.inflight--
	}
	switch {
	case !live:
		d.dropBuffer(res, flags)
		d.maybeFree(i)
		return
	case res > 0 && flags&giouring.CQEFBuffer == 0:
		// Buffer selection is always requested; a kernel that ignored it
		// wrote nowhere we can read.
		d.end(i, gen, errors.New("ring: receive completed without a provided buffer"))
	case res > 0:
		bid := uint16(flags >> giouring.CQEBufferShift)
		off := int(bid) * bufSize
		d.deliver(i, gen, d.bufs[off:off+int(res):off+int(res)])
		d.recycle(bid)
	case res == 0:
		d.dropBuffer(res, flags)
		d.end(i, gen, nil)
	default:
		d.dropBuffer(res, flags)
		switch errno := unix.Errno(-res); errno {
		case unix.ENOBUFS, unix.ECANCELED:
			// Out of buffers (they are all back by now) or our own pause:
			// re-armed below if still wanted.
		default:
			d.end(i, gen, reactor.ErrnoErr(errno))
		}
	}
	d.rearm(i, gen)
}

// deliver hands b to the handler, or holds a copy while receiving is paused.
// Held input always goes first, so nothing is reordered.
func (d *Driver) deliver(i, gen uint32, b []byte) {
	s := &d.slots[i]
	if !s.recvOn || s.endHeld {
		s.held = append(s.held, b...)
		return
	}
	if len(s.held) > 0 {
		held := s.held
		s.held = nil
		s.io.OnRecv(held)
		if !d.alive(i, gen) {
			return
		}
		s = &d.slots[i]
		if !s.recvOn {
			s.held = append(s.held, b...)
			return
		}
	}
	s.io.OnRecv(b)
}

// end records the end of a stream and reports it unless paused input is
// still waiting.
func (d *Driver) end(i, gen uint32, err error) {
	s := &d.slots[i]
	s.ended = true
	if s.recvOn && len(s.held) == 0 {
		s.io.OnRecvEnd(err)
		return
	}
	s.endHeld, s.heldEnd = true, err
	if s.recvOn && !s.queued {
		s.queued = true
		d.ready = append(d.ready, reactor.MakeHandle(i, gen))
	}
}

// rearm restarts a multishot request that ended while it is still wanted.
func (d *Driver) rearm(i, gen uint32) {
	if !d.alive(i, gen) {
		return
	}
	s := &d.slots[i]
	if s.recvArmed || !s.recvOn || s.ended {
		return
	}
	if err := d.armRecv(i); err != nil {
		s.ended = true
		if s.acceptor != nil {
			s.acceptor.OnAcceptError(err)
		} else {
			s.io.OnRecvEnd(err)
		}
	}
}

func (d *Driver) completeAccept(i, gen uint32, live bool, res int32, more bool) {
	s := &d.slots[i]
	if !more {
		s.recvArmed, s.cancelled = false, false
		d.inflight--
	}
	if !live {
		if res >= 0 {
			_ = unix.Close(int(res))
		}
		d.maybeFree(i)
		return
	}
	if res >= 0 {
		if s.recvOn && len(s.heldFds) == 0 {
			s.acceptor.OnAccept(int(res))
		} else {
			s.heldFds = append(s.heldFds, int(res))
		}
		d.rearm(i, gen)
		return
	}
	switch errno := unix.Errno(-res); errno {
	case unix.ECANCELED, unix.ECONNABORTED, unix.EPROTO, unix.EINTR, unix.EAGAIN:
		// Our own pause, or a connection that died in the backlog.
	case unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM:
		// As with epoll, the owner should pause the listener and retry
		// later; a listener left on is re-armed and fails again.
		s.acceptor.OnAcceptError(fmt.Errorf("accept: %w", errno))
	default:
		s.ended = true
		s.acceptor.OnAcceptError(fmt.Errorf("accept: %w", errno))
	}
	d.rearm(i, gen)
}

// deliverReady hands held input to slots that were resumed.
func (d *Driver) deliverReady() {
	for k := 0; k < len(d.ready); k++ {
		h := d.ready[k]
		i, gen := h.Slot(), h.Gen()
		if !d.alive(i, gen) {
			continue
		}
		d.slots[i].queued = false
		d.deliverHeld(i, gen)
	}
	clear(d.ready)
	d.ready = d.ready[:0]
}

func (d *Driver) deliverHeld(i, gen uint32) {
	s := &d.slots[i]
	if s.acceptor != nil {
		for d.alive(i, gen) && d.slots[i].recvOn && len(d.slots[i].heldFds) > 0 {
			s = &d.slots[i]
			fd := s.heldFds[0]
			s.heldFds = s.heldFds[1:]
			if len(s.heldFds) == 0 {
				s.heldFds = nil
			}
			s.acceptor.OnAccept(fd)
		}
		return
	}
	if !s.recvOn {
		return
	}
	if len(s.held) > 0 {
		held := s.held
		s.held = nil
		s.io.OnRecv(held)
		if !d.alive(i, gen) {
			return
		}
		s = &d.slots[i]
	}
	if s.endHeld && s.recvOn && len(s.held) == 0 {
		err := s.heldEnd
		s.endHeld, s.heldEnd = false, nil
		s.io.OnRecvEnd(err)
	}
}

// Shutdown implements reactor.Driver: it cancels whatever is left, reaps
// until the kernel has released every request (or a grace period passes),
// then unregisters and unmaps the buffers and closes the ring.
func (d *Driver) Shutdown() error {
	if d.ring == nil {
		return nil
	}
	d.stopping = true
	var err error
	if sqe, e := d.getSQE(); e == nil {
		sqe.PrepareCancel64(0, int(allCancel))
		sqe.SetData64(userData(opCancel, 0, 0, 0))
	} else {
		err = e
	}
	deadline := time.Now().Add(shutdownGrace)
	for d.inflight > 0 && time.Now().Before(deadline) {
		if _, e := d.Poll(10 * time.Millisecond); e != nil && err == nil {
			err = e
		}
	}
	if d.inflight > 0 && err == nil {
		err = fmt.Errorf("ring: %d requests still in flight at shutdown; provided buffers left mapped", d.inflight)
	}
	d.release()
	return err
}
