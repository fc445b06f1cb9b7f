package mysqlfake_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io"
	"log"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/scalestack/scalestack/internal/mysqlfake"
	"github.com/scalestack/scalestack/internal/testutil"
	"github.com/scalestack/scalestack/mysqlwire"
)

func TestMain(m *testing.M) {
	// The fault tests make the driver log the resets they provoke.
	mysql.SetLogger(log.New(io.Discard, "", 0))
	testutil.VerifyNoLeaks(m)
}

const (
	appUser = "app"
	appPW   = "s3cret"
	shaUser = "sha"
	shaPW   = "sha-pw"
	schema  = "shop"
)

func start(t *testing.T, tweak func(*mysqlfake.Config)) *mysqlfake.Server {
	t.Helper()
	cfg := mysqlfake.Config{
		Accounts: []mysqlfake.Account{
			{User: appUser, Password: appPW},
			{User: shaUser, Password: shaPW, Plugin: mysqlwire.AuthCachingSHA2},
			{User: "full", Password: "full-pw", Plugin: mysqlwire.AuthCachingSHA2, FullAuth: true},
			{User: "nopw"},
		},
		Schemas: []string{schema},
		Logf:    t.Logf,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	return mysqlfake.Start(t, cfg)
}

func open(t *testing.T, network, addr, user, pw, dbName string, tweak func(*mysql.Config)) *sql.DB {
	t.Helper()
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = user, pw, network, addr, dbName
	cfg.Timeout = 5 * time.Second
	if tweak != nil {
		tweak(cfg)
	}
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	t.Cleanup(func() { db.Close() })
	return db
}

func errCode(err error) (uint16, string) {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number, string(me.SQLState[:])
	}
	return 0, ""
}

func TestLogin(t *testing.T) {
	srv := start(t, nil)
	tests := []struct {
		name, user, pw, db string
		code               uint16
		state              string
	}{
		{"native", appUser, appPW, schema, 0, ""},
		{"native without schema", appUser, appPW, "", 0, ""},
		{"empty password", "nopw", "", "", 0, ""},
		{"caching_sha2 fast path", shaUser, shaPW, schema, 0, ""},
		{"caching_sha2 full authentication", "full", "full-pw", "", 0, ""},
		{"wrong password", appUser, "nope", "", 1045, "28000"},
		{"wrong caching_sha2 password", shaUser, "nope", "", 1045, "28000"},
		{"password for a passwordless account", "nopw", "x", "", 1045, "28000"},
		{"unknown user", "mallory", "x", "", 1045, "28000"},
		{"unknown schema", appUser, appPW, "nosuch", 1049, "42000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := open(t, "tcp", srv.Addr(), tc.user, tc.pw, tc.db, func(c *mysql.Config) {
				c.AllowNativePasswords = true
			})
			err := db.Ping()
			if code, state := errCode(err); code != tc.code || state != tc.state {
				t.Fatalf("Ping: %v (code %d %s), want code %d %s", err, code, state, tc.code, tc.state)
			}
			if tc.code != 0 {
				return
			}
			var got sql.NullString
			if err := db.QueryRow("SELECT DATABASE()").Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got.String != tc.db {
				t.Fatalf("DATABASE() = %q, want %q", got.String, tc.db)
			}
		})
	}
}

func TestQueriesAndErrors(t *testing.T) {
	srv := start(t, nil)
	srv.On("SELECT id, name, score, gone FROM users", mysqlfake.Rows([]string{"id", "name", "score", "gone"},
		[]any{int64(1), "ada", 9.5, nil},
		[]any{uint64(2), "bob", 7.25, "yes"}))
	srv.OnPrefix("insert into orders", mysqlfake.Affected(3, 42))
	srv.OnRegexp(`^UPDATE stock\b`, mysqlfake.Fail(mysqlwire.ErLockDeadlock, "40001", "Deadlock found when trying to get lock"))
	db := open(t, "tcp", srv.Addr(), appUser, appPW, schema, nil)

	rows, err := db.Query("SELECT id, name, score, gone FROM users;")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var id int64
		var name string
		var score float64
		var gone sql.NullString
		if err := rows.Scan(&id, &name, &score, &gone); err != nil {
			t.Fatal(err)
		}
		got = append(got, strings.Join([]string{name, gone.String}, "/"))
		_ = id + int64(score)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if strings.Join(got, ",") != "ada/,bob/yes" {
		t.Fatalf("rows = %v", got)
	}

	res, err := db.Exec("INSERT INTO orders VALUES (1), (2), (3)")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 3 {
		t.Fatalf("RowsAffected = %d, want 3", n)
	}
	if id, _ := res.LastInsertId(); id != 42 {
		t.Fatalf("LastInsertId = %d, want 42", id)
	}

	_, err = db.Exec("UPDATE stock SET n = n - 1")
	if code, state := errCode(err); code != 1213 || state != "40001" {
		t.Fatalf("UPDATE: %v, want 1213 40001", err)
	}
	_, err = db.Exec("DELETE FROM nowhere")
	if code, state := errCode(err); code != 1064 || state != "42000" {
		t.Fatalf("unscripted statement: %v, want 1064 42000", err)
	}
	// The most recent rule wins: a test overrides a shared script.
	srv.OnPrefix("INSERT INTO orders", mysqlfake.Fail(mysqlwire.ErDupEntry, "23000", "Duplicate entry '1' for key 'PRIMARY'"))
	_, err = db.Exec("INSERT INTO orders VALUES (1)")
	if code, _ := errCode(err); code != 1062 {
		t.Fatalf("overridden rule: %v, want 1062", err)
	}
}

func TestPreparedStatements(t *testing.T) {
	srv := start(t, nil)
	var seen [][]any
	srv.OnFunc(func(sql string) bool { return sql == "SELECT name, born FROM users WHERE id = ? AND tag = ?" },
		func(q mysqlfake.Query) mysqlfake.Response {
			if q.Executing {
				seen = append(seen, q.Params)
			}
			return mysqlfake.Response{Result: &mysqlfake.ResultSet{
				Columns: []mysqlfake.Column{{Name: "name"}, {Name: "born", Type: mysqlwire.TypeLongLong}},
				Rows:    [][]any{{"ada", int64(1815)}, {nil, int64(-1)}},
			}}
		})
	db := open(t, "tcp", srv.Addr(), appUser, appPW, schema, func(c *mysql.Config) { c.InterpolateParams = false })
	db.SetMaxOpenConns(1)
	st, err := db.Prepare("SELECT name, born FROM users WHERE id = ? AND tag = ?")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		rows, err := st.Query(int64(7+i), "x")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		var total int64
		for rows.Next() {
			var name sql.NullString
			var born int64
			if err := rows.Scan(&name, &born); err != nil {
				t.Fatal(err)
			}
			names, total = append(names, name.String), total+born
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		if strings.Join(names, ",") != "ada," || total != 1814 {
			t.Fatalf("execute %d: names %q total %d", i, names, total)
		}
	}
	if len(seen) != 2 || seen[0][0] != int64(7) || seen[1][0] != int64(8) || seen[1][1] != "x" {
		t.Fatalf("parameters seen: %#v", seen)
	}
	conns := srv.Conns()
	if len(conns) != 1 || len(conns[0].State().Stmts) != 1 || srv.PreparedStmts() != 1 {
		t.Fatalf("want one connection with one statement, got %d connections, %d statements", len(conns), srv.PreparedStmts())
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "COM_STMT_CLOSE to arrive", func() bool { return srv.PreparedStmts() == 0 })

	// Built-in SELECT ? and an unknown statement to prepare.
	var v string
	if err := db.QueryRow("SELECT ?", "echo").Scan(&v); err != nil || v != "echo" {
		t.Fatalf("SELECT ?: %q, %v", v, err)
	}
	if _, err := db.Prepare("FROB ?"); err == nil {
		t.Fatal("preparing an unscripted statement succeeded")
	} else if code, _ := errCode(err); code != 1064 {
		t.Fatalf("prepare FROB: %v, want 1064", err)
	}
}

// TestLongPackets sends and receives payloads over 16 MiB: a COM_QUERY, a
// prepared statement's parameter (go-sql-driver sends it with
// COM_STMT_SEND_LONG_DATA) and a result row.
func TestLongPackets(t *testing.T) {
	srv := start(t, nil)
	const size = 1<<24 + 1000
	big := strings.Repeat("x", size)
	var gotQuery, gotParam int
	srv.OnFunc(func(sql string) bool { return strings.HasPrefix(sql, "SELECT LENGTH(") },
		func(q mysqlfake.Query) mysqlfake.Response {
			if q.Executing {
				s, _ := q.Params[0].(string)
				gotParam = len(s)
			} else if !q.Preparing {
				gotQuery = len(q.SQL)
			}
			return mysqlfake.Rows([]string{"big"}, []any{big})
		})
	db := open(t, "tcp", srv.Addr(), appUser, appPW, "", func(c *mysql.Config) { c.InterpolateParams = false })
	var back string
	if err := db.QueryRow("SELECT LENGTH('" + big + "')").Scan(&back); err != nil {
		t.Fatal(err)
	}
	if gotQuery != len("SELECT LENGTH('')")+size || len(back) != size {
		t.Fatalf("query: server saw %d bytes of SQL, client got %d bytes back", gotQuery, len(back))
	}
	// With the default max_allowed_packet the parameter travels inside a
	// split COM_STMT_EXECUTE; with 32 MiB go-sql-driver sends any parameter
	// over 16 MiB with COM_STMT_SEND_LONG_DATA instead.
	for _, maxPacket := range []int{0, 32 << 20} {
		srv.ResetLog()
		db := open(t, "tcp", srv.Addr(), appUser, appPW, "", func(c *mysql.Config) {
			c.InterpolateParams = false
			if maxPacket > 0 {
				c.MaxAllowedPacket = maxPacket
			}
		})
		gotParam = 0
		if err := db.QueryRow("SELECT LENGTH(?)", []byte(big)).Scan(&back); err != nil {
			t.Fatal(err)
		}
		if gotParam != size || len(back) != size {
			t.Fatalf("prepared: server saw a %d-byte parameter, client got %d bytes back", gotParam, len(back))
		}
		var sawLongData bool
		for _, e := range srv.Log() {
			sawLongData = sawLongData || e.Cmd == mysqlwire.ComStmtSendLongData
		}
		if sawLongData != (maxPacket > 0) {
			t.Fatalf("max_allowed_packet %d: COM_STMT_SEND_LONG_DATA sent: %v", maxPacket, sawLongData)
		}
	}
}

func TestSessionState(t *testing.T) {
	srv := start(t, nil)
	db := open(t, "tcp", srv.Addr(), appUser, appPW, "", nil)
	db.SetMaxOpenConns(1)
	ctx := context.Background()
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, q := range []string{
		"USE shop",
		"SET NAMES latin1 COLLATE latin1_swedish_ci, @@session.wait_timeout = 60, @Who := 'ada'",
		"SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED, READ ONLY",
		"SET autocommit = 0",
		"BEGIN",
	} {
		if _, err := c.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var wt, who, iso string
	if err := c.QueryRowContext(ctx, "SELECT @@wait_timeout, @who, @@session.tx_isolation").Scan(&wt, &who, &iso); err != nil {
		t.Fatal(err)
	}
	if wt != "60" || who != "ada" || iso != "READ-COMMITTED" {
		t.Fatalf("read back %q %q %q", wt, who, iso)
	}
	st := srv.Conns()[0].State()
	want := map[string]string{"character_set_client": "latin1", "character_set_connection": "latin1",
		"character_set_results": "latin1", "collation_connection": "latin1_swedish_ci", "wait_timeout": "60",
		"tx_isolation": "READ-COMMITTED", "tx_read_only": "1"}
	for k, v := range want {
		if st.Vars[k] != v {
			t.Errorf("Vars[%s] = %q, want %q (all: %v)", k, st.Vars[k], v, st.Vars)
		}
	}
	if st.Schema != schema || st.UserVars["who"] != "ada" || st.Autocommit || !st.InTrans || st.User != appUser {
		t.Errorf("state %+v", st)
	}
	if st.Attrs["_client_name"] != "Go-MySQL-Driver" {
		t.Errorf("connect attributes %v", st.Attrs)
	}
	if _, err := c.ExecContext(ctx, "SET @@session.wait_timeout = DEFAULT"); err != nil {
		t.Fatal(err)
	}
	if _, ok := srv.Conns()[0].State().Vars["wait_timeout"]; ok {
		t.Error("wait_timeout still recorded after SET DEFAULT")
	}
	if _, err := c.ExecContext(ctx, "USE nosuch"); err == nil {
		t.Error("USE of an unknown schema succeeded")
	} else if code, state := errCode(err); code != 1049 || state != "42000" {
		t.Errorf("USE nosuch: %v", err)
	}
}

func TestFaults(t *testing.T) {
	srv := start(t, nil)
	rs := &mysqlfake.ResultSet{Columns: []mysqlfake.Column{{Name: "n"}}, Rows: [][]any{{1}, {2}, {3}, {4}}}
	srv.On("SELECT hang", mysqlfake.Hang())
	srv.On("SELECT cut", mysqlfake.Response{Result: rs, Drop: mysqlfake.DropMidResult})
	srv.On("SELECT reset", mysqlfake.Disconnect(mysqlfake.DropReset))
	srv.On("SELECT close", mysqlfake.Disconnect(mysqlfake.DropClose))
	srv.On("SELECT slow", mysqlfake.Rows([]string{"n"}, []any{1}).After(150*time.Millisecond))
	db := open(t, "tcp", srv.Addr(), appUser, appPW, "", func(c *mysql.Config) { c.ReadTimeout = time.Second })

	start := time.Now()
	var n int
	if err := db.QueryRow("SELECT slow").Scan(&n); err != nil || n != 1 {
		t.Fatalf("slow: %d, %v", n, err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("delayed answer came after %v", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := db.QueryRowContext(ctx, "SELECT hang").Scan(&n); err == nil {
		t.Fatal("hung statement answered")
	}
	for _, q := range []string{"SELECT reset", "SELECT close"} {
		if err := db.QueryRow(q).Scan(&n); err == nil {
			t.Fatalf("%s answered", q)
		}
	}
	rows, err := db.Query("SELECT cut")
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	for rows.Next() {
		count++
	}
	if rows.Err() == nil || count != 2 {
		t.Fatalf("cut result: %d rows, error %v; want 2 rows and an error", count, rows.Err())
	}
	rows.Close()
	db.Close()
	waitFor(t, "every connection to end", func() bool { return len(srv.Conns()) == 0 })
}

// TestSessionTracking logs in by hand with CLIENT_SESSION_TRACK and reads
// the session state changes of OK packets.
func TestSessionTracking(t *testing.T) {
	srv := start(t, nil)
	srv.On("CALL tracked()", mysqlfake.Response{OK: &mysqlfake.OKResult{
		SessionState: []mysqlfake.SessionChange{mysqlfake.SysVarChange("sql_mode", "ANSI"), mysqlfake.StateChange()}}})
	for _, track := range []bool{true, false} {
		rc := dial(t, srv.Addr(), appUser, appPW, track)
		for _, tc := range []struct{ sql, want string }{
			{"SET time_zone = '+00:00'", "0:time_zone=+00:00"},
			{"USE shop", "1:shop"},
			{"CALL tracked()", "0:sql_mode=ANSI 2:1"},
		} {
			ok := rc.okOf(rc.command(mysqlwire.ComQuery, tc.sql))
			got := trackedChanges(t, ok)
			if !track {
				if got != "" || ok.Status.Has(mysqlwire.StatusSessionStateChanged) {
					t.Errorf("%s without CLIENT_SESSION_TRACK: changes %q", tc.sql, got)
				}
				continue
			}
			if got != tc.want || !ok.Status.Has(mysqlwire.StatusSessionStateChanged) {
				t.Errorf("%s: changes %q (status %#x), want %q", tc.sql, got, ok.Status, tc.want)
			}
		}
	}
}

func trackedChanges(t *testing.T, ok mysqlwire.OK) string {
	var out []string
	it := mysqlwire.NewSessionStateIter(ok.SessionState)
	for e, more := it.Next(); more; e, more = it.Next() {
		if e.Type == mysqlwire.SessionTrackSystemVariables {
			name, value, err := e.SystemVariable()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, "0:"+string(name)+"="+string(value))
			continue
		}
		v, err := e.Value()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(rune('0'+e.Type))+":"+string(v))
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, " ")
}

// TestWireLimits checks the answers to broken framing: a sequence gap and a
// request over max_allowed_packet, each followed by a close.
func TestWireLimits(t *testing.T) {
	srv := start(t, func(c *mysqlfake.Config) { c.MaxAllowedPacket = 1 << 20 })
	t.Run("sequence gap", func(t *testing.T) {
		rc := dial(t, srv.Addr(), appUser, appPW, false)
		pkt, _ := mysqlwire.AppendCommand(nil, 3, mysqlwire.ComPing, nil)
		rc.write(pkt)
		rc.expectERR(1156, "08S01")
		rc.expectClosed()
	})
	t.Run("over max_allowed_packet", func(t *testing.T) {
		rc := dial(t, srv.Addr(), appUser, appPW, false)
		// Only the header is sent: the double must refuse before buffering.
		var hdr [4]byte
		mysqlwire.PutHeader(hdr[:], 1<<20+1, 0)
		rc.write(hdr[:])
		rc.expectERR(1153, "08S01")
		rc.expectClosed()
	})
	t.Run("exactly these packets", func(t *testing.T) {
		srv.ResetLog()
		rc := dial(t, srv.Addr(), appUser, appPW, false)
		rc.command(mysqlwire.ComQuery, "SELECT 1; DROP TABLE t")
		rc.command(mysqlwire.ComPing, "")
		var cmds []string
		for _, e := range srv.Log() {
			if e.ConnID == rc.id {
				cmds = append(cmds, e.Cmd.String()+" "+e.SQL())
			}
		}
		want := "COM_SLEEP ,COM_QUERY SELECT 1; DROP TABLE t,COM_PING "
		if got := strings.Join(cmds, ","); got != want {
			t.Fatalf("log %q, want %q (the handshake response logs as command byte 0)", got, want)
		}
	})
}

func TestMySQL55(t *testing.T) {
	srv := start(t, func(c *mysqlfake.Config) { c.Flavor = mysqlfake.MySQL55 })
	db := open(t, "tcp", srv.Addr(), appUser, appPW, schema, nil)
	var v string
	if err := db.QueryRow("SELECT @@version").Scan(&v); err != nil || v != "5.5.62-fake" {
		t.Fatalf("version %q, %v", v, err)
	}
	st := srv.Conns()[0].State()
	if st.ClientCaps&(mysqlwire.ClientDeprecateEOF|mysqlwire.ClientSessionTrack|mysqlwire.ClientConnectAttrs) != 0 {
		t.Fatalf("5.5 mode negotiated %#x", st.ClientCaps)
	}
	rc := dial(t, srv.Addr(), appUser, appPW, false)
	rc.write(mustCommand(mysqlwire.ComResetConnection, ""))
	rc.expectERR(1047, "08S01")
}

func TestChangeUserAndReset(t *testing.T) {
	srv := start(t, nil)
	rc := dial(t, srv.Addr(), appUser, appPW, false)
	rc.okOf(rc.command(mysqlwire.ComQuery, "SET @a = 1"))
	rc.write(mustCommand(mysqlwire.ComStmtPrepare, "SELECT 1"))
	for i := 0; i < 3; i++ { // PREPARE_OK, one column definition, EOF
		rc.read()
	}
	conn := srv.Conns()[0]
	if srv.PreparedStmts() != 1 {
		t.Fatalf("%d statements prepared, want 1", srv.PreparedStmts())
	}
	rc.okOf(rc.command(mysqlwire.ComResetConnection, ""))
	if st := conn.State(); len(st.UserVars) != 0 || st.Resets != 1 || len(st.Stmts) != 0 || srv.PreparedStmts() != 0 {
		t.Fatalf("after COM_RESET_CONNECTION: %+v", st)
	}
	cu, _ := mysqlwire.AppendChangeUser(nil, 0, rc.caps, mysqlwire.ChangeUser{
		Username: []byte("nopw"), Database: []byte(schema), CharacterSet: 45, AuthPlugin: []byte(mysqlwire.AuthNativePassword)})
	rc.write(cu)
	rc.okOf(rc.read())
	if st := conn.State(); st.User != "nopw" || st.Schema != schema || st.ChangeUsers != 1 {
		t.Fatalf("after COM_CHANGE_USER: %+v", st)
	}
	so, _ := mysqlwire.AppendSetOption(nil, 0, mysqlwire.OptionMultiStatementsOff)
	rc.write(so)
	if p := rc.read(); !mysqlwire.IsEOF(p) {
		t.Fatalf("COM_SET_OPTION answered %x, want EOF", p)
	}
	if conn.State().MultiStatements {
		t.Fatal("multi-statements still on")
	}
	cu, _ = mysqlwire.AppendChangeUser(nil, 0, rc.caps, mysqlwire.ChangeUser{
		Username: []byte(appUser), AuthResponse: []byte("wrong-scramble-bytes"), CharacterSet: 45,
		AuthPlugin: []byte(mysqlwire.AuthNativePassword)})
	rc.write(cu)
	rc.expectERR(1045, "28000")
	rc.expectClosed()
}

func TestUnixSocketAndMaxConns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fake.sock")
	srv := start(t, func(c *mysqlfake.Config) { c.Unix = path; c.MaxConns = 1 })
	db := open(t, "unix", path, appUser, appPW, "", nil)
	db.SetMaxOpenConns(1)
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
	other := open(t, "tcp", srv.Addr(), appUser, appPW, "", nil)
	if code, state := errCode(other.Ping()); code != 1040 || state != "08004" {
		t.Fatalf("second connection: %d %s, want 1040 08004", code, state)
	}
	if st := srv.Stats(); st.Refused != 1 || st.LoggedIn != 1 || st.Commands[mysqlwire.ComPing] != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rawClient speaks the protocol by hand with mysqlwire's client builders.
type rawClient struct {
	t    *testing.T
	c    net.Conn
	j    mysqlwire.Joiner
	buf  []byte
	caps mysqlwire.Capabilities
	id   uint32
}

func dial(t *testing.T, addr, user, pw string, track bool) *rawClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rc := &rawClient{t: t, c: c}
	hs, err := mysqlwire.ParseHandshake(rc.read())
	if err != nil {
		t.Fatal(err)
	}
	rc.id = hs.ConnectionID
	rc.caps = mysqlwire.ClientProtocol41 | mysqlwire.ClientSecureConnection | mysqlwire.ClientPluginAuth |
		mysqlwire.ClientTransactions | mysqlwire.ClientMultiStatements | mysqlwire.ClientMultiResults
	if track {
		rc.caps |= mysqlwire.ClientSessionTrack
	}
	rc.caps &= hs.Capabilities
	pkt, _ := mysqlwire.AppendHandshakeResponse(nil, 1, mysqlwire.HandshakeResponse{
		Capabilities: rc.caps, MaxPacketSize: 1 << 30, CharacterSet: 45, Username: []byte(user),
		AuthResponse: mysqlwire.NativePasswordScramble([]byte(pw), hs.AuthPluginData),
		AuthPlugin:   []byte(mysqlwire.AuthNativePassword),
	})
	rc.write(pkt)
	rc.okOf(rc.read())
	return rc
}

func (rc *rawClient) write(b []byte) {
	rc.t.Helper()
	rc.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := rc.c.Write(b); err != nil {
		rc.t.Fatal(err)
	}
}

func (rc *rawClient) read() []byte {
	rc.t.Helper()
	p, err := rc.tryRead()
	if err != nil {
		rc.t.Fatal(err)
	}
	return p
}

func (rc *rawClient) tryRead() ([]byte, error) {
	rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	tmp := make([]byte, 64<<10)
	for {
		p, _, size, ok, err := rc.j.Next(rc.buf)
		if err != nil {
			return nil, err
		}
		if ok {
			p = bytes.Clone(p)
			rc.buf = rc.buf[size:]
			return p, nil
		}
		n, err := rc.c.Read(tmp)
		if err != nil {
			return nil, err
		}
		rc.buf = append(rc.buf, tmp[:n]...)
	}
}

func mustCommand(cmd mysqlwire.Command, arg string) []byte {
	pkt, _ := mysqlwire.AppendCommand(nil, 0, cmd, []byte(arg))
	return pkt
}

func (rc *rawClient) command(cmd mysqlwire.Command, arg string) []byte {
	rc.t.Helper()
	rc.write(mustCommand(cmd, arg))
	return rc.read()
}

func (rc *rawClient) okOf(p []byte) mysqlwire.OK {
	rc.t.Helper()
	if len(p) == 0 {
		return mysqlwire.OK{}
	}
	ok, err := mysqlwire.ParseOK(p, rc.caps)
	if err != nil || !mysqlwire.IsOK(p) {
		e, _ := mysqlwire.ParseERR(p)
		rc.t.Fatalf("want OK, got %x (%v, %s)", p, err, e.Message)
	}
	return ok
}

func (rc *rawClient) expectERR(code uint16, state string) {
	rc.t.Helper()
	p := rc.read()
	e, err := mysqlwire.ParseERR(p)
	if err != nil || uint16(e.Code) != code || string(e.SQLState) != state {
		rc.t.Fatalf("got %x (%v), want ERR %d %s", p, err, code, state)
	}
}

func (rc *rawClient) expectClosed() {
	rc.t.Helper()
	if p, err := rc.tryRead(); err == nil {
		rc.t.Fatalf("connection still open: read %x", p)
	}
}
