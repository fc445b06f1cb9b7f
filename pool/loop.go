package pool

import (
	"sync/atomic"
	"time"

	"github.com/scalestack/scalestack/reactor"
)

// LoopPool is one loop's part of the pool: the backends it currently owns,
// the idle ones among them, the backends clients keep for a while, and the
// requests waiting for one. (Not a "shard": nothing is partitioned by key;
// any backend serves any client, and backends move between loops.)
// Everything in it is touched only by its loop; other loops read the two
// hints.
type LoopPool struct {
	p    *Pool
	loop *reactor.Loop
	id   int
	idle []*Backend
	// kept are backends whose client keeps them after an exchange (for
	// MySQL: a statement's warnings, for SHOW WARNINGS); a waiter takes
	// such a backend, oldest first, before it would wait.
	kept     []*Backend
	sched    Scheduler
	nWaiting int
	// fair: sched is the fair scheduler, so tenants' max-backends hold
	// (with FIFO, tenants only share the counters and admission rules).
	fair bool
	// stealsInFlight counts steal requests posted and not yet answered.
	stealsInFlight int
	stealCursor    int
	// stealRetry re-runs seekSteal while waiters remain unserved: hints
	// are read without synchronisation, so a loop that releases a backend
	// just as this one starts waiting can miss it.
	stealRetry reactor.Timer

	// handOffs are backends freed while requests wait; they go to the
	// waiters at the end of the loop's iteration (Flush), never from the
	// stack of the client that released them.
	handOffs      []*Backend
	handOffQueued bool

	// Hints for other loops: how many idle (and kept) backends and
	// waiters this loop has. Stale values only cost a failed steal or a
	// needless donation.
	idleHint atomic32
	waitHint atomic32
	// headSince is when the waiter this loop would serve next was queued
	// (monoNow; 0 with none waiting), for a loop deciding whether to hand
	// a freed backend over (backloggedPeer).
	headSince atomic.Int64
	// shownIdle, shownKept and shownWaiting are the values last
	// published by setHints; shownHead headSince's.
	shownIdle, shownKept, shownWaiting int
	shownHead                          int64

	// bypassed is the first waiter last passed over for a waiter of a
	// freed backend's class, bypasses how many times in a row
	// (waiterOfClass).
	bypassed *Waiter
	bypasses int

	// quitting: no client is left (Quit); a backend that becomes free is
	// closed instead of going idle.
	quitting bool

	// healthTimer pings idle backends every Config.HealthInterval.
	healthTimer reactor.Timer

	stats Stats
}

func newLoopPool(p *Pool, l *reactor.Loop, id int) *LoopPool {
	lp := &LoopPool{p: p, loop: l, id: id, sched: p.cfg.NewScheduler()}
	_, lp.fair = lp.sched.(*fair)
	lp.stealRetry.Func = retrySteal
	lp.stealRetry.Arg = lp
	return lp
}

// Idle lists the backends idle on this loop, most recently idle last, for
// a protocol that writes them something needing no answer; the slice must
// not be kept or changed.
func (lp *LoopPool) Idle() []*Backend { return lp.idle }

// ID is the loop's index (reactor.Loop.ID).
func (lp *LoopPool) ID() int { return lp.id }

// Loop is the reactor loop that owns this part.
func (lp *LoopPool) Loop() *reactor.Loop { return lp.loop }

// Pool is the whole pool.
func (lp *LoopPool) Pool() *Pool { return lp.p }

// Waiting is how many requests wait for a backend on this loop.
func (lp *LoopPool) Waiting() int { return lp.nWaiting }

// stealRetryInterval is how soon a loop whose waiters found no idle backend
// anywhere looks again.
const stealRetryInterval = 10 * time.Millisecond

func retrySteal(arg any) {
	lp := arg.(*LoopPool)
	if lp.p.unavailable.Load() {
		// Nothing will come: refuse the waiters now.
		lp.failWaiters()
		return
	}
	lp.serveIdle()
	lp.seekSteal()
}

// serveIdle grants idle backends to waiters that may be served now: a
// tenant at its max-backends waits beside idle backends until one of its
// own comes back, which may happen on another loop.
func (lp *LoopPool) serveIdle() {
	for len(lp.idle) > 0 {
		w := lp.sched.Peek()
		if w == nil {
			break
		}
		lp.Leave(w)
		lp.grant(lp.takeIdle(w.Class), w)
	}
	if lp.nWaiting > 0 && len(lp.idle) > 0 && !lp.stealRetry.Armed() {
		lp.loop.Schedule(&lp.stealRetry, stealRetryInterval)
	}
}

// atMaxBackends reports whether t may not have another backend now.
func (lp *LoopPool) atMaxBackends(t *Tenant) bool {
	if t == nil || !lp.fair {
		return false
	}
	m := t.rules.Load().MaxBackends
	return m > 0 && int(t.held.Load()) >= m
}

// setHints publishes the idle and waiting counts. An atomic store is a
// full barrier on amd64 and this runs several times per exchange, so a
// value is stored only when it changed (the shadows are loop-local).
func (lp *LoopPool) setHints() {
	if idle, kept := len(lp.idle), len(lp.kept); idle != lp.shownIdle || kept != lp.shownKept {
		lp.shownIdle, lp.shownKept = idle, kept
		lp.idleHint.Store(int32(idle + kept))
		lp.stats.BackendsIdle.Store(int64(idle))
	}
	if lp.nWaiting != lp.shownWaiting {
		lp.shownWaiting = lp.nWaiting
		lp.waitHint.Store(int32(lp.nWaiting))
		lp.stats.QueueWaiting.Store(int64(lp.nWaiting))
		// The next waiter changes when a waiter comes or goes; with the
		// fair scheduler also as virtual times move, which leaves the
		// value a little stale: that only shifts when a hand-over
		// happens. With one loop nobody reads it.
		if len(lp.p.loops) > 1 {
			if head := lp.headQueuedAt(); head != lp.shownHead {
				lp.shownHead = head
				lp.headSince.Store(head)
			}
		}
	}
}

// headQueuedAt is when the waiter this loop would serve next was queued
// (or, when none may be served now, any waiter), 0 with none waiting.
func (lp *LoopPool) headQueuedAt() int64 {
	if lp.nWaiting == 0 {
		return 0
	}
	w := lp.sched.Peek()
	if w == nil {
		w = lp.sched.Any()
	}
	if w == nil {
		return 0
	}
	return w.queuedAt
}

// Acquire gives w's client a backend: now (Client.Granted runs before
// Acquire returns), or once one frees up, or never (Client.Refused: the
// deadline passed, or no backend is available). w must not be queued.
func (lp *LoopPool) Acquire(w *Waiter) {
	t := w.Tenant
	atMax := lp.atMaxBackends(t)
	if !atMax {
		if b := lp.takeIdle(w.Class); b != nil {
			lp.grant(b, w)
			return
		}
		if b := lp.reclaimKept(); b != nil {
			lp.grant(b, w)
			return
		}
	}
	if lp.failFast(w) {
		return
	}
	d := lp.queueTimeout(t)
	if t != nil {
		if m := t.rules.Load().MaxQueued; m > 0 && int(t.queued.Load()) >= m {
			t.stats[lp.id].Refused[RefusedMaxQueued].Add(1)
			w.Client.Refused(ErrMaxQueued)
			return
		}
		if t.queued.Add(1) == 1 && t.held.Load() == 0 {
			t.activate()
		}
		t.stats[lp.id].QueueWaits.Add(1)
	}
	w.lp = lp
	w.queuedAt = monoNow()
	w.Timer.Func = waiterTimedOut
	w.Timer.Arg = w
	lp.sched.Push(w)
	lp.nWaiting++
	lp.loop.Schedule(&w.Timer, d)
	lp.stats.QueueWaits.Add(1)
	lp.setHints()
	if atMax && len(lp.idle) > 0 && !lp.stealRetry.Armed() {
		lp.loop.Schedule(&lp.stealRetry, stealRetryInterval)
	}
	lp.seekSteal()
}

// queueTimeout is how long t's requests may wait: its rule, else the
// pool's.
func (lp *LoopPool) queueTimeout(t *Tenant) time.Duration {
	if t != nil {
		if d := t.rules.Load().QueueTimeout; d > 0 {
			return d
		}
	}
	return time.Duration(lp.p.queueTimeout.Load())
}

// takeIdle takes the most recently idle backend of class c, or else the
// least recently idle one (the protocol converts it: of the others, the
// one its class has needed least lately), or nil.
func (lp *LoopPool) takeIdle(c Class) *Backend {
	n := len(lp.idle)
	if n == 0 {
		return nil
	}
	i := 0
	for j := n - 1; j >= 0; j-- {
		if lp.idle[j].class == c {
			i = j
			break
		}
	}
	b := lp.idle[i]
	copy(lp.idle[i:], lp.idle[i+1:])
	lp.idle[n-1] = nil
	lp.idle = lp.idle[:n-1]
	lp.setHints()
	return b
}

// grant hands b to w's client.
func (lp *LoopPool) grant(b *Backend, w *Waiter) {
	b.owner = w.Client
	if t := w.Tenant; t != nil {
		b.tenant = t
		b.heldSince = monoNow()
		t.granted(lp.id)
	}
	w.Client.Granted(b)
}

// endHold charges b's time with its owner to the owner's tenant; the
// owner is giving b back or losing it.
func (lp *LoopPool) endHold(b *Backend) {
	if t := b.tenant; t != nil {
		b.tenant = nil
		t.charge(lp.id, monoNow()-b.heldSince)
	}
}

func waiterTimedOut(arg any) {
	w := arg.(*Waiter)
	lp := w.lp
	lp.Leave(w)
	lp.stats.QueueTimeouts.Add(1)
	if t := w.Tenant; t != nil {
		t.stats[lp.id].Refused[RefusedQueueTimeout].Add(1)
	}
	w.Client.Refused(ErrQueueTimeout)
}

// Leave takes w out of the wait queue (its client gave up or is gone); a
// waiter that is not queued is left alone.
func (lp *LoopPool) Leave(w *Waiter) {
	if w.lp == nil {
		return
	}
	lp.sched.Remove(w)
	w.lp = nil
	if w == lp.bypassed {
		lp.bypassed = nil
	}
	lp.nWaiting--
	lp.loop.Cancel(&w.Timer)
	waited := time.Duration(monoNow() - w.queuedAt)
	lp.stats.QueueWaitNs.Add(uint64(waited))
	lp.stats.QueueWait.Observe(waited)
	if t := w.Tenant; t != nil {
		t.queued.Add(-1)
		t.stats[lp.id].QueueWait.Observe(waited)
	}
	lp.setHints()
}

// Keep lets b's owner keep it after an exchange until it is released, or
// until a waiter needs it (Client.Revoked). Keeping a kept backend does
// nothing.
func (lp *LoopPool) Keep(b *Backend) {
	if b.kept {
		return
	}
	b.kept = true
	lp.kept = append(lp.kept, b)
	lp.setHints()
}

// Unkeep takes b off the kept list; its owner keeps it.
func (lp *LoopPool) Unkeep(b *Backend) {
	if b.kept {
		lp.unkeep(b)
	}
}

func (lp *LoopPool) unkeep(b *Backend) {
	b.kept = false
	for i, x := range lp.kept {
		if x == b {
			copy(lp.kept[i:], lp.kept[i+1:])
			lp.kept[len(lp.kept)-1] = nil
			lp.kept = lp.kept[:len(lp.kept)-1]
			break
		}
	}
	lp.setHints()
}

// reclaimKept takes back the backend kept longest, or returns nil.
func (lp *LoopPool) reclaimKept() *Backend {
	if len(lp.kept) == 0 {
		return nil
	}
	b := lp.kept[0]
	lp.unkeep(b)
	lp.endHold(b)
	owner := b.owner
	b.owner = nil
	owner.Revoked(b)
	return b
}

// Release takes back a backend whose owner is done with it: a loop that
// is more backlogged gets it, else (at the end of this iteration) the
// first waiter, else a loop with waiters, else the idle list.
func (lp *LoopPool) Release(b *Backend) {
	lp.endHold(b)
	b.owner = nil
	if b.kept {
		lp.unkeep(b)
	}
	if b.relogin {
		return // placed once its new connection is logged in (Backend.Reopen)
	}
	if lp.nWaiting > 0 {
		// Fairness across loops: once backends have migrated to a busy
		// loop, a loop that reuses every backend it frees for its own
		// waiters starves the others' until their queue deadline. So a
		// freed backend goes to a loop whose next waiter has waited
		// clearly longer than this loop's, if that loop has more
		// waiters per backend (backloggedPeer).
		if other := lp.backloggedPeer(); other != nil && lp.sendBackend(b, other, false) {
			return
		}
		lp.handOff(b)
		return
	}
	if lp.donate(b) {
		return
	}
	lp.park(b)
}

// Reset takes back a backend whose owner left it in a state the next
// owner must not see: the protocol resets it (Server.Reset) and it is
// released once that is done.
func (lp *LoopPool) Reset(b *Backend) {
	lp.endHold(b)
	b.owner = nil
	if b.kept {
		lp.unkeep(b)
	}
	if b.relogin {
		return // a fresh login needs no reset (Backend.Reopen)
	}
	lp.stats.BackendResets.Add(1)
	b.duty = dutyReset
	b.srv.Reset()
}

// handOff queues b for the next waiter at the end of the iteration: the
// client that released it is still on the stack, and the next client's
// exchange must not start inside it.
func (lp *LoopPool) handOff(b *Backend) {
	b.duty = dutyHandOff
	lp.handOffs = append(lp.handOffs, b)
	if !lp.handOffQueued {
		lp.handOffQueued = true
		lp.loop.Defer(lp)
	}
}

// Flush implements reactor.Flusher: backends freed during the iteration go
// to the waiters (or the idle list, if the waiters left meanwhile). A
// grant that releases a backend again at once (an error answered locally)
// appends to the list being walked.
func (lp *LoopPool) Flush() {
	for i := 0; i < len(lp.handOffs); i++ {
		b := lp.handOffs[i]
		lp.handOffs[i] = nil
		if b.duty != dutyHandOff || b.phase != bReady || b.c == nil || b.c.Closed() {
			continue // it broke meanwhile (down runs, or ran)
		}
		b.duty = dutyNone
		lp.giveAdopted(b)
	}
	lp.handOffs = lp.handOffs[:0]
	lp.handOffQueued = false
}

// giveAdopted places a free backend: the first waiter gets it (or one of
// the backend's class that the scheduler finds: waiterOfClass), else the
// idle list.
func (lp *LoopPool) giveAdopted(b *Backend) {
	b.owner = nil
	if w := lp.sched.Peek(); w != nil {
		if w.Class != b.class {
			w = lp.waiterOfClass(w, b.class)
		}
		lp.Leave(w)
		lp.grant(b, w)
		return
	}
	lp.park(b)
	if lp.nWaiting > 0 && !lp.quitting && !lp.stealRetry.Armed() {
		// Waiters none of whom may be served now (max-backends).
		lp.loop.Schedule(&lp.stealRetry, stealRetryInterval)
	}
}

// Class-aware hand-offs: a backend freed while waiters of mixed classes
// wait goes to the first waiter of its own class among the next
// classScanLimit rather than to the first waiter, whose protocol would
// convert it (for MySQL a new login): converting every other hand-off
// would cost more than the exchanges. The first waiter is passed over at
// most maxClassBypasses times in a row, so a class that no backend has
// yet still gets one converted soon.
const (
	classScanLimit   = 16
	maxClassBypasses = 4
)

// waiterOfClass picks who gets a backend of class c when head, the first
// waiter, needs another class.
func (lp *LoopPool) waiterOfClass(head *Waiter, c Class) *Waiter {
	f, ok := lp.sched.(ClassFinder)
	if !ok {
		return head
	}
	if head != lp.bypassed {
		lp.bypassed, lp.bypasses = head, 0
	}
	if lp.bypasses >= maxClassBypasses {
		return head
	}
	w := f.FirstOfClass(c, classScanLimit)
	if w == nil {
		return head
	}
	lp.bypasses++
	return w
}

// park puts a backend that no request waits for on the idle list, or
// closes it once the pool is quitting.
func (lp *LoopPool) park(b *Backend) {
	if lp.quitting {
		b.quit()
		return
	}
	b.idleSince = lp.loop.Now()
	lp.idle = append(lp.idle, b)
	lp.setHints()
}

// removeIdle drops a backend that closed while idle.
func (lp *LoopPool) removeIdle(b *Backend) {
	for i, x := range lp.idle {
		if x == b {
			copy(lp.idle[i:], lp.idle[i+1:])
			lp.idle[len(lp.idle)-1] = nil
			lp.idle = lp.idle[:len(lp.idle)-1]
			lp.setHints()
			return
		}
	}
}

// handOverAfter and handOverFactor are the hysteresis of hand-overs
// between loops that both have waiters: a loop gives a freed backend to
// another only when the other's next waiter has waited handOverFactor
// times as long as its own and handOverAfter more.
const (
	handOverAfter  = time.Millisecond
	handOverFactor = 2
	// handOverAnyway is how much longer the other loop's next waiter
	// must have waited for the hand-over to ignore how many waiters each
	// loop has per backend: a loop whose backends are all held for long
	// (pinned sessions, long statements) has few waiters per backend and
	// would otherwise wait for its queue deadline.
	handOverAnyway = 20 * time.Millisecond
)

// backloggedPeer picks a loop with waiters that should get the next freed
// backend instead of this loop's own waiters (see Release), or nil: one
// whose next waiter has waited clearly longer than this loop's, and that
// has more waiters per backend it owns (or whose next waiter has waited
// handOverAnyway longer). That is one first-come,
// first-served queue across loops in effect, with hysteresis: loops that
// are both saturated keep the backends they free (a move costs two
// epoll_ctl calls, a wake-up of the other loop and the backend's idle
// time in transit), while a loop left with none still gets them as its
// next waiter ages. (Alternating with every loop that had waiters, as
// before, moved 3 of 4 backends freed under saturation and halved the
// throughput of 2 loops: bench/results/loops-20261206.md; the age test
// alone still moved 1 in 5 to 10 in TestSaturatedLoopsKeepTheirBackends,
// where a stall of one loop prompted a move and the imbalance it left a
// move back.)
func (lp *LoopPool) backloggedPeer() *LoopPool {
	loops := lp.p.loops
	if len(loops) == 1 || lp.p.cfg.Stationary {
		return nil
	}
	now := monoNow()
	mine := now - lp.headQueuedAt()
	owned, waiting := lp.stats.BackendsConnected.Load(), int64(lp.nWaiting)
	for i := 1; i < len(loops); i++ {
		other := loops[(lp.id+i)%len(loops)]
		h := other.headSince.Load()
		if h == 0 {
			continue
		}
		theirs := now - h
		if theirs <= handOverFactor*mine || theirs-mine <= int64(handOverAfter) {
			continue
		}
		// And only to a loop with more waiters per backend it owns: a
		// move that one loop's stall prompted is not answered by another
		// back and forth (a loop that owns none qualifies at once),
		// unless the other's waiter has waited far longer.
		if theirs-mine > int64(handOverAnyway) ||
			int64(other.waitHint.Load())*owned > waiting*other.stats.BackendsConnected.Load() {
			return other
		}
	}
	return nil
}

// donate hands b to another loop that has waiters, when this one has none.
func (lp *LoopPool) donate(b *Backend) bool {
	loops := lp.p.loops
	if len(loops) == 1 || lp.p.cfg.Stationary {
		return false
	}
	for i := 1; i < len(loops); i++ {
		other := loops[(lp.id+i)%len(loops)]
		if other.waitHint.Load() > 0 {
			return lp.sendBackend(b, other, false)
		}
	}
	return false
}

// seekSteal asks a loop that advertises idle backends for one, as long as
// this loop has more waiters than requests in flight.
func (lp *LoopPool) seekSteal() {
	loops := lp.p.loops
	n := len(loops)
	if n == 1 || lp.p.cfg.Stationary || lp.stealsInFlight >= lp.nWaiting {
		return
	}
	// Start at a rotating offset among the other loops so requests spread.
	lp.stealCursor++
	for i := 0; i < n-1; i++ {
		other := loops[(lp.id+1+(lp.stealCursor+i)%(n-1))%n]
		if other.idleHint.Load() > 0 {
			lp.stealsInFlight++
			lp.loop.Post(other.loop, reactor.Task{Fn: stealRequested, Arg: lp})
			return
		}
	}
	if !lp.stealRetry.Armed() {
		lp.loop.Schedule(&lp.stealRetry, stealRetryInterval)
	}
}

// stealRequested runs on the donor loop.
func stealRequested(l *reactor.Loop, arg any, _ uint64) {
	req := arg.(*LoopPool)
	d := req.p.Loop(l)
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
		if b := d.reclaimKept(); b != nil {
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
	lp := arg.(*LoopPool)
	lp.stealsInFlight--
	lp.seekSteal()
}

// solicitedBit marks a backend sent in answer to a steal request.
const solicitedBit = 1 << 63

// sendBackend detaches b's connection from this loop and posts b to dst. On
// failure (data in flight) b stays here and the caller keeps it.
func (lp *LoopPool) sendBackend(b *Backend, dst *LoopPool, solicited bool) bool {
	if _, err := b.c.Detach(); err != nil {
		return false
	}
	// The Conn travels with the backend (Reattach on dst): b.c is nil
	// meanwhile, so nothing here takes it for a live connection.
	b.moving, b.c = b.c, nil
	lp.stats.BackendsConnected.Add(-1)
	var n uint64
	if solicited {
		n = solicitedBit
	}
	lp.loop.Post(dst.loop, reactor.Task{Fn: backendArrived, Arg: b, N: n})
	return true
}

// backendArrived runs on the receiving loop.
func backendArrived(l *reactor.Loop, arg any, n uint64) {
	b := arg.(*Backend)
	lp := b.p.Loop(l)
	if n&solicitedBit != 0 {
		lp.stealsInFlight--
	}
	b.lp = lp
	c := b.moving
	b.moving = nil
	if err := c.Reattach(l); err != nil { // the same Conn: no allocation per move
		b.p.logf("backend %d: adopt on loop %d: %v", b.idx, l.ID(), err)
		b.c = nil
		b.down(err)
		return
	}
	b.c = c
	lp.stats.BackendsConnected.Add(1)
	lp.stats.BackendsAdopted.Add(1)
	lp.giveAdopted(b)
}
