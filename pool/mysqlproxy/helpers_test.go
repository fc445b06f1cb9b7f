package mysqlproxy

import (
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/scalestack/scalestack/buffer"
	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/internal/mysqlfake"
	"github.com/scalestack/scalestack/mysqlwire"
	"github.com/scalestack/scalestack/reactor"
)

// Test accounts of the proxy (not of the server).
const (
	testUser     = "alice"
	testPassword = "secret"
	testNoPWUser = "nopw"
	testDB       = "scalestack_test"
)

// mysqlEnv is where the proxy's backends log in.
type mysqlEnv struct {
	addr, user, password string
}

type testProxy struct {
	p    *Proxy
	eng  *reactor.Engine
	addr string
	env  mysqlEnv
	// fake is the MySQL double in front of which startProxy runs the
	// proxy (nil for startProxyAt).
	fake *mysqlfake.Server
}

func init() { buffer.Debug = true }

// The service account of the in-process MySQL double.
const (
	fakeUser     = "svc"
	fakePassword = "svc-secret"
)

// startProxy runs a proxy in-process on a free port with n backends, in
// front of an in-process MySQL double (internal/mysqlfake), so that the
// package's tests need no database; tp.fake is the double. In MySQL 5.5
// mode (the tweak sets Config.MySQL55) the double is a 5.5 server.
func startProxy(t testing.TB, n, loops int, tweak func(*Config)) *testProxy {
	t.Helper()
	probe := Config{Users: Users{}}
	if tweak != nil {
		tweak(&probe)
	}
	fc := mysqlfake.Config{
		Accounts: []mysqlfake.Account{{User: fakeUser, Password: fakePassword}},
		Schemas:  []string{testDB},
	}
	if probe.MySQL55 {
		fc.Flavor = mysqlfake.MySQL55
	}
	srv := mysqlfake.Start(t, fc)
	tp := startProxyAt(t, mysqlEnv{addr: srv.Addr(), user: fakeUser, password: fakePassword}, n, loops, tweak)
	tp.fake = srv
	return tp
}

// startProxyAt is startProxy in front of the server env describes.
func startProxyAt(t testing.TB, env mysqlEnv, n, loops int, tweak func(*Config)) *testProxy {
	t.Helper()
	users, err := ParseUsers(strings.NewReader(UserLine(testUser, []byte(testPassword)) + "\n" +
		UserLine(testNoPWUser, nil) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	baddr, err := conn.ParseAddr(env.addr)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Backend: baddr, User: env.user, Password: []byte(env.password), BackendConns: n, Users: users,
		Logf: func(format string, args ...any) { t.Logf("proxy: "+format, args...) },
		// The client accounts exist only at the proxy: every client runs
		// as the service account (tests of identities set IdentityAccount).
		Identity: IdentityService,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	p, err := New(cfg)
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
	t.Cleanup(func() { stopProxy(p, e) })
	tp.waitBackends(t, n)
	return tp
}

// stopProxy stops p and its engine at a test's end. Nothing may log
// through the test after it: the log throttles' timers (their own
// goroutines) are stopped first, then the loops; only once the loops have
// stopped is Logf cleared, since a loop reads it whenever it logs (clearing
// it earlier raced with sessions logging as they closed).
func stopProxy(p *Proxy, e *reactor.Engine) {
	p.failedLogins.stop()
	p.loginCloses.stop()
	p.Close()
	e.Stop()
	p.cfg.Logf = nil
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
	if _, err := tr.Start(mysqlwire.Command(payload[0]), r.hs.Capabilities&clientCaps); err != nil {
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
