package pool

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/reactor"
)

// Config describes a pool.
type Config struct {
	// Targets are the backend servers; the Conns connections are split
	// between the writable ones by weight. At least one is required.
	Targets []Target
	// Conns is N, the exact number of backend connections (split across
	// the loops).
	Conns int
	// ConnectTimeout bounds a connect plus the protocol's login, and a
	// health check's answer (0: 5 s).
	ConnectTimeout time.Duration
	// HealthInterval is how long a backend may sit idle before it is
	// checked with the protocol's ping (0: 2 s).
	HealthInterval time.Duration
	// QueueTimeout bounds a wait for a backend (0: 10 s); SetQueueTimeout
	// changes it while the pool runs.
	QueueTimeout time.Duration
	// StallTimeout: a backend that has waited this long for the server's
	// answer to a request, with nothing from the server meanwhile, makes
	// Ready fail (0: never).
	StallTimeout time.Duration
	// Stationary keeps every backend on the loop that opened it: no
	// stealing, donation or hand-over to a more backlogged loop. A
	// protocol whose connections cannot be detached (TLS: conn.Conn.Detach
	// refuses them) sets it, so loops do not keep asking each other for
	// backends that cannot move. Each loop then serves its clients with
	// its own share of Conns.
	Stationary bool
	// NewScheduler returns one loop's scheduler (nil: NewFIFO).
	NewScheduler func() Scheduler
	// Logf receives operational messages (backend failures); nil
	// discards them.
	Logf func(format string, args ...any)
}

func (c *Config) withDefaults() (Config, error) {
	cfg := *c
	if cfg.Conns <= 0 {
		return cfg, errors.New("pool: Conns must be at least 1")
	}
	if len(cfg.Targets) == 0 {
		return cfg, errors.New("pool: no targets")
	}
	cfg.Targets = append([]Target(nil), cfg.Targets...)
	writable := 0
	for i := range cfg.Targets {
		if cfg.Targets[i].Weight <= 0 {
			cfg.Targets[i].Weight = 1
		}
		if !cfg.Targets[i].ReadOnly {
			writable++
		}
	}
	if writable == 0 {
		return cfg, errors.New("pool: every backend is read-only; at least one must take writes")
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = 2 * time.Second
	}
	if cfg.NewScheduler == nil {
		cfg.NewScheduler = NewFIFO
	}
	return cfg, nil
}

// Pool is the concentrator: N backend connections shared by the clients of
// every loop.
type Pool struct {
	cfg      Config
	proto    Protocol
	loops    []*LoopPool
	backends []*Backend
	// targetAddrs are Config.Targets' addresses, resolved by Start.
	targetAddrs []conn.Addr
	stopping    atomic.Bool
	// unavailable: no backend is logged in and the last login attempt
	// failed (see health.go).
	unavailable  atomic.Bool
	queueTimeout atomic.Int64 // nanoseconds, read by the loops
	// loggedIn counts the logged-in backends of every loop in one place:
	// a backend moving between loops leaves it alone (the per-loop
	// BackendsConnected gauges dip during the move), so Ready never sees
	// a hand-off as a missing backend.
	loggedIn atomic.Int64
	// epoch is the origin of the Backends' awaitSince (monotonic).
	epoch time.Time
	// tenants are the groups of clients the protocol names in waiters.
	tenants tenantRegistry
}

// New validates cfg; Start runs the pool with proto's servers.
func New(cfg Config, proto Protocol) (*Pool, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &Pool{cfg: c, proto: proto, epoch: time.Now()}
	p.SetQueueTimeout(c.QueueTimeout)
	return p, nil
}

// Prepare creates one LoopPool per loop of e and the N backends (each with
// its protocol Server), without connecting: a protocol that keeps its own
// per-loop state sets it up between Prepare and Start.
func (p *Pool) Prepare(e *reactor.Engine) error {
	// Resolved once: conn.Dial gives each connect its own copy of the
	// address, so every loop can dial the same Addr.
	for _, t := range p.cfg.Targets {
		a, err := conn.ResolveAddr(t.Addr.Network, t.Addr.Address)
		if err != nil {
			return fmt.Errorf("pool: backend address %s: %w", t.Addr, err)
		}
		p.targetAddrs = append(p.targetAddrs, a)
	}
	if loops := len(e.Loops()); p.cfg.Stationary && p.cfg.Conns < loops {
		// Backends that cannot move leave a loop without one unable to
		// serve its clients at all.
		return fmt.Errorf("pool: %d backend connections cannot serve %d loops when backends stay on their loop (TLS): give at least one per loop", p.cfg.Conns, loops)
	}
	for i, l := range e.Loops() {
		p.loops = append(p.loops, newLoopPool(p, l, i))
	}
	p.tenants.setLoops(len(p.loops))
	for i, target := range splitConns(p.cfg.Conns, p.cfg.Targets) {
		lp := p.loops[i%len(p.loops)]
		b := newBackend(p, lp, i, target)
		b.srv = p.proto.NewServer(b)
		b.watermarks, _ = b.srv.(conn.WatermarkHandler)
		p.backends = append(p.backends, b)
	}
	return nil
}

// Start opens the backend connections (after Prepare, which it runs if
// it has not run). Call it from outside the loops, after e.Start.
func (p *Pool) Start(e *reactor.Engine) error {
	if p.loops == nil {
		if err := p.Prepare(e); err != nil {
			return err
		}
	}
	for _, lp := range p.loops {
		if err := lp.loop.Exec(func(*reactor.Loop) {
			for _, b := range p.backends {
				if b.lp == lp {
					b.connect()
				}
			}
			lp.startHealth()
		}); err != nil {
			return fmt.Errorf("pool: start backends: %w", err)
		}
	}
	return nil
}

// Loop returns l's part of the pool.
func (p *Pool) Loop(l *reactor.Loop) *LoopPool { return p.loops[l.ID()] }

// Loops returns every loop's part, indexed by loop id.
func (p *Pool) Loops() []*LoopPool { return p.loops }

// Conns returns N.
func (p *Pool) Conns() int { return p.cfg.Conns }

// Stop keeps backends from reconnecting (the engine's Stop closes them).
func (p *Pool) Stop() { p.stopping.Store(true) }

// Stopping reports whether Stop was called.
func (p *Pool) Stopping() bool { return p.stopping.Load() }

// Connected returns how many backends are logged in, over all loops.
func (p *Pool) Connected() int64 { return p.loggedIn.Load() }

// Ready reports an error while fewer than Conns backends are logged in, or
// while one has waited Config.StallTimeout for the server's answer with
// nothing from it (a hung server: a logged-in connection that no longer
// answers).
func (p *Pool) Ready() error {
	if n := p.Connected(); n < int64(p.cfg.Conns) {
		return fmt.Errorf("%d of %d backend connections are logged in", n, p.cfg.Conns)
	}
	if p.cfg.StallTimeout > 0 {
		now := int64(time.Since(p.epoch))
		for _, b := range p.backends {
			if since := b.awaitSince.Load(); since != 0 && time.Duration(now-since) > p.cfg.StallTimeout {
				return fmt.Errorf("backend %d has waited %v for the server's answer", b.idx,
					time.Duration(now-since).Round(time.Millisecond))
			}
		}
	}
	return nil
}

// SetQueueTimeout changes how long a request may wait for a backend
// (d <= 0: 10 s); waits that start from now on use it.
func (p *Pool) SetQueueTimeout(d time.Duration) {
	if d <= 0 {
		d = 10 * time.Second
	}
	p.queueTimeout.Store(int64(d))
}

// QueueTimeout returns the current queue timeout.
func (p *Pool) QueueTimeout() time.Duration { return time.Duration(p.queueTimeout.Load()) }

// Stats sums every loop's counters.
func (p *Pool) Stats() StatsSnapshot {
	var s StatsSnapshot
	for _, lp := range p.loops {
		lp.stats.addTo(&s)
	}
	return s
}

// BackendTargets returns, for each backend slot, its Config.Targets index.
func (p *Pool) BackendTargets() []int {
	out := make([]int, len(p.backends))
	for i, b := range p.backends {
		out[i] = b.target
	}
	return out
}

func (p *Pool) logf(format string, args ...any) {
	if p.cfg.Logf != nil {
		p.cfg.Logf(format, args...)
	}
}
