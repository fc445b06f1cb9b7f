package mysqlproxy

import (
	"errors"

	"github.com/scalestack/scalestack/mysqlwire"
	"github.com/scalestack/scalestack/pool"
)

// Pipelining (Config.PipelineDepth = K > 0). When a session's command would
// wait for a backend (none idle on its loop), is pipelineSafe, and a
// backend of its loop is running such a command for a session in the same
// state (so the exchange would plan nothing but opMain), the command is
// written to that backend at once, behind what it runs: the session rides
// it. The backend keeps a FIFO of the exchanges written after the one in
// flight (b.ex); its response parser finishes one response, then starts
// the next entry's (pipeNext), and each response is relayed to its own
// session. A session still has one command in flight; only a backend has
// several.
//
// The pool knows nothing of it: the backend stays granted to the session
// that was given it (the owner). When the owner's command is done while
// riders are queued, the owner lets go of the backend (s.b = nil) and the
// backend goes back to the pool (Release, or Reset if it needs one) only
// once the last rider's response is read (finishPipe).
//
// Server-side enforcement: the first rider's write starts with SET SESSION
// TRANSACTION READ ONLY, recorded in the backend's known state
// (varTxReadOnly = 1), so that whatever the allowlist misjudged fails with
// 1792 instead of writing, and a later session that is not read-only gets
// @@session.tx_read_only=DEFAULT replayed by its exchange's opVars.
//
// Bounds: at most K commands in flight on a backend (the owner's
// included); no rider joins a backend whose response being read has been
// awaited longer than Config.PipelineMaxWait (a long statement: riders
// would queue behind it), or whose reading is paused for a slow client, or whose riders' clients are over their high-water mark, so
// what is buffered for slow readers is at most K times a client's
// high-water mark and one slow client blocks the others no longer than
// the client write timeout, after which its response is read and dropped
// (an orphan) and the others go on. Once a backend has taken K riders
// while others wait for a backend, or 4K riders in any case, it takes no
// more until it has been given back, so queued commands (writes among
// them) are not starved.
//
// A backend that breaks mid-pipeline: the owner is told as today
// (session.backendLost); a rider whose response had begun is closed, as
// a session whose half-relayed response broke is; one whose response had
// not begun gets ERR 2013-like errBackendLost (nothing is re-run).

// pipeEntry is a response the backend still owes after the one being
// read: a rider's, the SET READ ONLY's, or an orphan's (its session left:
// the response is read and dropped).
type pipeEntry struct {
	ex    *exchange // nil: SET READ ONLY, or an orphan
	cmd   mysqlwire.Command
	setRO bool
}

// pipeAfter is what a backend does once its last rider's response is read.
type pipeAfter uint8

const (
	afterHold    pipeAfter = iota // the owner still holds it
	afterRelease                  // back to the pool
	afterReset                    // reset, then back to the pool
)

// pipeState is a backend's pipeline. Only its backend's loop touches it.
type pipeState struct {
	q []pipeEntry
	// piping: riders joined since the owner was granted the backend.
	piping bool
	// open: it takes riders (listed in loop.pipes).
	open   bool
	loop   *proxyLoop
	tenant *pool.Tenant // the owner's: riders share its backend time
	riders int          // riders taken since it opened
	after  pipeAfter
	// since is when the response being read was first awaited (loop
	// time, Unix nanoseconds): the server has been running that
	// statement, or those before it, since then.
	since int64
}

// inFlight counts the commands the backend has in flight: the one being
// read and the riders behind it.
func (b *backend) pipeInFlight() int {
	n := 1
	for i := range b.pipe.q {
		if !b.pipe.q[i].setRO {
			n++
		}
	}
	return n
}

// openPipe lets riders join b, whose exchange ex has just written a
// pipeline-safe command for an unpinned session.
func (b *backend) openPipe(ex *exchange) {
	s := ex.s
	if b.pipe.open || s.pins != 0 || !b.tracks() || !b.tracking || b.needsReset() ||
		b.killPending != nil || b.pausedForClient || !s.pipelineSafe() {
		return
	}
	b.pipe.open = true
	b.pipe.loop = s.pl
	b.pipe.tenant = s.wait.Tenant
	b.pipe.riders = 0
	b.pipe.since = s.pl.loop.Now().UnixNano()
	s.pl.pipes = append(s.pl.pipes, b)
	s.pl.feedPipe(b)
}

// closePipe takes b off its loop's list: no more riders.
func (b *backend) closePipe() {
	if !b.pipe.open {
		return
	}
	b.pipe.open = false
	pl := b.pipe.loop
	for i, o := range pl.pipes {
		if o == b {
			last := len(pl.pipes) - 1
			pl.pipes[i] = pl.pipes[last]
			pl.pipes[last] = nil
			pl.pipes = pl.pipes[:last]
			break
		}
	}
}

// pipelineSafe reports whether the command being served may ride a
// backend (pipelineSafe on its text).
func (s *session) pipelineSafe() bool {
	switch s.cmd {
	case mysqlwire.ComQuery:
		if f := s.p.cfg.PipelineAllow; f != nil && f(s.payload[1:]) {
			return true
		}
		return s.queryReadOnly().pipelineSafe()
	case mysqlwire.ComStmtExecute:
		return s.stmt != nil && s.stmt.pipeSafe && !s.stmt.wantCursor && !s.stmt.longTooBig
	}
	return false
}

// tryRide writes the session's command to a busy backend of its loop that
// can carry it, and reports whether it did; false: it waits for a backend
// as usual, and watch says whether it may ride one later (watchPipes).
func (s *session) tryRide() (rode, watch bool) {
	k := s.p.cfg.PipelineDepth
	if k <= 0 || len(s.pl.lp.Idle()) > 0 || s.pins != 0 || s.c.OverHighWater() || !s.pipelineSafe() {
		return false, false
	}
	for _, b := range s.pl.pipes {
		if b.canCarry(s, k) {
			b.carry(s, k)
			return true, false
		}
	}
	return false, true
}

// pipeWaiter is a session whose pipeline-safe command waits for a backend
// (queued in the pool) and may ride one that opens or makes room first.
type pipeWaiter struct {
	s   *session
	cmd int64 // the command's cmdStart: a stale entry is told by it
}

// maxPipeWaiters bounds a loop's list of pipeWaiters (a session beyond
// it just waits for a backend), and pipeWaitersLooked how many of its
// first entries a backend with room looks at: the entries are not
// removed when their command is served otherwise, only when looked at.
const (
	maxPipeWaiters    = 4096
	pipeWaitersLooked = 64
)

// pipeWaiters is a loop's FIFO of pipeWaiter: buf[head:] are the entries.
type pipeWaiters struct {
	buf  []pipeWaiter
	head int
}

func (q *pipeWaiters) len() int { return len(q.buf) - q.head }

func (q *pipeWaiters) push(w pipeWaiter) {
	if q.head > 0 && len(q.buf) == cap(q.buf) {
		n := copy(q.buf, q.buf[q.head:])
		clear(q.buf[n:])
		q.buf, q.head = q.buf[:n], 0
	}
	q.buf = append(q.buf, w)
}

// watchPipes lists s, whose command has just been queued, as a candidate
// rider.
func (s *session) watchPipes() {
	if s.phase == sBusy && s.b == nil && s.ex.b == nil && s.pl.pipeWaiters.len() < maxPipeWaiters {
		s.pl.pipeWaiters.push(pipeWaiter{s: s, cmd: s.cmdStart})
	}
}

// feedPipe lets queued pipeline-safe commands ride b while it takes them,
// first come first served among the first pipeWaitersLooked entries
// (entries in another state are passed over; stale ones are dropped).
func (pl *proxyLoop) feedPipe(b *backend) {
	k := pl.p.cfg.PipelineDepth
	q := &pl.pipeWaiters
	n := min(q.len(), pipeWaitersLooked)
	w := q.buf[q.head : q.head+n]
	dropped := 0
	for i := range w {
		s := w[i].s
		switch {
		case s.phase != sBusy || s.cmdStart != w[i].cmd || s.b != nil || s.ex.b != nil:
			// Served, refused or gone.
		case b.pipe.open && b.canCarry(s, k):
			pl.lp.Leave(&s.wait)
			b.carry(s, k)
		default:
			continue
		}
		w[i] = pipeWaiter{}
		dropped++
	}
	q.compact(n, dropped)
}

// compact removes the dropped entries (zeroed) among the first n: the
// ones kept move to the end of that prefix, in order, and the head moves
// past the dropped ones.
func (q *pipeWaiters) compact(n, dropped int) {
	if dropped == 0 {
		return
	}
	w := q.buf[q.head : q.head+n]
	at := n
	for i := n - 1; i >= 0; i-- {
		if w[i].s != nil {
			if at--; at != i {
				w[at], w[i] = w[i], pipeWaiter{}
			}
		}
	}
	q.head += dropped
	if q.head == len(q.buf) {
		q.buf, q.head = q.buf[:0], 0
	}
}

// canCarry reports whether s's command can ride b: b runs pipeline-safe
// commands for sessions in s's state (makePlan would plan only opMain for
// s, the read-only flag aside) with fewer than k in flight, and nothing
// makes it wait.
func (b *backend) canCarry(s *session, k int) bool {
	if !b.pipe.open || !b.loggedIn() || b.duty != dutyExchange && b.duty != dutyPipeSet && b.duty != dutyPipeDrain ||
		b.pausedForClient || b.needsReset() || b.killPending != nil || b.pipeInFlight() >= k {
		return false
	}
	if s.pl.loop.Now().UnixNano()-b.pipe.since > int64(s.p.cfg.PipelineMaxWait) {
		// A long statement runs there: riders would wait for it.
		return false
	}
	if b.pb.Class() != s.wait.Class || b.ident.id != s.ident().id || b.pipe.tenant != s.wait.Tenant {
		return false
	}
	if s.st.schema != b.state.schema || s.st.names != b.state.names || s.st.multiStmts != b.state.multiStmts ||
		!sameVarsBut(&s.st, &b.state, varTxReadOnly) {
		return false
	}
	if s.cmd == mysqlwire.ComStmtExecute && b.stmts[s.stmt.key] == nil {
		return false // it would need opPrepare
	}
	for i := range b.pipe.q {
		if ex := b.pipe.q[i].ex; ex != nil && ex.s.c.OverHighWater() {
			return false // a slow reader: do not buffer more behind it
		}
	}
	return b.ex == nil || !b.ex.s.c.OverHighWater()
}

// sameVarsBut reports whether a and b have every tracked variable but skip
// at the same value.
func sameVarsBut(a, b *sessionState, skip varID) bool {
	if a.sameVars(b) {
		return true
	}
	for v := varID(0); v < numVars; v++ {
		if v != skip && a.varValue(v) != b.varValue(v) {
			return false
		}
	}
	return true
}

// maxRidersPerTurn*K is the most riders a backend takes between its grant
// and its release, whatever waits.
const maxRidersPerTurn = 4

// readOnlySET puts a backend's session in read-only mode before its first
// rider (see the top of this file).
const readOnlySET = "SET SESSION TRANSACTION READ ONLY"

// carry writes s's command to b behind what b runs.
func (b *backend) carry(s *session, k int) {
	if b.state.varValue(varTxReadOnly) != "1" {
		p := append(append(b.scratch[:0], byte(mysqlwire.ComQuery)), readOnlySET...)
		b.scratch = p[:0]
		b.writePacket(p)
		b.pipe.q = append(b.pipe.q, pipeEntry{cmd: mysqlwire.ComQuery, setRO: true})
		b.state.setVar(varTxReadOnly, "1")
	}
	b.pipe.q = append(b.pipe.q, pipeEntry{ex: &s.ex, cmd: s.cmd})
	b.pipe.piping = true
	b.pipe.riders++
	if b.pipe.riders >= maxRidersPerTurn*k || b.pipe.riders >= k-1 && s.pl.lp.Waiting() > s.pl.pipeWaiters.len() {
		// Commands that cannot ride wait for a backend (the list may
		// hold stale entries, hence the fixed bound too): this one goes
		// back to the pool once drained rather than ride on for ever.
		b.closePipe()
	}
	s.pl.stats.Pipelined.Add(1)
	s.pl.stats.observePipelineDepth(b.pipeInFlight())
	s.ex.ride(b)
}

// ride sends the session's command on b, whose responses before it are
// still to come: the backend starts reading this one's when they are
// (pipeNext).
func (ex *exchange) ride(b *backend) {
	ex.b = b
	ex.rider = true
	ex.relayed = false
	ex.stmtRetried = false
	ex.plan[0] = opMain
	ex.n, ex.at = 1, 0
	ex.sendMain()
}

// pipeNext runs when the backend has read a whole response and riders
// were written: it starts on the next entry's response, or, when there is
// none, ends the pipeline.
func (b *backend) pipeNext() {
	if len(b.pipe.q) == 0 {
		b.finishPipe()
		return
	}
	e := b.pipe.q[0]
	n := copy(b.pipe.q, b.pipe.q[1:])
	b.pipe.q[n] = pipeEntry{}
	b.pipe.q = b.pipe.q[:n]
	if _, err := b.tracker.Start(e.cmd, b.caps); err != nil {
		b.abandon(err)
		return
	}
	b.pb.Awaiting()
	b.pipe.since = b.pipe.loop.loop.Now().UnixNano()
	switch {
	case e.setRO:
		b.duty, b.ex = dutyPipeSet, nil
	case e.ex == nil:
		b.duty, b.ex = dutyPipeDrain, nil
	default:
		b.duty, b.ex = dutyExchange, e.ex
	}
	if b.pipe.open && b.pipe.loop.pipeWaiters.len() > 0 {
		b.pipe.loop.feedPipe(b) // a response is read: room for one more
	}
}

// onPipePacket reads the response to SET READ ONLY, or an orphan's.
func (b *backend) onPipePacket(payload []byte) {
	if !b.responseDone(payload) {
		return
	}
	_, _, failed := b.tracker.Err()
	if b.duty == dutyPipeSet && failed {
		// The riders behind it would run read-write.
		b.abandon(errors.New("mysqlproxy: SET SESSION TRANSACTION READ ONLY refused"))
		return
	}
	if failed || b.tracker.Warnings() > 0 {
		b.noteDiag(proxyDiag)
	}
	if b.duty == dutyPipeDrain {
		if status, seen := b.tracker.Status(); seen && status&mysqlwire.StatusSessionStateChanged != 0 {
			b.noteUnknown() // whatever it changed is nobody's now
		}
	}
	b.duty = dutyNone
}

// finishPipe: the last rider's response is read; the backend goes where
// its owner left it.
func (b *backend) finishPipe() {
	b.pipe.piping = false
	b.closePipe()
	after := b.pipe.after
	b.pipe.after = afterHold
	lp := b.loop().lp
	switch after {
	case afterRelease:
		b.resumeIfPaused()
		if b.needsReset() {
			lp.Reset(b.pb)
			return
		}
		lp.Release(b.pb)
	case afterReset:
		b.resumeIfPaused()
		lp.Reset(b.pb)
	default:
		// The owner's command always ends before its riders' (it was
		// written first) and lets go of the backend (finishOnPipe):
		// only a slip gets here, and nobody knows the backend's state.
		b.abandon(errUnknownState)
	}
}

// failPipe: the backend's connection is gone; every rider is told, and
// the backend takes no more.
func (b *backend) failPipe() {
	b.closePipe() // open with no rider yet, it must not outlive the connection
	if !b.pipe.piping {
		return
	}
	var lost []*session
	if b.ex != nil && b.ex.rider {
		lost = append(lost, b.ex.s)
	}
	for _, e := range b.pipe.q {
		if e.ex != nil {
			lost = append(lost, e.ex.s)
		}
	}
	clear(b.pipe.q)
	b.pipe.q = b.pipe.q[:0]
	b.pipe.piping = false
	b.closePipe()
	b.pipe.after = afterHold
	b.ex = nil
	for _, s := range lost {
		s.riderLost()
	}
}

// riderLost: the backend the session's command rode broke. A response
// partly relayed cannot be finished: the client is closed; otherwise it
// gets the error a session whose backend broke gets.
func (s *session) riderLost() {
	relayed := s.ex.relayed
	s.ex.end()
	if s.phase != sBusy {
		return
	}
	if relayed {
		s.c.Abort(errUnknownState)
		return
	}
	s.writeERR(errBackendLost)
	s.finishCommand()
}

// orphan: the session whose exchange rides b (or owns b's pipeline) left;
// its response is read and dropped.
func (b *backend) orphan(ex *exchange) {
	if b.ex == ex {
		b.ex = nil
		b.duty = dutyPipeDrain
		b.resumeIfPaused() // it may have been paused for that client
		return
	}
	for i := range b.pipe.q {
		if b.pipe.q[i].ex == ex {
			b.pipe.q[i].ex = nil
		}
	}
}

// finishOnPipe: the owner's command is done while riders are queued on
// its backend. It lets go of it: the pipeline gives it back once drained.
// A hold for diagnostics is not kept (riders' statements replace them).
// An owner that its own statement pinned (a stored function in a view
// changed session state: a plain SELECT pins on nothing else, since
// pipelines open only for unpinned sessions in autocommit) cannot keep
// that state on a backend that now serves others: the backend is reset
// once drained and the client is closed after its answer, as a pinned
// session whose backend broke would be. It reports whether the client was
// closed.
func (s *session) finishOnPipe(b *backend) bool {
	s.b = nil
	if s.pins == 0 && !b.needsReset() {
		b.pipe.after = afterRelease
		return false
	}
	b.noteUnknown()
	b.closePipe()
	b.pipe.after = afterReset
	if s.pins == 0 {
		return false
	}
	s.c.Close() // after the answer it has (its state is what is lost)
	return true
}

// rideDone: a rider's command is done. A rider that its own statement
// pinned (a stored function in a view changed session state) cannot keep
// that state, which is on a backend it does not hold: the backend is reset
// once drained and the client is closed after its answer, as a pinned
// session whose backend broke would be. It reports whether the client was
// closed.
func (s *session) rideDone(b *backend) bool {
	if s.pins == 0 && !b.needsReset() {
		return false
	}
	b.noteUnknown()
	b.closePipe()
	if s.pins == 0 {
		return false
	}
	s.c.Close() // after the answer it has (its state is what is lost)
	return true
}

// leavePipe: the session closes while its command rides a backend, or
// while it owns a backend with riders.
func (s *session) leavePipe(b *backend) {
	if s.ex.b == b && s.ex.inFlight() {
		b.orphan(&s.ex)
	}
	if s.ex.b == b {
		s.ex.end()
	}
	if s.b == b {
		s.b = nil
		b.closePipe()
		b.pipe.after = afterReset
	}
}

// feeding is the backend whose response is being relayed to the session's
// client now, if any.
func (s *session) feeding() *backend {
	if b := s.ex.b; b != nil && s.ex.rider {
		if b.ex == &s.ex {
			return b
		}
		return nil
	}
	if s.b != nil && s.ex.step == opMain {
		return s.b
	}
	return nil
}
