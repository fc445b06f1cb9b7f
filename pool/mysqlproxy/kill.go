package mysqlproxy

import (
	"strconv"

	"github.com/scalestack/scalestack/mysqlwire"
	"github.com/scalestack/scalestack/pool"
	"github.com/scalestack/scalestack/reactor"
)

// KILL QUERY (issue 16, item 9).
//
// KILL QUERY of a session cancels the statement it runs on a backend, as
// the server does: the session gets the server's ERR 1317 (70100) "Query
// execution was interrupted" and stays usable. The server's KILL must be
// sent on a connection of its own, and the proxy has exactly N: the kill
// waits for one of them like any command (a queryKill is a pool.Client on
// the target's loop) and sends KILL QUERY <the server thread id of the
// backend running the statement>.
//
// The server's KILL names a thread, not a statement, and the statement may
// end, and the backend go to another session, before the server acts on
// the kill. So the kill is sent only if, when its connection is granted,
// the target still runs the same command on the same backend, and that
// backend is not given back to the pool until the server has answered the
// KILL: the server sets the thread's kill flag before it answers, and a
// flag set while the thread sits between commands is cleared when its next
// command starts (MariaDB and MySQL both), so the next session's statement
// cannot be hit. MariaDB's KILL QUERY ID <query id> would need the running
// statement's query id, which the protocol never tells the client; holding
// the backend closes the race without it. What remains is what a direct
// connection has too: a pinned session keeps its backend, and its next
// statement can be the one interrupted if it starts before the kill lands.

// queryKill is one KILL QUERY in progress on the target's loop.
type queryKill struct {
	wait   pool.Waiter
	pl     *proxyLoop
	req    *killRequest
	target *session
	cmd    int64    // the target's command (its cmdStart) when asked
	victim *backend // the backend running it
	kb     *backend // the backend the KILL is sent on
}

// startQueryKill kills the statement t (a session of pl's loop) runs, or
// answers at once when it runs none.
func startQueryKill(pl *proxyLoop, t *session, req *killRequest) {
	vb := t.ex.b
	if vb == nil || t.ex.step != opMain || vb.killPending != nil || vb.pipe.piping {
		// With riders queued a KILL QUERY could hit the statement after
		// the target's: a pipelined statement is not killed.
		req.reply(pl) // nothing running (or already being killed): OK, as the server
		return
	}
	qk := &queryKill{pl: pl, req: req, target: t, cmd: t.cmdStart, victim: vb}
	qk.wait.Client = qk
	// The server lets an account kill its own threads: the KILL goes out
	// as the victim's account (a backend of it if one is idle).
	qk.wait.Class = vb.ident.class()
	vb.killPending = qk
	pl.lp.Acquire(&qk.wait)
}

// running reports whether the target still runs the command it ran when
// the kill was asked, on the same backend.
func (qk *queryKill) running() bool {
	t := qk.target
	return t.phase == sBusy && t.cmdStart == qk.cmd && t.ex.b == qk.victim && t.ex.step == opMain
}

// Granted implements pool.Client: the connection to send the KILL on.
func (qk *queryKill) Granted(pb *pool.Backend) {
	kb := qk.pl.p.backends[pb.Index()]
	if !qk.running() || kb == qk.victim {
		qk.pl.lp.Release(pb)
		qk.finish()
		return
	}
	qk.kb = kb
	if kb.ident.id != qk.victim.ident.id {
		kb.killer = qk
		qk.pl.stats.IdentitySwitches.Add(1)
		kb.changeUser(dutyKill, nil, qk.victim.ident) // then sendKillQuery (onAuthPacket)
		return
	}
	kb.sendKillQuery(qk, qk.victim.threadID)
}

// Refused implements pool.Client: no connection came in time.
func (qk *queryKill) Refused(error) {
	qk.req.failed = true
	qk.finish()
}

// Revoked implements pool.Client; a queryKill never keeps a backend.
func (qk *queryKill) Revoked(*pool.Backend) {}

// Lost implements pool.Client: the connection broke before the server
// answered.
func (qk *queryKill) Lost(*pool.Backend, error) {
	qk.kb = nil
	qk.req.failed = true
	qk.finish()
}

// killAnswered: the server answered the KILL on kb.
func (qk *queryKill) killAnswered() {
	kb := qk.kb
	qk.kb = nil
	qk.pl.lp.Release(kb.pb)
	qk.finish()
}

// finish gives back the victim's backend if it was held for the kill and
// answers the requester.
func (qk *queryKill) finish() {
	vb := qk.victim
	if vb.killPending == qk {
		vb.killPending = nil
		if vb.heldForKill {
			vb.heldForKill = false
			qk.pl.lp.Release(vb.pb)
		}
	}
	qk.req.reply(qk.pl)
}

// holdForKill reports whether b, which its session is done with, must wait
// for a KILL QUERY in flight against it before it goes back (the session
// forgets it; finish releases it).
func (b *backend) holdForKill() bool {
	if b.killPending == nil {
		return false
	}
	b.resumeIfPaused()
	b.heldForKill = true
	return true
}

// sendKillQuery sends KILL QUERY thread for qk; its answer goes to
// onKillPacket.
func (b *backend) sendKillQuery(qk *queryKill, thread uint32) {
	p := append(b.scratch[:0], byte(mysqlwire.ComQuery))
	p = append(p, "KILL QUERY "...)
	p = strconv.AppendUint(p, uint64(thread), 10)
	b.scratch = p[:0]
	b.killer = qk
	b.send(dutyKill, nil, p)
}

// onKillPacket reads the answer to a KILL QUERY (OK, or an ERR such as
// 1094 when the thread is gone: either way the kill is over).
func (b *backend) onKillPacket(payload []byte) {
	prog, err := b.tracker.Feed(payload)
	if err != nil {
		b.abandon(err)
		return
	}
	if prog != mysqlwire.Complete {
		b.abandon(errBackendProtocol)
		return
	}
	qk := b.killer
	b.killer = nil
	b.duty = dutyNone
	qk.killAnswered()
}

// reply answers the KILL's requester on its own loop, always through the
// mailbox (also from its own loop): the requester may be inside the
// command that asked.
func (req *killRequest) reply(pl *proxyLoop) {
	pl.loop.Post(req.p.loops[req.fromLoop].loop, reactor.Task{Fn: killAnswered, Arg: req})
}
