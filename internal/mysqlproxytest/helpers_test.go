package mysqlproxytest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/scalestack/scalestack/buffer"
	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/internal/testutil"
	"github.com/scalestack/scalestack/mysqlwire"
	"github.com/scalestack/scalestack/pool/mysqlproxy"
	"github.com/scalestack/scalestack/reactor"
)

// Test accounts of the proxy (not of the server).
const (
	testUser     = "alice"
	testPassword = "secret"
	testNoPWUser = "nopw"
	testDB       = "scalestack_test"
)

// mysqlEnv is the part of testutil.Env these tests use.
type mysqlEnv struct {
	addr, socket, user, password, testUser, testPassword string
	rootUser, rootPassword                               string
}

func envOf(e testutil.Env) mysqlEnv {
	return mysqlEnv{addr: e.Addr, socket: e.Socket, user: e.User, password: e.Password, testUser: e.TestUser,
		testPassword: e.TestPassword, rootUser: e.RootUser, rootPassword: e.RootPassword}
}

// requireMySQL is the shared MariaDB of `make test` (testutil.MySQL fails
// the test with instructions when it is not running).
func requireMySQL(t testing.TB) mysqlEnv {
	t.Helper()
	return envOf(testutil.MySQL(t))
}

type testProxy struct {
	p    *mysqlproxy.Proxy
	eng  *reactor.Engine
	addr string
	env  mysqlEnv
}

func init() { buffer.Debug = true }

// startProxy runs a proxy in-process on a free port with n backends, in
// front of the shared MariaDB.
func startProxy(t testing.TB, n, loops int, tweak func(*mysqlproxy.Config)) *testProxy {
	t.Helper()
	return startProxyAt(t, requireMySQL(t), n, loops, tweak)
}

// privateMySQL starts a MariaDB of the test's own: for server-wide figures
// (such as Prepared_stmt_count) that the other packages' tests, running at
// the same time against the shared server, would disturb.
func privateMySQL(t testing.TB) mysqlEnv {
	t.Helper()
	return envOf(testutil.PrivateMariaDB(t))
}

// startProxyAt is startProxy in front of the server env describes.
func startProxyAt(t testing.TB, env mysqlEnv, n, loops int, tweak func(*mysqlproxy.Config)) *testProxy {
	t.Helper()
	users, err := mysqlproxy.ParseUsers(strings.NewReader(mysqlproxy.UserLine(testUser, []byte(testPassword)) + "\n" +
		mysqlproxy.UserLine(testNoPWUser, nil) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	baddr, err := conn.ParseAddr(env.addr)
	if err != nil {
		t.Fatal(err)
	}
	var quiet atomic.Bool // set once the loops have stopped (stopProxy)
	cfg := mysqlproxy.Config{
		Backend: baddr, User: env.user, Password: []byte(env.password), BackendConns: n, Users: users,
		// The client accounts exist only at the proxy: every client runs
		// as the service account (tests of identities set IdentityAccount).
		Identity: mysqlproxy.IdentityService,
		Logf: func(format string, args ...any) {
			if !quiet.Load() {
				t.Logf("proxy: "+format, args...)
			}
		},
	}
	if tweak != nil {
		tweak(&cfg)
	}
	p, err := mysqlproxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e, err := reactor.New(reactor.Config{Loops: loops})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	laddr, _ := conn.ParseAddr("127.0.0.1:0")
	if err := p.Start(e, laddr); err != nil {
		e.Stop()
		t.Fatal(err)
	}
	tp := &testProxy{p: p, eng: e, addr: p.Addr().Address, env: env}
	t.Cleanup(func() { stopProxy(p, e, &quiet) })
	tp.waitBackends(t, n)
	return tp
}

// stopProxy stops p and its engine at a test's end. Nothing may log
// through the test after it: Close stops the log throttles' timers (their
// own goroutines), then the loops stop; only then is the test's Logf
// silenced, since a loop logs whenever it must (silencing it earlier raced
// with sessions logging as they closed).
func stopProxy(p *mysqlproxy.Proxy, e *reactor.Engine, quiet *atomic.Bool) {
	p.Close()
	e.Stop()
	quiet.Store(true)
}

// waitBackends waits until n backends are logged in.
func (tp *testProxy) waitBackends(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for tp.p.Stats().BackendsConnected < int64(n) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d backends connected: %+v", tp.p.Stats().BackendsConnected, n, tp.p.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (tp *testProxy) dsn(user, password, db, params string) string {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = user, password, "tcp", tp.addr, db
	cfg.InterpolateParams = false
	cfg.Timeout = 5 * time.Second
	s := cfg.FormatDSN()
	if params != "" {
		if strings.Contains(s, "?") {
			s += "&" + params
		} else {
			s += "?" + params
		}
	}
	return s
}

func (tp *testProxy) open(t testing.TB, params string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", tp.dsn(testUser, testPassword, testDB, params))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// direct opens a connection straight to the server as the test user.
func (tp *testProxy) direct(t testing.TB) *sql.DB {
	t.Helper()
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = tp.env.testUser, tp.env.testPassword, "tcp", tp.env.addr, testDB
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mysqlErrCode(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// rawClient speaks the protocol by hand, for what drivers cannot send.
type rawClient struct {
	t   testing.TB
	c   net.Conn
	buf []byte
	hs  mysqlwire.Handshake
}

func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, c: c}
}

// read returns the next packet's payload and sequence id.
func (r *rawClient) read() ([]byte, uint8, error) {
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var hdr [4]byte
	if _, err := io.ReadFull(r.c, hdr[:]); err != nil {
		return nil, 0, err
	}
	n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
	p := make([]byte, n)
	if _, err := io.ReadFull(r.c, p); err != nil {
		return nil, 0, err
	}
	return p, hdr[3], nil
}

func (r *rawClient) mustRead() ([]byte, uint8) {
	r.t.Helper()
	p, seq, err := r.read()
	if err != nil {
		r.t.Fatalf("read: %v", err)
	}
	return p, seq
}

func (r *rawClient) write(seq uint8, payload []byte) {
	r.t.Helper()
	pkt, _ := mysqlwire.AppendPacket(r.buf[:0], seq, payload)
	r.buf = pkt[:0]
	if _, err := r.c.Write(pkt); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// login authenticates with plugin and returns the final packet.
func (r *rawClient) login(user, password, plugin string, caps mysqlwire.Capabilities) []byte {
	r.t.Helper()
	p, _ := r.mustRead()
	hs, err := mysqlwire.ParseHandshake(p)
	if err != nil {
		r.t.Fatal(err)
	}
	r.hs = hs
	r.hs.AuthPluginData = append([]byte(nil), hs.AuthPluginData...)
	var auth []byte
	if plugin == mysqlwire.AuthCachingSHA2 {
		auth = mysqlwire.CachingSHA2Scramble([]byte(password), hs.AuthPluginData[:20])
	} else {
		auth = mysqlwire.NativePasswordScramble([]byte(password), hs.AuthPluginData[:20])
	}
	if caps == 0 {
		// What the greeting offers but FOUND_ROWS, as go-sql-driver asks
		// by default: a test mixing both kinds of client would see
		// backends reopened for the other class.
		caps = hs.Capabilities &^ mysqlwire.ClientFoundRows
	}
	hr := mysqlwire.HandshakeResponse{Capabilities: caps, MaxPacketSize: 1 << 24, CharacterSet: 45,
		Username: []byte(user), AuthResponse: auth, AuthPlugin: []byte(plugin), Database: []byte(testDB)}
	pkt, _ := mysqlwire.AppendHandshakeResponse(nil, 1, hr)
	if _, err := r.c.Write(pkt); err != nil {
		r.t.Fatal(err)
	}
	resp, _ := r.mustRead()
	return resp
}

// query sends a COM_QUERY and reads the whole response, returning the
// packets.
func (r *rawClient) command(payload []byte) [][]byte {
	r.t.Helper()
	r.write(0, payload)
	var tr mysqlwire.ResponseTracker
	if _, err := tr.Start(mysqlwire.Command(payload[0]), r.hs.Capabilities); err != nil {
		// Not a command a server answers normally: expect one packet.
		p, _ := r.mustRead()
		return [][]byte{p}
	}
	var out [][]byte
	want := uint8(1)
	for {
		p, seq := r.mustRead()
		if seq != want {
			r.t.Fatalf("sequence id %d, want %d", seq, want)
		}
		want++
		out = append(out, p)
		prog, err := tr.Feed(p)
		if err != nil {
			r.t.Fatalf("response: %v", err)
		}
		if prog == mysqlwire.Complete {
			return out
		}
	}
}

func isERR(p []byte, code mysqlwire.ErrCode) bool {
	if !mysqlwire.IsERR(p) {
		return false
	}
	e, err := mysqlwire.ParseERR(p)
	return err == nil && e.Code == code
}

func errText(p []byte) string {
	if e, err := mysqlwire.ParseERR(p); err == nil {
		return e.Error()
	}
	return fmt.Sprintf("%x", p)
}

// backendThreadIDs returns the server thread ids of the service account's
// connections, sorted: on a private server (privateMySQL) those are this
// proxy's backends.
func (tp *testProxy) backendThreadIDs(t *testing.T, root *sql.DB) []int64 {
	t.Helper()
	rows, err := root.Query("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ? ORDER BY ID", tp.env.user)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}

func mustExec(t testing.TB, db interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, q string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// clientCaps is what the proxy offers clients (its greeting's
// capabilities, which the raw client accepts whole).
func clientCaps() mysqlwire.Capabilities {
	return mysqlwire.ClientLongPassword | mysqlwire.ClientLongFlag | mysqlwire.ClientConnectWithDB |
		mysqlwire.ClientLocalFiles | mysqlwire.ClientProtocol41 | mysqlwire.ClientTransactions |
		mysqlwire.ClientSecureConnection | mysqlwire.ClientMultiStatements | mysqlwire.ClientMultiResults |
		mysqlwire.ClientPSMultiResults | mysqlwire.ClientPluginAuth | mysqlwire.ClientPluginAuthLenEncClientData |
		mysqlwire.ClientConnectAttrs | mysqlwire.ClientIgnoreSIGPIPE
}

func getUint32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func putUint32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

// errorSlot is code's slot in Stats.Errors (mysqlproxy.ErrorCodes, then
// "other").
func errorSlot(code mysqlwire.ErrCode) int {
	for i, c := range mysqlproxy.ErrorCodes {
		if c == code {
			return i
		}
	}
	return len(mysqlproxy.ErrorCodes)
}
