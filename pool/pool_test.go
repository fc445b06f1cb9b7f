package pool

import (
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/reactor"
)

// The concentrator's tests run it with a toy protocol of one-byte
// requests and answers against an in-process toy server: no database, no
// MySQL. Requests: 'L' log in, 'P' ping, 'R' reset, 'X' an exchange, 'Q'
// goodbye; the server answers each (but 'Q') with the lower-case letter.

// toyServer is the backend server: it answers every byte and counts what
// it received.
type toyServer struct {
	ln      net.Listener
	mu      sync.Mutex
	got     map[byte]int
	conns   map[net.Conn]bool
	maxOpen int
	closed  int // connections closed by the proxy's side
}

func startToyServer(t *testing.T) *toyServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &toyServer{ln: ln, got: map[byte]int{}, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); s.killAll() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = true
			s.maxOpen = max(s.maxOpen, len(s.conns))
			s.mu.Unlock()
			go s.serve(c)
		}
	}()
	return s
}

func (s *toyServer) serve(c net.Conn) {
	buf := make([]byte, 64)
	for {
		n, err := c.Read(buf)
		if err != nil {
			s.mu.Lock()
			if s.conns[c] {
				delete(s.conns, c)
				s.closed++
			}
			s.mu.Unlock()
			c.Close()
			return
		}
		for _, b := range buf[:n] {
			s.mu.Lock()
			s.got[b]++
			s.mu.Unlock()
			if b != 'Q' {
				if _, err := c.Write([]byte{b + 'a' - 'A'}); err != nil {
					return
				}
			}
		}
	}
}

func (s *toyServer) count(b byte) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[b]
}

// killAll closes every connection from the server's side.
func (s *toyServer) killAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
		delete(s.conns, c)
	}
}

// toyProtocol is the Protocol; toyBackend its Server.
type toyProtocol struct{ downs atomic.Int64 }

func (tp *toyProtocol) NewServer(b *Backend) Server { return &toyBackend{b: b, proto: tp} }

type toyBackend struct {
	b     *Backend
	proto *toyProtocol
	owner toyOwner // the client whose exchange is in flight
}

// toyOwner is told when its exchange's answer arrived.
type toyOwner interface{ exchangeDone(b *Backend) }

func (s *toyBackend) write(c byte) { s.b.Conn().Write([]byte{c}) }
func (s *toyBackend) Open()        { s.write('L') }
func (s *toyBackend) Ping()        { s.write('P') }
func (s *toyBackend) Reset()       { s.write('R') }
func (s *toyBackend) Quit()        { s.write('Q') }
func (s *toyBackend) Down(error)   { s.owner = nil; s.proto.downs.Add(1) }

func (s *toyBackend) Data(data []byte) int {
	for _, c := range data {
		switch c {
		case 'l':
			s.b.LoggedIn()
		case 'p':
			s.b.Pinged()
		case 'r':
			s.b.ResetDone()
		case 'x':
			if o := s.owner; o != nil {
				s.owner = nil
				o.exchangeDone(s.b)
			}
		}
	}
	return len(data)
}

// toyClient is a Client; its fields are read by the test goroutine.
type toyClient struct {
	w         Waiter
	lp        *LoopPool
	granted   atomic.Pointer[Backend]
	refused   atomic.Pointer[error]
	revoked   atomic.Int64
	lost      atomic.Int64
	exchanged atomic.Int64
	grants    atomic.Int64
	// exchange: run one 'X' on each granted backend.
	exchange bool
}

func newToyClient(lp *LoopPool) *toyClient {
	c := &toyClient{lp: lp}
	c.w.Client = c
	return c
}

func (c *toyClient) Granted(b *Backend) {
	c.granted.Store(b)
	c.grants.Add(1)
	if c.exchange {
		s := b.Server().(*toyBackend)
		s.owner = c
		s.write('X')
	}
}
func (c *toyClient) exchangeDone(*Backend) { c.exchanged.Add(1) }
func (c *toyClient) Refused(err error)     { c.refused.Store(&err) }
func (c *toyClient) Revoked(*Backend)      { c.revoked.Add(1); c.granted.Store(nil) }
func (c *toyClient) Lost(*Backend, error)  { c.lost.Add(1); c.granted.Store(nil) }
func (c *toyClient) backend() *Backend     { return c.granted.Load() }
func (c *toyClient) refusal() error {
	if e := c.refused.Load(); e != nil {
		return *e
	}
	return nil
}

type toyPool struct {
	p     *Pool
	e     *reactor.Engine
	srv   *toyServer
	proto *toyProtocol
}

func startToyPool(t *testing.T, n, loops int, tweak func(*Config)) *toyPool {
	t.Helper()
	srv := startToyServer(t)
	addr, err := conn.ParseAddr(srv.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Targets: []Target{{Addr: addr}}, Conns: n, QueueTimeout: 5 * time.Second,
		HealthInterval: time.Hour, ConnectTimeout: 2 * time.Second}
	if tweak != nil {
		tweak(&cfg)
	}
	proto := &toyProtocol{}
	p, err := New(cfg, proto)
	if err != nil {
		t.Fatal(err)
	}
	e, err := reactor.New(reactor.Config{Loops: loops})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(e); err != nil {
		e.Stop()
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(); e.Stop() })
	tp := &toyPool{p: p, e: e, srv: srv, proto: proto}
	if n > 0 && cfg.Targets[0].Addr == addr {
		waitFor(t, "the backends to log in", func() bool { return p.Connected() == int64(n) })
	}
	return tp
}

// on runs fn on loop i's pool part.
func (tp *toyPool) on(t *testing.T, i int, fn func(lp *LoopPool)) {
	t.Helper()
	lp := tp.p.Loops()[i]
	if err := lp.Loop().Exec(func(*reactor.Loop) { fn(lp) }); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestKeepsN: the pool opens exactly N connections split across the loops
// and, when the server drops them all, reconnects to N, never more.
func TestKeepsN(t *testing.T) {
	const n = 4
	tp := startToyPool(t, n, 2, nil)
	if err := tp.p.Ready(); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	perLoop := tp.p.Loops()[0].stats.BackendsConnected.Load()
	if perLoop != n/2 {
		t.Errorf("loop 0 has %d backends, want %d", perLoop, n/2)
	}
	tp.srv.killAll()
	waitFor(t, "the reconnects", func() bool {
		st := tp.p.Stats()
		return st.BackendReconnects == n && st.BackendsConnected == n
	})
	if got := tp.srv.count('L'); got != 2*n {
		t.Errorf("%d logins, want %d", got, 2*n)
	}
	if tp.srv.maxOpen > n {
		t.Errorf("the server saw %d connections at once, want at most %d", tp.srv.maxOpen, n)
	}
}

// TestHandOffThroughTheLoop: a backend released while a request waits
// goes to that request at the end of the loop's iteration, not from inside
// Release (where the next client's exchange would start on the stack of
// the client that released it).
func TestHandOffThroughTheLoop(t *testing.T) {
	tp := startToyPool(t, 1, 1, nil)
	var a, b *toyClient
	tp.on(t, 0, func(lp *LoopPool) {
		a, b = newToyClient(lp), newToyClient(lp)
		lp.Acquire(&a.w)
		if a.backend() == nil {
			t.Error("an idle backend was not granted inside Acquire")
		}
		lp.Acquire(&b.w)
		if b.backend() != nil || !b.w.Queued() || lp.Waiting() != 1 {
			t.Errorf("the second request was not queued: granted %v, queued %v", b.backend(), b.w.Queued())
		}
		lp.Release(a.backend())
		if b.backend() != nil {
			t.Error("the waiter was granted from inside Release")
		}
	})
	waitFor(t, "the hand-off", func() bool { return b.backend() != nil })
	tp.on(t, 0, func(lp *LoopPool) {
		if lp.Waiting() != 0 || b.w.Queued() {
			t.Errorf("still waiting: %d", lp.Waiting())
		}
		lp.Release(b.backend())
	})
	if st := tp.p.Stats(); st.QueueWaits != 1 || st.QueueWait.Count() != 1 {
		t.Errorf("queue stats %+v", st)
	}
}

// TestQueueTimeout: a request that waits longer than QueueTimeout is
// refused with ErrQueueTimeout; the backend's holder is not disturbed.
func TestQueueTimeout(t *testing.T) {
	tp := startToyPool(t, 1, 1, func(c *Config) { c.QueueTimeout = 50 * time.Millisecond })
	var a, b *toyClient
	tp.on(t, 0, func(lp *LoopPool) {
		a, b = newToyClient(lp), newToyClient(lp)
		lp.Acquire(&a.w)
		lp.Acquire(&b.w)
	})
	waitFor(t, "the timeout", func() bool { return b.refusal() != nil })
	if !errors.Is(b.refusal(), ErrQueueTimeout) {
		t.Fatalf("refused with %v", b.refusal())
	}
	if st := tp.p.Stats(); st.QueueTimeouts != 1 || st.QueueWaiting != 0 {
		t.Errorf("stats %+v", st)
	}
	if a.backend() == nil || a.lost.Load() != 0 {
		t.Error("the holder lost its backend")
	}
}

// TestUnavailable: with every backend down and logins failing, requests
// are refused at once with ErrUnavailable.
func TestUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead, _ := conn.ParseAddr(ln.Addr().String())
	ln.Close() // nothing listens there now
	tp := startToyPool(t, 1, 1, func(c *Config) { c.Targets = []Target{{Addr: dead}} })
	waitFor(t, "the pool to give up", func() bool { return !tp.p.Available() })
	var a *toyClient
	tp.on(t, 0, func(lp *LoopPool) {
		a = newToyClient(lp)
		lp.Acquire(&a.w)
		if !errors.Is(a.refusal(), ErrUnavailable) {
			t.Errorf("refused with %v, want at once with ErrUnavailable", a.refusal())
		}
	})
	if tp.p.Stats().FastFails != 1 {
		t.Errorf("fast fails %d", tp.p.Stats().FastFails)
	}
}

// TestStealAcrossLoops: a request on a loop without backends gets one
// that another loop had idle, moved through the mailboxes.
func TestStealAcrossLoops(t *testing.T) {
	tp := startToyPool(t, 1, 2, nil) // the backend lives on loop 0
	var a *toyClient
	tp.on(t, 1, func(lp *LoopPool) {
		a = newToyClient(lp)
		a.exchange = true
		lp.Acquire(&a.w)
	})
	waitFor(t, "a stolen backend", func() bool { return a.backend() != nil })
	waitFor(t, "the exchange on it", func() bool { return a.exchanged.Load() == 1 })
	if st := tp.p.Stats(); st.BackendsAdopted != 1 || st.BackendsConnected != 1 {
		t.Errorf("stats %+v", st)
	}
	if a.backend().Loop() != tp.p.Loops()[1] {
		t.Error("the backend did not move to the requesting loop")
	}
}

// TestStationary: with Config.Stationary (backends that cannot be
// detached, TLS) a request waits for its own loop's backend while another
// loop's sits idle, and nothing moves between loops; a pool with fewer
// backends than loops is refused, since a loop without one could serve no
// one.
func TestStationary(t *testing.T) {
	tp := startToyPool(t, 2, 2, func(c *Config) { c.Stationary = true }) // one backend per loop
	var a, b *toyClient
	tp.on(t, 1, func(lp *LoopPool) {
		a, b = newToyClient(lp), newToyClient(lp)
		lp.Acquire(&a.w)
		lp.Acquire(&b.w) // loop 1's backend is a's: b waits
	})
	if a.backend() == nil || a.backend().Loop() != tp.p.Loops()[1] {
		t.Fatal("the first request did not get its own loop's backend")
	}
	time.Sleep(100 * time.Millisecond) // steals would have come by now
	if b.backend() != nil {
		t.Fatal("the waiter got a backend moved from the other loop")
	}
	tp.on(t, 1, func(lp *LoopPool) { lp.Release(a.backend()) })
	waitFor(t, "the released backend", func() bool { return b.backend() != nil })
	if st := tp.p.Stats(); st.BackendsAdopted != 0 {
		t.Errorf("%d backends moved between loops, want none", st.BackendsAdopted)
	}

	p, err := New(Config{Targets: tp.p.cfg.Targets, Conns: 1, Stationary: true}, &toyProtocol{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Prepare(tp.e); err == nil || !strings.Contains(err.Error(), "at least one per loop") {
		t.Errorf("1 stationary backend on 2 loops: %v, want an error", err)
	}
}

// TestKeepAndRevoke: a kept backend goes to a waiter before it would
// wait; its keeper is told.
func TestKeepAndRevoke(t *testing.T) {
	tp := startToyPool(t, 1, 1, nil)
	var a, b *toyClient
	tp.on(t, 0, func(lp *LoopPool) {
		a, b = newToyClient(lp), newToyClient(lp)
		lp.Acquire(&a.w)
		lp.Keep(a.backend())
		lp.Acquire(&b.w)
		if b.backend() == nil || a.revoked.Load() != 1 || a.backend() != nil {
			t.Errorf("kept backend not revoked for the request: %v %d", b.backend(), a.revoked.Load())
		}
	})
}

// TestResetThenRelease: Reset has the protocol reset the backend before
// it goes back; then it serves the next request.
func TestResetThenRelease(t *testing.T) {
	tp := startToyPool(t, 1, 1, nil)
	tp.on(t, 0, func(lp *LoopPool) {
		a := newToyClient(lp)
		lp.Acquire(&a.w)
		lp.Reset(a.backend())
	})
	waitFor(t, "the reset", func() bool { return tp.srv.count('R') == 1 && tp.p.Stats().BackendsIdle == 1 })
	if tp.p.Stats().BackendResets != 1 {
		t.Errorf("resets %d", tp.p.Stats().BackendResets)
	}
}

// TestHealthChecks: idle backends are pinged every HealthInterval; one
// that stops answering is dropped and reconnects.
func TestHealthChecks(t *testing.T) {
	tp := startToyPool(t, 2, 1, func(c *Config) { c.HealthInterval = 20 * time.Millisecond })
	waitFor(t, "pings", func() bool { return tp.srv.count('P') >= 4 })
	if st := tp.p.Stats(); st.HealthCheckFailures != 0 || st.BackendsConnected != 2 {
		t.Errorf("stats %+v", st)
	}
}

// TestQuit: once stopped, Quit closes idle backends with the protocol's
// goodbye, and none reconnects.
func TestQuit(t *testing.T) {
	const n = 2
	tp := startToyPool(t, n, 1, nil)
	tp.p.Stop()
	tp.on(t, 0, func(lp *LoopPool) { lp.Quit() })
	waitFor(t, "the goodbyes", func() bool { return tp.srv.count('Q') == n && tp.p.Connected() == 0 })
	time.Sleep(100 * time.Millisecond) // a reconnect would come within its backoff
	if tp.srv.count('L') != n {
		t.Errorf("%d logins, want %d (no reconnect)", tp.srv.count('L'), n)
	}
}

// TestReopenForOwner: Reopen logs the backend its owner holds in again as
// another class, in the same slot (closed before the new one is dialled),
// and grants
// it to the same owner once logged in; an owner that releases it meanwhile
// leaves it to the pool.
func TestReopenForOwner(t *testing.T) {
	tp := startToyPool(t, 1, 1, nil)
	found := Class{Flags: 1}
	var a *toyClient
	tp.on(t, 0, func(lp *LoopPool) {
		a = newToyClient(lp)
		lp.Acquire(&a.w)
		a.backend().Reopen(found)
	})
	waitFor(t, "the grant after the new login", func() bool { return a.grants.Load() == 2 })
	var b *toyClient
	tp.on(t, 0, func(lp *LoopPool) {
		pb := a.backend()
		if pb.Class() != found || pb.Owner() != Client(a) {
			t.Errorf("after Reopen: class %v, owner %v", pb.Class(), pb.Owner())
		}
		b = newToyClient(lp)
		b.w.Class = Class{}
		pb.Reopen(b.w.Class)
		lp.Release(pb) // the owner lets go while the new login runs
	})
	waitFor(t, "the second login", func() bool { return tp.srv.count('L') == 3 && tp.p.Stats().BackendsIdle == 1 })
	if st := tp.p.Stats(); st.BackendReopens != 2 || st.BackendReconnects != 0 || st.BackendsConnected != 1 {
		t.Errorf("stats: reopens %d, reconnects %d, connected %d", st.BackendReopens, st.BackendReconnects, st.BackendsConnected)
	}
	if a.grants.Load() != 2 || a.lost.Load() != 0 {
		t.Errorf("the owner that let go was granted %d times, lost %d", a.grants.Load(), a.lost.Load())
	}
	if tp.srv.count('Q') != 2 {
		t.Errorf("%d goodbyes, want 2 (each old connection closed with the protocol's)", tp.srv.count('Q'))
	}
}

// TestHandOffPrefersClass: a freed backend goes to the first waiter of its
// class rather than to a first waiter of another class (which would
// convert it); the first waiter still gets the next one.
func TestHandOffPrefersClass(t *testing.T) {
	tp := startToyPool(t, 1, 1, nil)
	var a, other, same *toyClient
	tp.on(t, 0, func(lp *LoopPool) {
		a, other, same = newToyClient(lp), newToyClient(lp), newToyClient(lp)
		other.w.Class = Class{Flags: 1}
		lp.Acquire(&a.w)
		lp.Acquire(&other.w)
		lp.Acquire(&same.w)
		lp.Release(a.backend())
	})
	waitFor(t, "the hand-off", func() bool { return same.backend() != nil || other.backend() != nil })
	if same.backend() == nil {
		t.Fatal("the backend went to the waiter of the other class")
	}
	tp.on(t, 0, func(lp *LoopPool) { lp.Release(same.backend()) })
	waitFor(t, "the passed-over waiter's turn", func() bool { return other.backend() != nil })
}
