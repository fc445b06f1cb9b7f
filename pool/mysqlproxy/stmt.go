package mysqlproxy

import (
	"bytes"

	"github.com/scalestack/scalestack/mysqlwire"
)

// Prepared statements across the pool.
//
// A client's statement ids are the proxy's own, per session. A statement is
// known by its SQL text: each loop caches the PREPARE response for a text so a
// repeated PREPARE is answered without a backend, and each backend keeps the
// texts it has prepared (bounded, least recently used closed first). EXECUTE
// prepares lazily on whichever backend runs it and rewrites the statement id
// in place.

// maxSessionStmts bounds the statements one client may hold open (the
// server's own default for max_prepared_stmt_count is 16382 in total).
const maxSessionStmts = 16382

// maxPrepCache bounds each loop's PREPARE response cache; when full it is
// emptied (entries are cheap to rebuild: one PREPARE on a backend).
const maxPrepCache = 4096

// maxSessionLongData bounds the COM_STMT_SEND_LONG_DATA bytes one session
// may have buffered, over all its statements, until they are executed: the
// proxy holds them until a backend runs the EXECUTE, and a client must not
// make it hold more than one maximal packet.
const maxSessionLongData = maxClientPayload

// errStmtNoCursor is ER_STMT_HAS_NO_OPEN_CURSOR.
const errStmtNoCursor mysqlwire.ErrCode = 1421

// stmtKey names a statement: its text, the schema it was prepared in
// (unqualified table names resolve against it) and the account it was
// prepared as (prepScope).
type stmtKey struct {
	prepScope
	sql string
}

// prepScope is what a PREPARE's answer depends on besides its text: the
// schema, and the server account (identity id) it ran as, whose grants
// decide whether it succeeds and which columns it describes. A statement
// prepared as one account is never answered from the cache to another.
type prepScope struct {
	ident  uint32
	schema string
}

// prepMeta is a cached PREPARE response.
type prepMeta struct {
	key       stmtKey
	resp      []byte // the response packets; the statement id field is rewritten per client
	numParams int
	numCols   int
	// ext: the column definitions carry MariaDB's extended type metadata
	// (the client that prepared it negotiated it); only such clients are
	// answered from it.
	ext bool
}

type longData struct {
	param uint16
	data  []byte
}

// sessStmt is a statement as one client sees it.
type sessStmt struct {
	id        uint32
	key       stmtKey
	numParams int
	// types are the parameter types the client sent last (2 bytes each):
	// libmysqlclient sends them only with the first EXECUTE.
	types []byte
	long  []longData
	// longTooBig: long data beyond the session's bound arrived and was
	// dropped; the next EXECUTE fails as the server's would.
	longTooBig bool
	cursor     bool
	wantCursor bool
	// pins are the pins (1<<PinReason) its text calls for, found by the
	// scanner at PREPARE and applied at each EXECUTE: what the server does
	// not report (GET_LOCK, SELECT @x:=..., SELECT ... INTO @v).
	pins uint32
	// feats are the scanner's findings in its text at PREPARE (feat*),
	// which each EXECUTE acts on as a COM_QUERY of the text would
	// (session.cmdFeats): an unlisted kind, LAST_INSERT_ID() read or
	// changed, CONNECTION_ID() called (rewritten at PREPARE, its columns
	// named after the call).
	feats uint32
	// free: its text is a side-effect-free SELECT (sideEffectFree), which
	// an exchange may write behind operations whose responses it has not
	// read yet.
	free bool
	// tx: its text is a plain BEGIN, COMMIT or ROLLBACK, which an EXECUTE
	// may find answered by the proxy (deferTx).
	tx txControl
	// pipeSafe: its text passes pipelineSafe, so its EXECUTEs may ride
	// a busy backend that has it prepared (pipeline.go).
	pipeSafe bool
}

func (s *session) newStmt(id uint32, meta *prepMeta) *sessStmt {
	if s.stmts == nil {
		s.stmts = map[uint32]*sessStmt{}
	}
	// s.qi is the scan of the PREPARE's text, s.payload[1:] (meta.key.sql
	// differs from it only where CONNECTION_ID() was rewritten, which
	// neither batching nor pipelining takes).
	ro := s.queryReadOnly()
	st := &sessStmt{id: id, key: meta.key, numParams: meta.numParams, pins: preparedPins(&s.qi), feats: s.qi.feats,
		free: ro.sideEffectFree()}
	if s.qi.kind == stmtOther && s.qi.feats&(featMulti|featBad) == 0 {
		st.tx = plainTxControl(s.payload[1:], s.noBackslash)
	}
	if s.p.cfg.PipelineDepth > 0 {
		st.pipeSafe = ro.pipelineSafe() ||
			s.p.cfg.PipelineAllow != nil && s.p.cfg.PipelineAllow([]byte(meta.key.sql))
	}
	s.stmts[id] = st
	s.pl.holdStmt(meta.key)
	s.lastStmtID = id
	return st
}

func (s *session) allocStmtID() uint32 {
	s.nextStmtID++
	if s.nextStmtID == 0 || s.nextStmtID == 0xFFFFFFFF {
		s.nextStmtID = 1
	}
	return s.nextStmtID
}

func (s *session) malformed() {
	s.local()
	s.writeERR(errMalformedPacket)
}

func (s *session) unknownStmt(id uint32, where string) {
	s.local()
	s.writeERR(errUnknownStatement, id, where)
}

func (s *session) lookupStmt(id uint32) (*sessStmt, uint32) {
	if id == 0xFFFFFFFF { // MariaDB: the statement prepared last
		id = s.lastStmtID
	}
	return s.stmts[id], id
}

// preparedPins are the pins a prepared statement's text (scanned into qi)
// calls for at each EXECUTE. A prepared SET pins whatever it sets: the
// proxy replays only the SETs whose values it reads in the text.
func preparedPins(qi *queryInfo) uint32 {
	var pins uint32
	for _, fp := range featurePins {
		if qi.feats&fp.feature != 0 {
			pins |= 1 << fp.reason
		}
	}
	switch qi.kind {
	case stmtLock, stmtFlushLock:
		pins |= 1 << PinLockTables
	case stmtCreateTemp:
		pins |= 1 << PinTempTable
	case stmtSet:
		pins |= 1 << PinUnknownSet
	}
	return pins
}

// onPrepare answers from the loop's cache or prepares on a backend.
func (s *session) onPrepare(raw, payload []byte) {
	// The text is scanned now, for the pins its EXECUTEs call for.
	s.qi = scanQuery(payload[1:], s.noBackslash)
	if !s.user.Admin {
		if p := privilegeOf(payload[1:], s.noBackslash, 0); s.refuses(p) {
			s.refuse(p)
			return
		}
	}
	if s.liftsStatementTime(payload[1:], &s.qi, true) || !s.admitCommand() {
		return
	}
	if len(s.stmts) >= maxSessionStmts {
		s.local()
		s.writeERR(errTooManyStatements)
		return
	}
	if s.qi.feats&featConnID != 0 {
		s.rewriteConnID()
		raw, payload = s.req, s.payload
	}
	if meta := s.pl.prepCache[prepScope{s.ident().id, s.st.schema}][string(payload[1:])]; meta != nil && meta.ext == s.extTypeInfo() {
		s.local()
		s.pl.stats.PrepareCacheHits.Add(1)
		id := s.allocStmtID()
		s.newStmt(id, meta)
		dst := s.c.Reserve(len(meta.resp))
		s.pl.stats.ClientBytesOut.Add(uint64(len(dst)))
		copy(dst, meta.resp)
		s.respSeq = renumber(dst, s.respSeq)
		putUint32(dst[mysqlwire.HeaderSize+1:], id)
		return
	}
	s.prepID = s.allocStmtID()
	s.capture = make([]byte, 0, 512)
	s.forward(raw, payload)
}

// captured adds a relayed packet of the PREPARE response to the cache copy.
func (s *session) captured(raw []byte) {
	s.capture = append(s.capture, raw...)
}

// onPrepareOKRelayed rewrites the statement id in the relayed first packet
// and starts the cache copy.
func (s *session) onPrepareOKRelayed(dst []byte) {
	putUint32(dst[mysqlwire.HeaderSize+1:], s.prepID)
	if s.capture != nil {
		s.capture = append(s.capture, dst...)
	}
}

func (s *session) onPrepareDone(b *backend) {
	id, cols, params, ok := b.tracker.Prepared()
	capture := s.capture
	s.capture = nil
	if !ok {
		return
	}
	key := stmtKey{prepScope{s.ident().id, s.st.schema}, string(s.payload[1:])}
	b.addStmt(key, id)
	s.pl.stats.BackendPrepares.Add(1)
	meta := &prepMeta{key: key, resp: capture, numParams: int(params), numCols: int(cols), ext: s.extTypeInfo()}
	pl := s.pl
	if pl.prepCount >= maxPrepCache {
		clear(pl.prepCache)
		pl.prepCount = 0
	}
	bySQL := pl.prepCache[key.prepScope]
	if bySQL == nil {
		bySQL = map[string]*prepMeta{}
		pl.prepCache[key.prepScope] = bySQL
	}
	if bySQL[key.sql] == nil {
		pl.prepCount++
	}
	bySQL[key.sql] = meta
	s.newStmt(s.prepID, meta)
}

// executeHead returns where the new-params-bound flag sits in an EXECUTE
// payload, or -1 when the statement has no parameters or the packet is too
// short to have one.
func executeBoundAt(payload []byte, numParams int) int {
	if numParams == 0 {
		return -1
	}
	at := 10 + (numParams+7)/8
	if len(payload) <= at {
		return -1
	}
	return at
}

func (s *session) onExecute(raw, payload []byte) {
	if len(payload) < 10 {
		s.malformed()
		return
	}
	st, id := s.lookupStmt(getUint32(payload[1:])) // length checked above
	if st == nil {
		s.unknownStmt(id, "mysqld_stmt_execute")
		return
	}
	if !s.admitCommand() {
		return
	}
	if at := executeBoundAt(payload, st.numParams); at >= 0 && payload[at] == 1 {
		end := at + 1 + 2*st.numParams
		if end > len(payload) {
			s.malformed()
			return
		}
		st.types = append(st.types[:0], payload[at+1:end]...)
	}
	if st.longTooBig {
		st.longTooBig = false
		s.local()
		s.writeERR(errLongDataTooLarge)
		return
	}
	st.wantCursor = payload[5]&0x07 != 0
	if st.tx != txNone && len(st.long) == 0 && s.deferTx(st.tx) {
		return
	}
	s.stmt = st
	s.forward(raw, payload)
}

// execute sends the EXECUTE on the exchange's backend, which has the
// statement (the plan prepared it): buffered long data first, then the
// EXECUTE with the backend's statement id (and the parameter types when
// the backend's statement has not seen the ones the client relies on).
func (ex *exchange) execute() {
	s, b := ex.s, ex.b
	st := s.stmt
	bs := b.stmtFor(st.key)
	if bs == nil {
		// The plan prepared it just before; only a protocol slip gets here.
		ex.fail(errStatementVanished)
		return
	}
	for _, ld := range st.long {
		b.sendLongData(bs.id, ld.param, ld.data)
	}
	s.dropLongData(st)
	_, _ = mysqlwire.RewriteStatementID(s.req[mysqlwire.HeaderSize:], bs.id) // length checked on arrival
	payload := s.payload
	at := executeBoundAt(payload, st.numParams)
	single := len(s.req) == len(payload)+mysqlwire.HeaderSize
	if at >= 0 && single {
		if payload[at] == 1 {
			bs.types = append(bs.types[:0], st.types...)
		} else if len(st.types) == 2*st.numParams && !bytes.Equal(bs.types, st.types) {
			// The client relies on types it sent earlier, which this
			// backend's statement has not seen (or saw others): bind them.
			bs.types = append(bs.types[:0], st.types...)
			ex.writeMain(s.executeWithTypes(at))
			return
		}
	}
	ex.writeMain(s.req)
}

// executeWithTypes rebuilds the EXECUTE being served with the new-params
// flag (at) set and the statement's parameter types bound, in the
// session's scratch buffer.
func (s *session) executeWithTypes(at int) []byte {
	payload := s.payload
	out, hdr := mysqlwire.AppendHeader(s.scratch[:0])
	out = append(out, payload[:at]...)
	out = append(out, 1)
	out = append(out, s.stmt.types...)
	out = append(out, payload[at+1:]...)
	out, _ = mysqlwire.FinishPacket(out, hdr, 0)
	s.scratch = out[:0]
	return out
}

func (s *session) onExecuteDone(b *backend) {
	st := s.stmt
	if st != nil {
		for r := PinReason(0); st.pins>>r != 0; r++ {
			if st.pins&(1<<r) != 0 {
				s.pin(r)
			}
		}
	}
	if st != nil && st.wantCursor && b.tracker.CursorOpen() && !st.cursor {
		st.cursor = true
		s.openCursors++
		s.pin(PinCursor)
	}
}

func (s *session) onFetch(raw, payload []byte) {
	stmtID, _, err := mysqlwire.ParseStmtFetch(payload)
	if err != nil {
		s.malformed()
		return
	}
	st, id := s.lookupStmt(stmtID)
	if st == nil {
		s.unknownStmt(id, "mysqld_stmt_fetch")
		return
	}
	if !st.cursor || s.b == nil {
		s.local()
		s.writeERR(errNoCursor, id)
		return
	}
	s.stmt = st
	s.forward(raw, payload)
}

func (s *session) onFetchDone(b *backend) {
	if !b.tracker.CursorOpen() {
		s.closeCursor(s.stmt)
	}
}

func (s *session) closeCursor(st *sessStmt) {
	if st == nil || !st.cursor {
		return
	}
	st.cursor = false
	s.openCursors--
	if s.openCursors <= 0 {
		s.openCursors = 0
		s.unpin(PinCursor)
	}
}

func (s *session) onLongData(payload []byte) {
	s.local()
	ld, err := mysqlwire.ParseStmtSendLongData(payload)
	if err != nil {
		return // no response is defined; the EXECUTE will fail
	}
	st, _ := s.lookupStmt(ld.StatementID)
	if st == nil || st.longTooBig {
		return
	}
	if int(s.longDataBytes)+len(ld.Data) > maxSessionLongData {
		s.dropLongData(st)
		st.longTooBig = true
		return
	}
	s.longDataBytes += int32(len(ld.Data))
	st.long = append(st.long, longData{param: ld.ParamID, data: append([]byte(nil), ld.Data...)})
}

// dropLongData forgets st's buffered long data (sent, reset or closed).
func (s *session) dropLongData(st *sessStmt) {
	for _, ld := range st.long {
		s.longDataBytes -= int32(len(ld.data))
	}
	clear(st.long) // let the data go even though the slice is reused
	st.long = st.long[:0]
}

func (s *session) onStmtReset(raw, payload []byte) {
	stmtID, err := mysqlwire.ParseStmtReset(payload)
	if err != nil {
		s.malformed()
		return
	}
	st, id := s.lookupStmt(stmtID)
	if st == nil {
		s.unknownStmt(id, "mysqld_stmt_reset")
		return
	}
	s.dropLongData(st)
	st.longTooBig = false
	if st.cursor && s.b != nil {
		// The cursor lives on the pinned backend: reset it there.
		s.stmt = st
		s.forward(raw, payload)
		return
	}
	s.local()
	s.writeOK(0, 0)
}

func (s *session) onStmtClose(payload []byte) {
	s.local()
	stmtID, err := mysqlwire.ParseStmtClose(payload)
	if err != nil {
		return // no response is defined
	}
	st, id := s.lookupStmt(stmtID)
	if st == nil {
		return
	}
	if st.cursor && s.b != nil {
		// Closing the backend's statement closes its cursor.
		s.b.dropStmt(st.key)
		s.closeCursor(st)
	}
	s.dropLongData(st)
	delete(s.stmts, id)
	s.pl.releaseStmt(st.key, s.b)
}
