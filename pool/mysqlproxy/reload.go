package mysqlproxy

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/scalestack/scalestack/pool"
)

// Live reload: the settings below are published through atomics that the
// loops read, so a change needs neither a lock on the data path nor a
// restart. What a change affects:
//
//   - Users: logins (and COM_CHANGE_USER) from now on use the new list;
//     sessions already logged in keep going.
//   - QueueTimeout: commands that start waiting from now on.
//   - ClientWriteTimeout: clients whose output goes over the high-water
//     mark from now on, and the next check of those already over it.
//   - MaxClients: clients accepted from now on; none is closed when the
//     limit drops below the current count.

// SetUsers makes u the accounts for new logins. Per-user counters survive
// a reload for accounts whose name is unchanged.
func (p *Proxy) SetUsers(u Users) {
	p.userStats.adopt(u)
	p.users.Store(&u)
	p.rebuildTenants()
}

// Users returns the accounts new logins are checked against.
func (p *Proxy) Users() Users { return *p.users.Load() }

// SetQueueTimeout changes how long a command may wait for a backend
// (d <= 0: 10 s).
func (p *Proxy) SetQueueTimeout(d time.Duration) {
	if d <= 0 {
		d = 10 * time.Second
	}
	p.pool.SetQueueTimeout(d)
}

// QueueTimeout returns the current queue timeout.
func (p *Proxy) QueueTimeout() time.Duration { return p.pool.QueueTimeout() }

// SetClientWriteTimeout changes how long a client's output may stay over
// the high-water mark without progress before the client is cut off
// (d <= 0: 30 s).
func (p *Proxy) SetClientWriteTimeout(d time.Duration) {
	if d <= 0 {
		d = 30 * time.Second
	}
	p.clientWriteTimeout.Store(int64(d))
}

// ClientWriteTimeout returns the current client write timeout.
func (p *Proxy) ClientWriteTimeout() time.Duration {
	return time.Duration(p.clientWriteTimeout.Load())
}

// SetMaxClients changes the client limit (n <= 0: 10000).
func (p *Proxy) SetMaxClients(n int) {
	if n <= 0 {
		n = 10000
	}
	p.maxClients.Store(int64(n))
}

// MaxClients returns the current client limit.
func (p *Proxy) MaxClients() int { return int(p.maxClients.Load()) }

// DefaultMaxPendingLogins is Config.MaxPendingLogins' default.
const DefaultMaxPendingLogins = 1000

// SetMaxPendingLogins changes the limit on clients not logged in yet
// (n <= 0: DefaultMaxPendingLogins); clients already connected stay.
func (p *Proxy) SetMaxPendingLogins(n int) {
	if n <= 0 {
		n = DefaultMaxPendingLogins
	}
	p.maxPendingLogins.Store(int64(n))
}

// MaxPendingLogins returns the current limit on clients not logged in yet.
func (p *Proxy) MaxPendingLogins() int { return int(p.maxPendingLogins.Load()) }

// PendingLogins returns the number of clients connected and not logged in
// yet.
func (p *Proxy) PendingLogins() int64 { return p.pendingLogins.Load() }

// clientsOverLimit runs once per accepted connection and once per login
// (not per statement): it sums the loops' client gauges and leaves out the
// clients still logging in. Accepts and logins racing on several loops may
// overshoot the limit by at most one client per loop.
func (p *Proxy) clientsOverLimit() bool {
	var n int64
	for _, pl := range p.loops {
		n += pl.stats.ClientsConnected.Load()
	}
	return n-p.pendingLogins.Load() >= p.maxClients.Load()
}

// pendingLoginsFull reports whether a new client would go over
// MaxPendingLogins (accepts racing on several loops may overshoot by at
// most one client per loop).
func (p *Proxy) pendingLoginsFull() bool {
	return p.pendingLogins.Load() >= p.maxPendingLogins.Load()
}

// UserStats are one account's counters, one set per loop, each written only
// by its loop (a session never changes loops) and summed when scraped, so
// that a busy account's sessions on several loops do not fight over one
// cache line. They exist only for the accounts in the users file.
type UserStats struct {
	loops []userLoopStats
}

// userLoopStats are one loop's counters of an account, padded to a cache
// line of its own.
type userLoopStats struct {
	connections atomic.Int64  // gauge: sessions logged in as the account
	logins      atomic.Uint64 // successful logins (and COM_CHANGE_USER)
	commands    atomic.Uint64 // commands the account's sessions sent
	_           [64 - 24]byte
}

func newUserStats(loops int) *UserStats {
	return &UserStats{loops: make([]userLoopStats, max(loops, 1))}
}

// on returns the counters loop id writes.
func (u *UserStats) on(loop int) *userLoopStats { return &u.loops[loop] }

func (u *UserStats) snapshot(name string) UserStatsSnapshot {
	s := UserStatsSnapshot{User: name}
	for i := range u.loops {
		l := &u.loops[i]
		s.Connections += l.connections.Load()
		s.Logins += l.logins.Load()
		s.Commands += l.commands.Load()
	}
	return s
}

// UserStatsSnapshot is one account's counters at one moment.
type UserStatsSnapshot struct {
	User        string
	Connections int64
	Logins      uint64
	Commands    uint64
}

// userStatsRegistry keeps every account's counters by name, so they
// outlive the User values a reload replaces. Its lock is taken only by
// reloads and scrapes.
type userStatsRegistry struct {
	mu      sync.Mutex
	byName  map[string]*UserStats
	current Users
	loops   int // counter sets per account (setLoops)
}

// setLoops sizes every account's counters for n loops. StartBackends calls
// it before any client is accepted, so no session holds the old ones.
func (r *userStatsRegistry) setLoops(n int) {
	r.mu.Lock()
	r.loops = n
	clear(r.byName)
	r.mu.Unlock()
	r.adopt(r.current)
}

func (r *userStatsRegistry) adopt(u Users) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byName == nil {
		r.byName = map[string]*UserStats{}
	}
	for name, user := range u {
		st := r.byName[name]
		if st == nil {
			st = newUserStats(r.loops)
			r.byName[name] = st
		}
		user.stats = st
	}
	// Accounts dropped from the file stop being exported once none of
	// their sessions remains, which keeps the series bounded by the file.
	for name, st := range r.byName {
		if _, ok := u[name]; !ok && st.snapshot(name).Connections == 0 {
			delete(r.byName, name)
		}
	}
	r.current = u
}

// UserStats returns the counters of the accounts in the users file (and of
// removed accounts that still have sessions).
func (p *Proxy) UserStats() []UserStatsSnapshot {
	r := &p.userStats
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]UserStatsSnapshot, 0, len(r.byName))
	for name, st := range r.byName {
		out = append(out, st.snapshot(name))
	}
	return out
}

// setAccount moves the per-user connection gauge from the session's
// previous account (if any) to u.
func (s *session) setAccount(u *User) {
	if a := s.account; a != nil && a.stats != nil {
		a.stats.on(s.pl.id).connections.Add(-1)
	}
	s.account = u
	if u != nil && u.stats != nil {
		l := u.stats.on(s.pl.id)
		l.connections.Add(1)
		l.logins.Add(1)
	}
}

// BackendConns returns the configured number of backend connections.
func (p *Proxy) BackendConns() int { return p.cfg.BackendConns }

// Targets returns the configured backend servers.
func (p *Proxy) Targets() []pool.Target { return p.pool.Targets() }
