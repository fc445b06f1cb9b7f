package reactor

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// newTestEpoll returns an initialised epoll driver for a test that runs on
// a goroutine locked to its thread, as a loop would.
func newTestEpoll(t *testing.T) *epollDriver {
	t.Helper()
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
	drv, err := NewEpoll()
	if err != nil {
		t.Fatal(err)
	}
	if err := drv.Init(); err != nil {
		t.Fatalf("Init: %v", err)
	}
	t.Cleanup(func() {
		if err := drv.Shutdown(); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return drv.(*epollDriver)
}

// socketPair returns two connected non-blocking stream sockets.
func socketPair(t *testing.T) (local, peer int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	return fds[0], fds[1]
}

// closeOnCleanup closes *fd when the test ends unless the test has set it
// to -1 because it closed the descriptor itself.
func closeOnCleanup(t *testing.T, fd *int) {
	t.Cleanup(func() {
		if *fd >= 0 {
			unix.Close(*fd)
		}
	})
}

// registeredPair is one end of a socket pair registered with an epoll
// driver, the recorder that gets its callbacks, and the other end, which the
// test drives as the remote peer.
type registeredPair struct {
	d    *epollDriver
	fd   int // the registered end
	h    Handle
	r    *recorder
	peer int // closed when the test ends unless the test set it to -1
}

// registerPair registers one end of a new socket pair with d under a fresh
// recorder. When the test ends the handle is closed, unless the test closed
// or detached it itself, and so is the peer.
func registerPair(t *testing.T, d *epollDriver) *registeredPair {
	t.Helper()
	local, peer := socketPair(t)
	p := &registeredPair{d: d, fd: local, r: &recorder{}, peer: peer}
	closeOnCleanup(t, &p.peer)
	h, err := d.Register(local, p.r)
	if err != nil {
		unix.Close(local)
		t.Fatalf("Register: %v", err)
	}
	p.h = h
	t.Cleanup(func() {
		if _, err := d.lookup(h); err != nil {
			return // already closed or detached by the test
		}
		if err := d.Close(h); err != nil {
			t.Errorf("Close at cleanup: %v", err)
		}
	})
	return p
}

// closePeer closes the peer end, as a remote side hanging up.
func (p *registeredPair) closePeer() {
	unix.Close(p.peer)
	p.peer = -1
}

// recorder is an IOHandler that records every callback.
type recorder struct {
	data     []byte
	ends     []error
	writable int
	sent     int
	onRecv   func(b []byte)
	onEnd    func()
}

func (r *recorder) OnRecv(b []byte) {
	r.data = append(r.data, b...)
	if r.onRecv != nil {
		r.onRecv(b)
	}
}

func (r *recorder) OnRecvEnd(err error) {
	r.ends = append(r.ends, err)
	if r.onEnd != nil {
		r.onEnd()
	}
}
func (r *recorder) OnWritable()       { r.writable++ }
func (r *recorder) OnSent(int, error) { r.sent++ }
func (r *recorder) callbacks() int    { return len(r.data) + len(r.ends) + r.writable + r.sent }
func (r *recorder) String() string {
	return fmt.Sprintf("%d bytes, ends %v, %d writable, %d sent", len(r.data), r.ends, r.writable, r.sent)
}

// pollFor polls for about d and returns the number of events reported.
func pollFor(t *testing.T, d *epollDriver, dur time.Duration) int {
	t.Helper()
	events := 0
	for end := time.Now().Add(dur); time.Now().Before(end); {
		n, err := d.Poll(5 * time.Millisecond)
		if err != nil {
			t.Fatalf("Poll: %v", err)
		}
		events += n
	}
	return events
}

// pollUntil polls until cond holds or a second passes.
func pollUntil(t *testing.T, d *epollDriver, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(time.Second); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		if _, err := d.Poll(10 * time.Millisecond); err != nil {
			t.Fatalf("Poll: %v", err)
		}
	}
}

func writeAll(t *testing.T, fd int, b []byte) {
	t.Helper()
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err != nil {
			t.Fatalf("write: %v", err)
		}
		b = b[n:]
	}
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

func TestEpollEcho(t *testing.T) {
	checkLeaks(t)
	for _, size := range []int{1, 1000, readBufferSize, 3*readBufferSize + 17} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			d := newTestEpoll(t)
			p := registerPair(t, d)
			r, peer := p.r, p.peer
			r.onRecv = func(b []byte) {
				n, pending, err := d.Send(p.h, b)
				if err != nil || pending || n != len(b) {
					t.Errorf("echo Send(%d bytes) = %d, %v, %v", len(b), n, pending, err)
				}
			}
			want := pattern(size)
			var echoed []byte
			buf := make([]byte, 64<<10)
			for off := 0; len(echoed) < size; {
				if off < size {
					// Small chunks keep the echo within the socket buffers.
					end := min(off+16<<10, size)
					n, err := unix.Write(peer, want[off:end])
					if err != nil && err != unix.EAGAIN {
						t.Fatal(err)
					}
					off += max(n, 0)
				}
				if _, err := d.Poll(10 * time.Millisecond); err != nil {
					t.Fatal(err)
				}
				if n, err := unix.Read(peer, buf); err == nil {
					echoed = append(echoed, buf[:n]...)
				}
			}
			if !bytes.Equal(echoed, want) {
				t.Fatalf("echo of %d bytes came back different (%d bytes)", size, len(echoed))
			}
			if len(r.ends) != 0 || r.writable != 0 {
				t.Errorf("unexpected callbacks: %v", r)
			}
		})
	}
}

func TestEpollPauseResume(t *testing.T) {
	checkLeaks(t)
	d := newTestEpoll(t)
	p := registerPair(t, d)
	h, r := p.h, p.r
	if err := d.SetRecv(h, false); err != nil {
		t.Fatalf("SetRecv(false): %v", err)
	}
	if err := d.SetRecv(h, false); err != nil {
		t.Fatalf("second SetRecv(false): %v", err)
	}
	want := pattern(100 << 10) // more than one read buffer
	startWriter(t, p.peer, want)
	if n := pollFor(t, d, 100*time.Millisecond); n > 2 || len(r.data) != 0 {
		t.Fatalf("paused socket: %d events, %d bytes delivered", n, len(r.data))
	}
	if err := d.SetRecv(h, true); err != nil {
		t.Fatalf("SetRecv(true): %v", err)
	}
	pollUntil(t, d, "all data after resume", func() bool { return len(r.data) >= len(want) })
	if !bytes.Equal(r.data, want) {
		t.Fatal("data delivered after resume differs from what was sent")
	}
}

// startWriter writes b to a non-blocking fd from another goroutine,
// waiting out EAGAIN, until it is done or the peer goes away. The test waits
// for it before its earlier cleanups close fd, so it never writes to a
// descriptor number that was closed and reused.
func startWriter(t *testing.T, fd int, b []byte) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for len(b) > 0 {
			n, err := unix.Write(fd, b)
			if err == unix.EAGAIN {
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
				continue
			}
			if err != nil {
				return
			}
			b = b[n:]
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
}

func TestEpollPeerClose(t *testing.T) {
	checkLeaks(t)
	tests := []struct {
		name string
		hang func(fd int) error
	}{
		{"close", unix.Close},
		{"shutdown write", func(fd int) error { return unix.Shutdown(fd, unix.SHUT_WR) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newTestEpoll(t)
			p := registerPair(t, d)
			r := p.r
			writeAll(t, p.peer, []byte("last words"))
			if err := tc.hang(p.peer); err != nil {
				t.Fatal(err)
			}
			if tc.name == "close" {
				p.peer = -1
			}
			pollUntil(t, d, "end of stream", func() bool { return len(r.ends) > 0 })
			if n := pollFor(t, d, 100*time.Millisecond); n > 2 {
				t.Errorf("%d events in 100ms after end of stream: the loop spins", n)
			}
			if string(r.data) != "last words" || len(r.ends) != 1 || r.ends[0] != nil {
				t.Errorf("got %q and ends %v; want the data, then one nil end", r.data, r.ends)
			}
		})
	}
}

// TestEpollPausedHangupDoesNotSpin pauses a socket, lets the peer go away,
// and counts events: a level-triggered hang-up would be reported on every
// Poll.
func TestEpollPausedHangupDoesNotSpin(t *testing.T) {
	checkLeaks(t)
	for _, unread := range []bool{false, true} {
		t.Run(fmt.Sprintf("unread data %v", unread), func(t *testing.T) {
			d := newTestEpoll(t)
			p := registerPair(t, d)
			h, r := p.h, p.r
			if err := d.SetRecv(h, false); err != nil {
				t.Fatal(err)
			}
			if unread {
				writeAll(t, p.peer, []byte("unread"))
			}
			p.closePeer()
			if n := pollFor(t, d, 100*time.Millisecond); n > 2 {
				t.Errorf("%d events in 100ms on a paused socket whose peer hung up", n)
			}
			if r.callbacks() != 0 {
				t.Errorf("paused socket got callbacks: %v", r)
			}
			// Resuming still reports what is left and the end.
			if err := d.SetRecv(h, true); err != nil {
				t.Fatal(err)
			}
			pollUntil(t, d, "end of stream after resume", func() bool { return len(r.ends) > 0 })
			if unread != (string(r.data) == "unread") || len(r.ends) != 1 || r.ends[0] != nil {
				t.Errorf("after resume: %q, ends %v", r.data, r.ends)
			}
		})
	}
}

func TestEpollStaleHandle(t *testing.T) {
	checkLeaks(t)
	d := newTestEpoll(t)
	old := registerPair(t, d)
	h, r := old.h, old.r
	writeAll(t, old.peer, []byte("queued before close"))
	if err := d.Close(h); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// The slot is reused by the next registration; the old handle must not
	// reach it.
	cur := registerPair(t, d)
	h2, r2 := cur.h, cur.r
	if h2.Slot() != h.Slot() || h2 == h {
		t.Fatalf("expected slot %d reused with a new generation, got %#x after %#x", h.Slot(), uint64(h2), uint64(h))
	}
	calls := []struct {
		name string
		call func() error
	}{
		{"Close", func() error { return d.Close(h) }},
		{"SetRecv", func() error { return d.SetRecv(h, false) }},
		{"WaitWritable", func() error { return d.WaitWritable(h) }},
		{"Send", func() error { _, _, err := d.Send(h, []byte("x")); return err }},
		{"out of range", func() error { return d.SetRecv(MakeHandle(999, 0), true) }},
	}
	for _, c := range calls {
		if err := c.call(); err == nil {
			t.Errorf("%s on a stale handle succeeded", c.name)
		}
	}
	writeAll(t, cur.peer, []byte("for the new one"))
	pollUntil(t, d, "data on the new registration", func() bool { return len(r2.data) == len("for the new one") })
	pollFor(t, d, 20*time.Millisecond)
	if r.callbacks() != 0 {
		t.Errorf("closed handle got callbacks: %v", r)
	}
	if string(r2.data) != "for the new one" || len(r2.ends) != 0 {
		t.Errorf("new registration got %q, ends %v", r2.data, r2.ends)
	}
}

// TestEpollCloseInCallback closes the handle from inside OnRecv, with more
// data pending, and checks that no further callback arrives for it.
func TestEpollCloseInCallback(t *testing.T) {
	checkLeaks(t)
	d := newTestEpoll(t)
	p := registerPair(t, d)
	r := p.r
	// Nothing is delivered before the first Poll, so setting the callback
	// after Register is in time.
	r.onRecv = func([]byte) {
		if err := d.Close(p.h); err != nil {
			t.Errorf("Close in OnRecv: %v", err)
		}
	}
	startWriter(t, p.peer, pattern(4*readBufferSize))
	pollUntil(t, d, "first data", func() bool { return len(r.data) > 0 })
	pollFor(t, d, 30*time.Millisecond)
	if len(r.data) > readBufferSize || len(r.ends) != 0 {
		t.Errorf("callbacks after Close: %v", r)
	}
}

func TestEpollShortSendAndWritable(t *testing.T) {
	checkLeaks(t)
	d := newTestEpoll(t)
	p := registerPair(t, d)
	h, r, peer := p.h, p.r, p.peer
	if err := d.SetRecv(h, false); err != nil { // only the write side matters here
		t.Fatal(err)
	}
	big := pattern(8 << 20) // far more than a socket buffer holds
	n, pending, err := d.Send(h, big)
	if err != nil || pending {
		t.Fatalf("Send = %d, %v, %v", n, pending, err)
	}
	if n <= 0 || n >= len(big) {
		t.Fatalf("Send wrote %d of %d bytes; want a short count", n, len(big))
	}
	sent := n
	// Fill whatever is left, then the buffer is full: zero, no error.
	for {
		n, pending, err = d.Send(h, big[sent:])
		if err != nil || pending {
			t.Fatalf("Send on a full socket = %d, %v, %v", n, pending, err)
		}
		if n == 0 {
			break
		}
		sent += n
	}
	if err := d.WaitWritable(h); err != nil {
		t.Fatal(err)
	}
	if err := d.WaitWritable(h); err != nil { // asking twice is one request
		t.Fatal(err)
	}
	pollFor(t, d, 30*time.Millisecond)
	if r.writable != 0 {
		t.Fatalf("OnWritable on a full socket")
	}
	// Drain the peer; the socket turns writable and reports it once.
	got := make([]byte, 0, sent)
	buf := make([]byte, 256<<10)
	for len(got) < sent {
		n, err := unix.Read(peer, buf)
		if err != nil {
			t.Fatalf("read peer after %d of %d bytes: %v", len(got), sent, err)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Equal(got, big[:sent]) {
		t.Fatal("bytes read by the peer differ from what Send reported sent")
	}
	pollUntil(t, d, "OnWritable", func() bool { return r.writable > 0 })
	pollFor(t, d, 30*time.Millisecond)
	if r.writable != 1 {
		t.Errorf("OnWritable called %d times for one request", r.writable)
	}
	if n, _, err := d.Send(h, big[sent:sent+1000]); err != nil || n != 1000 {
		t.Errorf("Send after drain = %d, %v", n, err)
	}
}

func TestEpollSendToClosedPeer(t *testing.T) {
	checkLeaks(t)
	d := newTestEpoll(t)
	p := registerPair(t, d)
	h := p.h
	p.closePeer()
	// MSG_NOSIGNAL: an EPIPE error, not a SIGPIPE that would kill the test.
	if _, _, err := d.Send(h, []byte("anyone?")); !errors.Is(err, unix.EPIPE) {
		t.Errorf("Send to a closed peer: %v, want EPIPE", err)
	}
	if n, _, err := d.Send(h, nil); n != 0 || err != nil {
		t.Errorf("empty Send = %d, %v", n, err)
	}
}

// acceptRecorder is an AcceptHandler that keeps the accepted descriptors.
type acceptRecorder struct {
	fds  []int
	errs []error
}

func (a *acceptRecorder) OnAccept(fd int)         { a.fds = append(a.fds, fd) }
func (a *acceptRecorder) OnAcceptError(err error) { a.errs = append(a.errs, err) }

func listenLoopback(t *testing.T) (fd int, addr *unix.SockaddrInet4) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 64); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	return fd, sa.(*unix.SockaddrInet4)
}

func dialLoopback(t *testing.T, addr *unix.SockaddrInet4) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	// A blocking connect to loopback completes from the backlog without
	// the listener having to accept.
	if err := unix.Connect(fd, addr); err != nil {
		t.Fatalf("connect: %v", err)
	}
	return fd
}

func TestEpollListener(t *testing.T) {
	checkLeaks(t)
	d := newTestEpoll(t)
	lfd, addr := listenLoopback(t)
	a := &acceptRecorder{}
	h, err := d.Listen(lfd, a)
	if err != nil {
		unix.Close(lfd)
		t.Fatal(err)
	}
	defer d.Close(h)
	defer func() {
		for _, fd := range a.fds {
			unix.Close(fd)
		}
	}()
	for i := 0; i < 3; i++ {
		dialLoopback(t, addr)
	}
	pollUntil(t, d, "three accepts", func() bool { return len(a.fds) == 3 })
	for _, fd := range a.fds {
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		if err != nil || flags&unix.O_NONBLOCK == 0 {
			t.Errorf("accepted fd %d is not non-blocking (flags %#x, %v)", fd, flags, err)
		}
		fdFlags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil || fdFlags&unix.FD_CLOEXEC == 0 {
			t.Errorf("accepted fd %d is not close-on-exec", fd)
		}
	}

	if err := d.SetRecv(h, false); err != nil {
		t.Fatal(err)
	}
	dialLoopback(t, addr)
	if n := pollFor(t, d, 100*time.Millisecond); n > 2 || len(a.fds) != 3 {
		t.Fatalf("paused listener: %d events, %d accepts (want 3)", n, len(a.fds))
	}
	if err := d.SetRecv(h, true); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, d, "the accept held back while paused", func() bool { return len(a.fds) == 4 })
	if len(a.errs) != 0 {
		t.Errorf("accept errors: %v", a.errs)
	}
}

func TestEpollWakeInterruptsPoll(t *testing.T) {
	checkLeaks(t)
	d := newTestEpoll(t)
	var wakers sync.WaitGroup
	defer wakers.Wait() // no Wake may reach the eventfd after Shutdown closes it
	for i := 0; i < 20; i++ {
		wakers.Add(1)
		go func() {
			defer wakers.Done()
			time.Sleep(time.Millisecond)
			if err := d.Wake(); err != nil {
				t.Errorf("Wake: %v", err)
			}
		}()
		start := time.Now()
		if _, err := d.Poll(-1); err != nil {
			t.Fatal(err)
		}
		if el := time.Since(start); el > time.Second {
			t.Fatalf("Poll(-1) returned %v after Wake", el)
		}
		wakers.Wait()
	}
	// A wakeup that arrives before Poll is not lost either; the watchdog
	// only unblocks the Poll so that a failure is reported, not hung.
	if err := d.Wake(); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	wakers.Add(1)
	go func() {
		defer wakers.Done()
		select {
		case <-time.After(2 * time.Second):
			d.Wake()
		case <-stop:
		}
	}()
	start := time.Now()
	_, err := d.Poll(-1)
	close(stop)
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("a Wake before Poll was lost: Poll waited %v", el)
	}
}

// TestEpollCloseOtherInSameBatch makes two sockets readable at once; the
// first handler to run closes the other and registers a fresh socket, which
// reuses the closed one's slot. The closed socket's event, already fetched
// in the same batch, must not reach its old handler, and must not hand the
// new one anything (with nothing to read, a mis-routed event is silent, so
// this checks the closed side more than the generation check).
func TestEpollCloseOtherInSameBatch(t *testing.T) {
	checkLeaks(t)
	d := newTestEpoll(t)
	type side struct {
		h    Handle
		r    recorder
		peer int
	}
	var sides [2]side
	var fresh recorder
	var freshHandle Handle
	freshPeer := -1
	closeOnCleanup(t, &freshPeer)
	for i := range sides {
		local, peer := socketPair(t)
		sides[i].peer = peer
		closeOnCleanup(t, &sides[i].peer)
		other := &sides[1-i]
		sides[i].r.onRecv = func([]byte) {
			if freshPeer >= 0 {
				return // the other one already ran and closed this side
			}
			if err := d.Close(other.h); err != nil {
				t.Errorf("Close: %v", err)
			}
			l, p := socketPair(t)
			freshPeer = p
			h, err := d.Register(l, &fresh)
			if err != nil {
				unix.Close(l)
				t.Errorf("Register: %v", err)
				return
			}
			freshHandle = h
			if h.Slot() != other.h.Slot() {
				t.Errorf("fresh socket got slot %d, want the closed slot %d reused", h.Slot(), other.h.Slot())
			}
		}
		h, err := d.Register(local, &sides[i].r)
		if err != nil {
			t.Fatal(err)
		}
		sides[i].h = h
	}
	writeAll(t, sides[0].peer, []byte("zero"))
	writeAll(t, sides[1].peer, []byte("one"))
	pollUntil(t, d, "a handler to run", func() bool { return freshPeer >= 0 })
	pollFor(t, d, 20*time.Millisecond)
	ran := 0
	for i := range sides {
		if len(sides[i].r.data) > 0 {
			ran++
			if err := d.Close(sides[i].h); err != nil {
				t.Errorf("Close survivor: %v", err)
			}
		}
	}
	if ran != 1 {
		t.Errorf("%d handlers received data, want exactly 1 (the other was closed)", ran)
	}
	if fresh.callbacks() != 0 {
		t.Errorf("the socket that reused the slot got the closed one's event: %v", &fresh)
	}
	if err := d.Close(freshHandle); err != nil {
		t.Errorf("Close fresh: %v", err)
	}
}

// TestEpollDetach hands a socket from one driver to another: the first
// must stop delivering and leave the descriptor open, the second must get
// everything sent afterwards.
func TestEpollDetach(t *testing.T) {
	checkLeaks(t)
	from := newTestEpoll(t)
	to := newTestEpoll(t)
	p := registerPair(t, from)
	h, before, local, peer := p.h, p.r, p.fd, p.peer
	var after recorder
	writeAll(t, peer, []byte("first"))
	pollUntil(t, from, "data before detach", func() bool { return len(before.data) == len("first") })
	fd, err := from.Detach(h)
	if err != nil {
		t.Fatalf("Detach: %v", err)
	}
	if fd != local {
		t.Fatalf("Detach returned fd %d, want %d", fd, local)
	}
	if _, err := from.Detach(h); err == nil {
		t.Error("second Detach of the same handle succeeded")
	}
	writeAll(t, peer, []byte("second"))
	if n := pollFor(t, from, 20*time.Millisecond); n != 0 || len(before.data) != len("first") {
		t.Fatalf("detached socket still reported to its old driver: %d events, %q", n, before.data)
	}
	h2, err := to.Register(fd, &after)
	if err != nil {
		unix.Close(fd)
		t.Fatalf("Register the detached fd: %v", err)
	}
	defer to.Close(h2)
	pollUntil(t, to, "data after adoption", func() bool { return len(after.data) == len("second") })
	if string(after.data) != "second" {
		t.Errorf("adopting driver got %q", after.data)
	}
}

// TestEpollReadBudgetLeftovers fills a socket with far more than one event's
// read budget and sends nothing after: under edge triggering no new event
// comes, so what the budget left must still be read by later Polls, and a
// hang-up queued behind the data must still be reported.
func TestEpollReadBudgetLeftovers(t *testing.T) {
	checkLeaks(t)
	for _, hangUp := range []bool{false, true} {
		t.Run(fmt.Sprintf("hang-up %v", hangUp), func(t *testing.T) {
			d := newTestEpoll(t)
			d.readBuf = make([]byte, 512) // budget: maxReadsPerEvent × 512 bytes
			p := registerPair(t, d)
			payload := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB, many budgets
			writeAll(t, p.peer, payload)
			if hangUp {
				p.closePeer()
			}
			pollUntil(t, d, "all data", func() bool { return len(p.r.data) == len(payload) })
			if !bytes.Equal(p.r.data, payload) {
				t.Fatal("data differs from what was sent")
			}
			if hangUp {
				pollUntil(t, d, "the end after the data", func() bool { return len(p.r.ends) > 0 })
				if len(p.r.ends) != 1 || p.r.ends[0] != nil {
					t.Fatalf("ends %v, want one nil", p.r.ends)
				}
			}
			// The last full budget could not know the socket was empty:
			// one more Poll finds out and forgets it.
			if _, err := d.Poll(0); err != nil {
				t.Fatal(err)
			}
			if len(d.readMore) != 0 {
				t.Fatalf("%d sockets still queued for reading after a drain", len(d.readMore))
			}
		})
	}
}

// TestEpollRequestResponseSyscalls pins what a request and its response
// cost the epoll driver in system calls, the floor the proxy's CPU per
// query rests on: one recv per readable event however many messages it
// brings (a short read means the socket is drained, so no second read only
// to find EAGAIN), one send per response written straight out, and no
// epoll_ctl at all while a connection just reads and writes (no EPOLLOUT
// armed and disarmed per write).
func TestEpollRequestResponseSyscalls(t *testing.T) {
	checkLeaks(t)
	const rounds = 20
	tests := []struct {
		name     string
		size     int // bytes of one request; the response echoes it
		messages int // requests the peer writes before the driver polls
	}{
		{"small query", 40, 1},
		{"result set", 16 << 10, 1},
		{"pipelined queries", 40, 4},
		{"just under the read buffer", readBufferSize - 1, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newTestEpoll(t)
			p := registerPair(t, d)
			p.r.onRecv = func(b []byte) {
				if n, pending, err := d.Send(p.h, b); err != nil || pending || n != len(b) {
					t.Errorf("echo Send(%d bytes) = %d, %v, %v", len(b), n, pending, err)
				}
			}
			for _, fd := range []int{p.fd, p.peer} { // room for a whole batch either way
				if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4*readBufferSize); err != nil {
					t.Fatal(err)
				}
			}
			msg := pattern(tc.size)
			batch := bytes.Repeat(msg, tc.messages)
			buf := make([]byte, len(batch))
			before := d.calls
			for round := 0; round < rounds; round++ {
				writeAll(t, p.peer, batch)
				want := len(p.r.data) + len(batch)
				pollUntil(t, d, "the requests", func() bool { return len(p.r.data) >= want })
				for got := 0; got < len(batch); {
					n, err := unix.Read(p.peer, buf[got:])
					if err == unix.EAGAIN {
						continue // the socket pair is local: the echo is on its way
					}
					if err != nil {
						t.Fatalf("reading the response: %v", err)
					}
					got += n
				}
				if !bytes.Equal(buf, batch) {
					t.Fatalf("round %d: the response differs from the requests", round)
				}
			}
			calls := d.calls
			if n := calls.recv - before.recv; n != rounds {
				t.Errorf("%d recv calls for %d readable events, want one each", n, rounds)
			}
			if n := calls.send - before.send; n != rounds {
				t.Errorf("%d send calls for %d responses, want one each", n, rounds)
			}
			if n := calls.ctl - before.ctl; n != 0 {
				t.Errorf("%d epoll_ctl calls while only reading and writing, want none", n)
			}
		})
	}
}
