package pool

import (
	"sync/atomic"
	"testing"
	"time"
)

// Fairness and stability across loops under saturation: clients that ask
// for a backend again as soon as they give one back, on the toy protocol.

// busyClient asks for a backend, runs one exchange on it, gives it back and
// asks again, until stopped. Its loop-only fields are touched only by the
// loop it was started on; the atomics are read by the test.
type busyClient struct {
	w       Waiter
	lp      *LoopPool
	stop    *atomic.Bool
	askedAt int64 // monoNow of the last Acquire

	running   atomic.Bool
	exchanges atomic.Int64
	maxWait   atomic.Int64 // ns from Acquire to Granted, the longest
	refusals  atomic.Int64
}

func (c *busyClient) ask() {
	c.askedAt = monoNow()
	c.lp.Acquire(&c.w)
}

func (c *busyClient) Granted(b *Backend) {
	if d := monoNow() - c.askedAt; d > c.maxWait.Load() {
		c.maxWait.Store(d)
	}
	s := b.Server().(*toyBackend)
	s.owner = c
	s.write('X')
}

func (c *busyClient) exchangeDone(b *Backend) {
	c.exchanges.Add(1)
	c.lp.Release(b)
	if c.stop.Load() {
		c.running.Store(false)
		return
	}
	c.ask()
}

func (c *busyClient) Refused(error)             { c.refusals.Add(1); c.running.Store(false) }
func (c *busyClient) Revoked(*Backend)          { c.running.Store(false) }
func (c *busyClient) Lost(*Backend, error)      { c.running.Store(false) }
func (c *busyClient) waitedMost() time.Duration { return time.Duration(c.maxWait.Load()) }

// startBusy starts n busy clients on loop i.
func (tp *toyPool) startBusy(t *testing.T, i, n int, stop *atomic.Bool) []*busyClient {
	t.Helper()
	cs := make([]*busyClient, n)
	tp.on(t, i, func(lp *LoopPool) {
		for j := range cs {
			c := &busyClient{lp: lp, stop: stop}
			c.w.Client = c
			c.running.Store(true)
			cs[j] = c
			c.ask()
		}
	})
	return cs
}

func stopBusy(t *testing.T, stop *atomic.Bool, groups ...[]*busyClient) {
	t.Helper()
	stop.Store(true)
	waitFor(t, "the busy clients to stop", func() bool {
		for _, g := range groups {
			for _, c := range g {
				if c.running.Load() {
					return false
				}
			}
		}
		return true
	})
}

func sumExchanges(cs []*busyClient) int64 {
	var n int64
	for _, c := range cs {
		n += c.exchanges.Load()
	}
	return n
}

// TestSaturatedLoopDoesNotStarveAnother: loop 0's clients keep every
// backend busy (and hold all of them: loop 1's idle ones were stolen);
// clients that then start on loop 1 still get backends, after bounded
// waits, handed over from loop 0 as their waiters age. (A loop that kept
// every backend it frees while it has waiters would leave loop 1's
// clients waiting until their queue deadline.)
func TestSaturatedLoopDoesNotStarveAnother(t *testing.T) {
	const n = 4
	tp := startToyPool(t, n, 2, func(c *Config) { c.QueueTimeout = 3 * time.Second })
	var stop atomic.Bool
	busy := tp.startBusy(t, 0, 16, &stop)
	waitFor(t, "loop 0 to take every backend", func() bool {
		return tp.p.Loops()[0].stats.BackendsConnected.Load() == n
	})
	late := tp.startBusy(t, 1, 2, &stop)
	time.Sleep(500 * time.Millisecond)
	stopBusy(t, &stop, busy, late)

	for i, c := range late {
		if c.refusals.Load() != 0 || c.exchanges.Load() < 10 {
			t.Errorf("loop 1's client %d: %d exchanges, %d refusals in 0.5 s beside a saturated loop",
				i, c.exchanges.Load(), c.refusals.Load())
		}
		// The bound is loose for a loaded test host; starvation is the
		// queue deadline (3 s).
		if w := c.waitedMost(); w > time.Second {
			t.Errorf("loop 1's client %d waited up to %v for a backend", i, w)
		}
	}
	for i, c := range busy {
		if c.refusals.Load() != 0 || c.exchanges.Load() == 0 {
			t.Errorf("loop 0's client %d: %d exchanges, %d refusals", i, c.exchanges.Load(), c.refusals.Load())
		}
	}
	t.Logf("loop 0: %d exchanges; loop 1: %d; backends moved %d",
		sumExchanges(busy), sumExchanges(late), tp.p.Stats().BackendsAdopted)
}

// TestSaturatedLoopsKeepTheirBackends: with both loops saturated alike,
// a freed backend stays on its loop rather than going back and forth
// between them (a move costs two epoll_ctl calls, a wake-up of the other
// loop and the backend's time in transit). Alternating with every loop
// that had waiters moved about half of the freed backends here.
func TestSaturatedLoopsKeepTheirBackends(t *testing.T) {
	const n = 8
	tp := startToyPool(t, n, 2, nil)
	var stop atomic.Bool
	a := tp.startBusy(t, 0, 16, &stop)
	b := tp.startBusy(t, 1, 16, &stop)
	time.Sleep(100 * time.Millisecond) // past the start, when idle backends may be stolen
	movedBefore, exBefore := tp.p.Stats().BackendsAdopted, sumExchanges(a)+sumExchanges(b)
	time.Sleep(500 * time.Millisecond)
	moved, ex := tp.p.Stats().BackendsAdopted-movedBefore, sumExchanges(a)+sumExchanges(b)-exBefore
	stopBusy(t, &stop, a, b)

	if ex < 200 {
		t.Fatalf("only %d exchanges in 0.5 s", ex)
	}
	perExchange := float64(moved) / float64(ex)
	t.Logf("%d exchanges, %d backends moved (%.3f per exchange); loop 0 %d, loop 1 %d exchanges in all",
		ex, moved, perExchange, sumExchanges(a), sumExchanges(b))
	if perExchange > 0.1 {
		t.Errorf("%.3f backends moved between loops per exchange, want at most 0.1", perExchange)
	}
	for i, cs := range [][]*busyClient{a, b} {
		for j, c := range cs {
			if c.refusals.Load() != 0 || c.exchanges.Load() == 0 {
				t.Errorf("loop %d's client %d: %d exchanges, %d refusals", i, j, c.exchanges.Load(), c.refusals.Load())
			}
		}
	}
}

// TestLoopWithHeldBackendsIsNotStarved: loop 1's only backend is held by
// one client (a pinned session, a long statement) and another of its
// clients waits; loop 0 is saturated with many more waiters per backend.
// The waiter still gets backends handed over from loop 0, after bounded
// waits, rather than waiting for its queue deadline.
func TestLoopWithHeldBackendsIsNotStarved(t *testing.T) {
	const n = 4
	tp := startToyPool(t, n, 2, func(c *Config) { c.QueueTimeout = 3 * time.Second })
	var holder *toyClient
	tp.on(t, 1, func(lp *LoopPool) {
		holder = newToyClient(lp)
		lp.Acquire(&holder.w)
	})
	if holder.backend() == nil {
		t.Fatal("the holder got no backend")
	}
	var stop atomic.Bool
	busy := tp.startBusy(t, 0, 16, &stop)
	waitFor(t, "loop 0 to take every backend but the held one", func() bool {
		return tp.p.Loops()[0].stats.BackendsConnected.Load() == n-1
	})
	late := tp.startBusy(t, 1, 1, &stop)
	time.Sleep(500 * time.Millisecond)
	stopBusy(t, &stop, busy, late)
	tp.on(t, 1, func(lp *LoopPool) { lp.Release(holder.backend()) })

	c := late[0]
	t.Logf("loop 1's waiter beside its held backend: %d exchanges, waited up to %v", c.exchanges.Load(), c.waitedMost())
	if c.refusals.Load() != 0 || c.exchanges.Load() < 5 {
		t.Errorf("loop 1's client: %d exchanges, %d refusals in 0.5 s", c.exchanges.Load(), c.refusals.Load())
	}
	if w := c.waitedMost(); w > time.Second {
		t.Errorf("loop 1's client waited up to %v for a backend", w)
	}
}
