package loadgen

import (
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The epoll engine: each of a few loops runs on a locked OS thread, owns an
// epoll instance and a share of the connections, and drives them with
// non-blocking reads and writes on their descriptors. Per message it costs
// one write and one read (a short read means the socket is drained, so no
// read returns EAGAIN), and epoll_wait returns many ready connections per
// call, where the net engine also pays for goroutine wake-ups, Go's poller
// and a read that ends in EAGAIN. It deliberately uses nothing from the
// servers under test: a generator sharing their code would share their bugs.
//
// Time is read once per epoll_wait return, not per message: a message sent
// in a batch is stamped with the batch's time, and a reply with the time of
// the batch that read it. Each latency is therefore off by at most the time
// one batch takes to process (a few hundred microseconds with hundreds of
// ready connections; small against the milliseconds that 1000 connections
// queue for), in exchange for not reading the clock twice per message.

// maxEvents bounds how many ready connections one epoll_wait returns.
const maxEvents = 256

// pollTimeoutMillis bounds how long a loop waits for readiness before it
// looks at the stop flag again.
const pollTimeoutMillis = 10

// yieldEvery is how long a busy loop may run before it passes through the
// Go scheduler: without that, sysmon force-preempts the locked goroutine
// and starts polling at a high rate on the generator's own CPU.
const yieldEvery = 5 * time.Millisecond

type epollEngine struct {
	loops     []*epollLoop
	base      time.Time // the loops' clock zero
	measuring atomic.Bool
	stopping  atomic.Bool
	wg        sync.WaitGroup
}

// epollLoop is one worker: an epoll instance and the connections it drives.
type epollLoop struct {
	eng   *epollEngine
	epfd  int
	size  int
	conns []epollConn // an event's data is the index here
	rbuf  []byte
	wbuf  []byte

	msgs     uint64
	hist     Histogram
	failures int
	firstErr error
}

// epollConn is one connection's state, touched only by its loop.
type epollConn struct {
	fd          int
	slot        int32 // index in its loop's conns, the epoll event's data
	open        bool
	stream      stream
	sent        []int64 // send times of outstanding messages, a ring, oldest at head
	head        int
	outstanding int
	pending     []byte // bytes the kernel has not taken yet; EPOLLOUT is armed while non-empty
}

// defaultWorkers is one loop per CPU this process may run on.
func defaultWorkers() int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil || set.Count() < 1 {
		return runtime.NumCPU()
	}
	return set.Count()
}

// newEpollEngine takes the connections over from Go's net package (their
// descriptors are duplicated and the net.Conns closed and set to nil) and
// spreads them over the loops, round robin.
func newEpollEngine(conns []net.Conn, cfg *Config) (*epollEngine, error) {
	workers := cfg.Workers
	if workers == 0 {
		workers = defaultWorkers()
	}
	workers = min(workers, len(conns))
	e := &epollEngine{base: time.Now()}
	fail := func(err error) (*epollEngine, error) {
		e.close()
		return nil, err
	}
	for range workers {
		epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			return fail(fmt.Errorf("loadgen: epoll_create1: %w", err))
		}
		e.loops = append(e.loops, &epollLoop{
			eng: e, epfd: epfd, size: cfg.Size,
			conns: make([]epollConn, 0, len(conns)/workers+1),
			rbuf:  make([]byte, max(cfg.Size*cfg.InFlight, 64<<10)),
			wbuf:  make([]byte, cfg.Size*cfg.InFlight),
		})
	}
	for i, c := range conns {
		fd, err := detach(c)
		conns[i] = nil
		if err != nil {
			return fail(fmt.Errorf("loadgen: connection %d: %w", i, err))
		}
		l := e.loops[i%workers]
		slot := len(l.conns)
		l.conns = append(l.conns, epollConn{fd: fd, slot: int32(slot), open: true, sent: make([]int64, cfg.InFlight), stream: newStream(cfg)})
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(slot)}
		if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return fail(fmt.Errorf("loadgen: epoll_ctl add connection %d: %w", i, err))
		}
	}
	return e, nil
}

// detach returns a non-blocking duplicate of c's descriptor and closes c.
// Go's poller deregisters its own descriptor before closing it, so the
// duplicate's readiness is reported only to our epoll instance.
func detach(c net.Conn) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("%T has no descriptor", c)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var dupErr error
	if err := raw.Control(func(orig uintptr) {
		fd, dupErr = unix.FcntlInt(orig, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	if dupErr != nil {
		return -1, fmt.Errorf("dup: %w", dupErr)
	}
	c.Close()
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("set non-blocking: %w", err)
	}
	return fd, nil
}

func (e *epollEngine) start() {
	for _, l := range e.loops {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			l.run()
		}()
	}
}

func (e *epollEngine) measure(on bool) { e.measuring.Store(on) }

func (e *epollEngine) stop(res *Result) {
	e.stopping.Store(true)
	e.wg.Wait()
	for _, l := range e.loops {
		res.Msgs += l.msgs
		res.Latency.Merge(&l.hist)
		res.Failures += l.failures
		if res.FirstErr == nil && l.firstErr != nil {
			res.FirstErr = l.firstErr
		}
	}
	e.close()
}

// close releases every descriptor; loops must have returned.
func (e *epollEngine) close() {
	for _, l := range e.loops {
		for i := range l.conns {
			l.closeConn(&l.conns[i])
		}
		unix.Close(l.epfd)
	}
}

func (e *epollEngine) now() int64 { return int64(time.Since(e.base)) }

func (l *epollLoop) run() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	inFlight := len(l.conns[0].sent)
	now := l.eng.now()
	for i := range l.conns {
		l.send(&l.conns[i], inFlight, now)
	}
	events := make([]unix.EpollEvent, maxEvents)
	lastYield := now
	for !l.eng.stopping.Load() {
		n, err := unix.EpollWait(l.epfd, events, pollTimeoutMillis)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			l.record(fmt.Errorf("loadgen: epoll_wait: %w", err))
			return
		}
		now = l.eng.now()
		measuring := l.eng.measuring.Load()
		for _, ev := range events[:n] {
			c := &l.conns[ev.Fd]
			if !c.open {
				continue
			}
			if ev.Events&unix.EPOLLOUT != 0 {
				l.flush(c)
			}
			if c.open && ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				l.receive(c, now, measuring)
			}
		}
		if time.Duration(now-lastYield) >= yieldEvery {
			runtime.Gosched()
			lastYield = now
		}
	}
}

// receive reads what the connection has, checks it, counts and times the
// completed echoes and sends as many new messages.
func (l *epollLoop) receive(c *epollConn, now int64, measuring bool) {
	n, err := unix.Read(c.fd, l.rbuf)
	switch {
	case err == unix.EAGAIN:
		return
	case err != nil:
		l.fail(c, err)
		return
	case n == 0:
		l.fail(c, io.EOF)
		return
	}
	done, err := c.stream.check(l.rbuf[:n])
	if err != nil {
		l.fail(c, err)
		return
	}
	inFlight := len(c.sent)
	for range done {
		if measuring {
			l.hist.Record(time.Duration(now - c.sent[c.head]))
			l.msgs++
		}
		c.head = (c.head + 1) % inFlight
		c.outstanding--
	}
	if done > 0 {
		l.send(c, done, now)
	}
}

// send writes k more messages, keeping what the kernel does not take.
func (l *epollLoop) send(c *epollConn, k int, now int64) {
	inFlight := len(c.sent)
	for range k {
		c.sent[(c.head+c.outstanding)%inFlight] = now
		c.outstanding++
	}
	if len(c.pending) > 0 {
		// A write is already waiting for EPOLLOUT; queue behind it.
		for range k {
			at := len(c.pending)
			c.pending = append(c.pending, l.wbuf[:l.size]...)
			c.stream.fill(c.pending[at:])
		}
		return
	}
	buf := l.wbuf[:k*l.size]
	for i := range k {
		c.stream.fill(buf[i*l.size : (i+1)*l.size])
	}
	n, err := unix.Write(c.fd, buf)
	if err == unix.EAGAIN {
		n, err = 0, nil
	}
	if err != nil {
		l.fail(c, err)
		return
	}
	if n < len(buf) {
		c.pending = append(c.pending[:0], buf[n:]...)
		l.watchWritable(c, true)
	}
}

// flush writes pending bytes once the socket is writable again.
func (l *epollLoop) flush(c *epollConn) {
	n, err := unix.Write(c.fd, c.pending)
	if err == unix.EAGAIN {
		return
	}
	if err != nil {
		l.fail(c, err)
		return
	}
	c.pending = c.pending[:copy(c.pending, c.pending[n:])]
	if len(c.pending) == 0 {
		l.watchWritable(c, false)
	}
}

func (l *epollLoop) watchWritable(c *epollConn, on bool) {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: c.slot}
	if on {
		ev.Events |= unix.EPOLLOUT
	}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, c.fd, &ev); err != nil {
		l.fail(c, fmt.Errorf("loadgen: epoll_ctl: %w", err))
	}
}

// fail ends one connection. Errors after the stop flag are the run ending,
// except a corrupt echo, which is a wrong server whenever it shows.
func (l *epollLoop) fail(c *epollConn, err error) {
	l.closeConn(c)
	if l.eng.stopping.Load() && !errors.Is(err, errCorrupt) {
		return
	}
	l.record(describe(err))
}

func (l *epollLoop) record(err error) {
	l.failures++
	if l.firstErr == nil {
		l.firstErr = err
	}
}

func (l *epollLoop) closeConn(c *epollConn) {
	if c.open {
		unix.Close(c.fd)
		c.open = false
	}
}
