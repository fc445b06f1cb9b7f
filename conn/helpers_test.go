package conn_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalestack/scalestack/buffer"
	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/reactor"
	"github.com/scalestack/scalestack/ring"
	"go.uber.org/goleak"
)

func init() {
	// Poison released buffers so a connection that touches output after
	// handing it back corrupts what the tests compare.
	buffer.Debug = true
}

// testDrivers are the I/O drivers the conn tests run on; a driver joins
// with one line.
var testDrivers = []struct {
	name      string
	newDriver reactor.NewDriverFunc
}{
	{"epoll", reactor.NewEpoll},
	{"uring", ring.New},
}

// forEachDriver runs fn as a subtest per driver.
func forEachDriver(t *testing.T, fn func(t *testing.T, newDriver reactor.NewDriverFunc)) {
	for _, d := range testDrivers {
		t.Run(d.name, func(t *testing.T) { fn(t, d.newDriver) })
	}
}

// countingDriver counts Send calls, to see how writes were coalesced.
type countingDriver struct {
	reactor.Driver
	sends *atomic.Int64
}

func (d countingDriver) Send(h reactor.Handle, b []byte) (int, bool, error) {
	d.sends.Add(1)
	return d.Driver.Send(h, b)
}

func counting(inner reactor.NewDriverFunc, sends *atomic.Int64) reactor.NewDriverFunc {
	return func() (reactor.Driver, error) {
		d, err := inner()
		if err != nil {
			return nil, err
		}
		return countingDriver{Driver: d, sends: sends}, nil
	}
}

var netpollerOnce sync.Once

func openFDCount(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("list descriptors: %v", err)
	}
	return len(entries) - 1 // ReadDir's own
}

// checkLeaks fails the test if goroutines or descriptors outlive it. Call
// it first so its cleanup runs after the engine has stopped.
func checkLeaks(t *testing.T) {
	t.Helper()
	netpollerOnce.Do(func() {
		// The runtime's poller descriptors are opened once, for good.
		if ln, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
			ln.Close()
		}
	})
	before := openFDCount(t)
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for openFDCount(t) > before {
			if time.Now().After(deadline) {
				t.Errorf("descriptor leak: %d open, %d before", openFDCount(t), before)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		goleak.VerifyNone(t, ignore)
	})
}

// startEngine starts an engine and stops it when the test ends.
func startEngine(t *testing.T, loops int, newDriver reactor.NewDriverFunc) *reactor.Engine {
	t.Helper()
	e, err := reactor.New(reactor.Config{Loops: loops, NewDriver: newDriver, OnError: func(err error) {
		t.Errorf("engine: %v", err)
	}})
	if err != nil {
		t.Fatalf("reactor.New: %v", err)
	}
	if err := e.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(e.Stop)
	return e
}

// expectClosedWith checks how the server side of c ended after sent bytes:
// still open (wantErr nil), or closed with wantErr and the peer seeing the
// end of the stream.
func expectClosedWith(t *testing.T, closed <-chan error, c net.Conn, wantErr error, sent int) {
	t.Helper()
	if wantErr == nil {
		select {
		case err := <-closed:
			t.Fatalf("closed with %v after %d bytes", err, sent)
		case <-time.After(200 * time.Millisecond):
		}
		return
	}
	select {
	case err := <-closed:
		if !errors.Is(err, wantErr) {
			t.Fatalf("OnClose(%v), want %v", err, wantErr)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not closed")
	}
	expectEOFOrReset(t, c)
}

// loopbackAddr is 127.0.0.1 with a port the kernel picks, for listeners.
func loopbackAddr(t *testing.T) conn.Addr {
	t.Helper()
	a, err := conn.ResolveAddr("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// listen starts a listener on a loopback TCP port and closes it at the end.
func listen(t *testing.T, e *reactor.Engine, cfg conn.ListenConfig) *conn.Listener {
	t.Helper()
	if cfg.Addr.Network == "" {
		cfg.Addr = loopbackAddr(t)
	}
	ln, err := conn.Listen(e, cfg)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func unixAddr(t *testing.T) conn.Addr {
	t.Helper()
	dir, err := os.MkdirTemp("", "ss")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	a, err := conn.ResolveAddr("unix", filepath.Join(dir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func dial(t *testing.T, a conn.Addr) net.Conn {
	t.Helper()
	c, err := net.DialTimeout(a.Network, a.Address, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", a, err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// funcHandler adapts functions to conn.Handler; nil ones do nothing (and
// a nil onData consumes everything).
type funcHandler struct {
	onOpen  func(c *conn.Conn)
	onData  func(c *conn.Conn, data []byte) int
	onClose func(c *conn.Conn, err error)
}

func (h *funcHandler) OnOpen(c *conn.Conn) {
	if h.onOpen != nil {
		h.onOpen(c)
	}
}

func (h *funcHandler) OnData(c *conn.Conn, data []byte) int {
	if h.onData != nil {
		return h.onData(c, data)
	}
	return len(data)
}

func (h *funcHandler) OnClose(c *conn.Conn, err error) {
	if h.onClose != nil {
		h.onClose(c, err)
	}
}

// echoData is an OnData that writes everything back.
func echoData(c *conn.Conn, data []byte) int {
	c.Write(data)
	return len(data)
}

// readExactly reads n bytes or fails the test.
func readExactly(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	buf := make([]byte, n)
	off := 0
	for off < n {
		m, err := c.Read(buf[off:])
		off += m
		if err != nil {
			t.Fatalf("read %d of %d bytes: %v", off, n, err)
		}
	}
	return buf
}
