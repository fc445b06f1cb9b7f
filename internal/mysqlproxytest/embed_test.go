package mysqlproxytest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/scalestack/scalestack/mysqlwire"
	"github.com/scalestack/scalestack/pool/mysqlproxy"
	"github.com/scalestack/scalestack/reactor"
)

// embedResult is what an embedded request answered.
type embedResult struct {
	cols     []string
	types    []mysqlwire.FieldType
	rows     [][]string
	affected uint64
	lastID   uint64
	err      error
}

// collectSink gathers a response; with pauseEvery it pauses after every
// so many rows and resumes from a timer (a slow consumer).
type collectSink struct {
	res        embedResult
	decimals   []uint8
	pauseEvery int
	pauses     int
	cancelAt   int // cancel after this many rows (0: never)
	loop       *reactor.Loop
	resume     reactor.Timer
	done       chan embedResult
}

func (s *collectSink) Column(r *mysqlproxy.Request, i int, def *mysqlwire.ColumnDefinition) {
	s.res.cols = append(s.res.cols, string(def.Name))
	s.res.types = append(s.res.types, def.Type)
	s.decimals = append(s.decimals, def.Decimals)
}

func (s *collectSink) Row(r *mysqlproxy.Request, row *mysqlproxy.Row) bool {
	out := make([]string, row.Len())
	for i := range out {
		v, err := row.Next()
		if err != nil {
			out[i] = "ERROR " + err.Error()
			continue
		}
		out[i] = binaryValueText(v, s.decimals[i])
	}
	s.res.rows = append(s.res.rows, out)
	if s.cancelAt > 0 && len(s.res.rows) == s.cancelAt {
		r.Cancel()
		s.done <- s.res
		return true
	}
	if s.pauseEvery > 0 && len(s.res.rows)%s.pauseEvery == 0 {
		s.pauses++
		s.resume.Func = func(any) { r.Resume() }
		s.loop.Schedule(&s.resume, time.Millisecond)
		return false
	}
	return true
}

func (s *collectSink) Done(r *mysqlproxy.Request, err error) {
	s.res.affected, s.res.lastID, s.res.err = r.AffectedRows(), r.LastInsertID(), err
	s.done <- s.res
}

// embedRun runs sql with params through the embedding API on loop li.
func embedRun(t *testing.T, tp *testProxy, li int, sink *collectSink, account, schema, sql string, params ...mysqlwire.Value) embedResult {
	t.Helper()
	l := tp.eng.Loops()[li]
	sink.loop = l
	sink.done = make(chan embedResult, 2)
	var prepErr error
	if err := l.Exec(func(*reactor.Loop) {
		st, err := tp.p.PrepareStmt(l, schema, sql)
		if err != nil {
			prepErr = err
			return
		}
		r := &mysqlproxy.Request{Account: account, Stmt: st, Params: params, Sink: sink}
		r.Start()
	}); err != nil {
		t.Fatal(err)
	}
	if prepErr != nil {
		return embedResult{err: prepErr}
	}
	select {
	case res := <-sink.done:
		return res
	case <-time.After(15 * time.Second):
		t.Fatalf("%s: no answer", sql)
		return embedResult{}
	}
}

func sqlCode(err error) mysqlwire.ErrCode {
	var e *mysqlproxy.SQLError
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

func str(s string) mysqlwire.Value {
	return mysqlwire.Value{Type: mysqlwire.TypeVarString, Bytes: []byte(s)}
}
func i64(n int64) mysqlwire.Value { return mysqlwire.Value{Type: mysqlwire.TypeLongLong, Int: n} }

// TestEmbeddedStatements runs statements through the embedding API and
// checks their answers: rows with their types, OK packets, the server's
// errors with code and SQLSTATE, the proxy's refusals.
func TestEmbeddedStatements(t *testing.T) {
	tp := startProxy(t, 2, 2, nil)
	direct := tp.direct(t)
	mustExec(t, direct, "DROP TABLE IF EXISTS embed_t")
	mustExec(t, direct, "CREATE TABLE embed_t (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20) NOT NULL UNIQUE, "+
		"n BIGINT UNSIGNED, d DECIMAL(6,2), f DOUBLE, at DATETIME(3), b BLOB)")
	t.Cleanup(func() { direct.Exec("DROP TABLE IF EXISTS embed_t") })

	res := embedRun(t, tp, 0, &collectSink{}, testUser, testDB,
		"INSERT INTO embed_t (name, n, d, f, at, b) VALUES (?, ?, ?, ?, ?, ?)",
		str("one"), mysqlwire.Value{Type: mysqlwire.TypeLongLong, Unsigned: true, Uint: 1 << 63},
		str("12.5"), mysqlwire.Value{Type: mysqlwire.TypeDouble, Float: 0.25}, str("2026-12-06 10:11:12.345"),
		mysqlwire.Value{Type: mysqlwire.TypeBlob, Bytes: []byte{0, 1, 2}})
	if res.err != nil || res.affected != 1 || res.lastID != 1 {
		t.Fatalf("INSERT: %+v", res)
	}
	res = embedRun(t, tp, 1, &collectSink{}, testUser, testDB, "SELECT id, name, n, d, f, at, b, NULL AS z FROM embed_t WHERE name = ?", str("one"))
	want := [][]string{{"1", "one", "9223372036854775808", "12.50", "0.25", "2026-12-06 10:11:12.345", "\x00\x01\x02", "NULL"}}
	if res.err != nil || fmt.Sprint(res.rows) != fmt.Sprint(want) || strings.Join(res.cols, ",") != "id,name,n,d,f,at,b,z" {
		t.Fatalf("SELECT: %+v, want rows %q", res, want)
	}
	if res.types[0] != mysqlwire.TypeLong || res.types[2] != mysqlwire.TypeLongLong || res.types[3] != mysqlwire.TypeNewDecimal {
		t.Fatalf("column types %v", res.types)
	}

	cases := []struct {
		name, sql string
		params    []mysqlwire.Value
		code      mysqlwire.ErrCode
		state     string
	}{
		{"duplicate key", "INSERT INTO embed_t (name) VALUES (?)", []mysqlwire.Value{str("one")}, 1062, "23000"},
		{"missing table", "SELECT * FROM embed_missing WHERE id = ?", []mysqlwire.Value{i64(1)}, 1146, "42S02"},
		{"syntax", "SELECT * FROM WHERE", nil, 1064, "42000"},
		{"wrong parameter count", "SELECT ?", nil, 1210, "HY000"},
		{"transaction", "BEGIN", nil, mysqlproxy.ErUnsupported, "0A000"},
		{"commit", "COMMIT", nil, mysqlproxy.ErUnsupported, "0A000"},
		{"SET", "SET @@session.time_zone = '+01:00'", nil, mysqlproxy.ErUnsupported, "0A000"},
		{"user variable", "SELECT @x := 1", nil, mysqlproxy.ErUnsupported, "0A000"},
		{"GET_LOCK", "SELECT GET_LOCK('embed', 1)", nil, mysqlproxy.ErUnsupported, "0A000"},
		{"two statements", "SELECT 1; SELECT 2", nil, mysqlproxy.ErUnsupported, "0A000"},
		{"CALL", "CALL p()", nil, mysqlproxy.ErUnsupported, "0A000"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := embedRun(t, tp, 0, &collectSink{}, testUser, testDB, c.sql, c.params...)
			var e *mysqlproxy.SQLError
			if !errors.As(res.err, &e) || e.Code != c.code || e.SQLState != c.state {
				t.Fatalf("got %v, want %d (%s)", res.err, c.code, c.state)
			}
		})
	}
	if res := embedRun(t, tp, 0, &collectSink{}, "nobody", testDB, "SELECT 1"); sqlCode(res.err) != mysqlwire.ErAccessDenied {
		t.Fatalf("unknown account: %v", res.err)
	}
	// After all that, the backends still serve.
	if res := embedRun(t, tp, 0, &collectSink{}, testUser, testDB, "SELECT COUNT(*) FROM embed_t"); res.err != nil || res.rows[0][0] != "1" {
		t.Fatalf("after errors: %+v", res)
	}
}

// TestEmbeddedStateIsolation: an embedded statement on a backend a session
// left in its own state (schema, time zone, character set) runs in the
// embedded state, and the session finds its state again afterwards.
func TestEmbeddedStateIsolation(t *testing.T) {
	tp := startProxy(t, 1, 1, nil)
	db := tp.open(t, "")
	db.SetMaxOpenConns(1)
	mustExec(t, db, "SET time_zone = '+05:00'")
	mustExec(t, db, "SET NAMES latin1")
	mustExec(t, db, "USE information_schema")

	// In a schema: COM_INIT_DB and a SET bring the backend to the
	// embedded state.
	res := embedRun(t, tp, 0, &collectSink{}, testUser, testDB, "SELECT DATABASE(), @@time_zone, @@character_set_client")
	if res.err != nil || fmt.Sprint(res.rows) != "[["+testDB+" SYSTEM utf8mb4]]" {
		t.Fatalf("with schema: %+v", res)
	}
	mustExec(t, db, "SELECT 1") // the session's state back on the backend
	// Without a schema: COM_CHANGE_USER.
	res = embedRun(t, tp, 0, &collectSink{}, testUser, "", "SELECT DATABASE(), @@time_zone, @@character_set_client")
	if res.err != nil || fmt.Sprint(res.rows) != "[[NULL SYSTEM utf8mb4]]" {
		t.Fatalf("no schema: %+v", res)
	}
	var schema, tz, cs string
	if err := db.QueryRow("SELECT DATABASE(), @@time_zone, @@character_set_client").Scan(&schema, &tz, &cs); err != nil {
		t.Fatal(err)
	}
	if schema != "information_schema" || tz != "+05:00" || cs != "latin1" {
		t.Fatalf("session state after embedded statements: %s %s %s", schema, tz, cs)
	}
	// A statement whose server-side effects would leak (a function that
	// sets a user variable) is followed by a reset: the next user of the
	// backend does not see them.
	before := tp.p.Stats().BackendResets
	direct := tp.direct(t)
	mustExec(t, direct, "DROP FUNCTION IF EXISTS embed_leak")
	mustExec(t, direct, "CREATE FUNCTION embed_leak() RETURNS INT NOT DETERMINISTIC BEGIN SET @leak = 42; RETURN 1; END")
	t.Cleanup(func() { direct.Exec("DROP FUNCTION IF EXISTS embed_leak") })
	if res := embedRun(t, tp, 0, &collectSink{}, testUser, testDB, "SELECT embed_leak()"); res.err != nil {
		t.Fatal(res.err)
	}
	if tp.p.Stats().BackendResets == before {
		t.Fatal("the backend was not reset after a statement that changed session state")
	}
	if res := embedRun(t, tp, 0, &collectSink{}, testUser, testDB, "SELECT COALESCE(CAST(@leak AS CHAR), 'none')"); res.err == nil {
		t.Fatalf("a user variable read was not refused: %+v", res)
	}
	var leak string
	if err := db.QueryRow("SELECT COALESCE(CAST(@leak AS CHAR), 'none')").Scan(&leak); err != nil || leak != "none" {
		t.Fatalf("a session sees the embedded statement's user variable: %q %v", leak, err)
	}
}

// TestEmbeddedStreaming reads a large result through a sink that pauses
// every 100 rows, one that cancels half way, and many requests at once
// on one backend (they queue).
func TestEmbeddedStreaming(t *testing.T) {
	tp := startProxy(t, 1, 2, nil)
	sink := &collectSink{pauseEvery: 100}
	res := embedRun(t, tp, 0, sink, testUser, testDB, "SELECT seq, REPEAT('x', 100) FROM seq_1_to_20000 WHERE seq >= ?", i64(1))
	if res.err != nil || len(res.rows) != 20000 || res.rows[19999][0] != "20000" || sink.pauses < 199 {
		t.Fatalf("paused stream: %v, %d rows, %d pauses", res.err, len(res.rows), sink.pauses)
	}
	prepares := tp.p.Stats().BackendPrepares
	res = embedRun(t, tp, 1, &collectSink{cancelAt: 10}, testUser, testDB, "SELECT seq FROM seq_1_to_100000 WHERE seq >= ?", i64(1))
	if len(res.rows) != 10 {
		t.Fatalf("canceled: %d rows", len(res.rows))
	}
	tp.waitBackends(t, 1) // the canceled one reconnects
	res = embedRun(t, tp, 0, &collectSink{}, testUser, testDB, "SELECT seq, REPEAT('x', 100) FROM seq_1_to_20000 WHERE seq >= ?", i64(19999))
	if res.err != nil || len(res.rows) != 2 {
		t.Fatalf("after cancel: %+v", res)
	}

	// Many requests from both loops at once share the one backend.
	const n = 40
	done := make(chan embedResult, n)
	for i := range n {
		l := tp.eng.Loops()[i%2]
		sink := &collectSink{done: done, loop: l}
		if err := l.Exec(func(*reactor.Loop) {
			st, err := tp.p.PrepareStmt(l, testDB, "SELECT ? + 1")
			if err != nil {
				done <- embedResult{err: err}
				return
			}
			r := &mysqlproxy.Request{Account: testUser, Stmt: st, Params: []mysqlwire.Value{i64(int64(i))}, Sink: sink}
			r.Start()
		}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for range n {
		select {
		case res := <-done:
			if res.err != nil || len(res.rows) != 1 {
				t.Fatalf("queued request: %+v", res)
			}
			seen[res.rows[0][0]] = true
		case <-time.After(15 * time.Second):
			t.Fatal("queued requests did not all finish")
		}
	}
	if len(seen) != n {
		t.Fatalf("%d distinct answers of %d", len(seen), n)
	}
	if s := tp.p.Stats(); s.BackendPrepares-prepares > 6 {
		t.Fatalf("%d prepares for repeated statements: the backend's statement cache was not used", s.BackendPrepares-prepares)
	}
}
