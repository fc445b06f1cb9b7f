package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/scalestack/scalestack/buffer"
	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/memcachewire"
	"github.com/scalestack/scalestack/reactor"
)

// The memcached proxy (`scalestack memcache`): clients speak memcached's
// text and meta protocol to it; each key goes to the server twemproxy's
// ketama would pick (ketama.go), over a fixed set of connections per server
// that every loop owns for itself, so nothing crosses loops.
//
// How a request flows: the client's loop parses it (memcachewire), puts a
// request record at the tail of the client's ordered queue, and writes the
// command to the server connection the key maps to, appending a pending
// entry to that connection's FIFO. Many clients' requests share one server
// connection, pipelined; memcached answers each connection in order, so the
// head of the FIFO owns the next response element. A response element is
// written straight to the client when its request is at the head of the
// client's queue, otherwise held in the request until the ones before it
// are answered: every client sees its answers in its own order. A retrieval
// whose keys live on several servers is split into one get per server (keys
// in the client's order); when all parts are in, the VALUE items are merged
// back in the order the client asked for them, then END. flush_all and
// verbosity go to every server and answer OK when all did. mn, stats and
// errors in the client's own input are answered by the proxy, in order.
// noreply and the meta q flag are stripped before forwarding (every command
// sent gets exactly one reply, so the FIFO stays in step) and the replies
// the client asked not to see are dropped here.
//
// A server connection that fails answers everything pending on it with
// mcUnavailable. One that leaves a request unanswered for --server-timeout
// (a server that accepts and reads but never answers: stopped, swapping,
// wedged) is reset, and everything pending on it is answered mcTimedOut:
// memcached answers each connection in order, so nothing behind the late
// request could be answered either. Either counts as a failure of the
// server; a response from it clears the count. After --server-failure-limit
// consecutive failures a loop ejects the server for --server-retry-timeout:
// its keys are answered mcUnavailable at once (keys are not moved to other
// servers: a client that falls back to its database is better served than
// by a cache that starts empty for those keys), then the next request dials
// it again.

// mcUnavailable is the answer for a key whose server is down or ejected.
// twemproxy answers such keys "SERVER_ERROR <strerror>"; every memcached
// client treats a SERVER_ERROR line as a failed operation.
var mcUnavailable = []byte("SERVER_ERROR proxy: memcached server unavailable\r\n")

// mcTimedOut answers the requests pending on a server connection that
// left one unanswered for --server-timeout (twemproxy answers
// "SERVER_ERROR Connection timed out" for its timeout:).
var mcTimedOut = []byte("SERVER_ERROR proxy: memcached server timed out\r\n")

var (
	mcEND = []byte("END\r\n")
	mcOK  = []byte("OK\r\n")
	mcMN  = []byte("MN\r\n")
	crlf  = []byte("\r\n")
	space = []byte(" ")
)

var (
	errUnexpectedResponse = errors.New("memcache: server sent data nobody asked for")
	errServerTimeout      = errors.New("memcache: server left a request unanswered for --server-timeout")
)

// mcConfig is the parsed command line.
type mcConfig struct {
	servers        []mcServerConf
	hash           keyHash
	hashTag        string
	lim            memcachewire.Limits
	connsPerServer int
	failureLimit   int
	retryTimeout   time.Duration
	connectTimeout time.Duration
	serverTimeout  time.Duration // 0: wait for answers indefinitely
	maxPipeline    int
	maxServerQueue int
	// sql, when set, replaces the memcached servers with a MySQL table
	// (--backend mysql; memcache_mysql.go).
	sql *mcSQLConf
}

// mcServerStats count one server's traffic on one loop; loops add, the
// metrics endpoint sums.
type mcServerStats struct {
	requests       atomic.Uint64 // commands sent to it
	unavailable    atomic.Uint64 // requests answered mcUnavailable
	connects       atomic.Uint64
	failures       atomic.Uint64 // connects that failed, connections lost or timed out
	timeouts       atomic.Uint64 // connections reset by --server-timeout
	ejections      atomic.Uint64
	connected      atomic.Int64
	ejected        atomic.Int64 // 1 while this loop has it ejected
	pending        atomic.Int64 // requests awaiting its answer
	responseBytes  atomic.Uint64
	protocolErrors atomic.Uint64 // connections closed over a bad response
}

type mcProxy struct {
	cfg     mcConfig
	addrs   []conn.Addr
	ring    *ketamaRing
	loops   []*mcLoop
	stats   [][]mcServerStats // [loop][server]
	started time.Time
	clients atomic.Uint64
}

type mcLoop struct {
	p        *mcProxy
	l        *reactor.Loop
	servers  []*mcServer
	freeReqs []*mcRequest
	clientID int
}

type mcServer struct {
	idx       int
	conns     []*mcBackend
	failures  int
	downUntil time.Time
	st        *mcServerStats
}

type mcPending struct {
	req  *mcRequest
	part int
	sent time.Duration // when it was queued, since the proxy started (loop time)
}

// mcBackend is one connection to a server, owned by one loop.
type mcBackend struct {
	lp      *mcLoop
	srv     *mcServer
	c       *conn.Conn
	open    bool
	fifo    []mcPending
	head    int
	full    bool // output over the high-water mark
	waiters []*mcClient
	// The --server-timeout watch: one timer per connection, armed while
	// anything is pending, checks the oldest pending request (the FIFO's
	// head: answers come in order). answered counts answers completed;
	// struck is set, with strikeAt = answered, when the head was found
	// overdue: the connection is reset only if the next check, a tick
	// later, finds no answer came meanwhile, so that a loop that stalled
	// past the deadline reads what the server sent before judging it.
	timer    reactor.Timer
	answered uint64
	strikeAt uint64
	struck   bool
	timedOut bool
}

const (
	reqSingle = iota
	reqMulti
	reqBroadcast
	reqLocal
)

type mcSub struct {
	server int
	buf    *buffer.Buf
	off    int
}

// mcRequest is one client request awaiting its answer.
type mcRequest struct {
	client *mcClient // nil once the client has gone
	cmd    memcachewire.Command
	kind   int
	drop   bool // noreply: nothing goes back
	quiet  bool // meta q: hide what memcachewire.QuietHides says
	parts  int  // server answers still awaited
	out    *buffer.Buf
	err    *buffer.Buf // first error line of a split or broadcast request
	keys   *buffer.Buf // a split retrieval's keys, in the client's order
	keySub []int
	subs   []mcSub
}

type mcClient struct {
	lp        *mcLoop
	c         *conn.Conn
	id        int
	queue     []*mcRequest
	qhead     int
	swallow   int
	paused    bool
	blockedOn *mcBackend // nil: paused by the pipeline bound
	quitting  bool
	closed    bool
	req       memcachewire.Request
	keyBuf    [memcachewire.MaxKeyLen]byte
}

func newMemcacheProxy(cfg mcConfig) (*mcProxy, error) {
	p := &mcProxy{cfg: cfg, ring: newKetamaRing(cfg.servers), started: time.Now()}
	for _, s := range cfg.servers {
		a, err := conn.ParseAddr(s.addr)
		if err != nil {
			return nil, fmt.Errorf("server %s: %w", s.addr, err)
		}
		p.addrs = append(p.addrs, a)
	}
	return p, nil
}

// start builds each loop's state on that loop before any client arrives.
func (p *mcProxy) start(e *reactor.Engine) error {
	loops := e.Loops()
	p.loops = make([]*mcLoop, len(loops))
	p.stats = make([][]mcServerStats, len(loops))
	for i, l := range loops {
		p.stats[i] = make([]mcServerStats, len(p.cfg.servers))
		lp := &mcLoop{p: p, l: l}
		for s := range p.cfg.servers {
			srv := &mcServer{idx: s, st: &p.stats[i][s]}
			for range p.cfg.connsPerServer {
				be := &mcBackend{lp: lp, srv: srv}
				be.timer.Func, be.timer.Arg = serverTimeoutCheck, be
				srv.conns = append(srv.conns, be)
			}
			lp.servers = append(lp.servers, srv)
		}
		if err := l.Exec(func(*reactor.Loop) { p.loops[l.ID()] = lp }); err != nil {
			return err
		}
	}
	return nil
}

func (p *mcProxy) newHandler(c *conn.Conn) conn.Handler {
	lp := p.loops[c.Loop().ID()]
	lp.clientID++
	p.clients.Add(1)
	return &mcClient{lp: lp, c: c, id: lp.clientID}
}

// route returns the server index for a key (decoded first when the meta b
// flag says it is base64).
func (p *mcProxy) route(key []byte) int {
	if p.ring.servers == 1 || len(key) == 0 {
		return 0
	}
	return p.ring.dispatch(p.cfg.hash(hashTagged(key, p.cfg.hashTag)))
}

// ---- requests ----

func (lp *mcLoop) newReq(cl *mcClient, cmd memcachewire.Command, kind int) *mcRequest {
	var r *mcRequest
	if n := len(lp.freeReqs); n > 0 {
		r = lp.freeReqs[n-1]
		lp.freeReqs = lp.freeReqs[:n-1]
	} else {
		r = &mcRequest{}
	}
	r.client, r.cmd, r.kind = cl, cmd, kind
	return r
}

func (lp *mcLoop) freeReq(r *mcRequest) {
	for _, b := range []*buffer.Buf{r.out, r.err, r.keys} {
		if b != nil {
			b.Release()
		}
	}
	for i := range r.subs {
		if r.subs[i].buf != nil {
			r.subs[i].buf.Release()
		}
	}
	*r = mcRequest{keySub: r.keySub[:0], subs: r.subs[:0]}
	if len(lp.freeReqs) < 1024 {
		lp.freeReqs = append(lp.freeReqs, r)
	}
}

// ---- client side ----

func (cl *mcClient) OnOpen(*conn.Conn) {}

func (cl *mcClient) pending() int { return len(cl.queue) - cl.qhead }

func (cl *mcClient) isHead(r *mcRequest) bool {
	return cl.qhead < len(cl.queue) && cl.queue[cl.qhead] == r
}

func (cl *mcClient) OnData(c *conn.Conn, data []byte) int {
	consumed := 0
	if cl.swallow > 0 {
		n := min(cl.swallow, len(data))
		cl.swallow -= n
		consumed = n
	}
	if cl.quitting {
		return len(data) // nothing after quit is answered
	}
	lim := &cl.lp.p.cfg.lim
	for consumed < len(data) && !cl.quitting && !cl.paused {
		if cl.pending() >= cl.lp.p.cfg.maxPipeline {
			cl.pause(nil)
			break
		}
		req := &cl.req
		st := memcachewire.ParseRequest(data[consumed:], lim, req)
		if st == memcachewire.Incomplete {
			break
		}
		if st != memcachewire.OK {
			if st == memcachewire.ErrLineTooLong {
				cl.local(st.Reply())
				cl.quit()
				return len(data)
			}
			if !req.Noreply {
				cl.local(st.Reply())
			}
			if rest := len(data) - consumed; req.Size > rest {
				cl.swallow = req.Size - rest
				return len(data)
			}
			consumed += req.Size
			continue
		}
		if !cl.dispatch(req, data[consumed:consumed+req.Size]) {
			break // paused until a server connection drains
		}
		consumed += req.Size
	}
	return consumed
}

// pause stops reading the client until what it waits for frees up.
func (cl *mcClient) pause(on *mcBackend) {
	cl.paused = true
	cl.blockedOn = on
	if on != nil {
		on.waiters = append(on.waiters, cl)
	}
	cl.c.PauseRead()
}

func (cl *mcClient) resume() {
	if cl.paused && !cl.closed {
		cl.paused = false
		cl.blockedOn = nil
		cl.c.ResumeRead()
	}
}

func (cl *mcClient) quit() {
	cl.quitting = true
	if cl.pending() == 0 {
		cl.c.Close()
	}
}

// local answers with the proxy's own bytes, in order.
func (cl *mcClient) local(reply []byte) {
	if cl.pending() == 0 {
		cl.c.Write(reply)
		return
	}
	r := cl.lp.newReq(cl, memcachewire.CmdNone, reqLocal)
	r.out = buffer.Append(r.out, reply)
	cl.queue = append(cl.queue, r)
}

// dispatch sends a parsed request on its way; false means a server
// connection is full and the client has been paused (nothing was sent).
func (cl *mcClient) dispatch(req *memcachewire.Request, raw []byte) bool {
	lp := cl.lp
	p := lp.p
	switch req.Cmd {
	case memcachewire.CmdMetaNoop:
		cl.local(mcMN)
		return true
	case memcachewire.CmdStats:
		cl.local(p.statsReply(req))
		return true
	case memcachewire.CmdQuit:
		cl.quit()
		return true
	case memcachewire.CmdFlushAll, memcachewire.CmdVerbosity:
		return cl.broadcast(req)
	case memcachewire.CmdVersion:
		for _, srv := range lp.servers {
			if lp.available(srv) {
				return cl.single(req, raw, srv)
			}
		}
		cl.local(mcUnavailable)
		return true
	}
	if req.Cmd.Retrieval() {
		return cl.retrieval(req, raw)
	}
	key := req.Key
	if req.Base64 {
		if key = memcachewire.DecodeBase64Key(cl.keyBuf[:], key); key == nil {
			cl.local(memcachewire.ErrBadFormat.Reply())
			return true
		}
	}
	return cl.single(req, raw, lp.servers[p.route(key)])
}

// backendFor picks the client's connection to srv (always the same one,
// so that one client's commands to one server keep their order), dialling
// it when needed; nil when the server is down.
func (cl *mcClient) backendFor(srv *mcServer) *mcBackend {
	lp := cl.lp
	if !lp.available(srv) {
		return nil
	}
	be := srv.conns[cl.id%len(srv.conns)]
	if be.c == nil && !be.dial() {
		return nil
	}
	return be
}

func (be *mcBackend) isFull() bool {
	return be.full || be.pendingCount() >= be.lp.p.cfg.maxServerQueue
}

func (cl *mcClient) single(req *memcachewire.Request, raw []byte, srv *mcServer) bool {
	be := cl.backendFor(srv)
	if be == nil {
		srv.st.unavailable.Add(1)
		if !req.Noreply || req.Cmd.Meta() {
			// Errors show through the meta q flag, as memcached's do.
			cl.local(mcUnavailable)
		}
		return true
	}
	if be.isFull() {
		cl.pause(be)
		return false
	}
	r := cl.lp.newReq(cl, req.Cmd, reqSingle)
	r.drop = req.Noreply && !req.Cmd.Meta()
	r.quiet = req.QuietAt >= 0
	c := be.c
	switch {
	case r.quiet:
		h, t := req.CutQuiet()
		c.Write(h)
		c.Write(t)
	default:
		c.Write(req.Line[:req.ReplyCut])
	}
	c.Write(crlf)
	if req.Cmd.Storage() {
		c.Write(raw[len(raw)-len(req.Data)-2:])
	}
	be.push(r, 0)
	cl.queue = append(cl.queue, r)
	return true
}

// retrieval sends a get/gets/gat/gats whole when all its keys live on one
// server, else one request per server, merged when all have answered.
func (cl *mcClient) retrieval(req *memcachewire.Request, raw []byte) bool {
	lp := cl.lp
	p := lp.p
	first := -1
	split := false
	for rest := req.Keys; ; {
		var k []byte
		if k, rest = memcachewire.NextKey(rest); k == nil {
			break
		}
		s := p.route(k)
		if first < 0 {
			first = s
		} else if s != first {
			split = true
			break
		}
	}
	if !split {
		return cl.single(req, raw, lp.servers[first])
	}
	r := lp.newReq(cl, req.Cmd, reqMulti)
	r.keys = buffer.Append(r.keys, req.Keys)
	for rest := r.keys.B; ; {
		var k []byte
		if k, rest = memcachewire.NextKey(rest); k == nil {
			break
		}
		s := p.route(k)
		sub := -1
		for i := range r.subs {
			if r.subs[i].server == s {
				sub = i
				break
			}
		}
		if sub < 0 {
			sub = len(r.subs)
			r.subs = append(r.subs, mcSub{server: s})
		}
		r.keySub = append(r.keySub, sub)
	}
	// Every part's connection must take it before anything is sent.
	for i := range r.subs {
		srv := lp.servers[r.subs[i].server]
		if be := cl.backendFor(srv); be != nil && be.isFull() {
			lp.freeReq(r)
			cl.pause(be)
			return false
		}
	}
	prefix := req.Line[:req.KeysAt]
	for i := range r.subs {
		srv := lp.servers[r.subs[i].server]
		be := cl.backendFor(srv)
		if be == nil {
			srv.st.unavailable.Add(1)
			r.setErr(mcUnavailable)
			continue
		}
		c := be.c
		c.Write(prefix)
		n := 0
		idx := 0
		for rest := r.keys.B; ; idx++ {
			var k []byte
			if k, rest = memcachewire.NextKey(rest); k == nil {
				break
			}
			if r.keySub[idx] != i {
				continue
			}
			if n > 0 {
				c.Write(space)
			}
			c.Write(k)
			n++
		}
		c.Write(crlf)
		be.push(r, i)
	}
	cl.queue = append(cl.queue, r)
	if r.parts == 0 {
		lp.finish(r)
	}
	return true
}

// broadcast sends flush_all or verbosity to every server.
func (cl *mcClient) broadcast(req *memcachewire.Request) bool {
	lp := cl.lp
	for _, srv := range lp.servers {
		if be := cl.backendFor(srv); be != nil && be.isFull() {
			cl.pause(be)
			return false
		}
	}
	r := lp.newReq(cl, req.Cmd, reqBroadcast)
	r.drop = req.Noreply
	for _, srv := range lp.servers {
		be := cl.backendFor(srv)
		if be == nil {
			srv.st.unavailable.Add(1)
			r.setErr(mcUnavailable)
			continue
		}
		be.c.Write(req.Line[:req.ReplyCut])
		be.c.Write(crlf)
		be.push(r, 0)
	}
	cl.queue = append(cl.queue, r)
	if r.parts == 0 {
		lp.finish(r)
	}
	return true
}

func (r *mcRequest) setErr(line []byte) {
	if r.err == nil {
		r.err = buffer.Append(nil, line)
	}
}

// flush writes every answered request at the head of the queue, and what
// has arrived for the first unanswered one.
func (cl *mcClient) flush() {
	for cl.qhead < len(cl.queue) {
		r := cl.queue[cl.qhead]
		if r.out != nil {
			cl.c.WriteBuf(r.out)
			r.out = nil
		}
		if r.parts > 0 {
			break
		}
		cl.queue[cl.qhead] = nil
		cl.qhead++
		cl.lp.freeReq(r)
	}
	if cl.qhead == len(cl.queue) {
		cl.queue = cl.queue[:0]
		cl.qhead = 0
		if cl.quitting {
			cl.c.Close()
			return
		}
	}
	if cl.paused && cl.blockedOn == nil && cl.pending() < cl.lp.p.cfg.maxPipeline {
		cl.resume()
	}
}

func (cl *mcClient) OnClose(c *conn.Conn, err error) {
	cl.closed = true
	for i := cl.qhead; i < len(cl.queue); i++ {
		r := cl.queue[i]
		r.client = nil
		if r.parts == 0 {
			cl.lp.freeReq(r)
		}
	}
	cl.queue = nil
}

// ---- answers ----

// deliver hands one response element to the request it belongs to.
func (lp *mcLoop) deliver(pd mcPending, kind memcachewire.RespKind, elem []byte) {
	r := pd.req
	switch r.kind {
	case reqSingle:
		cl := r.client
		if cl == nil || r.drop || (r.quiet && memcachewire.QuietHides(r.cmd, kind)) {
			return
		}
		if cl.isHead(r) {
			if r.out != nil {
				cl.c.WriteBuf(r.out)
				r.out = nil
			}
			cl.c.Write(elem)
		} else {
			r.out = buffer.Append(r.out, elem)
		}
	case reqMulti:
		switch {
		case kind == memcachewire.RespValue:
			s := &r.subs[pd.part]
			s.buf = buffer.Append(s.buf, elem)
		case kind != memcachewire.RespEnd:
			r.setErr(elem)
		}
	case reqBroadcast:
		if kind != memcachewire.RespOK {
			r.setErr(elem)
		}
	}
}

// partDone counts one server's answer to r in; the last one completes r.
func (lp *mcLoop) partDone(r *mcRequest) {
	r.parts--
	if r.parts == 0 {
		lp.finish(r)
	}
}

func (lp *mcLoop) finish(r *mcRequest) {
	cl := r.client
	if cl == nil {
		lp.freeReq(r)
		return
	}
	switch r.kind {
	case reqMulti:
		if r.err != nil {
			r.out, r.err = r.err, nil
			break
		}
		r.out = r.merge()
	case reqBroadcast:
		if r.drop {
			break
		}
		if r.err != nil {
			r.out, r.err = r.err, nil
		} else {
			r.out = buffer.Append(r.out, mcOK)
		}
	}
	cl.flush()
}

// merge puts a split retrieval's items back in the client's key order:
// each server answered its keys in the order it was asked, so walking the
// client's keys and taking the next item of the key's server when it names
// that key reproduces what one server holding every key would have sent.
func (r *mcRequest) merge() *buffer.Buf {
	size := len(mcEND)
	for i := range r.subs {
		if r.subs[i].buf != nil {
			size += len(r.subs[i].buf.B)
		}
	}
	out := buffer.Get(size)
	var resp memcachewire.Response
	idx := 0
	for rest := r.keys.B; ; idx++ {
		var k []byte
		if k, rest = memcachewire.NextKey(rest); k == nil {
			break
		}
		s := &r.subs[r.keySub[idx]]
		if s.buf == nil || s.off >= len(s.buf.B) {
			continue
		}
		if memcachewire.ParseResponse(s.buf.B[s.off:], 1<<31-1, &resp) != memcachewire.OK {
			continue
		}
		if bytes.Equal(resp.Key, k) {
			out.B = append(out.B, s.buf.B[s.off:s.off+resp.Size]...)
			s.off += resp.Size
		}
	}
	out.B = append(out.B, mcEND...)
	return out
}

// ---- server side ----

func (lp *mcLoop) available(srv *mcServer) bool {
	if srv.downUntil.IsZero() {
		return true
	}
	if lp.l.Now().Before(srv.downUntil) {
		return false
	}
	srv.downUntil = time.Time{}
	srv.st.ejected.Store(0)
	return true
}

// failed counts a failure of srv and ejects it at the limit.
func (lp *mcLoop) failed(srv *mcServer) {
	srv.st.failures.Add(1)
	srv.failures++
	if srv.failures >= lp.p.cfg.failureLimit {
		srv.failures = 0
		srv.downUntil = lp.l.Now().Add(lp.p.cfg.retryTimeout)
		srv.st.ejections.Add(1)
		srv.st.ejected.Store(1)
		logger.Warn("memcache: server ejected", "server", lp.p.cfg.servers[srv.idx].addr,
			"retry_in", lp.p.cfg.retryTimeout.String(), "loop", lp.l.ID())
	}
}

func (be *mcBackend) dial() bool {
	lp := be.lp
	c, err := conn.Dial(lp.l, lp.p.addrs[be.srv.idx], lp.p.cfg.connectTimeout, be, conn.Options{
		MaxInput: lp.p.cfg.lim.MaxValue + memcachewire.MaxResponseLine + 64<<10,
	})
	if err != nil {
		lp.failed(be.srv)
		return false
	}
	be.c = c
	return true
}

func (be *mcBackend) pendingCount() int { return len(be.fifo) - be.head }

// push records that r (its part) awaits this connection's next answer.
func (be *mcBackend) push(r *mcRequest, part int) {
	r.parts++
	lp := be.lp
	be.fifo = append(be.fifo, mcPending{req: r, part: part, sent: lp.l.Now().Sub(lp.p.started)})
	be.srv.st.requests.Add(1)
	be.srv.st.pending.Add(1)
	if lp.p.cfg.serverTimeout > 0 && !be.timer.Armed() {
		lp.l.Schedule(&be.timer, lp.p.cfg.serverTimeout)
	}
}

// serverTimeoutCheck runs when the oldest pending request may be overdue
// (see mcBackend.timer).
func serverTimeoutCheck(arg any) {
	be := arg.(*mcBackend)
	if be.c == nil || be.timedOut || be.pendingCount() == 0 {
		be.struck = false
		return
	}
	lp := be.lp
	timeout := lp.p.cfg.serverTimeout
	left := be.fifo[be.head].sent + timeout - lp.l.Now().Sub(lp.p.started)
	if left > 0 {
		be.struck = false
		lp.l.Schedule(&be.timer, left)
		return
	}
	if !be.struck || be.answered != be.strikeAt {
		be.struck, be.strikeAt = true, be.answered
		lp.l.Schedule(&be.timer, reactor.TimerTick)
		return
	}
	be.struck = false
	be.timedOut = true
	be.srv.st.timeouts.Add(1)
	logger.Warn("memcache: server timed out; connection reset", "server", lp.p.cfg.servers[be.srv.idx].addr,
		"timeout", timeout.String(), "pending", be.pendingCount(), "loop", lp.l.ID())
	be.c.Reset(errServerTimeout) // OnClose answers what was pending
}

func (be *mcBackend) pop() mcPending {
	pd := be.fifo[be.head]
	be.fifo[be.head] = mcPending{}
	be.head++
	be.answered++
	if be.head == len(be.fifo) {
		be.fifo = be.fifo[:0]
		be.head = 0
	}
	be.srv.st.pending.Add(-1)
	return pd
}

func (be *mcBackend) OnOpen(c *conn.Conn) {
	// The failure count is cleared by an answer, not by the connect: a
	// server that accepts and never answers (--server-timeout) is failing.
	be.open = true
	be.srv.st.connects.Add(1)
	be.srv.st.connected.Add(1)
	// Requests written while connecting wait in the output queue; a
	// zero-length reservation schedules the flush that sends them.
	c.Reserve(0)
}

func (be *mcBackend) OnData(c *conn.Conn, data []byte) int {
	lp := be.lp
	maxValue := lp.p.cfg.lim.MaxValue
	off := 0
	var resp memcachewire.Response
	for off < len(data) {
		if be.pendingCount() == 0 {
			be.srv.st.protocolErrors.Add(1)
			c.Abort(errUnexpectedResponse)
			return len(data)
		}
		st := memcachewire.ParseResponse(data[off:], maxValue, &resp)
		if st == memcachewire.Incomplete {
			break
		}
		if st != memcachewire.OK {
			be.srv.st.protocolErrors.Add(1)
			c.Abort(fmt.Errorf("memcache: server %s: %v", lp.p.cfg.servers[be.srv.idx].addr, st))
			return len(data)
		}
		pd := be.fifo[be.head]
		lp.deliver(pd, resp.Kind, data[off:off+resp.Size])
		off += resp.Size
		if memcachewire.Ends(pd.req.cmd, resp.Kind) {
			be.pop()
			lp.partDone(pd.req)
		}
	}
	if off > 0 {
		be.srv.failures = 0 // it answers
		be.srv.st.responseBytes.Add(uint64(off))
	}
	if len(be.waiters) > 0 && !be.isFull() {
		be.wake()
	}
	return off
}

func (be *mcBackend) wake() {
	ws := be.waiters
	be.waiters = be.waiters[:0]
	for i, cl := range ws {
		ws[i] = nil
		if cl.blockedOn == be {
			cl.resume()
		}
	}
}

func (be *mcBackend) OnHighWater(*conn.Conn) { be.full = true }

func (be *mcBackend) OnLowWater(*conn.Conn) {
	be.full = false
	if !be.isFull() {
		be.wake()
	}
}

func (be *mcBackend) OnClose(c *conn.Conn, err error) {
	lp := be.lp
	wasOpen := be.open
	if wasOpen {
		be.srv.st.connected.Add(-1)
	}
	reply := mcUnavailable
	if be.timedOut {
		reply = mcTimedOut
	}
	lp.l.Cancel(&be.timer)
	be.open, be.c, be.full, be.timedOut, be.struck = false, nil, false, false, false
	lost := be.pendingCount()
	if !wasOpen || err != nil || lost > 0 {
		lp.failed(be.srv)
		if err != nil {
			logger.Debug("memcache: server connection lost", "server", lp.p.cfg.servers[be.srv.idx].addr, "err", err.Error(), "pending", lost)
		}
	}
	for be.pendingCount() > 0 {
		pd := be.pop()
		be.srv.st.unavailable.Add(1)
		r := pd.req
		switch r.kind {
		case reqSingle:
			lp.deliver(pd, memcachewire.RespServerError, reply)
		default:
			r.setErr(reply)
		}
		lp.partDone(r)
	}
	be.fifo, be.head = nil, 0
	be.wake()
}

// ---- stats ----

func (p *mcProxy) statsReply(req *memcachewire.Request) []byte {
	if _, e := nextField(req.Line, 0); e != len(req.Line) {
		// "stats <group>": the proxy keeps no per-group statistics; a
		// group memcached knows answers an empty list, others ERROR.
		switch string(bytes.TrimSpace(req.Line[e:])) {
		case "settings", "items", "slabs", "sizes", "conns", "detail dump", "extstore":
			return mcEND
		}
		return memcachewire.ErrUnknown.Reply()
	}
	now := time.Now()
	b := make([]byte, 0, 256)
	stat := func(name string, v uint64) {
		b = append(b, "STAT "...)
		b = append(b, name...)
		b = append(b, ' ')
		b = strconv.AppendUint(b, v, 10)
		b = append(b, crlf...)
	}
	stat("pid", uint64(os.Getpid()))
	stat("uptime", uint64(now.Sub(p.started)/time.Second))
	stat("time", uint64(now.Unix()))
	b = append(b, "STAT version scalestack-memcache\r\n"...)
	stat("total_connections", p.clients.Load())
	stat("servers", uint64(len(p.cfg.servers)))
	return append(b, mcEND...)
}

// nextField returns where the space-separated field at i starts and where
// the next one does.
func nextField(line []byte, i int) (int, int) {
	for i < len(line) && line[i] == ' ' {
		i++
	}
	s := i
	for i < len(line) && line[i] != ' ' {
		i++
	}
	for i < len(line) && line[i] == ' ' {
		i++
	}
	return s, i
}

// ---- metrics ----

type mcCollector struct {
	p     *mcProxy
	descs []mcMetric
}

type mcMetric struct {
	desc *prometheus.Desc
	kind prometheus.ValueType
	get  func(s *mcServerStats) float64
}

func newMemcacheCollector(p *mcProxy) *mcCollector {
	def := func(name, help string, kind prometheus.ValueType, get func(s *mcServerStats) float64) mcMetric {
		return mcMetric{desc: prometheus.NewDesc("scalestack_memcache_server_"+name, help, []string{"server"}, nil), kind: kind, get: get}
	}
	return &mcCollector{p: p, descs: []mcMetric{
		def("requests_total", "Commands sent to the server (a split retrieval counts once per server).", prometheus.CounterValue, func(s *mcServerStats) float64 { return float64(s.requests.Load()) }),
		def("unavailable_total", "Requests answered SERVER_ERROR because the server was down or ejected or its connection failed.", prometheus.CounterValue, func(s *mcServerStats) float64 { return float64(s.unavailable.Load()) }),
		def("connects_total", "Connections established to the server.", prometheus.CounterValue, func(s *mcServerStats) float64 { return float64(s.connects.Load()) }),
		def("failures_total", "Failed connects, lost connections and connections reset by --server-timeout.", prometheus.CounterValue, func(s *mcServerStats) float64 { return float64(s.failures.Load()) }),
		def("ejections_total", "Times a loop ejected the server after --server-failure-limit consecutive failures.", prometheus.CounterValue, func(s *mcServerStats) float64 { return float64(s.ejections.Load()) }),
		def("timeouts_total", "Connections reset because a request waited --server-timeout for its answer.", prometheus.CounterValue, func(s *mcServerStats) float64 { return float64(s.timeouts.Load()) }),
		def("protocol_errors_total", "Server connections closed because the server sent something that is not a memcached response.", prometheus.CounterValue, func(s *mcServerStats) float64 { return float64(s.protocolErrors.Load()) }),
		def("response_bytes_total", "Response bytes read from the server.", prometheus.CounterValue, func(s *mcServerStats) float64 { return float64(s.responseBytes.Load()) }),
		def("connections", "Open connections to the server (all loops).", prometheus.GaugeValue, func(s *mcServerStats) float64 { return float64(s.connected.Load()) }),
		def("ejected_loops", "Loops that have the server ejected now.", prometheus.GaugeValue, func(s *mcServerStats) float64 { return float64(s.ejected.Load()) }),
		def("pending", "Requests sent to the server and not yet answered.", prometheus.GaugeValue, func(s *mcServerStats) float64 { return float64(s.pending.Load()) }),
	}}
}

func (mc *mcCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range mc.descs {
		ch <- m.desc
	}
}

func (mc *mcCollector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range mc.descs {
		for s, sc := range mc.p.cfg.servers {
			var v float64
			for l := range mc.p.stats {
				v += m.get(&mc.p.stats[l][s])
			}
			ch <- prometheus.MustNewConstMetric(m.desc, m.kind, v, sc.addr)
		}
	}
}

// ---- command ----

func memcacheModule(listen conn.Addr, spread bool, cfg mcConfig) (module, error) {
	if cfg.sql != nil {
		return memcacheSQLModule(listen, spread, cfg)
	}
	p, err := newMemcacheProxy(cfg)
	if err != nil {
		return module{}, err
	}
	return module{
		name: "memcache",
		listen: conn.ListenConfig{Addr: listen, Spread: spread, NewHandler: p.newHandler, Options: conn.Options{
			// A storage command waits whole in the input buffer.
			MaxInput: cfg.lim.MaxValue + cfg.lim.MaxKeysLine + 256<<10,
		}},
		collectors: []prometheus.Collector{newMemcacheCollector(p)},
		start:      p.start,
		status: func() any {
			out := map[string]any{}
			for s, sc := range p.cfg.servers {
				var conns, ejected, pending int64
				for l := range p.stats {
					conns += p.stats[l][s].connected.Load()
					ejected += p.stats[l][s].ejected.Load()
					pending += p.stats[l][s].pending.Load()
				}
				out[sc.addr] = map[string]any{"weight": sc.weight, "ketama_name": sc.name, "connections": conns, "ejected_loops": ejected, "pending": pending}
			}
			return map[string]any{"servers": out}
		},
	}, nil
}

func memcacheFlags(stderr io.Writer) (*flag.FlagSet, *engineFlags, func() (module, error)) {
	fs, ef := newServerFlags("memcache", stderr, "")
	listen := fs.String("listen", "127.0.0.1:11311", "address to listen on: host:port, or unix:/path")
	servers := fs.String("servers", "", "memcached servers, comma-separated HOST:PORT[:WEIGHT][ NAME] as in nutcracker.yml (NAME, when given, replaces host:port in the ketama points); required")
	hash := fs.String("hash", "fnv1a_64", "key hash, as twemproxy's hash: fnv1a_64, fnv1_64, fnv1a_32, fnv1_32 or md5")
	hashTag := fs.String("hash-tag", "", "two characters, e.g. {}: only the part of a key between them is hashed (twemproxy's hash_tag)")
	conns := fs.Int("server-conns", 1, "connections from each loop to each server")
	failureLimit := fs.Int("server-failure-limit", 2, "consecutive failures (failed connects, lost connections, --server-timeout; an answer clears the count) after which a loop ejects a server")
	retry := fs.Duration("server-retry-timeout", 30*time.Second, "how long an ejected server's keys are answered SERVER_ERROR before it is dialled again")
	connectTimeout := fs.Duration("connect-timeout", time.Second, "connect timeout to a server")
	serverTimeout := fs.Duration("server-timeout", time.Second, "how long a request sent to a server may wait for its answer; then that server connection is reset, what was pending on it is answered "+strconv.Quote(string(bytes.TrimSpace(mcTimedOut)))+" and it counts as a failure of the server (nutcracker's timeout:; 0: wait indefinitely)")
	maxItem := fs.Int("max-item-size", memcachewire.DefaultMaxValue, "largest data block accepted from clients and servers (SERVER_ERROR object too large for cache beyond); keep it at least the servers' -I")
	maxPipeline := fs.Int("max-pipeline", 256, "requests one client may have outstanding; its input is not read beyond")
	maxQueue := fs.Int("max-server-queue", 4096, "requests one server connection may have outstanding; clients that need it wait")
	spread := fs.Bool("spread", false, "accept on one loop and hand connections round-robin")
	sqlFlags := memcacheSQLFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: scalestack memcache --servers HOST:PORT[:WEIGHT],... [flags]\n       scalestack memcache --backend mysql --mysql HOST:PORT --mysql-user U --users FILE --account NAME --table T [flags]\n\nA memcached proxy: every key goes to the server twemproxy (nutcracker) would pick with the same\nserver list and hash (ketama), many clients' requests pipelined onto a few connections per server.\nA down server's keys get %q.\n\nWith --backend mysql, the items are the rows of a MySQL/MariaDB table instead (key, value and\noptional flags, exptime and cas columns), reached through the MySQL proxy's pool of --mysql-conns\nconnections: get, gets, gat, gats, set, add, replace, append, prepend, cas, delete, incr, decr and touch, with\nmemcached's semantics (cas atomic in the server); other commands get %q.\n\nFlags:\n", bytes.TrimSpace(mcUnavailable), bytes.TrimSpace(mcSQLUnsupported))
		fs.PrintDefaults()
	}
	return fs, ef, func() (module, error) {
		sqlConf, err := sqlFlags()
		if err != nil {
			return module{}, err
		}
		var list []mcServerConf
		if sqlConf == nil { // a table has no memcached servers behind it
			if list, err = parseMemcacheServers(*servers); err != nil {
				return module{}, fmt.Errorf("--servers: %w", err)
			}
		}
		h, ok := keyHashes[*hash]
		if !ok {
			return module{}, fmt.Errorf("--hash: unknown hash %q", *hash)
		}
		if *hashTag != "" && len(*hashTag) != 2 {
			return module{}, fmt.Errorf("--hash-tag: want two characters, e.g. {}")
		}
		switch {
		case *conns < 1 || *conns > 64:
			return module{}, fmt.Errorf("--server-conns: want 1 to 64")
		case *failureLimit < 1:
			return module{}, fmt.Errorf("--server-failure-limit: want at least 1")
		case *retry <= 0:
			return module{}, fmt.Errorf("--server-retry-timeout: want a positive duration")
		case *connectTimeout <= 0:
			return module{}, fmt.Errorf("--connect-timeout: want a positive duration")
		case *serverTimeout < 0:
			return module{}, fmt.Errorf("--server-timeout: want a positive duration, or 0 for none")
		case *maxItem < 1 || *maxItem > 1<<30:
			return module{}, fmt.Errorf("--max-item-size: want 1 to 1073741824")
		case *maxPipeline < 1:
			return module{}, fmt.Errorf("--max-pipeline: want at least 1")
		case *maxQueue < 1:
			return module{}, fmt.Errorf("--max-server-queue: want at least 1")
		}
		laddr, err := conn.ParseAddr(*listen)
		if err != nil {
			return module{}, fmt.Errorf("--listen: %w", err)
		}
		cfg := mcConfig{
			servers: list, hash: h, hashTag: *hashTag,
			lim:            memcachewire.Limits{MaxValue: *maxItem}.WithDefaults(),
			connsPerServer: *conns, failureLimit: *failureLimit, retryTimeout: *retry,
			connectTimeout: *connectTimeout, serverTimeout: *serverTimeout,
			maxPipeline: *maxPipeline, maxServerQueue: *maxQueue,
			sql: sqlConf,
		}
		return memcacheModule(laddr, *spread, cfg)
	}
}
