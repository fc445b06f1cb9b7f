package reactor

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Task is a unit of work posted to a loop. Fn should be a top-level function
// (not a closure) and Arg a pointer, so that posting allocates nothing; N
// carries a scalar operand such as a file descriptor or a sequence number.
type Task struct {
	Fn  func(l *Loop, arg any, n uint64)
	Arg any
	N   uint64
}

// Flusher is work a loop runs once at the end of the current iteration, after
// every event of the batch has been handled: connections use it to coalesce
// the writes of a batch into one send.
type Flusher interface{ Flush() }

// Tracked is something a loop must close when the engine stops (connections,
// listeners). ForceClose runs on the loop and must release the descriptor.
type Tracked interface{ ForceClose() }

// LoopStats are counters a loop maintains for observers; they are updated
// once per iteration with plain atomic stores and may be read from any
// goroutine.
type LoopStats struct {
	Iterations atomic.Uint64
	Events     atomic.Uint64
	Tasks      atomic.Uint64
	BusyNanos  atomic.Uint64 // time spent outside the driver's wait
	Yields     atomic.Uint64 // voluntary passes through the Go scheduler
}

// ErrStopped is returned when work is submitted to a loop that has stopped.
var ErrStopped = errors.New("reactor: loop stopped")

// Loop is one reactor: a goroutine locked to an OS thread that owns a driver,
// timers and connections.
type Loop struct {
	id       int
	cpu      int // -1 when not pinned
	eng      *Engine
	drv      Driver
	timers   timerWheel
	now      time.Time
	nowStale bool // now predates the driver's wait; refreshed on first use

	inbox    []*SPSC[Task] // inbox[src] is filled by loop src
	outbox   []*SPSC[Task] // outbox[dst] is loop dst's inbox[id]
	overflow [][]Task      // per destination, tasks that found the queue full
	outDirty []int
	local    []Task // tasks posted to this very loop

	sleeping atomic.Int32
	// lastYield is when the loop last passed through the Go scheduler.
	lastYield time.Time
	// awakeSince is when the driver's last wait returned: the loop has been
	// busy since then, until its next wait.
	awakeSince time.Time
	// spaceWanted is raised while this loop holds tasks that found a
	// destination queue full; a consumer that frees slots in one of this
	// loop's queues lowers it and wakes this loop to push the rest.
	spaceWanted atomic.Bool

	ctlMu      sync.Mutex
	ctl        []func(*Loop)
	ctlSpare   []func(*Loop)
	ctlPending atomic.Bool
	ctlClosed  bool

	deferred []Flusher
	tracked  []Tracked
	freeIdx  []int

	stopReq  atomic.Bool
	finished chan struct{}

	Stats LoopStats
}

// ID returns the loop's index in its engine.
func (l *Loop) ID() int { return l.id }

// CPU returns the CPU the loop is pinned to, or -1.
func (l *Loop) CPU() int { return l.cpu }

// Engine returns the engine the loop belongs to.
func (l *Loop) Engine() *Engine { return l.eng }

// Driver returns the loop's I/O driver. Loop goroutine only.
func (l *Loop) Driver() Driver { return l.drv }

// Now returns the time cached at the start of the current iteration; cheap
// enough for per-statement timestamps.
func (l *Loop) Now() time.Time {
	if l.nowStale {
		l.now, l.nowStale = time.Now(), false
	}
	return l.now
}

// Schedule arms t to fire after d, re-arming it if it was armed. Loop
// goroutine only.
func (l *Loop) Schedule(t *Timer, d time.Duration) { l.timers.schedule(t, l.Now(), d) }

// Cancel disarms t; cancelling a disarmed timer is a no-op. Loop goroutine
// only.
func (l *Loop) Cancel(t *Timer) { l.timers.cancel(t) }

// Defer runs f.Flush at the end of the current iteration. Callers keep their
// own "already deferred" flag so each is queued at most once. Loop goroutine
// only.
func (l *Loop) Defer(f Flusher) { l.deferred = append(l.deferred, f) }

// Track registers r to be force-closed when the engine stops and returns a
// token for Untrack. Loop goroutine only.
func (l *Loop) Track(r Tracked) int {
	if n := len(l.freeIdx); n > 0 {
		i := l.freeIdx[n-1]
		l.freeIdx = l.freeIdx[:n-1]
		l.tracked[i] = r
		return i
	}
	l.tracked = append(l.tracked, r)
	return len(l.tracked) - 1
}

// Untrack forgets the registration made by Track. Loop goroutine only.
func (l *Loop) Untrack(token int) {
	if token < 0 || token >= len(l.tracked) || l.tracked[token] == nil {
		return
	}
	l.tracked[token] = nil
	l.freeIdx = append(l.freeIdx, token)
}

// Tracked returns how many resources the loop currently tracks.
func (l *Loop) TrackedCount() int { return len(l.tracked) - len(l.freeIdx) }

// Post queues t for loop dst. From a loop to another it goes through their
// SPSC queue and becomes visible at the end of this iteration; to the loop
// itself it runs in the next pass over inbound work, before the loop sleeps. Loop goroutine only: other
// goroutines use Submit.
func (l *Loop) Post(dst *Loop, t Task) {
	if dst == l {
		l.local = append(l.local, t)
		return
	}
	q := l.outbox[dst.id]
	if len(l.overflow[dst.id]) == 0 && q.Push(t) {
		l.markDirty(dst.id)
		return
	}
	// The destination is behind; keep order by queueing behind what is
	// already waiting and retry every iteration.
	l.overflow[dst.id] = append(l.overflow[dst.id], t)
	l.markDirty(dst.id)
}

func (l *Loop) markDirty(dst int) {
	for _, d := range l.outDirty {
		if d == dst {
			return
		}
	}
	l.outDirty = append(l.outDirty, dst)
}

// Submit runs fn on the loop. It is safe from any goroutine and intended for
// control work (starting listeners, shutdown, admin); data-path hand-offs
// between loops use Post.
func (l *Loop) Submit(fn func(*Loop)) error {
	l.ctlMu.Lock()
	if l.ctlClosed {
		l.ctlMu.Unlock()
		return ErrStopped
	}
	l.ctl = append(l.ctl, fn)
	l.ctlPending.Store(true)
	// Waking under the lock orders it before closeControl, so the eventfd
	// is never written after the loop has closed it.
	l.wake()
	l.ctlMu.Unlock()
	return nil
}

// Exec runs fn on the loop and waits for it to finish. It must not be called
// from a loop goroutine (that would deadlock or block a reactor).
func (l *Loop) Exec(fn func(*Loop)) error {
	done := make(chan struct{})
	if err := l.Submit(func(l *Loop) { fn(l); close(done) }); err != nil {
		return err
	}
	select {
	case <-done:
		return nil
	case <-l.finished:
		select {
		case <-done:
			return nil
		default:
			return ErrStopped
		}
	}
}

// wake interrupts the loop's wait if, and only if, it is about to sleep or
// sleeping. Paired with the flag-then-recheck in run, no wakeup is lost.
func (l *Loop) wake() {
	if l.sleeping.Load() == 1 && l.sleeping.CompareAndSwap(1, 0) {
		_ = l.drv.Wake()
	}
}

func (l *Loop) hasInbound() bool {
	if l.ctlPending.Load() || len(l.local) > 0 {
		return true
	}
	if len(l.outDirty) > 0 && !l.spaceWanted.Load() {
		return true // a consumer freed slots for our overflow
	}
	for _, q := range l.inbox {
		if q != nil && q.Pending() {
			return true
		}
	}
	return false
}

func (l *Loop) run(ready chan<- error) {
	runtime.LockOSThread()
	// The thread is never unlocked: if it was pinned, returning it to the
	// scheduler would leave a one-CPU mask on a general-purpose thread. The
	// runtime destroys a locked thread when its goroutine exits.
	defer close(l.finished)
	if l.cpu >= 0 {
		var set unix.CPUSet
		set.Set(l.cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			l.closeControl()
			ready <- fmt.Errorf("loop %d: pin to cpu %d: %w", l.id, l.cpu, err)
			return
		}
	}
	drv, err := l.eng.cfg.NewDriver()
	if err == nil {
		err = drv.Init()
	}
	if err != nil {
		l.closeControl()
		ready <- fmt.Errorf("loop %d: %s driver: %w", l.id, l.eng.cfg.driverName(), err)
		return
	}
	l.drv = drv
	l.now = time.Now()
	l.awakeSince = l.now
	l.timers.init(l.now)
	ready <- nil

	for !l.stopReq.Load() {
		l.iterate()
	}
	l.shutdown()
}

// yieldEvery bounds how long a busy loop goes without passing through the
// Go scheduler. A locked goroutine that never yields looks stuck to sysmon:
// after 10 ms on one scheduling tick it is force-preempted, its P is taken
// from it during its next system call, and sysmon drops back to polling
// every 20 µs, on the loop's own CPU when the process is pinned (measured:
// 5% of a pinned echo server's CPU and a context switch pair per poll).
// One voluntary yield every few milliseconds costs far less.
const yieldEvery = 5 * time.Millisecond

// iterate runs one pass: inbound work, flushes, the driver's wait and what
// it dispatched. It reads the clock twice, just before and just after the
// wait: the first pass over inbound work uses the time the previous wait
// returned, a few microseconds old, which is well inside a timer tick.
func (l *Loop) iterate() {
	if l.now.Sub(l.lastYield) >= yieldEvery {
		yielded := time.Now()
		runtime.Gosched()
		l.now = time.Now()
		l.awakeSince = l.awakeSince.Add(l.now.Sub(yielded)) // others ran meanwhile
		l.lastYield = l.now
		l.Stats.Yields.Add(1)
	}
	l.timers.advance(l.now)
	tasks := l.drainInbound()
	l.runDeferred()
	l.publish()

	beforeWait := time.Now()
	busy := beforeWait.Sub(l.awakeSince)
	timeout := l.timers.untilNext(beforeWait)
	if len(l.outDirty) > 0 || len(l.deferred) > 0 {
		// A destination queue was full. Its consumer wakes us when it
		// frees slots (spaceWanted); the bounded sleep is only a backstop.
		timeout = TimerTick
	}
	l.sleeping.Store(1)
	if l.hasInbound() || l.stopReq.Load() {
		l.sleeping.Store(0)
		timeout = 0
	}
	// Callbacks run inside Poll, after a sleep of any length: the first one
	// that asks for the time reads the clock again, so a deadline armed
	// there is measured from now, not from before the sleep.
	l.now, l.nowStale = beforeWait, true
	n, err := l.drv.Poll(timeout)
	l.nowStale = false
	l.sleeping.Store(0)
	if err != nil {
		l.eng.reportError(fmt.Errorf("loop %d: %w", l.id, err))
	}
	l.now = time.Now()
	l.awakeSince = l.now
	l.runDeferred()
	l.publish()

	// busy covers the previous pass's flushes after its wait and this
	// pass's work before the wait: over time, every moment outside a wait.
	l.Stats.Iterations.Add(1)
	if n > 0 {
		l.Stats.Events.Add(uint64(n))
	}
	if tasks > 0 {
		l.Stats.Tasks.Add(uint64(tasks))
	}
	l.Stats.BusyNanos.Add(uint64(busy))
}

func (l *Loop) drainInbound() int {
	count := 0
	if l.ctlPending.Load() {
		l.ctlMu.Lock()
		batch := l.ctl
		l.ctl = l.ctlSpare[:0]
		l.ctlPending.Store(false)
		l.ctlMu.Unlock()
		for i, fn := range batch {
			fn(l)
			batch[i] = nil
		}
		l.ctlSpare = batch[:0]
		count += len(batch)
	}
	for src, q := range l.inbox {
		if q == nil {
			continue
		}
		// Bound the pass by the queue's capacity so a producer that keeps
		// publishing cannot starve this loop's own I/O.
		popped := 0
		for i := q.Cap(); i > 0; i-- {
			t, ok := q.Pop()
			if !ok {
				break
			}
			t.Fn(l, t.Arg, t.N)
			popped++
		}
		q.Release()
		count += popped
		if p := l.eng.loops[src]; popped > 0 && p.spaceWanted.Load() && p.spaceWanted.CompareAndSwap(true, false) {
			p.wake()
		}
	}
	// Run only the tasks queued before this pass: a task that posts itself
	// to its own loop would otherwise keep the pass going for ever, starving
	// I/O and never letting Stop through. Later ones run next iteration.
	queued := len(l.local)
	for i := 0; i < queued; i++ {
		t := l.local[i]
		l.local[i] = Task{}
		t.Fn(l, t.Arg, t.N)
		count++
	}
	rest := copy(l.local, l.local[queued:])
	clear(l.local[rest:])
	l.local = l.local[:rest]
	return count
}

func (l *Loop) runDeferred() {
	for i := 0; i < len(l.deferred); i++ {
		f := l.deferred[i]
		l.deferred[i] = nil
		f.Flush()
	}
	l.deferred = l.deferred[:0]
}

// publish makes this iteration's posts visible and wakes their loops.
func (l *Loop) publish() {
	if len(l.outDirty) == 0 {
		return
	}
	keep := l.outDirty[:0]
	for _, dst := range l.outDirty {
		q := l.outbox[dst]
		pending := l.overflow[dst]
		if len(pending) > 0 {
			// Raised before pushing, so a consumer that releases slots
			// after our last failed Push is sure to see it and wake us;
			// hasInbound keeps us awake if it was lowered meanwhile.
			l.spaceWanted.Store(true)
		}
		sent := 0
		for sent < len(pending) && q.Push(pending[sent]) {
			sent++
		}
		if sent > 0 {
			n := copy(pending, pending[sent:])
			clear(pending[n:])
			l.overflow[dst] = pending[:n]
		}
		q.Publish()
		l.eng.loops[dst].wake()
		if len(l.overflow[dst]) > 0 {
			keep = append(keep, dst)
		}
	}
	l.outDirty = keep
}

func (l *Loop) closeControl() {
	l.ctlMu.Lock()
	l.ctlClosed = true
	pending := l.ctl
	l.ctl = nil
	l.ctlMu.Unlock()
	// Control work queued before the stop still runs, so Exec callers are
	// never left waiting for a function that will not run.
	if l.drv != nil {
		for _, fn := range pending {
			fn(l)
		}
	}
}

func (l *Loop) shutdown() {
	l.closeControl()
	l.drainInbound()
	l.forceCloseTracked()
	l.runDeferred()
	// Hand over what closing posted to other loops (a connection accepted
	// at the last moment, say): they drain once more after the barrier.
	// Waking them is still safe here.
	l.publish()
	// Wait until no loop can post or wake any more before the eventfd goes
	// away: a wakeup written to a closed and reused descriptor would land
	// on some unrelated file.
	l.eng.quiesced.Done()
	l.eng.quiesced.Wait()
	l.drainInbound()
	l.runDeferred()
	// The last tasks may have tracked new resources (adopted connections);
	// they must not outlive the loop either.
	l.forceCloseTracked()
	l.runDeferred()
	if err := l.drv.Shutdown(); err != nil {
		l.eng.reportError(fmt.Errorf("loop %d: shutdown: %w", l.id, err))
	}
}

func (l *Loop) forceCloseTracked() {
	for i := 0; i < len(l.tracked); i++ { // ForceClose may track more
		if r := l.tracked[i]; r != nil {
			l.tracked[i] = nil
			r.ForceClose()
		}
	}
}
