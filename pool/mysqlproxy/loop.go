package mysqlproxy

import (
	"time"

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
	// stateScratch builds the session state report relayOK writes to a
	// client that tracks (clientSessionState), reused by the loop.
	stateScratch []byte

	sessions   map[uint32]*session
	nextSessID uint32

	// closing: the drain deadline has passed; each session ends at its
	// next idle point (see drain.go).
	closing bool

	// prepCache maps account and schema, then SQL text, to a cached
	// PREPARE response (two levels so a lookup by the client's bytes
	// allocates nothing).
	prepCache map[prepScope]map[string]*prepMeta
	prepCount int

	// stmtRefs counts this loop's session statements by key, and
	// stmtsReleased how often a key's count fell to 0 (see stmtclose.go).
	stmtRefs      map[stmtKey]int32
	stmtsReleased uint64
	// missingSchemas remembers, for missingSchemaTTL, schemas a server
	// answered ERR 1049 for (name to expiry, loop time in nanoseconds
	// since the Unix epoch): a flood of logins naming one costs the server
	// one COM_INIT_DB per loop and TTL, not one each.
	missingSchemas map[string]int64

	// pipes are the loop's backends that take riders (pipeline.go).
	pipes []*backend
	// pipeWaiters are queued commands that may ride one of them.
	pipeWaiters pipeWaiters

	stats Stats
}

// missingSchemaTTL is how long a schema the server called unknown is
// answered ERR 1049 by the proxy without asking again; maxMissingSchemas
// bounds the cache (it is emptied when full).
const (
	missingSchemaTTL  = time.Second
	maxMissingSchemas = 256
)

// schemaMissing reports whether the server called schema unknown less
// than missingSchemaTTL ago.
func (pl *proxyLoop) schemaMissing(schema string) bool {
	exp, ok := pl.missingSchemas[schema]
	if !ok {
		return false
	}
	if pl.loop.Now().UnixNano() >= exp {
		delete(pl.missingSchemas, schema)
		return false
	}
	return true
}

// noteSchemaMissing records the server's ERR 1049 for schema.
func (pl *proxyLoop) noteSchemaMissing(schema string) {
	if len(pl.missingSchemas) >= maxMissingSchemas {
		clear(pl.missingSchemas)
	}
	pl.missingSchemas[schema] = pl.loop.Now().Add(missingSchemaTTL).UnixNano()
}

func newProxyLoop(p *Proxy, lp *pool.LoopPool, id int) *proxyLoop {
	return &proxyLoop{p: p, lp: lp, loop: lp.Loop(), id: id, sessions: map[uint32]*session{},
		prepCache: map[prepScope]map[string]*prepMeta{}, stmtRefs: map[stmtKey]int32{},
		missingSchemas: map[string]int64{}}
}

// newSessionID hands out ids that name their loop: id % loops == loop.
func (pl *proxyLoop) newSessionID() uint32 {
	pl.nextSessID++
	return pl.nextSessID*uint32(len(pl.p.loops)) + uint32(pl.id)
}
