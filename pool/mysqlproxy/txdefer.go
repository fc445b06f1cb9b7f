package mysqlproxy

// Deferred BEGIN (Config.DeferBegin). A plain BEGIN outside a transaction
// is answered by the proxy (OK, SERVER_STATUS_IN_TRANS set) without a
// backend: the session is pinned for its transaction (PinTransaction) with
// beginPending set, and the exchange of the transaction's first statement
// sends BEGIN just before it (opBegin), in the same write when the
// statement is side-effect free (readonly.go), else alone first. Until
// then nothing exists on any server: a COMMIT or ROLLBACK is answered
// here too, and a client that leaves or is killed leaves nothing behind.

// txControl is a transaction statement the proxy may answer itself.
type txControl uint8

const (
	txNone txControl = iota
	txBegin
	txCommit
	txRollback
)

// plainTxControl recognises BEGIN [WORK] and START TRANSACTION with no
// characteristics, and COMMIT [WORK] and ROLLBACK [WORK] without AND
// CHAIN, RELEASE or TO SAVEPOINT, optionally ended by a semicolon. Anything
// else, BEGIN NOT ATOMIC and START TRANSACTION READ ONLY included, is
// txNone: the server runs it.
func plainTxControl(sql []byte, noBackslash bool) txControl {
	lx := lexer{src: sql, noBackslash: noBackslash}
	t := lx.next()
	kind, work := txNone, true // work: WORK may follow
	switch {
	case lx.is(t, "BEGIN"):
		kind = txBegin
	case lx.is(t, "START"):
		if t = lx.next(); !lx.is(t, "TRANSACTION") {
			return txNone
		}
		kind, work = txBegin, false
	case lx.is(t, "COMMIT"):
		kind = txCommit
	case lx.is(t, "ROLLBACK"):
		kind = txRollback
	default:
		return txNone
	}
	if t = lx.next(); work && lx.is(t, "WORK") {
		t = lx.next()
	}
	if lx.isPunct(t, ';') {
		t = lx.next()
	}
	if t.kind != tokEnd || lx.bad || lx.inExecCmt {
		return txNone
	}
	return kind
}

// deferTxControl answers the COM_QUERY being served when it is a plain
// BEGIN the proxy may defer, or the COMMIT or ROLLBACK of a transaction
// whose BEGIN is still deferred; it reports whether it did.
func (s *session) deferTxControl(sql []byte) bool {
	if !s.p.cfg.DeferBegin || s.qi.kind != stmtOther || s.qi.feats&(featMulti|featBad) != 0 {
		return false
	}
	return s.deferTx(plainTxControl(sql, s.noBackslash))
}

// deferTx answers the command being served, a COM_QUERY or the
// COM_STMT_EXECUTE of a prepared statement (sysbench prepares its BEGIN
// and COMMIT) whose text is the transaction statement tx, when it is a
// BEGIN the proxy may defer or ends a transaction whose BEGIN is still
// deferred; it reports whether it did. The server answers both kinds of
// command with the same OK.
func (s *session) deferTx(tx txControl) bool {
	if !s.p.cfg.DeferBegin {
		return false
	}
	switch tx {
	case txBegin:
		switch {
		case s.beginPending:
			// The server would commit the open transaction and start
			// another: that one has run nothing, so nothing changes.
		case s.pins != 0 || s.oracleMode():
			// In a transaction (BEGIN commits it), with autocommit off,
			// or holding server state: the server must see it. In
			// sql_mode ORACLE, BEGIN opens a block, not a transaction.
			return false
		default:
			s.beginPending = true
			s.pin(PinTransaction)
		}
	case txCommit, txRollback:
		if !s.beginPending {
			return false
		}
		s.beginPending = false
		s.unpin(PinTransaction)
	default:
		return false
	}
	s.local()
	s.writeOK(0, 0) // status from the session: IN_TRANS as it now stands
	return true
}

// oracleMode reports whether the session's sql_mode, as the proxy tracks
// it, includes ORACLE.
func (s *session) oracleMode() bool {
	v := s.st.varValue(varSQLMode)
	for i := 0; i+len("ORACLE") <= len(v); i++ {
		if equalFoldASCII([]byte(v[i:i+len("ORACLE")]), "ORACLE") {
			return true
		}
	}
	return false
}

// serverPins are the session's pins that stand for state on its backend:
// all of them, less the transaction of a deferred BEGIN, which exists on
// no server yet.
func (s *session) serverPins() uint32 {
	if s.beginPending {
		return s.pins &^ (1 << PinTransaction)
	}
	return s.pins
}
