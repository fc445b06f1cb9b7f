package e2e

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// serviceHosts are the hosts of the service account (createFixtures).
var serviceHosts = []string{"%", "localhost"}

// grantServiceSuper gives the service account SUPER for one test, so that
// what the proxy must refuse would otherwise succeed on the server (global
// privileges take effect at login: call it before startProxy).
func grantServiceSuper(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for _, h := range serviceHosts {
		acct := "'" + srv.serviceUser + "'@'" + h + "'"
		if _, err := rootDB.ExecContext(ctx, "GRANT SUPER ON *.* TO "+acct); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if _, err := rootDB.ExecContext(ctx, "REVOKE SUPER ON *.* FROM "+acct); err != nil {
				t.Errorf("revoke: %v", err)
			}
			// Whatever happened, the service account keeps its password.
			if _, err := rootDB.ExecContext(ctx, "SET PASSWORD FOR "+acct+" = PASSWORD('"+srv.servicePassword+"')"); err != nil {
				t.Errorf("restore password: %v", err)
			}
		})
	}
}

func serviceGrants(t *testing.T) string {
	t.Helper()
	var all []string
	for _, h := range serviceHosts {
		rows, err := rootDB.Query("SHOW GRANTS FOR '" + srv.serviceUser + "'@'" + h + "'")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var g string
			if err := rows.Scan(&g); err != nil {
				t.Fatal(err)
			}
			all = append(all, g)
		}
		rows.Close()
	}
	return strings.Join(all, "\n")
}

func globalVar(t *testing.T, name string) string {
	t.Helper()
	var v string
	if err := rootDB.QueryRow("SELECT @@global." + name).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func wantCode(t *testing.T, what string, err error, code uint16) {
	t.Helper()
	var se *serverError
	if !errors.As(err, &se) || se.Code != code {
		t.Errorf("%s: %v, want ERROR %d", what, err, code)
	}
}

// TestAdminStatementsRefused: statements acting on the whole server or on
// the shared service account are refused with 1227 to an account without
// admin, wherever they hide, and change nothing; an admin account may run
// them.
func TestAdminStatementsRefused(t *testing.T) {
	grantServiceSuper(t)
	p := startProxy(t, proxyOptions{backendConns: 2})
	grantsBefore := serviceGrants(t)
	lqtBefore := globalVar(t, "long_query_time")
	t.Cleanup(func() { rootDB.Exec("SET GLOBAL long_query_time = " + lqtBefore) })

	c, err := dialRaw(p.addr, clientUser, clientPassword, rawOptions{multiStmts: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.setDeadline(30 * time.Second)
	svc := "'" + srv.serviceUser + "'@'%'"
	for _, q := range []string{
		"SET PASSWORD = PASSWORD('stolen')",
		"SET PASSWORD FOR " + svc + " = PASSWORD('stolen')",
		"ALTER USER CURRENT_USER() IDENTIFIED BY 'stolen'",
		"GRANT ALL PRIVILEGES ON *.* TO " + svc,
		"SET GLOBAL long_query_time = 123",
		"SET @@global.long_query_time = 123",
		"SET SESSION sql_mode = '', GLOBAL long_query_time = 123",
		"SELECT 1; SET GLOBAL long_query_time = 123",
		"SELECT 1; SET PASSWORD = PASSWORD('stolen')",
		"EXECUTE IMMEDIATE 'SET GLOBAL long_query_time = 123'",
		"EXECUTE IMMEDIATE 'SET PASSWORD = PASSWORD(''stolen'')'",
		"PREPARE s FROM 'SET GLOBAL long_query_time = 123'",
		"PREPARE s FROM 'GRANT ALL PRIVILEGES ON *.* TO " + strings.ReplaceAll(svc, "'", "''") + "'",
		"FLUSH TABLES WITH READ LOCK",
	} {
		_, err := c.query(q)
		wantCode(t, q, err, 1227)
		if v, err := c.scalar("SELECT 7"); err != nil || v != "7" {
			t.Fatalf("after %q the session is not usable: %q %v", q, v, err)
		}
	}
	// Dynamic SQL whose text the proxy cannot see.
	if _, err := c.exec("SET @q = 'SET GLOBAL long_query_time = 123'"); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"PREPARE s FROM @q", "EXECUTE IMMEDIATE @q"} {
		_, err := c.query(q)
		wantCode(t, q, err, 1227)
	}
	// COM_STMT_PREPARE.
	for _, q := range []string{"SET GLOBAL long_query_time = 123", "SET PASSWORD = PASSWORD('stolen')", "GRANT ALL PRIVILEGES ON *.* TO " + svc} {
		_, _, err := c.prepare(q)
		wantCode(t, "COM_STMT_PREPARE "+q, err, 1227)
	}
	if v, err := c.scalar("SELECT 8"); err != nil || v != "8" {
		t.Fatalf("the session is not usable: %q %v", v, err)
	}

	// Nothing changed on the server: the service account still logs in,
	// with the same grants, and the global variable kept its value.
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = srv.serviceUser, srv.servicePassword, "tcp", srv.addr
	svcDB, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer svcDB.Close()
	if err := svcDB.Ping(); err != nil {
		t.Errorf("the service account no longer logs in: %v", err)
	}
	if g := serviceGrants(t); g != grantsBefore {
		t.Errorf("grants changed:\n%s\nwas:\n%s", g, grantsBefore)
	}
	if v := globalVar(t, "long_query_time"); v != lqtBefore {
		t.Errorf("global long_query_time %s, was %s", v, lqtBefore)
	}
	// Later clients are served.
	if err := openProxyDB(t, p.addr, "", nil).Ping(); err != nil {
		t.Fatalf("a new client: %v", err)
	}

	// An admin account may.
	a, err := dialRaw(p.addr, adminUser, adminPassword, rawOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.setDeadline(30 * time.Second)
	if _, err := a.exec("SET GLOBAL long_query_time = 11"); err != nil {
		t.Fatalf("admin: %v", err)
	}
	if v := globalVar(t, "long_query_time"); !strings.HasPrefix(v, "11") {
		t.Errorf("admin's SET GLOBAL: long_query_time %s", v)
	}
	if _, err := a.exec("SET GLOBAL long_query_time = " + lqtBefore); err != nil {
		t.Fatalf("admin: %v", err)
	}
}

func processKill(c *rawConn, id uint32) error {
	var arg [4]byte
	binary.LittleEndian.PutUint32(arg[:], id)
	if err := c.writeCommand(0x0c, arg[:]); err != nil {
		return err
	}
	p, err := c.readPacket()
	if err != nil {
		return err
	}
	if p[0] == 0xff {
		return parseErr(p)
	}
	return nil
}

// TestKillOtherAccount: KILL reaches only the caller's own account's
// sessions (on any loop) unless the caller is an admin; any other id is
// answered like one that does not exist.
func TestKillOtherAccount(t *testing.T) {
	p := startProxy(t, proxyOptions{backendConns: 2, loops: 2})
	dial := func(user, pw string) *rawConn {
		c, err := dialRaw(p.addr, user, pw, rawOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c.setDeadline(30 * time.Second)
		t.Cleanup(func() { c.Close() })
		return c
	}
	attacker := dial(clientUser, clientPassword)
	// Several victims so that some live on the attacker's loop and some
	// on the other.
	var victims []*rawConn
	for i := 0; i < 4; i++ {
		victims = append(victims, dial(otherUser, otherPassword))
	}
	for _, v := range victims {
		id := v.hello.connectionID
		for _, q := range []string{"KILL %d", "KILL CONNECTION %d", "KILL QUERY %d"} {
			_, err := attacker.query(fmt.Sprintf(q, id))
			wantCode(t, fmt.Sprintf(q, id), err, 1094)
			if se := new(serverError); errors.As(err, &se) && se.Message != fmt.Sprintf("Unknown thread id: %d", id) {
				t.Errorf("message %q", se.Message)
			}
		}
		wantCode(t, "COM_PROCESS_KILL", processKill(attacker, id), 1094)
		if s, err := v.scalar("SELECT 1"); err != nil || s != "1" {
			t.Fatalf("victim %d killed by another account: %q %v", id, s, err)
		}
	}
	// Its own account's other sessions: yes.
	for i := 0; i < 2; i++ {
		own := dial(clientUser, clientPassword)
		if _, err := attacker.exec(fmt.Sprintf("KILL %d", own.hello.connectionID)); err != nil {
			t.Fatalf("KILL of an own session: %v", err)
		}
		if _, err := own.scalar("SELECT 1"); err == nil {
			t.Fatal("own session survived KILL")
		}
	}
	// An admin: any session.
	admin := dial(adminUser, adminPassword)
	for _, v := range victims[:2] {
		if _, err := admin.exec(fmt.Sprintf("KILL %d", v.hello.connectionID)); err != nil {
			t.Fatalf("admin KILL: %v", err)
		}
		if _, err := v.scalar("SELECT 1"); err == nil {
			t.Fatal("session survived the admin's KILL")
		}
	}
}

// serviceConnIDs lists the server's connection ids of the service account.
func serviceConnIDs(t *testing.T) []int64 {
	t.Helper()
	rows, err := rootDB.Query("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = '" + srv.serviceUser + "' ORDER BY ID")
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
	return ids
}

// TestWaitTimeoutFloor: a client's tiny wait_timeout does not reach the
// pooled backends (the server would drop them after a second of
// idleness), and the client still reads back its own value.
func TestWaitTimeoutFloor(t *testing.T) {
	const n = 2
	p := startProxy(t, proxyOptions{backendConns: n})
	before := serviceConnIDs(t)
	if len(before) != n {
		t.Fatalf("service connections %v, want %d", before, n)
	}
	// Two sessions each run a slow statement at the same time, so each
	// backend gets its session's variables.
	var sessions []*rawConn
	for i := 0; i < n; i++ {
		c, err := dialRaw(p.addr, clientUser, clientPassword, rawOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.setDeadline(30 * time.Second)
		q := "SET SESSION wait_timeout=1"
		if i == 1 {
			q = "SET @@session.net_read_timeout = 1, @@session.wait_timeout = 1, interactive_timeout = 1"
		}
		if _, err := c.exec(q); err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, c)
	}
	errs := make(chan error, n)
	for _, c := range sessions {
		go func(c *rawConn) { _, err := c.simple("SELECT SLEEP(0.5)"); errs <- err }(c)
	}
	for range sessions {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(3 * time.Second)
	if after := serviceConnIDs(t); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("service connections %v after 3 s idle, were %v: the server dropped pooled connections", after, before)
	}
	db := openProxyDB(t, p.addr, "", nil)
	for i := 0; i < 20; i++ {
		var v int
		if err := db.QueryRow("SELECT 1").Scan(&v); err != nil {
			t.Fatalf("another session: %v", err)
		}
	}
	if after := serviceConnIDs(t); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("service connections %v, were %v", after, before)
	}
	for _, q := range []string{"SELECT @@wait_timeout", "SELECT @@session.wait_timeout"} {
		if v, err := sessions[0].scalar(q); err != nil || v != "1" {
			t.Errorf("%s: %q %v, want 1", q, v, err)
		}
	}
	rows, err := sessions[1].simple("SELECT @@net_read_timeout, @@wait_timeout AS w")
	if err != nil || fmt.Sprint(rows) != "[[1 1]]" {
		t.Errorf("SELECT @@net_read_timeout, @@wait_timeout: %v %v", rows, err)
	}
	// A session that did not set it sees the server's value.
	var wt int
	if err := db.QueryRow("SELECT @@wait_timeout").Scan(&wt); err != nil || wt <= 1 {
		t.Errorf("other session's wait_timeout %d %v", wt, err)
	}
}
