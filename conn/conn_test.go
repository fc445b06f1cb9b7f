package conn_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalestack/scalestack/buffer"
	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/reactor"
	"golang.org/x/sys/unix"
)

// writeStep queues output in one of the three ways a handler can.
type writeStep func(c *conn.Conn, p []byte)

func viaWrite(c *conn.Conn, p []byte) { c.Write(p) }

func viaReserve(c *conn.Conn, p []byte) { copy(c.Reserve(len(p)), p) }

func viaWriteBuf(c *conn.Conn, p []byte) {
	b := buffer.Get(len(p))
	b.B = append(b.B, p...)
	c.WriteBuf(b)
}

func TestOutputOfOneIterationGoesOutInOneSend(t *testing.T) {
	cases := []struct {
		name  string
		steps []writeStep
	}{
		{"one write", []writeStep{viaWrite}},
		{"hundred writes", repeatStep(viaWrite, 100)},
		{"hundred reserves", repeatStep(viaReserve, 100)},
		{"write buf first", append([]writeStep{viaWriteBuf}, repeatStep(viaWrite, 10)...)},
		{"mixed", repeatMixed(60)},
	}
	forEachDriver(t, func(t *testing.T, newDriver reactor.NewDriverFunc) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				checkLeaks(t)
				var sends atomic.Int64
				e := startEngine(t, 1, counting(newDriver, &sends))
				var want bytes.Buffer
				for i := range tc.steps {
					fmt.Fprintf(&want, "<%d:%s>", i, strings.Repeat("x", i%7))
				}
				ln := listen(t, e, conn.ListenConfig{NewHandler: func(*conn.Conn) conn.Handler {
					return &funcHandler{onData: func(c *conn.Conn, data []byte) int {
						for i, step := range tc.steps {
							step(c, fmt.Appendf(nil, "<%d:%s>", i, strings.Repeat("x", i%7)))
						}
						return len(data)
					}}
				}})
				c := dial(t, ln.Addr())
				before := sends.Load()
				if _, err := c.Write([]byte("go")); err != nil {
					t.Fatal(err)
				}
				got := readExactly(t, c, want.Len())
				if !bytes.Equal(got, want.Bytes()) {
					t.Fatalf("got %q, want %q", got, want.Bytes())
				}
				if n := sends.Load() - before; n != 1 {
					t.Fatalf("%d writes went out in %d sends, want 1", len(tc.steps), n)
				}
			})
		}
	})
}

func repeatStep(s writeStep, n int) []writeStep {
	steps := make([]writeStep, n)
	for i := range steps {
		steps[i] = s
	}
	return steps
}

func repeatMixed(n int) []writeStep {
	all := []writeStep{viaWrite, viaReserve, viaWriteBuf}
	steps := make([]writeStep, n)
	for i := range steps {
		steps[i] = all[i%len(all)]
	}
	return steps
}

// A WriteBuf too large for the socket must stay intact until it is all sent;
// buffer.Debug poisons it if it were released early.
func TestLargeWriteBufSurvivesPartialSends(t *testing.T) {
	forEachDriver(t, func(t *testing.T, newDriver reactor.NewDriverFunc) {
		checkLeaks(t)
		e := startEngine(t, 1, newDriver)
		const size = 8 << 20
		payload := make([]byte, size)
		for i := range payload {
			payload[i] = byte(i / 251)
		}
		ln := listen(t, e, conn.ListenConfig{NewHandler: func(*conn.Conn) conn.Handler {
			return &funcHandler{onData: func(c *conn.Conn, data []byte) int {
				b := buffer.Get(size)
				b.B = append(b.B, payload...)
				c.WriteBuf(b)
				return len(data)
			}}
		}})
		c := dial(t, ln.Addr())
		c.Write([]byte("go"))
		time.Sleep(50 * time.Millisecond) // let the first sends fill the socket
		if got := readExactly(t, c, size); !bytes.Equal(got, payload) {
			t.Fatal("the large buffer arrived corrupted")
		}
	})
}

// recordedCall is one OnData seen by a pausing handler.
type recordedCall struct{ data string }

func TestResumeReadPresentsHeldInputAgain(t *testing.T) {
	cases := []struct {
		name         string
		consumeFirst int // bytes of "abc" consumed before pausing
		wantResumed  string
	}{
		{"nothing consumed", 0, "abcdef"},
		{"part consumed", 1, "bcdef"},
		{"all consumed", 3, "def"},
	}
	forEachDriver(t, func(t *testing.T, newDriver reactor.NewDriverFunc) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				checkLeaks(t)
				e := startEngine(t, 1, newDriver)
				calls := make(chan recordedCall, 16)
				conns := make(chan *conn.Conn, 1)
				ln := listen(t, e, conn.ListenConfig{NewHandler: func(*conn.Conn) conn.Handler {
					paused := false
					return &funcHandler{
						onOpen: func(c *conn.Conn) { conns <- c },
						onData: func(c *conn.Conn, data []byte) int {
							calls <- recordedCall{data: string(data)}
							if !paused {
								paused = true
								c.PauseRead()
								return tc.consumeFirst
							}
							return len(data)
						},
					}
				}})
				c := dial(t, ln.Addr())
				server := <-conns
				c.Write([]byte("abc"))
				if got := <-calls; got.data != "abc" {
					t.Fatalf("first delivery %q, want abc", got.data)
				}
				c.Write([]byte("def"))
				select {
				case got := <-calls:
					t.Fatalf("delivered %q while paused", got.data)
				case <-time.After(200 * time.Millisecond):
				}
				if err := server.Loop().Exec(func(*reactor.Loop) { server.ResumeRead() }); err != nil {
					t.Fatal(err)
				}
				// After the resume the handler consumes everything, so the
				// calls together are exactly the held bytes then the new.
				var got string
				deadline := time.After(5 * time.Second)
				for len(got) < len(tc.wantResumed) {
					select {
					case call := <-calls:
						got += call.data
					case <-deadline:
						t.Fatalf("after resume got %q, want %q", got, tc.wantResumed)
					}
				}
				if got != tc.wantResumed {
					t.Fatalf("after resume got %q, want %q", got, tc.wantResumed)
				}
			})
		}
	})
}

func TestUnconsumedInputOverMaxInputCloses(t *testing.T) {
	const limit = 4096
	cases := []struct {
		name    string
		consume bool
		send    int
		wantErr error
	}{
		{"held input over the limit", false, 4 * limit, conn.ErrInputTooLarge},
		{"held input under the limit", false, limit / 2, nil},
		{"consumed input of any size", true, 64 * limit, nil},
	}
	forEachDriver(t, func(t *testing.T, newDriver reactor.NewDriverFunc) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				checkLeaks(t)
				e := startEngine(t, 1, newDriver)
				closed := make(chan error, 1)
				ln := listen(t, e, conn.ListenConfig{
					Options: conn.Options{MaxInput: limit},
					NewHandler: func(*conn.Conn) conn.Handler {
						return &funcHandler{
							onData: func(c *conn.Conn, data []byte) int {
								if tc.consume {
									return len(data)
								}
								return 0
							},
							onClose: func(c *conn.Conn, err error) { closed <- err },
						}
					},
				})
				c := dial(t, ln.Addr())
				if _, err := c.Write(make([]byte, tc.send)); err != nil {
					t.Fatal(err)
				}
				expectClosedWith(t, closed, c, tc.wantErr, tc.send)
			})
		}
	})
}

// expectEOFOrReset accepts either way a server can drop a connection that
// still had unread input.
func expectEOFOrReset(t *testing.T, c net.Conn) {
	t.Helper()
	var b [1]byte
	_, err := c.Read(b[:])
	if err == nil {
		t.Fatal("connection still open")
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection not closed: %v", err)
	}
}

// moveTo carries a detached descriptor to the loop that adopts it.
type moveTo struct {
	handler conn.Handler
	peer    string
	done    chan error
}

func adoptTask(l *reactor.Loop, arg any, fd uint64) {
	m := arg.(*moveTo)
	_, err := conn.Adopt(l, int(fd), "tcp", m.peer, m.handler, conn.Options{})
	m.done <- err
}

func TestDetachAndAdoptMovesAQuietConnection(t *testing.T) {
	cases := []struct {
		name    string
		holdIn  bool // the handler keeps unconsumed input
		wantErr error
	}{
		{"quiet", false, nil},
		{"with held input", true, conn.ErrNotQuiet},
	}
	forEachDriver(t, func(t *testing.T, newDriver reactor.NewDriverFunc) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				checkLeaks(t)
				e := startEngine(t, 2, newDriver)
				var lastLoop atomic.Int64
				echoOn := func(c *conn.Conn, data []byte) int {
					lastLoop.Store(int64(c.Loop().ID()))
					if tc.holdIn && string(data) == "hold" {
						return 0
					}
					c.Write(data)
					return len(data)
				}
				conns := make(chan *conn.Conn, 1)
				ln := listen(t, e, conn.ListenConfig{
					Spread: true, // accepted on loop 0, then round-robin: the first lands on loop 0
					NewHandler: func(*conn.Conn) conn.Handler {
						return &funcHandler{onOpen: func(c *conn.Conn) { conns <- c }, onData: echoOn}
					},
				})
				c := dial(t, ln.Addr())
				server := <-conns
				c.Write([]byte("one"))
				if got := readExactly(t, c, 3); string(got) != "one" {
					t.Fatalf("got %q", got)
				}
				src := server.Loop()
				dst := e.Loop(1 - src.ID())
				if tc.holdIn {
					c.Write([]byte("hold"))
					time.Sleep(50 * time.Millisecond)
				}
				m := &moveTo{
					handler: &funcHandler{onData: echoOn},
					peer:    server.RemoteAddr(),
					done:    make(chan error, 1),
				}
				var detachErr error
				if err := src.Exec(func(l *reactor.Loop) {
					fd, err := server.Detach()
					if err != nil {
						detachErr = err
						return
					}
					l.Post(dst, reactor.Task{Fn: adoptTask, Arg: m, N: uint64(fd)})
				}); err != nil {
					t.Fatal(err)
				}
				if !errors.Is(detachErr, tc.wantErr) {
					t.Fatalf("Detach: %v, want %v", detachErr, tc.wantErr)
				}
				want := src.ID()
				if tc.wantErr == nil {
					if err := <-m.done; err != nil {
						t.Fatalf("Adopt: %v", err)
					}
					want = dst.ID()
				}
				c.Write([]byte("two"))
				expect := "two"
				if tc.holdIn {
					expect = "holdtwo"
				}
				if got := readExactly(t, c, len(expect)); string(got) != expect {
					t.Fatalf("after the move got %q, want %q", got, expect)
				}
				if got := lastLoop.Load(); got != int64(want) {
					t.Fatalf("served on loop %d, want loop %d", got, want)
				}
				c.Close()
				// A connection that left the listener must not hold a slot
				// of its MaxConns budget for ever.
				deadline := time.Now().Add(5 * time.Second)
				for ln.OpenConns() != 0 {
					if time.Now().After(deadline) {
						t.Fatalf("listener still counts %d open connections", ln.OpenConns())
					}
					time.Sleep(5 * time.Millisecond)
				}
			})
		}
	})
}

func TestListenerMaxConnsRefusesTheExcess(t *testing.T) {
	cases := []struct {
		name       string
		refuse     func(c *conn.Conn) conn.Handler
		wantRefuse string // what a refused client reads before EOF
	}{
		{"closed at once", nil, ""},
		{"answered by Refuse", func(*conn.Conn) conn.Handler {
			return &funcHandler{onOpen: func(c *conn.Conn) {
				c.Write([]byte("busy\n"))
				c.Close()
			}}
		}, "busy\n"},
	}
	const maxConns = 2
	forEachDriver(t, func(t *testing.T, newDriver reactor.NewDriverFunc) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				checkLeaks(t)
				e := startEngine(t, 2, newDriver)
				ln := listen(t, e, conn.ListenConfig{
					MaxConns:   maxConns,
					Refuse:     tc.refuse,
					NewHandler: func(*conn.Conn) conn.Handler { return &funcHandler{onData: echoData} },
				})
				var admitted []net.Conn
				for i := 0; i < maxConns; i++ {
					c := dial(t, ln.Addr())
					c.Write([]byte("hi"))
					readExactly(t, c, 2)
					admitted = append(admitted, c)
				}
				extra := dial(t, ln.Addr())
				if tc.wantRefuse != "" {
					if got := readExactly(t, extra, len(tc.wantRefuse)); string(got) != tc.wantRefuse {
						t.Fatalf("refused client read %q, want %q", got, tc.wantRefuse)
					}
				}
				expectEOFOrReset(t, extra)
				if got := ln.Stats.Refused.Load(); got != 1 {
					t.Fatalf("Refused = %d, want 1", got)
				}
				if got := ln.OpenConns(); got != maxConns {
					t.Fatalf("OpenConns = %d, want %d", got, maxConns)
				}
				// A freed slot admits the next client.
				admitted[0].Close()
				deadline := time.Now().Add(5 * time.Second)
				for ln.OpenConns() == maxConns {
					if time.Now().After(deadline) {
						t.Fatal("closing a client did not free its slot")
					}
					time.Sleep(5 * time.Millisecond)
				}
				next := dial(t, ln.Addr())
				next.Write([]byte("ok"))
				if got := readExactly(t, next, 2); string(got) != "ok" {
					t.Fatalf("got %q", got)
				}
			})
		}
	})
}

// fullBacklog returns a loopback TCP address whose listener never accepts
// and whose accept queue is full: connects to it hang.
func fullBacklog(t *testing.T) conn.Addr {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(fd)
	address := fmt.Sprintf("127.0.0.1:%d", sa.(*unix.SockaddrInet4).Port)
	for i := 0; ; i++ {
		if i == 16 {
			t.Fatalf("accept queue of %s never filled", address)
		}
		c, err := net.DialTimeout("tcp", address, 200*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
	}
	a, err := conn.ResolveAddr("tcp", address)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func refusingAddr(t *testing.T) conn.Addr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	address := ln.Addr().String()
	ln.Close()
	a, err := conn.ResolveAddr("tcp", address)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestDialFailuresReachOnClose(t *testing.T) {
	cases := []struct {
		name    string
		addr    func(t *testing.T) conn.Addr
		timeout time.Duration
		wantErr error
		minTime time.Duration
	}{
		{"connect timeout", fullBacklog, 200 * time.Millisecond, conn.ErrConnectTimeout, 150 * time.Millisecond},
		{"refused", refusingAddr, time.Second, unix.ECONNREFUSED, 0},
	}
	forEachDriver(t, func(t *testing.T, newDriver reactor.NewDriverFunc) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				checkLeaks(t)
				addr := tc.addr(t)
				e := startEngine(t, 1, newDriver)
				closed := make(chan error, 1)
				opened := make(chan struct{}, 1)
				h := &funcHandler{
					onOpen:  func(*conn.Conn) { opened <- struct{}{} },
					onClose: func(_ *conn.Conn, err error) { closed <- err },
				}
				start := time.Now()
				var dialErr error
				e.Loop(0).Exec(func(l *reactor.Loop) {
					_, dialErr = conn.Dial(l, addr, tc.timeout, h, conn.Options{})
				})
				var err error
				if dialErr != nil {
					err = dialErr // refused before connect returned
				} else {
					select {
					case err = <-closed:
					case <-opened:
						t.Fatal("connected")
					case <-time.After(5 * time.Second):
						t.Fatal("no OnClose")
					}
				}
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("got %v, want %v", err, tc.wantErr)
				}
				if took := time.Since(start); took < tc.minTime || took > tc.minTime+time.Second {
					t.Fatalf("failed after %v", took)
				}
			})
		}
	})
}

func TestUnixSocketsEchoAndUnlink(t *testing.T) {
	forEachDriver(t, func(t *testing.T, newDriver reactor.NewDriverFunc) {
		checkLeaks(t)
		e := startEngine(t, 2, newDriver)
		addr := unixAddr(t)
		ln, err := conn.Listen(e, conn.ListenConfig{Addr: addr, NewHandler: func(*conn.Conn) conn.Handler {
			return &funcHandler{onData: echoData}
		}})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 4; i++ { // spread over both loops
			c := dial(t, addr)
			c.Write([]byte("unix"))
			if got := readExactly(t, c, 4); string(got) != "unix" {
				t.Fatalf("got %q", got)
			}
		}
		ln.Close()
		if _, err := net.Dial("unix", addr.Address); err == nil {
			t.Fatal("socket still accepts after Close")
		}
	})
}

// A loop runs due timers before its I/O; after a stall the connect timer can
// come due although the connect completed meanwhile. That is no timeout.
func TestConnectCompletedDuringAStallIsNotATimeout(t *testing.T) {
	forEachDriver(t, func(t *testing.T, newDriver reactor.NewDriverFunc) {
		checkLeaks(t)
		backend, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer backend.Close()
		addr, err := conn.ResolveAddr("tcp", backend.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		e := startEngine(t, 1, newDriver)
		var opened atomic.Bool
		closed := make(chan error, 1)
		dialed := &funcHandler{
			onOpen:  func(c *conn.Conn) { opened.Store(true); c.Close() },
			onClose: func(_ *conn.Conn, err error) { closed <- err },
		}
		// Dial from an I/O callback, as a proxy does, then hold the loop
		// well past the timeout: the writable event can only be seen in the
		// next iteration, whose timers run first.
		ln := listen(t, e, conn.ListenConfig{NewHandler: func(*conn.Conn) conn.Handler {
			return &funcHandler{onData: func(c *conn.Conn, data []byte) int {
				if _, err := conn.Dial(c.Loop(), addr, 20*time.Millisecond, dialed, conn.Options{}); err != nil {
					t.Errorf("dial: %v", err)
				}
				time.Sleep(200 * time.Millisecond)
				return len(data)
			}}
		}})
		c := dial(t, ln.Addr())
		c.Write([]byte("go"))
		select {
		case err := <-closed:
			if err != nil || !opened.Load() {
				t.Fatalf("connect ended with %v (opened: %v)", err, opened.Load())
			}
		case <-time.After(5 * time.Second):
			t.Fatal("neither opened nor closed")
		}
	})
}

// The connect timeout runs from the Dial, even when the loop had been idle
// in its wait just before the callback that dials.
func TestConnectTimeoutCountsFromTheDial(t *testing.T) {
	const timeout = 300 * time.Millisecond
	forEachDriver(t, func(t *testing.T, newDriver reactor.NewDriverFunc) {
		checkLeaks(t)
		backend := fullBacklog(t)
		e := startEngine(t, 1, newDriver)
		type outcome struct {
			err  error
			took time.Duration
		}
		done := make(chan outcome, 1)
		ln := listen(t, e, conn.ListenConfig{NewHandler: func(*conn.Conn) conn.Handler {
			return &funcHandler{onOpen: func(c *conn.Conn) {
				start := time.Now()
				h := &funcHandler{onClose: func(_ *conn.Conn, err error) { done <- outcome{err, time.Since(start)} }}
				if _, err := conn.Dial(c.Loop(), backend, timeout, h, conn.Options{}); err != nil {
					t.Errorf("dial: %v", err)
				}
			}}
		}})
		time.Sleep(timeout + 200*time.Millisecond) // the loop sleeps in its wait
		dial(t, ln.Addr())
		select {
		case o := <-done:
			if !errors.Is(o.err, conn.ErrConnectTimeout) {
				t.Fatalf("OnClose(%v), want a connect timeout", o.err)
			}
			if o.took < timeout-reactor.TimerTick {
				t.Fatalf("timed out after %v, before the %v timeout", o.took, timeout)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no connect timeout")
		}
	})
}

// TestRedeliverPresentsUnconsumedInput: a handler that leaves input in
// place while busy (without pausing) gets it again after Redeliver, with no
// new bytes arriving, and no receive-interest change is needed for it.
func TestRedeliverPresentsUnconsumedInput(t *testing.T) {
	forEachDriver(t, func(t *testing.T, newDriver reactor.NewDriverFunc) {
		checkLeaks(t)
		e := startEngine(t, 1, newDriver)
		calls := make(chan string, 16)
		conns := make(chan *conn.Conn, 1)
		busy := true
		ln := listen(t, e, conn.ListenConfig{NewHandler: func(*conn.Conn) conn.Handler {
			return &funcHandler{
				onOpen: func(c *conn.Conn) { conns <- c },
				onData: func(c *conn.Conn, data []byte) int {
					calls <- string(data)
					if busy {
						return 1 // take one byte, hold the rest
					}
					return len(data)
				},
			}
		}})
		c := dial(t, ln.Addr())
		server := <-conns
		c.Write([]byte("abc"))
		if got := <-calls; got != "abc" {
			t.Fatalf("first delivery %q, want abc", got)
		}
		select {
		case got := <-calls:
			t.Fatalf("held input %q delivered again before Redeliver", got)
		case <-time.After(200 * time.Millisecond):
		}
		if err := server.Loop().Exec(func(*reactor.Loop) { busy = false; server.Redeliver() }); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-calls:
			if got != "bc" {
				t.Fatalf("after Redeliver got %q, want the held bc", got)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Redeliver did not present the held input")
		}
	})
}

// TestPausedConnectionHearsAReset: a connection whose reading is paused
// (a proxy pauses a server connection behind a client that stopped reading)
// must still learn at once that the peer reset it, with input left unread,
// rather than when it resumes, which may be never.
//
// epoll only: a paused io_uring socket has no request in the kernel that
// could complete with the error (a known gap, see pool/doc.go).
func TestPausedConnectionHearsAReset(t *testing.T) {
	checkLeaks(t)
	e := startEngine(t, 1, reactor.NewEpoll)
	closed := make(chan error, 1)
	paused := make(chan struct{})
	ln := listen(t, e, conn.ListenConfig{NewHandler: func(*conn.Conn) conn.Handler {
		return &funcHandler{
			onOpen: func(c *conn.Conn) {
				c.PauseRead()
				close(paused)
			},
			onData:  func(*conn.Conn, []byte) int { t.Error("input delivered while paused"); return 0 },
			onClose: func(_ *conn.Conn, err error) { closed <- err },
		}
	}})
	peer := dial(t, ln.Addr())
	<-paused
	if _, err := peer.Write(bytes.Repeat([]byte("x"), 1000)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the bytes sit unread in the paused socket
	_ = peer.(*net.TCPConn).SetLinger(0)
	peer.Close()
	select {
	case err := <-closed:
		if !errors.Is(err, unix.ECONNRESET) {
			t.Fatalf("OnClose got %v, want ECONNRESET", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("a reset of a paused connection went unnoticed")
	}
}
