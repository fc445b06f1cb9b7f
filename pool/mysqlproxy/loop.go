package mysqlproxy

import (
	"github.com/scalestack/scalestack/pool"
	"github.com/scalestack/scalestack/reactor"
)

// proxyLoop is the MySQL proxy's part of one loop, beside that loop's
// pool.LoopPool: its sessions, its PREPARE cache and its counters. Only
// its loop touches it.
type proxyLoop struct {
	p    *Proxy
	lp   *pool.LoopPool
	loop *reactor.Loop
	id   int

	// relayedOut counts response bytes relayed to clients during one
	// backend read, added to stats.ClientBytesOut once at its end rather
	// than once per row packet.
	relayedOut uint64

	sessions   map[uint32]*session
	nextSessID uint32

	// closing: the drain deadline has passed; each session ends at its
	// next idle point (see drain.go).
	closing bool

	// prepCache maps schema, then SQL text, to a cached PREPARE response
	// (two levels so a lookup by the client's bytes allocates nothing).
	prepCache map[string]map[string]*prepMeta
	prepCount int

	// stmtRefs counts this loop's session statements by key, and
	// stmtsReleased how often a key's count fell to 0 (see stmtclose.go).
	stmtRefs      map[stmtKey]int32
	stmtsReleased uint64

	stats Stats
}

func newProxyLoop(p *Proxy, lp *pool.LoopPool, id int) *proxyLoop {
	return &proxyLoop{p: p, lp: lp, loop: lp.Loop(), id: id, sessions: map[uint32]*session{},
		prepCache: map[string]map[string]*prepMeta{}, stmtRefs: map[stmtKey]int32{}}
}

// newSessionID hands out ids that name their loop: id % loops == loop.
func (pl *proxyLoop) newSessionID() uint32 {
	pl.nextSessID++
	return pl.nextSessID*uint32(len(pl.p.loops)) + uint32(pl.id)
}
