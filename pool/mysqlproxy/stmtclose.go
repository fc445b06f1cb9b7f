package mysqlproxy

import (
	"github.com/scalestack/scalestack/mysqlwire"
)

// Closing backend statements nobody holds (issue 16, item 6).
//
// A statement prepared on a backend counts against the server's
// max_prepared_stmt_count until that backend closes it. Clients close their
// statements often (go-sql-driver prepares, executes and closes each query
// with arguments), so backends close a statement once no session holds its
// key any more, rather than keeping it until their LRU bound
// (Config.MaxStmtsPerBackend) evicts it.
//
// Who holds a key is counted per loop (proxyLoop.stmtRefs: the session
// statements of that loop's sessions with that key), because sessions and
// their statements belong to one loop and the count must take no lock.
// When a loop's count of a key falls to 0, the session's own backend (if it
// holds one) and the loop's idle backends close the statement at once;
// backends busy at that moment, or on other loops, close it the next time
// they are granted on a loop where nobody holds it (sweepStmts, run only
// when a key was released since the backend last looked). A backend that
// moves to another loop therefore closes the statements held only by the
// first loop's sessions; one of them that executes such a statement on it
// prepares it again lazily, as after any eviction.
//
// A PREPARE that still meets ERR 1461 (other backends or other clients of
// the server hold the rest of the server's allowance) is retried once after
// the backend has closed what no session of its loop holds, or, if that
// was nothing, the least recently used half of its statements.

// holdStmt counts a session statement of key k on this loop.
func (pl *proxyLoop) holdStmt(k stmtKey) {
	pl.stmtRefs[k]++
}

// releaseStmt uncounts a session statement of key k; when no session of
// the loop holds k any more, b (the backend the releasing session holds,
// if any, and not mid-exchange) and the loop's idle backends close it.
func (pl *proxyLoop) releaseStmt(k stmtKey, b *backend) {
	n := pl.stmtRefs[k] - 1
	if n > 0 {
		pl.stmtRefs[k] = n
		return
	}
	delete(pl.stmtRefs, k)
	pl.stmtsReleased++
	if b != nil && b.duty == dutyNone && b.loggedIn() {
		b.dropStmt(k)
	}
	for _, pb := range pl.lp.Idle() {
		if ib := pl.p.backends[pb.Index()]; ib.loggedIn() && ib.duty != dutyReset {
			ib.dropStmt(k)
		}
	}
}

// releaseStmts uncounts every statement of the session (it closed or was
// reset) and forgets them; b as for releaseStmt.
func (s *session) releaseStmts(b *backend) {
	for _, st := range s.stmts {
		s.pl.releaseStmt(st.key, b)
	}
	clear(s.stmts)
}

// sweepStmts closes the backend's statements that no session of pl holds,
// unless no key was released on pl since the backend last looked there.
// The backend was just granted, so nothing is in flight on it.
func (b *backend) sweepStmts(pl *proxyLoop) {
	if b.sweptOn == pl && b.sweptAt == pl.stmtsReleased {
		return
	}
	b.sweptOn, b.sweptAt = pl, pl.stmtsReleased
	for k := range b.stmts {
		if pl.stmtRefs[k] == 0 {
			b.dropStmt(k) // deleting during range is allowed
		}
	}
}

// reclaimStmts makes room on the server after a PREPARE on b met ERR 1461:
// it closes b's statements that no session of pl holds or, when there are
// none, the least recently used half of them, sparing those with a cursor
// open for s (the only session that can have one on b: a cursor pins).
// It reports whether it closed any.
func (b *backend) reclaimStmts(pl *proxyLoop, s *session) bool {
	closed := 0
	for k := range b.stmts {
		if pl.stmtRefs[k] == 0 {
			b.dropStmt(k)
			closed++
		}
	}
	if closed > 0 {
		return true
	}
	var median uint64
	if n := len(b.stmts); n > 0 {
		lo, hi := b.stmtClock, uint64(0)
		for _, bs := range b.stmts {
			lo, hi = min(lo, bs.lastUse), max(hi, bs.lastUse)
		}
		median = lo + (hi-lo)/2
	}
	for k, bs := range b.stmts {
		if bs.lastUse <= median && !s.cursorOn(k) {
			b.dropStmt(k)
			closed++
		}
	}
	pl.stats.BackendStmtEvictions.Add(uint64(closed))
	return closed > 0
}

// cursorOn reports whether one of the session's statements of key k has a
// cursor open.
func (s *session) cursorOn(k stmtKey) bool {
	if s.openCursors == 0 {
		return false
	}
	for _, st := range s.stmts {
		if st.cursor && st.key == k {
			return true
		}
	}
	return false
}

// retryPrepareAfter1461 reports whether the response just completed on
// the exchange's backend is ERR 1461 to a PREPARE that may be retried
// (once per command), and if so makes room and sends it again.
func (ex *exchange) retryPrepareAfter1461(prog mysqlwire.Progress) bool {
	b, s := ex.b, ex.s
	if prog != mysqlwire.Complete || ex.stmtRetried {
		return false
	}
	code, _, failed := b.tracker.Err()
	if !failed || code != mysqlwire.ErMaxPreparedStmtCount {
		return false
	}
	ex.stmtRetried = true
	if !b.reclaimStmts(s.pl, s) {
		return false
	}
	if ex.step == opPrepare {
		b.sendPrepare(ex, s.stmt.key.sql)
		return true
	}
	// The client's own COM_STMT_PREPARE: nothing of its response has been
	// relayed yet (the ERR is its first packet).
	if err := b.startMain(ex, s.cmd); err != nil {
		return false
	}
	renumber(s.req, 0)
	s.pl.stats.BackendBytesOut.Add(uint64(len(s.req)))
	b.c().Write(s.req)
	return true
}
