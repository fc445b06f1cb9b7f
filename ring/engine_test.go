package ring_test

import (
	"bytes"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/scalestack/scalestack/reactor"
	"github.com/scalestack/scalestack/ring"
)

// trackedEcho is an echo connection the loop force-closes at Stop.
type trackedEcho struct{ echoConn }

func (c *trackedEcho) ForceClose() { _ = c.close() }

// echoListener accepts on a loop and serves every connection with an echo.
type echoListener struct {
	l      *reactor.Loop
	h      reactor.Handle
	errs   atomic.Int32
	closed bool
}

func (a *echoListener) OnAccept(fd int) {
	c := &trackedEcho{echoConn{d: a.l.Driver()}}
	h, err := a.l.Driver().Register(fd, c)
	if err != nil {
		a.errs.Add(1)
		unix.Close(fd)
		return
	}
	c.h = h
	a.l.Track(c)
}

func (a *echoListener) OnAcceptError(error) { a.errs.Add(1) }

func (a *echoListener) ForceClose() {
	if !a.closed {
		a.closed = true
		_ = a.l.Driver().Close(a.h)
	}
}

// TestEngineOnRing runs the reactor engine with two io_uring loops: each
// serves an echo listener, loops hand work to each other, and Stop leaves
// no goroutine or descriptor behind.
func TestEngineOnRing(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	fdsBefore := openFDs(t)

	var engineErrs atomic.Int32
	eng, err := reactor.New(reactor.Config{
		Loops:     2,
		NewDriver: ring.New,
		OnError:   func(error) { engineErrs.Add(1) },
	})
	if err != nil {
		t.Fatalf("new engine: %v", err)
	}
	if err := eng.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	stopped := false
	defer func() {
		if !stopped {
			eng.Stop()
		}
	}()

	var addrs []string
	var listeners []*echoListener
	for _, l := range eng.Loops() {
		fd, addr := tcpListener(t)
		var setupErr error
		err := l.Exec(func(l *reactor.Loop) {
			if name := l.Driver().Name(); name != "uring" {
				t.Errorf("loop %d runs the %s driver", l.ID(), name)
			}
			el := &echoListener{l: l}
			h, err := l.Driver().Listen(fd, el)
			if err != nil {
				setupErr = err
				unix.Close(fd)
				return
			}
			el.h = h
			l.Track(el)
			listeners = append(listeners, el)
		})
		if err != nil || setupErr != nil {
			t.Fatalf("listen on loop %d: %v %v", l.ID(), err, setupErr)
		}
		addrs = append(addrs, addr)
	}

	// Cross-loop hand-off: loop 0 posts to loop 1, which counts.
	var handed atomic.Int32
	if err := eng.Loop(0).Exec(func(l *reactor.Loop) {
		for i := range 100 {
			l.Post(eng.Loop(1), reactor.Task{Fn: countTask, Arg: &handed, N: uint64(i)})
		}
	}); err != nil {
		t.Fatalf("exec: %v", err)
	}

	var conns []net.Conn
	for i, addr := range addrs {
		for j := range 5 {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			conns = append(conns, c)
			msg := pattern(i*10+j, 100<<10)
			go func() { _, _ = c.Write(msg) }()
			got := make([]byte, len(msg))
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatalf("read echo from loop %d: %v", i, err)
			}
			if !bytes.Equal(got, msg) {
				t.Fatalf("loop %d echoed different bytes", i)
			}
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for handed.Load() != 100 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := handed.Load(); n != 100 {
		t.Errorf("%d of 100 cross-loop tasks ran", n)
	}

	// Stop with the connections still open: the loops force-close them.
	eng.Stop()
	stopped = true
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Error("a connection still delivered data after Stop")
		}
		c.Close()
	}
	for _, el := range listeners {
		if n := el.errs.Load(); n != 0 {
			t.Errorf("%d accept errors", n)
		}
	}
	if n := engineErrs.Load(); n != 0 {
		t.Errorf("%d engine errors", n)
	}
	if after := openFDs(t); after != fdsBefore {
		t.Errorf("%d descriptors open after Stop, %d before", after, fdsBefore)
	}
}

func countTask(_ *reactor.Loop, arg any, _ uint64) { arg.(*atomic.Int32).Add(1) }
