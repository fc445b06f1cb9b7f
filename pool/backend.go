package pool

import (
	"errors"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/reactor"
)

type backendPhase uint8

const (
	bDown       backendPhase = iota // waiting to reconnect
	bConnecting                     // TCP connect in progress
	bLogin                          // the protocol's login
	bReady                          // logged in
)

// backendDuty is what a ready backend without an owner is doing.
type backendDuty uint8

const (
	dutyNone    backendDuty = iota
	dutyPing                // a health check (Server.Ping)
	dutyReset               // a reset after a pinning client left (Server.Reset)
	dutyHandOff             // freed with waiters: handed to the next one at the end of the loop's iteration
)

var (
	errLoginTimeout  = errors.New("pool: backend login timed out")
	errHealthTimeout = errors.New("pool: backend did not answer a health check in time")
)

// ErrClosedByPeer is what Server.Down and Client.Lost get when the server
// closed the connection cleanly (end of stream, no error): for a protocol
// whose message may end with the connection (an HTTP body without a
// length), that is the message's end rather than a failure.
var ErrClosedByPeer = errors.New("closed by server")

// ErrRecycle is what a protocol closes a logged-in backend with (Abort)
// when the server said it will not take another request on it, as an HTTP
// server's "Connection: close" does: nothing failed, so the backend
// reconnects at once instead of after the backoff, and it is not logged.
var ErrRecycle = errors.New("pool: connection recycled: the server does not reuse it")

// Backend is one of the N pooled server connections. It lives for ever:
// when its connection breaks it reconnects (with backoff) instead of being
// replaced, which is what keeps the pool at exactly N. Its fields are the
// pool's: the protocol keeps its own in its Server.
type Backend struct {
	p   *Pool
	lp  *LoopPool // the loop that owns it now
	idx int
	// target is the server (Config.Targets index) it connects to.
	target     int
	c          *conn.Conn
	peer       string
	srv        Server
	watermarks conn.WatermarkHandler // srv, when it watches the output

	phase backendPhase
	duty  backendDuty
	owner Client
	// tenant is the owner's tenant (nil: none, or no owner), charged
	// for the time since heldSince (monoNow) when the owner lets go.
	tenant    *Tenant
	heldSince int64
	kept      bool // on its loop's kept list (LoopPool.Keep)
	relogin   bool // Reopen: the next login is for the owner (if it has not let go)
	class     Class
	timer     reactor.Timer
	backoff   time.Duration
	// loggedIn: counted in BackendsConnected.
	loggedIn bool
	// everLoggedIn tells a reconnect from the first login.
	everLoggedIn bool
	// idleSince is when the backend last went on an idle list (health
	// checks ping those idle for a health interval).
	idleSince time.Time
	// awaitSince is when the backend began waiting for the server's
	// answer, pushed forward by whatever the server sends (nanoseconds
	// since Pool.epoch; 0: not waiting). Written by its loop (Awaiting,
	// Answered, OnData), read by Pool.Ready from any goroutine.
	awaitSince atomic.Int64
	// moving is the backend's Conn while it travels to another loop
	// (Detach here, Reattach there; c is nil meanwhile).
	moving *conn.Conn
}

func newBackend(p *Pool, lp *LoopPool, idx, target int) *Backend {
	b := &Backend{p: p, lp: lp, idx: idx, target: target, peer: p.cfg.Targets[target].Addr.String()}
	b.timer.Func = backendTimerFired
	b.timer.Arg = b
	return b
}

// Conn is the backend's connection (nil while down).
func (b *Backend) Conn() *conn.Conn { return b.c }

// Loop is the part of the pool that owns the backend now.
func (b *Backend) Loop() *LoopPool { return b.lp }

// Index is the backend's slot, 0 to N-1.
func (b *Backend) Index() int { return b.idx }

// Target is the Config.Targets index of the server it connects to.
func (b *Backend) Target() int { return b.target }

// Server is the protocol's side of the backend.
func (b *Backend) Server() Server { return b.srv }

// Owner is the client holding the backend, or nil.
func (b *Backend) Owner() Client { return b.owner }

// Class is the backend's class (zero until SetClass).
func (b *Backend) Class() Class { return b.class }

// SetClass records what the protocol logged the backend in as.
func (b *Backend) SetClass(c Class) { b.class = c }

// Reopen converts a backend its owner holds to class c when the protocol
// cannot do it on the live connection (MySQL fixes capability flags such
// as CLIENT_FOUND_ROWS at login; COM_CHANGE_USER carries none): the
// connection is closed with the protocol's goodbye and a new one dialled
// in the same slot at once, so the pool never holds more than N. The
// owner keeps the backend: Client.Granted runs again once the new
// connection is logged in, Client.Lost if that fails. An owner that lets
// go meanwhile (Release, Reset) leaves the new connection to the pool.
// Counted in Stats.BackendReopens.
func (b *Backend) Reopen(c Class) {
	b.class = c
	b.lp.stats.BackendReopens.Add(1)
	if b.c == nil || b.phase != bReady || b.relogin {
		return // already closing (its owner hears of it through Lost) or reopening
	}
	b.relogin = true
	b.awaitSince.Store(0)
	b.srv.Quit()
	b.c.Close()
}

// Logf logs through Config.Logf.
func (b *Backend) Logf(format string, args ...any) { b.p.logf(format, args...) }

func (b *Backend) connect() {
	if b.p.stopping.Load() {
		return
	}
	b.phase = bConnecting
	c, err := conn.Dial(b.lp.loop, b.p.targetAddrs[b.target], b.p.cfg.ConnectTimeout, b, conn.Options{})
	if err != nil {
		b.p.logf("backend %d: %v", b.idx, err)
		b.lp.stats.BackendFailures.Add(1)
		b.scheduleReconnect()
		b.lp.noteBackendFailure()
		b.reloginFailed(err)
		return
	}
	b.c = c
}

func (b *Backend) scheduleReconnect() {
	b.phase = bDown
	if b.p.stopping.Load() {
		return
	}
	if b.backoff == 0 {
		b.backoff = 50 * time.Millisecond
	} else {
		b.backoff = min(b.backoff*2, 10*time.Second)
	}
	// Jitter spreads reconnects so N backends do not storm a recovering
	// server in lock step.
	d := b.backoff/2 + time.Duration(rand.Int64N(int64(b.backoff)))
	b.lp.loop.Schedule(&b.timer, d)
}

func backendTimerFired(arg any) {
	b := arg.(*Backend)
	switch b.phase {
	case bDown:
		b.connect()
	case bLogin:
		if b.c != nil {
			b.c.Abort(errLoginTimeout)
		}
	case bReady:
		if b.duty == dutyPing { // down counts the failure
			if b.c != nil {
				b.c.Abort(errHealthTimeout)
			}
		}
	}
}

// OnOpen implements conn.Handler (connected, or adopted from another loop).
func (b *Backend) OnOpen(c *conn.Conn) {
	b.c = c
	if b.phase == bConnecting {
		b.phase = bLogin
		b.lp.loop.Schedule(&b.timer, b.p.cfg.ConnectTimeout)
		b.srv.Open()
	}
}

// Awaiting is the protocol's word that it sent a request and waits for the
// server's answer (see Config.StallTimeout).
func (b *Backend) Awaiting() { b.awaitSince.Store(b.sinceEpoch()) }

// Answered is the protocol's word that nothing is owed by the server any
// more: the response is complete, or it is the client's turn (reading
// paused behind a slow client, a LOCAL INFILE upload).
func (b *Backend) Answered() { b.awaitSince.Store(0) }

func (b *Backend) sinceEpoch() int64 {
	if n := int64(b.lp.loop.Now().Sub(b.p.epoch)); n > 0 {
		return n
	}
	return 1 // 0 means not waiting
}

// OnData implements conn.Handler: the protocol reads.
func (b *Backend) OnData(c *conn.Conn, data []byte) int {
	lp := b.lp // what is read may send the backend to another loop
	if b.awaitSince.Load() != 0 {
		b.awaitSince.Store(b.sinceEpoch()) // the server is alive
	}
	n := b.srv.Data(data)
	lp.stats.BackendBytesIn.Add(uint64(n))
	return n
}

// OnClose implements conn.Handler.
func (b *Backend) OnClose(c *conn.Conn, err error) {
	if b.c != c {
		return
	}
	b.c = nil
	if err == nil {
		err = ErrClosedByPeer
	}
	b.down(err)
}

// OnHighWater implements conn.WatermarkHandler for the protocol.
func (b *Backend) OnHighWater(c *conn.Conn) {
	if b.watermarks != nil {
		b.watermarks.OnHighWater(c)
	}
}

// OnLowWater implements conn.WatermarkHandler for the protocol.
func (b *Backend) OnLowWater(c *conn.Conn) {
	if b.watermarks != nil {
		b.watermarks.OnLowWater(c)
	}
}

// LoggedIn is the protocol's word that the login finished: the backend
// joins the pool, or goes back to the owner that reopened it.
func (b *Backend) LoggedIn() {
	b.phase = bReady
	b.backoff = 0
	b.lp.loop.Cancel(&b.timer)
	b.loggedIn = true
	if b.everLoggedIn && !b.relogin {
		b.lp.stats.BackendReconnects.Add(1)
	}
	b.everLoggedIn = true
	b.p.loggedIn.Add(1)
	b.lp.stats.BackendsConnected.Add(1)
	b.lp.stats.BackendConnects.Add(1)
	b.lp.noteBackendUp()
	if b.relogin {
		b.relogin = false
		if owner := b.owner; owner != nil {
			owner.Granted(b)
			return
		}
	}
	b.lp.giveAdopted(b)
}

// reloginFailed tells the owner of a reopening backend that it will not
// get it back.
func (b *Backend) reloginFailed(err error) {
	if !b.relogin {
		return
	}
	b.relogin = false
	if owner := b.owner; owner != nil {
		b.owner = nil
		owner.Lost(b, err)
	}
}

// Pinged is the protocol's word that a health check was answered.
func (b *Backend) Pinged() {
	b.lp.loop.Cancel(&b.timer)
	b.duty = dutyNone
	b.lp.Release(b)
}

// ResetDone is the protocol's word that a reset (Server.Reset) finished.
func (b *Backend) ResetDone() {
	b.duty = dutyNone
	b.lp.Release(b)
}

// Abandon closes a backend whose state can no longer be trusted; it
// reconnects.
func (b *Backend) Abandon(reason error) {
	b.lp.stats.BackendUnknownState.Add(1)
	if b.c != nil {
		b.c.Abort(reason)
	}
}

// Abort closes the backend's connection (a protocol or login failure); it
// reconnects.
func (b *Backend) Abort(err error) {
	if b.c != nil {
		b.c.Abort(err)
	}
}

// down handles the loss of the connection: the owner is told, the
// protocol forgets the connection's state and a reconnect is scheduled.
func (b *Backend) down(err error) {
	wasReady := b.loggedIn
	b.loggedIn = false
	b.awaitSince.Store(0)
	b.lp.loop.Cancel(&b.timer)
	if wasReady && b.relogin && !b.p.stopping.Load() {
		// Reopen closed it: dial the new connection now, for the owner.
		b.p.loggedIn.Add(-1)
		b.lp.stats.BackendsConnected.Add(-1)
		if b.kept {
			b.lp.unkeep(b)
		}
		b.duty = dutyNone
		b.srv.Down(err)
		b.connect()
		return
	}
	b.relogin = false
	if wasReady {
		b.p.loggedIn.Add(-1)
		b.lp.stats.BackendsConnected.Add(-1)
		if b.owner == nil && b.duty == dutyNone {
			b.lp.removeIdle(b)
		}
		if !b.p.stopping.Load() && !errors.Is(err, ErrRecycle) {
			b.p.logf("backend %d: connection lost: %v", b.idx, err)
		}
	} else {
		b.lp.stats.BackendFailures.Add(1)
		if !b.p.stopping.Load() {
			b.p.logf("backend %d: login failed: %v", b.idx, err)
		}
	}
	if b.duty == dutyPing {
		b.lp.stats.HealthCheckFailures.Add(1)
	}
	// A backend handed off (dutyHandOff) stays in its loop's hand-off
	// list, which skips it: it is no longer ready.
	b.duty = dutyNone
	b.lp.endHold(b)
	owner := b.owner
	b.owner = nil
	if b.kept {
		b.lp.unkeep(b)
	}
	b.srv.Down(err)
	if owner != nil {
		owner.Lost(b, err)
	}
	if wasReady && errors.Is(err, ErrRecycle) && !b.p.stopping.Load() {
		b.phase = bDown
		b.lp.loop.Schedule(&b.timer, 0) // connect from the timer, not from inside the close
	} else {
		b.scheduleReconnect()
	}
	if !wasReady {
		// Only a failed attempt says the server is unreachable; losing
		// logged-in connections (a restart) is first met by reconnecting.
		b.lp.noteBackendFailure()
	}
}

// ping starts a health check of an idle backend.
func (b *Backend) ping() {
	b.lp.stats.HealthChecks.Add(1)
	b.duty = dutyPing
	b.lp.loop.Schedule(&b.timer, b.p.cfg.ConnectTimeout)
	b.srv.Ping()
}

// quit ends a free backend with the protocol's goodbye and closes it;
// reconnecting is off.
func (b *Backend) quit() {
	b.lp.endHold(b)
	b.owner = nil
	if b.c == nil {
		return
	}
	b.srv.Quit()
	b.c.Close()
}
