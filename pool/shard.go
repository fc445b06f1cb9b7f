package pool

import (
	"time"

	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/reactor"
)

// shard is one loop's part of the pool: the backends it currently owns, the
// idle ones among them, and the FIFO of sessions waiting for one. Everything
// in it is touched only by its loop; other loops read the two hints.
type shard struct {
	p    *Proxy
	loop *reactor.Loop
	id   int
	idle []*backend
	// held are sessions keeping their backend after a statement with
	// warnings or an error, so SHOW WARNINGS sees them; a waiter takes
	// such a backend before it would wait.
	held     []*session
	waitHead *session
	waitTail *session
	nWaiting int
	// stealsInFlight counts steal requests posted and not yet answered.
	stealsInFlight int
	stealCursor    int
	// fairTurn alternates which side gets a freed backend when another
	// loop's queue is no longer than this one's (see backloggedPeer).
	fairTurn bool
	// stealRetry re-runs seekSteal while waiters remain unserved: hints
	// are read without synchronisation, so a loop that releases a backend
	// just as this one starts waiting can miss it.
	stealRetry reactor.Timer

	// Hints for other loops: how many idle backends and waiters this
	// shard has. Stale values only cost a failed steal or a needless
	// donation.
	idleHint atomic32
	waitHint atomic32
	// shownIdle, shownHeld and shownWaiting are the values last
	// published by setHints.
	shownIdle, shownHeld, shownWaiting int
	// relayedOut counts response bytes relayed to clients during one
	// backend read, added to stats.ClientBytesOut once at its end rather
	// than once per row packet.
	relayedOut uint64

	sessions   map[uint32]*session
	nextSessID uint32

	// closing: the drain deadline has passed; each session ends at its
	// next idle point. quitting: no session is left; a backend that
	// becomes free is closed instead of going idle (see drain.go).
	closing  bool
	quitting bool

	// prepCache maps schema, then SQL text, to a cached PREPARE response
	// (two levels so a lookup by the client's bytes allocates nothing).
	prepCache map[string]map[string]*prepMeta
	prepCount int

	// healthTimer pings idle backends every Config.HealthInterval.
	healthTimer reactor.Timer

	stats Stats
}

func newShard(p *Proxy, l *reactor.Loop, id int) *shard {
	sh := &shard{p: p, loop: l, id: id, sessions: map[uint32]*session{}, prepCache: map[string]map[string]*prepMeta{}}
	sh.stealRetry.Func = retrySteal
	sh.stealRetry.Arg = sh
	return sh
}

// stealRetryInterval is how soon a loop whose waiters found no idle backend
// anywhere looks again.
const stealRetryInterval = 10 * time.Millisecond

func retrySteal(arg any) {
	sh := arg.(*shard)
	if sh.p.health.unavailable.Load() {
		// Nothing will come: answer ERR 9003 now.
		sh.failWaiters()
		return
	}
	sh.seekSteal()
}

// newSessionID hands out ids that name their loop: id % loops == loop.
func (sh *shard) newSessionID() uint32 {
	sh.nextSessID++
	return sh.nextSessID*uint32(len(sh.p.shards)) + uint32(sh.id)
}

// setHints publishes the idle and waiting counts. An atomic store is a
// full barrier on amd64 and this runs several times per statement, so a
// value is stored only when it changed (the shadows are loop-local).
func (sh *shard) setHints() {
	if idle, held := len(sh.idle), len(sh.held); idle != sh.shownIdle || held != sh.shownHeld {
		sh.shownIdle, sh.shownHeld = idle, held
		sh.idleHint.Store(int32(idle + held))
		sh.stats.BackendsIdle.Store(int64(idle))
	}
	if sh.nWaiting != sh.shownWaiting {
		sh.shownWaiting = sh.nWaiting
		sh.waitHint.Store(int32(sh.nWaiting))
		sh.stats.QueueWaiting.Store(int64(sh.nWaiting))
	}
}

// acquire gives s a backend now, or queues it until one frees up or its
// deadline passes.
func (sh *shard) acquire(s *session) {
	if n := len(sh.idle); n > 0 {
		b := sh.idle[n-1]
		sh.idle[n-1] = nil
		sh.idle = sh.idle[:n-1]
		sh.setHints()
		s.attach(b)
		return
	}
	if b := sh.reclaimHeld(); b != nil {
		s.attach(b)
		return
	}
	if sh.failFast(s) {
		return
	}
	s.waitPrev, s.waitNext = sh.waitTail, nil
	if sh.waitTail != nil {
		sh.waitTail.waitNext = s
	} else {
		sh.waitHead = s
	}
	sh.waitTail = s
	sh.nWaiting++
	s.queued = true
	s.queuedAt = time.Now()
	s.timer.Func = sessionTimerFired
	sh.loop.Schedule(&s.timer, time.Duration(sh.p.queueTimeout.Load()))
	sh.stats.QueueWaits.Add(1)
	sh.setHints()
	sh.seekSteal()
}

// hold lets s keep its backend after a statement with diagnostics.
func (sh *shard) hold(s *session) {
	s.held = true
	sh.held = append(sh.held, s)
	sh.stats.DiagnosticHolds.Add(1)
	sh.setHints()
}

// unhold takes s off the held list; it keeps its backend.
func (sh *shard) unhold(s *session) {
	if !s.held {
		return
	}
	s.held = false
	for i, x := range sh.held {
		if x == s {
			copy(sh.held[i:], sh.held[i+1:])
			sh.held[len(sh.held)-1] = nil
			sh.held = sh.held[:len(sh.held)-1]
			break
		}
	}
	sh.setHints()
}

// reclaimHeld takes the backend of the session that has held one longest,
// or returns nil.
func (sh *shard) reclaimHeld() *backend {
	if len(sh.held) == 0 {
		return nil
	}
	s := sh.held[0]
	sh.unhold(s)
	b := s.b
	s.b = nil
	b.owner = nil
	return b
}

// dequeue removes s from the wait queue.
func (sh *shard) dequeue(s *session) {
	if !s.queued {
		return
	}
	if s.waitPrev != nil {
		s.waitPrev.waitNext = s.waitNext
	} else {
		sh.waitHead = s.waitNext
	}
	if s.waitNext != nil {
		s.waitNext.waitPrev = s.waitPrev
	} else {
		sh.waitTail = s.waitPrev
	}
	s.waitPrev, s.waitNext = nil, nil
	s.queued = false
	sh.nWaiting--
	sh.loop.Cancel(&s.timer)
	waited := time.Since(s.queuedAt)
	sh.stats.QueueWaitNs.Add(uint64(waited))
	sh.stats.QueueWait.Observe(waited)
	sh.setHints()
}

// release takes back a backend that finished serving a session: the first
// waiter gets it, else a loop with waiters, else the idle list.
func (sh *shard) release(b *backend) {
	b.owner = nil
	b.resumeIfPaused()
	if s := sh.waitHead; s != nil {
		// Fairness across loops: once backends have migrated to a busy
		// loop, a loop that reuses every backend it frees for its own
		// waiters starves the others' until their queue deadline. So a
		// freed backend goes to a more backlogged loop, and every other
		// one to an equally or less backlogged loop that has waiters.
		if other := sh.backloggedPeer(); other != nil && sh.sendBackend(b, other, false) {
			return
		}
		sh.dequeue(s)
		s.attach(b)
		return
	}
	if sh.donate(b) {
		return
	}
	sh.park(b)
}

// giveAdopted places a backend that arrived from another loop (or just
// logged in).
func (sh *shard) giveAdopted(b *backend) {
	b.owner = nil
	if s := sh.waitHead; s != nil {
		sh.dequeue(s)
		s.attach(b)
		return
	}
	sh.park(b)
}

// park puts a backend that no session waits for on the idle list, or
// closes it once the proxy is draining and no session is left.
func (sh *shard) park(b *backend) {
	if sh.quitting {
		b.quit()
		return
	}
	b.idleSince = sh.loop.Now()
	sh.idle = append(sh.idle, b)
	sh.setHints()
}

// removeIdle drops a backend that closed while idle.
func (sh *shard) removeIdle(b *backend) {
	for i, x := range sh.idle {
		if x == b {
			copy(sh.idle[i:], sh.idle[i+1:])
			sh.idle[len(sh.idle)-1] = nil
			sh.idle = sh.idle[:len(sh.idle)-1]
			sh.setHints()
			return
		}
	}
}

// donate hands b to another loop that has waiters, when this one has none.
// backloggedPeer picks a loop with waiters that should get the next freed
// backend instead of this loop's own waiters (see release), or nil.
func (sh *shard) backloggedPeer() *shard {
	shards := sh.p.shards
	if len(shards) == 1 {
		return nil
	}
	sh.fairTurn = !sh.fairTurn
	for i := 1; i < len(shards); i++ {
		other := shards[(sh.id+i)%len(shards)]
		if w := int(other.waitHint.Load()); w > sh.nWaiting || (w > 0 && sh.fairTurn) {
			return other
		}
	}
	return nil
}

func (sh *shard) donate(b *backend) bool {
	shards := sh.p.shards
	if len(shards) == 1 {
		return false
	}
	for i := 1; i < len(shards); i++ {
		other := shards[(sh.id+i)%len(shards)]
		if other.waitHint.Load() > 0 {
			return sh.sendBackend(b, other, false)
		}
	}
	return false
}

// seekSteal asks a loop that advertises idle backends for one, as long as
// this loop has more waiters than requests in flight.
func (sh *shard) seekSteal() {
	shards := sh.p.shards
	n := len(shards)
	if n == 1 || sh.stealsInFlight >= sh.nWaiting {
		return
	}
	// Start at a rotating offset among the other loops so requests spread.
	sh.stealCursor++
	for i := 0; i < n-1; i++ {
		other := shards[(sh.id+1+(sh.stealCursor+i)%(n-1))%n]
		if other.idleHint.Load() > 0 {
			sh.stealsInFlight++
			sh.loop.Post(other.loop, reactor.Task{Fn: stealRequested, Arg: sh})
			return
		}
	}
	if !sh.stealRetry.Armed() {
		sh.loop.Schedule(&sh.stealRetry, stealRetryInterval)
	}
}

// stealRequested runs on the donor loop.
func stealRequested(l *reactor.Loop, arg any, _ uint64) {
	req := arg.(*shard)
	d := req.p.shardOf(l)
	if n := len(d.idle); d.nWaiting == 0 && n > 0 {
		b := d.idle[n-1]
		d.idle[n-1] = nil
		d.idle = d.idle[:n-1]
		if d.sendBackend(b, req, true) {
			d.setHints()
			return
		}
		d.idle = append(d.idle, b)
	} else if d.nWaiting == 0 {
		if b := d.reclaimHeld(); b != nil {
			if d.sendBackend(b, req, true) {
				return
			}
			d.idle = append(d.idle, b)
			d.setHints()
		}
	}
	l.Post(req.loop, reactor.Task{Fn: stealFailed, Arg: req})
}

func stealFailed(_ *reactor.Loop, arg any, _ uint64) {
	sh := arg.(*shard)
	sh.stealsInFlight--
	sh.seekSteal()
}

// solicitedBit marks a backend sent in answer to a steal request.
const solicitedBit = 1 << 63

// sendBackend detaches b's socket from this loop and posts it to dst. On
// failure (data in flight) b stays here and the caller keeps it.
func (sh *shard) sendBackend(b *backend, dst *shard, solicited bool) bool {
	fd, err := b.c.Detach()
	if err != nil {
		return false
	}
	b.c = nil
	sh.stats.BackendsConnected.Add(-1)
	n := uint64(fd)
	if solicited {
		n |= solicitedBit
	}
	sh.loop.Post(dst.loop, reactor.Task{Fn: backendArrived, Arg: b, N: n})
	return true
}

// backendArrived runs on the receiving loop.
func backendArrived(l *reactor.Loop, arg any, n uint64) {
	b := arg.(*backend)
	sh := b.p.shardOf(l)
	if n&solicitedBit != 0 {
		sh.stealsInFlight--
	}
	fd := int(n &^ solicitedBit)
	b.sh = sh
	c, err := conn.Adopt(l, fd, b.p.cfg.Targets[b.target].Addr.Network, b.peer, b, conn.Options{})
	if err != nil {
		b.p.logf("backend %d: adopt on loop %d: %v", b.idx, l.ID(), err)
		b.c = nil
		b.down(err)
		return
	}
	b.c = c
	sh.stats.BackendsConnected.Add(1)
	sh.stats.BackendsAdopted.Add(1)
	sh.giveAdopted(b)
}
