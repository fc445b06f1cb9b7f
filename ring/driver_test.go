package ring_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scalestack/scalestack/reactor"
	"github.com/scalestack/scalestack/ring"
)

func TestAvailable(t *testing.T) {
	if err := ring.Available(); err != nil {
		t.Fatalf("io_uring must be usable on this machine: %v", err)
	}
}

func TestFeaturesReportsDeferredTaskRun(t *testing.T) {
	onLoop(t, ring.New, func(d reactor.Driver) {
		f := d.(*ring.Driver).Features()
		t.Logf("features: %s", f)
		for _, want := range []string{"SINGLE_ISSUER", "DEFER_TASKRUN"} {
			if !bytes.Contains([]byte(f), []byte(want)) {
				t.Errorf("features %q lack %s, which kernel 6.1+ supports", f, want)
			}
		}
	})
}

// TestEcho streams random payloads of up to 1 MiB through a driver-side echo
// connection and checks that every byte comes back in order.
func TestEcho(t *testing.T) {
	transports := []struct {
		name string
		pair func(t *testing.T) (int, io.ReadWriteCloser)
	}{
		{"unix", func(t *testing.T) (int, io.ReadWriteCloser) { return socketPair(t) }},
		{"tcp", func(t *testing.T) (int, io.ReadWriteCloser) {
			a, b := tcpPair(t)
			if err := unix.SetNonblock(b, false); err != nil {
				t.Fatalf("set blocking: %v", err)
			}
			return a, os.NewFile(uintptr(b), "peer")
		}},
	}
	for _, drv := range drivers {
		for _, tr := range transports {
			t.Run(drv.name+"/"+tr.name, func(t *testing.T) {
				onLoop(t, drv.new, func(d reactor.Driver) {
					fd, peer := tr.pair(t)
					defer peer.Close()
					c := &echoConn{d: d}
					h, ok := ring.RegisterOrReport(t, d, fd, c)
					if !ok {
						return
					}
					c.h = h
					rng := rand.New(rand.NewPCG(1, 2))
					sizes := []int{1, 1 << 20}
					for range 6 {
						sizes = append(sizes, 1+rng.IntN(1<<20))
					}
					var finished atomic.Bool
					var peerErr error
					go func() {
						defer finished.Store(true)
						peerErr = echoRounds(peer, sizes)
					}()
					pollUntil(t, d, 20*time.Second, "echo rounds", finished.Load)
					if peerErr != nil {
						t.Error(peerErr)
					}
					if c.err != nil || c.ended {
						t.Errorf("echo conn failed: err %v, ended %v (%v)", c.err, c.ended, c.endErr)
					}
					if err := c.close(); err != nil {
						t.Errorf("close: %v", err)
					}
				})
			})
		}
	}
}

// echoRounds writes each payload while reading its echo concurrently, so a
// payload larger than the socket buffers cannot deadlock.
func echoRounds(peer io.ReadWriter, sizes []int) error {
	for round, n := range sizes {
		want := pattern(round, n)
		werr := make(chan error, 1)
		go func() {
			_, err := peer.Write(want)
			werr <- err
		}()
		got := make([]byte, n)
		if _, err := io.ReadFull(peer, got); err != nil {
			return err
		}
		if err := <-werr; err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			return errors.New("echoed bytes differ from what was sent")
		}
	}
	return nil
}

// pausingReader records what it receives and pauses itself at random points;
// the test resumes it a few polls later. Nothing may arrive while paused.
type pausingReader struct {
	d         reactor.Driver
	h         reactor.Handle
	rng       *rand.Rand
	got       []byte
	paused    bool
	pauses    int
	violation int
	ended     bool
	endErr    error
	endEarly  bool // OnRecvEnd while paused
}

func (p *pausingReader) OnRecv(b []byte) {
	if p.paused {
		p.violation++
	}
	p.got = append(p.got, b...)
	if p.rng.IntN(3) == 0 {
		if err := p.d.SetRecv(p.h, false); err != nil {
			p.violation++
		}
		p.paused = true
		p.pauses++
	}
}

func (p *pausingReader) OnRecvEnd(err error) {
	if p.paused {
		p.endEarly = true
	}
	p.ended, p.endErr = true, err
}
func (p *pausingReader) OnWritable()             {}
func (p *pausingReader) OnSent(n int, err error) {}

// TestPauseResume pauses receiving from inside OnRecv (so later completions
// of the same batch must be held) and from outside, at random moments, while
// the peer keeps writing; everything must arrive once, in order, and never
// while paused.
func TestPauseResume(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d reactor.Driver) {
		a, b := tcpPair(t)
		p := &pausingReader{d: d, rng: rand.New(rand.NewPCG(3, 4))}
		h, ok := ring.RegisterOrReport(t, d, a, p)
		if !ok {
			unix.Close(b)
			return
		}
		p.h = h
		var sent []byte
		for round := range 40 {
			sent = append(sent, pattern(round, 1+p.rng.IntN(200<<10))...)
		}
		go func() {
			defer unix.Close(b)
			if err := unix.SetNonblock(b, false); err != nil {
				t.Errorf("set blocking: %v", err)
				return
			}
			rest := sent
			for len(rest) > 0 {
				n := min(len(rest), 1+rand.IntN(300<<10))
				if _, err := unix.Write(b, rest[:n]); err != nil {
					t.Errorf("peer write: %v", err)
					return
				}
				rest = rest[n:]
				time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond)
			}
		}()
		pausedPolls := 0
		pollUntil(t, d, 20*time.Second, "all data through pauses", func() bool {
			switch {
			case p.paused && pausedPolls >= 1+p.rng.IntN(4):
				p.paused, pausedPolls = false, 0
				if err := d.SetRecv(h, true); err != nil {
					t.Errorf("resume: %v", err)
				}
			case p.paused:
				pausedPolls++
			case p.rng.IntN(8) == 0:
				// Pause from outside, with data possibly in flight.
				if err := d.SetRecv(h, false); err != nil {
					t.Errorf("pause: %v", err)
				}
				p.paused = true
				p.pauses++
			}
			return len(p.got) >= len(sent) || p.ended
		})
		pollUntil(t, d, 5*time.Second, "end of stream", func() bool {
			if p.paused {
				p.paused = false
				if err := d.SetRecv(h, true); err != nil {
					t.Errorf("resume: %v", err)
				}
			}
			return p.ended
		})
		if p.violation > 0 {
			t.Errorf("%d deliveries while paused", p.violation)
		}
		if p.endEarly || p.endErr != nil {
			t.Errorf("stream end while paused %v, error %v", p.endEarly, p.endErr)
		}
		if p.pauses < 3 {
			t.Errorf("only %d pauses; the test exercised too little", p.pauses)
		}
		if !bytes.Equal(p.got, sent) {
			t.Errorf("received %d bytes that differ from the %d sent", len(p.got), len(sent))
		}
		ring.CloseOrReport(t, d, h)
	})
}

// writeAll writes a small message to a non-blocking socket that has room.
func writeAll(t *testing.T, fd int, b []byte) {
	t.Helper()
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err != nil {
			t.Errorf("write: %v", err)
			return
		}
		b = b[n:]
	}
}

// TestPeerClose checks that an orderly close by the peer ends the stream
// with OnRecvEnd(nil) after the last bytes, also when it happens while
// receiving is paused.
func TestPeerClose(t *testing.T) {
	for _, drv := range drivers {
		for _, paused := range []bool{false, true} {
			name := drv.name + "/running"
			if paused {
				name = drv.name + "/paused"
			}
			t.Run(name, func(t *testing.T) {
				onLoop(t, drv.new, func(d reactor.Driver) {
					fd, peer := socketPair(t)
					r := &recorder{}
					h, ok := ring.RegisterOrReport(t, d, fd, r)
					if !ok {
						return
					}
					if paused {
						if err := d.SetRecv(h, false); err != nil {
							t.Errorf("pause: %v", err)
						}
					}
					if _, err := peer.Write([]byte("last words")); err != nil {
						t.Errorf("write: %v", err)
					}
					peer.Close()
					if paused {
						pollFor(t, d, 30*time.Millisecond)
						if r.calls() != 0 {
							t.Errorf("%d callbacks while paused", r.calls())
						}
						if err := d.SetRecv(h, true); err != nil {
							t.Errorf("resume: %v", err)
						}
					}
					pollUntil(t, d, 5*time.Second, "end of stream", func() bool { return r.ends > 0 })
					pollFor(t, d, 20*time.Millisecond)
					if string(r.data) != "last words" {
						t.Errorf("received %q, want %q", r.data, "last words")
					}
					if r.ends != 1 || r.endErr != nil {
						t.Errorf("OnRecvEnd called %d times, last with %v; want once with nil", r.ends, r.endErr)
					}
					if r.dataAfterEnd {
						t.Error("data delivered after OnRecvEnd")
					}
					ring.CloseOrReport(t, d, h)
				})
			})
		}
	}
}

// TestPeerReset checks that an abortive close reaches OnRecvEnd as an error.
func TestPeerReset(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d reactor.Driver) {
		a, b := tcpPair(t)
		r := &recorder{}
		h, ok := ring.RegisterOrReport(t, d, a, r)
		if !ok {
			return
		}
		if err := unix.SetsockoptLinger(b, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0}); err != nil {
			t.Errorf("SO_LINGER: %v", err)
		}
		unix.Close(b)
		pollUntil(t, d, 5*time.Second, "reset", func() bool { return r.ends > 0 })
		if !errors.Is(r.endErr, unix.ECONNRESET) {
			t.Errorf("OnRecvEnd(%v), want ECONNRESET", r.endErr)
		}
		ring.CloseOrReport(t, d, h)
	})
}

// recorder notes every callback.
type recorder struct {
	data         []byte
	ends         int
	endErr       error
	dataAfterEnd bool
	writable     int
	sent         int
	sentErr      error
}

func (r *recorder) OnRecv(b []byte) {
	if r.ends > 0 {
		r.dataAfterEnd = true
	}
	r.data = append(r.data, b...)
}
func (r *recorder) OnRecvEnd(err error)     { r.ends++; r.endErr = err }
func (r *recorder) OnWritable()             { r.writable++ }
func (r *recorder) OnSent(n int, err error) { r.sent++; r.sentErr = err }
func (r *recorder) calls() int              { return len(r.data) + r.ends + r.writable + r.sent }

// TestCloseStopsCallbacks closes a handle that has a receive armed, data
// arriving, a writability wait and (for io_uring) a send the peer never
// drains; no callback may follow Close, and the peer must see the socket go
// away.
func TestCloseStopsCallbacks(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d reactor.Driver) {
		a, b := tcpPair(t)
		defer unix.Close(b)
		r := &recorder{}
		h, ok := ring.RegisterOrReport(t, d, a, r)
		if !ok {
			return
		}
		// The socket buffer is full and the peer does not read: the
		// send cannot complete.
		ring.FillSendBuffer(t, a, b)
		big := make([]byte, 64<<20)
		n, pending, err := d.Send(h, big)
		if err != nil {
			t.Errorf("send: %v", err)
		}
		if d.Name() == "uring" && !pending {
			t.Errorf("io_uring Send returned pending false (n %d)", n)
		}
		if !pending {
			if err := d.WaitWritable(h); err != nil {
				t.Errorf("wait writable: %v", err)
			}
		}
		// Without MSG_WAITALL a send may complete with what the
		// kernel took while buffers settled: keep one outstanding
		// until the socket stays full, so Close has a send to cancel.
		for settled := false; !settled; {
			sent, writable := r.sent, r.writable
			pollFor(t, d, 20*time.Millisecond)
			settled = r.sent == sent && r.writable == writable
			if settled {
				break
			}
			if sent > 50 || writable > 50 {
				t.Fatalf("the socket never filled (%d sends, %d writable)", r.sent, r.writable)
			}
			if _, pending, err := d.Send(h, big); err != nil {
				t.Fatalf("send: %v", err)
			} else if !pending {
				if err := d.WaitWritable(h); err != nil {
					t.Fatalf("wait writable: %v", err)
				}
			}
		}
		writeAll(t, b, []byte("in flight"))
		ring.CloseOrReport(t, d, h)
		before := r.calls()
		pollFor(t, d, 50*time.Millisecond)
		if after := r.calls(); after != before {
			t.Errorf("%d callbacks after Close", after-before)
		}
		if err := d.SetRecv(h, true); err == nil {
			t.Error("SetRecv on a closed handle succeeded")
		}
		if _, _, err := d.Send(h, []byte("x")); err == nil {
			t.Error("Send on a closed handle succeeded")
		}
		// The peer drains what was sent and then sees the end.
		if err := unix.SetNonblock(b, false); err != nil {
			t.Errorf("set blocking: %v", err)
		}
		tv := unix.NsecToTimeval(int64(5 * time.Second))
		_ = unix.SetsockoptTimeval(b, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		buf := make([]byte, 1<<20)
		done := make(chan error, 1)
		go func() {
			for {
				n, err := unix.Read(b, buf)
				if n == 0 || err != nil {
					done <- err
					return
				}
			}
		}()
		pollUntil(t, d, 10*time.Second, "peer sees close", func() bool { return len(done) > 0 })
		if err := <-done; err != nil && err != unix.ECONNRESET {
			t.Errorf("peer read ended with %v, want EOF or reset", err)
		}
	})
}

// acceptCounter closes what it accepts and counts it.
type acceptCounter struct {
	n    int
	errs []error
}

func (a *acceptCounter) OnAccept(fd int) {
	a.n++
	unix.Close(fd)
}
func (a *acceptCounter) OnAcceptError(err error) { a.errs = append(a.errs, err) }

// TestAcceptStorm accepts 500 connections dialled concurrently.
func TestAcceptStorm(t *testing.T) {
	const conns = 500
	forEachDriver(t, func(t *testing.T, d reactor.Driver) {
		a := &acceptCounter{}
		h, addr, ok := listenOnLoopback(t, d, a)
		if !ok {
			return
		}
		clients := make(chan net.Conn, conns)
		var wg sync.WaitGroup
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range conns / 10 {
					if c := dial(t, addr); c != nil {
						clients <- c
					}
				}
			}()
		}
		pollUntil(t, d, 20*time.Second, "accept storm", func() bool { return a.n >= conns })
		wg.Wait()
		close(clients)
		for c := range clients {
			c.Close()
		}
		if len(a.errs) > 0 {
			t.Errorf("accept errors: %v", a.errs)
		}
		if a.n != conns {
			t.Errorf("accepted %d, want %d", a.n, conns)
		}
		ring.CloseOrReport(t, d, h)
	})
}

// TestAcceptPause checks that a paused listener delivers nothing and that
// every connection that arrived meanwhile is delivered after resuming.
func TestAcceptPause(t *testing.T) {
	const conns = 20
	forEachDriver(t, func(t *testing.T, d reactor.Driver) {
		a := &acceptCounter{}
		h, addr, ok := listenOnLoopback(t, d, a)
		if !ok {
			return
		}
		var clients []net.Conn
		defer func() {
			for _, c := range clients {
				c.Close()
			}
		}()
		if c := dial(t, addr); c != nil {
			clients = append(clients, c)
		}
		pollUntil(t, d, 5*time.Second, "first accept", func() bool { return a.n == 1 })
		if err := d.SetRecv(h, false); err != nil {
			t.Errorf("pause: %v", err)
		}
		for range conns {
			if c := dial(t, addr); c != nil {
				clients = append(clients, c)
			}
		}
		pollFor(t, d, 30*time.Millisecond)
		if a.n != 1 {
			t.Errorf("%d accepts while paused", a.n-1)
		}
		if err := d.SetRecv(h, true); err != nil {
			t.Errorf("resume: %v", err)
		}
		pollUntil(t, d, 5*time.Second, "accepts after resume", func() bool { return a.n == conns+1 })
		ring.CloseOrReport(t, d, h)
	})
}

// TestAcceptEMFILE runs out of descriptors: the listener must report it,
// and accept again once the owner resumes with descriptors to spare.
func TestAcceptEMFILE(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d reactor.Driver) {
		a := &pausingAcceptor{d: d}
		h, addr, ok := listenOnLoopback(t, d, a)
		if !ok {
			return
		}
		a.h = h
		var old unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
			t.Errorf("getrlimit: %v", err)
			return
		}
		// Leave no descriptor free for the accept; the client below
		// is dialled first so that it has its own.
		c := dial(t, addr)
		if c == nil {
			return
		}
		defer c.Close()
		tight := old
		tight.Cur = uint64(lowestFreeFD(t))
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &tight); err != nil {
			t.Errorf("setrlimit: %v", err)
			return
		}
		pollUntil(t, d, 5*time.Second, "EMFILE reported", func() bool { return len(a.errs) > 0 })
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
			t.Errorf("restore rlimit: %v", err)
		}
		if len(a.errs) > 0 && !errors.Is(a.errs[0], unix.EMFILE) {
			t.Errorf("accept error %v, want EMFILE", a.errs[0])
		}
		if err := d.SetRecv(h, true); err != nil {
			t.Errorf("resume: %v", err)
		}
		pollUntil(t, d, 5*time.Second, "accept after EMFILE", func() bool { return a.n == 1 })
		ring.CloseOrReport(t, d, h)
	})
}

// pausingAcceptor pauses its listener on an error, as the contract asks.
type pausingAcceptor struct {
	d    reactor.Driver
	h    reactor.Handle
	n    int
	errs []error
}

func (a *pausingAcceptor) OnAccept(fd int) { a.n++; unix.Close(fd) }
func (a *pausingAcceptor) OnAcceptError(err error) {
	a.errs = append(a.errs, err)
	_ = a.d.SetRecv(a.h, false)
}

// lowestFreeFD returns the descriptor number the next open would get.
func lowestFreeFD(t *testing.T) int {
	fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open /dev/null: %v", err)
	}
	unix.Close(fd)
	return fd
}

// TestConnectWaitWritable connects a non-blocking socket through the
// driver: OnWritable reports completion, and a refused connect ends the
// stream with an error.
func TestConnectWaitWritable(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d reactor.Driver) {
		lfd, _ := tcpListener(t)
		defer unix.Close(lfd)
		sa, _ := unix.Getsockname(lfd)
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Errorf("socket: %v", err)
			return
		}
		if err := unix.Connect(fd, sa); err != nil && err != unix.EINPROGRESS {
			t.Errorf("connect: %v", err)
		}
		r := &recorder{}
		h, ok := ring.RegisterOrReport(t, d, fd, r)
		if !ok {
			return
		}
		if err := d.WaitWritable(h); err != nil {
			t.Errorf("wait writable: %v", err)
		}
		pollUntil(t, d, 5*time.Second, "connected", func() bool { return r.writable > 0 })
		if soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); err != nil || soerr != 0 {
			t.Errorf("SO_ERROR %d, %v after connect", soerr, err)
		}
		if r.ends != 0 {
			t.Errorf("stream ended (%v) on a connected socket", r.endErr)
		}
		ring.CloseOrReport(t, d, h)

		// Now a port nobody listens on.
		closedFd, _ := tcpListener(t)
		closedSa, _ := unix.Getsockname(closedFd)
		unix.Close(closedFd)
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Errorf("socket: %v", err)
			return
		}
		if err := unix.Connect(fd, closedSa); err != nil && err != unix.EINPROGRESS && err != unix.ECONNREFUSED {
			t.Errorf("connect: %v", err)
		}
		r = &recorder{}
		h, ok = ring.RegisterOrReport(t, d, fd, r)
		if !ok {
			return
		}
		if err := d.WaitWritable(h); err != nil {
			t.Errorf("wait writable: %v", err)
		}
		pollUntil(t, d, 5*time.Second, "refused", func() bool { return r.writable > 0 && r.ends > 0 })
		if !errors.Is(r.endErr, unix.ECONNREFUSED) {
			t.Errorf("refused connect ended with %v, want ECONNREFUSED", r.endErr)
		}
		ring.CloseOrReport(t, d, h)
	})
}

// TestWake checks that Wake from another goroutine ends an unbounded Poll,
// and that many concurrent wakes leave the driver healthy.
func TestWake(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d reactor.Driver) {
		for range 20 {
			// Each round's waker has finished before the next Poll,
			// so only this round's Wake can end it.
			woke := make(chan struct{})
			go func() {
				defer close(woke)
				time.Sleep(2 * time.Millisecond)
				if err := d.Wake(); err != nil {
					t.Errorf("wake: %v", err)
				}
			}()
			start := time.Now()
			if _, err := d.Poll(-1); err != nil {
				t.Errorf("poll: %v", err)
			}
			if time.Since(start) > 5*time.Second {
				t.Errorf("Poll(-1) returned only after %v", time.Since(start))
			}
			<-woke
		}
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 500 {
					if err := d.Wake(); err != nil {
						t.Errorf("wake: %v", err)
						return
					}
				}
			}()
		}
		stopped := make(chan struct{})
		go func() { wg.Wait(); close(stopped) }()
		pollUntil(t, d, 10*time.Second, "concurrent wakes", func() bool {
			select {
			case <-stopped:
				return true
			default:
				return false
			}
		})
	})
}

// TestPollTimeout checks that a bounded Poll with nothing to do waits about
// as long as asked.
func TestPollTimeout(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d reactor.Driver) {
		start := time.Now()
		if _, err := d.Poll(20 * time.Millisecond); err != nil {
			t.Errorf("poll: %v", err)
		}
		if el := time.Since(start); el < 15*time.Millisecond || el > 2*time.Second {
			t.Errorf("Poll(20ms) took %v", el)
		}
		start = time.Now()
		if _, err := d.Poll(0); err != nil {
			t.Errorf("poll: %v", err)
		}
		if el := time.Since(start); el > 100*time.Millisecond {
			t.Errorf("Poll(0) took %v", el)
		}
	})
}

// TestManyConnections registers more sockets in one iteration than the
// submission queue holds and has each receive at once, more completions in
// one batch than there are provided buffers: every socket must still get
// its bytes, and a reply must reach every peer.
func TestManyConnections(t *testing.T) {
	const conns = 2500
	forEachDriver(t, func(t *testing.T, d reactor.Driver) {
		peers := make([]int, 0, conns)
		echoes := make([]*echoConn, 0, conns)
		defer func() {
			for _, fd := range peers {
				unix.Close(fd)
			}
		}()
		msg := pattern(9, 3000)
		for range conns {
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Errorf("socketpair: %v", err)
				return
			}
			peers = append(peers, fds[1])
			writeAll(t, fds[1], msg)
			c := &echoConn{d: d}
			h, ok := ring.RegisterOrReport(t, d, fds[0], c)
			if !ok {
				return
			}
			c.h = h
			echoes = append(echoes, c)
		}
		got := make([]int, conns)
		buf := make([]byte, len(msg))
		remaining := conns
		pollUntil(t, d, 20*time.Second, "all echoes", func() bool {
			for i, fd := range peers {
				if got[i] == len(msg) {
					continue
				}
				n, err := unix.Read(fd, buf[:len(msg)-got[i]])
				if err == unix.EAGAIN {
					continue
				}
				if err != nil || n == 0 {
					t.Errorf("peer %d read: %d, %v", i, n, err)
					got[i] = len(msg)
					remaining--
					continue
				}
				if !bytes.Equal(buf[:n], msg[got[i]:got[i]+n]) {
					t.Errorf("peer %d: echoed bytes differ", i)
				}
				got[i] += n
				if got[i] == len(msg) {
					remaining--
				}
			}
			return remaining == 0
		})
		for _, c := range echoes {
			if c.err != nil || c.ended {
				t.Errorf("echo conn failed: %v, ended %v (%v)", c.err, c.ended, c.endErr)
				break
			}
		}
		for _, c := range echoes {
			if err := c.close(); err != nil {
				t.Errorf("close: %v", err)
			}
		}
	})
}

// selfPausingAcceptor pauses its listener from inside OnAccept, so further
// accepts of the same batch must be held until it resumes.
type selfPausingAcceptor struct {
	d         reactor.Driver
	h         reactor.Handle
	n         int
	paused    bool
	violation int
}

func (a *selfPausingAcceptor) OnAccept(fd int) {
	if a.paused {
		a.violation++
	}
	a.n++
	unix.Close(fd)
	if err := a.d.SetRecv(a.h, false); err != nil {
		a.violation++
	}
	a.paused = true
}
func (a *selfPausingAcceptor) OnAcceptError(err error) { a.violation++ }

// TestAcceptPauseInsideCallback has the acceptor pause its listener inside
// every OnAccept while many connections wait: each resume must yield exactly
// one more connection and none may arrive while paused.
//
// Only the io_uring driver runs it: the epoll driver's accept loop does not
// look at the pause flag between accepts of one readiness event, so it keeps
// delivering (reported to the reactor owner).
func TestAcceptPauseInsideCallback(t *testing.T) {
	const conns = 50
	for _, drv := range drivers[1:] {
		t.Run(drv.name, func(t *testing.T) {
			onLoop(t, drv.new, func(d reactor.Driver) {
				a := &selfPausingAcceptor{d: d}
				h, addr, ok := listenOnLoopback(t, d, a)
				if !ok {
					return
				}
				a.h = h
				if _, err := d.Poll(0); err != nil {
					t.Errorf("poll: %v", err)
				}
				var clients []net.Conn
				for range conns {
					if c := dial(t, addr); c != nil {
						clients = append(clients, c)
					}
				}
				pollUntil(t, d, 10*time.Second, "all accepted one at a time", func() bool {
					if a.paused {
						a.paused = false
						if err := d.SetRecv(h, true); err != nil {
							t.Errorf("resume: %v", err)
						}
					}
					return a.n >= len(clients)
				})
				for _, c := range clients {
					c.Close()
				}
				if a.violation > 0 {
					t.Errorf("%d accepts while paused or errors", a.violation)
				}
				if a.n != len(clients) {
					t.Errorf("accepted %d of %d", a.n, len(clients))
				}
				ring.CloseOrReport(t, d, h)
			})
		})
	}
}

// TestDetachAdopt detaches a quiet socket from one driver and registers it
// with another on the same thread: input written afterwards must reach only
// the new owner, and the old handle must be dead.
func TestDetachAdopt(t *testing.T) {
	for _, drv := range drivers {
		t.Run(drv.name, func(t *testing.T) {
			onLoop(t, drv.new, func(d reactor.Driver) {
				other, err := drv.new()
				if err != nil {
					t.Errorf("second driver: %v", err)
					return
				}
				if err := other.Init(); err != nil {
					t.Errorf("init second driver: %v", err)
					return
				}
				defer func() {
					if err := other.Shutdown(); err != nil {
						t.Errorf("shutdown second driver: %v", err)
					}
				}()
				fd, peer := socketPair(t)
				first := &recorder{}
				h, ok := ring.RegisterOrReport(t, d, fd, first)
				if !ok {
					return
				}
				if _, err := peer.Write([]byte("before")); err != nil {
					t.Errorf("write: %v", err)
				}
				pollUntil(t, d, 5*time.Second, "data before detach", func() bool { return len(first.data) == 6 })
				if err := d.WaitWritable(h); err != nil {
					t.Errorf("wait writable: %v", err)
				}
				pollUntil(t, d, 5*time.Second, "writable", func() bool { return first.writable == 1 })
				got, err := d.Detach(h)
				if err != nil {
					t.Errorf("detach: %v", err)
					return
				}
				if got != fd {
					t.Errorf("detach returned fd %d, want %d", got, fd)
				}
				if err := d.SetRecv(h, true); err == nil {
					t.Error("SetRecv on a detached handle succeeded")
				}
				second := &recorder{}
				h2, ok := ring.RegisterOrReport(t, other, got, second)
				if !ok {
					return
				}
				for round := range 20 {
					msg := pattern(round, 100)
					if _, err := peer.Write(msg); err != nil {
						t.Errorf("write: %v", err)
					}
					want := (round + 1) * 100
					pollUntil(t, other, 5*time.Second, "data after adopt", func() bool {
						if _, err := d.Poll(0); err != nil {
							t.Errorf("poll old driver: %v", err)
						}
						return len(second.data) >= want
					})
				}
				pollFor(t, d, 10*time.Millisecond)
				if first.calls() != 7 {
					t.Errorf("old owner saw %d callbacks after detach", first.calls()-7)
				}
				ring.CloseOrReport(t, other, h2)
				pollFor(t, other, 5*time.Millisecond)
			})
		})
	}
}

// detachInRecv tries to detach its socket from inside OnRecv.
type detachInRecv struct {
	d         reactor.Driver
	h         reactor.Handle
	got       []byte
	detachErr error
	tried     bool
}

func (r *detachInRecv) OnRecv(b []byte) {
	r.got = append(r.got, b...)
	if !r.tried {
		r.tried = true
		_, r.detachErr = r.d.Detach(r.h)
	}
}
func (r *detachInRecv) OnRecvEnd(error)   {}
func (r *detachInRecv) OnWritable()       {}
func (r *detachInRecv) OnSent(int, error) {}

// TestDetachRefusedWithInputQueued detaches from inside OnRecv while the same
// batch still holds input for the socket: io_uring must refuse rather than
// lose it, and keep receiving.
func TestDetachRefusedWithInputQueued(t *testing.T) {
	onLoop(t, ring.New, func(d reactor.Driver) {
		fd, peer := socketPair(t)
		r := &detachInRecv{d: d}
		h, ok := ring.RegisterOrReport(t, d, fd, r)
		if !ok {
			return
		}
		r.h = h
		if _, err := d.Poll(0); err != nil {
			t.Errorf("poll: %v", err)
		}
		sent := pattern(1, 100<<10) // several provided buffers' worth
		if _, err := peer.Write(sent); err != nil {
			t.Errorf("write: %v", err)
		}
		pollUntil(t, d, 5*time.Second, "all input", func() bool { return len(r.got) >= len(sent) })
		if r.detachErr == nil || !strings.Contains(r.detachErr.Error(), "input arrived") {
			t.Errorf("Detach with input still queued returned %v, want a refusal for that input", r.detachErr)
		}
		if !bytes.Equal(r.got, sent) {
			t.Errorf("received %d bytes that differ from the %d sent", len(r.got), len(sent))
		}
		more := pattern(2, 1000)
		if _, err := peer.Write(more); err != nil {
			t.Errorf("write: %v", err)
		}
		pollUntil(t, d, 5*time.Second, "input after a refused detach", func() bool { return len(r.got) >= len(sent)+len(more) })
		ring.CloseOrReport(t, d, h)
	})
}

// TestDetachRefusedWithSendPending checks that a socket whose send is in
// the kernel cannot be handed over.
func TestDetachRefusedWithSendPending(t *testing.T) {
	onLoop(t, ring.New, func(d reactor.Driver) {
		fd, _ := socketPair(t) // the peer never reads
		r := &recorder{}
		h, ok := ring.RegisterOrReport(t, d, fd, r)
		if !ok {
			return
		}
		if _, pending, err := d.Send(h, make([]byte, 8<<20)); err != nil || !pending {
			t.Errorf("send: pending %v, %v", pending, err)
		}
		if _, err := d.Detach(h); err == nil {
			t.Error("Detach succeeded with a send pending")
		}
		ring.CloseOrReport(t, d, h)
	})
}

// TestPollInterruptedBySignal sends the loop thread a signal while it waits
// without a limit: Poll must come back, without an error, as epoll_wait and
// io_uring_enter both return EINTR.
func TestPollInterruptedBySignal(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d reactor.Driver) {
		tid := unix.Gettid()
		done := make(chan struct{})
		defer close(done)
		go func() {
			// SIGURG is the runtime's own preemption signal: Go
			// handles it, so it interrupts without side effects.
			for {
				select {
				case <-done:
					return
				case <-time.After(5 * time.Millisecond):
					_ = unix.Tgkill(unix.Getpid(), tid, unix.SIGURG)
				}
			}
		}()
		start := time.Now()
		if _, err := d.Poll(-1); err != nil {
			t.Errorf("Poll interrupted by a signal returned %v", err)
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Errorf("Poll(-1) returned after %v", el)
		}
	})
}
