package mysqlproxy

import (
	"bytes"
	"fmt"

	"github.com/scalestack/scalestack/mysqlwire"
)

// syncOp is one step of an exchange's plan: the sync operations that bring
// a backend to the session's state, then the client's command. The order
// is fixed; makePlan picks the ones a backend needs.
type syncOp uint8

const (
	opNone       syncOp = iota
	opIdentity          // COM_CHANGE_USER to the session's account: the backend is logged in as another
	opClearDiag         // COM_RESET_CONNECTION: the backend holds another session's diagnostics, which the command reads
	opNoSchema          // COM_CHANGE_USER without a schema: the session has none, the backend has one
	opTrack             // the SET that turns on session state tracking (after a login or reset)
	opStmtSchema        // COM_INIT_DB to the schema a statement was prepared in
	opPrepare           // COM_STMT_PREPARE made lazily before an EXECUTE
	opSchema            // COM_INIT_DB to the session's schema
	opVars              // one SET of the session's variables and character set
	opOption            // COM_SET_OPTION for the session's multi-statements
	opLastID            // DO LAST_INSERT_ID(v): the session's value, before a statement that reads it
	opBegin             // BEGIN: the session's deferred transaction starts before its first statement (txdefer.go)
	opMain              // the client's own command, whose response is relayed
	numOps
	// opLastIDProbe follows opMain without being planned: SELECT
	// LAST_INSERT_ID() after a statement that may have changed it.
	opLastIDProbe = numOps
)

// exchange is one client command on one backend: the plan of sync
// operations, the step whose response is being read, and the relay of the
// response to the client. A session embeds its one exchange and reuses it
// for every command, so a command allocates nothing. Only the exchange's
// methods write its fields; it tells the backend what it sends
// (backend.send, startMain, endExchange) and the session what happened
// (synced, commandDone, finishCommand).
//
// The state machine it runs is in STATES.md.
type exchange struct {
	s *session
	b *backend // the backend it runs on; nil between commands

	// plan lists the operations to run, in order; at is the next one.
	plan  [numOps - 1]syncOp // opNone is never planned
	n, at uint8
	// step is the operation whose response is being read (opNone: none
	// in flight).
	step syncOp
	// bSeq is the next sequence id towards the backend during a LOCAL
	// INFILE transfer.
	bSeq uint8
	// relayed: some of the response reached the client.
	relayed bool
	// stmtRetried: a PREPARE of this command met ERR 1461 and was sent
	// again after the backend made room (retryPrepareAfter1461).
	stmtRetried bool
	// accounted: the proxy knows every change the command makes to the
	// session (a tracked SET, USE, COM_INIT_DB) and the backend had no
	// withheld report, so the server's reports need no pin.
	accounted bool
	// plan[batchAt:batchEnd] are the operations written in one go
	// (runBatch), in order; the response of plan[head-1] is being read
	// (step), those of plan[head:batchEnd] are still to come.
	batchAt, head, batchEnd uint8
	// rider: the command was written behind others on a backend the
	// session does not hold (pipeline.go).
	rider bool
}

// inFlight reports whether a request of the exchange awaits its response.
func (ex *exchange) inFlight() bool { return ex.step != opNone }

// begin starts the session's command on b.
func (ex *exchange) begin(b *backend, granted bool) {
	ex.b = b
	ex.relayed = false
	ex.stmtRetried = false
	ex.makePlan(granted)
	ex.run()
}

// makePlan lists what b needs before the command can run. A COM_CHANGE_USER
// forgets everything (schema, variables, statements), so what follows it
// is planned as for a fresh connection; every later step checks again when
// it runs, against the state the earlier steps left. granted: the pool
// has just given b to the session (it did not hold it before the command).
func (ex *exchange) makePlan(granted bool) {
	s, b := ex.s, ex.b
	n := 0
	schema := b.state.schema
	fresh := false
	if b.ident.id != s.ident().id {
		// The backend is logged in as another account (the pool had no
		// idle one of the session's): a session runs only as its own.
		// COM_CHANGE_USER forgets everything, diagnostics and schema
		// included, so the rest is planned as for a fresh connection.
		ex.plan[n] = opIdentity
		n++
		schema, fresh = "", true
	}
	// Another session's diagnostics are cleared before any command of a
	// session that has just been given the backend (or holds it unpinned),
	// not only one that reads them: a command that uses no table leaves
	// them (SET @x, SELECT of a stored function) and may pin the session,
	// whose later SHOW WARNINGS could then not be given a reset (it would
	// lose the session's state) and would show them. A session that has
	// just been given the backend has no state there yet, whatever the
	// command's text pinned already.
	foreignDiag := !fresh && (granted || s.pins == 0) && b.diagOf != noDiag && b.diagOf != s.id
	if foreignDiag && !b.p.cfg.MySQL55 {
		// Only a reset clears them (a statement that uses no table
		// leaves them); everything after it is planned as for a fresh
		// connection. (In 5.5 mode opNoSchema below does the same.)
		ex.plan[n] = opClearDiag
		n++
		fresh = true
	}
	if s.st.schema == "" && schema != "" || foreignDiag && b.p.cfg.MySQL55 {
		// A session without a default schema must not run in the one
		// another session left: unqualified names would reach that
		// schema's tables. Only a new login clears it (COM_RESET_CONNECTION
		// keeps it). A session with no schema holds only statements
		// prepared with none, so the lazy prepare cannot set one.
		ex.plan[n] = opNoSchema
		n++
		schema, fresh = "", true
	}
	if b.tracks() && (fresh || !b.tracking) {
		ex.plan[n] = opTrack
		n++
	}
	if s.cmd == mysqlwire.ComStmtExecute && (fresh || b.stmtFor(s.stmt.key) == nil) {
		// Prepare lazily, in the schema the client prepared it in (table
		// names resolve at prepare time); the schema is put back after.
		if k := s.stmt.key.schema; k != "" && k != schema {
			ex.plan[n] = opStmtSchema
			n++
			schema = k
		}
		ex.plan[n] = opPrepare
		n++
	}
	if s.st.schema != "" && s.st.schema != schema {
		ex.plan[n] = opSchema
		n++
	}
	if fresh || s.st.varsDiffer(&b.state) {
		ex.plan[n] = opVars
		n++
	}
	if fresh || s.st.multiStmts != b.state.multiStmts {
		ex.plan[n] = opOption
		n++
	}
	if (s.readsLastID() || s.writesLastID()) && (fresh || !b.lastIDKnown || b.lastID != s.lastInsertID) {
		// A statement that may change it may also leave it (an INSERT
		// with an explicit id): what it leaves must be the session's.
		ex.plan[n] = opLastID
		n++
	}
	if s.beginPending {
		// Last: the replays above set what the transaction starts with
		// (its isolation level, read-only flag), and COM_CHANGE_USER or
		// COM_RESET_CONNECTION would end it.
		ex.plan[n] = opBegin
		n++
	}
	ex.plan[n] = opMain
	ex.n, ex.at = uint8(n+1), 0
}

// run starts the next operations of the plan until one has a response to
// wait for (or the exchange ended). Operations are sent one at a time, each
// after the previous one's response, so a failure never lets the command
// run in the wrong context; except that the last ones (schema, variables,
// multi-statements, BEGIN) and a command that changes nothing
// (stmtSideEffectFree) go in one write (runBatch): should one of them
// fail, the command runs in the wrong context but only its response is
// lost, and the client gets the same error as one at a time.
func (ex *exchange) run() {
	for ex.at < ex.n {
		if op := ex.plan[ex.at]; op.batchable() && op != opMain && ex.batches() {
			ex.runBatch()
			return
		}
		if ex.start(ex.plan[ex.at]) {
			return
		}
		ex.at++
	}
}

// batchable reports whether op may be written behind another operation
// whose response has not come yet: its response is one packet (or the
// command's), and it is sent once whatever happens (no retry, no auth
// exchange), so responses match the operations in order.
func (op syncOp) batchable() bool {
	switch op {
	case opSchema, opVars, opOption, opLastID, opBegin, opMain:
		return true
	}
	return false
}

// batches reports whether the rest of the plan may go in one write: the
// command changes nothing wherever it runs, and the backend holds no
// state of the session's that a reset after a failed batch would lose.
func (ex *exchange) batches() bool {
	s := ex.s
	return !s.p.cfg.SerialReplay && s.serverPins() == 0 && s.stmtSideEffectFree()
}

// runBatch writes the rest of the plan in one go (the connection flushes
// it as one write at the end of the loop's iteration) and reads the
// responses in order: synced moves on to the next operation's response
// without sending anything. An exchange that ends before the last one
// (an operation failed) leaves the rest to the backend to read and drop
// (end).
func (ex *exchange) runBatch() {
	b := ex.b
	// The operations sent are kept in place at the front of the rest
	// of the plan (start skips those the backend turns out not to need).
	ex.batchAt, ex.head, ex.batchEnd = ex.at, ex.at, ex.at
	for ; ex.at < ex.n; ex.at++ {
		op := ex.plan[ex.at]
		if !ex.start(op) {
			continue
		}
		if ex.b != b || b.ex != ex {
			return // the command failed before it was sent (ex.fail): end drained the rest
		}
		ex.plan[ex.batchEnd] = op
		ex.batchEnd++
	}
	if ex.batchEnd == ex.batchAt {
		return
	}
	ex.nextInBatch()
}

// nextInBatch starts reading the response of the next operation of the
// batch.
func (ex *exchange) nextInBatch() {
	b := ex.b
	ex.step = ex.plan[ex.head]
	ex.head++
	if _, err := b.tracker.Start(ex.batchCmd(ex.step), b.caps); err != nil {
		b.abandon(err)
		return
	}
	if ex.step == opMain && ex.head-1 > ex.batchAt && ex.s.p.cfg.PipelineDepth > 0 {
		// The replays written ahead of the command have answered and
		// b.state is the session's: riders may be matched against it
		// now (writeMain left the pipeline closed).
		b.openPipe(ex)
	}
}

// batchCmd is the command op sends (batchable ops only).
func (ex *exchange) batchCmd(op syncOp) mysqlwire.Command {
	switch op {
	case opSchema:
		return mysqlwire.ComInitDB
	case opOption:
		return mysqlwire.ComSetOption
	case opMain:
		return ex.s.cmd
	}
	return mysqlwire.ComQuery // opVars, opLastID, opBegin
}

// start sends op, or reports false when the backend turns out not to need
// it.
func (ex *exchange) start(op syncOp) bool {
	s, b := ex.s, ex.b
	switch op {
	case opIdentity:
		if b.ident.id == s.ident().id {
			return false
		}
		s.pl.stats.IdentitySwitches.Add(1)
		ex.step = op
		b.changeUser(dutyExchange, ex, s.ident())
	case opClearDiag:
		s.pl.stats.StateReplays.Add(1)
		ex.step = op
		b.sendReset(ex)
	case opNoSchema:
		s.pl.stats.StateReplays.Add(1)
		ex.step = op
		b.changeUser(dutyExchange, ex, b.ident)
	case opTrack:
		if !b.tracks() || b.tracking {
			return false
		}
		ex.step = op
		b.sendTracking(dutyExchange, ex)
	case opStmtSchema:
		k := s.stmt.key.schema
		if k == "" || k == b.state.schema {
			return false
		}
		s.pl.stats.StateReplays.Add(1)
		ex.step = op
		b.sendInitDB(ex, k)
	case opPrepare:
		ex.step = op
		b.sendPrepare(ex, s.stmt.key.sql)
	case opSchema:
		if s.st.schema == "" || s.st.schema == b.state.schema {
			return false
		}
		s.pl.stats.StateReplays.Add(1)
		ex.step = op
		b.sendInitDB(ex, s.st.schema)
	case opVars:
		if !s.st.varsDiffer(&b.state) || !b.sendReplaySET(ex, &s.st) {
			return false
		}
		s.pl.stats.StateReplays.Add(1)
		ex.step = op
	case opOption:
		if s.st.multiStmts == b.state.multiStmts || b.caps&mysqlwire.ClientMultiStatements == 0 {
			return false
		}
		s.pl.stats.StateReplays.Add(1)
		ex.step = op
		b.sendSetOption(ex, s.st.multiStmts == 1)
	case opLastID:
		if b.lastIDKnown && b.lastID == s.lastInsertID {
			return false
		}
		s.pl.stats.StateReplays.Add(1)
		ex.step = op
		b.sendRestoreLastID(ex, s.lastInsertID)
	case opBegin:
		if !s.beginPending {
			return false
		}
		ex.step = op
		b.sendBegin(ex)
	case opMain:
		ex.sendMain()
	}
	return true
}

// sendMain sends the client's request (renumbered from 0).
func (ex *exchange) sendMain() {
	s, b := ex.s, ex.b
	switch s.cmd {
	case mysqlwire.ComStmtExecute:
		ex.execute()
		return
	case mysqlwire.ComStmtFetch, mysqlwire.ComStmtReset:
		bs := b.stmtFor(s.stmt.key)
		if bs == nil {
			ex.fail(errStatementVanished)
			return
		}
		_, _ = mysqlwire.RewriteStatementID(s.req[mysqlwire.HeaderSize:], bs.id) // length checked on arrival
	}
	ex.writeMain(s.req)
}

// writeMain writes the command's packets (the client's, or the EXECUTE
// rebuilt with parameter types) and starts relaying its response.
func (ex *exchange) writeMain(pkts []byte) {
	s, b := ex.s, ex.b
	ex.step = opMain
	if ex.rider {
		// The backend starts tracking its response when those before
		// it are read (pipeNext); the rider never held its client over
		// the high-water mark (tryRide).
		ex.accounted = false
		renumber(pkts, 0)
		s.pl.stats.Questions.Add(1)
		s.pl.stats.BackendBytesOut.Add(uint64(len(pkts)))
		b.c().Write(pkts)
		return
	}
	if s.c.OverHighWater() {
		// The client has not taken the last response yet (it pipelined
		// this command): no OnHighWater will come to pause this one.
		b.pauseForClient()
	}
	ex.accounted = s.accountsForChanges() && !b.withheld
	if err := b.startMain(ex, s.cmd); err != nil {
		ex.fail(errUnknownCommand)
		return
	}
	renumber(pkts, 0)
	s.pl.stats.Questions.Add(1)
	s.pl.stats.BackendBytesOut.Add(uint64(len(pkts)))
	b.c().Write(pkts)
	if s.p.cfg.PipelineDepth > 0 && ex.batchEnd == ex.batchAt {
		// Only with nothing of a batch ahead of the command: riders are
		// matched against b.state, which the replays written ahead of it
		// have not changed yet (their responses update it), and a
		// replay's response would overwrite the READ ONLY a rider's SET
		// records there; nextInBatch opens it once they have answered.
		b.openPipe(ex)
	}
}

// fail answers the command with one of the proxy's errors; the backend,
// whose state is what it was, goes back as after any command.
func (ex *exchange) fail(e proxyErr) {
	ex.end()
	ex.s.writeERR(e)
	ex.s.finishCommand()
}

// end closes the exchange: nothing of it is in flight any more. Responses
// of a batch still to come are the backend's to read and drop; it is
// reset after (needsReset), since the operations that ran after a failed
// one left it in a state nobody follows.
func (ex *exchange) end() {
	if b := ex.b; b != nil && b.ex == ex {
		b.endExchange()
		if ex.head < ex.batchEnd {
			var cmds [numOps - 1]mysqlwire.Command
			for i, op := range ex.plan[ex.head:ex.batchEnd] {
				cmds[i] = ex.batchCmd(op)
			}
			b.drainResponses(cmds[:ex.batchEnd-ex.head])
			b.noteUnknown()
		}
	}
	ex.b = nil
	ex.step = opNone
	ex.n, ex.at = 0, 0
	ex.batchAt, ex.head, ex.batchEnd = 0, 0, 0
	ex.rider = false
}

// renumber rewrites the sequence ids of consecutive packets starting at seq
// and returns the next one.
func renumber(pkts []byte, seq uint8) uint8 {
	for off := 0; off+mysqlwire.HeaderSize <= len(pkts); {
		n, _, _ := mysqlwire.PeekHeader(pkts[off:])
		pkts[off+3] = seq
		seq++
		off += mysqlwire.HeaderSize + n
	}
	return seq
}

// relay copies one backend packet to the client with the client's
// sequence. Every packet of every response passes here and nowhere else,
// which makes it the seam for rewriting packets on their way to the
// client (OK's affected rows under CLIENT_FOUND_ROWS, EOF for a client
// with CLIENT_DEPRECATE_EOF): the tracker has classified the packet
// (tracker.LastKind) by the time it arrives.
func (ex *exchange) relay(raw []byte) []byte {
	s := ex.s
	dst := s.c.Reserve(len(raw))
	copy(dst, raw)
	s.pl.relayedOut += uint64(len(raw)) // published once per backend read (backend.Data)
	dst[3] = s.nextRespSeq()
	ex.relayed = true
	return dst
}

// relayColumnDef relays a column or parameter definition that cannot go
// as it is: to a client that negotiated MariaDB's extended type metadata
// otherwise than the backend (the backend's metadata cut out, or empty
// metadata put in), or of a column whose name holds the text that stands
// for CONNECTION_ID() in a rewritten statement (named after the function
// again, as the server names a column after the expression's text). A
// definition is a few hundred bytes: always one packet.
func (ex *exchange) relayColumnDef(raw, payload []byte, rename bool) []byte {
	s, b := ex.s, ex.b
	backendExt := b.caps&mysqlwire.MariaDBClientExtendedTypeInfo != 0
	sp, err := mysqlwire.ParseColumnSpans(payload, backendExt)
	if err != nil || len(raw) != mysqlwire.HeaderSize+len(payload) {
		b.abandon(fmt.Errorf("%w: column definition: %v", errBackendProtocol, err))
		return nil
	}
	out, at := mysqlwire.AppendHeader(s.scratch[:0])
	out = append(out, payload[:sp.NameAt]...)
	name, _, _, _ := mysqlwire.ReadLenEncString(payload[sp.NameAt:sp.NameEnd])
	var prefixBuf [32]byte
	prefix := appendConnIDPrefix(prefixBuf[:0], s.id)
	if rename && bytes.Contains(name, prefix) {
		// Each CAST(id/*call*/ AS UNSIGNED) becomes call again.
		var nameBuf [256]byte
		renamed := nameBuf[:0]
		for {
			i := bytes.Index(name, prefix)
			j := -1
			if i >= 0 {
				j = bytes.Index(name[i+len(prefix):], []byte(connIDSuffix))
			}
			if j < 0 {
				break
			}
			call := name[i+len(prefix) : i+len(prefix)+j]
			renamed = append(append(renamed, name[:i]...), call...)
			name = name[i+len(prefix)+j+len(connIDSuffix):]
		}
		renamed = append(renamed, name...)
		out = mysqlwire.AppendLenEncString(out, renamed)
	} else {
		out = append(out, payload[sp.NameAt:sp.NameEnd]...)
	}
	out = append(out, payload[sp.NameEnd:sp.ExtAt]...)
	if s.extTypeInfo() {
		if backendExt {
			out = append(out, payload[sp.ExtAt:sp.ExtEnd]...)
		} else {
			out = append(out, 0) // an empty length-encoded string
		}
	}
	out = append(out, payload[sp.ExtEnd:]...)
	out, _ = mysqlwire.FinishPacket(out, at, s.nextRespSeq())
	s.scratch = out[:0]
	dst := s.c.Reserve(len(out))
	copy(dst, out)
	s.pl.relayedOut += uint64(len(dst))
	ex.relayed = true
	return dst
}

// relayOK relays an OK packet of a backend that tracks session state, or
// to a client that asked for CLIENT_SESSION_TRACK: the packet is written
// again without the server's report (which is about the backend's session,
// the proxy's own settings and replays included, and the proxy's
// business) and without SERVER_SESSION_STATE_CHANGED, unless the client
// tracks and the command changed something the client's session tracks
// (clientSessionState). The report is noted first.
func (ex *exchange) relayOK(payload []byte) {
	s, b := ex.s, ex.b
	ok, err := mysqlwire.ParseOK(payload, b.caps)
	if err != nil {
		// The tracker parsed it already; only a protocol slip gets here.
		b.abandon(fmt.Errorf("%w: %v", errBackendProtocol, err))
		return
	}
	var state []byte
	if b.caps&mysqlwire.ClientSessionTrack != 0 {
		s.noteServerState(b, &ok, ex.accounted)
		if s.caps&mysqlwire.ClientSessionTrack != 0 && ok.Status&mysqlwire.StatusSessionStateChanged != 0 {
			state = clientSessionState(s.pl.stateScratch[:0], ok.SessionState)
			s.pl.stateScratch = state[:0]
		}
	}
	ok.Status &^= mysqlwire.StatusSessionStateChanged
	ok.SessionState = state
	if len(state) > 0 {
		ok.Status |= mysqlwire.StatusSessionStateChanged
	}
	// Written in the session-tracking layout with no state: the info text
	// length-prefixed, which is what MariaDB sends every client, with or
	// without CLIENT_SESSION_TRACK.
	out, _ := mysqlwire.AppendOK(s.scratch[:0], s.nextRespSeq(), s.caps|mysqlwire.ClientSessionTrack, ok)
	s.scratch = out[:0]
	s.c.Write(out)
	s.pl.relayedOut += uint64(len(out))
	ex.relayed = true
}

// clearStateChanged notes an EOF packet's SERVER_SESSION_STATE_CHANGED (the
// report is withheld until the next OK packet) and clears the flag in the
// packet, which is relayed as it is otherwise. Outside a transaction the
// change is the session's (a stored function in a SELECT, which may have
// set a user variable: MariaDB flags every stored function call), so it
// pins the session as a reported change would: resetting the backend after
// the statement would lose the change to the session itself. In a
// transaction the flag also stands for the transaction's own state; the
// transaction pins the session, and the OK that ends it carries the report
// (noteServerState).
func (ex *exchange) clearStateChanged(raw, payload []byte) {
	if len(payload) < 5 {
		return
	}
	at := mysqlwire.HeaderSize + 3 // header, warnings (2 bytes) after 0xFE
	status := mysqlwire.StatusFlags(raw[at]) | mysqlwire.StatusFlags(raw[at+1])<<8
	if status&mysqlwire.StatusSessionStateChanged == 0 {
		return
	}
	ex.b.noteWithheld()
	if s := ex.s; !ex.accounted && status&mysqlwire.StatusInTrans == 0 && s.pins&stickyPins == 0 {
		s.pin(PinServerState)
	}
	status &^= mysqlwire.StatusSessionStateChanged
	raw[at], raw[at+1] = byte(status), byte(status>>8)
}

// onPacket handles a packet of the response to the current step.
func (ex *exchange) onPacket(raw, payload []byte) {
	b, s := ex.b, ex.s
	prog, err := b.tracker.Feed(payload)
	if err != nil {
		s.p.logf("backend %d: %v", b.pb.Index(), err)
		b.abandon(fmt.Errorf("%w: %v", errBackendProtocol, err))
		return
	}
	if ex.step == opLastIDProbe {
		ex.onProbePacket(payload, prog)
		return
	}
	if ex.step != opMain {
		ex.onSyncPacket(raw, prog)
		return
	}
	if s.cmd == mysqlwire.ComStmtPrepare && ex.retryPrepareAfter1461(prog) {
		return
	}
	var dst []byte
	switch b.tracker.LastKind() {
	case mysqlwire.KindOK:
		if (b.caps|s.caps)&mysqlwire.ClientSessionTrack != 0 {
			ex.relayOK(payload)
			break
		}
		dst = ex.relay(raw)
	case mysqlwire.KindEOF:
		if b.caps&mysqlwire.ClientSessionTrack != 0 {
			ex.clearStateChanged(raw, payload)
		}
		dst = ex.relay(raw)
	case mysqlwire.KindColumnDef, mysqlwire.KindParamDef:
		rename := s.renamesConnID()
		if !rename && (b.caps^s.caps)&mysqlwire.MariaDBClientExtendedTypeInfo == 0 {
			dst = ex.relay(raw)
			break
		}
		if dst = ex.relayColumnDef(raw, payload, rename); dst == nil {
			return // abandoned
		}
	default:
		dst = ex.relay(raw)
	}
	if s.cmd == mysqlwire.ComStmtPrepare && b.tracker.LastKind() == mysqlwire.KindPrepareOK {
		s.onPrepareOKRelayed(dst)
	} else if s.capture != nil {
		if dst == nil {
			dst = raw
		}
		s.captured(dst) // as relayed: in the client's column definition layout
	}
	switch prog {
	case mysqlwire.ClientTurn:
		if !b.tracker.LocalInfile() || s.qi.kind != stmtLoadLocal || s.cmd != mysqlwire.ComQuery {
			// A file request the client never asked for (a rogue or
			// confused server) is refused by dropping the backend.
			b.abandon(errBackendProtocol)
			return
		}
		ex.bSeq = raw[3] + 1
		b.pb.Answered() // the client's turn: the file's contents
		s.startInfile()
	case mysqlwire.Complete:
		if s.writesLastID() {
			if _, _, failed := b.tracker.Err(); failed {
				b.forgetLastID() // a failed CALL may have inserted first
			} else if ex.lastIDAmbiguous() {
				// Ask before anyone else runs here; commandDone reads
				// the main response's tracker, kept aside meanwhile.
				b.mainTracker = b.tracker
				ex.step = opLastIDProbe
				b.probed, b.probeOK = 0, false
				b.sendLastIDProbe(ex)
				return
			}
			// Otherwise it left the session's value, put there first.
		}
		ex.step = opNone
		b.endExchange()
		s.commandDone(b)
	}
}

// lastIDAmbiguous reports whether the statement just completed, which may
// have changed LAST_INSERT_ID() and ran with the session's value on the
// backend, leaves a value the proxy must ask for. A plain INSERT, REPLACE
// or LOAD whose OK reports no id, or the session's value, left it as it
// was (nothing generated, or the same number); one that reports another
// id generated it or named it explicitly, which only the server can tell.
// LAST_INSERT_ID(expr), CALL, EXECUTE and multi-statements always ask.
func (ex *exchange) lastIDAmbiguous() bool {
	s, b := ex.s, ex.b
	if s.readsLastID() || s.cmd == mysqlwire.ComQuery && s.qi.feats&featMulti != 0 {
		return true
	}
	id := b.tracker.LastInsertID()
	return id != 0 && id != s.lastInsertID
}

// onProbePacket reads the answer to lastIDProbe: the session's
// LAST_INSERT_ID() as the server keeps it. Then the command is done.
func (ex *exchange) onProbePacket(payload []byte, prog mysqlwire.Progress) {
	b, s := ex.b, ex.s
	if b.tracker.LastKind() == mysqlwire.KindRow {
		v, null, _, err := mysqlwire.ReadLenEncString(payload)
		b.probed, b.probeOK = parseUint(v)
		b.probeOK = b.probeOK && !null && err == nil
	}
	switch prog {
	case mysqlwire.Complete:
	case mysqlwire.NeedMore:
		return
	default:
		b.abandon(errBackendProtocol)
		return
	}
	if _, _, failed := b.tracker.Err(); failed || !b.probeOK {
		b.forgetLastID() // the session keeps the value it had
	} else {
		s.lastInsertID = b.probed
		b.noteLastID(b.probed)
	}
	b.tracker = b.mainTracker
	ex.step = opNone
	b.endExchange()
	s.commandDone(b)
}

// parseUint parses a decimal number without allocating.
func parseUint(d []byte) (uint64, bool) {
	if len(d) == 0 || len(d) > 20 {
		return 0, false
	}
	var v uint64
	for _, c := range d {
		if c < '0' || c > '9' {
			return 0, false
		}
		n := v*10 + uint64(c-'0')
		if n/10 != v {
			return 0, false // overflow
		}
		v = n
	}
	return v, true
}

// relayInfile passes the client's LOCAL INFILE packets to the backend.
func (ex *exchange) relayInfile(raw, payload []byte) {
	b, s := ex.b, ex.s
	if b == nil {
		return
	}
	dst := b.c().Reserve(len(raw))
	copy(dst, raw)
	s.pl.stats.BackendBytesOut.Add(uint64(len(raw)))
	ex.bSeq = renumber(dst, ex.bSeq)
	s.respSeq = raw[3] + 1 // (single packets; a split one renumbers consecutively)
	if len(payload) == 0 {
		b.pb.Awaiting()
		s.endInfile()
	}
}

func (ex *exchange) onSyncPacket(raw []byte, prog mysqlwire.Progress) {
	b, s := ex.b, ex.s
	if prog != mysqlwire.Complete {
		if ex.step == opPrepare {
			return // parameter and column definitions
		}
		b.abandon(errBackendProtocol)
		return
	}
	if ex.step == opPrepare && ex.retryPrepareAfter1461(prog) {
		return
	}
	if code, _, failed := b.tracker.Err(); failed && ex.step == opTrack {
		// An old server: try less tracking, or none (5.5 mode for this
		// backend); the client's command runs either way.
		if b.trackRefused(code) {
			b.sendTracking(dutyExchange, ex)
			return
		}
		ex.synced()
		return
	} else if failed {
		s.pl.stats.Errors[errorSlot(code)].Add(1)
		ex.relay(raw)
		step := ex.step
		ex.end()
		if step == opBegin {
			// The server started no transaction: the session's stays
			// deferred, and BEGIN goes ahead of its next statement (a
			// write must never run outside it). The backend's state is
			// what it was.
			b.noteDiag(s.id)
			s.finishCommand()
			return
		}
		if code == mysqlwire.ErBadDBError && (step == opSchema || step == opStmtSchema) {
			// The schema is gone (or never was: a login names it
			// unchecked). The server keeps the connection and its
			// previous schema, so the backend's state is still known
			// and it stays. The session is left with no schema, as a
			// server session whose schema was dropped; the answer is
			// cached so logins naming it are refused without a backend.
			b.noteDiag(s.id)
			if step == opSchema {
				s.pl.noteSchemaMissing(s.st.schema)
				s.st.schema = ""
			}
			s.finishCommand()
			return
		}
		if step != opPrepare {
			// The backend may be half way to the session's state.
			s.dropBackend(b)
			b.abandon(errUnknownState)
			if s.serverPins() != 0 {
				s.c.Close()
				return
			}
		}
		s.finishCommand()
		return
	}
	if b.tracker.Warnings() > 0 {
		b.noteDiag(proxyDiag)
	}
	switch ex.step {
	case opClearDiag:
		b.noteReset()
	case opTrack:
		b.noteTracking()
	case opStmtSchema:
		b.noteSchema(s.stmt.key.schema)
	case opSchema:
		b.noteSchema(s.st.schema)
	case opVars:
		b.noteVars(&s.st)
	case opOption:
		b.noteMultiStmts(s.st.multiStmts)
	case opLastID:
		b.noteLastID(s.lastInsertID)
	case opBegin:
		s.beginPending = false // a transaction on the server now: PinTransaction stands for it
	case opPrepare:
		id, _, _, _ := b.tracker.Prepared()
		b.addStmt(s.stmt.key, id)
		s.pl.stats.BackendPrepares.Add(1)
	}
	ex.synced()
}

// identityRefused: the server refused the COM_CHANGE_USER to the
// session's account (opIdentity; errPayload is its ERR, nil when the proxy
// could not answer the server's challenge). The client gets that ERR and
// is disconnected, as a direct login would be refused; the caller closes
// the backend.
func (ex *exchange) identityRefused(errPayload []byte, reason string) {
	s, b := ex.s, ex.b
	ex.end()
	s.dropBackend(b)
	s.ident().refusedAt.Store(monoNow())
	if errPayload != nil {
		e, _ := mysqlwire.ParseERR(errPayload)
		s.pl.stats.Errors[errorSlot(e.Code)].Add(1)
		pkt, _ := mysqlwire.AppendPacket(s.scratch[:0], s.nextRespSeq(), errPayload)
		s.scratch = pkt[:0]
		s.pl.stats.ClientBytesOut.Add(uint64(len(pkt)))
		s.c.Write(pkt)
	} else {
		s.writeERR(errIdentityUnusable, s.ident().name, reason)
	}
	s.c.Close()
}

// synced: the step's response was OK (or, for opNoSchema, the
// COM_CHANGE_USER's login finished): on to the next operation.
func (ex *exchange) synced() {
	if ex.head < ex.batchEnd {
		ex.nextInBatch() // already sent
		return
	}
	ex.step = opNone
	ex.at++
	ex.run()
}

// clientTrackedVariables are the system variables a session reports changes
// of by default (MariaDB 10.11's session_track_system_variables; MySQL 8's
// is the same less redirect_url).
// Upper case, for equalFoldASCII.
var clientTrackedVariables = [...]string{
	"AUTOCOMMIT", "CHARACTER_SET_CLIENT", "CHARACTER_SET_CONNECTION", "CHARACTER_SET_RESULTS",
	"REDIRECT_URL", "TIME_ZONE",
}

// clientSessionState appends to dst what a client session with the
// server's default tracking (session_track_schema ON,
// session_track_system_variables as clientTrackedVariables,
// session_track_state_change and session_track_transaction_info OFF) is
// told of the changes a command made, taken from a backend's report for
// that command: its tracked variables, in the list's order (the server's
// own order follows a hash table and differs between server processes),
// then its schema; never the state-change flag or the
// transaction characteristics the proxy asks for its own use. The
// command's report holds only what it changed: the proxy's replays run as
// commands of their own before it.
func clientSessionState(dst, report []byte) []byte {
	for _, v := range clientTrackedVariables {
		it := mysqlwire.NewSessionStateIter(report)
		for e, more := it.Next(); more; e, more = it.Next() {
			if e.Type != mysqlwire.SessionTrackSystemVariables {
				continue
			}
			if name, _, err := e.SystemVariable(); err == nil && equalFoldASCII(name, v) {
				dst = mysqlwire.AppendSessionStateEntry(dst, e.Type, e.Data)
			}
		}
	}
	it := mysqlwire.NewSessionStateIter(report)
	for e, more := it.Next(); more; e, more = it.Next() {
		if e.Type == mysqlwire.SessionTrackSchema {
			dst = mysqlwire.AppendSessionStateEntry(dst, e.Type, e.Data)
		}
	}
	return dst
}
