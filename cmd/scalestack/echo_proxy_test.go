package main

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/reactor"
)

// observedEcho is the echo module's handler with counters a test can read
// from outside the loops: bytes consumed and the largest output queue seen
// right after echoing.
type observedEcho struct {
	echoHandler
	received    *atomic.Int64
	maxBuffered *atomic.Int64
	closed      *atomic.Int64
}

func (h observedEcho) OnData(c *conn.Conn, data []byte) int {
	n := h.echoHandler.OnData(c, data)
	h.received.Add(int64(n))
	if b := int64(c.Buffered()); b > h.maxBuffered.Load() {
		h.maxBuffered.Store(b)
	}
	return n
}

func (h observedEcho) OnClose(c *conn.Conn, err error) {
	h.echoHandler.OnClose(c, err)
	h.closed.Add(1)
}

// service is what a test talks to: the echo module alone, or tcpproxy in
// front of it, both on the test's engine.
type service struct {
	front     conn.Addr
	echoLn    *conn.Listener
	proxyLn   *conn.Listener // nil for the echo topology
	echoStats observedEchoStats
	// proxyFronts receives the client-facing proxy connections as they
	// are accepted, so a test can inspect them on their loop.
	proxyFronts chan *conn.Conn
}

type observedEchoStats struct {
	received, maxBuffered, closed atomic.Int64
}

type topology struct {
	name  string
	proxy bool
}

var topologies = []topology{{"echo", false}, {"tcpproxy", true}}

// startService starts the echo module (observed) on network, and when
// proxied, the tcpproxy module in front of it with the given connect
// timeout.
func startService(t *testing.T, e *testEngine, network string, proxied bool) *service {
	t.Helper()
	s := &service{proxyFronts: make(chan *conn.Conn, 64)}
	h := observedEcho{received: &s.echoStats.received, maxBuffered: &s.echoStats.maxBuffered, closed: &s.echoStats.closed}
	ln, err := conn.Listen(e.Engine, conn.ListenConfig{
		Addr:       testAddr(t, network),
		NewHandler: func(*conn.Conn) conn.Handler { return h },
	})
	if err != nil {
		t.Fatalf("listen echo: %v", err)
	}
	closeListener(t, ln)
	s.echoLn, s.front = ln, ln.Addr()
	if proxied {
		s.proxyLn = startObservedProxy(t, e, network, ln.Addr(), 5*time.Second, s.proxyFronts)
		s.front = s.proxyLn.Addr()
	}
	return s
}

// startObservedProxy is startTCPProxy with a chosen connect timeout, handing
// each accepted client connection to fronts when there is room.
func startObservedProxy(t *testing.T, e *testEngine, network string, backend conn.Addr, timeout time.Duration, fronts chan *conn.Conn) *conn.Listener {
	t.Helper()
	p := &tcpProxy{backend: backend, connectTimeout: timeout}
	ln, err := conn.Listen(e.Engine, conn.ListenConfig{
		Addr: testAddr(t, network),
		NewHandler: func(c *conn.Conn) conn.Handler {
			select {
			case fronts <- c:
			default:
			}
			return p.newHandler(c)
		},
	})
	if err != nil {
		t.Fatalf("listen tcpproxy: %v", err)
	}
	closeListener(t, ln)
	return ln
}

// waitOpenConns waits until every listener reports no open connection.
func waitOpenConns(t *testing.T, limit time.Duration, lns ...*conn.Listener) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for _, ln := range lns {
		if ln == nil {
			continue
		}
		for ln.OpenConns() != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("listener %s still has %d open connections after %v", ln.Addr(), ln.OpenConns(), limit)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// The number of concurrent clients and the payload mix of the main test.
// The 1000×(1 B..1 MiB) mix is about 16 MiB each way per case; under -race on
// two cores a case takes about a second.
const manyClients = 1000

func TestManyClientsEchoedExactly(t *testing.T) {
	for _, topo := range topologies {
		t.Run(topo.name, func(t *testing.T) {
			forEachEngineCase(t, func(t *testing.T, driver, network string) {
				checkLeaks(t)
				e := startTestEngine(t, driver, 2)
				s := startService(t, e, network, topo.proxy)

				seed := uint64(time.Now().UnixNano())
				rng := rand.New(rand.NewPCG(seed, seed>>1))
				sizes := skewedSizes(rng, manyClients)
				total := 0
				for _, n := range sizes {
					total += n
				}
				payloads := make([][]byte, len(sizes))
				for i, n := range sizes {
					payloads[i] = make([]byte, n)
					for j := range payloads[i] {
						payloads[i][j] = byte(rng.Uint32())
					}
				}

				start := time.Now()
				deadline := start.Add(40 * time.Second)
				var wg sync.WaitGroup
				errs := make(chan error, len(payloads))
				for _, p := range payloads {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if err := echoRoundTrip(s.front, p, deadline); err != nil {
							errs <- err
						}
					}()
				}
				wg.Wait()
				close(errs)
				failed := 0
				for err := range errs {
					if failed < 5 {
						t.Errorf("client: %v", err)
					}
					failed++
				}
				if failed > 0 {
					t.Fatalf("%d of %d clients failed (seed %d)", failed, len(payloads), seed)
				}
				t.Logf("%d clients, %d bytes each way, %v (seed %d)", len(payloads), total, time.Since(start).Round(time.Millisecond), seed)
				if got := s.echoStats.received.Load(); got != int64(total) {
					t.Fatalf("echo consumed %d bytes, clients sent %d", got, total)
				}
				waitOpenConns(t, 5*time.Second, s.proxyLn, s.echoLn)
			})
		})
	}
}

// writeUntilStalled writes chunks to c until a write makes no progress for
// stall, or limit bytes are out, and returns how much the peer accepted.
func writeUntilStalled(c net.Conn, limit int, stall time.Duration) (int, error) {
	chunk := bytes.Repeat([]byte("backpressure"), 64<<10/12)
	written := 0
	for written < limit {
		c.SetWriteDeadline(time.Now().Add(stall))
		n, err := c.Write(chunk[:min(len(chunk), limit-written)])
		written += n
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return written, nil
		}
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

func TestSilentReaderGetsBackpressure(t *testing.T) {
	const (
		sendLimit = 64 << 20
		highWater = 1 << 20 // conn's default
		// What may land past the mark before a pause takes effect: one
		// 64 KiB read on epoll; on io_uring the receives that completed
		// before the cancel are held and delivered together on resume.
		overshoot = 256 << 10
	)
	for _, topo := range topologies {
		t.Run(topo.name, func(t *testing.T) {
			forEachEngineCase(t, func(t *testing.T, driver, network string) {
				checkLeaks(t)
				e := startTestEngine(t, driver, 2)
				s := startService(t, e, network, topo.proxy)
				c := dialTest(t, s.front)
				defer c.Close()

				// Write until the client is blocked and the server has
				// stopped consuming: on a loaded machine a blocked write
				// may only mean the server was not scheduled, so a stall
				// counts once nothing more is consumed for a while.
				written := 0
				for deadline := time.Now().Add(30 * time.Second); ; {
					n, err := writeUntilStalled(c, sendLimit-written, 300*time.Millisecond)
					written += n
					if err != nil {
						t.Fatalf("write: %v", err)
					}
					if written >= sendLimit {
						t.Fatalf("the server took all %d bytes from a client that reads nothing", written)
					}
					received := s.echoStats.received.Load()
					time.Sleep(300 * time.Millisecond)
					if s.echoStats.received.Load() == received {
						break // paused, with the client's bytes still waiting
					}
					if time.Now().After(deadline) {
						t.Fatalf("echo kept consuming for 30 s (%d bytes) from a client that reads nothing", received)
					}
				}
				if maxq := s.echoStats.maxBuffered.Load(); maxq > highWater+overshoot {
					t.Fatalf("echo queued up to %d bytes, want at most %d", maxq, highWater+overshoot)
				}
				if topo.proxy {
					front := <-s.proxyFronts
					var queued int
					if err := front.Loop().Exec(func(*reactor.Loop) { queued = front.Buffered() }); err != nil {
						t.Fatalf("exec: %v", err)
					}
					if queued > highWater+overshoot {
						t.Fatalf("proxy queued %d bytes for the client, want at most %d", queued, highWater+overshoot)
					}
				}
				t.Logf("client got %d bytes out before stalling; echo queued at most %d", written, s.echoStats.maxBuffered.Load())

				// Once the client reads, everything comes back and the
				// rest of the transfer goes through.
				rest := sendLimit - written
				done := make(chan error, 1)
				go func() {
					c.SetWriteDeadline(time.Now().Add(20 * time.Second))
					_, err := c.Write(make([]byte, rest))
					done <- err
				}()
				c.SetReadDeadline(time.Now().Add(20 * time.Second))
				n, err := io.CopyN(io.Discard, c, int64(sendLimit))
				if err != nil {
					t.Fatalf("read back %d of %d bytes: %v", n, sendLimit, err)
				}
				if err := <-done; err != nil {
					t.Fatalf("write the rest: %v", err)
				}
			})
		})
	}
}

func TestHalfCloseGetsAllDataThenEOF(t *testing.T) {
	for _, topo := range topologies {
		t.Run(topo.name, func(t *testing.T) {
			forEachEngineCase(t, func(t *testing.T, driver, network string) {
				checkLeaks(t)
				e := startTestEngine(t, driver, 2)
				s := startService(t, e, network, topo.proxy)
				for _, size := range []int{1, 4096, 3 << 20} {
					payload := make([]byte, size)
					for i := range payload {
						payload[i] = byte(i * 7)
					}
					c := dialTest(t, s.front)
					c.SetDeadline(time.Now().Add(20 * time.Second))
					werr := make(chan error, 1)
					go func() {
						_, err := c.Write(payload)
						if err == nil {
							err = c.(closeWriter).CloseWrite()
						}
						werr <- err
					}()
					got, err := io.ReadAll(c) // to EOF
					if err != nil {
						t.Fatalf("size %d: read: %v", size, err)
					}
					if err := <-werr; err != nil {
						t.Fatalf("size %d: write and shutdown: %v", size, err)
					}
					if !bytes.Equal(got, payload) {
						t.Fatalf("size %d: got %d bytes back before EOF, not the %d sent", size, len(got), len(payload))
					}
					c.Close()
				}
				waitOpenConns(t, 5*time.Second, s.proxyLn, s.echoLn)
			})
		})
	}
}

// resetOnClose makes Close send an RST instead of a FIN (Unix sockets have
// no such thing; closing with unread data is their abrupt close).
func resetOnClose(t *testing.T, c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		if err := tc.SetLinger(0); err != nil {
			t.Fatalf("SO_LINGER 0: %v", err)
		}
	}
}

func TestAbruptCloseMidTransferCleansUp(t *testing.T) {
	for _, topo := range topologies {
		t.Run(topo.name, func(t *testing.T) {
			forEachEngineCase(t, func(t *testing.T, driver, network string) {
				checkLeaks(t)
				e := startTestEngine(t, driver, 2)
				s := startService(t, e, network, topo.proxy)
				idle := len(openFDs(t)) - 1

				const clients = 10
				for i := 0; i < clients; i++ {
					c := dialTest(t, s.front)
					// Leave the server mid-transfer: output queued for
					// a client that is not reading, input still arriving.
					if _, err := writeUntilStalled(c, 4<<20, 100*time.Millisecond); err != nil {
						t.Fatalf("write: %v", err)
					}
					resetOnClose(t, c)
					c.Close()
				}
				waitOpenConns(t, 5*time.Second, s.proxyLn, s.echoLn)
				// The open count drops just before OnClose runs.
				for deadline := time.Now().Add(5 * time.Second); s.echoStats.closed.Load() != clients; {
					if time.Now().After(deadline) {
						t.Fatalf("echo saw %d closes, want %d", s.echoStats.closed.Load(), clients)
					}
					time.Sleep(5 * time.Millisecond)
				}
				waitFDs(t, idle, 5*time.Second, "after abrupt closes")
				// The service still works.
				if err := echoRoundTrip(s.front, []byte("still alive"), time.Now().Add(5*time.Second)); err != nil {
					t.Fatalf("after the resets: %v", err)
				}
			})
		})
	}
}
