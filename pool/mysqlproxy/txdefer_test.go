package mysqlproxy

import (
	"context"
	"database/sql"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/scalestack/scalestack/internal/mysqlfake"
	"github.com/scalestack/scalestack/mysqlwire"
)

func deferBegin(c *Config) { c.DeferBegin = true }

// fakeStatements are the double's log entries of COM_QUERY statements
// whose text starts with one of prefixes, in order.
func fakeStatements(srv *mysqlfake.Server, prefixes ...string) []mysqlfake.Entry {
	var out []mysqlfake.Entry
	for _, e := range srv.Log() {
		if e.Cmd != mysqlwire.ComQuery {
			continue
		}
		for _, p := range prefixes {
			if strings.HasPrefix(e.SQL(), p) {
				out = append(out, e)
				break
			}
		}
	}
	return out
}

// query sends sql as COM_QUERY and returns the response's packets.
func (r *rawClient) query(sql string) [][]byte {
	r.t.Helper()
	return r.command(append([]byte{byte(mysqlwire.ComQuery)}, sql...))
}

// okOf parses the response's last packet (an OK, or a result set's
// EOF) and returns it.
func okOf(t *testing.T, resp [][]byte, caps mysqlwire.Capabilities) mysqlwire.OK {
	t.Helper()
	last := resp[len(resp)-1]
	if mysqlwire.IsERR(last) {
		t.Fatalf("ERR: %s", errText(last))
	}
	if mysqlwire.IsEOF(last) {
		eof, err := mysqlwire.ParseEOF(last)
		if err != nil {
			t.Fatalf("parse %x: %v", last, err)
		}
		return mysqlwire.OK{Header: mysqlwire.HeaderEOF, Status: eof.Status, Warnings: eof.Warnings}
	}
	ok, err := mysqlwire.ParseOK(last, caps)
	if err != nil {
		t.Fatalf("parse %x: %v", last, err)
	}
	return ok
}

// TestDeferredBeginAnsweredLocally: a plain BEGIN (START TRANSACTION,
// BEGIN WORK) outside a transaction is answered by the proxy with the OK
// MariaDB sends (IN_TRANS and AUTOCOMMIT, no warnings, no session state
// under the server's default tracking), and an empty transaction's COMMIT
// or ROLLBACK too: no backend hears any of it.
func TestDeferredBeginAnsweredLocally(t *testing.T) {
	tp := startProxy(t, 1, 1, deferBegin)
	for _, track := range []bool{false, true} {
		r := dialRaw(t, tp.addr)
		caps := mysqlwire.Capabilities(0)
		if track {
			r.login(testUser, testPassword, mysqlwire.AuthNativePassword, 0)
			caps = r.hs.Capabilities &^ mysqlwire.ClientFoundRows
		} else {
			caps = clientCaps &^ (mysqlwire.ClientSessionTrack | mysqlwire.ClientFoundRows)
			r.login(testUser, testPassword, mysqlwire.AuthNativePassword, caps)
		}
		if (caps&mysqlwire.ClientSessionTrack != 0) != track {
			t.Fatalf("track=%v: client caps %v", track, caps)
		}
		for _, tc := range []struct{ begin, end string }{
			{"BEGIN", "COMMIT"}, {"START TRANSACTION", "ROLLBACK"}, {"begin work;", "commit work"},
		} {
			ok := okOf(t, r.query(tc.begin), caps)
			want := mysqlwire.StatusInTrans | mysqlwire.StatusAutocommit
			if ok.Status != want || ok.Warnings != 0 || len(ok.SessionState) != 0 || ok.AffectedRows != 0 {
				t.Errorf("track=%v %s: OK %+v, want status %v, no warnings, no session state", track, tc.begin, ok, want)
			}
			ok = okOf(t, r.query(tc.begin), caps) // BEGIN in the empty transaction: still deferred
			if ok.Status != want {
				t.Errorf("track=%v second %s: status %v", track, tc.begin, ok.Status)
			}
			ok = okOf(t, r.query(tc.end), caps)
			if ok.Status != mysqlwire.StatusAutocommit {
				t.Errorf("track=%v %s: status %v, want AUTOCOMMIT alone", track, tc.end, ok.Status)
			}
		}
		if got := fakeStatements(tp.fake, "BEGIN", "START", "begin", "COMMIT", "ROLLBACK", "commit"); len(got) != 0 {
			t.Errorf("track=%v: the server heard %d transaction statements, want none: %v", track, len(got), got)
		}
		if s := tp.p.Stats(); s.PinnedSessions != 0 {
			t.Errorf("track=%v: %d sessions pinned after the empty transactions", track, s.PinnedSessions)
		}
	}
}

// TestDeferredBeginBatchedWithSelect: the transaction's first statement,
// a SELECT, reaches the server right behind BEGIN, in the same write; the
// client sees only the SELECT's response, inside the transaction.
func TestDeferredBeginBatchedWithSelect(t *testing.T) {
	tp := startProxy(t, 1, 1, deferBegin)
	r := dialRaw(t, tp.addr)
	r.login(testUser, testPassword, mysqlwire.AuthNativePassword, 0)
	caps := r.hs.Capabilities
	okOf(t, r.query("BEGIN"), caps)
	resp := r.query("SELECT 1")
	if len(resp) != 5 { // column count, definition, EOF, row, EOF
		t.Fatalf("SELECT 1 answered %d packets, want a one-row result set", len(resp))
	}
	if ok := okOf(t, resp, caps); ok.Status&mysqlwire.StatusInTrans == 0 {
		t.Errorf("SELECT's EOF status %v: not in a transaction", ok.Status)
	}
	got := fakeStatements(tp.fake, "BEGIN", "SELECT 1")
	if len(got) != 2 || got[0].SQL() != "BEGIN" || got[1].SQL() != "SELECT 1" {
		t.Fatalf("server heard %v, want BEGIN then SELECT 1", got)
	}
	if !got[1].Pipelined {
		t.Errorf("SELECT 1 reached the server after BEGIN's answer: not in one write with it")
	}
	if ok := okOf(t, r.query("COMMIT"), caps); ok.Status&mysqlwire.StatusInTrans != 0 {
		t.Errorf("COMMIT status %v", ok.Status)
	}
	if got := fakeStatements(tp.fake, "COMMIT"); len(got) != 1 {
		t.Errorf("server heard %d COMMITs, want 1", len(got))
	}
}

// TestDeferredBeginAheadOfWrite: before a statement that may write, BEGIN
// goes alone and the statement only once BEGIN succeeded.
func TestDeferredBeginAheadOfWrite(t *testing.T) {
	tp := startProxy(t, 1, 1, deferBegin)
	tp.fake.OnPrefix("INSERT INTO t", mysqlfake.Affected(1, 0))
	r := dialRaw(t, tp.addr)
	r.login(testUser, testPassword, mysqlwire.AuthNativePassword, 0)
	caps := r.hs.Capabilities
	okOf(t, r.query("START TRANSACTION"), caps)
	if ok := okOf(t, r.query("INSERT INTO t VALUES (1)"), caps); ok.Status&mysqlwire.StatusInTrans == 0 {
		t.Errorf("INSERT status %v: not in a transaction", ok.Status)
	}
	got := fakeStatements(tp.fake, "BEGIN", "INSERT")
	if len(got) != 2 || got[0].SQL() != "BEGIN" {
		t.Fatalf("server heard %v, want BEGIN then the INSERT", got)
	}
	if got[1].Pipelined {
		t.Errorf("the INSERT was written before BEGIN's answer")
	}
	okOf(t, r.query("ROLLBACK"), caps)
}

// TestDeferredBeginFails: a BEGIN the server refuses answers the
// statement it went ahead of with BEGIN's error; a SELECT batched behind
// it is thrown away, a write is never sent, and the transaction stays
// deferred: the next statement gets BEGIN again.
func TestDeferredBeginFails(t *testing.T) {
	tp := startProxy(t, 1, 1, deferBegin)
	var failing atomic.Bool
	failing.Store(true)
	// While failing, BEGIN is refused; otherwise the double's own BEGIN
	// opens a transaction.
	tp.fake.OnFunc(func(sql string) bool { return sql == "BEGIN" && failing.Load() }, func(mysqlfake.Query) mysqlfake.Response {
		return mysqlfake.Fail(mysqlwire.ErrCode(1399), "XAE07", "XAER_RMFAIL: injected")
	})
	tp.fake.OnPrefix("INSERT INTO t", mysqlfake.Affected(1, 0))
	r := dialRaw(t, tp.addr)
	r.login(testUser, testPassword, mysqlwire.AuthNativePassword, 0)
	caps := r.hs.Capabilities
	okOf(t, r.query("BEGIN"), caps)
	for _, stmt := range []string{"SELECT 1", "INSERT INTO t VALUES (1)", "SELECT 2"} {
		resp := r.query(stmt)
		if len(resp) != 1 || !isERR(resp[0], 1399) {
			t.Fatalf("%s: got %d packets (%x), want BEGIN's ERR 1399", stmt, len(resp), resp[0])
		}
	}
	if got := fakeStatements(tp.fake, "INSERT"); len(got) != 0 {
		t.Errorf("the INSERT reached the server although BEGIN failed")
	}
	failing.Store(false)
	resp := r.query("SELECT 3")
	if len(resp) != 5 || !strings.Contains(string(resp[3]), "3") {
		t.Fatalf("SELECT 3 after the failures: %d packets %q", len(resp), resp)
	}
	if ok := okOf(t, resp, caps); ok.Status&mysqlwire.StatusInTrans == 0 {
		t.Errorf("SELECT 3 status %v: BEGIN did not go ahead of it", ok.Status)
	}
	got := fakeStatements(tp.fake, "BEGIN", "SELECT")
	if n := len(got); n < 2 || got[n-2].SQL() != "BEGIN" || got[n-1].SQL() != "SELECT 3" {
		t.Errorf("server heard %v, want BEGIN then SELECT 3 last", got)
	}
	okOf(t, r.query("COMMIT"), caps)
	if n := tp.fake.Stats().Accepted; n != 1 {
		// The SELECTs behind the failed BEGINs were read and dropped, and
		// the connection reset, not closed.
		t.Errorf("the backend reconnected (%d connections) after BEGIN failed", n)
	}
}

// openOne opens one connection through the proxy as testUser to schema.
func openOne(t *testing.T, tp *testProxy, schema string) *sql.Conn {
	t.Helper()
	db, err := sql.Open("mysql", tp.dsn(testUser, testPassword, schema, ""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestFailedReplayBatchedStatement: a replay that fails (COM_INIT_DB of a
// schema the server does not have; a SET the server refuses) never lets a
// write behind it run, and answers a SELECT batched behind it with the
// error a one-at-a-time replay gives, whose own response is thrown away.
func TestFailedReplayBatchedStatement(t *testing.T) {
	type outcome struct {
		insertErr, selectErr string
		selectSent           bool
	}
	run := func(t *testing.T, serial bool, schemaCase bool) outcome {
		tp := startProxy(t, 1, 1, func(c *Config) { c.SerialReplay = serial })
		tp.fake.OnPrefix("INSERT INTO t", mysqlfake.Affected(1, 0))
		var failSET atomic.Bool
		tp.fake.OnFunc(func(sql string) bool {
			return failSET.Load() && strings.HasPrefix(sql, "SET ") && strings.Contains(sql, "'+01:00'")
		}, func(mysqlfake.Query) mysqlfake.Response {
			return mysqlfake.Fail(mysqlwire.ErrCode(1298), "HY000", "Unknown or incorrect time zone: '+01:00'")
		})
		ctx := context.Background()
		var c *sql.Conn
		var o outcome
		if schemaCase {
			// The handshake names a schema the server does not have: the
			// first command's COM_INIT_DB fails with 1049.
			c = openOne(t, tp, "gone_insert")
		} else {
			c = openOne(t, tp, testDB)
			if _, err := c.ExecContext(ctx, "SET time_zone = '+01:00'"); err != nil {
				t.Fatal(err)
			}
			failSET.Store(true)
			other := openOne(t, tp, testDB) // takes the only backend to the default time zone
			if _, err := other.ExecContext(ctx, "SELECT 1"); err != nil {
				t.Fatal(err)
			}
		}
		_, err := c.ExecContext(ctx, "INSERT INTO t VALUES (1)")
		if err == nil {
			t.Fatal("INSERT succeeded although its replay failed")
		}
		o.insertErr = err.Error()
		if got := fakeStatements(tp.fake, "INSERT"); len(got) != 0 {
			t.Fatalf("the INSERT reached the server behind a failed replay: %v", got)
		}
		if schemaCase {
			c = openOne(t, tp, "gone_select")
		}
		var v int
		err = c.QueryRowContext(ctx, "SELECT 7").Scan(&v)
		if err == nil {
			t.Fatalf("SELECT answered %d although its replay failed", v)
		}
		o.selectErr = err.Error()
		// The session goes on, on a backend that is clean again.
		failSET.Store(false)
		if err := c.QueryRowContext(ctx, "SELECT 8").Scan(&v); err != nil || v != 8 {
			t.Fatalf("SELECT 8 after the failure: %d, %v", v, err)
		}
		// Asked only now: the client may have had its error before the
		// double logged the SELECT written behind the failed replay.
		o.selectSent = len(fakeStatements(tp.fake, "SELECT 7")) > 0
		if n := tp.fake.Stats().Accepted; schemaCase && n != 1 {
			// After a 1049 the server keeps the connection: so does the
			// proxy, once it has read the rest of the batch.
			t.Errorf("the backend reconnected (%d connections) after a failed COM_INIT_DB", n)
		}
		return o
	}
	for _, schemaCase := range []bool{true, false} {
		name := "failed SET"
		if schemaCase {
			name = "failed COM_INIT_DB"
		}
		t.Run(name, func(t *testing.T) {
			serial := run(t, true, schemaCase)
			batched := run(t, false, schemaCase)
			if serial.selectSent {
				t.Errorf("one at a time, the SELECT was sent behind the failed replay")
			}
			if !batched.selectSent {
				t.Errorf("batched, the SELECT was not written with the replay")
			}
			if serial.insertErr != batched.insertErr || serial.selectErr != batched.selectErr {
				t.Errorf("errors differ: one at a time %+v, batched %+v", serial, batched)
			}
			t.Logf("INSERT: %s; SELECT: %s", batched.insertErr, batched.selectErr)
		})
	}
}

// TestDeferredBeginPrepared: sysbench prepares BEGIN and COMMIT and
// EXECUTEs them; those EXECUTEs are deferred and answered like the text
// statements.
func TestDeferredBeginPrepared(t *testing.T) {
	tp := startProxy(t, 1, 1, deferBegin)
	ctx := context.Background()
	c := openOne(t, tp, testDB)
	begin, err := c.PrepareContext(ctx, "BEGIN")
	if err != nil {
		t.Fatal(err)
	}
	commit, err := c.PrepareContext(ctx, "COMMIT")
	if err != nil {
		t.Fatal(err)
	}
	executes := func() int64 { return tp.fake.Stats().Commands[mysqlwire.ComStmtExecute] }
	before := executes()
	for i := 0; i < 3; i++ { // empty transactions: nothing reaches the server
		if _, err := begin.ExecContext(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := commit.ExecContext(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := executes() - before; n != 0 {
		t.Errorf("%d EXECUTEs of empty transactions reached the server, want 0", n)
	}
	if got := fakeStatements(tp.fake, "BEGIN"); len(got) != 0 {
		t.Errorf("the server heard BEGIN for empty transactions: %v", got)
	}
	if _, err := begin.ExecContext(ctx); err != nil {
		t.Fatal(err)
	}
	var inTx int
	if err := c.QueryRowContext(ctx, "SELECT @@in_transaction").Scan(&inTx); err != nil || inTx != 1 {
		t.Fatalf("@@in_transaction after a prepared BEGIN: %d, %v", inTx, err)
	}
	got := fakeStatements(tp.fake, "BEGIN", "SELECT @@in_transaction")
	if len(got) != 2 || got[0].SQL() != "BEGIN" || !got[1].Pipelined {
		t.Errorf("server heard %v, want BEGIN and the SELECT in one write", got)
	}
	if _, err := commit.ExecContext(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.QueryRowContext(ctx, "SELECT @@in_transaction").Scan(&inTx); err != nil || inTx != 0 {
		t.Fatalf("@@in_transaction after COMMIT: %d, %v", inTx, err)
	}
}

// TestDeferredBeginClientLeaves: a client that quits (or drops its
// connection) right after a deferred BEGIN leaves nothing behind: no
// backend was touched, the pin is gone with the session.
func TestDeferredBeginClientLeaves(t *testing.T) {
	tp := startProxy(t, 1, 1, deferBegin)
	before := tp.fake.Stats().Commands[mysqlwire.ComQuery]
	for _, quit := range []bool{true, false} {
		r := dialRaw(t, tp.addr)
		r.login(testUser, testPassword, mysqlwire.AuthNativePassword, 0)
		okOf(t, r.query("BEGIN"), r.hs.Capabilities)
		if n := tp.p.Stats().PinnedSessions; n != 1 {
			t.Fatalf("%d sessions pinned after a deferred BEGIN, want 1 (it counts as in a transaction)", n)
		}
		if quit {
			r.write(0, []byte{byte(mysqlwire.ComQuit)})
		}
		r.c.Close()
		waitFor(t, func() bool { return tp.p.Stats().PinnedSessions == 0 && tp.p.Stats().ClientsConnected == 0 })
	}
	if n := tp.fake.Stats().Commands[mysqlwire.ComQuery] - before; n != 0 {
		t.Errorf("%d COM_QUERYs reached the server, want none", n)
	}
	if n := tp.fake.Stats().Accepted; n != 1 {
		t.Errorf("%d backend connections, want the one", n)
	}
}
