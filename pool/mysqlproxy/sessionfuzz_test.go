package mysqlproxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/scalestack/scalestack/internal/mysqlfake"
	"github.com/scalestack/scalestack/mysqlwire"
)

// FuzzClientSession drives whole client sessions: up to three clients log
// in, then the input is a program of commands sent on them, in turn:
// statements that pin, track state, fail, warn or break the backend
// (scripted on the double internal/mysqlfake), COM_STMT_* on the ids the
// proxy handed out or made up, COM_CHANGE_USER with a right or wrong
// password, COM_RESET_CONNECTION, COM_INIT_DB, COM_SET_OPTION, pipelined
// and split packets, long data, part of a packet whose header promises 16
// MiB, a client gone in the middle of a result, and arbitrary packets. Invariants, for every
// input:
//
//   - no panic (a loop's panic kills the process), and no hang: every
//     command the proxy must answer is answered within 5 s (commands that
//     wait for a backend held by another client get ERR 9001 after the
//     300 ms queue timeout), with well-formed responses in sequence;
//   - once the clients are gone, every backend is back in the pool, idle
//     and logged in (returned, or closed and reconnected), no session is
//     left, no waiter queued;
//   - the test process has no more goroutines and file descriptors than
//     before the input.
func FuzzClientSession(f *testing.F) {
	sessionFuzzOnce.Do(func() {
		// Logs from the loops must not reach testing (see FuzzClientPacket).
		sessionFuzzProxy = startProxy(f, 2, 2, func(c *Config) {
			c.Logf = func(string, ...any) {}
			c.QueueTimeout = 300 * time.Millisecond
		})
		scriptSessionFuzz(sessionFuzzProxy.fake)
	})
	tp := sessionFuzzProxy
	q := func(text string) byte { return stmtIndex(text) }
	for _, s := range [][]byte{
		{},
		fuzzProgram(1, []byte{0, 0, q("SELECT rows")}, []byte{0, 0, q("SELECT big")}, []byte{0, 0, q("USE nosuchdb")},
			[]byte{0, 0, q("SELECT warn")}, []byte{0, 0, q("SHOW WARNINGS")}, []byte{0, 0, q("SELECT drop")},
			[]byte{0, 0, q("SELECT 1")}, []byte{0, 0, q("CALL fail")}, []byte{0, 0, q("CALL state")},
			[]byte{0, 0, q("KILL QUERY CONNECTION_ID()")}, []byte{0, 0, q("SELECT 1; SELECT 2")}),
		// Two clients pin both backends; the third waits and gets 9001.
		fuzzProgram(3, []byte{0, 0, q("SET @x = 1")}, []byte{1, 0, q("BEGIN")}, []byte{2, 0, q("SELECT 1")},
			[]byte{0, 9, 0}, []byte{2, 0, q("SELECT slow")}, []byte{1, 0, q("COMMIT")}, []byte{2, 0, q("SELECT 1")},
			[]byte{0, 0, q("SELECT GET_LOCK('a', 0)")}, []byte{1, 14, 0}),
		// Prepared statements: execute, long data, a cursor, fetch, reset, close.
		fuzzProgram(1, []byte{0, 2, 0}, []byte{0, 3, 0, 0, 1}, []byte{0, 4, 0, 5}, []byte{0, 3, 0, 1, 1},
			[]byte{0, 2, 1}, []byte{0, 3, 4, 1, 0}, []byte{0, 7, 4, 2}, []byte{0, 6, 4}, []byte{0, 5, 0},
			[]byte{0, 3, 0, 0, 2}, []byte{0, 2, 3}, []byte{0, 3, 8, 0, 1}),
		// COM_CHANGE_USER right, then wrong (the proxy closes).
		fuzzProgram(1, []byte{0, 0, q("SET @x = 1")}, []byte{0, 8, 1}, []byte{0, 0, q("SELECT @x")}, []byte{0, 8, 2}),
		// Split and pipelined packets, then half a packet promising 16 MiB, and a client gone mid-result.
		fuzzProgram(2, []byte{0, 12, q("SELECT rows"), 2}, []byte{1, 13, q("SELECT 1"), q("SELECT big")},
			[]byte{0, 11, 0}, []byte{1, 14, 1}),
		// Ping, COM_INIT_DB, COM_SET_OPTION, COM_RESET_CONNECTION, KILL of itself.
		fuzzProgram(1, []byte{0, 10, 0}, []byte{0, 10, 1}, []byte{0, 10, 2}, []byte{0, 10, 0x83}, []byte{0, 9, 0},
			[]byte{0, 0, q("KILL CONNECTION_ID()")}),
		// An arbitrary packet with a wrong sequence id.
		fuzzProgram(1, []byte{0, 0, q("SET autocommit = 0")}, []byte{0, 15, 3, 0x03, 'S', 'E', 7}),
		// The no-password account without a schema.
		append([]byte{0, 0, 5}, 0, q("SELECT DATABASE()"), 0, 0, q("INSERT INTO t VALUES (1)"), 0, 0, q("SELECT LAST_INSERT_ID()")),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, program []byte) {
		if len(program) > 512 {
			return
		}
		goroutines, fds := runtime.NumGoroutine(), openFDs(t)
		run := &fuzzRun{t: t, tp: tp, program: program}
		run.play()
		run.closeAll()
		waitQuiet(t, tp, goroutines, fds, program)
	})
}

// fuzzProgram builds a seed program: the number of clients, then
// operations {slot, code, arg, more...}; a slot's first operation logs it
// in first (login byte 0: testUser with a schema).
func fuzzProgram(clients byte, ops ...[]byte) []byte {
	p := []byte{clients - 1}
	var in [3]bool
	for _, op := range ops {
		p = append(p, op[0])
		if !in[op[0]] {
			in[op[0]] = true
			p = append(p, 0)
		}
		p = append(p, op[1:]...)
	}
	return p
}

var (
	sessionFuzzOnce  sync.Once
	sessionFuzzProxy *testProxy
)

// Statements of the session fuzz target: the double's built-ins and the
// rules scriptSessionFuzz adds.
var fuzzStatements = []string{
	"SELECT 1", "SET @x = 1", "SELECT @x", "SET autocommit = 0", "SET autocommit = 1", "BEGIN", "COMMIT",
	"ROLLBACK", "USE " + testDB, "USE nosuchdb", "SELECT DATABASE()", "SELECT LAST_INSERT_ID()",
	"DO LAST_INSERT_ID(5)", "INSERT INTO t VALUES (1)", "SELECT rows", "SELECT big", "CALL fail", "CALL state",
	"SELECT warn", "SHOW WARNINGS", "SELECT GET_LOCK('a', 0)", "CREATE TEMPORARY TABLE t (a INT)",
	"SET NAMES latin1", "SET time_zone = '+01:00'", "SET sql_mode = 'ANSI_QUOTES'", "SELECT @@time_zone",
	"SELECT CONNECTION_ID()", "KILL QUERY CONNECTION_ID()", "KILL CONNECTION_ID()", "SELECT slow",
	"LOCK TABLES t WRITE", "UNLOCK TABLES", "SELECT drop", "SELECT @@warning_count", "PREPARE s FROM 'SELECT 1'",
	"SELECT 1; SELECT 2", "SET @@session.wait_timeout = 10", "SELECT @@wait_timeout", "XA START 'x'",
}

// stmtIndex is the index of text in fuzzStatements.
func stmtIndex(text string) byte {
	for i, s := range fuzzStatements {
		if s == text {
			return byte(i)
		}
	}
	panic("not a fuzz statement: " + text)
}

// fuzzPrepared are the texts the target prepares.
var fuzzPrepared = []string{
	"SELECT ?", "SELECT rows", "SELECT big", "SET @x = ?", "CALL fail", "SELECT GET_LOCK(?, 0)",
	"INSERT INTO t VALUES (?)", "SELECT LAST_INSERT_ID()", "SELECT drop",
}

func scriptSessionFuzz(srv *mysqlfake.Server) {
	var rows, big [][]any
	for i := 0; i < 20; i++ {
		rows = append(rows, []any{int64(i), "row"})
	}
	pad := string(bytes.Repeat([]byte{'p'}, 200))
	for i := 0; i < 2000; i++ {
		big = append(big, []any{int64(i), pad})
	}
	srv.On("SELECT rows", mysqlfake.Rows([]string{"id", "v"}, rows...))
	srv.On("SELECT big", mysqlfake.Rows([]string{"id", "pad"}, big...))
	drop := mysqlfake.Rows([]string{"id", "v"}, rows...)
	drop.Drop = mysqlfake.DropMidResult
	srv.OnFunc(func(sql string) bool { return sql == "SELECT drop" }, func(q mysqlfake.Query) mysqlfake.Response {
		if q.Preparing {
			return mysqlfake.Rows([]string{"id", "v"})
		}
		return drop
	})
	srv.On("SELECT ?", mysqlfake.Rows([]string{"?"}, []any{int64(1)}))
	srv.On("SELECT GET_LOCK(?, 0)", mysqlfake.Rows([]string{"l"}, []any{int64(1)}))
	srv.On("SELECT GET_LOCK('a', 0)", mysqlfake.Rows([]string{"l"}, []any{int64(1)}))
	srv.OnPrefix("INSERT INTO t", mysqlfake.Affected(1, 9))
	srv.On("CALL fail", mysqlfake.Fail(1644, "45000", "failed on purpose"))
	srv.On("CALL state", mysqlfake.Response{OK: &mysqlfake.OKResult{
		SessionState: []mysqlfake.SessionChange{mysqlfake.StateChange()}}})
	srv.On("SELECT warn", mysqlfake.Response{Result: &mysqlfake.ResultSet{
		Columns: []mysqlfake.Column{{Name: "w"}}, Rows: [][]any{{int64(0)}}, Warnings: 1}})
	srv.On("SHOW WARNINGS", mysqlfake.Rows([]string{"Level", "Code", "Message"}, []any{"Warning", int64(1292), "w"}))
	srv.On("CREATE TEMPORARY TABLE t (a INT)", mysqlfake.OK())
	srv.On("LOCK TABLES t WRITE", mysqlfake.OK())
	srv.On("UNLOCK TABLES", mysqlfake.OK())
	srv.On("SELECT slow", mysqlfake.Rows([]string{"s"}, []any{int64(1)}).After(20*time.Millisecond))
	srv.On("XA START 'x'", mysqlfake.OK())
}

// fuzzRun plays one program.
type fuzzRun struct {
	t       *testing.T
	tp      *testProxy
	program []byte
	at      int
	clients [3]*fuzzClient
	logins  int
}

// fuzzClient is one client connection.
type fuzzClient struct {
	c     net.Conn
	caps  mysqlwire.Capabilities
	stmts []uint32 // statement ids the proxy answered PREPARE with
}

// next returns the program's next byte (0 past its end).
func (r *fuzzRun) next() byte {
	if r.at >= len(r.program) {
		r.at++
		return 0
	}
	b := r.program[r.at]
	r.at++
	return b
}

func (r *fuzzRun) play() {
	n := 1 + int(r.next()%3)
	for r.at < len(r.program) {
		slot := int(r.next()) % n
		c := r.clients[slot]
		if c == nil {
			if r.logins == 6 {
				return
			}
			r.logins++
			if c = r.login(); c == nil {
				return
			}
			r.clients[slot] = c
		}
		at := r.at
		ok := r.op(c)
		if os.Getenv("FUZZ_TRACE") != "" { // to read what a seed or a finding does
			r.t.Logf("client %d: op %x: %v", slot, r.program[at:min(r.at, len(r.program))], ok)
		}
		if !ok {
			c.c.Close()
			r.clients[slot] = nil
		}
	}
}

func (r *fuzzRun) closeAll() {
	for i, c := range r.clients {
		if c != nil {
			c.c.Close()
			r.clients[i] = nil
		}
	}
}

// login logs a new client in: testUser, or the account without a
// password, with or without CLIENT_MULTI_STATEMENTS.
func (r *fuzzRun) login() *fuzzClient {
	r.t.Helper()
	b := r.next()
	raw := dialRaw(r.t, r.tp.addr)
	user, password := testUser, testPassword
	if b&1 != 0 {
		user, password = testNoPWUser, ""
	}
	p, _ := raw.mustRead()
	hs, err := mysqlwire.ParseHandshake(p)
	if err != nil {
		r.t.Fatalf("greeting: %v", err)
	}
	caps := hs.Capabilities
	if b&2 != 0 {
		caps &^= mysqlwire.ClientMultiStatements
	}
	var auth []byte
	if password != "" {
		auth = mysqlwire.NativePasswordScramble([]byte(password), hs.AuthPluginData[:20])
	}
	hr := mysqlwire.HandshakeResponse{Capabilities: caps, MaxPacketSize: 1 << 24, CharacterSet: 45,
		Username: []byte(user), AuthResponse: auth, AuthPlugin: []byte(mysqlwire.AuthNativePassword)}
	if b&4 == 0 {
		hr.Database = []byte(testDB)
	}
	pkt, _ := mysqlwire.AppendHandshakeResponse(nil, 1, hr)
	if _, err := raw.c.Write(pkt); err != nil {
		r.t.Fatalf("login: %v", err)
	}
	if p, _ := raw.mustRead(); !mysqlwire.IsOK(p) {
		r.t.Fatalf("login of %s: %x", user, p)
	}
	return &fuzzClient{c: raw.c, caps: caps & hs.Capabilities}
}

// op runs the program's next operation on c; false: c is closed.
func (r *fuzzRun) op(c *fuzzClient) bool {
	code := r.next()
	arg := r.next()
	query := func(i byte) []byte {
		return append([]byte{byte(mysqlwire.ComQuery)}, fuzzStatements[int(i)%len(fuzzStatements)]...)
	}
	switch code % 16 {
	case 0:
		return r.command(c, query(arg))
	case 1: // a statement from the program
		n := int(arg) % 64
		text := make([]byte, 0, n)
		for i := 0; i < n && r.at < len(r.program); i++ {
			text = append(text, r.next())
		}
		return r.command(c, append([]byte{byte(mysqlwire.ComQuery)}, text...))
	case 2:
		p := append([]byte{byte(mysqlwire.ComStmtPrepare)}, fuzzPrepared[int(arg)%len(fuzzPrepared)]...)
		return r.command(c, p)
	case 3: // COM_STMT_EXECUTE: flags (cursor or not), an int or a NULL parameter
		p := []byte{byte(mysqlwire.ComStmtExecute)}
		p = appendU32(p, c.stmtID(arg))
		p = append(p, r.next()&1)
		p = appendU32(p, 1)
		switch r.next() % 3 {
		case 0: // no parameters
		case 1:
			p = append(p, 0, 1, byte(mysqlwire.TypeLongLong), 0, 7, 0, 0, 0, 0, 0, 0, 0)
		default:
			p = append(p, 1, 1, byte(mysqlwire.TypeLongLong), 0)
		}
		return r.command(c, p)
	case 4: // COM_STMT_SEND_LONG_DATA: no answer
		p := []byte{byte(mysqlwire.ComStmtSendLongData)}
		p = appendU32(p, c.stmtID(arg))
		p = append(p, 0, 0)
		return r.command(c, append(p, bytes.Repeat([]byte{'L'}, int(r.next()))...))
	case 5:
		return r.command(c, appendU32([]byte{byte(mysqlwire.ComStmtClose)}, c.stmtID(arg)))
	case 6:
		return r.command(c, appendU32([]byte{byte(mysqlwire.ComStmtReset)}, c.stmtID(arg)))
	case 7:
		p := appendU32([]byte{byte(mysqlwire.ComStmtFetch)}, c.stmtID(arg))
		return r.command(c, appendU32(p, uint32(r.next()%8)))
	case 8:
		return r.changeUser(c, arg)
	case 9:
		return r.command(c, []byte{byte(mysqlwire.ComResetConnection)})
	case 10:
		switch arg % 4 {
		case 0:
			return r.command(c, []byte{byte(mysqlwire.ComPing)})
		case 1:
			return r.command(c, append([]byte{byte(mysqlwire.ComInitDB)}, testDB...))
		case 2:
			return r.command(c, append([]byte{byte(mysqlwire.ComInitDB)}, "nosuchdb"...))
		default:
			return r.command(c, []byte{byte(mysqlwire.ComSetOption), arg >> 7, 0})
		}
	case 11: // a header promising a full 16 MiB chunk (more to follow), a part of it, and the client goes
		// (Whole payloads of 16 MiB and more take seconds on a loaded
		// machine, past the fuzzing engine's 10 s per input: internal/e2e's
		// TestLongPacketsThroughDriver and TestLongDataSmuggling send them.)
		p := []byte{0xff, 0xff, 0xff, 0, byte(mysqlwire.ComQuery)}
		c.c.Write(append(p, bytes.Repeat([]byte{'S'}, int(arg)*64)...))
		return false
	case 12: // one command written in pieces
		pkt, _ := mysqlwire.AppendPacket(nil, 0, query(arg))
		step := 1 + int(r.next())%7
		for i := 0; i < len(pkt); i += step {
			end := min(i+step, len(pkt))
			if _, err := c.c.Write(pkt[i:end]); err != nil {
				return false
			}
			if i < 3*step {
				time.Sleep(100 * time.Microsecond)
			}
		}
		return r.response(c, query(arg))
	case 13: // two commands in one write
		a, b := query(arg), query(r.next())
		pkt, _ := mysqlwire.AppendPacket(nil, 0, a)
		pkt, _ = mysqlwire.AppendPacket(pkt, 0, b)
		if _, err := c.c.Write(pkt); err != nil {
			return false
		}
		return r.response(c, a) && r.response(c, b)
	case 14: // the client leaves: COM_QUIT, closed in the middle of a result, or reset
		switch arg % 3 {
		case 0:
			r.write(c, []byte{byte(mysqlwire.ComQuit)})
		case 1:
			if r.write(c, query(stmtIndex("SELECT big"))) {
				c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
				var hdr [4]byte
				io.ReadFull(c.c, hdr[:])
			}
		default:
			r.write(c, query(stmtIndex("SELECT slow")))
			c.c.(*net.TCPConn).SetLinger(0)
		}
		return false
	default: // an arbitrary packet, with an arbitrary sequence id; then the client goes
		n := int(arg) % 32
		p := make([]byte, 0, n)
		for i := 0; i < n && r.at < len(r.program); i++ {
			p = append(p, r.next())
		}
		pkt, _ := mysqlwire.AppendPacket(nil, r.next(), p)
		c.c.Write(pkt)
		return false
	}
}

const maxPayload = mysqlwire.MaxPacketPayload

// answerTimeout is how long a command may go unanswered before the target
// calls it a hang: 5 s (the machine may be loaded: make test runs packages
// in parallel), within the fuzzing engine's 10 s for a whole input.
func answerTimeout([]byte) time.Duration { return 5 * time.Second }

func appendU32(b []byte, v uint32) []byte {
	return append(b, byte(v), byte(v>>8), byte(v>>16), byte(v>>24))
}

// stmtID is one of the ids the proxy gave c, or (one time in four, or
// when it gave none) a made-up one.
func (c *fuzzClient) stmtID(b byte) uint32 {
	if len(c.stmts) == 0 || b&3 == 3 {
		return uint32(b)
	}
	return c.stmts[int(b>>2)%len(c.stmts)]
}

// write sends one command packet (split if 16 MiB or more); false: the connection is gone.
func (r *fuzzRun) write(c *fuzzClient, payload []byte) bool {
	pkt, _ := mysqlwire.AppendPacket(nil, 0, payload)
	c.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.c.Write(pkt)
	return err == nil
}

// command sends payload and reads its response.
func (r *fuzzRun) command(c *fuzzClient, payload []byte) bool {
	return r.write(c, payload) && r.response(c, payload)
}

// response reads the response to payload and checks its shape and sequence
// ids; false: the proxy closed the connection (or the command ends it).
func (r *fuzzRun) response(c *fuzzClient, payload []byte) bool {
	r.t.Helper()
	var tr mysqlwire.ResponseTracker
	prog, err := tr.Start(mysqlwire.Command(payload[0]), c.caps)
	if err == nil && prog == mysqlwire.Complete {
		return true // a command without an answer
	}
	untracked := err != nil
	// The response's sequence ids follow the request's packets.
	seq := uint8(len(payload)/maxPayload + 1)
	first := true
	var big []byte // a payload of 16 MiB or more, being joined
	for {
		c.c.SetReadDeadline(time.Now().Add(answerTimeout(payload)))
		var hdr [4]byte
		if _, err := io.ReadFull(c.c, hdr[:]); err != nil {
			return r.gone(err, payload)
		}
		n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
		p := make([]byte, n)
		if _, err := io.ReadFull(c.c, p); err != nil {
			return r.gone(err, payload)
		}
		if hdr[3] != seq {
			r.t.Fatalf("response to %.40q: sequence id %d, want %d", payload, hdr[3], seq)
		}
		seq++
		if n == maxPayload {
			big = append(big, p...)
			continue
		}
		if big != nil {
			p, big = append(big, p...), nil
		}
		if untracked { // not a command a server answers normally: one packet
			return true
		}
		if first && mysqlwire.Command(payload[0]) == mysqlwire.ComStmtPrepare && len(p) >= 12 && p[0] == 0 {
			c.stmts = append(c.stmts, uint32(p[1])|uint32(p[2])<<8|uint32(p[3])<<16|uint32(p[4])<<24)
		}
		first = false
		if prog, err = tr.Feed(p); err != nil {
			r.t.Fatalf("response to %.40q: %v", payload, err)
		}
		if prog == mysqlwire.Complete {
			return true
		}
		if prog == mysqlwire.ClientTurn {
			// LOCAL INFILE or an auth exchange: not part of these programs.
			return false
		}
	}
}

// gone judges a read that failed: the proxy closed the connection (fine:
// a KILL, a broken backend mid-result, a bad packet), or it did not answer
// in time (a hang).
func (r *fuzzRun) gone(err error, payload []byte) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		r.t.Fatalf("no answer to %.40q within %v", payload, answerTimeout(payload))
	}
	return false
}

// changeUser sends COM_CHANGE_USER for testUser, answering the proxy's auth
// switch with the right password or a wrong one.
func (r *fuzzRun) changeUser(c *fuzzClient, arg byte) bool {
	cu := mysqlwire.ChangeUser{Username: []byte(testUser), CharacterSet: 45, AuthPlugin: []byte(mysqlwire.AuthNativePassword)}
	if arg&1 != 0 {
		cu.Database = []byte(testDB)
	}
	pkt, _ := mysqlwire.AppendChangeUser(nil, 0, c.caps, cu)
	if _, err := c.c.Write(pkt); err != nil {
		return false
	}
	raw := &rawClient{t: r.t, c: c.c}
	p, seq, err := raw.read()
	if err != nil {
		return r.gone(err, []byte{byte(mysqlwire.ComChangeUser)})
	}
	if !mysqlwire.IsAuthSwitchRequest(p) {
		return mysqlwire.IsOK(p)
	}
	sw, err := mysqlwire.ParseAuthSwitchRequest(p)
	if err != nil || len(sw.PluginData) < 20 {
		r.t.Fatalf("auth switch for COM_CHANGE_USER: %x", p)
	}
	password := testPassword
	if arg&2 != 0 {
		password = "wrong"
	}
	resp, _ := mysqlwire.AppendPacket(nil, seq+1, mysqlwire.NativePasswordScramble([]byte(password), sw.PluginData[:20]))
	if _, err := c.c.Write(resp); err != nil {
		return false
	}
	p, _, err = raw.read()
	if err != nil {
		return r.gone(err, []byte{byte(mysqlwire.ComChangeUser)})
	}
	switch {
	case mysqlwire.IsOK(p):
		return password == testPassword || r.t.Failed()
	case isERR(p, mysqlwire.ErAccessDenied) && password != testPassword:
		return false
	}
	r.t.Fatalf("COM_CHANGE_USER with password %q: %x", password, p)
	return false
}

// waitQuiet waits until the proxy has no session left and every backend
// is idle and logged in, and the process is back to the goroutines and
// descriptors it had before the input.
func waitQuiet(t *testing.T, tp *testProxy, goroutines, fds int, program []byte) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := tp.p.Stats()
		g, n := runtime.NumGoroutine(), openFDs(t)
		if st.ClientsConnected == 0 && st.PinnedSessions == 0 && st.QueueWaiting == 0 && st.PendingLogins == 0 &&
			st.BackendsConnected == 2 && st.BackendsIdle == 2 && g <= goroutines && n <= fds {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after program %x: clients %d, pinned %d, waiting %d, pending logins %d, backends %d connected %d idle; "+
				"goroutines %d (before: %d), descriptors %d (before: %d)", program, st.ClientsConnected, st.PinnedSessions,
				st.QueueWaiting, st.PendingLogins, st.BackendsConnected, st.BackendsIdle, g, goroutines, n, fds)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
