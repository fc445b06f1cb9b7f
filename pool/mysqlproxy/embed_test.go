package mysqlproxy

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/scalestack/scalestack/internal/mysqlfake"
	"github.com/scalestack/scalestack/mysqlwire"
	"github.com/scalestack/scalestack/reactor"
)

// The embedding API against the in-process double: what reaches the server
// (one PREPARE per backend, then EXECUTEs), resets after reported state
// changes and errors, a response cut short, a queue timeout. The same API
// against MariaDB is tested in internal/mysqlproxytest.

type embedOutcome struct {
	rows     []string
	affected uint64
	err      error
}

type chanSink struct {
	rows []string
	done chan embedOutcome
}

func (s *chanSink) Column(*Request, int, *mysqlwire.ColumnDefinition) {}

func (s *chanSink) Row(r *Request, row *Row) bool {
	var parts []string
	for range row.Len() {
		v, err := row.Next()
		if err != nil {
			parts = append(parts, "ERR")
			continue
		}
		parts = append(parts, string(v.Bytes))
	}
	s.rows = append(s.rows, strings.Join(parts, ","))
	return true
}

func (s *chanSink) Done(r *Request, err error) {
	s.done <- embedOutcome{rows: s.rows, affected: r.AffectedRows(), err: err}
}

// embedStart starts sql on loop 0 and returns the channel its outcome
// comes on (and the request, to cancel it).
func embedStart(t *testing.T, tp *testProxy, sql string, params ...mysqlwire.Value) (chan embedOutcome, *Request) {
	t.Helper()
	l := tp.eng.Loops()[0]
	sink := &chanSink{done: make(chan embedOutcome, 1)}
	r := &Request{Account: testUser, Params: params, Sink: sink}
	var perr error
	if err := l.Exec(func(*reactor.Loop) {
		st, err := tp.p.PrepareStmt(l, testDB, sql)
		if err != nil {
			perr = err
			return
		}
		r.Stmt = st
		r.Start()
	}); err != nil {
		t.Fatal(err)
	}
	if perr != nil {
		sink.done <- embedOutcome{err: perr}
	}
	return sink.done, r
}

func embedWait(t *testing.T, ch chan embedOutcome) embedOutcome {
	t.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(10 * time.Second):
		t.Fatal("no outcome")
		return embedOutcome{}
	}
}

func codeOf(err error) mysqlwire.ErrCode {
	var e *SQLError
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

func TestEmbeddedAgainstDouble(t *testing.T) {
	tp := startProxy(t, 1, 1, func(c *Config) { c.QueueTimeout = 200 * time.Millisecond })
	fake := tp.fake
	fake.OnFunc(func(sql string) bool { return strings.HasPrefix(sql, "SELECT v FROM kv") }, func(q mysqlfake.Query) mysqlfake.Response {
		if q.Preparing {
			return mysqlfake.Rows([]string{"v"})
		}
		return mysqlfake.Rows([]string{"v"}, []any{fmt.Sprint("value of ", q.Params[0])})
	})
	fake.OnFunc(func(sql string) bool { return strings.HasPrefix(sql, "UPDATE kv") }, func(q mysqlfake.Query) mysqlfake.Response {
		if q.Preparing {
			return mysqlfake.OK()
		}
		return mysqlfake.Response{OK: &mysqlfake.OKResult{AffectedRows: 1, SessionState: []mysqlfake.SessionChange{mysqlfake.StateChange()}}}
	})
	fake.OnFunc(func(sql string) bool { return strings.HasPrefix(sql, "DELETE FROM kv") }, func(q mysqlfake.Query) mysqlfake.Response {
		if q.Preparing {
			return mysqlfake.OK()
		}
		return mysqlfake.Fail(1213, "40001", "Deadlock found when trying to get lock")
	})
	fake.OnFunc(func(sql string) bool { return strings.HasPrefix(sql, "SELECT big") }, func(q mysqlfake.Query) mysqlfake.Response {
		rs := mysqlfake.Rows([]string{"v"}, []any{"a"}, []any{"b"}, []any{"c"}, []any{"d"})
		if !q.Preparing {
			rs.Drop = mysqlfake.DropMidResult
		}
		return rs
	})
	fake.OnFunc(func(sql string) bool { return strings.HasPrefix(sql, "SELECT slow") }, func(q mysqlfake.Query) mysqlfake.Response {
		if q.Preparing {
			return mysqlfake.Rows([]string{"v"})
		}
		return mysqlfake.Hang()
	})
	key := mysqlwire.Value{Type: mysqlwire.TypeVarString, Bytes: []byte("k1")}

	before := fake.Stats().Commands
	for range 5 {
		o := embedWait(t, must(embedStart(t, tp, "SELECT v FROM kv WHERE k = ?", key)))
		if o.err != nil || len(o.rows) != 1 || o.rows[0] != "value of k1" {
			t.Fatalf("select: %+v", o)
		}
	}
	after := fake.Stats().Commands
	if got := tp.p.UserStats(); len(got) == 0 || !func() bool {
		for _, u := range got {
			if u.User == testUser {
				return u.Commands == 5
			}
		}
		return false
	}() {
		t.Fatalf("the account's commands: %+v", got)
	}
	if p, e := after[mysqlwire.ComStmtPrepare]-before[mysqlwire.ComStmtPrepare], after[mysqlwire.ComStmtExecute]-before[mysqlwire.ComStmtExecute]; p != 1 || e != 5 {
		t.Fatalf("%d prepares and %d executes for 5 runs: want 1 and 5", p, e)
	}

	resets := tp.p.Stats().BackendResets
	if o := embedWait(t, must(embedStart(t, tp, "UPDATE kv SET v = ? WHERE k = 'x'", key))); o.err != nil || o.affected != 1 {
		t.Fatalf("update: %+v", o)
	}
	if got := tp.p.Stats().BackendResets; got != resets+1 {
		t.Fatalf("a reported state change was not followed by a reset (%d resets)", got-resets)
	}
	o := embedWait(t, must(embedStart(t, tp, "DELETE FROM kv WHERE k = ?", key)))
	var e *SQLError
	if !errors.As(o.err, &e) || e.Code != 1213 || e.SQLState != "40001" || !strings.Contains(e.Message, "Deadlock") {
		t.Fatalf("delete: %+v", o)
	}
	if got := tp.p.Stats().BackendResets; got != resets+2 {
		t.Fatalf("an ERR was not followed by a reset")
	}

	if o := embedWait(t, must(embedStart(t, tp, "SELECT big FROM kv WHERE k = ?", key))); codeOf(o.err) != ErBackendLost {
		t.Fatalf("a result cut short: %+v", o)
	}
	tp.waitBackends(t, 1)

	// One backend, held by a statement that never answers: the next
	// request waits its queue timeout; canceling the first closes its
	// backend, which reconnects and serves again.
	slow, slowReq := embedStart(t, tp, "SELECT slow FROM kv WHERE k = ?", key)
	if o := embedWait(t, must(embedStart(t, tp, "SELECT v FROM kv WHERE k = ?", key))); codeOf(o.err) != ErQueueTimeout {
		t.Fatalf("while the backend is held: %+v", o)
	}
	if err := tp.eng.Loops()[0].Exec(func(*reactor.Loop) { slowReq.Cancel() }); err != nil {
		t.Fatal(err)
	}
	select {
	case o := <-slow:
		t.Fatalf("a canceled request reported: %+v", o)
	case <-time.After(100 * time.Millisecond):
	}
	tp.waitBackends(t, 1)
	if o := embedWait(t, must(embedStart(t, tp, "SELECT v FROM kv WHERE k = ?", key))); o.err != nil {
		t.Fatalf("after the cancel: %+v", o)
	}
}

func must(ch chan embedOutcome, _ *Request) chan embedOutcome { return ch }
