package pool

import (
	"errors"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Tenants and the fair scheduler: see "Tenants and weighted fair queueing"
// in the package documentation (doc.go).

// TenantRules are one tenant's rules; a zero field means no limit.
type TenantRules struct {
	// Weight is the tenant's share of the backends against other
	// tenants with waiting requests (0: 1).
	Weight int
	// MinBackends: while it has requests waiting and holds fewer
	// backends than this, the tenant gets the next backend that frees
	// up before any other tenant.
	MinBackends int
	// MaxBackends: the tenant never holds more backends at once.
	MaxBackends int
	// MaxClients bounds the tenant's clients (the protocol refuses the
	// login of one more; see Tenant.AddClient).
	MaxClients int
	// MaxQueued bounds the tenant's requests waiting for a backend, over
	// all loops; one more is refused at once with ErrMaxQueued.
	MaxQueued int
	// QueueTimeout replaces Config.QueueTimeout for the tenant.
	QueueTimeout time.Duration
	// MaxQPS is the tenant's command rate (a token bucket holding one
	// second of commands, at least one; see Tenant.AllowCommand).
	MaxQPS float64
	// StatementTime is for the protocol to apply as the server's own
	// statement timeout (MySQL: max_statement_time).
	StatementTime time.Duration
}

// Refusal is why a tenant's request or client was refused.
type Refusal uint8

// Reasons for refusing a tenant's request or client.
const (
	RefusedQueueTimeout Refusal = iota // waited its queue timeout
	RefusedMaxQueued                   // MaxQueued were waiting already
	RefusedMaxQPS                      // over MaxQPS
	RefusedMaxClients                  // MaxClients were logged in already
	NumRefusals
)

var refusalNames = [NumRefusals]string{"queue_timeout", "max_queued", "max_qps", "max_clients"}

func (r Refusal) String() string {
	if r < NumRefusals {
		return refusalNames[r]
	}
	return "unknown"
}

// ErrMaxQueued ends a request whose tenant already has MaxQueued requests
// waiting.
var ErrMaxQueued = errors.New("pool: too many requests of the tenant are waiting for a backend connection")

// Tenant is one group of clients. Its rules change live (SetRules); its
// shared state is atomics written by any loop, its counters one set per
// loop.
type Tenant struct {
	name string
	idx  int // index in the schedulers' per-tenant tables
	reg  *tenantRegistry

	rules atomic.Pointer[TenantRules]
	// vtime is the virtual time: backend-nanoseconds held, divided by the
	// weight.
	vtime   atomic.Int64
	held    atomic.Int32 // backends its clients hold now, all loops
	queued  atomic.Int32 // its requests waiting, all loops
	clients atomic.Int32 // its clients (AddClient), all loops
	// qpsTAT is the token bucket as a theoretical arrival time (GCRA):
	// monoNow after which a command finds the bucket full again.
	qpsTAT atomic.Int64

	stats []TenantStats // one per loop
}

// TenantStats are a tenant's counters on one loop, written only by that
// loop (the protocol writes Commands; the pool the rest).
type TenantStats struct {
	Commands   atomic.Uint64 // commands of its clients (the protocol counts them)
	Grants     atomic.Uint64 // backends granted to its requests
	QueueWaits atomic.Uint64 // requests that had to wait
	QueueWait  Histogram     // how long they waited (refused ones included)
	BackendNs  atomic.Uint64 // nanoseconds its clients held backends
	Refused    [NumRefusals]atomic.Uint64
	_          [64]byte // keeps loops' counters off each other's cache lines
}

// TenantSnapshot is a tenant's state and counters at one moment.
type TenantSnapshot struct {
	Name       string
	Rules      TenantRules
	Clients    int64
	Held       int64 // backends held now
	Queued     int64 // requests waiting now
	Commands   uint64
	Grants     uint64
	QueueWaits uint64
	QueueWait  HistogramSnapshot
	BackendNs  uint64
	Refused    [NumRefusals]uint64
}

// tenantRegistry keeps a pool's tenants by name; its lock is taken only
// when a tenant is created or listed (reloads, scrapes), never per request.
type tenantRegistry struct {
	mu     sync.Mutex
	byName map[string]*Tenant
	loops  int
	// vnow is the pool's virtual time: the virtual time of the tenant
	// last served. A tenant becoming active starts there.
	vnow atomic.Int64
}

// Tenant returns the pool's tenant named name, created with rules r the
// first time (later calls leave its rules alone: see Tenant.SetRules).
func (p *Pool) Tenant(name string, r TenantRules) *Tenant {
	reg := &p.tenants
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if t := reg.byName[name]; t != nil {
		return t
	}
	if reg.byName == nil {
		reg.byName = map[string]*Tenant{}
	}
	t := &Tenant{name: name, idx: len(reg.byName), reg: reg, stats: make([]TenantStats, max(reg.loops, 1))}
	t.SetRules(r)
	reg.byName[name] = t
	return t
}

// Tenants returns a snapshot of every tenant, by name.
func (p *Pool) Tenants() []TenantSnapshot {
	reg := &p.tenants
	reg.mu.Lock()
	out := make([]TenantSnapshot, 0, len(reg.byName))
	for _, t := range reg.byName {
		out = append(out, t.Snapshot())
	}
	reg.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// setLoops sizes the tenants' counters for n loops (Prepare, before any
// client runs).
func (reg *tenantRegistry) setLoops(n int) {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	reg.loops = n
	for _, t := range reg.byName {
		t.stats = make([]TenantStats, n)
	}
}

// Name is the tenant's name.
func (t *Tenant) Name() string { return t.name }

// Rules returns the rules in effect.
func (t *Tenant) Rules() TenantRules { return *t.rules.Load() }

// SetRules changes the tenant's rules; requests queued and clients logged
// in are left alone, and the new rules apply from their next decision.
func (t *Tenant) SetRules(r TenantRules) {
	if r.Weight <= 0 {
		r.Weight = 1
	}
	t.rules.Store(&r)
}

// Stats returns loop's counters (for the protocol's Commands).
func (t *Tenant) Stats(loop int) *TenantStats { return &t.stats[loop] }

// AddClient counts a client of the tenant in, or refuses it (false) when
// MaxClients are in already; a refusal is counted. Clients racing on
// several loops may overshoot by one per loop.
func (t *Tenant) AddClient(loop int) bool {
	if m := t.rules.Load().MaxClients; m > 0 && int(t.clients.Load()) >= m {
		t.stats[loop].Refused[RefusedMaxClients].Add(1)
		return false
	}
	t.clients.Add(1)
	return true
}

// RemoveClient counts a client out.
func (t *Tenant) RemoveClient() { t.clients.Add(-1) }

// AllowCommand takes a token from the tenant's MaxQPS bucket, or reports
// false (counted as refused) when it is empty. The bucket holds one
// second of commands (at least one) and is shared by the loops through
// one compare-and-swap: the generic cell rate algorithm, where the state
// is the time the bucket will be full again.
func (t *Tenant) AllowCommand(loop int) bool {
	qps := t.rules.Load().MaxQPS
	if qps <= 0 {
		return true
	}
	interval := int64(float64(time.Second) / qps)
	if interval <= 0 {
		return true
	}
	burst := int64(qps)
	if burst < 1 {
		burst = 1
	}
	tolerance := (burst - 1) * interval
	now := monoNow()
	for {
		tat := t.qpsTAT.Load()
		from := max(tat, now)
		if from-now > tolerance {
			t.stats[loop].Refused[RefusedMaxQPS].Add(1)
			return false
		}
		if t.qpsTAT.CompareAndSwap(tat, from+interval) {
			return true
		}
	}
}

// activate gives a tenant that had nothing queued and held nothing the
// pool's virtual time, so that a tenant idle for a while does not get the
// backends to itself until it has caught up.
func (t *Tenant) activate() {
	v := t.reg.vnow.Load()
	for {
		old := t.vtime.Load()
		if old >= v || t.vtime.CompareAndSwap(old, v) {
			return
		}
	}
}

// granted counts a backend the tenant's client got and moves the pool's
// virtual time to the tenant's.
func (t *Tenant) granted(loop int) {
	t.held.Add(1)
	t.stats[loop].Grants.Add(1)
	v := t.vtime.Load()
	for {
		now := t.reg.vnow.Load()
		if v <= now || t.reg.vnow.CompareAndSwap(now, v) {
			return
		}
	}
}

// charge ends a hold of ns nanoseconds.
func (t *Tenant) charge(loop int, ns int64) {
	t.held.Add(-1)
	if ns <= 0 {
		return
	}
	t.stats[loop].BackendNs.Add(uint64(ns))
	t.vtime.Add(ns / int64(t.rules.Load().Weight))
}

// Snapshot sums the tenant's counters.
func (t *Tenant) Snapshot() TenantSnapshot {
	s := TenantSnapshot{Name: t.name, Rules: t.Rules(), Clients: int64(t.clients.Load()),
		Held: int64(t.held.Load()), Queued: int64(t.queued.Load())}
	for i := range t.stats {
		st := &t.stats[i]
		s.Commands += st.Commands.Load()
		s.Grants += st.Grants.Load()
		s.QueueWaits += st.QueueWaits.Load()
		st.QueueWait.AddTo(&s.QueueWait)
		s.BackendNs += st.BackendNs.Load()
		for r := range st.Refused {
			s.Refused[r] += st.Refused[r].Load()
		}
	}
	return s
}

// fair is the weighted fair queueing scheduler (see the top of this file):
// one FIFO per tenant that has waiters on the loop, plus one for waiters
// without a tenant, served first.
type fair struct {
	untenanted fifo
	queues     []*tenantQueue // by Tenant.idx; allocated the first time a tenant waits here
	active     []*tenantQueue // those with waiters
}

type tenantQueue struct {
	t          *Tenant
	head, tail *Waiter
	pos        int // index in fair.active; -1 when empty
}

// NewFair returns the weighted fair queueing scheduler between tenants.
func NewFair() Scheduler { return &fair{} }

func (s *fair) queue(t *Tenant) *tenantQueue {
	if t.idx >= len(s.queues) {
		s.queues = append(s.queues, make([]*tenantQueue, t.idx+1-len(s.queues))...)
	}
	q := s.queues[t.idx]
	if q == nil || q.t != t {
		q = &tenantQueue{t: t, pos: -1}
		s.queues[t.idx] = q
	}
	return q
}

func (s *fair) Push(w *Waiter) {
	if w.Tenant == nil {
		s.untenanted.Push(w)
		return
	}
	q := s.queue(w.Tenant)
	w.prev, w.next = q.tail, nil
	if q.tail != nil {
		q.tail.next = w
	} else {
		q.head = w
	}
	q.tail = w
	if q.pos < 0 {
		q.pos = len(s.active)
		s.active = append(s.active, q)
	}
}

func (s *fair) Peek() *Waiter {
	if w := s.untenanted.Peek(); w != nil {
		return w
	}
	var best *tenantQueue
	var bestShort int32 // how far best is below its MinBackends
	var bestV int64
	var bestHeld int32
	for _, q := range s.active {
		t := q.t
		r := t.rules.Load()
		held := t.held.Load()
		if r.MaxBackends > 0 && held >= int32(r.MaxBackends) {
			continue
		}
		short := int32(r.MinBackends) - held
		if short < 0 {
			short = 0
		}
		v := t.vtime.Load()
		if best == nil || short > bestShort ||
			(short == bestShort && (v < bestV || (v == bestV && held < bestHeld))) {
			best, bestShort, bestV, bestHeld = q, short, v, held
		}
	}
	if best == nil {
		return nil
	}
	return best.head
}

// FirstOfClass implements ClassFinder: the first waiter of class c among
// the next limit of the tenant Peek serves, so that a freed backend spares
// a conversion without serving another tenant out of its turn.
func (s *fair) FirstOfClass(c Class, limit int) *Waiter {
	for w := s.Peek(); w != nil && limit > 0; w, limit = w.next, limit-1 {
		if w.Class == c {
			return w
		}
	}
	return nil
}

func (s *fair) Any() *Waiter {
	if w := s.untenanted.Peek(); w != nil {
		return w
	}
	if len(s.active) > 0 {
		return s.active[0].head
	}
	return nil
}

func (s *fair) Remove(w *Waiter) {
	if w.Tenant == nil {
		s.untenanted.Remove(w)
		return
	}
	q := s.queues[w.Tenant.idx]
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		q.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		q.tail = w.prev
	}
	w.prev, w.next = nil, nil
	if q.head == nil && q.pos >= 0 {
		last := len(s.active) - 1
		s.active[q.pos] = s.active[last]
		s.active[q.pos].pos = q.pos
		s.active[last] = nil
		s.active = s.active[:last]
		q.pos = -1
	}
}
