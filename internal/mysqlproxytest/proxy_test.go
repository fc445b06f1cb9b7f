package mysqlproxytest

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/scalestack/scalestack/internal/testutil"
	"github.com/scalestack/scalestack/mysqlwire"
	"github.com/scalestack/scalestack/pool/mysqlproxy"
)

func TestQueriesAndMultiStatements(t *testing.T) {
	tp := startProxy(t, 2, 2, nil)
	db := tp.open(t, "multiStatements=true")
	mustExec(t, db, "CREATE TABLE IF NOT EXISTS proxy_q (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20))")
	mustExec(t, db, "DELETE FROM proxy_q")
	res, err := db.Exec("INSERT INTO proxy_q (v) VALUES ('a'), ('b'), ('c')")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 3 {
		t.Fatalf("RowsAffected = %d", n)
	}
	var count int
	if err := db.QueryRow("SELECT COUNT(*) FROM proxy_q WHERE v IN ('a', 'c')").Scan(&count); err != nil || count != 2 {
		t.Fatalf("count = %d, %v", count, err)
	}
	// A batch: every statement runs, each result set reaches the client.
	rows, err := db.Query("SELECT 1; SELECT 2, 3; UPDATE proxy_q SET v = 'z' WHERE v = 'b'")
	if err != nil {
		t.Fatal(err)
	}
	var sets [][]int
	for {
		var set []int
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			set = append(set, len(cols))
		}
		sets = append(sets, set)
		if !rows.NextResultSet() {
			break
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if len(sets) < 2 || len(sets[0]) != 1 || sets[1][0] != 2 {
		t.Fatalf("result sets %v", sets)
	}
	if err := db.QueryRow("SELECT COUNT(*) FROM proxy_q WHERE v = 'z'").Scan(&count); err != nil || count != 1 {
		t.Fatalf("update in batch: count = %d, %v", count, err)
	}
	// Errors reach the client and the session goes on.
	if _, err := db.Exec("SELECT * FROM no_such_table_here"); mysqlErrCode(err) != 1146 {
		t.Fatalf("missing table: %v", err)
	}
	// A client that did not ask for multi-statements must not get them,
	// even on a backend that another client switched on.
	single := tp.open(t, "")
	single.SetMaxOpenConns(1)
	if _, err := single.Exec("SELECT 1; SELECT 2"); mysqlErrCode(err) != 1064 {
		t.Fatalf("batch without CLIENT_MULTI_STATEMENTS: %v, want 1064", err)
	}
}

func TestTransactionPinsAndUnpins(t *testing.T) {
	tp := startProxy(t, 1, 1, func(c *mysqlproxy.Config) { c.QueueTimeout = 300 * time.Millisecond })
	db := tp.open(t, "")
	mustExec(t, db, "CREATE TABLE IF NOT EXISTS proxy_tx (id INT PRIMARY KEY, v INT)")
	mustExec(t, db, "DELETE FROM proxy_tx")
	ctx := context.Background()
	a, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	mustExec(t, a, "BEGIN")
	mustExec(t, a, "INSERT INTO proxy_tx VALUES (1, 1)")
	st := tp.p.Stats()
	if st.PinnedSessions != 1 || st.Pins[mysqlproxy.PinTransaction] != 1 {
		t.Fatalf("after BEGIN: pinned %d, transaction pins %d", st.PinnedSessions, st.Pins[mysqlproxy.PinTransaction])
	}
	// The only backend is pinned: b waits, then gets ERR 9001 and stays
	// connected.
	var n int
	err = b.QueryRowContext(ctx, "SELECT COUNT(*) FROM proxy_tx").Scan(&n)
	if mysqlErrCode(err) != uint16(mysqlproxy.ErQueueTimeout) {
		t.Fatalf("while pinned: %v, want ERR 9001", err)
	}
	mustExec(t, a, "COMMIT")
	if st := tp.p.Stats(); st.PinnedSessions != 0 || st.QueueTimeouts != 1 {
		t.Fatalf("after COMMIT: pinned %d, queue timeouts %d", st.PinnedSessions, st.QueueTimeouts)
	}
	if err := b.QueryRowContext(ctx, "SELECT COUNT(*) FROM proxy_tx").Scan(&n); err != nil || n != 1 {
		t.Fatalf("after COMMIT the other session sees %d rows, %v", n, err)
	}
	// database/sql transactions, rolled back, through the same path.
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, tx, "INSERT INTO proxy_tx VALUES (2, 2)")
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow("SELECT COUNT(*) FROM proxy_tx").Scan(&n); err != nil || n != 1 {
		t.Fatalf("after ROLLBACK: %d rows, %v", n, err)
	}
	if st := tp.p.Stats(); st.PinnedSessions != 0 {
		t.Fatalf("after ROLLBACK: %d pinned", st.PinnedSessions)
	}
}

func TestPinReasons(t *testing.T) {
	tp := startProxy(t, 2, 1, nil)
	cases := []struct {
		stmts  []string
		reason mysqlproxy.PinReason
		check  string // a query whose answer proves the state survived
		want   string
	}{
		{[]string{"SET @x = 42"}, mysqlproxy.PinUserVariable, "SELECT @x", "42"},
		{[]string{"SET autocommit = 0"}, mysqlproxy.PinAutocommitOff, "SELECT @@autocommit", "0"},
		{[]string{"CREATE TEMPORARY TABLE proxy_tmp (a INT)", "INSERT INTO proxy_tmp VALUES (7)"}, mysqlproxy.PinTempTable, "SELECT a FROM proxy_tmp", "7"},
		// RELEASE_LOCK answers 1 only on the connection holding the lock
		// (IS_USED_LOCK gives the backend's thread id, and CONNECTION_ID()
		// the session's).
		{[]string{"SELECT GET_LOCK('proxy_lock', 1)"}, mysqlproxy.PinGetLock, "SELECT RELEASE_LOCK('proxy_lock')", "1"},
		{[]string{"PREPARE ps FROM 'SELECT 5'"}, mysqlproxy.PinTextPrepare, "EXECUTE ps", "5"},
		{[]string{"SET SESSION sql_log_bin_unknown_thing = 1"}, mysqlproxy.PinUnknownSet, "SELECT 1", "1"},
	}
	for _, c := range cases {
		t.Run(c.reason.String(), func(t *testing.T) {
			db := tp.open(t, "")
			conn, err := db.Conn(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			before := tp.p.Stats().Pins[c.reason]
			for _, s := range c.stmts {
				// The unknown SET fails on the server but still pins.
				conn.ExecContext(context.Background(), s)
			}
			if got := tp.p.Stats().Pins[c.reason]; got != before+1 {
				t.Fatalf("pins for %s: %d -> %d", c.reason, before, got)
			}
			// Other sessions keep the second backend busy in between.
			other := tp.open(t, "")
			for i := 0; i < 5; i++ {
				mustExec(t, other, "SELECT 1")
			}
			var got string
			if err := conn.QueryRowContext(context.Background(), c.check).Scan(&got); err != nil || got != c.want {
				t.Fatalf("%s = %q, %v; want %q", c.check, got, err, c.want)
			}
			conn.Close()
			db.Close()
		})
	}
	// Closing pinned sessions resets their backends before reuse.
	deadline := time.Now().Add(5 * time.Second)
	for tp.p.Stats().PinnedSessions != 0 || tp.p.Stats().BackendsIdle != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("pinned sessions did not release: %+v", tp.p.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	db := tp.open(t, "")
	for i := 0; i < 4; i++ {
		var x sql.NullString
		if err := db.QueryRow("SELECT @x").Scan(&x); err != nil || x.Valid {
			t.Fatalf("user variable leaked to another session: %v %v", x, err)
		}
	}
}

func TestPreparedStatementsAcrossBackends(t *testing.T) {
	// Prepared_stmt_count is server-wide: on the shared server the other
	// packages' tests move it too.
	tp := startProxyAt(t, privateMySQL(t), 2, 2, func(c *mysqlproxy.Config) { c.MaxStmtsPerBackend = 3 })
	serverStmts := func() int {
		var n int
		if err := tp.direct(t).QueryRow("SHOW GLOBAL STATUS LIKE 'Prepared_stmt_count'").Scan(new(string), &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	baseline := serverStmts()
	setup := tp.open(t, "")
	mustExec(t, setup, "CREATE TABLE IF NOT EXISTS proxy_ps (id INT PRIMARY KEY, name VARCHAR(32), score DOUBLE)")
	mustExec(t, setup, "DELETE FROM proxy_ps")
	for i := 0; i < 20; i++ {
		mustExec(t, setup, "INSERT INTO proxy_ps VALUES (?, ?, ?)", i, fmt.Sprintf("n%d", i), float64(i)/2)
	}
	const clients = 12
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			db, err := sql.Open("mysql", tp.dsn(testUser, testPassword, testDB, ""))
			if err != nil {
				errs <- err
				return
			}
			defer db.Close()
			db.SetMaxOpenConns(1)
			byID, err := db.Prepare("SELECT name, score FROM proxy_ps WHERE id = ?")
			if err != nil {
				errs <- err
				return
			}
			byName, err := db.Prepare("SELECT id FROM proxy_ps WHERE name = ? AND score >= ?")
			if err != nil {
				errs <- err
				return
			}
			// More distinct statements than a backend keeps: forces
			// evictions and lazy re-prepares.
			for i := 0; i < 40; i++ {
				id := (c + i) % 20
				var name string
				var score float64
				if err := byID.QueryRow(id).Scan(&name, &score); err != nil || name != fmt.Sprintf("n%d", id) || score != float64(id)/2 {
					errs <- fmt.Errorf("client %d: id %d -> %q %v %v", c, id, name, score, err)
					return
				}
				var got int
				if err := byName.QueryRow(fmt.Sprintf("n%d", id), 0.0).Scan(&got); err != nil || got != id {
					errs <- fmt.Errorf("client %d: name n%d -> %d %v", c, id, got, err)
					return
				}
				q := fmt.Sprintf("SELECT ? + %d", i%5)
				var sum int
				if err := db.QueryRow(q, 1).Scan(&sum); err != nil || sum != 1+i%5 {
					errs <- fmt.Errorf("client %d: %s -> %d %v", c, q, sum, err)
					return
				}
			}
			byID.Close()
			byName.Close()
		}(c)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := tp.p.Stats()
	if st.PrepareCacheHits == 0 || st.BackendStmtEvictions == 0 {
		t.Errorf("expected cache hits and evictions: %+v", st)
	}
	// The server never holds more than the bound per backend (the count
	// is global: compare with what it was before this proxy started).
	if n := serverStmts() - baseline; n > 2*3 {
		t.Errorf("server holds %d more prepared statements, want at most %d", n, 2*3)
	}
	// Per backend: TestBackendStmtBound in pool/mysqlproxy, against the
	// double.
}

func TestBackendCountNeverExceedsN(t *testing.T) {
	const n = 3
	env := requireMySQL(t)
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = env.testUser, env.testPassword, "tcp", env.addr
	direct, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	// The server is shared with test packages running beside this one, so
	// only service connections from this process's own sockets count
	// (the processlist's HOST ends in the client's port).
	threads := func() map[int64]bool {
		own, err := testutil.OwnTCPLocalPorts()
		if err != nil {
			t.Fatal(err)
		}
		rows, err := direct.Query("SELECT ID, HOST FROM information_schema.PROCESSLIST WHERE USER = ?", env.user)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		ids := map[int64]bool{}
		for rows.Next() {
			var id int64
			var host string
			if err := rows.Scan(&id, &host); err != nil {
				t.Fatal(err)
			}
			_, port, _ := strings.Cut(host, ":")
			if p, err := strconv.Atoi(port); err == nil && own[p] {
				ids[id] = true
			}
		}
		return ids
	}
	// Service connections that existed before this proxy (earlier tests'
	// proxies winding down) are not its own.
	before := threads()
	tp := startProxy(t, n, 2, nil)
	count := func() int {
		c := 0
		for id := range threads() {
			if !before[id] {
				c++
			}
		}
		return c
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < 30; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := sql.Open("mysql", tp.dsn(testUser, testPassword, testDB, ""))
			if err != nil {
				return
			}
			defer db.Close()
			for {
				select {
				case <-stop:
					return
				default:
				}
				db.Exec("SELECT SLEEP(0.001)")
			}
		}()
	}
	maxSeen := 0
	for i := 0; i < 20; i++ {
		maxSeen = max(maxSeen, count())
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if maxSeen > n {
		t.Fatalf("server saw %d service connections from one proxy, want at most %d", maxSeen, n)
	}
	if maxSeen < n {
		t.Fatalf("server saw only %d service connections, want %d", maxSeen, n)
	}
}

func TestStateReplayAcrossBackends(t *testing.T) {
	tp := startProxy(t, 2, 2, nil)
	type want struct{ db, tz, charset, isolation string }
	wants := []want{
		{"scalestack_test", "+01:00", "utf8mb4", "READ-COMMITTED"},
		{"sbtest", "+02:00", "latin1", "REPEATABLE-READ"},
		{"scalestack_test", "SYSTEM", "utf8mb3", "SERIALIZABLE"},
		{"sbtest", "+03:00", "utf8mb4", "READ-UNCOMMITTED"},
	}
	const sessions = 12
	var conns []*sql.Conn
	for i := 0; i < sessions; i++ {
		w := wants[i%len(wants)]
		db := tp.open(t, "")
		c, err := db.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx := context.Background()
		for _, q := range []string{
			"USE " + w.db,
			"SET time_zone = '" + w.tz + "'",
			"SET NAMES " + w.charset,
			"SET SESSION TRANSACTION ISOLATION LEVEL " + map[string]string{
				"READ-COMMITTED": "READ COMMITTED", "REPEATABLE-READ": "REPEATABLE READ",
				"SERIALIZABLE": "SERIALIZABLE", "READ-UNCOMMITTED": "READ UNCOMMITTED"}[w.isolation],
		} {
			if _, err := c.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		conns = append(conns, c)
	}
	for round := 0; round < 3; round++ {
		for i, c := range conns {
			w := wants[i%len(wants)]
			var db, tz, cs, iso string
			err := c.QueryRowContext(context.Background(),
				"SELECT DATABASE(), @@time_zone, @@character_set_client, @@tx_isolation").Scan(&db, &tz, &cs, &iso)
			if err != nil {
				t.Fatal(err)
			}
			if cs == "utf8" {
				cs = "utf8mb3"
			}
			if db != w.db || tz != w.tz || cs != w.charset || iso != w.isolation {
				t.Fatalf("session %d round %d: got %s %s %s %s, want %+v", i, round, db, tz, cs, iso, w)
			}
		}
	}
	st := tp.p.Stats()
	if st.StateReplays == 0 || st.PinnedSessions != 0 {
		t.Fatalf("want replays and no pins: %+v", st)
	}
	// USE of a missing database fails and leaves the schema alone.
	if _, err := conns[0].ExecContext(context.Background(), "USE no_such_db_here"); mysqlErrCode(err) != 1049 && mysqlErrCode(err) != 1044 {
		t.Fatalf("USE missing db: %v", err)
	}
	var db string
	if err := conns[0].QueryRowContext(context.Background(), "SELECT DATABASE()").Scan(&db); err != nil || db != wants[0].db {
		t.Fatalf("after failed USE: %q %v", db, err)
	}
}

func TestLocalAnswers(t *testing.T) {
	tp := startProxy(t, 1, 2, nil)
	db := tp.open(t, "")
	mustExec(t, db, "CREATE TABLE IF NOT EXISTS proxy_ai (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
	ctx := context.Background()
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.ExecContext(ctx, "INSERT INTO proxy_ai (v) VALUES (1)")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := res.LastInsertId()
	mustExec(t, c, "SELECT 1") // a statement that generates no id keeps it
	var got int64
	if err := c.QueryRowContext(ctx, "SELECT LAST_INSERT_ID()").Scan(&got); err != nil || got != want {
		t.Fatalf("LAST_INSERT_ID() = %d, %v; want %d", got, err, want)
	}
	var id1, id2 uint32
	if err := c.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id1); err != nil {
		t.Fatal(err)
	}
	c2, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.QueryRowContext(ctx, "select connection_id() AS id").Scan(&id2); err != nil {
		t.Fatal(err)
	}
	if id1 == id2 || id1 == 0 {
		t.Fatalf("connection ids %d and %d", id1, id2)
	}
	if err := c.PingContext(ctx); err != nil {
		t.Fatal(err)
	}
	// KILL another session (on whichever loop it lives) closes it.
	if _, err := c.ExecContext(ctx, fmt.Sprintf("KILL %d", id2)); err != nil {
		t.Fatalf("KILL %d: %v", id2, err)
	}
	err = c2.QueryRowContext(ctx, "SELECT 1").Scan(new(int))
	if err == nil {
		t.Fatal("killed session still answers")
	}
	c2.Close()
	if _, err := c.ExecContext(ctx, "KILL 4000000000"); mysqlErrCode(err) != 1094 {
		t.Fatalf("KILL unknown id: %v", err)
	}
	if tp.p.Stats().Kills != 1 {
		t.Fatalf("Kills = %d", tp.p.Stats().Kills)
	}
}

// TestCursorFetch opens a server-side cursor (what JDBC useCursorFetch
// does): the session is pinned until the cursor is exhausted.
func TestCursorFetch(t *testing.T) {
	tp := startProxy(t, 1, 1, nil)
	r := dialRaw(t, tp.addr)
	if p := r.login(testUser, testPassword, mysqlwire.AuthNativePassword, 0); !mysqlwire.IsOK(p) {
		t.Fatalf("login: %x", p)
	}
	resp := r.command(append([]byte{byte(mysqlwire.ComStmtPrepare)}, "SELECT seq FROM seq_1_to_5"...))
	id := getUint32(resp[0][1:])
	exec := []byte{byte(mysqlwire.ComStmtExecute), 0, 0, 0, 0, 1 /* read-only cursor */, 1, 0, 0, 0}
	putUint32(exec[1:], id)
	resp = r.command(exec)
	if mysqlwire.IsERR(resp[0]) {
		t.Fatalf("execute: %s", errText(resp[0]))
	}
	if tp.p.Stats().Pins[mysqlproxy.PinCursor] != 1 {
		t.Fatalf("cursor did not pin: %+v", tp.p.Stats())
	}
	rows := 0
	for i := 0; i < 10 && tp.p.Stats().PinnedSessions == 1; i++ {
		fetch := []byte{byte(mysqlwire.ComStmtFetch), 0, 0, 0, 0, 2, 0, 0, 0}
		putUint32(fetch[1:], id)
		resp = r.command(fetch)
		rows += len(resp) - 1
	}
	if rows != 5 || tp.p.Stats().PinnedSessions != 0 {
		t.Fatalf("fetched %d rows; stats %+v", rows, tp.p.Stats())
	}
}

// TestPreparedStatementSchemas: the same text prepared in two schemas names
// two tables; the PREPARE cache and the backends' statements must keep
// them apart, and a statement keeps its schema after USE.
func TestPreparedStatementSchemas(t *testing.T) {
	// One statement per backend: the third PREPARE is answered from the
	// cache and its EXECUTE must re-prepare in the first schema.
	tp := startProxy(t, 1, 1, func(c *mysqlproxy.Config) { c.MaxStmtsPerBackend = 1 })
	a := tp.open(t, "")
	mustExec(t, a, "CREATE TABLE IF NOT EXISTS scalestack_test.proxy_schema_t (a INT)")
	mustExec(t, a, "CREATE TABLE IF NOT EXISTS sbtest.proxy_schema_t (a INT, b INT)")
	mustExec(t, a, "DELETE FROM scalestack_test.proxy_schema_t")
	mustExec(t, a, "DELETE FROM sbtest.proxy_schema_t")
	mustExec(t, a, "INSERT INTO scalestack_test.proxy_schema_t VALUES (1)")
	mustExec(t, a, "INSERT INTO sbtest.proxy_schema_t VALUES (2, 3)")
	defer mustExec(t, a, "DROP TABLE IF EXISTS sbtest.proxy_schema_t")
	const q = "SELECT * FROM proxy_schema_t WHERE ? > 0"
	ctx := context.Background()
	for _, c := range []struct {
		db   string
		cols int
	}{{"scalestack_test", 1}, {"sbtest", 2}, {"scalestack_test", 1}} {
		db, err := sql.Open("mysql", tp.dsn(testUser, testPassword, c.db, ""))
		if err != nil {
			t.Fatal(err)
		}
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st, err := conn.PrepareContext(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		// Switch schema after preparing: the statement keeps its table.
		other := map[string]string{"sbtest": "scalestack_test", "scalestack_test": "sbtest"}[c.db]
		mustExec(t, conn, "USE "+other)
		rows, err := st.QueryContext(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		rows.Close()
		if len(cols) != c.cols {
			t.Fatalf("prepared in %s: %d columns, want %d", c.db, len(cols), c.cols)
		}
		var cur string
		if err := conn.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&cur); err != nil || cur != other {
			t.Fatalf("schema after execute: %q %v", cur, err)
		}
		st.Close()
		conn.Close()
		db.Close()
	}
	if st := tp.p.Stats(); st.PrepareCacheHits != 1 || st.BackendPrepares != 3 {
		t.Fatalf("want one cache hit and a lazy re-prepare: %+v", st)
	}
}

// TestShowWarningsSeesTheStatement: after a statement with warnings the
// session keeps its backend until its next command, unless another client
// needs it, so SHOW WARNINGS reports them.
func TestShowWarningsSeesTheStatement(t *testing.T) {
	tp := startProxy(t, 2, 1, nil)
	ctx := context.Background()
	a, err := tp.open(t, "").Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b := tp.open(t, "")
	var v int
	if err := a.QueryRowContext(ctx, "SELECT CAST('12abc' AS SIGNED)").Scan(&v); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ { // another client in between, with its own warning
		mustExec(t, b, "SELECT 1/0")
	}
	rows, err := a.QueryContext(ctx, "SHOW WARNINGS")
	if err != nil {
		t.Fatal(err)
	}
	var codes []int
	for rows.Next() {
		var level, msg string
		var code int
		if err := rows.Scan(&level, &code, &msg); err != nil {
			rows.Close()
			t.Fatal(err)
		}
		codes = append(codes, code)
	}
	rows.Close()
	n := len(codes)
	if n != 1 || codes[0] != 1292 {
		t.Fatalf("warnings %v, want [1292] from this session's statement", codes)
	}
	if n != 1 || tp.p.Stats().DiagnosticHolds == 0 {
		t.Fatalf("%d warnings, %+v", n, tp.p.Stats())
	}
	// A held backend goes to a client that needs it rather than make it
	// wait.
	one := startProxy(t, 1, 1, func(c *mysqlproxy.Config) { c.QueueTimeout = 200 * time.Millisecond })
	c, err := one.open(t, "").Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.QueryRowContext(ctx, "SELECT CAST('x' AS SIGNED)").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if err := one.open(t, "").QueryRow("SELECT 2").Scan(&v); err != nil || v != 2 {
		t.Fatalf("second client: %d %v", v, err)
	}
	if err := c.QueryRowContext(ctx, "SELECT 3").Scan(&v); err != nil || v != 3 {
		t.Fatalf("first client afterwards: %d %v", v, err)
	}
	if st := one.p.Stats(); st.QueueTimeouts != 0 || st.BackendsIdle != 1 {
		t.Fatalf("stats %+v", st)
	}
}
