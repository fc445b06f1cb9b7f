package fastmysql

import (
	"bytes"
	"database/sql"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/scalestack/scalestack/mysqlwire"
)

// start serves a fastmysql on a free loopback port until the test ends.
func start(t *testing.T, password string) *Server {
	return startOn(t, "127.0.0.1:0", password)
}

func startOn(t *testing.T, addr, password string) *Server {
	t.Helper()
	srv, err := Listen(addr, "bench", password)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	t.Cleanup(func() {
		srv.Stop()
		select {
		case err := <-done:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(5 * time.Second):
			t.Error("serve did not return after stop")
		}
	})
	return srv
}

func open(t *testing.T, addr, password string) *sql.DB {
	t.Helper()
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = "bench", password, "tcp", addr
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		cfg.Net, cfg.Addr = "unix", path
	}
	cfg.Timeout = 5 * time.Second
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	t.Cleanup(func() { db.Close() })
	return db
}

// TestServesARealClient drives the server with go-sql-driver/mysql, the
// ecosystem's client: login, SELECT 1, the statements it answers with OK,
// the errors it must send for what it does not know.
func TestServesARealClient(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "unix:" + t.TempDir() + "/fast.sock"} {
		t.Run(addr[:4], func(t *testing.T) { servesARealClient(t, startOn(t, addr, "s3cret")) })
	}
}

func servesARealClient(t *testing.T, srv *Server) {
	db := open(t, srv.addr, "s3cret")
	var one int
	if err := db.QueryRow("SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1: %d, %v", one, err)
	}
	if err := db.Ping(); err != nil {
		t.Fatalf("ping: %v", err)
	}
	for _, stmt := range []string{"SET NAMES utf8mb4", "USE shop", "BEGIN", "commit;", "ROLLBACK"} {
		if _, err := db.Exec(stmt); err != nil {
			t.Errorf("%s: %v", stmt, err)
		}
	}
	cases := []struct {
		stmt string
		code uint16
	}{
		{"SELECT 2", 1064},
		{"SETTINGS", 1064},
		{"DELETE FROM t", 1064},
	}
	for _, tc := range cases {
		_, err := db.Exec(tc.stmt)
		var me *mysql.MySQLError
		if !errors.As(err, &me) || me.Number != tc.code {
			t.Errorf("%s: %v, want error %d", tc.stmt, err, tc.code)
		}
	}
	if srv.commands.Load() == 0 {
		t.Error("no commands counted")
	}
}

func TestRefusesAWrongLogin(t *testing.T) {
	srv := start(t, "s3cret")
	for _, pw := range []string{"wrong", ""} {
		err := open(t, srv.addr, pw).Ping()
		var me *mysql.MySQLError
		if !errors.As(err, &me) || me.Number != 1045 {
			t.Errorf("password %q: %v, want error 1045", pw, err)
		}
	}
	// No password configured: only an empty one logs in.
	open1 := start(t, "")
	if err := open(t, open1.addr, "").Ping(); err != nil {
		t.Errorf("empty password: %v", err)
	}
	if err := open(t, open1.addr, "x").Ping(); err == nil {
		t.Error("a password logged in to an account without one")
	}
}

// rawLogin logs a raw connection in (no password) and returns it.
func rawLogin(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	greeting := readPacket(t, c)
	if _, err := mysqlwire.ParseHandshake(greeting); err != nil {
		t.Fatal(err)
	}
	resp, _ := mysqlwire.AppendHandshakeResponse(nil, 1, mysqlwire.HandshakeResponse{
		Capabilities: caps, MaxPacketSize: 1 << 24, CharacterSet: 45, Username: []byte("bench"),
		AuthPlugin: []byte(mysqlwire.AuthNativePassword),
	})
	if _, err := c.Write(resp); err != nil {
		t.Fatal(err)
	}
	if p := readPacket(t, c); !mysqlwire.IsOK(p) {
		t.Fatalf("login answered %x", p)
	}
	return c
}

func readPacket(t *testing.T, c net.Conn) []byte {
	t.Helper()
	var h [4]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		t.Fatal(err)
	}
	n := int(h[0]) | int(h[1])<<8 | int(h[2])<<16
	p := make([]byte, n)
	if _, err := io.ReadFull(c, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAnswersCommandsInOrder sends several commands in one write, one of
// them cut across two writes, and checks every answer, in order.
func TestAnswersCommandsInOrder(t *testing.T) {
	srv := start(t, "")
	c := rawLogin(t, srv.addr)
	var req []byte
	req, _ = mysqlwire.AppendCommand(req, 0, mysqlwire.ComQuery, []byte("SELECT 1"))
	req, _ = mysqlwire.AppendCommand(req, 0, mysqlwire.ComPing, nil)
	req, _ = mysqlwire.AppendCommand(req, 0, mysqlwire.ComSetOption, []byte{0, 0})
	req, _ = mysqlwire.AppendCommand(req, 0, mysqlwire.ComStmtPrepare, []byte("SELECT 1"))
	req, _ = mysqlwire.AppendCommand(req, 0, mysqlwire.ComQuery, []byte("select 1;"))
	cut := len(req) - 3
	if _, err := c.Write(req[:cut]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if _, err := c.Write(req[cut:]); err != nil {
		t.Fatal(err)
	}
	errPkt, _ := mysqlwire.AppendERR(nil, 1, mysqlwire.ErUnknownComError, "08S01", "Unknown command")
	want := bytes.Join([][]byte{srv.selectOne, srv.ok, srv.eof, errPkt, srv.selectOne}, nil)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("answers\n%x\nwant\n%x", got, want)
	}
	// COM_QUIT closes.
	quit, _ := mysqlwire.AppendCommand(nil, 0, mysqlwire.ComQuit, nil)
	c.Write(quit)
	if n, err := c.Read(got); err != io.EOF {
		t.Fatalf("after COM_QUIT: read %d, %v; want EOF", n, err)
	}
}

func TestRefusesAnOversizedPacket(t *testing.T) {
	srv := start(t, "")
	c := rawLogin(t, srv.addr)
	var h [4]byte
	mysqlwire.PutHeader(h[:], maxPacket+1, 0)
	if _, err := c.Write(h[:]); err != nil {
		t.Fatal(err)
	}
	p := readPacket(t, c)
	e, err := mysqlwire.ParseERR(p)
	if err != nil || e.Code != mysqlwire.ErNetPacketTooLarge {
		t.Fatalf("answer %x (%v), want ERR 1153", p, err)
	}
	var b [1]byte
	if _, err := c.Read(b[:]); err != io.EOF {
		t.Fatalf("after ERR 1153: %v, want EOF", err)
	}
}

func TestListensOnLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "10.1.2.3:0", "example.com:0", "[::1]:0", "127.0.0.1", "unix:"} {
		if srv, err := Listen(addr, "bench", ""); err == nil {
			srv.closeAll()
			t.Errorf("listened on %s", addr)
		} else if !strings.Contains(err.Error(), "listen address") {
			t.Errorf("%s: %v", addr, err)
		}
	}
}

func TestRemovesItsUnixSocket(t *testing.T) {
	path := t.TempDir() + "/fast.sock"
	srv, err := Listen("unix:"+path, "bench", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("socket file: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	srv.Stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("socket file left behind: %v", err)
	}
}
