package httpproxy

import (
	"errors"
	"strings"

	"github.com/scalestack/scalestack/httpd"
	"github.com/scalestack/scalestack/httpwire"
	"github.com/scalestack/scalestack/pool"
	"github.com/scalestack/scalestack/reactor"
)

// maxPending bounds the request body bytes kept while no upstream
// connection is held. The body is held (Response.HoldBody) until one is
// granted, so this is only a guard.
const maxPending = 16 << 10

// keptBuffer is the largest buffer capacity a recycled exchange keeps.
const keptBuffer = 4 << 10

// The bodies of the proxy's own answers: what went wrong, never which
// server or why in detail (that goes to the log and the metrics).
var (
	msgUnavailable   = []byte("502 Bad Gateway: no upstream server is available\n")
	msgLost          = []byte("502 Bad Gateway: the upstream connection broke before the response arrived\n")
	msgBadResponse   = []byte("502 Bad Gateway: the upstream server sent a malformed response\n")
	msgHeaderTimeout = []byte("504 Gateway Timeout: the upstream server did not answer in time\n")
	msgQueueTimeout  = []byte("504 Gateway Timeout: no upstream connection became free in time\n")
	msgConnect       = []byte("405 Method Not Allowed: CONNECT is not proxied\n")
)

var (
	errNotReusable   = errors.New("httpproxy: upstream connection cannot carry another exchange")
	errHeaderTimeout = errors.New("httpproxy: upstream response head timed out")
	errIdleTimeout   = errors.New("httpproxy: upstream silent in the middle of a response body")
	errClientGone    = errors.New("httpproxy: client left during the exchange")
	errUpgrade       = errors.New("httpproxy: upstream switched protocols, which was not asked for")
)

const plainText = "text/plain; charset=utf-8"

// exchange is one proxied request, from Serve until both the response is
// over and the request body is in; it is the httpd.OutputWatcher of its
// Response and the pool.Client of its upstream connection. Exchanges are
// recycled per loop.
type exchange struct {
	p      *Proxy
	ls     *loopState
	w      *httpd.Response
	waiter pool.Waiter
	up     *upstream     // the server chosen
	b      *pool.Backend // its connection, while held
	s      *server
	tried  uint64 // servers refused as unavailable, a bit each

	head   []byte // the request head for the upstream
	hostAt int    // where the upstream's Host goes in head, -1: the client's is in it
	// pending is request body (already framed for the upstream) waiting
	// for a connection.
	pending []byte
	scratch []byte

	headRequest bool
	safe        bool // retried once if its connection breaks before any answer
	chunked     bool // the body goes to the upstream chunked
	bodyIn      bool // the client's body has all arrived (or there was none)
	answered    bool // the client's response is complete, or was given up
	started     bool // the response head was relayed
	retried     bool
	readPaused  bool // the upstream is not read until the client's output drains
	timer       reactor.Timer
}

func (ls *loopState) get(p *Proxy) *exchange {
	if n := len(ls.free); n > 0 {
		x := ls.free[n-1]
		ls.free[n-1] = nil
		ls.free = ls.free[:n-1]
		return x
	}
	x := &exchange{p: p, ls: ls}
	x.waiter.Client = x
	x.timer.Func, x.timer.Arg = exchangeTimedOut, x
	return x
}

// Serve implements httpd.Handler.
func (p *Proxy) Serve(w *httpd.Response, req *httpwire.Request) {
	if req.IsMethod("CONNECT") {
		w.Header("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
		w.Reply(405, plainText, msgConnect)
		return
	}
	x := p.loops[w.Loop().ID()].get(p)
	x.begin(w, req)
	w.Watch(x)
	if !x.bodyIn {
		// The body stays in the client's socket (and the bytes already
		// read in its bounded input) until a connection is granted, so a
		// queue of uploads costs the proxy no buffers.
		w.HoldBody(true)
	}
	x.send()
}

// OnBody implements httpd.BodyHandler: the request body goes to the
// upstream connection as it arrives, or waits (bounded) for one.
func (p *Proxy) OnBody(w *httpd.Response, data []byte, last bool) {
	x, _ := w.Watcher().(*exchange)
	if x == nil {
		return
	}
	if x.answered {
		if last {
			x.bodyIn = true
			x.maybeFree()
		}
		return
	}
	if len(data) > 0 {
		if x.b != nil {
			c := x.b.Conn()
			if x.chunked {
				x.scratch = httpwire.AppendChunkHeader(x.scratch[:0], len(data))
				c.Write(x.scratch)
				c.Write(data)
				c.Write(crlf)
			} else {
				c.Write(data)
			}
		} else {
			if x.chunked {
				x.pending = httpwire.AppendChunk(x.pending, data)
			} else {
				x.pending = append(x.pending, data...)
			}
			if len(x.pending) >= maxPending {
				w.HoldBody(true)
			}
		}
	}
	if last {
		x.bodyIn = true
		if x.chunked {
			if x.b != nil {
				x.b.Conn().Write(lastChunk)
			} else {
				x.pending = append(x.pending, lastChunk...)
			}
		}
	}
}

var (
	crlf      = []byte("\r\n")
	lastChunk = []byte(httpwire.LastChunk)
)

// begin builds the upstream's request head from req.
func (x *exchange) begin(w *httpd.Response, req *httpwire.Request) {
	x.w = w
	x.up, x.b, x.s, x.tried = nil, nil, nil, 0
	x.pending = x.pending[:0]
	x.headRequest = req.IsMethod("HEAD")
	hasBody := req.HasBody()
	x.chunked = req.Chunked
	x.bodyIn = !hasBody
	x.safe = !hasBody && (req.IsMethod("GET") || x.headRequest || req.IsMethod("OPTIONS"))
	x.answered, x.started, x.retried, x.readPaused = false, false, false, false

	b := append(x.head[:0], req.Method...)
	b = append(b, ' ')
	b = append(b, req.Path...)
	if len(req.Query) > 0 {
		b = append(b, '?')
		b = append(b, req.Query...)
	}
	b = append(b, " HTTP/1.1\r\n"...)
	xffs := 0
	for _, h := range req.Headers {
		switch {
		case foldEqual(h.Name, "x-forwarded-for"):
			xffs++
			continue
		case dropRequestField(h.Name), connectionNames(req.Headers, h.Name):
			continue
		}
		b = appendField(b, h.Name, h.Value)
	}
	x.hostAt = -1
	if req.Host == nil {
		x.hostAt = len(b)
	}
	b = append(b, "X-Forwarded-For: "...)
	if xffs > 0 {
		// Several fields are one list (RFC 9110 section 5.3): keep them
		// all, in order, before the client's address.
		first := true
		for _, h := range req.Headers {
			if foldEqual(h.Name, "x-forwarded-for") && len(h.Value) > 0 {
				if !first {
					b = append(b, ", "...)
				}
				b = append(b, h.Value...)
				first = false
			}
		}
		if !first {
			b = append(b, ", "...)
		}
	}
	b = append(b, clientIP(w.RemoteAddr())...)
	b = append(b, "\r\n"...)
	b = append(b, x.p.forwardedProto...)
	if x.chunked {
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	}
	b = append(b, "\r\n"...)
	x.head = b
}

// clientIP is the address part of conn's "ip:port", "[ipv6]:port", or
// "unix" for a Unix socket's path.
func clientIP(remote string) string {
	if strings.HasPrefix(remote, "[") {
		if i := strings.IndexByte(remote, ']'); i > 0 {
			return remote[1:i]
		}
	}
	if remote == "" || remote[0] == '/' || remote[0] == '@' {
		return "unix"
	}
	if i := strings.LastIndexByte(remote, ':'); i > 0 {
		return remote[:i]
	}
	return remote
}

// send asks a server for a connection, or answers 502 when none is
// available.
func (x *exchange) send() {
	up := x.p.pick(x.ls, x.tried)
	if up == nil {
		if x.up != nil {
			x.up.stats.BadGateway.Add(1)
		}
		x.fail(502, msgUnavailable)
		return
	}
	x.up = up
	up.busy.Add(1)
	up.pool.Loop(x.w.Loop()).Acquire(&x.waiter)
}

// Granted implements pool.Client: the request goes out.
func (x *exchange) Granted(b *pool.Backend) {
	x.b = b
	x.s = b.Server().(*server)
	x.s.x = x
	x.s.gotHead = false
	x.up.stats.Requests.Add(1)
	c := b.Conn()
	if x.hostAt >= 0 {
		c.Write(x.head[:x.hostAt])
		c.Write(x.up.hostField)
		c.Write(x.head[x.hostAt:])
	} else {
		c.Write(x.head)
	}
	if len(x.pending) > 0 {
		c.Write(x.pending)
		x.pending = x.pending[:0]
	}
	x.w.Loop().Schedule(&x.timer, x.p.cfg.ResponseHeaderTimeout)
	if !x.bodyIn {
		x.w.HoldBody(c.OverHighWater())
	}
}

// Refused implements pool.Client.
func (x *exchange) Refused(err error) {
	x.up.busy.Add(-1)
	if err == pool.ErrUnavailable {
		x.tried |= 1 << x.up.idx
		x.send()
		return
	}
	x.up.stats.Timeouts.Add(1)
	x.fail(504, msgQueueTimeout)
}

// Revoked implements pool.Client; the proxy never keeps a connection, so
// it is never called.
func (x *exchange) Revoked(b *pool.Backend) { x.Lost(b, errNotReusable) }

// Lost implements pool.Client: the upstream connection broke (or closed:
// the end of a body that runs until the close).
func (x *exchange) Lost(b *pool.Backend, err error) {
	if x.b != b {
		return // given up already
	}
	s := x.s
	x.detach()
	switch {
	case x.started && s.body.UntilClose() && err == pool.ErrClosedByPeer:
		x.w.End()
		x.answered = true
		x.unhold()
		x.maybeFree()
	case x.started:
		x.up.stats.Cut.Add(1)
		x.cut(err)
	case x.safe && !x.retried && !s.gotHead:
		x.retried = true
		x.up.stats.Retries.Add(1)
		x.send()
	default:
		x.up.stats.BadGateway.Add(1)
		x.fail(502, msgLost)
	}
}

// relay takes the upstream's response bytes: the head is relayed with its
// hop-by-hop fields replaced, the body streamed.
func (x *exchange) relay(s *server, data []byte) int {
	lim := x.p.cfg.Limits
	consumed := 0
	for !s.gotHead {
		n, err := httpwire.ParseResponseHead(data[consumed:], &s.head, lim)
		if err == nil && n > 0 && s.head.Status == 101 {
			err = errUpgrade
		}
		if err != nil {
			x.up.stats.BadGateway.Add(1)
			x.dropBackend(err)
			x.fail(502, msgBadResponse)
			return len(data)
		}
		if n == 0 {
			return consumed
		}
		consumed += n
		if s.head.Status < 200 {
			continue // interim (100 Continue, 103): the client module answered 100 itself
		}
		s.gotHead = true
		s.body.ResetResponse(&s.head, x.headRequest, lim)
		x.relayHead(&s.head)
		x.started = true
	}
	for !s.body.Done() && consumed < len(data) {
		n, chunk, err := s.body.Read(data[consumed:])
		if err != nil {
			x.up.stats.Cut.Add(1)
			x.dropBackend(err)
			x.cut(err)
			return len(data)
		}
		consumed += n
		if len(chunk) > 0 {
			x.w.Write(chunk)
			x.up.stats.ResponseBytes.Add(uint64(len(chunk)))
		}
		if n == 0 {
			break
		}
	}
	if s.body.Done() {
		x.finish(consumed < len(data))
		return len(data)
	}
	if x.w.OutputFull() {
		// Everything delivered is relayed (a close-delimited body's last
		// bytes must not wait in the input when the close comes), then the
		// upstream waits for the client: its silence is not the upstream's.
		x.readPaused = true
		x.b.Conn().PauseRead()
		x.w.Loop().Cancel(&x.timer)
	} else {
		x.w.Loop().Schedule(&x.timer, x.p.cfg.IdleTimeout)
	}
	return consumed
}

// relayHead writes the response head to the client.
func (x *exchange) relayHead(h *httpwire.ResponseHead) {
	w := x.w
	for _, f := range h.Headers {
		if dropResponseField(f.Name) || connectionNames(h.Headers, f.Name) {
			continue
		}
		w.HeaderField(f.Name, f.Value)
	}
	length := int64(-1)
	if !h.Chunked && !h.OtherCoding && h.ContentLength >= 0 {
		length = h.ContentLength
	}
	if c := h.Status/100 - 1; c >= 0 && c < len(x.up.stats.Responses) {
		x.up.stats.Responses[c].Add(1)
	}
	w.WriteHeader(h.Status, length)
}

// finish ends a response whose body is complete and gives the connection
// back, or closes it when it cannot carry another exchange.
func (x *exchange) finish(leftover bool) {
	s, b := x.s, x.b
	reusable := !leftover && s.head.KeepAlive && !s.body.UntilClose() && x.bodyIn
	x.detach()
	switch {
	case reusable:
		b.Loop().Release(b)
	case leftover:
		b.Abort(errUnsolicited) // the server sent more than its response
	default:
		// The server closes it (keep-alive requests used up, a body to the
		// close), or the request was not wholly sent: nothing failed, and
		// the pool reconnects it at once.
		b.Abort(pool.ErrRecycle)
	}
	x.w.End()
	x.answered = true
	x.unhold()
	x.maybeFree()
}

// detach lets go of the upstream connection (the caller releases or
// closes it, or it is gone).
func (x *exchange) detach() {
	b := x.b
	if b == nil {
		return
	}
	x.s.x = nil
	if x.readPaused {
		x.readPaused = false
		if c := b.Conn(); c != nil {
			c.ResumeRead()
		}
	}
	x.b, x.s = nil, nil
	x.up.busy.Add(-1)
	x.w.Loop().Cancel(&x.timer)
}

// dropBackend closes the upstream connection, whose state is unknown.
func (x *exchange) dropBackend(err error) {
	if b := x.b; b != nil {
		x.detach()
		b.Abort(err)
	}
}

// fail answers the client with the proxy's own error response.
func (x *exchange) fail(status int, msg []byte) {
	x.w.Loop().Cancel(&x.timer)
	if !x.w.Closed() && !x.w.Started() {
		x.w.Reply(status, plainText, msg)
	}
	x.answered = true
	x.unhold()
	x.maybeFree()
}

// cut closes the client's connection: a response was half relayed.
func (x *exchange) cut(err error) {
	x.w.Abort(err)
	x.answered = true
	x.maybeFree()
}

// unhold lets the client's remaining body be read (and dropped) once the
// response is over.
func (x *exchange) unhold() {
	if !x.bodyIn {
		x.w.HoldBody(false)
	}
}

// maybeFree recycles the exchange once nothing refers to it any more.
func (x *exchange) maybeFree() {
	if !x.answered || !x.bodyIn || x.b != nil || x.waiter.Queued() || x.w == nil {
		return
	}
	x.w.Watch(nil)
	x.w = nil
	x.up = nil
	// An exchange per concurrent request is kept; an unusually large
	// request head or body must not stay with it.
	if cap(x.head) > keptBuffer {
		x.head = nil
	}
	if cap(x.pending) > keptBuffer {
		x.pending = nil
	}
	x.ls.free = append(x.ls.free, x)
}

// upstreamFull holds the client's body while the upstream connection's
// output is over its high-water mark.
func (x *exchange) upstreamFull(full bool) {
	if !x.bodyIn && !x.answered && x.w != nil {
		x.w.HoldBody(full)
	}
}

// OutputDrained implements httpd.OutputWatcher: the upstream is read
// again.
func (x *exchange) OutputDrained(*httpd.Response) {
	if x.readPaused && x.b != nil {
		x.readPaused = false
		x.b.Conn().ResumeRead()
		x.w.Loop().Schedule(&x.timer, x.p.cfg.IdleTimeout)
	}
}

// Gone implements httpd.OutputWatcher: the client left. A wait is given
// up; an upstream connection in the middle of the exchange is closed,
// since reading a response nobody wants to its end could take long.
func (x *exchange) Gone(w *httpd.Response) {
	if x.waiter.Queued() {
		x.up.pool.Loop(w.Loop()).Leave(&x.waiter)
		x.up.busy.Add(-1)
	}
	x.dropBackend(errClientGone)
	w.Loop().Cancel(&x.timer)
	x.answered, x.bodyIn = true, true
	x.maybeFree()
}

func exchangeTimedOut(arg any) {
	x := arg.(*exchange)
	if x.b == nil {
		return
	}
	if !x.started {
		x.up.stats.Timeouts.Add(1)
		x.dropBackend(errHeaderTimeout)
		x.fail(504, msgHeaderTimeout)
		return
	}
	x.up.stats.Cut.Add(1)
	x.dropBackend(errIdleTimeout)
	x.cut(errIdleTimeout)
}
