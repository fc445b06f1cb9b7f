package httpd

import (
	"errors"
	"time"

	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/httpwire"
	"github.com/scalestack/scalestack/reactor"
)

type phase uint8

const (
	phaseIdle   phase = iota // waiting for the first byte of a request
	phaseHead                // part of a request head has arrived
	phaseActive              // a request was dispatched: its body or response is in progress
)

type timerKind uint8

const (
	timerIdle timerKind = iota
	timerHead
	timerBody
	timerLinger
)

// lingerTime bounds how long a connection the server ends keeps reading,
// and dropping, what the client still sends. Closing a socket with unread
// input makes the kernel send a reset, which can destroy the response
// still in flight to the client (RFC 9112 section 9.6): the server shuts
// its sending side down first and closes once the client has too.
const lingerTime = 2 * time.Second

// connState is the conn.Handler of one HTTP connection; every field is
// touched only by the connection's loop.
type connState struct {
	srv *Server
	ls  *loopState
	c   *conn.Conn

	req        httpwire.Request
	body       httpwire.BodyReader
	bodyActive bool        // request body bytes still to decode
	bodyTo     BodyHandler // receives them; nil drops them
	resp       Response
	responding bool // a response was started and has not ended

	phase      phase
	closeAfter bool // close once the response in progress has ended
	// served: a request has been dispatched on this connection. Drain
	// closes an idle connection only after one: a connection accepted just
	// before a hand-over or shutdown has its request on the way, and
	// closing it would fail that request (it is answered, with
	// "Connection: close").
	served     bool
	outFull    bool // output over the high-water mark
	paused     bool // reading paused by us
	pumpQueued bool // Flush should pull from the response's BodySource
	bodyHeld   bool // the handler asked to stop reading the body (Response.HoldBody)
	closed     bool
	lingering  bool // our side is shut down; input is dropped until EOF
	inData     bool // inside OnData

	timer     reactor.Timer
	kind      timerKind
	sendTimer reactor.Timer
	scratch   []byte // response heads are built here
	pathBuf   []byte // handlers' per-connection scratch (the static handler's file name)
}

func (s *Server) newConn(c *conn.Conn) conn.Handler {
	st := &connState{srv: s, ls: s.loops[c.Loop().ID()], c: c}
	st.req.Headers = make([]httpwire.Header, 0, 16)
	st.timer.Func, st.timer.Arg = connTimedOut, st
	st.sendTimer.Func, st.sendTimer.Arg = sendTimedOut, st
	st.resp.st = st
	return st
}

// OnOpen implements conn.Handler.
func (st *connState) OnOpen(c *conn.Conn) {
	st.ls.conns[st] = struct{}{}
	st.srv.Stats.Connections.Add(1)
	st.srv.Stats.Accepted.Add(1)
	if st.srv.draining.Load() {
		c.Close()
		return
	}
	st.arm(timerIdle, st.srv.cfg.IdleTimeout)
}

// OnClose implements conn.Handler.
func (st *connState) OnClose(c *conn.Conn, err error) {
	st.closed = true
	c.Loop().Cancel(&st.timer)
	c.Loop().Cancel(&st.sendTimer)
	delete(st.ls.conns, st)
	st.srv.Stats.Connections.Add(-1)
	if st.resp.src != nil {
		st.resp.src.Close()
		st.resp.src = nil
	}
	if ow := st.resp.watcher; ow != nil {
		st.resp.watcher = nil
		ow.Gone(&st.resp)
	}
}

// OnData implements conn.Handler: it decodes the body of the request in
// progress, then parses and dispatches the next requests for as long as
// no response is in progress and output has room.
func (st *connState) OnData(c *conn.Conn, data []byte) int {
	if st.lingering {
		return len(data)
	}
	st.inData = true
	defer func() { st.inData = false }()
	lim := st.srv.cfg.Limits
	consumed := 0
	for !st.closed && !c.Closed() {
		if st.bodyActive {
			if st.blocked() {
				break
			}
			n, chunk, err := st.body.Read(data[consumed:])
			if err != nil {
				st.refuse(err)
				return len(data)
			}
			consumed += n
			if len(chunk) > 0 && st.bodyTo != nil {
				st.bodyTo.OnBody(&st.resp, chunk, false)
			}
			if st.body.Done() {
				st.bodyActive = false
				c.Loop().Cancel(&st.timer)
				if bt := st.bodyTo; bt != nil {
					st.bodyTo = nil
					bt.OnBody(&st.resp, nil, true)
				}
				if !st.responding && !st.closed {
					st.exchangeDone()
				}
				continue
			}
			if n == 0 {
				break
			}
			st.arm(timerBody, st.srv.cfg.BodyTimeout) // it moved
			continue
		}
		if st.responding || st.outFull || st.closeAfter || consumed == len(data) {
			break
		}
		n, err := httpwire.ParseRequest(data[consumed:], &st.req, lim)
		if err != nil {
			st.refuse(err)
			return len(data)
		}
		if n == 0 {
			if st.phase == phaseIdle {
				st.phase = phaseHead
				st.arm(timerHead, st.srv.cfg.HeaderTimeout)
			}
			break
		}
		consumed += n
		st.dispatch()
	}
	if consumed < len(data) && st.blocked() && !st.paused && !c.Closed() {
		// Pipelined requests wait unparsed in the input (a body waits for
		// its handler's output to drain); stop reading until they can go.
		st.paused = true
		c.PauseRead()
	}
	return consumed
}

// dispatch routes the request just parsed to its handler.
func (st *connState) dispatch() {
	st.srv.Stats.Requests.Add(1)
	st.phase = phaseActive
	st.served = true
	st.c.Loop().Cancel(&st.timer)
	h, mount := st.srv.cfg.Router.match(st.req.Path)
	st.resp.begin(&st.req, mount)
	st.body.Reset(&st.req, st.srv.cfg.Limits)
	st.bodyActive = !st.body.Done()
	if st.bodyActive {
		if bh, ok := h.(BodyHandler); ok {
			st.bodyTo = bh
			if st.req.Expect100 {
				st.c.Write(continueResp)
			}
		} else if st.req.Expect100 {
			// The handler does not want the body, and the client, not
			// told to continue, may or may not send it: where the next
			// request starts is unknowable. Answer and close.
			st.bodyActive = false
			st.resp.keepAlive = false
		}
		if st.bodyActive {
			st.arm(timerBody, st.srv.cfg.BodyTimeout)
		}
	}
	st.responding = true
	h.Serve(&st.resp, &st.req)
}

// responseEnded runs when the handler ended its response (from Serve or
// later).
func (st *connState) responseEnded() {
	st.responding = false
	if !st.resp.keepAlive {
		st.closeAfter = true
	}
	if st.closeAfter {
		st.finish()
		return
	}
	if !st.bodyActive {
		st.exchangeDone()
	}
}

// finish ends the connection after its queued output: it shuts the
// sending side down and closes once the client has sent its end of stream,
// or after lingerTime.
func (st *connState) finish() {
	if st.closed || st.lingering {
		return
	}
	st.lingering = true
	st.bodyActive = false
	st.c.CloseWrite()
	st.arm(timerLinger, lingerTime)
	if st.paused {
		st.paused = false
		st.c.ResumeRead() // read, to see the end of stream
	}
}

// OnEOF implements conn.EOFHandler: the client finished sending. A
// response in progress is completed first; requests it pipelined behind
// it and the server had not read yet are not answered.
func (st *connState) OnEOF(c *conn.Conn) {
	if st.lingering || (!st.responding && !st.bodyActive) {
		c.Close()
		return
	}
	st.closeAfter = true
	st.bodyActive = false
}

// exchangeDone readies the connection for its next request.
func (st *connState) exchangeDone() {
	st.phase = phaseIdle
	if st.srv.draining.Load() {
		st.finish()
		return
	}
	st.arm(timerIdle, st.srv.cfg.IdleTimeout)
	st.resume()
}

// resume reads again once nothing holds the input back; input left
// unconsumed is presented again without waiting for new bytes.
func (st *connState) resume() {
	if st.closed || st.blocked() {
		return
	}
	if st.paused {
		st.paused = false
		st.c.ResumeRead()
	} else if !st.inData {
		st.c.Redeliver()
	}
}

// blocked reports whether input must wait: a request body while the
// handler that takes it has output over the high-water mark, the next
// request while a response is in progress or output is over the mark.
func (st *connState) blocked() bool {
	if st.bodyActive {
		return st.bodyTo != nil && (st.outFull || st.bodyHeld)
	}
	return st.responding || st.outFull
}

// drain runs on the loop when the server starts draining.
func (st *connState) drain() {
	if st.closed {
		return
	}
	if st.phase == phaseIdle && !st.responding {
		if st.served {
			st.c.Close()
		}
		// Else its first request is still on the way (the header timeout
		// or Drain's own bounds it), and exchangeDone closes after it.
		return
	}
	st.closeAfter = true
	if !st.resp.started {
		st.resp.keepAlive = false
	}
}

// refuse answers a request the parser refused and closes: the framing of
// the connection is lost.
func (st *connState) refuse(err error) {
	st.srv.Stats.Refusals.Add(1)
	status := 400
	if he, ok := err.(*httpwire.Error); ok {
		status = he.Status
	}
	st.bodyActive = false
	st.closeAfter = true
	switch {
	case st.responding && st.resp.started:
		st.c.Abort(err) // a response is half sent: nothing sane can follow
		return
	case st.phase == phaseActive && !st.responding:
		// The body of a request already answered: a status now would
		// read as the answer to a request the client sends next.
		st.finish()
		return
	}
	st.scratch = httpwire.AppendError(st.scratch[:0], status, st.ls.dateValue(st.c.Loop().Now()))
	st.c.Write(st.scratch)
	st.finish()
}

func (st *connState) arm(k timerKind, d time.Duration) {
	st.kind = k
	st.c.Loop().Schedule(&st.timer, d)
}

func connTimedOut(arg any) {
	st := arg.(*connState)
	if st.closed {
		return
	}
	switch st.kind {
	case timerIdle:
		st.srv.Stats.Timeouts.Add(1)
		st.c.Close() // RFC 9112 section 9.8: an idle connection may just close
	case timerHead, timerBody:
		st.srv.Stats.Timeouts.Add(1)
		st.closeAfter = true
		st.bodyActive = false
		if st.kind == timerBody && (st.resp.started || !st.responding) {
			// The response began, or was even complete: no status can
			// follow it.
			st.c.Abort(errTimeout)
			return
		}
		st.scratch = httpwire.AppendError(st.scratch[:0], 408, st.ls.dateValue(st.c.Loop().Now()))
		st.c.Write(st.scratch)
		st.finish()
	case timerLinger:
		st.c.Close()
	}
}

func sendTimedOut(arg any) {
	st := arg.(*connState)
	if !st.closed {
		st.srv.Stats.Timeouts.Add(1)
		st.c.Abort(errSendTimeout)
	}
}

// OnHighWater implements conn.WatermarkHandler: stop reading and filling.
func (st *connState) OnHighWater(c *conn.Conn) {
	st.outFull = true
	c.Loop().Schedule(&st.sendTimer, st.srv.cfg.SendTimeout)
}

// OnLowWater implements conn.WatermarkHandler: the client reads again.
func (st *connState) OnLowWater(c *conn.Conn) {
	st.outFull = false
	c.Loop().Cancel(&st.sendTimer)
	if (st.resp.src != nil || st.resp.watcher != nil) && !st.pumpQueued {
		// Not from inside the connection's send path: at the end of the
		// iteration.
		st.pumpQueued = true
		c.Loop().Defer(st)
	}
	st.resume()
}

// Flush implements reactor.Flusher: it pulls more of a streamed body, or
// tells the response's watcher that output drained.
func (st *connState) Flush() {
	st.pumpQueued = false
	if st.closed || st.outFull {
		return
	}
	st.resp.pump()
	if ow := st.resp.watcher; ow != nil {
		ow.OutputDrained(&st.resp)
	}
}

var (
	errTimeout     = errors.New("httpd: client too slow sending its request")
	errSendTimeout = errors.New("httpd: client stopped reading its response")
)
