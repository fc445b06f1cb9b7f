package mysqlproxy

import (
	"errors"
	"time"

	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/reactor"
)

// Graceful shutdown (Drain) happens in three stages. All session and backend
// work runs on the loops: a coordinator goroutine only asks each loop, with
// Exec, to move to the next stage, and watches the loops' atomic gauges to
// see when a stage is over. Nothing on the data path takes a lock.
//
//  1. Grace: sessions are served as usual (new commands, transactions,
//     queue waits) until the deadline or until every client has left.
//     Clients that connect, run a few statements and disconnect, as
//     during a rolling restart, never see the drain.
//  2. Closing, from the deadline: each session ends at its next idle
//     point. Idle ones (between commands, pinned or not) and commands
//     still waiting for a backend get ERR 1053 (08S01) "Server shutdown in
//     progress" and are closed; a command running on a backend completes,
//     its response is relayed in full, and then the session gets the same
//     ERR and is closed. Sessions still logging in are closed.
//  3. Hard cut, DrainHardCut after the deadline: what remains (a statement
//     that still runs, a LOAD DATA LOCAL stream) is cut off; the backends
//     those sessions were using are in an unknown state and are closed.
//
// Once no session remains, reconnecting stops and backends are closed as
// they become free (pool.LoopPool.Quit): an idle one at once (COM_QUIT, then close), one
// being reset or health-checked when that finishes. A backend is never
// closed under a session that is using it, and one whose state is unknown
// is closed rather than returned to the pool.

// DrainHardCut is how long after the drain deadline a session whose
// statement is still running may take to finish it before it is cut off.
const DrainHardCut = time.Second

// drainPoll is how often the coordinator looks at the loops' gauges.
const drainPoll = 10 * time.Millisecond

var errShutdown = errors.New("pool: proxy shutting down")

// Drain shuts the proxy down gracefully: it stops accepting clients before
// it returns (when Start opened the listener; a caller that opened it
// through ListenConfig closes it first), serves sessions as usual for
// grace, then closes each at its next idle point with ERR 1053, cuts off
// what still runs DrainHardCut later, and closes the backend connections
// once no session uses them. The returned channel is closed when that is
// done, or when Close is called. Drain may be called from any goroutine
// except a loop's; later calls return the first call's channel.
func (p *Proxy) Drain(grace time.Duration) <-chan struct{} {
	p.drainOnce.Do(func() {
		p.draining.Store(true)
		p.drained = make(chan struct{})
		if p.ln != nil {
			_ = p.ln.Close()
		}
		go p.drain(grace)
	})
	return p.drained
}

func (p *Proxy) drain(grace time.Duration) {
	defer close(p.drained)
	deadline := time.Now().Add(grace)
	if !p.waitSessionsGone(deadline) {
		p.onEachLoop((*proxyLoop).closeSessions)
		if !p.waitSessionsGone(deadline.Add(DrainHardCut)) {
			p.onEachLoop((*proxyLoop).cutSessions)
			// Aborted connections report their close within an iteration.
			p.waitSessionsGone(time.Now().Add(time.Second))
		}
	}
	p.stopping.Store(true)
	p.pool.Stop()
	p.onEachLoop(func(pl *proxyLoop) { pl.lp.Quit() })
	// Resets and health checks in flight end within ConnectTimeout at
	// worst; the engine's Stop closes whatever is left after this.
	p.waitUntil(time.Now().Add(DrainHardCut), func() bool { return p.pool.Connected() == 0 })
}

// onEachLoop runs fn on every loop, one after the other. A loop that has
// stopped has closed its connections already.
func (p *Proxy) onEachLoop(fn func(*proxyLoop)) {
	for _, pl := range p.loops {
		_ = pl.loop.Exec(func(*reactor.Loop) { fn(pl) })
	}
}

// waitSessionsGone waits until no client session is open, or deadline, or
// Close; it reports whether the sessions are gone.
func (p *Proxy) waitSessionsGone(deadline time.Time) bool {
	return p.waitUntil(deadline, func() bool { return p.sessionsOpen() == 0 })
}

func (p *Proxy) waitUntil(deadline time.Time, done func() bool) bool {
	for {
		if done() {
			return true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		select {
		case <-p.closed:
			return false
		case <-time.After(min(drainPoll, left)):
		}
	}
}

// sessionsOpen sums the loops' session gauges (accepted clients, logged in
// or not).
func (p *Proxy) sessionsOpen() int64 {
	var n int64
	for _, pl := range p.loops {
		n += pl.stats.ClientsConnected.Load()
	}
	return n
}

// closeSessions starts stage 2 on the loop: from now on each session ends
// at its next idle point.
func (pl *proxyLoop) closeSessions() {
	pl.closing = true
	for _, s := range pl.sessions {
		s.closeIfIdle()
	}
}

// closeIfIdle ends a session that is not running a command; one that is
// ends in finishCommand.
func (s *session) closeIfIdle() {
	switch s.phase {
	case sReady:
		s.shutDown()
	case sHandshake, sAuthSwitch, sChangeUser:
		s.c.Close()
	case sBusy:
		if s.wait.Queued() {
			// The command never reached a backend: answer it.
			s.pl.lp.Leave(&s.wait)
			s.writeERR(errServerShutdown)
			s.c.Close()
		}
	}
}

// shutDown closes an idle session with ERR 1053 as the answer to whatever
// it sends next (sequence id 1), so a client that does not check the
// connection before reusing it learns why, and one that does (a pool's
// liveness check) sees unexpected data and reconnects.
func (s *session) shutDown() {
	s.respSeq = 1
	s.writeERR(errServerShutdown)
	s.c.Close()
}

// cutSessions is stage 3: whatever is still open is aborted (a backend
// with a command in flight is closed by the session's OnClose).
func (pl *proxyLoop) cutSessions() {
	for _, s := range pl.sessions {
		s.c.Abort(errShutdown)
	}
}

// shutdownRefusal answers a client accepted after the drain deadline (its
// listener was already closing) with ERR 1053 as its first packet.
type shutdownRefusal struct{}

func (shutdownRefusal) OnOpen(c *conn.Conn) {
	pkt, _ := errServerShutdown.appendERR(nil, 0)
	c.Write(pkt)
	c.Close()
}
func (shutdownRefusal) OnData(_ *conn.Conn, data []byte) int { return len(data) }
func (shutdownRefusal) OnClose(*conn.Conn, error)            {}
