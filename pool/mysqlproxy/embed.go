package mysqlproxy

import (
	"errors"
	"fmt"

	"github.com/scalestack/scalestack/mysqlwire"
	"github.com/scalestack/scalestack/pool"
	"github.com/scalestack/scalestack/reactor"
)

// Embedding: callers that are not MySQL clients (the memcached module's
// MySQL table back end, the HTTP SQL gateway) run prepared statements
// through the same N backends as the proxy's sessions, on the loop they
// run on, with no goroutine and no net.Conn. See "Embedded callers" in
// the package documentation.
//
// A Request is a pool.Client like a session: it waits for a backend in
// the same queue (same deadline, same refusals), brings the backend to the
// embedded state (no session of its own: the statement's schema, the
// server's default variables and the proxy's character set), prepares the
// statement there once (the backend's statement cache, shared with the
// sessions), executes it and hands the response to a Sink as it arrives:
// column definitions, then rows one by one (decoded from the packet, never
// buffered), then Done. A Sink that cannot take more returns false from
// Row; reading from the backend stops until Request.Resume.
//
// An embedded statement has no session to keep state in, so statements
// that would leave state behind are refused when the Stmt is made (see
// PrepareStmt), and a backend whose server reports a state change or an
// open transaction after one, or that answered it with an error (a
// trigger or function may have changed state first, and an ERR carries no
// report), is reset before anyone else uses it.

// Stmt is a statement text an embedded caller runs, with the schema its
// unqualified names resolve in. It belongs to the loop it was made on.
type Stmt struct {
	pl  *proxyLoop
	key stmtKey
	// numParams is the number of ? placeholders (the server's count is
	// checked against it when the statement is prepared).
	numParams int
	// lastIDWrite: the text may change LAST_INSERT_ID().
	lastIDWrite bool
	closed      bool
	// heldFor are the identities (server accounts) the statement has run
	// as: a prepared statement belongs to the account that prepared it, so
	// the loop holds one key per identity (keyFor), released by Close.
	heldFor []uint32
}

// keyFor is the statement's key when run as id.
func (st *Stmt) keyFor(id *identity) stmtKey {
	return stmtKey{prepScope{id.id, st.key.schema}, st.key.sql}
}

// holdFor makes the loop hold the statement for id, once.
func (st *Stmt) holdFor(id *identity) {
	for _, h := range st.heldFor {
		if h == id.id {
			return
		}
	}
	st.heldFor = append(st.heldFor, id.id)
	st.pl.holdStmt(st.keyFor(id))
}

// NumParams is how many parameters the statement takes.
func (st *Stmt) NumParams() int { return st.numParams }

// Close gives the statement up: backends may close it (as when the last
// session holding a statement closes it). It must run on the Stmt's loop,
// with no Request of it in progress.
func (st *Stmt) Close() {
	if st.closed {
		return
	}
	st.closed = true
	for _, h := range st.heldFor {
		st.pl.releaseStmt(stmtKey{prepScope{h, st.key.schema}, st.key.sql}, nil)
	}
	st.heldFor = nil
}

// embeddedKinds are the statements an embedded caller may run: each leaves
// no session state behind when it succeeds (what one does through a
// trigger or a function the server reports, and the backend is reset).
var embeddedKinds = [...]string{
	"SELECT", "WITH", "VALUES", "TABLE", "INSERT", "UPDATE", "DELETE", "REPLACE", "DO",
	"SHOW", "DESCRIBE", "DESC", "EXPLAIN",
}

// transactionWords start statements that control transactions, which an
// embedded caller cannot hold across statements.
var transactionWords = [...]string{"BEGIN", "START", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "XA"}

// ErrTransactionRefused is the *SQLError Sink.Done and PrepareStmt give
// for a statement that controls a transaction.
var ErrTransactionRefused = &SQLError{Code: ErUnsupported, SQLState: "0A000",
	Message: "Transactions are not supported here: each statement runs alone, in autocommit mode"}

// embedRefusedFeatures are the features (anywhere in the text) that leave
// session state the proxy cannot put right without a session.
const embedRefusedFeatures = featUserVar | featGetLock | featCalcFoundRows | featMulti | featTempTable | featBad |
	featLockTables | featUnlock | featPrepare | featSet | featUse | featDiag

// PrepareStmt makes a Stmt of sql for the loop l (it must run on l). The
// text is checked before any backend sees it: one statement of the kinds
// in embeddedKinds, without user variables, GET_LOCK, SQL_CALC_FOUND_ROWS,
// temporary tables, locks or diagnostics reads. Transactions are refused
// with ErrTransactionRefused, other statements with an *SQLError 9005
// (0A000) naming what is refused.
func (p *Proxy) PrepareStmt(l *reactor.Loop, schema, sql string) (*Stmt, error) {
	if len(p.loops) <= l.ID() || p.loops[l.ID()].loop != l {
		return nil, errors.New("mysqlproxy: PrepareStmt: not one of the proxy's loops (StartBackends first)")
	}
	if len(sql) == 0 || len(sql) > maxClientPayload-1 {
		return nil, &SQLError{Code: mysqlwire.ErEmptyQuery, SQLState: "42000", Message: "Query was empty"}
	}
	src := []byte(sql)
	lx := lexer{src: src}
	first := lx.next()
	for lx.isPunct(first, '(') {
		first = lx.next()
	}
	for _, w := range transactionWords {
		if lx.is(first, w) {
			return nil, ErrTransactionRefused
		}
	}
	listed := first.kind == tokWord
	if listed {
		listed = false
		for _, w := range embeddedKinds {
			if lx.is(first, w) {
				listed = true
				break
			}
		}
	}
	if !listed {
		return nil, &SQLError{Code: ErUnsupported, SQLState: "0A000",
			Message: "Statement not supported here: only SELECT, WITH, VALUES, TABLE, INSERT, UPDATE, DELETE, REPLACE, DO, SHOW, DESCRIBE and EXPLAIN run without a session"}
	}
	qi := scanQuery(src, false)
	if qi.feats&embedRefusedFeatures != 0 {
		return nil, &SQLError{Code: ErUnsupported, SQLState: "0A000",
			Message: "Statement not supported here: user variables, GET_LOCK, SQL_CALC_FOUND_ROWS, temporary tables, locks, diagnostics and several statements need a session"}
	}
	n := 0
	for lx := (lexer{src: src}); ; {
		t := lx.next()
		if t.kind == tokEnd {
			break
		}
		if lx.isPunct(t, '?') {
			n++
		}
	}
	pl := p.loops[l.ID()]
	// The identity part of key is set per Request (keyFor).
	st := &Stmt{pl: pl, key: stmtKey{prepScope{schema: schema}, sql}, numParams: n,
		lastIDWrite: qi.feats&featLastIDWrite != 0}
	return st, nil
}

// SQLError is an error answered to an embedded Request: the server's ERR,
// or one of the proxy's own (the codes clients get: 9001 queue timeout,
// 9003 unavailable, 9004 backend lost, 1045 unknown account, 9005 refused).
type SQLError struct {
	Code     mysqlwire.ErrCode
	SQLState string
	Message  string
}

func (e *SQLError) Error() string {
	return fmt.Sprintf("Error %d (%s): %s", e.Code, e.SQLState, e.Message)
}

func proxySQLError(e proxyErr, args ...any) *SQLError {
	pe := &proxyErrors[e]
	return &SQLError{Code: pe.code, SQLState: pe.state, Message: e.message(args...)}
}

// The proxy's errors an embedded request ends with, made once.
var (
	embedQueueTimeout = proxySQLError(errQueueTimeout)
	embedUnavailable  = proxySQLError(errBackendUnavailable)
	embedLost         = proxySQLError(errBackendLost)
	embedVanished     = proxySQLError(errStatementVanished)
)

// Sink receives what an embedded Request's statement answers, on the
// request's loop. Slices it is given alias the backend's input: they are
// valid only during the call.
type Sink interface {
	// Column is the definition of column i (of Request.NumColumns), in
	// order, before any row.
	Column(r *Request, i int, def *mysqlwire.ColumnDefinition)
	// Row is one row. Returning false pauses the response: nothing more
	// is read from the backend (which stays held) until Request.Resume.
	Row(r *Request, row *Row) bool
	// Done ends the request: err is nil, or an *SQLError. After a result
	// set, Request.Warnings is set; after an OK, AffectedRows and
	// LastInsertID too. The request may be started again from Done.
	Done(r *Request, err error)
}

// Row is one binary result row; Next decodes its columns in order.
type Row struct {
	r  *Request
	rd mysqlwire.BinaryRowReader
	i  int
}

// Len is the number of columns.
func (row *Row) Len() int { return len(row.r.colTypes) }

// Next decodes the next column (its Bytes alias the packet).
func (row *Row) Next() (mysqlwire.Value, error) {
	if row.i >= len(row.r.colTypes) {
		return mysqlwire.Value{}, errors.New("mysqlproxy: row has no more columns")
	}
	ct := row.r.colTypes[row.i]
	row.i++
	return row.rd.Next(ct.t, ct.unsigned)
}

type colType struct {
	t        mysqlwire.FieldType
	unsigned bool
}

// embedStep is the operation of an embedded request whose response is
// being read (see Request.run).
type embedStep uint8

const (
	eNone     embedStep = iota
	eIdentity           // COM_CHANGE_USER to the request's account: the backend is logged in as another
	eNoSchema           // COM_CHANGE_USER without a schema: the statement has none, the backend has one
	eTrack              // the session tracking SET (after a login or reset)
	eSchema             // COM_INIT_DB to the statement's schema
	eVars               // one SET back to the server's defaults and the proxy's character set
	ePrepare            // COM_STMT_PREPARE (the backend lacks the statement)
	eExecute            // COM_STMT_EXECUTE: its response goes to the Sink
)

// Request is one statement run by an embedded caller. The caller fills
// the exported fields and calls Start on the Stmt's loop; the outcome
// comes through Sink (Done may run inside Start, for a refusal). A
// Request is reused for the next statement once Done has run; it
// allocates nothing in steady state.
type Request struct {
	// Account is the users-file account the statement runs for, as if
	// that account had logged in (an unknown one gets ERR 1045).
	Account string
	Stmt    *Stmt
	// Params bind the statement's placeholders (their Bytes are read
	// during Start only: the EXECUTE is built then or when a backend is
	// granted, so they must stay valid until the first Sink call).
	Params []mysqlwire.Value
	Sink   Sink
	// Password, when the caller has it (the HTTP gateway checked it
	// against the users file), lets the statement run as the account's
	// own server account before any client of it has logged in through
	// the proxy (see embedIdentity). Read during Start only.
	Password []byte

	wait    pool.Waiter
	ident   *identity // the server account the statement runs as
	key     stmtKey   // the Stmt's key for ident
	b       *backend
	step    embedStep
	running bool
	paused  bool
	// changed: the server reported a session state change (or an open
	// transaction) in the response: the backend is reset after it.
	changed  bool
	colTypes []colType
	colsSeen int
	row      Row

	affected, lastID uint64
	warnings         uint16
}

// NumColumns is the number of columns of the result set being read.
func (r *Request) NumColumns() int { return len(r.colTypes) }

// AffectedRows and LastInsertID are the OK packet's, Warnings the
// response's warning count (valid in Done).
func (r *Request) AffectedRows() uint64 { return r.affected }
func (r *Request) LastInsertID() uint64 { return r.lastID }
func (r *Request) Warnings() uint16     { return r.warnings }

// Running reports whether the request is started and Done has not run.
func (r *Request) Running() bool { return r.running }

// Waiting reports whether the request waits for a backend.
func (r *Request) Waiting() bool { return r.wait.Queued() }

// Start runs the request. It must run on the Stmt's loop.
func (r *Request) Start() {
	if r.running {
		panic("mysqlproxy: Request started twice")
	}
	st := r.Stmt
	r.running, r.paused, r.changed = true, false, false
	r.affected, r.lastID, r.warnings = 0, 0, 0
	r.colTypes, r.colsSeen = r.colTypes[:0], 0
	pl := st.pl
	if st.closed {
		r.done(embedVanished)
		return
	}
	u := (*pl.p.users.Load())[r.Account]
	if u == nil {
		r.done(proxySQLError(errAccessDenied, r.Account, "embedded", "NO"))
		return
	}
	id, err := pl.p.embedIdentity(u, r.Password)
	if err != nil {
		r.done(err)
		return
	}
	r.ident, r.key = id, st.keyFor(id)
	st.holdFor(id)
	r.wait.Class = id.class()
	// It waits in its account's tenant's queue (weight, min- and
	// max-backends; the session-level rules are not applied to it).
	r.wait.Tenant = pl.p.tenantOf(u)
	// Counted as the account's COM_STMT_EXECUTE, as a session's would be.
	pl.stats.Commands[commandSlot(mysqlwire.ComStmtExecute)].Add(1)
	if u.stats != nil {
		u.stats.on(pl.id).commands.Add(1)
	}
	if len(r.Params) != st.numParams {
		r.done(&SQLError{Code: mysqlwire.ErWrongArguments, SQLState: "HY000",
			Message: "Incorrect arguments to mysqld_stmt_execute"})
		return
	}
	r.wait.Client = r
	pl.lp.Acquire(&r.wait)
}

// Cancel ends a request that is still running without a Done: a waiting
// one leaves the queue; a backend in the middle of its response is closed
// (its state is unknown, as when a client leaves mid-response) and
// reconnects. It may be called from a Sink method.
func (r *Request) Cancel() {
	if !r.running {
		return
	}
	r.running = false
	if r.wait.Queued() {
		r.Stmt.pl.lp.Leave(&r.wait)
		return
	}
	if b := r.b; b != nil {
		r.b = nil
		b.emb = nil
		b.abandon(errEmbedCanceled)
	}
}

var errEmbedCanceled = errors.New("mysqlproxy: embedded request canceled mid-response")

// Resume continues a response a Sink paused (Row returned false).
func (r *Request) Resume() {
	if r.paused && r.b != nil {
		r.paused = false
		r.b.resumeIfPaused()
	}
}

// done ends the request and tells the sink.
func (r *Request) done(err error) {
	r.running = false
	r.step = eNone
	if err != nil {
		if e, ok := err.(*SQLError); ok {
			r.Stmt.pl.stats.Errors[errorSlot(e.Code)].Add(1)
		}
	}
	r.Sink.Done(r, err)
}

// Granted implements pool.Client: the request starts on the backend.
func (r *Request) Granted(pb *pool.Backend) {
	pl := r.Stmt.pl
	b := pl.p.backends[pb.Index()]
	r.b = b // set first: a failed reopen is heard through Lost
	if c := pb.Class(); c.Flags != r.wait.Class.Flags {
		// A backend logged in with CLIENT_FOUND_ROWS would report matched
		// rather than changed rows: only a new login changes that, as for
		// a session (session.Granted).
		c.Flags = r.wait.Class.Flags
		pb.Reopen(c)
		return
	}
	b.sweepStmts(pl)
	r.step = eNone
	r.run()
}

// Refused implements pool.Client.
func (r *Request) Refused(err error) {
	if err == pool.ErrQueueTimeout {
		r.done(embedQueueTimeout)
		return
	}
	r.done(embedUnavailable)
}

// Revoked implements pool.Client; a Request never keeps a backend.
func (r *Request) Revoked(*pool.Backend) {}

// Lost implements pool.Client: the backend broke under the request.
func (r *Request) Lost(pb *pool.Backend, _ error) {
	if r.b == nil || r.b.pb != pb {
		return // a backend this request gave up (Cancel, or an error it handled)
	}
	r.b = nil
	r.done(embedLost)
}

// embedState is the state an embedded statement runs in: no user
// variables, the server's default variables, the proxy's character set.
func (b *backend) embedState() sessionState {
	return sessionState{names: b.p.defaultNames}
}

// run sends the next operation the backend needs, from the one after
// r.step: each is checked against what the backend holds when it starts.
func (r *Request) run() {
	b, st := r.b, r.Stmt
	for {
		r.step++
		switch r.step {
		case eIdentity:
			if b.ident.id == r.ident.id {
				continue
			}
			// COM_CHANGE_USER as the request's account, no schema: the
			// backend is then fresh, and the steps below see it so.
			st.pl.stats.IdentitySwitches.Add(1)
			b.emb = r
			b.changeUser(dutyEmbed, nil, r.ident)
		case eNoSchema:
			if st.key.schema != "" || b.state.schema == "" {
				continue
			}
			st.pl.stats.StateReplays.Add(1)
			b.emb = r
			b.changeUser(dutyEmbed, nil, r.ident)
		case eTrack:
			if !b.tracks() || b.tracking {
				continue
			}
			b.emb = r
			b.sendTracking(dutyEmbed, nil)
		case eSchema:
			if st.key.schema == "" || st.key.schema == b.state.schema {
				continue
			}
			st.pl.stats.StateReplays.Add(1)
			p := append(append(b.scratch[:0], byte(mysqlwire.ComInitDB)), st.key.schema...)
			b.scratch = p[:0]
			b.emb = r
			b.send(dutyEmbed, nil, p)
		case eVars:
			want := b.embedState()
			if !want.varsDiffer(&b.state) {
				continue
			}
			p, need := appendReplaySET(append(b.scratch[:0], byte(mysqlwire.ComQuery)), &want, &b.state, &b.flavor)
			b.scratch = p[:0]
			if !need {
				b.state.names = want.names
				continue
			}
			st.pl.stats.StateReplays.Add(1)
			b.emb = r
			b.send(dutyEmbed, nil, p)
		case ePrepare:
			if b.stmtFor(r.key) != nil {
				continue
			}
			p := append(append(b.scratch[:0], byte(mysqlwire.ComStmtPrepare)), st.key.sql...)
			b.scratch = p[:0]
			b.emb = r
			b.send(dutyEmbed, nil, p)
		case eExecute:
			r.execute()
		default:
			panic("mysqlproxy: embedded request ran past its plan")
		}
		return
	}
}

// execute sends COM_STMT_EXECUTE with the request's parameters (their
// types always bound, and recorded as the backend statement's: a session
// that relies on types it sent before is rebound).
func (r *Request) execute() {
	b := r.b
	bs := b.stmtFor(r.key)
	if bs == nil {
		r.fail(embedVanished, false)
		return
	}
	bs.types = bs.types[:0]
	for _, v := range r.Params {
		var fl byte
		if v.Unsigned {
			fl = 0x80
		}
		bs.types = append(bs.types, byte(v.Type), fl)
	}
	pkt, _ := mysqlwire.AppendStmtExecute(b.scratch[:0], 0, bs.id, 0, r.Params)
	b.scratch = pkt[:0]
	if len(pkt) > mysqlwire.HeaderSize+mysqlwire.MaxPacketPayload-1 {
		r.fail(&SQLError{Code: mysqlwire.ErNetPacketTooLarge, SQLState: "08S01",
			Message: "Got a packet bigger than 'max_allowed_packet' bytes"}, false)
		return
	}
	r.Stmt.pl.stats.Questions.Add(1)
	b.emb = r
	b.duty, b.ex = dutyEmbed, nil
	b.pb.Awaiting()
	if _, err := b.tracker.Start(mysqlwire.ComStmtExecute, b.caps); err != nil {
		b.abandon(err)
		return
	}
	b.writeFramed(pkt)
}

// fail ends the request with err before anything was sent for the
// current step (nothing is in flight): the backend goes back, reset when
// reset is set.
func (r *Request) fail(err error, reset bool) {
	b := r.b
	r.b = nil
	b.emb = nil
	b.endExchange()
	r.giveBack(b, reset)
	r.done(err)
}

func (r *Request) giveBack(b *backend, reset bool) {
	b.resumeIfPaused()
	lp := r.Stmt.pl.lp
	if reset || b.needsReset() {
		lp.Reset(b.pb)
		return
	}
	lp.Release(b.pb)
}

// synced: the current step's response was OK; on to the next.
func (r *Request) synced() {
	if b := r.b; b != nil {
		b.duty, b.emb = dutyNone, nil
		r.run()
	}
}

// onEmbedPacket routes a packet of the response to an embedded request's
// step.
func (b *backend) onEmbedPacket(payload []byte) {
	r := b.emb
	if r == nil || r.b != b {
		b.abandon(fmt.Errorf("%w: packet for a canceled embedded request", errBackendProtocol))
		return
	}
	prog, err := b.tracker.Feed(payload)
	if err != nil {
		b.p.logf("backend %d: %v", b.pb.Index(), err)
		b.abandon(fmt.Errorf("%w: %v", errBackendProtocol, err))
		return
	}
	if r.step == eExecute {
		r.onExecutePacket(payload, prog)
		return
	}
	if prog == mysqlwire.NeedMore && r.step == ePrepare {
		return // parameter and column definitions
	}
	if prog != mysqlwire.Complete {
		b.abandon(errBackendProtocol)
		return
	}
	code, state, failed := b.tracker.Err()
	if failed {
		b.noteDiag(proxyDiag)
		switch r.step {
		case eTrack:
			if b.trackRefused(code) {
				b.sendTracking(dutyEmbed, nil)
				return
			}
			r.synced() // served without tracking, as in 5.5 mode
			return
		case eSchema, ePrepare:
			// The server keeps the connection as it was (its schema, its
			// statements): the error is the caller's, the backend stays.
			e, _ := mysqlwire.ParseERR(payload)
			r.fail(&SQLError{Code: code, SQLState: string(state[:]), Message: string(e.Message)}, false)
			return
		}
		// A half-synced backend: its state is unknown.
		r.b = nil
		b.emb = nil
		b.abandon(errUnknownState)
		r.done(embedLost)
		return
	}
	if b.tracker.Warnings() > 0 {
		b.noteDiag(proxyDiag)
	}
	switch r.step {
	case eTrack:
		b.noteTracking()
	case eSchema:
		b.noteSchema(r.Stmt.key.schema)
	case eVars:
		want := b.embedState()
		b.noteVars(&want)
	case ePrepare:
		id, _, params, _ := b.tracker.Prepared()
		b.addStmt(r.key, id)
		r.Stmt.pl.stats.BackendPrepares.Add(1)
		if int(params) != r.Stmt.numParams {
			// The proxy's count of placeholders disagrees with the
			// server's: binding would misplace values.
			r.fail(&SQLError{Code: mysqlwire.ErWrongArguments, SQLState: "HY000",
				Message: fmt.Sprintf("Incorrect arguments to mysqld_stmt_execute (the server counts %d placeholders, the proxy %d)", params, r.Stmt.numParams)}, false)
			return
		}
	}
	r.synced()
}

// onExecutePacket hands the EXECUTE's response to the sink as it comes.
func (r *Request) onExecutePacket(payload []byte, prog mysqlwire.Progress) {
	b := r.b
	switch b.tracker.LastKind() {
	case mysqlwire.KindColumnCount:
		if len(r.colTypes) > 0 || r.colsSeen > 0 {
			b.abandon(fmt.Errorf("%w: more than one result set for an embedded statement", errBackendProtocol))
			return
		}
		n, _, _, err := mysqlwire.ReadLenEncInt(payload)
		if err != nil || n == 0 || n > 4096 {
			b.abandon(errBackendProtocol)
			return
		}
		for range n {
			r.colTypes = append(r.colTypes, colType{})
		}
	case mysqlwire.KindColumnDef:
		def, err := mysqlwire.ParseColumnDefinition(payload, b.caps)
		if err != nil || r.colsSeen >= len(r.colTypes) {
			b.abandon(errBackendProtocol)
			return
		}
		i := r.colsSeen
		r.colsSeen++
		r.colTypes[i] = colType{t: def.Type, unsigned: def.Flags&mysqlwire.FlagUnsigned != 0}
		r.Sink.Column(r, i, &def)
		if r.b != b {
			return // canceled by the sink
		}
	case mysqlwire.KindRow:
		rd, err := mysqlwire.NewBinaryRowReader(payload, len(r.colTypes))
		if err != nil {
			b.abandon(fmt.Errorf("%w: %v", errBackendProtocol, err))
			return
		}
		r.row = Row{r: r, rd: rd}
		more := r.Sink.Row(r, &r.row)
		if r.b != b {
			return
		}
		if !more && prog == mysqlwire.NeedMore {
			r.paused = true
			b.pauseForClient()
		}
	case mysqlwire.KindContinuation:
		b.abandon(fmt.Errorf("%w: a row of 16 MiB or more for an embedded statement", errBackendProtocol))
		return
	case mysqlwire.KindEOF, mysqlwire.KindOK:
		if status, ok := b.tracker.Status(); ok && status&mysqlwire.StatusSessionStateChanged != 0 {
			r.changed = true
		}
	}
	switch prog {
	case mysqlwire.NeedMore:
		return
	case mysqlwire.Complete:
	default:
		b.abandon(errBackendProtocol) // a LOCAL INFILE request nobody asked for
		return
	}
	t := &b.tracker
	r.affected, r.lastID, r.warnings = t.AffectedRows(), t.LastInsertID(), t.Warnings()
	var err error
	code, state, failed := t.Err()
	if failed {
		e, _ := mysqlwire.ParseERR(payload)
		err = &SQLError{Code: code, SQLState: string(state[:]), Message: string(e.Message)}
	}
	if failed || r.warnings > 0 {
		b.noteDiag(proxyDiag)
	}
	if r.Stmt.lastIDWrite || r.lastID != 0 {
		b.forgetLastID()
	}
	reset := failed || r.changed || t.SessionStateChanged() || t.InTransaction()
	r.b = nil
	b.emb = nil
	b.endExchange()
	r.giveBack(b, reset)
	r.done(err)
}
