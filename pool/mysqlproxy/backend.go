package mysqlproxy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/mysqlwire"
	"github.com/scalestack/scalestack/pool"
)

type backendPhase uint8

const (
	bGreeting backendPhase = iota // waiting for the server's handshake
	bAuth                         // authentication exchange (login, or COM_CHANGE_USER)
	bReady                        // logged in
)

// backendDuty says what the response being read belongs to. Only the
// backend's own methods write it (start, idle).
type backendDuty uint8

const (
	dutyNone       backendDuty = iota
	dutyLogin                  // the login of a new connection
	dutyExchange               // a client's exchange (b.ex): its sync steps and its command
	dutyReset                  // COM_RESET_CONNECTION / COM_CHANGE_USER after a pinned client left
	dutyPing                   // COM_PING health check of an idle backend
	dutyLoginTrack             // the tracking SET ending a login
	dutyResetTrack             // the tracking SET ending a reset
	dutyDrainProbe             // the rest of a SELECT LAST_INSERT_ID() whose session left
	dutyKill                   // KILL QUERY sent for a session's KILL QUERY (killer)
	dutyEmbed                  // an embedded caller's request (emb; embed.go)
	dutyPipeSet                // the SET READ ONLY written before riders (pipeline.go)
	dutyPipeDrain              // the response of a rider or owner whose session left, dropped
)

var (
	errBackendProtocol = errors.New("pool: backend protocol error")
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

// backend is the MySQL side of one of the pool's N backend connections
// (pool.Backend keeps the connection, its reconnects and its place in the
// pool): the login, what the server's session is known to be (state,
// prepared statements), and the response being read. Its fields are
// written only by its own methods.
type backend struct {
	p  *Proxy
	pb *pool.Backend

	phase backendPhase
	duty  backendDuty
	ex    *exchange // the exchange in flight (dutyExchange)
	emb   *Request  // the embedded request in flight (dutyEmbed)
	// ident is the server account the connection is logged in as (or
	// logging in as): the service account after a connect, a client's
	// after a COM_CHANGE_USER to it (opIdentity). Its pool class says
	// the same to the pool.
	ident   *identity
	caps    mysqlwire.Capabilities
	nonce   []byte
	plugin  string
	flavor  backendFlavor
	tracker mysqlwire.ResponseTracker
	// pubKeyAsked: a caching_sha2 full authentication asked for the key.
	pubKeyAsked bool
	// tlsUp: the connection was upgraded to TLS (Config.BackendTLS).
	tlsUp bool

	state sessionState
	// level is how much of trackingSETs the backend's server accepts (its
	// target's level when it logged in, lowered by a refusal).
	level trackLevel
	// tracking: the server reports session state changes (the tracking
	// SET ran since the last login or reset; see trackingSETs).
	tracking bool
	// withheld: a result set's EOF said the session state changed, but
	// only an OK packet carries the report (the backend is opened without
	// DEPRECATE_EOF): the next OK will carry it. Until then whoever runs
	// here next would be blamed for it, so the backend is reset before it
	// serves anyone else.
	withheld bool
	// unknown: a response failed where the server may have changed session
	// state without reporting it (an ERR from CALL, EXECUTE, EXECUTE
	// IMMEDIATE or a multi-statement): reset before anyone else uses it.
	unknown bool
	// diagOf is the session whose statement left the diagnostics the
	// server holds (warnings, an error), noDiag after a login or reset, or
	// proxyDiag for a sync operation's. A statement that uses no table
	// leaves them in place, so another session's SHOW WARNINGS here would
	// show them: the exchange resets the backend first (opClearDiag).
	diagOf uint32
	// lastID is the server session's LAST_INSERT_ID() when lastIDKnown
	// (it is not after a login or reset, or a statement that may have
	// changed it without the proxy asking).
	lastID      uint64
	lastIDKnown bool
	// mainTracker keeps the tracker of a command's response while the
	// exchange asks for LAST_INSERT_ID() after it (opLastIDProbe).
	mainTracker mysqlwire.ResponseTracker
	// probed is the value lastIDProbe answered (probeOK: one was read).
	probed  uint64
	probeOK bool
	// resetAfterDrain: Reset came while dutyDrainProbe read on.
	resetAfterDrain bool
	// drainCmds[drainAt:drainN] are the commands whose responses
	// dutyDrainProbe reads after the current one: the rest of a batch
	// whose exchange ended early (exchange.end).
	drainCmds       [numOps]mysqlwire.Command
	drainAt, drainN uint8
	// pausedForClient: reading stopped because the exchange's client is
	// slow.
	pausedForClient bool

	stmts     map[stmtKey]*backendStmt
	stmtClock uint64
	// sweptOn and sweptAt: the loop and its stmtsReleased when the
	// backend last closed the statements nobody there holds (sweepStmts).
	sweptOn *proxyLoop
	sweptAt uint64

	// threadID is the server's id of this connection (its greeting).
	threadID uint32
	// killer: the KILL QUERY this backend sends (dutyKill). killPending:
	// a KILL QUERY against the statement this backend runs is in flight;
	// heldForKill: its session is done and the backend waits for that
	// kill's answer before it goes back (kill.go).
	killer      *queryKill
	killPending *queryKill
	heldForKill bool

	// pipe holds the commands written behind b.ex (pipeline.go).
	pipe pipeState

	scratch []byte
}

// NewServer implements pool.Protocol.
func (p *Proxy) NewServer(pb *pool.Backend) pool.Server {
	b := &backend{p: p, pb: pb, stmts: map[stmtKey]*backendStmt{}}
	if pb.Index() != len(p.backends) {
		panic("mysqlproxy: pool created backends out of order")
	}
	p.backends = append(p.backends, b) // by pb.Index()
	return b
}

// loggedIn reports whether the backend is logged in (on its loop).
func (b *backend) loggedIn() bool { return b.phase == bReady && b.c() != nil }

// loop is the part of the proxy on the loop that owns the backend now.
func (b *backend) loop() *proxyLoop { return b.p.loops[b.pb.Loop().ID()] }

func (b *backend) c() *conn.Conn { return b.pb.Conn() }

// Open implements pool.Server: a new connection waits for the greeting.
func (b *backend) Open() {
	b.phase = bGreeting
	b.duty = dutyLogin
	b.setIdentity(b.p.idents.service)
}

// setIdentity records the account the connection logs in as. Its class
// keeps its capability flags (CLIENT_FOUND_ROWS), which only a new login
// changes: COM_CHANGE_USER carries none.
func (b *backend) setIdentity(id *identity) {
	b.ident = id
	c := b.pb.Class()
	c.Account = id.id
	b.pb.SetClass(c)
}

// Down implements pool.Server: the connection is gone.
func (b *backend) Down(error) {
	b.failPipe()
	b.phase = bGreeting
	b.duty = dutyNone
	b.ex = nil
	b.emb = nil
	b.pausedForClient = false
	b.killer, b.killPending, b.heldForKill = nil, nil, false
	b.resetAfterDrain = false
	b.forgetStmts()
}

// Quit implements pool.Server: COM_QUIT, so the server does not count an
// aborted connection.
func (b *backend) Quit() {
	pkt, _ := mysqlwire.AppendCommand(b.scratch[:0], 0, mysqlwire.ComQuit, nil)
	b.scratch = pkt[:0]
	b.writeFramed(pkt)
}

// abandon closes a backend whose state can no longer be trusted.
func (b *backend) abandon(reason error) { b.pb.Abandon(reason) }

// Data implements pool.Server: it splits input into packets and
// dispatches them.
func (b *backend) Data(data []byte) int {
	pl := b.loop() // a packet may send the backend to another loop
	n := b.onData(b.c(), data)
	if b.duty == dutyNone {
		b.pb.Answered()
	}
	if pl.relayedOut != 0 {
		pl.stats.ClientBytesOut.Add(pl.relayedOut)
		pl.relayedOut = 0
	}
	return n
}

func (b *backend) onData(c *conn.Conn, data []byte) int {
	off := 0
	for b.c() == c && !c.Closed() {
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
			if b.duty == dutyNone && len(b.pipe.q) > 0 {
				b.pipeNext() // an exchange ended outside this loop
			}
			b.onResponsePacket(raw, p.Payload)
			if b.duty == dutyNone && b.pipe.piping && b.c() == c {
				b.pipeNext() // the next pipelined response follows
			}
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
		b.pb.Abort(fmt.Errorf("server refused connection: %d %s", e.Code, e.Message))
		return
	}
	h, err := mysqlwire.ParseHandshake(payload)
	if err != nil {
		b.pb.Abort(fmt.Errorf("backend greeting: %w", err))
		return
	}
	if h.Capabilities&mysqlwire.ClientProtocol41 == 0 {
		b.pb.Abort(errors.New("backend does not speak protocol 4.1"))
		return
	}
	version := string(h.ServerVersion)
	// In 5.5 mode a newer server must not show through: "5.5.5-10.11…"
	// tells clients they may use what 5.5 lacks.
	if !b.p.cfg.MySQL55 || (strings.HasPrefix(version, "5.5.") && !strings.HasPrefix(version, "5.5.5-")) {
		b.p.version.Store(&version)
	}
	b.flavor = flavorFor(version)
	b.threadID = h.ConnectionID
	b.caps = h.Capabilities & b.p.backendCaps
	b.p.noteBackendCaps(h.Capabilities)
	if b.pb.Class().Flags&classFoundRows != 0 {
		// Matched rather than changed rows: what clients that asked for
		// CLIENT_FOUND_ROWS get (see session.Granted).
		b.caps |= h.Capabilities & mysqlwire.ClientFoundRows
	}
	b.level = trackLevel(b.p.trackLevels[b.pb.Target()].Load())
	b.nonce = append(b.nonce[:0], h.AuthPluginData...)
	b.plugin = string(h.AuthPluginName)
	if b.plugin == "" {
		b.plugin = mysqlwire.AuthNativePassword
	}
	b.tlsUp = false
	if b.p.cfg.BackendTLS != nil {
		if h.Capabilities&mysqlwire.ClientSSL != 0 {
			b.startTLS()
			return
		}
		if !b.p.cfg.BackendTLSOptional {
			b.pb.Abort(errors.New("backend does not offer TLS (--backend-tls asks for it)"))
			return
		}
	}
	b.sendLogin(1)
}

// startTLS asks the server for TLS (SSLRequest, sequence id 1) and upgrades
// the connection; the login follows over TLS once the handshake is done
// (tlsStarted). The pool's connect timeout bounds it all.
func (b *backend) startTLS() {
	b.caps |= mysqlwire.ClientSSL
	hr := mysqlwire.HandshakeResponse{Capabilities: b.caps, MaxPacketSize: 1 << 30, CharacterSet: b.p.collation, SSLRequest: true}
	pkt, _ := mysqlwire.AppendHandshakeResponse(b.scratch[:0], 1, hr)
	b.loop().stats.BackendBytesOut.Add(uint64(len(pkt)))
	c := b.c()
	c.Write(pkt)
	if err := c.StartTLSClient(b.p.cfg.BackendTLS(b.pb.Target()), b.tlsStarted); err != nil {
		b.pb.Abort(fmt.Errorf("backend TLS: %w", err))
	}
}

// tlsStarted runs on the loop when the backend's TLS handshake has ended:
// the login goes on over TLS (sequence id 2). A failed handshake (a
// certificate that does not verify, say) closes the connection, which
// reconnects with backoff like any failed login.
func (b *backend) tlsStarted(err error) {
	if err != nil {
		b.p.logf("backend %s: TLS handshake: %v", b.p.cfg.Targets[b.pb.Target()].Addr, err)
		return
	}
	if b.c() == nil || b.phase != bGreeting {
		return
	}
	b.tlsUp = true
	b.sendLogin(2)
}

// sendLogin writes the HandshakeResponse with sequence id seq.
func (b *backend) sendLogin(seq uint8) {
	auth, err := b.ident.authResponse(b.plugin, b.nonce)
	if err != nil {
		b.pb.Abort(fmt.Errorf("backend login as %q: %w", b.ident, err))
		return
	}
	hr := mysqlwire.HandshakeResponse{
		Capabilities:  b.caps,
		MaxPacketSize: 1 << 30,
		CharacterSet:  b.p.collation,
		Username:      []byte(b.ident.name),
		AuthResponse:  auth,
	}
	if b.caps&mysqlwire.ClientPluginAuth != 0 {
		hr.AuthPlugin = []byte(b.plugin)
	}
	pkt, _ := mysqlwire.AppendHandshakeResponse(b.scratch[:0], seq, hr)
	b.loop().stats.BackendBytesOut.Add(uint64(len(pkt)))
	b.c().Write(pkt)
	b.phase = bAuth
	b.pubKeyAsked = false
	b.tracker.StartAuth(b.caps)
}

// onAuthPacket follows the login (and the COM_CHANGE_USER reset of 5.5
// mode, which goes through the same exchange).
func (b *backend) onAuthPacket(payload []byte, seq uint8) {
	if b.pubKeyAsked && mysqlwire.IsAuthMoreData(payload) {
		// The server's RSA public key for caching_sha2 full authentication.
		b.pubKeyAsked = false
		if b.ident.password == nil && b.ident.stage1 != nil {
			b.loginRefused(nil, 0, errNoPassword.Error())
			return
		}
		enc, err := mysqlwire.EncryptCachingSHA2Password(b.ident.password, b.nonce, payload[1:])
		if err != nil {
			b.pb.Abort(err)
			return
		}
		pkt, _ := mysqlwire.AppendPacket(b.scratch[:0], seq+1, enc)
		b.loop().stats.BackendBytesOut.Add(uint64(len(pkt)))
		b.c().Write(pkt)
		return
	}
	prog, err := b.tracker.Feed(payload)
	if err != nil {
		b.pb.Abort(fmt.Errorf("backend login: %w", err))
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
				b.pb.Abort(err)
				return
			}
			b.plugin = string(sw.PluginName)
			if b.plugin != mysqlwire.AuthNativePassword && b.plugin != mysqlwire.AuthCachingSHA2 {
				b.pb.Abort(fmt.Errorf("backend asks for unsupported auth plugin %q", b.plugin))
				return
			}
			b.nonce = append(b.nonce[:0], sw.PluginData...)
			auth, err := b.ident.authResponse(b.plugin, b.nonce)
			if err != nil {
				b.loginRefused(nil, 0, err.Error())
				return
			}
			pkt, _ := mysqlwire.AppendAuthSwitchResponse(b.scratch[:0], seq+1, auth)
			b.loop().stats.BackendBytesOut.Add(uint64(len(pkt)))
			b.c().Write(pkt)
		case mysqlwire.KindAuthMoreData:
			if len(payload) == 2 && payload[1] == mysqlwire.CachingSHA2PerformFullAuth && b.tlsUp {
				// Over TLS the password goes in clear, as clients send it.
				if b.ident.password == nil && b.ident.stage1 != nil {
					b.loginRefused(nil, 0, errNoPassword.Error())
					return
				}
				pkt, _ := mysqlwire.AppendPacket(b.scratch[:0], seq+1, mysqlwire.CachingSHA2CleartextPassword(b.ident.password))
				b.loop().stats.BackendBytesOut.Add(uint64(len(pkt)))
				b.c().Write(pkt)
				return
			}
			if len(payload) == 2 && payload[1] == mysqlwire.CachingSHA2PerformFullAuth {
				b.pubKeyAsked = true
				pkt, _ := mysqlwire.AppendPacket(b.scratch[:0], seq+1, []byte{mysqlwire.CachingSHA2RequestPublicKey})
				b.loop().stats.BackendBytesOut.Add(uint64(len(pkt)))
				b.c().Write(pkt)
				return
			}
			b.pb.Abort(errors.New("backend sent unexpected auth data"))
		}
		return
	}
	if code, _, failed := b.tracker.Err(); failed {
		e, _ := mysqlwire.ParseERR(payload)
		b.loginRefused(payload, code, string(e.Message))
		return
	}
	b.phase = bReady
	b.freshState("")
	switch b.duty {
	case dutyReset:
		// 5.5-mode reset through COM_CHANGE_USER finished.
		b.duty = dutyNone
		b.pb.ResetDone()
	case dutyExchange:
		// COM_CHANGE_USER without a schema, a step of the exchange.
		b.ex.synced()
	case dutyEmbed:
		// The same, a step of an embedded request.
		if b.emb != nil {
			b.emb.synced()
		}
	case dutyKill:
		// COM_CHANGE_USER to the account of the statement to kill.
		b.sendKillQuery(b.killer, b.killer.victim.threadID)
	default:
		// Tracking is turned on as part of the login, so it costs no
		// round trip before the backend's first command.
		if b.tracks() {
			b.sendTracking(dutyLoginTrack, nil)
			return
		}
		b.duty = dutyNone
		b.pb.LoggedIn()
	}
}

// loginRefused ends a login or COM_CHANGE_USER that failed: the server's
// ERR (errPayload; nil when the proxy gave up itself) or the proxy's
// reason. The connection is closed (a server may close it after a failed
// COM_CHANGE_USER, and its session is no longer any account's) and
// reconnects as the service account. When the COM_CHANGE_USER was an
// exchange's change to its client's identity, the client gets the
// server's refusal and is disconnected, as a failed login would be: the
// account cannot run on the server (no such account for the proxy's
// host, another password, or a plugin other than mysql_native_password).
func (b *backend) loginRefused(errPayload []byte, code mysqlwire.ErrCode, msg string) {
	err := fmt.Errorf("backend login as %q refused: %d %s", b.ident, code, msg)
	if ex := b.ex; b.duty == dutyExchange && ex != nil && ex.step == opIdentity {
		b.p.logf("backend %d: %v", b.pb.Index(), err)
		ex.identityRefused(errPayload, msg)
		b.abandon(err)
		return
	}
	b.pb.Abort(err)
}

// freshState records what a newly logged-in (or reset) connection is like.
// Session tracking is off again: a login, COM_CHANGE_USER and
// COM_RESET_CONNECTION all return the tracking variables to their defaults.
func (b *backend) freshState(schema string) {
	b.state = sessionState{schema: schema, names: b.p.defaultNames, multiStmts: 1}
	b.tracking, b.withheld, b.unknown = false, false, false
	b.lastIDKnown = false
	b.diagOf = noDiag
	if b.caps&mysqlwire.ClientMultiStatements == 0 {
		b.state.multiStmts = 0
	}
	b.forgetStmts()
}

// send writes one command packet (sequence id 0) and starts tracking its
// response for duty (ex: the exchange it belongs to, for dutyExchange).
func (b *backend) send(duty backendDuty, ex *exchange, payload []byte) {
	b.duty, b.ex = duty, ex
	b.pb.Awaiting()
	cmd, _ := mysqlwire.CommandOf(payload)
	if _, err := b.tracker.Start(cmd, b.caps); err != nil {
		b.abandon(err)
		return
	}
	b.writePacket(payload)
}

// sendInitDB sends COM_INIT_DB for ex.
func (b *backend) sendInitDB(ex *exchange, schema string) {
	p := append(append(b.scratch[:0], byte(mysqlwire.ComInitDB)), schema...)
	b.scratch = p[:0]
	b.send(dutyExchange, ex, p)
}

// sendPrepare sends COM_STMT_PREPARE for ex.
func (b *backend) sendPrepare(ex *exchange, sql string) {
	p := append(append(b.scratch[:0], byte(mysqlwire.ComStmtPrepare)), sql...)
	b.scratch = p[:0]
	b.send(dutyExchange, ex, p)
}

// trackLevel is how much session tracking a target's server accepts.
type trackLevel uint32

const (
	trackAll  trackLevel = iota // every tracker of trackingSETs[trackAll]
	trackNoTx                   // no session_track_transaction_info (MariaDB before 10.3)
	trackNone                   // no tracking SET accepted: the target is served as in 5.5 mode
)

// trackingSETs turn on the server's reports of session state changes:
// every system variable, the schema, and the state-change flag (user
// variables, temporary tables, prepared statements), plus, where the
// server has it, the transaction's characteristics (a pending SET
// TRANSACTION, XA START). A server that refuses one gets the next.
var trackingSETs = [trackNone]string{
	trackAll: "SET session_track_state_change=ON, session_track_schema=ON, " +
		"session_track_system_variables='*', session_track_transaction_info='CHARACTERISTICS'",
	trackNoTx: "SET session_track_state_change=ON, session_track_schema=ON, session_track_system_variables='*'",
}

// tracks reports whether the backend's server can report session state
// changes (CLIENT_SESSION_TRACK was negotiated and the server accepts a
// tracking SET). Without, the backend is served as in 5.5 mode: statement
// kinds outside the allowlist pin.
func (b *backend) tracks() bool {
	return b.caps&mysqlwire.ClientSessionTrack != 0 && b.level < trackNone
}

// needsReset reports whether the backend must be reset before it serves
// another session: its server session may hold state nobody accounted for.
func (b *backend) needsReset() bool { return b.withheld || b.unknown }

// sendTracking sends the tracking SET the server accepts, for duty (and
// ex, for dutyExchange).
func (b *backend) sendTracking(duty backendDuty, ex *exchange) {
	p := append(append(b.scratch[:0], byte(mysqlwire.ComQuery)), trackingSETs[b.level]...)
	b.scratch = p[:0]
	b.send(duty, ex, p)
}

// trackRefused: the server answered the tracking SET with an ERR (an old
// server lacks a variable: MariaDB before 10.3 has no
// session_track_transaction_info, MySQL 5.6 none of them). The backend,
// and the target for every backend that logs in later, falls back to the
// next level; it reports whether there is one to try. The ERR left
// diagnostics of the proxy's.
func (b *backend) trackRefused(code mysqlwire.ErrCode) bool {
	b.diagOf = proxyDiag
	if b.level < trackNone {
		b.level++
	}
	lv := &b.p.trackLevels[b.pb.Target()]
	for cur := lv.Load(); cur < uint32(b.level); cur = lv.Load() {
		if lv.CompareAndSwap(cur, uint32(b.level)) {
			what := "without session_track_transaction_info"
			if b.level == trackNone {
				what = "without session tracking (statements outside the 5.5 allowlist pin)"
			}
			b.p.logf("backend %d: server refused a tracking SET (error %d): its target is served %s", b.pb.Index(), code, what)
			break
		}
	}
	return b.level < trackNone
}

// onTrackPacket reads the response to the tracking SET that ends a login
// or a reset.
func (b *backend) onTrackPacket(payload []byte) {
	prog, err := b.tracker.Feed(payload)
	if err != nil || prog != mysqlwire.Complete {
		b.pb.Abort(fmt.Errorf("%w: tracking SET: %v", errBackendProtocol, err))
		return
	}
	if code, _, failed := b.tracker.Err(); failed {
		if b.trackRefused(code) {
			b.sendTracking(b.duty, nil)
			return
		}
	} else {
		b.noteTracking()
		if b.tracker.Warnings() > 0 {
			b.diagOf = proxyDiag
		}
	}
	duty := b.duty
	b.duty = dutyNone
	if duty == dutyResetTrack {
		b.pb.ResetDone()
		return
	}
	b.pb.LoggedIn()
}

// sendRestoreLastID sends DO LAST_INSERT_ID(v) for ex: the session's value
// before a statement that reads it.
func (b *backend) sendRestoreLastID(ex *exchange, v uint64) {
	p := append(b.scratch[:0], byte(mysqlwire.ComQuery))
	p = append(p, "DO LAST_INSERT_ID("...)
	p = strconv.AppendUint(p, v, 10)
	p = append(p, ')')
	b.scratch = p[:0]
	b.send(dutyExchange, ex, p)
}

// lastIDProbe asks the server for the session's LAST_INSERT_ID() after a
// statement that may have changed it: the OK packet cannot tell (an INSERT
// with an explicit id reports it, and LAST_INSERT_ID() does not change).
const lastIDProbe = "SELECT LAST_INSERT_ID()"

// sendLastIDProbe sends lastIDProbe for ex.
func (b *backend) sendLastIDProbe(ex *exchange) {
	p := append(append(b.scratch[:0], byte(mysqlwire.ComQuery)), lastIDProbe...)
	b.scratch = p[:0]
	b.send(dutyExchange, ex, p)
}

// sendBegin sends BEGIN for ex: a session's deferred transaction starts.
func (b *backend) sendBegin(ex *exchange) {
	p := append(append(b.scratch[:0], byte(mysqlwire.ComQuery)), "BEGIN"...)
	b.scratch = p[:0]
	b.send(dutyExchange, ex, p)
}

// sendSetOption sends COM_SET_OPTION for ex.
func (b *backend) sendSetOption(ex *exchange, on bool) {
	opt := mysqlwire.OptionMultiStatementsOff
	if on {
		opt = mysqlwire.OptionMultiStatementsOn
	}
	pkt, _ := mysqlwire.AppendSetOption(b.scratch[:0], 0, opt)
	b.sendFramed(dutyExchange, ex, mysqlwire.ComSetOption, pkt)
}

// sendReplaySET sends one SET bringing the backend's variables to st's,
// for ex; false when none is needed (the character set alone may differ
// in a form that needs no SET: it is noted as equal).
func (b *backend) sendReplaySET(ex *exchange, st *sessionState) bool {
	p, need := appendReplaySET(append(b.scratch[:0], byte(mysqlwire.ComQuery)), st, &b.state, &b.flavor)
	b.scratch = p[:0]
	if !need {
		b.state.names = st.names
		return false
	}
	b.send(dutyExchange, ex, p)
	return true
}

// sendLongData replays one buffered COM_STMT_SEND_LONG_DATA (the server
// does not answer it).
func (b *backend) sendLongData(stmtID uint32, param uint16, data []byte) {
	pkt, _ := mysqlwire.AppendStmtSendLongData(b.scratch[:0], 0, stmtID, param, data) // split at 16 MiB
	b.scratch = pkt[:0]
	b.writeFramed(pkt)
}

// sendCommand writes an argument-less command (COM_PING,
// COM_RESET_CONNECTION) and starts tracking its response for duty.
func (b *backend) sendCommand(duty backendDuty, cmd mysqlwire.Command) {
	pkt, _ := mysqlwire.AppendCommand(b.scratch[:0], 0, cmd, nil)
	b.sendFramed(duty, nil, cmd, pkt)
}

// sendFramed writes cmd's packet, framed by a mysqlwire builder in
// b.scratch, and starts tracking its response for duty.
func (b *backend) sendFramed(duty backendDuty, ex *exchange, cmd mysqlwire.Command, pkt []byte) {
	b.scratch = pkt[:0]
	b.duty, b.ex = duty, ex
	if _, err := b.tracker.Start(cmd, b.caps); err != nil {
		b.abandon(err)
		return
	}
	b.writeFramed(pkt)
}

// startMain starts tracking the response to the client's command cmd,
// which the exchange writes itself (renumbered from the client's packets).
func (b *backend) startMain(ex *exchange, cmd mysqlwire.Command) error {
	b.duty, b.ex = dutyExchange, ex
	b.pb.Awaiting()
	_, err := b.tracker.Start(cmd, b.caps)
	return err
}

// endExchange: the exchange is over (its response complete, or it failed).
func (b *backend) endExchange() {
	b.duty, b.ex = dutyNone, nil
	if len(b.pipe.q) == 0 {
		b.closePipe() // nothing behind it: the backend is about to go back
	}
}

// writePacket frames a command payload (sequence id 0) straight into the
// backend's output. A payload of 16 MiB or more is split by
// mysqlwire.AppendPacket: one header holding only the low 24 bits of its
// length would let the payload's tail run on the server as commands of the
// client's choosing.
func (b *backend) writePacket(payload []byte) {
	dst := b.c().Reserve(mysqlwire.FramedLen(len(payload)))
	mysqlwire.AppendPacket(dst[:0], 0, payload) // fills dst exactly, in place
	b.loop().stats.BackendBytesOut.Add(uint64(len(dst)))
}

// writeFramed writes packets a mysqlwire builder framed (split at 16 MiB
// like writePacket's).
func (b *backend) writeFramed(pkts []byte) {
	b.c().Write(pkts)
	b.loop().stats.BackendBytesOut.Add(uint64(len(pkts)))
}

// forgetStmts drops the record of the backend's prepared statements (the
// connection is gone or was reset).
func (b *backend) forgetStmts() {
	b.loop().stats.BackendStmtsOpen.Add(-int64(len(b.stmts)))
	clear(b.stmts)
}

func (b *backend) onResponsePacket(raw, payload []byte) {
	switch b.duty {
	case dutyExchange:
		b.ex.onPacket(raw, payload)
	case dutyReset:
		b.onResetPacket(payload)
	case dutyPing:
		b.onPingPacket(payload)
	case dutyKill:
		b.onKillPacket(payload)
	case dutyLoginTrack, dutyResetTrack:
		b.onTrackPacket(payload)
	case dutyDrainProbe:
		b.onDrainPacket(payload)
	case dutyEmbed:
		b.onEmbedPacket(payload)
	case dutyPipeSet, dutyPipeDrain:
		b.onPipePacket(payload)
	default:
		b.abandon(fmt.Errorf("%w: unsolicited packet 0x%02x", errBackendProtocol, first(payload)))
	}
}

func first(p []byte) byte {
	if len(p) == 0 {
		return 0
	}
	return p[0]
}

// Reset implements pool.Server: it returns a backend that a pinned client
// left (pool.LoopPool.Reset) to a clean state, then to the pool.
func (b *backend) Reset() {
	if b.duty == dutyDrainProbe {
		b.resetAfterDrain = true // once the probe's answer is read
		return
	}
	b.resumeIfPaused()
	if b.p.cfg.MySQL55 {
		b.changeUser(dutyReset, nil, b.ident)
		return
	}
	b.sendCommand(dutyReset, mysqlwire.ComResetConnection)
}

// drainProbe: the session whose exchange asked SELECT LAST_INSERT_ID()
// left; the backend reads the answer to its end (it is harmless, and a
// reconnect would cost more), then serves a pending Reset.
func (b *backend) drainProbe() {
	b.duty, b.ex = dutyDrainProbe, nil
	b.drainAt, b.drainN = 0, 0
}

// drainResponses: the exchange ended with the responses to cmds, written
// in one batch, still to come; the backend reads them to their end and
// drops them, then serves a pending Reset (the exchange asks for one).
func (b *backend) drainResponses(cmds []mysqlwire.Command) {
	b.duty, b.ex = dutyDrainProbe, nil
	b.drainAt, b.drainN = 0, uint8(copy(b.drainCmds[:], cmds))
	b.startNextDrain()
}

// startNextDrain starts reading the next response to drop.
func (b *backend) startNextDrain() {
	cmd := b.drainCmds[b.drainAt]
	b.drainAt++
	if _, err := b.tracker.Start(cmd, b.caps); err != nil {
		b.abandon(err)
	}
}

// responseDone feeds payload to the tracker of a response the proxy reads
// for itself (a drain, the pipeline's SET, an orphan's response) and
// reports whether the response is complete; a malformed one abandons the
// backend.
func (b *backend) responseDone(payload []byte) bool {
	prog, err := b.tracker.Feed(payload)
	if err != nil || prog == mysqlwire.ClientTurn {
		b.abandon(errBackendProtocol)
		return false
	}
	return prog == mysqlwire.Complete
}

func (b *backend) onDrainPacket(payload []byte) {
	if !b.responseDone(payload) {
		return
	}
	if b.drainAt < b.drainN {
		b.startNextDrain()
		return
	}
	b.forgetLastID()
	b.duty = dutyNone
	if b.resetAfterDrain {
		b.resetAfterDrain = false
		b.Reset()
	}
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
	b.noteReset()
	if b.tracks() {
		b.sendTracking(dutyResetTrack, nil)
		return
	}
	b.duty = dutyNone
	b.pb.ResetDone()
}

// noteReset records what COM_RESET_CONNECTION leaves.
func (b *backend) noteReset() {
	schema := b.state.schema // COM_RESET_CONNECTION keeps the database
	b.freshState(schema)
	// Whether the reset restores the handshake charset differs between
	// servers; replay it on next use to be sure.
	b.state.names = namesUnknown
	b.state.multiStmts = multiStmtUnknown
}

// sendReset sends COM_RESET_CONNECTION for ex.
func (b *backend) sendReset(ex *exchange) {
	b.send(dutyExchange, ex, []byte{byte(mysqlwire.ComResetConnection)})
}

// Diagnostics owners besides session ids (which are never 0 or ^0).
const (
	noDiag    uint32 = 0
	proxyDiag uint32 = ^uint32(0)
)

// changeUser logs the backend in again as to with COM_CHANGE_USER and no
// schema, for duty: dutyReset (a 5.5 backend's reset, as the account it
// is logged in as) or dutyExchange (ex's session has no schema, or runs
// as another account: opNoSchema, opIdentity).
func (b *backend) changeUser(duty backendDuty, ex *exchange, to *identity) {
	b.setIdentity(to)
	auth, _ := to.authResponse(mysqlwire.AuthNativePassword, b.nonce) // native never fails
	pkt, _ := mysqlwire.AppendChangeUser(b.scratch[:0], 0, b.caps, mysqlwire.ChangeUser{
		Username:     []byte(to.name),
		AuthResponse: auth,
		CharacterSet: uint16(b.p.collation),
		AuthPlugin:   []byte(mysqlwire.AuthNativePassword),
	}) // no schema: the session's is replayed before its next command
	b.scratch = pkt[:0]
	b.duty, b.ex = duty, ex
	b.pb.Awaiting()
	b.phase = bAuth
	b.plugin = mysqlwire.AuthNativePassword
	b.tracker.StartAuth(b.caps)
	b.writeFramed(pkt)
}

// pauseForClient stops reading while the owner's client drains its output.
func (b *backend) pauseForClient() {
	if c := b.c(); c != nil && !b.pausedForClient {
		b.pausedForClient = true
		c.PauseRead()
		b.pb.Answered() // not the server's fault while the client is slow
	}
}

func (b *backend) resumeIfPaused() {
	if b.pausedForClient {
		b.pausedForClient = false
		if b.duty != dutyNone {
			b.pb.Awaiting()
		}
		if c := b.c(); c != nil {
			c.ResumeRead()
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
		b.loop().stats.BackendStmtsOpen.Add(-1)
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
		pl := b.loop()
		pl.stats.BackendStmtsOpen.Add(-1)
		b.closeStmt(old.id)
		pl.stats.BackendStmtEvictions.Add(1)
	}
	b.stmtClock++
	bs := &backendStmt{id: id, lastUse: b.stmtClock}
	b.stmts[k] = bs
	b.loop().stats.BackendStmtsOpen.Add(1)
	return bs
}

// dropStmt closes the backend's statement for k, if it has one (closing
// the statement closes its cursor).
func (b *backend) dropStmt(k stmtKey) {
	if bs := b.stmts[k]; bs != nil {
		delete(b.stmts, k)
		b.loop().stats.BackendStmtsOpen.Add(-1)
		b.closeStmt(bs.id)
	}
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
	if ex := b.ex; ex != nil && ex.s.infile {
		ex.s.c.PauseRead()
	}
}

// OnLowWater resumes the client paused by OnHighWater.
func (b *backend) OnLowWater(*conn.Conn) {
	if ex := b.ex; ex != nil && ex.s.infile {
		ex.s.c.ResumeRead()
	}
}

// The exchange reports what a sync operation established on the backend.

func (b *backend) noteSchema(schema string) { b.state.schema = schema }
func (b *backend) noteMultiStmts(m int8)    { b.state.multiStmts = m }
func (b *backend) noteTracking()            { b.tracking = true }
func (b *backend) noteLastID(v uint64)      { b.lastID, b.lastIDKnown = v, true }
func (b *backend) forgetLastID()            { b.lastIDKnown = false }
func (b *backend) noteDiag(of uint32)       { b.diagOf = of }
func (b *backend) noteWithheld()            { b.withheld = true }
func (b *backend) noteReported()            { b.withheld = false }
func (b *backend) noteUnknown()             { b.unknown = true }
func (b *backend) applyPlan(plan *setPlan)  { plan.apply(&b.state) }
func (b *backend) noteVars(st *sessionState) {
	b.state.names = st.names
	b.state.copyVarsFrom(st)
}

// Ping implements pool.Server: COM_PING on an idle backend.
func (b *backend) Ping() {
	b.sendCommand(dutyPing, mysqlwire.ComPing)
}

// onPingPacket handles the answer to a health check: OK puts the backend
// back, anything else drops the connection (it reconnects).
func (b *backend) onPingPacket(payload []byte) {
	prog, err := b.tracker.Feed(payload)
	if err == nil && prog != mysqlwire.Complete {
		err = errBackendProtocol
	}
	if err == nil {
		if code, _, failed := b.tracker.Err(); failed {
			err = fmt.Errorf("mysqlproxy: health check answered ERR %d", code)
		}
	}
	if err != nil {
		b.pb.Abort(err)
		return
	}
	b.duty = dutyNone
	b.pb.Pinged()
}
