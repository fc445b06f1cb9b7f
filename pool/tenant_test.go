package pool

import (
	"errors"
	"math"
	"testing"
	"time"
)

func newTestTenants(t testing.TB, rules ...TenantRules) (*Pool, []*Tenant) {
	t.Helper()
	p := &Pool{}
	p.tenants.setLoops(1)
	var ts []*Tenant
	for i, r := range rules {
		ts = append(ts, p.Tenant(string(rune('A'+i)), r))
	}
	return p, ts
}

// TestFairPeek: which waiter the fair scheduler serves next.
func TestFairPeek(t *testing.T) {
	type tenantState struct {
		rules TenantRules
		vtime int64
		held  int32
	}
	cases := []struct {
		name    string
		tenants []tenantState
		pushes  []int // tenant index of each waiter, in arrival order; -1: no tenant
		want    int   // index into pushes of the waiter served next; -1: none
	}{
		{"lowest virtual time", []tenantState{{vtime: 50}, {vtime: 10}}, []int{0, 1}, 1},
		{"first come within a tenant", []tenantState{{vtime: 50}, {vtime: 10}}, []int{1, 0, 1}, 0},
		{"tie goes to the one holding fewer", []tenantState{{vtime: 10, held: 3}, {vtime: 10, held: 1}}, []int{0, 1}, 1},
		{"below min-backends first", []tenantState{{vtime: 10}, {rules: TenantRules{MinBackends: 2}, vtime: 99, held: 1}}, []int{0, 1}, 1},
		{"min-backends met: virtual time again", []tenantState{{vtime: 10}, {rules: TenantRules{MinBackends: 2}, vtime: 99, held: 2}}, []int{0, 1}, 0},
		{"larger shortfall first", []tenantState{{rules: TenantRules{MinBackends: 2}, held: 1}, {rules: TenantRules{MinBackends: 4}, vtime: 50, held: 1}}, []int{0, 1}, 1},
		{"max-backends passed over", []tenantState{{rules: TenantRules{MaxBackends: 2}, held: 2}, {vtime: 99}}, []int{0, 1}, 1},
		{"only tenants at max-backends: none", []tenantState{{rules: TenantRules{MaxBackends: 1}, held: 1}}, []int{0, 0}, -1},
		{"untenanted first", []tenantState{{}}, []int{0, -1}, 1},
		{"empty", nil, nil, -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var rules []TenantRules
			for _, ts := range tc.tenants {
				rules = append(rules, ts.rules)
			}
			_, tenants := newTestTenants(t, rules...)
			for i, ts := range tc.tenants {
				tenants[i].vtime.Store(ts.vtime)
				tenants[i].held.Store(ts.held)
			}
			s := NewFair()
			ws := make([]Waiter, len(tc.pushes))
			for i, ti := range tc.pushes {
				if ti >= 0 {
					ws[i].Tenant = tenants[ti]
				}
				s.Push(&ws[i])
			}
			got := s.Peek()
			switch {
			case tc.want < 0 && got != nil:
				t.Fatalf("Peek served a waiter of %v, want none", got.Tenant.Name())
			case tc.want >= 0 && got != &ws[tc.want]:
				t.Fatalf("Peek = %p, want waiter %d (%p)", got, tc.want, &ws[tc.want])
			}
			// Every waiter can be removed, in any order, and Any sees
			// them until the last is gone.
			for i := len(ws) - 1; i >= 0; i-- {
				if s.Any() == nil {
					t.Fatal("Any found nothing with waiters queued")
				}
				s.Remove(&ws[i])
			}
			if s.Any() != nil || s.Peek() != nil {
				t.Fatal("a waiter is left after removing them all")
			}
		})
	}
}

// simulateShares runs the fair scheduler against a simulated clock: n
// backends, every tenant always backlogged, each statement holding its
// backend for cost[tenant]; it returns each tenant's backend time.
func simulateShares(t *testing.T, n int, weights []int, cost []time.Duration, total time.Duration) []time.Duration {
	t.Helper()
	var rules []TenantRules
	for _, w := range weights {
		rules = append(rules, TenantRules{Weight: w})
	}
	_, tenants := newTestTenants(t, rules...)
	s := NewFair()
	// Two waiters per tenant, re-queued as soon as served (backlogged).
	ws := make([]Waiter, 2*len(tenants))
	for i := range ws {
		ws[i].Tenant = tenants[i%len(tenants)]
		tenants[i%len(tenants)].queued.Add(1)
		s.Push(&ws[i])
	}
	type hold struct {
		until  time.Duration
		tenant *Tenant
	}
	holds := make([]hold, n)
	used := make([]time.Duration, len(tenants))
	for now := time.Duration(0); now < total; {
		// The backend that frees first.
		next := 0
		for i := range holds {
			if holds[i].until < holds[next].until {
				next = i
			}
		}
		h := &holds[next]
		now = h.until
		if h.tenant != nil {
			h.tenant.charge(0, int64(cost[h.tenant.idx]))
			used[h.tenant.idx] += cost[h.tenant.idx]
		}
		w := s.Peek()
		s.Remove(w)
		w.Tenant.granted(0)
		s.Push(w)
		*h = hold{until: now + cost[w.Tenant.idx], tenant: w.Tenant}
	}
	return used
}

// TestFairSharesFollowWeights: under saturation the split of backend time
// follows the weights, whatever each tenant's statements cost.
func TestFairSharesFollowWeights(t *testing.T) {
	ms := time.Millisecond
	cases := []struct {
		name    string
		n       int
		weights []int
		cost    []time.Duration
	}{
		{"3:1 equal costs", 8, []int{3, 1}, []time.Duration{20 * ms, 20 * ms}},
		{"3:1, the light tenant's statements 20x cheaper", 8, []int{3, 1}, []time.Duration{20 * ms, ms}},
		{"3:1, the heavy tenant's statements 20x cheaper", 8, []int{3, 1}, []time.Duration{ms, 20 * ms}},
		{"1:1:2 on one backend", 1, []int{1, 1, 2}, []time.Duration{5 * ms, 7 * ms, 3 * ms}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			used := simulateShares(t, tc.n, tc.weights, tc.cost, 60*time.Second)
			var sumW int
			var sumU time.Duration
			for i := range used {
				sumW += tc.weights[i]
				sumU += used[i]
			}
			for i := range used {
				want := float64(tc.weights[i]) / float64(sumW)
				got := float64(used[i]) / float64(sumU)
				if math.Abs(got-want)/want > 0.02 {
					t.Errorf("tenant %d: share %.3f, want %.3f ±2%% (used %v)", i, got, want, used)
				}
			}
		})
	}
}

// TestTenantActivationForgetsIdleTime: a tenant that was idle starts at
// the pool's virtual time instead of owning the backends until it has
// caught up with tenants that kept working.
func TestTenantActivationForgetsIdleTime(t *testing.T) {
	_, ts := newTestTenants(t, TenantRules{}, TenantRules{})
	busy, idle := ts[0], ts[1]
	busy.vtime.Store(int64(time.Hour))
	busy.granted(0) // the pool's virtual time is now busy's
	idle.activate()
	if got := idle.vtime.Load(); got != int64(time.Hour) {
		t.Fatalf("activated at virtual time %v, want %v", time.Duration(got), time.Hour)
	}
}

// TestTenantMaxQPS: the bucket holds one second of commands, refuses the
// next and counts the refusal.
func TestTenantMaxQPS(t *testing.T) {
	_, ts := newTestTenants(t, TenantRules{MaxQPS: 5}, TenantRules{})
	allowed := 0
	for i := 0; i < 20; i++ {
		if ts[0].AllowCommand(0) {
			allowed++
		}
	}
	if allowed != 5 {
		t.Fatalf("%d of 20 immediate commands allowed at max-qps 5, want 5", allowed)
	}
	if got := ts[0].Snapshot().Refused[RefusedMaxQPS]; got != 15 {
		t.Fatalf("refused counted %d, want 15", got)
	}
	time.Sleep(250 * time.Millisecond) // a token comes back every 200 ms
	if !ts[0].AllowCommand(0) {
		t.Fatal("no token came back after 250 ms")
	}
	for i := 0; i < 100; i++ {
		if !ts[1].AllowCommand(0) {
			t.Fatal("a tenant without max-qps was refused")
		}
	}
}

// TestTenantMaxClients: AddClient refuses one over MaxClients until one
// leaves.
func TestTenantMaxClients(t *testing.T) {
	_, ts := newTestTenants(t, TenantRules{MaxClients: 2})
	for i := 0; i < 2; i++ {
		if !ts[0].AddClient(0) {
			t.Fatalf("client %d refused below max-clients 2", i+1)
		}
	}
	if ts[0].AddClient(0) {
		t.Fatal("a third client admitted at max-clients 2")
	}
	ts[0].RemoveClient()
	if !ts[0].AddClient(0) {
		t.Fatal("refused after one left")
	}
}

// TestTenantLimitsInPool: through a running pool with the fair scheduler,
// max-backends keeps a tenant's request waiting beside an idle backend
// until its own comes back; max-queued refuses at once; the time held is
// charged and nothing stays counted as held or queued.
func TestTenantLimitsInPool(t *testing.T) {
	tp := startToyPool(t, 3, 1, func(c *Config) { c.NewScheduler = NewFair })
	ten := tp.p.Tenant("t", TenantRules{MaxBackends: 1, MaxQueued: 1})
	var a, b, c *toyClient
	tp.on(t, 0, func(lp *LoopPool) {
		a, b, c = newToyClient(lp), newToyClient(lp), newToyClient(lp)
		for _, x := range []*toyClient{a, b, c} {
			x.w.Tenant = ten
		}
		lp.Acquire(&a.w)
		lp.Acquire(&b.w)
		lp.Acquire(&c.w)
	})
	if a.backend() == nil {
		t.Fatal("the first request got no backend")
	}
	if b.backend() != nil {
		t.Fatal("a second backend was granted beyond max-backends 1")
	}
	if !errors.Is(c.refusal(), ErrMaxQueued) {
		t.Fatalf("the third request: refusal %v, want ErrMaxQueued", c.refusal())
	}
	time.Sleep(20 * time.Millisecond)
	tp.on(t, 0, func(lp *LoopPool) {
		if b.backend() != nil {
			t.Error("granted beyond max-backends while the first still holds")
		}
		lp.Release(a.backend())
	})
	waitFor(t, "the waiting request to be served", func() bool { return b.backend() != nil })
	tp.on(t, 0, func(lp *LoopPool) { lp.Release(b.backend()) })
	s := ten.Snapshot()
	if s.Held != 0 || s.Queued != 0 {
		t.Errorf("held %d, queued %d after everything was released", s.Held, s.Queued)
	}
	if s.Grants != 2 || s.QueueWaits != 1 || s.Refused[RefusedMaxQueued] != 1 || s.BackendNs < uint64(20*time.Millisecond) {
		t.Errorf("counters %+v", s)
	}
}

// TestFairServesUnderMinFirst: through a running pool, a freed backend
// goes to the tenant below its min-backends even though another tenant's
// request came first.
func TestFairServesUnderMinFirst(t *testing.T) {
	tp := startToyPool(t, 1, 1, func(c *Config) { c.NewScheduler = NewFair })
	noisy := tp.p.Tenant("noisy", TenantRules{})
	reserved := tp.p.Tenant("reserved", TenantRules{MinBackends: 1})
	// By virtual time alone the reserved tenant would come last.
	reserved.vtime.Store(int64(time.Hour))
	var holder, first, second *toyClient
	tp.on(t, 0, func(lp *LoopPool) {
		holder, first, second = newToyClient(lp), newToyClient(lp), newToyClient(lp)
		holder.w.Tenant, first.w.Tenant, second.w.Tenant = noisy, noisy, reserved
		lp.Acquire(&holder.w)
		lp.Acquire(&first.w)
		lp.Acquire(&second.w)
		lp.Release(holder.backend())
	})
	waitFor(t, "a grant", func() bool { return first.backend() != nil || second.backend() != nil })
	if second.backend() == nil {
		t.Fatal("the backend went to the tenant at its share instead of the one below min-backends")
	}
	tp.on(t, 0, func(lp *LoopPool) {
		lp.Release(second.backend())
	})
	waitFor(t, "the other grant", func() bool { return first.backend() != nil })
	tp.on(t, 0, func(lp *LoopPool) { lp.Release(first.backend()) })
}

// BenchmarkSchedulers is one wait's scheduling work: queue a waiter
// behind 63 others, serve the head and charge its tenant, for FIFO and for
// the fair scheduler with one tenant and with 8.
func BenchmarkSchedulers(b *testing.B) {
	for _, bc := range []struct {
		name    string
		sched   func() Scheduler
		tenants int
	}{{"fifo", NewFIFO, 1}, {"fair-1-tenant", NewFair, 1}, {"fair-8-tenants", NewFair, 8}} {
		b.Run(bc.name, func(b *testing.B) {
			rules := make([]TenantRules, bc.tenants)
			_, ts := newTestTenants(b, rules...)
			s := bc.sched()
			ws := make([]Waiter, 64)
			for i := range ws {
				ws[i].Tenant = ts[i%len(ts)]
				s.Push(&ws[i])
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				w := s.Peek()
				s.Remove(w)
				w.Tenant.granted(0)
				w.Tenant.charge(0, 20000)
				s.Push(w)
			}
		})
	}
}

// TestFairFirstOfClass: a freed backend goes to a waiter of its own class
// only within the tenant whose turn it is (within the scan limit), never
// to another tenant's waiter of that class.
func TestFairFirstOfClass(t *testing.T) {
	_, ts := newTestTenants(t, TenantRules{}, TenantRules{})
	ts[0].vtime.Store(10) // A's turn
	ts[1].vtime.Store(50)
	s := NewFair().(ClassFinder)
	sch := s.(Scheduler)
	var ws [4]Waiter
	for i, spec := range []struct {
		tenant int
		class  uint32
	}{{0, 1}, {1, 2}, {0, 1}, {0, 2}} {
		ws[i].Tenant, ws[i].Class = ts[spec.tenant], Class{Account: spec.class}
		sch.Push(&ws[i])
	}
	if got := s.FirstOfClass(Class{Account: 2}, 16); got != &ws[3] {
		t.Errorf("class 2: got %p, want A's own waiter %p (B's %p is not its turn)", got, &ws[3], &ws[1])
	}
	if got := s.FirstOfClass(Class{Account: 2}, 2); got != nil {
		t.Errorf("class 2 within 2 of A's waiters: got %p, want none", got)
	}
	if got := s.FirstOfClass(Class{Account: 1}, 16); got != &ws[0] {
		t.Errorf("class 1: got %p, want the head %p", got, &ws[0])
	}
}
