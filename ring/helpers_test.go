package ring_test

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scalestack/scalestack/reactor"
	"github.com/scalestack/scalestack/ring"
)

// drivers lists the implementations every behavioural test runs against:
// the io_uring driver must be observably the same as the epoll one.
var drivers = []struct {
	name string
	new  reactor.NewDriverFunc
}{
	{"epoll", reactor.NewEpoll},
	{"uring", ring.New},
}

// onLoop runs fn with an initialised driver on a fresh goroutine locked to
// its OS thread, as a reactor loop does, and shuts the driver down after.
// The goroutine never unlocks, so its thread exits with it.
func onLoop(t *testing.T, newDriver reactor.NewDriverFunc, fn func(d reactor.Driver)) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		d, err := newDriver()
		if err != nil {
			t.Errorf("new driver: %v", err)
			return
		}
		if err := d.Init(); err != nil {
			t.Errorf("init %s: %v", d.Name(), err)
			return
		}
		defer func() {
			if err := d.Shutdown(); err != nil {
				t.Errorf("shutdown %s: %v", d.Name(), err)
			}
		}()
		fn(d)
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("driver goroutine did not finish in 60s")
	}
}

// pollUntil polls d until cond holds or limit passes, reporting a timeout
// as a test error named by what.
func pollUntil(t *testing.T, d reactor.Driver, limit time.Duration, what string, cond func() bool) bool {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Errorf("%s: timed out after %v", what, limit)
			return false
		}
		if _, err := d.Poll(5 * time.Millisecond); err != nil {
			t.Errorf("%s: poll: %v", what, err)
			return false
		}
	}
	return true
}

// pollFor keeps polling d for a while, for checks that nothing happens.
func pollFor(t *testing.T, d reactor.Driver, span time.Duration) {
	t.Helper()
	deadline := time.Now().Add(span)
	for time.Now().Before(deadline) {
		if _, err := d.Poll(2 * time.Millisecond); err != nil {
			t.Errorf("poll: %v", err)
			return
		}
	}
}

// socketPair returns a non-blocking end for the driver and a blocking
// *os.File for the test's side, which is closed when the test ends (closing
// it earlier as well is harmless).
func socketPair(t *testing.T) (int, *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	peer := os.NewFile(uintptr(fds[1]), "peer")
	t.Cleanup(func() { peer.Close() })
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		t.Fatalf("set non-blocking: %v", err)
	}
	return fds[0], peer
}

// tcpListener returns a non-blocking listening socket on 127.0.0.1 and its
// address.
func tcpListener(t testing.TB) (int, string) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("bind: %v", err)
	}
	if err := unix.Listen(fd, 4096); err != nil {
		t.Fatalf("listen: %v", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatalf("getsockname: %v", err)
	}
	port := sa.(*unix.SockaddrInet4).Port
	return fd, fmt.Sprintf("127.0.0.1:%d", port)
}

// tcpPair returns two connected non-blocking TCP sockets over loopback.
func tcpPair(t testing.TB) (int, int) {
	t.Helper()
	lfd, _ := tcpListener(t)
	defer unix.Close(lfd)
	sa, err := unix.Getsockname(lfd)
	if err != nil {
		t.Fatalf("getsockname: %v", err)
	}
	cfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	if err := unix.Connect(cfd, sa); err != nil {
		t.Fatalf("connect: %v", err)
	}
	var sfd int
	for {
		sfd, _, err = unix.Accept4(lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != unix.EAGAIN {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	if err := unix.SetNonblock(cfd, true); err != nil {
		t.Fatalf("set non-blocking: %v", err)
	}
	for _, fd := range []int{cfd, sfd} {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
			t.Fatalf("TCP_NODELAY: %v", err)
		}
	}
	return cfd, sfd
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("read /proc/self/fd: %v", err)
	}
	return len(ents)
}

// pattern returns n bytes in which every position is recognisable, so a
// lost, duplicated or reordered chunk shows up in a comparison.
func pattern(seed, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((i*7 + seed*13 + i/251) % 251)
	}
	return b
}

// dial connects to addr from the test's side.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Errorf("dial %s: %v", addr, err)
		return nil
	}
	return c
}

// echoConn is a driver-side connection that writes back what it reads,
// coping with both Send styles: immediate partial writes (epoll) and
// pending sends completed in OnSent (io_uring).
type echoConn struct {
	d       reactor.Driver
	h       reactor.Handle
	out     []byte // unsent bytes; while a send is pending its prefix belongs to the driver
	sending int    // length of that prefix
	waiting bool   // a WaitWritable is outstanding
	err     error
	ended   bool
	endErr  error
	after   int // callbacks that arrived after Close
	closed  bool
}

func (c *echoConn) OnRecv(b []byte) {
	if c.closed {
		c.after++
		return
	}
	c.out = append(c.out, b...)
	c.flush()
}

func (c *echoConn) OnRecvEnd(err error) {
	if c.closed {
		c.after++
	}
	c.ended, c.endErr = true, err
}

func (c *echoConn) OnWritable() {
	if c.closed {
		c.after++
		return
	}
	c.waiting = false
	c.flush()
}

func (c *echoConn) OnSent(n int, err error) {
	if c.closed {
		c.after++
		return
	}
	c.sending = 0
	if err != nil {
		c.err = err
		return
	}
	c.consume(n)
	c.flush()
}

// consume drops n sent bytes, moving the rest to the front so the buffer is
// reused; it runs only when no send holds the buffer.
func (c *echoConn) consume(n int) {
	rest := copy(c.out, c.out[n:])
	c.out = c.out[:rest]
}

func (c *echoConn) flush() {
	if c.sending > 0 || c.waiting || len(c.out) == 0 || c.err != nil {
		return
	}
	n, pending, err := c.d.Send(c.h, c.out)
	switch {
	case err != nil:
		c.err = err
	case pending:
		c.sending = len(c.out)
	default:
		c.consume(n)
		if len(c.out) > 0 {
			c.waiting = true
			if err := c.d.WaitWritable(c.h); err != nil {
				c.err = err
			}
		}
	}
}

func (c *echoConn) close() error {
	c.closed = true
	return c.d.Close(c.h)
}

// forEachDriver runs fn as a subtest for each of the drivers, on a loop
// thread of its own (see onLoop).
func forEachDriver(t *testing.T, fn func(t *testing.T, d reactor.Driver)) {
	t.Helper()
	for _, drv := range drivers {
		t.Run(drv.name, func(t *testing.T) {
			onLoop(t, drv.new, func(d reactor.Driver) { fn(t, d) })
		})
	}
}

// listenOnLoopback registers a new listening socket on 127.0.0.1 with d
// under handler and returns its handle and address. Like
// ring.RegisterOrReport it reports a failure without stopping the test and
// returns ok false, and the caller returns.
func listenOnLoopback(t *testing.T, d reactor.Driver, handler reactor.AcceptHandler) (h reactor.Handle, addr string, ok bool) {
	t.Helper()
	lfd, addr := tcpListener(t)
	h, err := d.Listen(lfd, handler)
	if err != nil {
		t.Errorf("listen on %s: %v", addr, err)
		unix.Close(lfd)
		return 0, "", false
	}
	return h, addr, true
}
