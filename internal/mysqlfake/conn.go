package mysqlfake

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/scalestack/scalestack/mysqlwire"
)

// State is what a connection's session looks like to the server; tests
// assert on it to see what a backend connection was made to do.
type State struct {
	LoggedIn bool
	User     string
	Schema   string
	// ClientCaps are the capabilities in effect: the client's, masked by
	// the server's.
	ClientCaps mysqlwire.Capabilities
	// Attrs are the connect attributes of the handshake (or of the last
	// COM_CHANGE_USER).
	Attrs map[string]string
	// Vars are the session system variables changed with SET, by lower-case
	// name without @@ or scope; a variable set to DEFAULT is removed.
	// SET NAMES x sets character_set_client, _connection and _results.
	Vars map[string]string
	// UserVars are the user variables (@name, lower-cased) set with SET.
	UserVars   map[string]string
	Autocommit bool
	InTrans    bool
	// LastInsertID is LAST_INSERT_ID(): the last non-zero id a scripted
	// OK reported (the double cannot tell a generated id from an explicit
	// one), or the value of DO LAST_INSERT_ID(n).
	LastInsertID    uint64
	MultiStatements bool
	// Stmts maps the open prepared statements' ids to their SQL.
	Stmts map[uint32]string
	// Resets and ChangeUsers count COM_RESET_CONNECTION and successful
	// COM_CHANGE_USER requests.
	Resets, ChangeUsers int
	Closed              bool
}

func (st *State) clone() State {
	out := *st
	out.Attrs = cloneMap(st.Attrs)
	out.Vars = cloneMap(st.Vars)
	out.UserVars = cloneMap(st.UserVars)
	out.Stmts = make(map[uint32]string, len(st.Stmts))
	for k, v := range st.Stmts {
		out.Stmts[k] = v
	}
	return out
}

func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// freshSession is the state after a login or COM_RESET_CONNECTION.
func (st *State) freshSession(caps mysqlwire.Capabilities) {
	st.Vars = map[string]string{}
	st.UserVars = map[string]string{}
	st.Autocommit = true
	st.InTrans = false
	st.MultiStatements = caps&mysqlwire.ClientMultiStatements != 0
}

// stmt is a prepared statement.
type stmt struct {
	id        uint32
	sql       string
	numParams int
	columns   []Column
	types     []byte            // parameter types bound by an earlier execution
	longData  map[uint16][]byte // COM_STMT_SEND_LONG_DATA per parameter, until the next execute
	cursor    [][]any           // rows an open cursor still holds
	cursorSet *ResultSet
	open      bool // a cursor is open
}

// Conn is one connection to the double. Its methods are safe to call from
// the test while the connection runs.
type Conn struct {
	s  *Server
	nc net.Conn
	id uint32
	r  *bufio.Reader

	// Owned by the connection's goroutine.
	seq      uint8
	in       []byte
	out      []byte
	scratch  []byte
	nonce    []byte
	caps     mysqlwire.Capabilities
	stmts    map[uint32]*stmt
	nextStmt uint32
	// pipelined: the command being served was buffered before the
	// previous response was flushed (Entry.Pipelined).
	pipelined bool

	killed   chan struct{}
	killOnce sync.Once

	mu  sync.Mutex // guards st and log
	st  State
	log ring
}

func newConn(s *Server, nc net.Conn, id uint32) *Conn {
	return &Conn{s: s, nc: nc, id: id, r: bufio.NewReaderSize(nc, 64<<10), stmts: map[uint32]*stmt{}, nextStmt: 1,
		killed: make(chan struct{}), log: ring{limit: s.cfg.LogLimit}}
}

// ID is the connection id sent in the greeting.
func (c *Conn) ID() uint32 { return c.id }

// State returns a copy of the connection's session state.
func (c *Conn) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st.clone()
}

// Log returns the commands this connection received (the last
// Config.LogLimit), in order.
func (c *Conn) Log() []Entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.log.entries()
}

// Kill resets the connection from the server side (RST), as KILL or a
// crash would; a handler delayed or hanging on it returns.
func (c *Conn) Kill() {
	c.killOnce.Do(func() {
		close(c.killed)
		if tc, ok := c.nc.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.nc.Close()
	})
}

func (c *Conn) update(f func(st *State)) {
	c.mu.Lock()
	f(&c.st)
	c.mu.Unlock()
}

// refuse answers a connection over MaxConns the way the server does.
func (c *Conn) refuse() {
	c.seq = 0
	c.writeERR(mysqlwire.ErConCountError, "08004", "Too many connections")
	c.flush()
	c.nc.Close()
}

func (c *Conn) serve() {
	defer c.s.wg.Done()
	defer func() {
		c.nc.Close()
		c.update(func(st *State) { st.Closed = true })
		c.s.releaseStmts(len(c.stmts))
		c.s.forget(c)
	}()
	if err := c.login(); err != nil {
		c.debug("login", err)
		return
	}
	for {
		c.seq = 0
		// Bytes already buffered were read before the last response
		// was flushed: the client did not wait for it.
		c.pipelined = c.r.Buffered() > 0
		payload, err := c.readPayload()
		if err != nil {
			c.debug("read", err)
			return
		}
		if err := c.command(payload); err != nil {
			c.debug("command", err)
			return
		}
		if err := c.flush(); err != nil {
			c.debug("write", err)
			return
		}
	}
}

func (c *Conn) debug(what string, err error) {
	if errors.Is(err, io.EOF) || errors.Is(err, errClosed) || errors.Is(err, net.ErrClosed) {
		return
	}
	c.s.logf("conn %d: %s: %v", c.id, what, err)
}

// readPayload reads one logical payload, joining the packets of a split one
// and checking sequence ids. It never buffers more than MaxAllowedPacket.
func (c *Conn) readPayload() ([]byte, error) {
	if cap(c.in) > 1<<20 {
		c.in = nil // do not keep a long packet's buffer for the next command
	}
	c.in = c.in[:0]
	for {
		var hdr [mysqlwire.HeaderSize]byte
		if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
			return nil, err
		}
		n, seq, _ := mysqlwire.PeekHeader(hdr[:])
		if seq != c.seq {
			c.seq = seq + 1
			c.writeERR(mysqlwire.ErNetPacketsOutOfOrder, "08S01", "Got packets out of order")
			c.flush()
			return nil, fmt.Errorf("packet sequence %d, want %d", seq, c.seq)
		}
		c.seq++
		if len(c.in)+n > c.s.cfg.MaxAllowedPacket {
			c.writeERR(mysqlwire.ErNetPacketTooLarge, "08S01", "Got a packet bigger than 'max_allowed_packet' bytes")
			c.flush()
			return nil, fmt.Errorf("request over max_allowed_packet (%d)", c.s.cfg.MaxAllowedPacket)
		}
		start := len(c.in)
		c.in = slices.Grow(c.in, n)[:start+n]
		if _, err := io.ReadFull(c.r, c.in[start:]); err != nil {
			return nil, err
		}
		if n < mysqlwire.MaxPacketPayload {
			return c.in, nil
		}
	}
}

// writePacket frames payload (split at 16 MiB by mysqlwire) after what is
// pending; output is flushed every 64 KiB, so a long result set is never
// held whole.
func (c *Conn) writePacket(payload []byte) {
	c.out, c.seq = mysqlwire.AppendPacket(c.out, c.seq, payload)
	c.maybeFlush()
}

func (c *Conn) maybeFlush() {
	if len(c.out) >= 64<<10 {
		c.flush()
	}
}

func (c *Conn) flush() error {
	if len(c.out) == 0 {
		return nil
	}
	_, err := c.nc.Write(c.out)
	c.out = c.out[:0]
	if cap(c.out) > 1<<20 {
		c.out = nil
	}
	return err
}

func (c *Conn) writeERR(code mysqlwire.ErrCode, sqlState, msg string) {
	if sqlState == "" {
		sqlState = code.SQLState()
	}
	c.out, c.seq = mysqlwire.AppendERR(c.out, c.seq, code, sqlState, msg)
}

// status is the connection's SERVER_STATUS flags.
func (c *Conn) status() mysqlwire.StatusFlags {
	c.mu.Lock()
	defer c.mu.Unlock()
	var f mysqlwire.StatusFlags
	if c.st.Autocommit {
		f |= mysqlwire.StatusAutocommit
	}
	if c.st.InTrans {
		f |= mysqlwire.StatusInTrans
	}
	return f
}

func (c *Conn) writeOK(ok OKResult) {
	if ok.LastInsertID != 0 {
		c.update(func(st *State) { st.LastInsertID = ok.LastInsertID })
	}
	p := mysqlwire.OK{AffectedRows: ok.AffectedRows, LastInsertID: ok.LastInsertID, Warnings: ok.Warnings,
		Status: c.status() | ok.Status, Info: []byte(ok.Info)}
	if len(ok.SessionState) > 0 && c.caps&mysqlwire.ClientSessionTrack != 0 {
		p.Status |= mysqlwire.StatusSessionStateChanged
		for _, e := range ok.SessionState {
			p.SessionState = mysqlwire.AppendSessionStateEntry(p.SessionState, e.Type, e.Data)
		}
	}
	c.out, c.seq = mysqlwire.AppendOK(c.out, c.seq, c.caps, p)
}

// login greets the client and authenticates it.
func (c *Conn) login() error {
	cfg := &c.s.cfg
	nonce, err := mysqlwire.NewScramble()
	if err != nil {
		return err
	}
	c.nonce = nonce
	charset := uint8(45) // utf8mb4_general_ci
	if cfg.Flavor == MySQL55 {
		charset = 8 // latin1_swedish_ci
	}
	c.out, c.seq = mysqlwire.AppendHandshake(c.out, mysqlwire.Handshake{
		ServerVersion: []byte(cfg.Version), ConnectionID: c.id, AuthPluginData: nonce,
		Capabilities: cfg.Capabilities, CharacterSet: charset, Status: mysqlwire.StatusAutocommit,
		AuthPluginName: []byte(cfg.AuthPlugin),
	})
	if err := c.flush(); err != nil {
		return err
	}
	payload, err := c.readPayload()
	if err != nil {
		return err
	}
	c.record(payload)
	hr, err := mysqlwire.ParseHandshakeResponse(payload)
	if err != nil || hr.SSLRequest || hr.Capabilities&mysqlwire.ClientProtocol41 == 0 {
		c.writeERR(mysqlwire.ErHandshakeError, "08S01", "Bad handshake")
		c.flush()
		return fmt.Errorf("bad handshake response: %v", err)
	}
	c.caps = hr.Capabilities & cfg.Capabilities
	if hr.Capabilities&mysqlwire.ClientMySQL != 0 {
		// Extended capabilities travel only while CLIENT_MYSQL is clear.
		c.caps &= 0xFFFFFFFF
	}
	plugin := string(hr.AuthPlugin)
	if c.caps&mysqlwire.ClientPluginAuth == 0 {
		plugin = mysqlwire.AuthNativePassword
	}
	var db string
	if c.caps&mysqlwire.ClientConnectWithDB != 0 {
		db = string(hr.Database)
	}
	ok, err := c.authenticate(string(hr.Username), plugin, hr.AuthResponse, db, hr.Attrs)
	if err != nil || !ok {
		c.flush()
		if err == nil {
			err = errClosed
		}
		return err
	}
	return c.flush()
}

// authenticate checks a login (handshake or COM_CHANGE_USER) and writes
// the final OK or ERR. It reads more packets for an auth switch or full
// authentication.
func (c *Conn) authenticate(user, plugin string, resp []byte, db string, attrs []byte) (bool, error) {
	acct, known := c.s.account(user)
	want := acct.Plugin
	if want == "" {
		want = mysqlwire.AuthNativePassword
	}
	if known && plugin != want {
		if c.caps&mysqlwire.ClientPluginAuth == 0 {
			return c.denied(user, resp), nil
		}
		nonce, err := mysqlwire.NewScramble()
		if err != nil {
			return false, err
		}
		c.nonce = nonce
		c.out, c.seq = mysqlwire.AppendAuthSwitchRequest(c.out, c.seq, want, nonce)
		if err := c.flush(); err != nil {
			return false, err
		}
		if resp, err = c.readPayload(); err != nil {
			return false, err
		}
		resp = bytes.Clone(resp)
	}
	if !known {
		return c.denied(user, resp), nil
	}
	switch want {
	case mysqlwire.AuthCachingSHA2:
		pw := []byte(acct.Password)
		switch {
		case len(pw) == 0:
			if len(resp) != 0 {
				return c.denied(user, resp), nil
			}
		case acct.FullAuth:
			ok, err := c.fullAuth(pw)
			if err != nil || !ok {
				if err == nil {
					return c.denied(user, resp), nil
				}
				return false, err
			}
		default:
			if mysqlwire.VerifyCachingSHA2(mysqlwire.CachingSHA2Hash(pw), c.nonce, resp) != nil {
				return c.denied(user, resp), nil
			}
			c.out, c.seq = mysqlwire.AppendAuthMoreData(c.out, c.seq, []byte{mysqlwire.CachingSHA2FastAuthSuccess})
		}
	default:
		var stored []byte
		if acct.Password != "" {
			stored = mysqlwire.NativePasswordHash([]byte(acct.Password))
		}
		if _, err := mysqlwire.VerifyNativePassword(stored, c.nonce, resp); err != nil {
			return c.denied(user, resp), nil
		}
	}
	if db != "" && !c.s.knownSchema(db) {
		c.writeERR(mysqlwire.ErBadDBError, "42000", fmt.Sprintf("Unknown database '%s'", db))
		c.s.mu.Lock()
		c.s.stats.AuthFailed++
		c.s.mu.Unlock()
		return false, nil
	}
	attrMap := map[string]string{}
	it := mysqlwire.NewAttrIter(attrs)
	for k, v, ok := it.Next(); ok; k, v, ok = it.Next() {
		attrMap[string(k)] = string(v)
	}
	c.update(func(st *State) {
		st.LoggedIn, st.User, st.Schema, st.ClientCaps, st.Attrs = true, user, db, c.caps, attrMap
		st.freshSession(c.caps)
	})
	c.s.mu.Lock()
	c.s.stats.LoggedIn++
	c.s.mu.Unlock()
	c.writeOK(OKResult{})
	return true, nil
}

// fullAuth runs caching_sha2_password's slow path without TLS: the client
// asks for the public key and sends the RSA-encrypted password.
func (c *Conn) fullAuth(pw []byte) (bool, error) {
	c.out, c.seq = mysqlwire.AppendAuthMoreData(c.out, c.seq, []byte{mysqlwire.CachingSHA2PerformFullAuth})
	if err := c.flush(); err != nil {
		return false, err
	}
	req, err := c.readPayload()
	if err != nil {
		return false, err
	}
	if len(req) != 1 || req[0] != mysqlwire.CachingSHA2RequestPublicKey {
		return false, nil // cleartext needs TLS, which the double does not offer
	}
	key, pem, err := c.s.publicKey()
	if err != nil {
		return false, err
	}
	c.out, c.seq = mysqlwire.AppendAuthMoreData(c.out, c.seq, pem)
	if err := c.flush(); err != nil {
		return false, err
	}
	enc, err := c.readPayload()
	if err != nil {
		return false, err
	}
	got, err := mysqlwire.DecryptCachingSHA2Password(enc, c.nonce, key)
	if err != nil {
		return false, nil
	}
	return mysqlwire.VerifyCachingSHA2Password(mysqlwire.CachingSHA2Hash(pw), got) == nil, nil
}

// denied writes the server's access-denied error.
func (c *Conn) denied(user string, resp []byte) bool {
	using := "NO"
	if len(resp) > 0 {
		using = "YES"
	}
	c.writeERR(mysqlwire.ErAccessDenied, "28000", fmt.Sprintf("Access denied for user '%s'@'localhost' (using password: %s)", user, using))
	c.s.mu.Lock()
	c.s.stats.AuthFailed++
	c.s.mu.Unlock()
	return false
}

// record logs a request.
func (c *Conn) record(payload []byte) {
	e := Entry{ConnID: c.id, Len: len(payload), Pipelined: c.pipelined}
	if cmd, ok := mysqlwire.CommandOf(payload); ok {
		e.Cmd = cmd
	}
	keep := min(len(payload), c.s.cfg.LogPayload)
	e.Payload = bytes.Clone(payload[:keep])
	c.mu.Lock()
	c.log.add(e)
	c.mu.Unlock()
	c.s.record(e)
}

// command serves one request. A returned error closes the connection.
func (c *Conn) command(payload []byte) error {
	c.record(payload)
	cmd, ok := mysqlwire.CommandOf(payload)
	if !ok {
		c.writeERR(mysqlwire.ErUnknownComError, "08S01", "Unknown command")
		return nil
	}
	switch cmd {
	case mysqlwire.ComQuit:
		return errClosed
	case mysqlwire.ComPing:
		c.writeOK(OKResult{})
	case mysqlwire.ComQuery:
		text, err := mysqlwire.QueryText(payload, c.caps)
		if err != nil {
			c.writeERR(erMalformedPacket, "HY000", "Malformed communication packet")
			return nil
		}
		return c.respond(c.answer(Query{SQL: string(text)}), false)
	case mysqlwire.ComInitDB:
		c.initDB(string(payload[1:]))
	case mysqlwire.ComResetConnection:
		if c.s.cfg.Flavor == MySQL55 {
			c.writeERR(mysqlwire.ErUnknownComError, "08S01", "Unknown command")
			return nil
		}
		c.closeAllStmts()
		c.update(func(st *State) {
			st.freshSession(c.caps)
			st.Resets++
			st.Stmts = nil
		})
		c.writeOK(OKResult{})
	case mysqlwire.ComChangeUser:
		return c.changeUser(payload)
	case mysqlwire.ComSetOption:
		opt, err := mysqlwire.ParseSetOption(payload)
		if err != nil || opt > mysqlwire.OptionMultiStatementsOff {
			c.writeERR(mysqlwire.ErUnknownComError, "08S01", "Unknown command")
			return nil
		}
		c.update(func(st *State) { st.MultiStatements = opt == mysqlwire.OptionMultiStatementsOn })
		// The server answers COM_SET_OPTION with an EOF packet.
		c.out, c.seq = mysqlwire.AppendEOF(c.out, c.seq, 0, c.status())
	case mysqlwire.ComStmtPrepare:
		return c.prepare(string(payload[1:]))
	case mysqlwire.ComStmtExecute:
		return c.execute(payload)
	case mysqlwire.ComStmtClose:
		id, err := mysqlwire.ParseStmtClose(payload)
		if err == nil {
			c.closeStmt(id)
		}
	case mysqlwire.ComStmtReset:
		id, err := mysqlwire.ParseStmtReset(payload)
		st := c.stmts[id]
		if err != nil || st == nil {
			c.writeERR(mysqlwire.ErUnknownStmtHandler, "HY000", fmt.Sprintf("Unknown prepared statement handler (%d) given to mysqld_stmt_reset", id))
			return nil
		}
		st.longData, st.cursor, st.open = nil, nil, false
		c.writeOK(OKResult{})
	case mysqlwire.ComStmtSendLongData:
		ld, err := mysqlwire.ParseStmtSendLongData(payload)
		if err != nil {
			return nil // no reply is ever sent to SEND_LONG_DATA
		}
		if st := c.stmts[ld.StatementID]; st != nil && int(ld.ParamID) < st.numParams {
			if st.longData == nil {
				st.longData = map[uint16][]byte{}
			}
			if len(st.longData[ld.ParamID])+len(ld.Data) > c.s.cfg.MaxAllowedPacket {
				return fmt.Errorf("long data for statement %d over max_allowed_packet", ld.StatementID)
			}
			st.longData[ld.ParamID] = append(st.longData[ld.ParamID], ld.Data...)
		}
	case mysqlwire.ComStmtFetch:
		return c.fetch(payload)
	default:
		c.writeERR(mysqlwire.ErUnknownComError, "08S01", "Unknown command")
	}
	return nil
}

func (c *Conn) initDB(schema string) {
	if !c.s.knownSchema(schema) {
		c.writeERR(mysqlwire.ErBadDBError, "42000", fmt.Sprintf("Unknown database '%s'", schema))
		return
	}
	c.update(func(st *State) { st.Schema = schema })
	c.writeOK(OKResult{SessionState: []SessionChange{SchemaChange(schema)}})
}

func (c *Conn) changeUser(payload []byte) error {
	cu, err := mysqlwire.ParseChangeUser(payload, c.caps)
	if err != nil {
		c.writeERR(mysqlwire.ErUnknownComError, "08S01", "Unknown command")
		return nil
	}
	plugin := string(cu.AuthPlugin)
	if plugin == "" || c.caps&mysqlwire.ClientPluginAuth == 0 {
		plugin = mysqlwire.AuthNativePassword
	}
	user, resp, db, attrs := string(cu.Username), bytes.Clone(cu.AuthResponse), string(cu.Database), bytes.Clone(cu.Attrs)
	c.closeAllStmts()
	c.update(func(st *State) { st.LoggedIn = false; st.Stmts = nil })
	ok, err := c.authenticate(user, plugin, resp, db, attrs)
	if err != nil {
		return err
	}
	if !ok {
		// The server closes a connection whose COM_CHANGE_USER failed.
		c.flush()
		return errClosed
	}
	c.update(func(st *State) { st.ChangeUsers++ })
	return nil
}

func (c *Conn) closeStmt(id uint32) {
	if _, ok := c.stmts[id]; !ok {
		return
	}
	delete(c.stmts, id)
	c.s.releaseStmts(1)
	c.update(func(st *State) { delete(st.Stmts, id) })
}

func (c *Conn) closeAllStmts() {
	c.s.releaseStmts(len(c.stmts))
	clear(c.stmts)
}

// answer finds the response to q: a scripted rule, a built-in answer, or
// the default.
func (c *Conn) answer(q Query) Response {
	q.ConnID, q.Conn = c.id, c
	q.SQL = normalize(q.SQL)
	if fn := c.s.lookup(q.SQL); fn != nil {
		return fn(q)
	}
	if r, ok := c.builtin(q); ok {
		return r
	}
	c.s.mu.Lock()
	fn := c.s.fallback
	c.s.mu.Unlock()
	if fn != nil {
		return fn(q)
	}
	return syntaxError(q)
}

// wait sleeps d unless the connection or server is closed first.
func (c *Conn) wait(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-c.killed:
	case <-c.s.closed:
	}
	return errClosed
}

// drop ends the connection the way d says.
func (c *Conn) drop(d Drop) error {
	c.flush()
	if d == DropClose {
		if tc, ok := c.nc.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		return errClosed
	}
	c.Kill()
	return errClosed
}

// respond writes r (binary rows for a prepared statement).
func (c *Conn) respond(r Response, binary bool) error {
	if r.Delay > 0 {
		if err := c.flush(); err != nil {
			return err
		}
		if err := c.wait(r.Delay); err != nil {
			return err
		}
	}
	if r.Hang {
		if err := c.flush(); err != nil {
			return err
		}
		// Read and discard until the peer or the test closes, so that a
		// client giving up is seen (State().Closed) without buffering.
		peerGone := make(chan struct{})
		defer close(peerGone)
		go func() {
			select {
			case <-c.killed:
			case <-c.s.closed:
			case <-peerGone:
			}
			c.nc.Close()
		}()
		io.Copy(io.Discard, c.r)
		return errClosed
	}
	switch r.Drop {
	case DropClose, DropReset:
		return c.drop(r.Drop)
	}
	switch {
	case r.Result != nil:
		rows := r.Result.Rows
		cut := r.Drop == DropMidResult
		if cut {
			rows = rows[:len(rows)/2]
		}
		cols := resolveColumns(r.Result)
		c.writeColumns(cols, true)
		c.writeRows(cols, rows, binary)
		if cut {
			return c.drop(DropReset)
		}
		c.out, c.seq = mysqlwire.AppendResultSetEnd(c.out, c.seq, c.caps, r.Result.Warnings, c.status()|r.Result.Status)
	case r.Err != nil:
		if r.Drop == DropMidResult {
			return c.drop(DropReset)
		}
		c.writeERR(r.Err.Code, r.Err.SQLState, r.Err.Message)
	default:
		if r.Drop == DropMidResult {
			return c.drop(DropReset)
		}
		ok := OKResult{}
		if r.OK != nil {
			ok = *r.OK
		}
		c.writeOK(ok)
	}
	return nil
}

// writeColumns writes the column count (when withCount), the definitions
// and, without CLIENT_DEPRECATE_EOF, their EOF.
func (c *Conn) writeColumns(cols []Column, withCount bool) {
	if withCount {
		c.writePacket(mysqlwire.AppendLenEncInt(c.scratch[:0], uint64(len(cols))))
	}
	c.writeDefinitions(cols)
	if c.caps&mysqlwire.ClientDeprecateEOF == 0 {
		c.out, c.seq = mysqlwire.AppendEOF(c.out, c.seq, 0, c.status())
	}
}

func (c *Conn) writeDefinitions(cols []Column) {
	schema := c.State().Schema
	for _, col := range cols {
		def := mysqlwire.ColumnDefinition{
			Catalog: []byte("def"), Schema: []byte(schema), Name: []byte(col.Name), OrgName: []byte(col.Name),
			CharacterSet: 45, ColumnLength: 1024, Type: col.Type,
		}
		if isNumeric(col.Type) {
			def.CharacterSet, def.ColumnLength = 63, 20
			def.Flags |= mysqlwire.FlagBinary | mysqlwire.FlagNum
		}
		if col.Unsigned {
			def.Flags |= mysqlwire.FlagUnsigned
		}
		if c.caps&mysqlwire.MariaDBClientExtendedTypeInfo != 0 {
			def.ExtendedMetadata = []byte{}
		}
		c.scratch = mysqlwire.AppendColumnDefinition(c.scratch[:0], def)
		c.writePacket(c.scratch)
	}
}

func (c *Conn) writeRows(cols []Column, rows [][]any, binary bool) {
	for _, row := range rows {
		if binary {
			vals := make([]mysqlwire.Value, len(cols))
			for i := range cols {
				var v any
				if i < len(row) {
					v = row[i]
				}
				vals[i] = binaryValue(cols[i], v)
			}
			c.scratch = mysqlwire.AppendBinaryRow(c.scratch[:0], vals)
		} else {
			fields := make([][]byte, len(cols))
			for i := range cols {
				if i < len(row) {
					fields[i] = textValue(row[i])
				}
			}
			c.scratch = mysqlwire.AppendTextRow(c.scratch[:0], fields)
		}
		c.writePacket(c.scratch)
		if cap(c.scratch) > 1<<20 {
			c.scratch = nil
		}
	}
}
