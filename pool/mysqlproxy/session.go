package mysqlproxy

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/mysqlwire"
	"github.com/scalestack/scalestack/pool"
	"github.com/scalestack/scalestack/reactor"
)

type sessionPhase uint8

const (
	sHandshake  sessionPhase = iota // greeting sent, waiting for HandshakeResponse41
	sAuthSwitch                     // auth switch sent, waiting for the client's answer
	sChangeUser                     // COM_CHANGE_USER auth switch sent
	sReady                          // waiting for a command
	sBusy                           // a command is being served
	sClosed
)

// maxClientPayload bounds a client's logical packet (matches the
// connection's input limit).
const maxClientPayload = 64 << 20

// maxLoginPayload bounds a packet of a client that has not logged in (the
// handshake response, an auth switch answer) and the answer to
// COM_CHANGE_USER's auth switch: no real one comes near it, and a larger one
// is refused from its header with ERR 1153, as MariaDB refuses a handshake
// packet over max_allowed_packet. The connection's input is bounded to one
// such packet and its header until login.
const maxLoginPayload = 64 << 10

// sha2ScrambleLength is the length of a caching_sha2_password fast-path
// scramble (a SHA-256 digest).
const sha2ScrambleLength = 32

// epoch is the origin of monoNow.
var epoch = time.Now()

// monoNow is the monotonic time since epoch in nanoseconds: 8 bytes in a
// session where a time.Time takes 24.
func monoNow() int64 { return int64(time.Since(epoch)) }

var (
	errKilled             = errors.New("pool: session killed")
	errLoginTimeout       = errors.New("pool: client login timed out")
	errClientWriteTimeout = errors.New("pool: client stopped reading (client write timeout)")
)

// session is one client connection. It holds a backend only while a command
// is served, unless pinned. It is the pool.Client its waiter names.
type session struct {
	p  *Proxy
	pl *proxyLoop
	c  *conn.Conn
	id uint32

	phase sessionPhase
	// tlsStarting: the client sent SSLRequest and its TLS handshake runs
	// (conn.StartTLSServer); tlsUp: it finished, the connection is TLS.
	tlsStarting bool
	tlsUp       bool
	// fullAuth: caching_sha2_password's fast path failed and the client
	// was asked for its password in full (AuthMoreData 0x04).
	fullAuth bool // (these three fill the padding after phase)
	nonce    []byte
	caps     mysqlwire.Capabilities
	user     *User
	// account is the logged-in user whose per-user counters this
	// session moves.
	account *User
	joiner  mysqlwire.Joiner

	// sha2Switch: the auth switch in flight asks for caching_sha2_password
	// (otherwise mysql_native_password).
	sha2Switch bool
	// denied: the login was refused with ERR 1045 (and logged as a failed
	// login, so its close is not logged again).
	denied      bool
	noBackslash bool
	// beginPending: the session's transaction was opened by a BEGIN the
	// proxy answered (Config.DeferBegin) and has not reached a server
	// yet; PinTransaction stands for it (txdefer.go).
	beginPending bool
	// stmtCapMs is the tenant's max-statement-time, in milliseconds, that
	// the session's max_statement_time was last brought to (-1: not yet;
	// tenants.go). Here it fills padding.
	stmtCapMs int32
	// loginName is the name the client logged in with (s.user is
	// Proxy.unknownUser when no account has it).
	loginName string

	st         sessionState
	loginNames string // the character set chosen at login, restored by COM_RESET_CONNECTION
	pins       uint32
	prepID     uint32 // id given to the statement being prepared (beside pins: no padding)
	// b is the backend the session holds: for the command being served
	// (ex runs on it), pinned, or held for diagnostics.
	b *backend
	// ex is the command on the backend.
	ex exchange
	// wait is the session's request for a backend; wait.Tenant is the
	// session's tenant (tenants.go).
	wait pool.Waiter

	// The command being served.
	req     []byte // raw packets as received (headers included)
	payload []byte // logical payload (aliases req unless split)
	big     []byte // reassembly of a split payload
	cmd     mysqlwire.Command
	respSeq uint8 // next sequence id towards the client
	qi      queryInfo
	// setRes is what the SET being served does. Its plan is not kept: it
	// is a kilobyte every idle session would carry, so mainDone parses the
	// statement again once the server has accepted it.
	setRes setResult
	infile bool
	// diag: the command left warnings or failed; held: the session keeps
	// its backend until its next command (or a waiter needs it) so that
	// SHOW WARNINGS and friends see them (pool.LoopPool.Keep).
	diag bool
	held bool
	// heldInput: input arrived while a command was being served and was
	// left in the connection's buffer.
	heldInput bool
	stmt      *sessStmt
	capture   []byte // PREPARE response being cached

	// cmdStart is when the command being served arrived (monoNow).
	cmdStart int64
	// write watches for the client write timeout; allocated the first
	// time the client's output goes over the high-water mark, since most
	// sessions never do and an idle session must stay small.
	write *writeWatch

	// lastInsertID is the session's LAST_INSERT_ID() as the server keeps
	// it: asked for after each statement that may change it
	// (opLastIDProbe), put back on a backend before one that reads it
	// (opLastID).
	lastInsertID uint64
	stmts        map[uint32]*sessStmt
	// longDataBytes is the COM_STMT_SEND_LONG_DATA held for stmts
	// (bounded by maxSessionLongData).
	longDataBytes int32
	nextStmtID    uint32
	lastStmtID    uint32
	openCursors   int32

	scratch []byte
}

func (p *Proxy) newSession(c *conn.Conn) conn.Handler {
	pl := p.loopOf(c.Loop())
	if pl.closing {
		return shutdownRefusal{}
	}
	if p.clientsOverLimit() {
		return p.refuse(c)
	}
	if p.pendingLoginsFull() {
		return p.refusePending(c)
	}
	s := &session{p: p, pl: pl, c: c, id: pl.newSessionID()}
	s.ex.s = s
	s.wait.Client = s
	return s
}

// OnOpen sends the greeting.
func (s *session) OnOpen(c *conn.Conn) {
	s.pl.sessions[s.id] = s
	s.pl.stats.ClientsAccepted.Add(1)
	s.pl.stats.ClientsConnected.Add(1)
	s.p.pendingLogins.Add(1)
	// Until it logs in, the client is a stranger: one login packet at a
	// time, and its buffer counts against the budget shared by all of
	// them, so that many strangers cannot hold much memory either.
	s.limitInput(true)
	c.SetInputBudget(s.p.loginInput)
	nonce, err := mysqlwire.NewScramble()
	if err != nil {
		c.Abort(err)
		return
	}
	s.nonce = nonce
	h := mysqlwire.Handshake{
		ServerVersion:  []byte(*s.p.version.Load()),
		ConnectionID:   s.id,
		AuthPluginData: nonce,
		Capabilities:   s.p.greetingCaps(),
		CharacterSet:   s.p.collation,
		Status:         mysqlwire.StatusAutocommit,
		AuthPluginName: []byte(mysqlwire.AuthNativePassword),
	}
	pkt, _ := mysqlwire.AppendHandshake(s.scratch[:0], h)
	s.pl.stats.ClientBytesOut.Add(uint64(len(pkt)))
	c.Write(pkt)
	// The login is timed with the waiter's timer: a session waits for a
	// backend only once logged in.
	s.wait.Timer.Func = sessionTimerFired
	s.wait.Timer.Arg = s
	s.pl.loop.Schedule(&s.wait.Timer, s.p.cfg.LoginTimeout)
}

// OnClose releases what the session holds.
func (s *session) OnClose(c *conn.Conn, err error) {
	if s.phase == sClosed {
		return
	}
	if err != nil && s.phase < sReady && !s.denied {
		s.p.loginCloses.note(c.RemoteAddr() + ": " + err.Error())
	}
	if s.tlsUp {
		s.pl.stats.TLSClientsConnected.Add(-1)
	}
	if s.phase == sHandshake || s.phase == sAuthSwitch {
		// The connection gave its budget back when it closed.
		s.p.pendingLogins.Add(-1)
		s.p.loginInputReleased()
	}
	s.phase = sClosed
	s.pl.lp.Leave(&s.wait)
	s.pl.loop.Cancel(&s.wait.Timer)
	if s.write != nil {
		s.pl.loop.Cancel(&s.write.timer)
	}
	if s.pl.sessions[s.id] == s {
		delete(s.pl.sessions, s.id)
	}
	s.setAccount(nil)
	s.leaveTenant()
	s.releaseStmts(nil)
	s.pl.stats.ClientsConnected.Add(-1)
	s.beginPending = false // it reached no server: nothing to undo
	if s.pins != 0 {
		s.pl.stats.PinnedSessions.Add(-1)
		s.pins = 0
	}
	if s.held {
		s.held = false
		b := s.b
		s.b = nil
		s.release(b)
	}
	if s.ex.rider {
		s.leavePipe(s.ex.b)
	}
	if b := s.b; b != nil && b.pipe.piping {
		s.leavePipe(b)
	}
	if b := s.b; b != nil {
		s.b = nil
		if s.ex.inFlight() {
			// The client left mid-exchange: what the backend still has to
			// say, and the state it is in, are unknown.
			if s.ex.step == opLastIDProbe {
				// Only the proxy's SELECT LAST_INSERT_ID() is left:
				// the backend reads it to its end, then is reset.
				s.ex.end()
				b.drainProbe()
				s.pl.lp.Reset(b.pb)
				return
			}
			s.ex.end()
			b.abandon(errUnknownState)
		} else {
			s.pl.lp.Reset(b.pb)
		}
	}
}

// release gives b back to the pool.
func (s *session) release(b *backend) {
	b.resumeIfPaused()
	s.pl.lp.Release(b.pb)
}

// Granted implements pool.Client: the command starts on the backend.
func (s *session) Granted(pb *pool.Backend) {
	b := s.p.backends[pb.Index()]
	s.b = b
	if c := pb.Class(); c.Flags != s.wait.Class.Flags {
		// Logged in with other capability flags, which only a new login
		// changes: the pool reopens it for this session and grants it
		// again (or the session hears Lost).
		c.Flags = s.wait.Class.Flags
		pb.Reopen(c)
		return
	}
	b.sweepStmts(s.pl)
	s.ex.begin(b, true)
}

// Refused implements pool.Client: the command waited too long, or no
// backend can be reached.
func (s *session) Refused(err error) {
	if err == pool.ErrQueueTimeout {
		s.writeERR(errQueueTimeout)
	} else if err == pool.ErrMaxQueued {
		s.writeERR(errTenantMaxQueued, s.wait.Tenant.Name(), int64(s.wait.Tenant.Rules().MaxQueued))
	} else {
		s.writeERR(errBackendUnavailable)
	}
	s.finishCommand()
}

// Revoked implements pool.Client: the backend held for diagnostics went
// to a command that needed it.
func (s *session) Revoked(pb *pool.Backend) {
	b := s.p.backends[pb.Index()]
	if s.b == b {
		s.held = false
		s.b = nil
		b.resumeIfPaused()
	}
}

// Lost implements pool.Client: the backend the session held broke.
func (s *session) Lost(pb *pool.Backend, _ error) {
	s.backendLost(s.p.backends[pb.Index()])
}

// dropBackend forgets b, which the exchange abandoned.
func (s *session) dropBackend(b *backend) {
	if s.b == b {
		s.b = nil
	}
}

// OnHighWater pauses the backend feeding this slow client, and starts
// watching for the client write timeout: a client that never reads would
// otherwise hold that backend for ever.
func (s *session) OnHighWater(c *conn.Conn) {
	if b := s.feeding(); b != nil {
		b.pauseForClient()
	}
	w := s.write
	if w == nil {
		w = &writeWatch{}
		w.timer.Func = clientWriteStalled
		w.timer.Arg = s
		s.write = w
	}
	w.mark = c.Delivered()
	w.quiet = 0
	s.pl.loop.Schedule(&w.timer, s.writeCheckInterval())
}

// OnLowWater resumes it.
func (s *session) OnLowWater(*conn.Conn) {
	if s.write != nil {
		s.pl.loop.Cancel(&s.write.timer)
	}
	if s.b != nil {
		s.b.resumeIfPaused()
	} else if b := s.feeding(); b != nil {
		b.resumeIfPaused()
	}
}

// writeChecks is how many checks a client write timeout is split into. A
// single check at the end of the period would have to take the count of
// delivered bytes at the moment of crossing the high-water mark as its
// reference, and the client's kernel still takes some bytes just after
// that, which would look like progress and double the time a stalled
// client holds its backend. With checks every 1/8 of the period a client
// is cut off between 1 and 1 1/8 periods after the last byte it took.
const writeChecks = 8

// writeWatch is a session's client write timeout state: the timer that
// checks it, conn.Delivered at the last check, and how many checks in a
// row found no progress.
type writeWatch struct {
	timer reactor.Timer
	mark  uint64
	quiet uint8
}

func (s *session) writeCheckInterval() time.Duration {
	return max(time.Duration(s.p.clientWriteTimeout.Load())/writeChecks, reactor.TimerTick)
}

// clientWriteStalled runs while the client's output is over the high-water
// mark. A client that took some of its output since the last check is slow,
// not gone: the count starts again. One that took nothing for writeChecks
// checks in a row (the client write timeout) is cut off with a reset, so
// the kernel drops what it buffered for it too; if it was mid-response,
// OnClose closes the backend it held, whose state is unknown, and the
// backend reconnects.
func clientWriteStalled(arg any) {
	s := arg.(*session)
	if s.phase == sClosed || s.c.Closed() || !s.c.OverHighWater() {
		return
	}
	w := s.write
	if taken := s.c.Delivered(); taken != w.mark {
		w.mark = taken
		w.quiet = 0
	} else if w.quiet++; w.quiet >= writeChecks {
		s.pl.stats.ClientWriteTimeouts.Add(1)
		s.c.Reset(errClientWriteTimeout)
		return
	}
	s.pl.loop.Schedule(&w.timer, s.writeCheckInterval())
}

func sessionTimerFired(arg any) {
	s := arg.(*session)
	switch s.phase {
	case sHandshake:
		if s.tlsStarting {
			s.c.Abort(fmt.Errorf("%w: TLS handshake after SSLRequest not finished", errLoginTimeout))
			return
		}
		s.c.Abort(fmt.Errorf("%w: no handshake response", errLoginTimeout))
	case sAuthSwitch:
		s.c.Abort(fmt.Errorf("%w: no auth switch response", errLoginTimeout))
	}
}

// OnData splits client input into logical packets.
func (s *session) OnData(c *conn.Conn, data []byte) int {
	n := s.onData(c, data)
	s.pl.stats.ClientBytesIn.Add(uint64(n))
	return n
}

func (s *session) onData(c *conn.Conn, data []byte) int {
	off := 0
	for off < len(data) && s.phase != sClosed && !c.Closed() {
		if s.phase == sBusy && !s.infile {
			// One command at a time: the rest stays buffered in the
			// connection until this one is done. Reading goes on, so a
			// client that hangs up while it waits is noticed at once.
			s.heldInput = true
			return off
		}
		payload, lastSeq, size, ok, err := s.joiner.Next(data[off:])
		if err != nil {
			// The header is visible: answer with the sequence id after
			// it, as the server does (2 for a handshake response).
			s.respSeq = data[off+3] + 1
			if errors.Is(err, mysqlwire.ErrPacketTooLarge) {
				s.writeERR(errPacketTooLarge)
			} else {
				s.writeERR(errPacketsOutOfOrder)
			}
			c.Close()
			return len(data)
		}
		if !ok {
			break
		}
		raw := data[off : off+size]
		off += size
		switch s.phase {
		case sHandshake:
			s.onHandshakeResponse(payload, lastSeq)
			if s.tlsStarting {
				// What follows the SSLRequest is the TLS handshake's:
				// conn takes the bytes this call leaves unconsumed.
				return off
			}
		case sAuthSwitch:
			s.onAuthSwitchResponse(payload, lastSeq)
		case sChangeUser:
			s.onChangeUserSwitchResponse(payload, lastSeq)
		case sReady:
			s.onCommand(raw, payload, lastSeq)
		case sBusy:
			s.ex.relayInfile(raw, payload)
		}
	}
	return off
}

// ---- login ----

func (s *session) accessDenied(user []byte, withPassword bool, seq uint8) {
	s.pl.stats.AuthFailures.Add(1)
	using := "NO"
	if withPassword {
		using = "YES"
	}
	host := s.c.RemoteAddr()
	if i := lastColon(host); i >= 0 {
		host = host[:i]
	}
	s.respSeq = seq
	s.writeERR(errAccessDenied, user, host, using)
	s.denied = true
	s.p.failedLogins.note("user '" + logSafeName(user) + "' from " + host)
	s.c.Close()
}

// logSafeName bounds a user name a stranger sent (up to 64 KiB) for the
// log; the logger escapes what it cannot print.
func logSafeName(name []byte) string {
	const most = 64
	if len(name) > most {
		return string(name[:most]) + "..."
	}
	return string(name)
}

func lastColon(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == ':' {
			return i
		}
	}
	return -1
}

func (s *session) onHandshakeResponse(payload []byte, seq uint8) {
	hr, err := mysqlwire.ParseHandshakeResponse(payload)
	if err == nil && hr.SSLRequest && s.p.cfg.TLS != nil && !s.tlsUp {
		s.startTLS()
		return
	}
	if err != nil || hr.SSLRequest {
		s.respSeq = seq + 1
		s.writeERR(errBadHandshake)
		s.c.Close()
		return
	}
	s.caps = hr.Capabilities & (s.p.clientCaps | mysqlwire.ClientInteractive | mysqlwire.ClientFoundRows |
		mysqlwire.ClientIgnoreSpace | mysqlwire.ClientODBC | mysqlwire.ClientNoSchema |
		mysqlwire.Capabilities(s.p.extCaps.Load()))
	s.wait.Class = classFor(s.caps)
	s.loginName = string(hr.Username)
	u := (*s.p.users.Load())[s.loginName]
	if u == nil {
		// An unknown name goes through the same exchange as a known
		// account with a wrong password (the same auth switch, with the
		// nonce, the same hash work, then the same ERR 1045), so that
		// the answers do not tell which accounts exist.
		u = s.p.unknownUser
	}
	s.user = u
	// Session defaults from the handshake: charset, schema, and
	// multi-statements as the client asked.
	s.st = sessionState{names: s.p.defaultNames}
	if n, ok := collationNames[uint16(hr.CharacterSet)]; ok {
		s.st.names = n
	}
	s.loginNames = s.st.names
	if s.caps&mysqlwire.ClientConnectWithDB != 0 && len(hr.Database) > 0 {
		s.st.schema = string(hr.Database)
	}
	if s.caps&mysqlwire.ClientMultiStatements != 0 {
		s.st.multiStmts = 1
	}
	plugin := string(hr.AuthPlugin)
	if plugin == "" && s.caps&mysqlwire.ClientPluginAuth == 0 {
		plugin = mysqlwire.AuthNativePassword
	}
	// With per-account identities every client logs in with
	// mysql_native_password: its answer yields SHA1(password), which logs
	// the backends in as the account; caching_sha2_password's fast path
	// yields SHA256(password), which MariaDB (no caching_sha2 on the
	// server side) cannot use. Every account is asked alike, so the
	// plugin asked for tells nothing about the account.
	sha2OK := s.p.cfg.Identity == IdentityService
	switch {
	case plugin == mysqlwire.AuthNativePassword:
		s.finishNativeLogin(hr.Username, hr.AuthResponse, seq+1)
	case sha2OK && plugin == mysqlwire.AuthCachingSHA2 && len(hr.AuthResponse) == 0 && u.SHA2 != nil:
		// libmariadb and libmysqlclient send no scramble when their plugin
		// is not the one the greeting named, and wait to be asked for it:
		// ask for caching_sha2_password with the same nonce.
		out, _ := mysqlwire.AppendAuthSwitchRequest(s.scratch[:0], seq+1, mysqlwire.AuthCachingSHA2, s.nonce)
		s.pl.stats.ClientBytesOut.Add(uint64(len(out)))
		s.c.Write(out)
		s.phase = sAuthSwitch
		s.sha2Switch = true
	case sha2OK && plugin == mysqlwire.AuthCachingSHA2 && (u.SHA2 != nil || u.NoPassword):
		s.finishSHA2Login(hr.Username, hr.AuthResponse, seq+1)
	default:
		// Ask for mysql_native_password with the same nonce.
		out, _ := mysqlwire.AppendAuthSwitchRequest(s.scratch[:0], seq+1, mysqlwire.AuthNativePassword, s.nonce)
		s.pl.stats.ClientBytesOut.Add(uint64(len(out)))
		s.c.Write(out)
		s.phase = sAuthSwitch
	}
}

func (s *session) verifySHA2(resp []byte) bool {
	if s.user.NoPassword {
		return len(resp) == 0 && s.transportAllowed()
	}
	return mysqlwire.VerifyCachingSHA2(s.user.SHA2, s.nonce, resp) == nil && s.transportAllowed()
}

// verifyNative checks a mysql_native_password answer; on success it
// returns SHA1(password) (nil for an account without a password).
func (s *session) verifyNative(resp []byte) (stage1 []byte, ok bool) {
	if s.user.NoPassword {
		return nil, len(resp) == 0 && s.transportAllowed()
	}
	stage1, err := mysqlwire.VerifyNativePassword(s.user.Native, s.nonce, resp)
	return stage1, err == nil && s.transportAllowed()
}

// transportAllowed applies the users-file field require-tls (and
// Config.RequireTLS, the same for every account) after the password check,
// so that such an account gets the same ERR 1045 (28000) as MariaDB sends
// for REQUIRE SSL, after the same hash work as any other refusal.
func (s *session) transportAllowed() bool {
	return !(s.user.RequireTLS || s.p.cfg.RequireTLS) || s.clientTLS()
}

// clientTLS reports whether the client's connection is encrypted: it sent
// SSLRequest and its TLS handshake finished.
func (s *session) clientTLS() bool { return s.tlsUp }

func (s *session) finishNativeLogin(user, resp []byte, seq uint8) {
	stage1, ok := s.verifyNative(resp)
	if !ok || s.user == s.p.unknownUser {
		s.accessDenied(user, len(resp) > 0, seq)
		return
	}
	s.setIdentity(stage1)
	s.loginOK(seq)
}

// setIdentity settles the server account the logged-in user's statements
// run as (cached on the User, see identityOf); stage1 is SHA1(password)
// from the login that just succeeded.
func (s *session) setIdentity(stage1 []byte) {
	// The account part of the class; its flags (classFor: what the
	// client's capabilities need of the backend's login) stay.
	s.wait.Class.Account = s.p.identityOf(s.user, stage1).id.id
}

// ident is the server account the session's statements run as; its
// backends are logged in as it. It is kept on the session's User rather
// than in the session, which must stay small while idle; a session of a
// user logs in (setIdentity) before it runs anything.
func (s *session) ident() *identity { return s.user.ident.Load().id }

func (s *session) finishSHA2Login(user, resp []byte, seq uint8) {
	if !s.verifySHA2(resp) || s.user == s.p.unknownUser {
		if len(resp) == sha2ScrambleLength && !s.user.NoPassword && s.tlsUp {
			// Over TLS, as MySQL's caching_sha2_password does when the
			// fast path fails: ask for the password in full (AuthMoreData
			// 0x04); the client sends it in clear and it is checked
			// against the account's hash (onFullAuth). An unknown name
			// takes the same path, so the answers do not tell which
			// accounts exist. Without TLS the client would ask for an RSA
			// public key to encrypt it with, and the proxy keeps none
			// (decrypting on the loop costs a thousand fast-path checks):
			// since the proxy holds every account's hash, a failed fast
			// path is a wrong password, refused at once with ERR 1045.
			out, _ := mysqlwire.AppendAuthMoreData(s.scratch[:0], seq, []byte{mysqlwire.CachingSHA2PerformFullAuth})
			s.pl.stats.ClientBytesOut.Add(uint64(len(out)))
			s.c.Write(out)
			s.phase = sAuthSwitch
			s.fullAuth = true
			return
		}
		s.accessDenied(user, len(resp) > 0, seq)
		return
	}
	s.setIdentity(nil) // service mode only (onHandshakeResponse)
	out, next := mysqlwire.AppendAuthMoreData(s.scratch[:0], seq, []byte{mysqlwire.CachingSHA2FastAuthSuccess})
	s.pl.stats.ClientBytesOut.Add(uint64(len(out)))
	s.c.Write(out)
	s.loginOK(next)
}

// onFullAuth reads the answer to caching_sha2_password's request for the
// full password, which only a TLS client is asked for: the password in
// clear, NUL-terminated, checked against the users file's
// SHA256(SHA256(password)).
func (s *session) onFullAuth(payload []byte, seq uint8) {
	s.fullAuth = false
	password := payload
	if n := len(password); n > 0 && password[n-1] == 0 {
		password = password[:n-1]
	}
	if s.user == s.p.unknownUser || mysqlwire.VerifyCachingSHA2Password(s.user.SHA2, password) != nil {
		s.accessDenied([]byte(s.loginName), true, seq)
		return
	}
	s.setIdentity(stage1Of(password))
	s.loginOK(seq)
}

// startTLS upgrades the connection after the client's SSLRequest: the
// client's TLS handshake follows on the same socket, then its
// HandshakeResponse (sequence id 2) over TLS. The login timer keeps
// running, and the handshake has its own timeout, so a client that sends
// SSLRequest and stalls is cut at the earlier of the two.
func (s *session) startTLS() {
	if err := s.c.StartTLSServer(s.p.cfg.TLS, s.tlsStarted); err != nil {
		s.c.Abort(fmt.Errorf("SSLRequest: %w", err))
		return
	}
	s.tlsStarting = true
}

// tlsStarted runs on the loop when the client's TLS handshake has ended;
// with an error the connection is closing (OnClose follows).
func (s *session) tlsStarted(err error) {
	s.tlsStarting = false
	if err != nil || s.phase == sClosed {
		return
	}
	s.tlsUp = true
	s.pl.stats.ClientsTLS.Add(1)
	s.pl.stats.TLSClientsConnected.Add(1)
}

func (s *session) onAuthSwitchResponse(payload []byte, seq uint8) {
	if s.fullAuth {
		s.onFullAuth(payload, seq+1)
		return
	}
	if s.sha2Switch {
		s.sha2Switch = false
		s.finishSHA2Login([]byte(s.loginName), payload, seq+1)
		return
	}
	s.finishNativeLogin([]byte(s.loginName), payload, seq+1)
}

func (s *session) loginOK(seq uint8) {
	if s.p.clientsOverLimit() {
		// Others logged in while this client did: it would be one over
		// --max-clients. (It still counts as logging in until it closes.)
		s.respSeq = seq
		s.writeERR(errTooManyConnections)
		s.pl.stats.ClientsRefused.Add(1)
		s.c.Close()
		return
	}
	if s.st.schema != "" && s.pl.schemaMissing(s.st.schema) {
		// The server has just called it unknown: refuse the login as
		// the server would, without asking it again.
		s.respSeq = seq
		s.writeERR(errUnknownDatabase, s.st.schema)
		s.c.Close()
		return
	}
	if id := s.ident(); id.refusedRecently() {
		// The server has just refused the account a backend: refuse
		// the login without costing another backend reconnect.
		s.respSeq = seq
		s.writeERR(errIdentityUnusable, id.name, "it refused the account less than a second ago")
		s.c.Close()
		return
	}
	if !s.joinTenant(s.user) {
		s.respSeq = seq
		s.writeERR(errTenantMaxClients, s.p.tenantOf(s.user).Name())
		s.c.Close()
		return
	}
	s.p.pendingLogins.Add(-1)
	s.pl.loop.Cancel(&s.wait.Timer)
	s.limitInput(false)
	s.c.SetInputBudget(nil)
	s.p.loginInputReleased()
	s.phase = sReady
	s.respSeq = seq
	s.setAccount(s.user)
	s.writeOK(0, 0)
}

// limitInput bounds the client's packets and buffered input to one login
// packet (maxLoginPayload) while it authenticates, and to maxClientPayload
// (the connection's default bound) otherwise.
func (s *session) limitInput(login bool) {
	if login {
		s.joiner.MaxPayload = maxLoginPayload
		s.c.SetMaxInput(maxLoginPayload + mysqlwire.HeaderSize)
		return
	}
	s.joiner.MaxPayload = maxClientPayload
	s.c.SetMaxInput(0)
}

// ---- commands ----

// onCommand serves one client command.
func (s *session) onCommand(raw, payload []byte, lastSeq uint8) {
	s.respSeq = lastSeq + 1
	// Work on a copy: the input buffer is only valid during OnData, and
	// what is parsed from the request must outlive a wait for a backend.
	s.keep(raw, payload)
	raw, payload = s.req, s.payload
	if len(payload) == 0 {
		s.writeERR(errUnknownCommand)
		return
	}
	cmd := mysqlwire.Command(payload[0])
	s.cmd = cmd
	s.cmdStart = monoNow()
	s.pl.stats.Commands[commandSlot(cmd)].Add(1)
	if a := s.account; a != nil && a.stats != nil {
		a.stats.on(s.pl.id).commands.Add(1)
	}
	switch cmd {
	case mysqlwire.ComQuit:
		s.c.Close()
		return
	case mysqlwire.ComPing:
		s.local()
		s.writeOK(0, 0)
		return
	case mysqlwire.ComQuery:
		s.onQuery(raw, payload)
		return
	case mysqlwire.ComInitDB:
		if len(payload) < 2 {
			s.local()
			s.writeERR(errNoDatabase)
			return
		}
	case mysqlwire.ComSetOption:
		s.local()
		opt, err := mysqlwire.ParseSetOption(payload)
		if err != nil {
			s.writeERR(errUnknownCommand)
			return
		}
		s.st.multiStmts = 0
		if opt == mysqlwire.OptionMultiStatementsOn {
			s.st.multiStmts = 1
		}
		out, _ := mysqlwire.AppendEOF(s.scratch[:0], s.respSeq, 0, s.status())
		s.pl.stats.ClientBytesOut.Add(uint64(len(out)))
		s.c.Write(out)
		return
	case mysqlwire.ComResetConnection:
		s.local()
		// The server keeps the schema but returns the character set to
		// the one negotiated at login.
		s.resetSession(s.st.schema, s.loginNames)
		s.writeOK(0, 0)
		return
	case mysqlwire.ComChangeUser:
		s.local()
		s.onChangeUser(payload)
		return
	case mysqlwire.ComProcessKill:
		s.local()
		id, err := mysqlwire.ParseProcessKill(payload)
		if err != nil {
			s.writeERR(errUnknownCommand)
			return
		}
		s.kill(uint64(id), false)
		return
	case mysqlwire.ComStmtPrepare:
		s.onPrepare(raw, payload)
		return
	case mysqlwire.ComStmtExecute:
		s.onExecute(raw, payload)
		return
	case mysqlwire.ComStmtSendLongData:
		s.onLongData(payload)
		return
	case mysqlwire.ComStmtClose:
		s.onStmtClose(payload)
		return
	case mysqlwire.ComStmtReset:
		s.onStmtReset(raw, payload)
		return
	case mysqlwire.ComStmtFetch:
		s.onFetch(raw, payload)
		return
	case mysqlwire.ComRefresh, mysqlwire.ComDebug:
		// COM_REFRESH is FLUSH (server-wide, RELOAD); COM_DEBUG writes
		// to the server's log (SUPER).
		p := privSuper
		if cmd == mysqlwire.ComRefresh {
			p = privReload
		}
		if s.refuses(p) {
			s.refuse(p)
			return
		}
	case mysqlwire.ComStatistics, mysqlwire.ComFieldList, mysqlwire.ComProcessInfo,
		mysqlwire.ComCreateDB, mysqlwire.ComDropDB:
		// Served by any backend.
	default:
		s.local()
		s.writeERR(errUnknownCommand)
		return
	}
	s.forward(raw, payload)
}

func (s *session) local() { s.pl.stats.LocalAnswers.Add(1) }

// refuse answers ERR 1227 to a statement that needs a privilege the
// account lacks (it has no users-file field admin). The statement never
// reaches a backend; the session stays usable.
func (s *session) refuse(p privilege) {
	s.local()
	s.writeERR(errPrivilegeNeeded, privilegeMessages[p])
}

// refuses reports whether the proxy refuses a statement needing p to this
// session. A session that runs as its own server account gets the
// server's verdict, as on a direct connection: the server checks its
// grants, and what it does acts on its own account only. A session that
// runs as an account others share (the service account, a backend=
// mapping) is refused unless its account has the users-file field admin:
// there the statement would act for every client of that account. Two
// kinds stay refused to every account without admin, because the proxy
// could not follow their effects on the backend's session (the server
// does not report them): BACKUP STAGE and BACKUP LOCK, and dynamic SQL
// whose text the proxy cannot see.
func (s *session) refuses(p privilege) bool {
	if p == privNone || s.user.Admin {
		return false
	}
	return s.user.ident.Load().shared || p == privDynamicSQL || p == privBackup
}

// keep copies the request so it outlives the input buffer while it waits
// for a backend.
func (s *session) keep(raw, payload []byte) {
	s.req = append(s.req[:0], raw...)
	if len(raw) == len(payload)+mysqlwire.HeaderSize {
		s.payload = s.req[mysqlwire.HeaderSize:]
	} else {
		s.big = append(s.big[:0], payload...)
		s.payload = s.big
	}
}

// forward runs the request on a backend and relays the response: on the
// one the session holds, or on one the pool grants (Granted).
func (s *session) forward(raw, payload []byte) {
	switch s.cmd {
	case mysqlwire.ComQuery, mysqlwire.ComStmtExecute, mysqlwire.ComStmtPrepare:
		// Admitted before they changed anything (onQuery, onExecute,
		// onPrepare).
	default:
		if !s.admitCommand() {
			return
		}
	}
	s.phase = sBusy
	if b := s.b; b != nil {
		if s.held {
			s.held = false
			s.pl.lp.Unkeep(b.pb)
		}
		s.ex.begin(b, false)
		return
	}
	rode, watch := s.tryRide()
	if rode {
		return
	}
	s.pl.lp.Acquire(&s.wait)
	if watch {
		s.watchPipes()
	}
}

func (s *session) onQuery(raw, payload []byte) {
	sql := payload[1:]
	s.qi = scanQuery(sql, s.noBackslash)
	qi := &s.qi
	if s.refuses(qi.priv) {
		s.refuse(qi.priv)
		return
	}
	if s.liftsStatementTime(sql, qi, false) {
		return
	}
	switch qi.kind {
	case stmtEmpty, stmtConnectionID, stmtLastInsertID, stmtKill:
		// Answered here: no token taken.
	default:
		if !s.admitCommand() {
			return
		}
	}
	if s.deferTxControl(sql) {
		return
	}
	switch qi.kind {
	case stmtEmpty:
		s.local()
		s.writeERR(errEmptyQuery)
		return
	case stmtConnectionID:
		s.local()
		s.writeIntResult(qi.colName, uint64(s.id))
		return
	case stmtLastInsertID:
		s.local()
		s.writeIntResult(qi.colName, s.lastInsertID)
		return
	case stmtShowSSL:
		s.local()
		s.writeSSLStatus(string(qi.arg))
		return
	case stmtKill:
		s.local()
		if qi.arg == nil {
			s.writeERR(errKillUnsupported)
			return
		}
		if qi.killSelf {
			qi.killID = uint64(s.id)
		}
		s.kill(qi.killID, qi.killQuery)
		return
	case stmtReadSysVars:
		if s.answerSysVars(sql) {
			return
		}
	case stmtSet:
		var plan setPlan
		s.setRes = parseSET(sql, s.noBackslash, &plan)
		switch s.setRes {
		case setTracked:
			s.floorSET(sql, &plan)
		case setUserVar:
			s.pin(PinUserVariable)
		case setUnknown:
			s.pin(PinUnknownSet)
		}
	case stmtLock, stmtFlushLock:
		s.pin(PinLockTables)
	case stmtPrepare:
		s.pin(PinTextPrepare)
	case stmtCreateTemp:
		s.pin(PinTempTable)
	}
	f := qi.feats
	for _, fp := range featurePins {
		if f&fp.feature != 0 {
			s.pin(fp.reason)
		}
	}
	if f&featMulti != 0 && (f&(featSet|featUse) != 0 || qi.kind == stmtSet || qi.kind == stmtUse) {
		// State changed inside a batch is not tracked.
		s.pin(PinUnknownSet)
	}
	if f&featConnID != 0 {
		s.rewriteConnID()
	}
	s.forward(s.req, s.payload)
}

// rewriteConnID replaces the request (COM_QUERY, COM_STMT_PREPARE) by its
// text with each CONNECTION_ID() call replaced by the session's id
// (rewriteConnectionID): the backend's own id is never what the client
// should see. The prepared statement's key is the rewritten text, so each
// session's statement is its own. Only such statements allocate here.
func (s *session) rewriteConnID() {
	payload, found := rewriteConnectionID(append(make([]byte, 0, len(s.payload)+32), s.payload[0]),
		s.payload[1:], s.noBackslash, s.id)
	if !found {
		s.qi.feats &^= featConnID // the word without a call
		return
	}
	s.req, _ = mysqlwire.AppendPacket(make([]byte, 0, mysqlwire.FramedLen(len(payload))), 0, payload)
	if len(payload) < mysqlwire.MaxPacketPayload {
		s.payload = s.req[mysqlwire.HeaderSize:]
	} else {
		s.big, s.payload = payload, payload
	}
}

// renamesConnID reports whether the response being relayed answers a
// statement whose CONNECTION_ID() calls were rewritten, so that its
// columns are named after the function again (relayColumnDef).
func (s *session) renamesConnID() bool {
	if s.cmd == mysqlwire.ComStmtPrepare {
		return s.qi.feats&featConnID != 0
	}
	return s.cmdFeats()&featConnID != 0
}

// floorSET replaces the request by the client's SET with every timeout
// below its floor raised to the floor (see varFloors). s.payload keeps the
// client's text: mainDone parses it again and records the client's values
// in the session (what SELECT @@wait_timeout answers) and, in the same
// terms, in the backend's state. Only such SETs allocate here.
func (s *session) floorSET(sql []byte, plan *setPlan) {
	payload, changed := flooredSET([]byte{byte(mysqlwire.ComQuery)}, sql, plan)
	if !changed {
		return
	}
	if len(payload) >= mysqlwire.MaxPacketPayload {
		// Not worth splitting: the session keeps its backend, whose
		// state is reset before another session gets it.
		s.setRes = setUnknown
		s.pin(PinUnknownSet)
		return
	}
	s.req, _ = mysqlwire.AppendPacket(make([]byte, 0, mysqlwire.HeaderSize+len(payload)), 0, payload)
}

// answerSysVars answers SELECT @@wait_timeout, ... (stmtReadSysVars) from
// the values the session set, which a backend may hold only raised to
// their floors. It reports false, leaving the statement to the backend,
// when the session did not set one of the variables (the backend has the
// server's value then) or set it in a form it does not evaluate.
func (s *session) answerSysVars(sql []byte) bool {
	var names [maxSysVarColumns][]byte
	var vals [maxSysVarColumns]uint64
	n := 0
	lx := lexer{src: sql, noBackslash: s.noBackslash}
	lx.next() // SELECT
	for more := true; more && n < maxSysVarColumns; n++ {
		var v varID
		var ok bool
		v, names[n], more, ok = readSysVarColumn(&lx)
		if !ok {
			return false
		}
		if vals[n], ok = sessionTimeout(s.st.varValue(v)); !ok {
			return false
		}
	}
	s.local()
	s.writeUintRow(names[:n], vals[:n])
	return true
}

// sessionTimeout is the value the server reports for a timeout set to the
// SQL text value: decimal integers clamped to the range the server allows
// (1 to 31536000 seconds). ok is false for "" (not set) and other forms.
func sessionTimeout(value string) (uint64, bool) {
	neg := false
	switch {
	case value == "":
		return 0, false
	case value[0] == '-':
		neg, value = true, value[1:]
	case value[0] == '+':
		value = value[1:]
	}
	if value == "" {
		return 0, false
	}
	const maxTimeout = 31536000
	var v uint64
	for i := 0; i < len(value); i++ {
		c := value[i]
		if !isDigit(c) {
			return 0, false
		}
		if v <= maxTimeout {
			v = v*10 + uint64(c-'0')
		}
	}
	switch {
	case neg || v < 1:
		v = 1
	case v > maxTimeout:
		v = maxTimeout
	}
	return v, true
}

// nextRespSeq returns the next sequence id towards the client.
func (s *session) nextRespSeq() uint8 {
	seq := s.respSeq
	s.respSeq++
	return seq
}

// startInfile: the server asked for the client's LOAD DATA LOCAL file,
// which the client now streams (relayed by the exchange).
func (s *session) startInfile() {
	s.infile = true
	s.pin(PinLocalInfile)
	s.c.ResumeRead()
}

// endInfile: the client sent the file's last (empty) packet.
func (s *session) endInfile() {
	s.infile = false
	s.unpin(PinLocalInfile)
	s.c.PauseRead()
}

// applySet records the SET the server just accepted in the session's and
// the backend's state. The statement is still in s.payload; parsing it
// again (it allocates nothing) gives the same plan as when it arrived.
func (s *session) applySet(b *backend, noBackslash bool) {
	var plan setPlan
	if parseSET(s.payload[1:], noBackslash, &plan) != setTracked {
		return // cannot differ from the first parse: same text, same mode
	}
	plan.apply(&s.st)
	b.applyPlan(&plan)
}

// commandDone runs when the response to the client's command is complete:
// it updates tracked state and pins, and gives the backend back when
// nothing pins it.
func (s *session) commandDone(b *backend) {
	tr := &b.tracker
	status, seen := tr.Status()
	code, _, failed := tr.Err()
	if failed {
		s.pl.stats.Errors[errorSlot(code)].Add(1)
	}
	parsedNoBackslash := s.noBackslash // the mode the statement was scanned in
	if seen {
		s.noBackslash = status&mysqlwire.StatusNoBackslashEscapes != 0
	}
	if !failed {
		switch s.cmd {
		case mysqlwire.ComQuery:
			switch s.qi.kind {
			case stmtUse:
				if s.qi.feats&featMulti == 0 {
					s.st.schema = unquoteIdent(s.qi.arg)
					b.noteSchema(s.st.schema)
				}
			case stmtSet:
				if s.setRes == setTracked {
					s.applySet(b, parsedNoBackslash)
					if autocommitOff(s.st.varValue(varAutocommit)) {
						s.pin(PinAutocommitOff)
					} else {
						s.unpin(PinAutocommitOff)
					}
				}
			case stmtUnlock:
				s.unpin(PinLockTables)
			}
		case mysqlwire.ComInitDB:
			s.st.schema = string(s.payload[1:])
			b.noteSchema(s.st.schema)
		case mysqlwire.ComStmtPrepare:
			s.onPrepareDone(b)
		case mysqlwire.ComStmtExecute:
			s.onExecuteDone(b)
		case mysqlwire.ComStmtFetch:
			s.onFetchDone(b)
		case mysqlwire.ComStmtReset:
			s.closeCursor(s.stmt)
		}
	} else if s.cmd == mysqlwire.ComStmtPrepare {
		s.capture = nil
	}
	if !b.tracks() && s.unlisted() {
		// No server report to go by: a statement of a kind the proxy
		// cannot classify may have changed anything.
		if failed {
			b.noteUnknown()
		} else {
			s.pin(PinUnlisted)
		}
	}
	if failed && s.mayHideState() {
		// A procedure may have changed session state and then raised an
		// error: the ERR carries no report, and the change would surface
		// later, blamed on whoever runs next. Reset the backend before
		// anyone else uses it.
		b.noteUnknown()
	}
	s.diag = failed || tr.Warnings() > 0
	if s.diag {
		b.noteDiag(s.id)
	}
	if seen {
		if status&mysqlwire.StatusInTrans != 0 {
			s.pin(PinTransaction)
		} else {
			s.unpin(PinTransaction)
		}
	}
	s.finishCommand()
}

// accountsForChanges reports whether the proxy itself records every
// change the command being served makes to the session, so that the
// server's report of them needs no pin: one tracked SET, one USE, or
// COM_INIT_DB.
func (s *session) accountsForChanges() bool {
	switch s.cmd {
	case mysqlwire.ComInitDB:
		return true
	case mysqlwire.ComQuery:
		return s.qi.feats&featMulti == 0 && (s.qi.kind == stmtUse || (s.qi.kind == stmtSet && s.setRes == setTracked))
	}
	return false
}

// stickyPins are the pins that last until the session is reset: a session
// holding one keeps its backend whatever else the server reports.
const stickyPins = 1<<PinGetLock | 1<<PinUserVariable | 1<<PinTempTable | 1<<PinCalcFoundRows |
	1<<PinTextPrepare | 1<<PinUnknownSet | 1<<PinServerState | 1<<PinUnlisted

// noteServerState reads the server's report, in an OK packet of the
// response being relayed, of what changed in b's session. The schema is
// replayed: the session takes the server's word for it. Any other change
// (a system variable, a user variable, a temporary table, a prepared
// statement, a pending SET TRANSACTION or XA START outside a transaction)
// pins the session unless the command is one whose every effect the proxy
// records itself (accounted), whatever statement produced it: a prepared
// SET, EXECUTE IMMEDIATE, a procedure.
func (s *session) noteServerState(b *backend, ok *mysqlwire.OK, accounted bool) {
	b.noteReported() // an OK carries every change not yet reported
	if ok.Status&mysqlwire.StatusSessionStateChanged == 0 {
		return
	}
	it := mysqlwire.NewSessionStateIter(ok.SessionState)
	unreplayed := false
	for {
		e, more := it.Next()
		if !more {
			break
		}
		switch e.Type {
		case mysqlwire.SessionTrackSchema:
			v, err := e.Value()
			if err != nil {
				unreplayed = true
				continue
			}
			if string(v) != s.st.schema {
				s.st.schema = string(v)
			}
			b.noteSchema(s.st.schema)
		case mysqlwire.SessionTrackSystemVariables, mysqlwire.SessionTrackStateChange:
			unreplayed = unreplayed || !accounted
		case mysqlwire.SessionTrackTransactionCharacteristics:
			// Non-empty outside a transaction: SET TRANSACTION for the
			// next one is pending. In one, the transaction pin holds.
			v, err := e.Value()
			unreplayed = unreplayed || err != nil || (len(v) > 0 && ok.Status&mysqlwire.StatusInTrans == 0)
		}
	}
	if (unreplayed || it.Err() != nil) && s.pins&stickyPins == 0 {
		s.pin(PinServerState)
	}
}

// mayHideState reports whether an ERR answering the command being served
// may hide session state changes the server made before the error: CALL,
// EXECUTE (text or binary protocol), EXECUTE IMMEDIATE, a multi-statement.
func (s *session) mayHideState() bool {
	switch s.cmd {
	case mysqlwire.ComStmtExecute:
		return true
	case mysqlwire.ComQuery:
		return s.qi.feats&featMulti != 0 || s.qi.kind == stmtCall || s.qi.kind == stmtExecute
	}
	return false
}

// cmdFeats are the scanner's findings (feat*) for the command being
// served: the query's, or, for an EXECUTE, those of its statement's text.
func (s *session) cmdFeats() uint32 {
	switch s.cmd {
	case mysqlwire.ComQuery:
		return s.qi.feats
	case mysqlwire.ComStmtExecute:
		if s.stmt != nil {
			return s.stmt.feats
		}
	}
	return 0
}

// readsLastID reports whether the command being served reads the session's
// LAST_INSERT_ID(): the backend must hold the session's value first.
func (s *session) readsLastID() bool { return s.cmdFeats()&featLastIDRead != 0 }

// writesLastID reports whether the command being served may change the
// session's LAST_INSERT_ID(): the proxy asks the server for it after.
func (s *session) writesLastID() bool { return s.cmdFeats()&featLastIDWrite != 0 }

// unlisted reports whether the command being served runs a statement of a
// kind the scanner does not classify (see listedStatement).
func (s *session) unlisted() bool { return s.cmdFeats()&featUnlisted != 0 }

// finishCommand ends the current command: the backend goes back unless
// pinned and the client may send the next one.
func (s *session) finishCommand() {
	if s.phase == sClosed {
		return
	}
	s.phase = sReady
	var rode *backend
	if s.ex.rider {
		rode = s.ex.b
	}
	s.ex.end()
	s.pl.stats.Latency.Observe(time.Duration(monoNow() - s.cmdStart))
	s.stmt = nil
	s.infile = false
	diag := s.diag
	s.diag = false
	if rode != nil && s.rideDone(rode) {
		return
	}
	if b := s.b; b != nil && b.pipe.piping {
		if s.finishOnPipe(b) {
			return
		}
	} else if b != nil {
		switch {
		case s.serverPins() != 0:
		case b.needsReset():
			// Its server session may hold state nobody accounted for;
			// the session's own state is replayed on its next backend.
			s.b = nil
			s.pl.lp.Reset(b.pb)
		case diag && s.pl.lp.Waiting() == 0 && b.killPending == nil:
			s.held = true
			s.pl.lp.Keep(b.pb)
			s.pl.stats.DiagnosticHolds.Add(1)
		case b.holdForKill():
			s.b = nil // a KILL QUERY against it is in flight (kill.go)
		default:
			s.b = nil
			s.release(b)
		}
	}
	s.shrinkBuffers()
	if s.pl.closing {
		// Draining past its deadline: that was the session's last
		// command (a pinned backend is reset by OnClose).
		s.shutDown()
		return
	}
	s.c.ResumeRead()
	if s.heldInput {
		// Present what the client sent meanwhile (pipelined commands).
		s.heldInput = false
		s.c.Redeliver()
	}
}

// keptBufferCap is the largest request or scratch buffer an idle session
// keeps for its next command.
const keptBufferCap = 64 << 10

// shrinkBuffers lets go of the buffers a long statement or long data grew
// (up to 64 MiB each): a session that sent one must not hold that memory
// while idle.
func (s *session) shrinkBuffers() {
	if cap(s.req) > keptBufferCap {
		s.req, s.payload = nil, nil
	}
	if cap(s.big) > keptBufferCap {
		s.big, s.payload = nil, nil
	}
	if cap(s.scratch) > keptBufferCap {
		s.scratch = nil
	}
}

// backendLost is called when the backend serving or pinned by s broke.
func (s *session) backendLost(b *backend) {
	if s.b != b {
		return
	}
	s.b = nil
	inFlight := s.ex.b == b
	if inFlight {
		s.ex.end()
	}
	if s.held {
		// Only diagnostics were lost with it.
		s.held = false
		return
	}
	if s.phase == sClosed {
		return
	}
	if (inFlight && s.ex.relayed) || s.serverPins() != 0 {
		// Half a response was relayed, or session state (a transaction,
		// locks...) died with the backend: the client must start over.
		s.c.Abort(errUnknownState)
		return
	}
	if s.phase == sBusy {
		s.writeERR(errBackendLost)
		s.finishCommand()
	}
}

// ---- pins ----

func (s *session) pin(r PinReason) {
	bit := uint32(1) << r
	if s.pins&bit != 0 {
		return
	}
	if s.pins == 0 {
		s.pl.stats.PinnedSessions.Add(1)
	}
	s.pins |= bit
	s.pl.stats.Pins[r].Add(1)
}

func (s *session) unpin(r PinReason) {
	bit := uint32(1) << r
	if s.pins&bit == 0 {
		return
	}
	s.pins &^= bit
	if s.pins == 0 {
		s.pl.stats.PinnedSessions.Add(-1)
	}
}

// ---- local answers ----

func (s *session) status() mysqlwire.StatusFlags {
	var st mysqlwire.StatusFlags
	if !autocommitOff(s.st.varValue(varAutocommit)) {
		st |= mysqlwire.StatusAutocommit
	}
	if s.pins&(1<<PinTransaction) != 0 {
		st |= mysqlwire.StatusInTrans
	}
	if s.noBackslash {
		st |= mysqlwire.StatusNoBackslashEscapes
	}
	return st
}

func (s *session) writeOK(affected, insertID uint64) {
	out, next := mysqlwire.AppendOK(s.scratch[:0], s.respSeq, s.caps,
		mysqlwire.OK{AffectedRows: affected, LastInsertID: insertID, Status: s.status()})
	s.respSeq = next
	s.pl.stats.ClientBytesOut.Add(uint64(len(out)))
	s.c.Write(out)
	s.scratch = out[:0]
}

// writeERR answers the current command with one of the proxy's own errors
// (the table in errors.go).
func (s *session) writeERR(e proxyErr, args ...any) {
	out, next := e.appendERR(s.scratch[:0], s.respSeq, args...)
	s.respSeq = next
	s.pl.stats.Errors[errorSlot(proxyErrors[e].code)].Add(1)
	s.pl.stats.ClientBytesOut.Add(uint64(len(out)))
	s.c.Write(out)
	s.scratch = out[:0]
}

// writeIntResult answers a one-row, one-column BIGINT result set, described
// as the server describes CONNECTION_ID() and LAST_INSERT_ID().
func (s *session) writeIntResult(name []byte, v uint64) {
	s.writeUintResult([][]byte{name}, []uint64{v}, 21, 0x0001) // NOT NULL
}

// writeUintRow answers a one-row result set of BIGINT UNSIGNED columns, as
// the server describes SELECT @@wait_timeout.
func (s *session) writeUintRow(names [][]byte, vals []uint64) {
	s.writeUintResult(names, vals, 20, 0)
}

// writeUintResult answers a one-row result set of unsigned integer columns
// of the given display length and extra flags (beside UNSIGNED, BINARY and
// NUM).
func (s *session) writeUintResult(names [][]byte, vals []uint64, length uint32, flags mysqlwire.ColumnFlags) {
	out := s.scratch[:0]
	seq := s.respSeq
	out, seq = mysqlwire.AppendPacket(out, seq, []byte{byte(len(names))})
	for _, name := range names {
		var at int
		out, at = mysqlwire.AppendHeader(out)
		out = mysqlwire.AppendColumnDefinition(out, mysqlwire.ColumnDefinition{
			Name: name, CharacterSet: 63, ColumnLength: length, Type: mysqlwire.FieldType(8),
			Flags:            flags | mysqlwire.ColumnFlags(0x0020|0x0080|0x8000), // UNSIGNED, BINARY, NUM
			ExtendedMetadata: s.extMetadata(),
		})
		out, seq = mysqlwire.FinishPacket(out, at, seq)
	}
	out, seq = mysqlwire.AppendEOF(out, seq, 0, s.status())
	out, at := mysqlwire.AppendHeader(out)
	var num [20]byte
	for _, v := range vals {
		out = mysqlwire.AppendLenEncString(out, strconv.AppendUint(num[:0], v, 10))
	}
	out, seq = mysqlwire.FinishPacket(out, at, seq)
	out, seq = mysqlwire.AppendEOF(out, seq, 0, s.status())
	s.respSeq = seq
	s.pl.stats.ClientBytesOut.Add(uint64(len(out)))
	s.c.Write(out)
	s.scratch = out[:0]
}

// writeSSLStatus answers SHOW STATUS LIKE 'Ssl...' for the client's own
// connection, as the server answers it for its own: Ssl_cipher and
// Ssl_version, empty without TLS. The cipher suite has Go's name (the
// standard one, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, where OpenSSL says
// ECDHE-RSA-AES128-GCM-SHA256; TLS 1.3 suites are named alike). The
// server's other Ssl_ variables describe its own TLS library and counters,
// not a connection, and are not listed.
func (s *session) writeSSLStatus(pattern string) {
	var cipher, version string
	if st, ok := s.c.TLSState(); ok && s.tlsUp {
		cipher = tls.CipherSuiteName(st.CipherSuite)
		switch st.Version {
		case tls.VersionTLS12:
			version = "TLSv1.2"
		case tls.VersionTLS13:
			version = "TLSv1.3"
		}
	}
	out := s.scratch[:0]
	seq := s.respSeq
	out, seq = mysqlwire.AppendPacket(out, seq, []byte{2})
	for _, col := range []struct {
		name, orgName string
		length        uint32
		flags         mysqlwire.ColumnFlags
	}{{"Variable_name", "VARIABLE_NAME", 64 * 3, 0x0001}, {"Value", "VARIABLE_VALUE", 2048 * 3, 0}} {
		var at int
		out, at = mysqlwire.AppendHeader(out)
		out = mysqlwire.AppendColumnDefinition(out, mysqlwire.ColumnDefinition{
			Table: []byte("SESSION_STATUS"), Name: []byte(col.name), OrgName: []byte(col.orgName),
			CharacterSet: 33, ColumnLength: col.length, Type: mysqlwire.TypeVarString, Flags: col.flags,
			ExtendedMetadata: s.extMetadata(),
		})
		out, seq = mysqlwire.FinishPacket(out, at, seq)
	}
	out, seq = mysqlwire.AppendEOF(out, seq, 0, s.status())
	for _, v := range [...][2]string{{"Ssl_cipher", cipher}, {"Ssl_version", version}} {
		if !likeMatch(pattern, v[0]) {
			continue
		}
		var at int
		out, at = mysqlwire.AppendHeader(out)
		out = mysqlwire.AppendLenEncStr(out, v[0])
		out = mysqlwire.AppendLenEncStr(out, v[1])
		out, seq = mysqlwire.FinishPacket(out, at, seq)
	}
	out, seq = mysqlwire.AppendEOF(out, seq, 0, s.status())
	s.respSeq = seq
	s.pl.stats.ClientBytesOut.Add(uint64(len(out)))
	s.c.Write(out)
	s.scratch = out[:0]
}

// extTypeInfo reports whether the client negotiated MariaDB's extended
// type metadata in column definitions.
func (s *session) extTypeInfo() bool {
	return s.caps&mysqlwire.MariaDBClientExtendedTypeInfo != 0
}

// extMetadata is the extended type metadata of a column the proxy writes
// itself: none, but present (empty) for a client that negotiated it.
func (s *session) extMetadata() []byte {
	if s.extTypeInfo() {
		return []byte{}
	}
	return nil
}

// resetSession forgets the session's state (COM_RESET_CONNECTION,
// COM_CHANGE_USER): prepared statements, variables, pins; a pinned backend
// is reset before it goes back.
func (s *session) resetSession(schema, names string) {
	s.st = sessionState{schema: schema, names: names}
	if s.caps&mysqlwire.ClientMultiStatements != 0 {
		s.st.multiStmts = 1
	}
	s.lastInsertID = 0
	s.releaseStmts(nil) // a pinned backend is reset below, which closes them
	s.longDataBytes = 0
	s.openCursors = 0
	s.beginPending = false
	if s.pins != 0 {
		s.pins = 0
		s.pl.stats.PinnedSessions.Add(-1)
	}
	if b := s.b; b != nil {
		s.held = false
		s.b = nil
		s.pl.lp.Reset(b.pb)
	}
}

// ---- KILL ----

// mayKill reports whether a session of account may close t: its own
// account's sessions only, unless it is an admin. Any other id is answered
// like one that does not exist, so ids reveal nothing about other
// accounts' sessions.
func mayKill(t *session, account string, admin bool) bool {
	return admin || (t.user != nil && t.phase >= sReady && t.user.Name == account)
}

// killRequest carries what the target's loop needs to decide a KILL from
// another loop: a copy of the requester's account, never the requester's
// mutable fields.
type killRequest struct {
	from     *session // touched only by its own loop (killAnswered)
	fromLoop int
	p        *Proxy
	id       uint32
	account  string
	admin    bool
	query    bool // KILL QUERY: cancel the running statement only (kill.go)
	found    bool
	failed   bool // a KILL QUERY found no connection to send the kill on
}

// kill closes the session with the given id (query: cancels the statement
// it runs), which may live on another loop; the answer comes back through
// the loops' mailboxes.
func (s *session) kill(id uint64, query bool) {
	n := uint64(len(s.p.loops))
	if id == 0 || id > 0xFFFFFFFF {
		s.writeERR(errNoSuchThread, id)
		return
	}
	target := s.p.loops[id%n]
	if target == s.pl {
		t := s.pl.sessions[uint32(id)]
		switch {
		case t == nil || !mayKill(t, s.user.Name, s.user.Admin):
			s.writeERR(errNoSuchThread, id)
		case t == s && query:
			// The KILL itself is the statement interrupted, as on the server.
			s.writeERR(errQueryInterrupted)
		case t == s:
			s.pl.stats.Kills.Add(1)
			s.writeERR(errConnectionKilled)
			s.c.Close()
		case query:
			s.pl.stats.Kills.Add(1)
			s.phase = sBusy
			s.qi.killID = id
			startQueryKill(s.pl, t, &killRequest{from: s, fromLoop: s.pl.id, p: s.p, id: uint32(id), query: true, found: true})
		default:
			s.pl.stats.Kills.Add(1)
			t.c.Abort(errKilled)
			s.writeOK(0, 0)
		}
		return
	}
	s.phase = sBusy
	s.qi.killID = id
	req := &killRequest{from: s, fromLoop: s.pl.id, p: s.p, id: uint32(id), account: s.user.Name, admin: s.user.Admin, query: query}
	s.pl.loop.Post(target.loop, reactor.Task{Fn: killOnLoop, Arg: req, N: uint64(s.pl.id)})
}

// killOnLoop runs on the target's loop; it reads only the request, never
// the requester.
func killOnLoop(l *reactor.Loop, arg any, from uint64) {
	req := arg.(*killRequest)
	pl := req.p.loopOf(l)
	if t := pl.sessions[req.id]; t != nil && mayKill(t, req.account, req.admin) {
		pl.stats.Kills.Add(1)
		req.found = true
		if req.query {
			startQueryKill(pl, t, req)
			return
		}
		t.c.Abort(errKilled)
	}
	l.Post(pl.p.loops[from].loop, reactor.Task{Fn: killAnswered, Arg: req})
}

func killAnswered(_ *reactor.Loop, arg any, _ uint64) {
	req := arg.(*killRequest)
	s := req.from
	if s.phase == sClosed {
		return
	}
	switch {
	case req.failed:
		s.writeERR(errQueueTimeout)
	case req.found:
		s.writeOK(0, 0)
	default:
		s.writeERR(errNoSuchThread, s.qi.killID)
	}
	s.finishCommand()
}

// ---- COM_CHANGE_USER ----

func (s *session) onChangeUser(payload []byte) {
	cu, err := mysqlwire.ParseChangeUser(payload, s.caps)
	if err != nil {
		s.writeERR(errMalformedPacket)
		s.c.Close()
		return
	}
	user, auth, schema, plugin := cu.Username, cu.AuthResponse, cu.Database, cu.AuthPlugin
	names := s.p.defaultNames
	if nm, ok := collationNames[cu.CharacterSet]; ok {
		names = nm
	}
	u := (*s.p.users.Load())[string(user)]
	if u == nil {
		s.accessDenied(user, len(auth) > 0, s.respSeq)
		return
	}
	s.user = u
	s.resetSession(string(schema), names)
	s.loginNames = names
	if len(plugin) == 0 || string(plugin) == mysqlwire.AuthNativePassword {
		if stage1, ok := s.verifyNative(auth); ok {
			s.setIdentity(stage1)
			if !s.changeTenant() {
				return
			}
			s.setAccount(s.user)
			s.writeOK(0, 0)
			return
		}
	}
	// Re-authenticate with a fresh nonce through an auth switch.
	nonce, err := mysqlwire.NewScramble()
	if err != nil {
		s.c.Abort(err)
		return
	}
	s.nonce = nonce
	out, next := mysqlwire.AppendAuthSwitchRequest(s.scratch[:0], s.respSeq, mysqlwire.AuthNativePassword, nonce)
	s.respSeq = next
	s.pl.stats.ClientBytesOut.Add(uint64(len(out)))
	s.c.Write(out)
	s.phase = sChangeUser
	s.limitInput(true)
}

func (s *session) onChangeUserSwitchResponse(payload []byte, seq uint8) {
	s.phase = sReady
	s.limitInput(false)
	s.respSeq = seq + 1
	stage1, ok := s.verifyNative(payload)
	if !ok {
		s.accessDenied([]byte(s.user.Name), len(payload) > 0, seq+1)
		return
	}
	s.setIdentity(stage1)
	if !s.changeTenant() {
		return
	}
	s.setAccount(s.user)
	s.writeOK(0, 0)
}

// unquoteIdent undoes the doubling of quote characters inside a quoted
// identifier.
func unquoteIdent(b []byte) string {
	s := string(b)
	if strings.Contains(s, "``") {
		s = strings.ReplaceAll(s, "``", "`")
	}
	return s
}
