package pool

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/mysqlwire"
	"github.com/scalestack/scalestack/reactor"
)

type backendPhase uint8

const (
	bDown       backendPhase = iota // waiting to reconnect
	bConnecting                     // TCP connect in progress
	bGreeting                       // waiting for the server's handshake
	bAuth                           // authentication exchange
	bReady                          // logged in
)

// backendStep says what the response being read belongs to.
type backendStep uint8

const (
	stepNone       backendStep = iota
	stepSyncSchema             // COM_INIT_DB replaying the session's schema
	stepSyncVars               // SET replaying session variables
	stepSyncOption             // COM_SET_OPTION replaying multi-statements
	stepStmtSchema             // COM_INIT_DB to the schema a statement was prepared in
	stepPrepare                // COM_STMT_PREPARE made lazily before an EXECUTE
	stepMain                   // the client's own command: relayed
	stepReset                  // COM_RESET_CONNECTION / COM_CHANGE_USER after a pinned client left
	stepPing                   // COM_PING health check of an idle backend
	// stepNoSchema: COM_CHANGE_USER without a schema, for a session that has
	// none on a backend that has one (nothing else clears it).
	stepNoSchema
)

var (
	errBackendProtocol = errors.New("pool: backend protocol error")
	errHandshakeTimout = errors.New("pool: backend handshake timed out")
	errUnknownState    = errors.New("pool: backend state unknown")
)

// backendStmt is a statement prepared on one backend connection.
type backendStmt struct {
	id uint32
	// types are the parameter types the statement was last executed with;
	// an EXECUTE that omits types relies on them.
	types   []byte
	lastUse uint64
}

// backend is one of the N pooled server connections. It lives forever: when
// its connection breaks it reconnects (with backoff) instead of being
// replaced, which is what keeps the pool at exactly N.
type backend struct {
	p   *Proxy
	sh  *shard // the loop that owns it now
	idx int
	// target is the server (Config.Targets index) it connects to.
	target int
	c      *conn.Conn
	peer   string

	phase   backendPhase
	caps    mysqlwire.Capabilities
	nonce   []byte
	plugin  string
	flavor  backendFlavor
	tracker mysqlwire.ResponseTracker
	timer   reactor.Timer
	backoff time.Duration
	// pubKeyAsked: a caching_sha2 full authentication asked for the key.
	pubKeyAsked bool
	// loggedIn: counted in BackendsConnected (stays set through a 5.5
	// COM_CHANGE_USER reset).
	loggedIn bool
	// everLoggedIn tells a reconnect from the first login.
	everLoggedIn bool
	// idleSince is when the backend last went on an idle list (health
	// checks ping those idle for a health interval).
	idleSince time.Time

	state sessionState
	owner *session
	step  backendStep
	// pausedForClient: reading stopped because the owner's client is slow.
	pausedForClient bool

	stmts     map[stmtKey]*backendStmt
	stmtClock uint64

	scratch []byte
}

func newBackend(p *Proxy, sh *shard, idx, target int) *backend {
	b := &backend{p: p, sh: sh, idx: idx, target: target, peer: p.cfg.Targets[target].Addr.String(), stmts: map[stmtKey]*backendStmt{}}
	b.timer.Func = backendTimerFired
	b.timer.Arg = b
	return b
}

func (b *backend) connect() {
	if b.p.stopping.Load() {
		return
	}
	b.phase = bConnecting
	c, err := conn.Dial(b.sh.loop, b.p.targetAddrs[b.target], b.p.cfg.ConnectTimeout, b, conn.Options{})
	if err != nil {
		b.p.logf("backend %d: %v", b.idx, err)
		b.sh.stats.BackendFailures.Add(1)
		b.scheduleReconnect()
		b.sh.noteBackendFailure()
		return
	}
	b.c = c
}

func (b *backend) scheduleReconnect() {
	b.phase = bDown
	if b.p.stopping.Load() {
		return
	}
	if b.backoff == 0 {
		b.backoff = 50 * time.Millisecond
	} else {
		b.backoff = min(b.backoff*2, 10*time.Second)
	}
	// Jitter spreads reconnects so N backends do not storm a recovering
	// server in lock step.
	d := b.backoff/2 + time.Duration(rand.Int64N(int64(b.backoff)))
	b.sh.loop.Schedule(&b.timer, d)
}

func backendTimerFired(arg any) {
	b := arg.(*backend)
	switch b.phase {
	case bDown:
		b.connect()
	case bGreeting, bAuth:
		if b.c != nil {
			b.c.Abort(errHandshakeTimout)
		}
	case bReady:
		if b.step == stepPing {
			b.pingTimedOut()
		}
	}
}

// OnOpen implements conn.Handler (connected, or adopted from another loop).
func (b *backend) OnOpen(c *conn.Conn) {
	b.c = c
	if b.phase == bConnecting {
		b.phase = bGreeting
		b.sh.loop.Schedule(&b.timer, b.p.cfg.ConnectTimeout)
	}
}

// OnClose implements conn.Handler.
func (b *backend) OnClose(c *conn.Conn, err error) {
	if b.c != c {
		return
	}
	b.c = nil
	if err == nil {
		err = errors.New("closed by server")
	}
	b.down(err)
}

// down handles the loss of the connection: the owner is told, the backend's
// state is forgotten and a reconnect is scheduled.
func (b *backend) down(err error) {
	wasReady := b.loggedIn
	b.loggedIn = false
	b.sh.loop.Cancel(&b.timer)
	if wasReady {
		b.sh.stats.BackendsConnected.Add(-1)
		if b.owner == nil && b.step == stepNone {
			b.sh.removeIdle(b)
		}
		if !b.p.stopping.Load() {
			b.p.logf("backend %d: connection lost: %v", b.idx, err)
		}
	} else {
		b.sh.stats.BackendFailures.Add(1)
		if !b.p.stopping.Load() {
			b.p.logf("backend %d: login failed: %v", b.idx, err)
		}
	}
	if b.step == stepPing {
		b.sh.stats.HealthCheckFailures.Add(1)
	}
	owner := b.owner
	b.owner = nil
	b.step = stepNone
	b.pausedForClient = false
	b.forgetStmts()
	if owner != nil {
		owner.backendLost(b)
	}
	b.scheduleReconnect()
	if !wasReady {
		// Only a failed attempt says the server is unreachable; losing
		// logged-in connections (a restart) is first met by reconnecting.
		b.sh.noteBackendFailure()
	}
}

// abandon closes a backend whose state can no longer be trusted.
func (b *backend) abandon(reason error) {
	b.sh.stats.BackendUnknownState.Add(1)
	if b.c != nil {
		b.c.Abort(reason)
	}
}

// OnData implements conn.Handler: it splits input into packets and
// dispatches them.
func (b *backend) OnData(c *conn.Conn, data []byte) int {
	sh := b.sh // a packet may send the backend to another loop
	n := b.onData(c, data)
	sh.stats.BackendBytesIn.Add(uint64(n))
	if sh.relayedOut != 0 {
		sh.stats.ClientBytesOut.Add(sh.relayedOut)
		sh.relayedOut = 0
	}
	return n
}

func (b *backend) onData(c *conn.Conn, data []byte) int {
	off := 0
	for b.c == c && !c.Closed() {
		p, ok, err := mysqlwire.ReadPacket(data[off:], 0)
		if err != nil {
			b.abandon(fmt.Errorf("%w: %v", errBackendProtocol, err))
			return len(data)
		}
		if !ok {
			break
		}
		raw := data[off : off+p.Size]
		off += p.Size
		switch b.phase {
		case bGreeting:
			b.onGreeting(p.Payload)
		case bAuth:
			b.onAuthPacket(p.Payload, p.Seq)
		case bReady:
			b.onResponsePacket(raw, p.Payload)
		default:
			b.abandon(errBackendProtocol)
		}
		if b.pausedForClient {
			break
		}
	}
	return off
}

func (b *backend) onGreeting(payload []byte) {
	if mysqlwire.IsERR(payload) {
		e, _ := mysqlwire.ParseERR(payload)
		b.c.Abort(fmt.Errorf("server refused connection: %d %s", e.Code, e.Message))
		return
	}
	h, err := mysqlwire.ParseHandshake(payload)
	if err != nil {
		b.c.Abort(fmt.Errorf("backend greeting: %w", err))
		return
	}
	if h.Capabilities&mysqlwire.ClientProtocol41 == 0 {
		b.c.Abort(errors.New("backend does not speak protocol 4.1"))
		return
	}
	version := string(h.ServerVersion)
	// In 5.5 mode a newer server must not show through: "5.5.5-10.11…"
	// tells clients they may use what 5.5 lacks.
	if !b.p.cfg.MySQL55 || (strings.HasPrefix(version, "5.5.") && !strings.HasPrefix(version, "5.5.5-")) {
		b.p.version.Store(&version)
	}
	b.flavor = flavorFor(version)
	b.caps = h.Capabilities & b.p.backendCaps
	b.nonce = append(b.nonce[:0], h.AuthPluginData...)
	b.plugin = string(h.AuthPluginName)
	if b.plugin == "" {
		b.plugin = mysqlwire.AuthNativePassword
	}
	hr := mysqlwire.HandshakeResponse{
		Capabilities:  b.caps,
		MaxPacketSize: 1 << 30,
		CharacterSet:  b.p.collation,
		Username:      []byte(b.p.cfg.User),
		AuthResponse:  b.authResponse(b.plugin, b.nonce),
	}
	if b.caps&mysqlwire.ClientPluginAuth != 0 {
		hr.AuthPlugin = []byte(b.plugin)
	}
	pkt, _ := mysqlwire.AppendHandshakeResponse(b.scratch[:0], 1, hr)
	b.sh.stats.BackendBytesOut.Add(uint64(len(pkt)))
	b.c.Write(pkt)
	b.phase = bAuth
	b.pubKeyAsked = false
	b.tracker.StartAuth(b.caps)
}

func (b *backend) authResponse(plugin string, nonce []byte) []byte {
	switch plugin {
	case mysqlwire.AuthCachingSHA2:
		return mysqlwire.CachingSHA2Scramble(b.p.cfg.Password, nonce)
	default:
		return mysqlwire.NativePasswordScramble(b.p.cfg.Password, nonce)
	}
}

// onAuthPacket follows the login (and the COM_CHANGE_USER reset of 5.5
// mode, which goes through the same exchange).
func (b *backend) onAuthPacket(payload []byte, seq uint8) {
	if b.pubKeyAsked && mysqlwire.IsAuthMoreData(payload) {
		// The server's RSA public key for caching_sha2 full authentication.
		b.pubKeyAsked = false
		enc, err := mysqlwire.EncryptCachingSHA2Password(b.p.cfg.Password, b.nonce, payload[1:])
		if err != nil {
			b.c.Abort(err)
			return
		}
		pkt, _ := mysqlwire.AppendPacket(b.scratch[:0], seq+1, enc)
		b.sh.stats.BackendBytesOut.Add(uint64(len(pkt)))
		b.c.Write(pkt)
		return
	}
	prog, err := b.tracker.Feed(payload)
	if err != nil {
		b.c.Abort(fmt.Errorf("backend login: %w", err))
		return
	}
	switch prog {
	case mysqlwire.NeedMore:
		return
	case mysqlwire.ClientTurn:
		switch b.tracker.LastKind() {
		case mysqlwire.KindAuthSwitch:
			sw, err := mysqlwire.ParseAuthSwitchRequest(payload)
			if err != nil {
				b.c.Abort(err)
				return
			}
			b.plugin = string(sw.PluginName)
			if b.plugin != mysqlwire.AuthNativePassword && b.plugin != mysqlwire.AuthCachingSHA2 {
				b.c.Abort(fmt.Errorf("backend asks for unsupported auth plugin %q", b.plugin))
				return
			}
			b.nonce = append(b.nonce[:0], sw.PluginData...)
			pkt, _ := mysqlwire.AppendAuthSwitchResponse(b.scratch[:0], seq+1, b.authResponse(b.plugin, b.nonce))
			b.sh.stats.BackendBytesOut.Add(uint64(len(pkt)))
			b.c.Write(pkt)
		case mysqlwire.KindAuthMoreData:
			if len(payload) == 2 && payload[1] == mysqlwire.CachingSHA2PerformFullAuth {
				b.pubKeyAsked = true
				pkt, _ := mysqlwire.AppendPacket(b.scratch[:0], seq+1, []byte{mysqlwire.CachingSHA2RequestPublicKey})
				b.sh.stats.BackendBytesOut.Add(uint64(len(pkt)))
				b.c.Write(pkt)
				return
			}
			b.c.Abort(errors.New("backend sent unexpected auth data"))
		}
		return
	}
	if code, _, failed := b.tracker.Err(); failed {
		e, _ := mysqlwire.ParseERR(payload)
		b.c.Abort(fmt.Errorf("backend login as %q refused: %d %s", b.p.cfg.User, code, e.Message))
		return
	}
	step := b.step
	b.phase = bReady
	b.step = stepNone
	b.backoff = 0
	b.sh.loop.Cancel(&b.timer)
	b.freshState("")
	switch step {
	case stepReset:
		// 5.5-mode reset through COM_CHANGE_USER finished.
		b.sh.release(b)
		return
	case stepNoSchema:
		if s := b.owner; s != nil {
			s.proceed() // on to the session's other state, then its command
		} else {
			b.sh.release(b)
		}
		return
	}
	b.loggedIn = true
	if b.everLoggedIn {
		b.sh.stats.BackendReconnects.Add(1)
	}
	b.everLoggedIn = true
	b.sh.stats.BackendsConnected.Add(1)
	b.sh.stats.BackendConnects.Add(1)
	b.sh.noteBackendUp()
	b.sh.giveAdopted(b)
}

// freshState records what a newly logged-in (or reset) connection is like.
func (b *backend) freshState(schema string) {
	b.state = sessionState{schema: schema, names: b.p.defaultNames, multiStmts: 1}
	if b.caps&mysqlwire.ClientMultiStatements == 0 {
		b.state.multiStmts = 0
	}
	b.forgetStmts()
}

// send writes one command packet (sequence id 0) and starts tracking its
// response for step.
func (b *backend) send(step backendStep, payload []byte) {
	b.step = step
	cmd, _ := mysqlwire.CommandOf(payload)
	if _, err := b.tracker.Start(cmd, b.caps); err != nil {
		b.abandon(err)
		return
	}
	b.writePacket(payload)
}

// writePacket frames a command payload (sequence id 0) straight into the
// backend's output. A payload of 16 MiB or more is split by
// mysqlwire.AppendPacket: one header holding only the low 24 bits of its
// length would let the payload's tail run on the server as commands of the
// client's choosing.
func (b *backend) writePacket(payload []byte) {
	dst := b.c.Reserve(mysqlwire.FramedLen(len(payload)))
	mysqlwire.AppendPacket(dst[:0], 0, payload) // fills dst exactly, in place
	b.sh.stats.BackendBytesOut.Add(uint64(len(dst)))
}

// writeFramed writes packets a mysqlwire builder framed (split at 16 MiB
// like writePacket's).
func (b *backend) writeFramed(pkts []byte) {
	b.c.Write(pkts)
	b.sh.stats.BackendBytesOut.Add(uint64(len(pkts)))
}

// forgetStmts drops the record of the backend's prepared statements (the
// connection is gone or was reset).
func (b *backend) forgetStmts() {
	b.sh.stats.BackendStmtsOpen.Add(-int64(len(b.stmts)))
	clear(b.stmts)
}

func (b *backend) onResponsePacket(raw, payload []byte) {
	switch b.step {
	case stepNone:
		b.abandon(fmt.Errorf("%w: unsolicited packet 0x%02x", errBackendProtocol, first(payload)))
		return
	case stepReset:
		b.onResetPacket(payload)
		return
	case stepPing:
		b.onPingPacket(payload)
		return
	}
	s := b.owner
	if s == nil {
		b.abandon(errUnknownState)
		return
	}
	s.onBackendPacket(b, raw, payload)
}

func first(p []byte) byte {
	if len(p) == 0 {
		return 0
	}
	return p[0]
}

// reset returns a backend that a pinned client left to a clean state, then
// to the pool.
func (b *backend) reset() {
	b.owner = nil
	b.resumeIfPaused()
	b.sh.stats.BackendResets.Add(1)
	if b.p.cfg.MySQL55 {
		b.changeUser(stepReset)
		return
	}
	b.send(stepReset, []byte{byte(mysqlwire.ComResetConnection)})
}

func (b *backend) onResetPacket(payload []byte) {
	prog, err := b.tracker.Feed(payload)
	if err != nil {
		b.abandon(err)
		return
	}
	if prog != mysqlwire.Complete {
		b.abandon(errUnknownState)
		return
	}
	if _, _, failed := b.tracker.Err(); failed {
		b.abandon(errUnknownState)
		return
	}
	schema := b.state.schema // COM_RESET_CONNECTION keeps the database
	b.freshState(schema)
	// Whether the reset restores the handshake charset differs between
	// servers; replay it on next use to be sure.
	b.state.names = namesUnknown
	b.state.multiStmts = multiStmtUnknown
	b.step = stepNone
	b.sh.release(b)
}

// changeUser logs the backend in again as the service account with
// COM_CHANGE_USER and no schema, for step: stepReset (a 5.5 backend's
// reset) or stepNoSchema (the session that owns it has no schema).
func (b *backend) changeUser(step backendStep) {
	pkt, _ := mysqlwire.AppendChangeUser(b.scratch[:0], 0, b.caps, mysqlwire.ChangeUser{
		Username:     []byte(b.p.cfg.User),
		AuthResponse: mysqlwire.NativePasswordScramble(b.p.cfg.Password, b.nonce),
		CharacterSet: uint16(b.p.collation),
		AuthPlugin:   []byte(mysqlwire.AuthNativePassword),
	}) // no schema: the session's is replayed before its next command
	b.scratch = pkt[:0]
	b.step = step
	b.phase = bAuth
	b.plugin = mysqlwire.AuthNativePassword
	b.tracker.StartAuth(b.caps)
	b.writeFramed(pkt)
}

// pauseForClient stops reading while the owner's client drains its output.
func (b *backend) pauseForClient() {
	if b.c != nil && !b.pausedForClient {
		b.pausedForClient = true
		b.c.PauseRead()
	}
}

func (b *backend) resumeIfPaused() {
	if b.pausedForClient {
		b.pausedForClient = false
		if b.c != nil {
			b.c.ResumeRead()
		}
	}
}

// stmtFor returns the backend's statement for k, if prepared here.
func (b *backend) stmtFor(k stmtKey) *backendStmt {
	bs := b.stmts[k]
	if bs != nil {
		b.stmtClock++
		bs.lastUse = b.stmtClock
	}
	return bs
}

// addStmt records a statement prepared here, first closing the least
// recently used one when the backend is at its bound, so churn never
// exhausts max_prepared_stmt_count.
func (b *backend) addStmt(k stmtKey, id uint32) *backendStmt {
	if old := b.stmts[k]; old != nil {
		// Prepared again (the loop's cache had forgotten it): keep one.
		b.closeStmt(old.id)
		delete(b.stmts, k)
		b.sh.stats.BackendStmtsOpen.Add(-1)
	}
	if len(b.stmts) >= b.p.cfg.MaxStmtsPerBackend {
		var oldKey stmtKey
		var old *backendStmt
		for k, v := range b.stmts {
			if old == nil || v.lastUse < old.lastUse {
				oldKey, old = k, v
			}
		}
		delete(b.stmts, oldKey)
		b.sh.stats.BackendStmtsOpen.Add(-1)
		b.closeStmt(old.id)
		b.sh.stats.BackendStmtEvictions.Add(1)
	}
	b.stmtClock++
	bs := &backendStmt{id: id, lastUse: b.stmtClock}
	b.stmts[k] = bs
	b.sh.stats.BackendStmtsOpen.Add(1)
	return bs
}

// closeStmt sends COM_STMT_CLOSE (the server does not answer it).
func (b *backend) closeStmt(id uint32) {
	var buf [mysqlwire.HeaderSize + 5]byte
	pkt, _ := mysqlwire.AppendStmtClose(buf[:0], 0, id)
	b.writeFramed(pkt)
}

func putUint32(b []byte, v uint32) {
	_ = b[3]
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

func getUint32(b []byte) uint32 {
	_ = b[3]
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// OnHighWater implements conn.WatermarkHandler: what backs up towards a
// backend is a client's LOAD DATA LOCAL stream, so the client is paused
// (the backend's own reading must go on).
func (b *backend) OnHighWater(*conn.Conn) {
	if s := b.owner; s != nil && s.infile {
		s.c.PauseRead()
	}
}

// OnLowWater resumes the client paused by OnHighWater.
func (b *backend) OnLowWater(*conn.Conn) {
	if s := b.owner; s != nil && s.infile {
		s.c.ResumeRead()
	}
}
