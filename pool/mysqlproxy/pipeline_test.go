package mysqlproxy

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
	"github.com/scalestack/scalestack/internal/mysqlfake"
	"github.com/scalestack/scalestack/mysqlwire"
)

// pipeQuery is the pipeline-safe statement of these tests: the double
// answers it with "v<id>", slowly, so that the one backend stays busy and
// commands arriving meanwhile ride it.
const pipeQuery = "SELECT v FROM t WHERE id = "

// scriptPipeQuery teaches the double pipeQuery (text and prepared with ?)
// and a write, INSERT INTO t, that fails with 1792 as MariaDB's does when
// the connection's session is read-only.
func scriptPipeQuery(srv *mysqlfake.Server, delay time.Duration) {
	srv.OnFunc(func(sql string) bool { return strings.HasPrefix(sql, pipeQuery) }, func(q mysqlfake.Query) mysqlfake.Response {
		id := strings.TrimPrefix(q.SQL, pipeQuery)
		if q.Executing && len(q.Params) == 1 {
			id = fmt.Sprint(q.Params[0])
		}
		r := mysqlfake.Rows([]string{"v"}, []any{"v" + id})
		if q.Preparing {
			return r // a delay would script the PREPARE's failure
		}
		return r.After(delay)
	})
	srv.OnFunc(func(sql string) bool { return strings.HasPrefix(sql, "INSERT INTO t") }, func(q mysqlfake.Query) mysqlfake.Response {
		if q.Conn.State().Vars["tx_read_only"] == "1" {
			return mysqlfake.Fail(1792, "25006", "Cannot execute statement in a READ ONLY transaction")
		}
		return mysqlfake.Affected(1, 0).After(delay)
	})
}

// TestPipelineOrdering runs many sessions' SELECTs through one backend
// with pipelining on: every answer is its own session's, commands were
// pipelined (the counter and the depth histogram moved), the backend was
// made read-only first, and writes mixed in never met the read-only
// session (the double fails them with 1792 if they do): they were not
// pipelined and the read-write flag was replayed before them.
func TestPipelineOrdering(t *testing.T) {
	for _, prepared := range []bool{false, true} {
		t.Run(fmt.Sprintf("prepared=%v", prepared), func(t *testing.T) {
			tp := startProxy(t, 1, 1, func(c *Config) { c.PipelineDepth = 8 })
			scriptPipeQuery(tp.fake, 2*time.Millisecond)
			db := tp.open(t, "")
			db.SetMaxOpenConns(16)
			const clients, rounds = 16, 25
			var wg sync.WaitGroup
			errs := make(chan error, clients)
			for g := 0; g < clients; g++ {
				wg.Add(1)
				go func(g int) {
					defer wg.Done()
					errs <- pipeClient(db, g, rounds, prepared)
				}(g)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			st := tp.p.Stats()
			if st.Pipelined == 0 {
				t.Fatalf("nothing was pipelined: %+v", st)
			}
			var deep uint64
			for _, n := range st.PipelineDepth[1:] {
				deep += n
			}
			if deep == 0 || st.PipelineDepthSum < 2*st.Pipelined {
				t.Fatalf("depth histogram %v (sum %d) for %d pipelined", st.PipelineDepth, st.PipelineDepthSum, st.Pipelined)
			}
			sawRO := false
			for _, e := range tp.fake.Log() {
				if e.SQL() == readOnlySET {
					sawRO = true
				}
			}
			if !sawRO {
				t.Fatal("the backend was never made read-only before riders")
			}
			t.Logf("pipelined %d of %d questions", st.Pipelined, st.Questions)
		})
	}
}

// pipeClient runs rounds of pipeQuery on a connection of its own, with an
// INSERT every fifth round, and checks every answer.
func pipeClient(db *sql.DB, g, rounds int, prepared bool) error {
	ctx := context.Background()
	c, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	for i := 0; i < rounds; i++ {
		id := g*1000 + i
		var v string
		if prepared {
			err = c.QueryRowContext(ctx, pipeQuery+"?", id).Scan(&v)
		} else {
			err = c.QueryRowContext(ctx, pipeQuery+strconv.Itoa(id)).Scan(&v)
		}
		if err != nil {
			return fmt.Errorf("client %d round %d: %w", g, i, err)
		}
		if want := "v" + strconv.Itoa(id); v != want {
			return fmt.Errorf("client %d round %d: got %q, want %q (another session's answer)", g, i, v, want)
		}
		if i%5 == 4 {
			if _, err := c.ExecContext(ctx, "INSERT INTO t VALUES (1)"); err != nil {
				return fmt.Errorf("client %d round %d: INSERT: %w", g, i, err)
			}
		}
	}
	return nil
}

// TestPipelineNeverUnsafe holds the one backend with a slow SELECT that
// opens a pipeline, then sends statements that must never ride it: each
// waits for the backend instead (queued, not pipelined), and a safe
// SELECT sent then does ride.
func TestPipelineNeverUnsafe(t *testing.T) {
	unsafe := []string{
		"INSERT INTO t VALUES (1)",
		"UPDATE t SET v = 1",
		"DELETE FROM t",
		"SELECT v FROM t WHERE id = 1 FOR UPDATE",
		"SELECT v FROM t WHERE id = 1 LOCK IN SHARE MODE",
		"SELECT SLEEP(0)",
		"SELECT GET_LOCK('x', 0)",
		"SELECT LAST_INSERT_ID(7)",
		"SELECT v INTO @x FROM t",
		"SELECT @x := 1",
		"SELECT my_func(1)",
		"SELECT NEXTVAL(s)",
		"SHOW WARNINGS",
		"CALL p()",
	}
	tp := startProxy(t, 1, 1, func(c *Config) { c.PipelineDepth, c.PipelineMaxWait = 8, time.Hour })
	tp.fake.On("SELECT v FROM t WHERE id = 0", mysqlfake.Hang())
	for _, sql := range unsafe {
		tp.fake.On(sql, mysqlfake.OK())
	}
	tp.fake.On("SELECT v FROM t WHERE id = 9", mysqlfake.Rows([]string{"v"}, []any{"v9"}))
	holder := dialSlowClient(t, tp, 0)
	holder.write(0, append([]byte{byte(mysqlwire.ComQuery)}, "SELECT v FROM t WHERE id = 0"...))
	waitFor(t, func() bool { return tp.p.Stats().Questions == 1 })
	for i, sql := range unsafe {
		r := dialSlowClient(t, tp, 0)
		r.write(0, append([]byte{byte(mysqlwire.ComQuery)}, sql...))
		waitFor(t, func() bool { return tp.p.Stats().QueueWaiting == int64(i+1) })
		if st := tp.p.Stats(); st.Pipelined != 0 {
			t.Fatalf("%q was pipelined", sql)
		}
	}
	r := dialSlowClient(t, tp, 0)
	r.write(0, append([]byte{byte(mysqlwire.ComQuery)}, "SELECT v FROM t WHERE id = 9"...))
	waitFor(t, func() bool { return tp.p.Stats().Pipelined == 1 })
	if n := tp.p.Stats().QueueWaiting; n != int64(len(unsafe)) {
		t.Fatalf("%d waiting, want %d", n, len(unsafe))
	}
}

// TestPipelineBackendKilled breaks the backend in the middle of a
// pipeline: the riders before the break get their own answers, the one
// whose response had begun loses its connection, the ones behind it get
// ERR 9004 (their statements had not begun: nothing is re-run), and no
// session ever gets another's rows.
func TestPipelineBackendKilled(t *testing.T) {
	tp := startProxy(t, 1, 1, func(c *Config) { c.PipelineDepth, c.PipelineMaxWait = 8, time.Hour })
	scriptPipeQuery(tp.fake, 0)
	tp.fake.On(pipeQuery+"0", mysqlfake.Rows([]string{"v"}, []any{"v0"}).After(300*time.Millisecond))
	tp.fake.On(pipeQuery+"3", mysqlfake.Response{Result: &mysqlfake.ResultSet{
		Columns: []mysqlfake.Column{{Name: "v"}}, Rows: [][]any{{"v3"}, {"v3"}, {"v3"}, {"v3"}}},
		Drop: mysqlfake.DropMidResult})
	db := tp.open(t, "")
	db.SetMaxOpenConns(8)
	const n = 6
	conns := openConns(t, db, n)
	type result struct {
		v   string
		err error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var v string
			err := conns[i].QueryRowContext(context.Background(), pipeQuery+strconv.Itoa(i)).Scan(&v)
			results[i] = result{v, err}
		}(i)
		// In order: 0 is granted the backend, 1..5 ride it behind.
		waitFor(t, func() bool { return tp.p.Stats().Questions >= uint64(i+1) })
	}
	wg.Wait()
	if st := tp.p.Stats(); st.Pipelined != n-1 {
		t.Fatalf("%d pipelined, want %d", st.Pipelined, n-1)
	}
	for i, r := range results {
		switch {
		case i < 3:
			if r.err != nil || r.v != "v"+strconv.Itoa(i) {
				t.Errorf("statement %d before the break: %q, %v", i, r.v, r.err)
			}
		case i == 3:
			// Its response had begun: the client is closed (the driver
			// may have read the first row before it noticed).
			if r.err == nil && r.v != "v3" {
				t.Errorf("statement %d broke mid-result and got %q", i, r.v)
			}
		default:
			var me *mysql.MySQLError
			if !asMySQLError(r.err, &me) || me.Number != uint16(ErBackendLost) {
				t.Errorf("statement %d behind the break: %q, %v (want ERR %d)", i, r.v, r.err, ErBackendLost)
			}
		}
	}
	// The sessions behind the break stay usable.
	for i := 4; i < n; i++ {
		var v string
		if err := conns[i].QueryRowContext(context.Background(), pipeQuery+"7").Scan(&v); err != nil || v != "v7" {
			t.Errorf("session %d after the break: %q, %v", i, v, err)
		}
	}
}

func asMySQLError(err error, me **mysql.MySQLError) bool {
	e, ok := err.(*mysql.MySQLError)
	if ok {
		*me = e
	}
	return ok
}

// TestPipelineSlowReader puts a rider whose client does not read a big
// result in the middle of a pipeline: the backend pauses for it (nothing
// more is buffered), the riders behind it wait no longer than the client
// write timeout, after which the slow client is cut off, its response is
// read and dropped (the backend is not closed), and they get their own
// answers.
func TestPipelineSlowReader(t *testing.T) {
	const timeout = time.Second
	tp := startProxy(t, 1, 1, func(c *Config) {
		c.PipelineDepth, c.PipelineMaxWait = 8, time.Hour
		c.ClientWriteTimeout = timeout
	})
	scriptPipeQuery(tp.fake, 0)
	tp.fake.On(pipeQuery+"0", mysqlfake.Rows([]string{"v"}, []any{"v0"}).After(time.Second)) // long enough for the slow client to join on a loaded host
	tp.fake.On("SELECT big FROM t", bigResult())
	db := tp.open(t, "multiStatements=true")
	head, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer head.Close()
	// The slow client is in the same state as the others (schema,
	// character set, multi-statements), so it may ride with them.
	slow := dialSlowClient(t, tp, 4096)
	headDone := make(chan error, 1)
	go func() {
		var v string
		headDone <- head.QueryRowContext(context.Background(), pipeQuery+"0").Scan(&v)
	}()
	waitFor(t, func() bool { return tp.p.Stats().Questions == 1 })
	slow.write(0, append([]byte{byte(mysqlwire.ComQuery)}, "SELECT big FROM t"...))
	waitFor(t, func() bool { return tp.p.Stats().Pipelined == 1 })
	reconnects := tp.p.Stats().BackendReconnects
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for i := 1; i <= 2; i++ {
		c, err := db.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var v string
			err := c.QueryRowContext(context.Background(), pipeQuery+strconv.Itoa(i)).Scan(&v)
			if err == nil && v != "v"+strconv.Itoa(i) {
				err = fmt.Errorf("got %q", v)
			}
			errs <- err
		}(i)
		waitFor(t, func() bool { return tp.p.Stats().Pipelined == uint64(1+i) })
	}
	if err := <-headDone; err != nil {
		t.Fatalf("head: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("rider behind the slow reader: %v", err)
		}
	}
	waited := time.Since(start)
	// A loose bound (a loaded CI host is slow): far less than the 10 s
	// the fake's result takes to crawl to a 4 KiB-buffer client.
	if waited > 4*timeout+3*time.Second {
		t.Fatalf("riders behind the slow reader waited %v (client write timeout %v)", waited, timeout)
	}
	st := tp.p.Stats()
	if st.ClientWriteTimeouts != 1 {
		t.Fatalf("client write timeouts %d, want 1", st.ClientWriteTimeouts)
	}
	if st.BackendReconnects != reconnects {
		t.Fatalf("the backend was reconnected: its slow rider's response should have been drained")
	}
	t.Logf("riders waited %v behind the slow reader", waited)
}

// TestPipelineRiderStateChange: a rider whose statement the server reports
// as having changed session state (a stored function called through a
// view, say) cannot keep that state, which is on a backend serving
// others: its client is closed after its answer, the riders around it get
// theirs, and the backend is reset once drained rather than handed on.
func TestPipelineRiderStateChange(t *testing.T) {
	tp := startProxy(t, 1, 1, func(c *Config) { c.PipelineDepth, c.PipelineMaxWait = 8, time.Hour })
	scriptPipeQuery(tp.fake, 0)
	tp.fake.On(pipeQuery+"0", mysqlfake.Rows([]string{"v"}, []any{"v0"}).After(time.Second)) // long enough for the riders to join on a loaded host
	tp.fake.On(pipeQuery+"2", mysqlfake.Response{Result: &mysqlfake.ResultSet{
		Columns: []mysqlfake.Column{{Name: "v"}}, Rows: [][]any{{"v2"}}, Status: mysqlwire.StatusSessionStateChanged}})
	db := tp.open(t, "")
	const n = 4
	conns := openConns(t, db, n)
	resets := tp.p.Stats().BackendResets
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var v string
			err := conns[i].QueryRowContext(context.Background(), pipeQuery+strconv.Itoa(i)).Scan(&v)
			if err == nil && v != "v"+strconv.Itoa(i) {
				err = fmt.Errorf("got %q", v)
			}
			errs[i] = err
		}(i)
		waitFor(t, func() bool { return tp.p.Stats().Questions >= uint64(i+1) })
	}
	wg.Wait()
	if st := tp.p.Stats(); st.Pipelined != n-1 {
		t.Fatalf("%d pipelined, want %d", st.Pipelined, n-1)
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("statement %d: %v", i, err)
		}
	}
	waitFor(t, func() bool { return tp.p.Stats().BackendResets == resets+1 })
	var v string
	if err := conns[2].QueryRowContext(context.Background(), pipeQuery+"9").Scan(&v); err == nil {
		t.Fatalf("the session whose statement changed state is still open (got %q)", v)
	}
	for _, i := range []int{0, 1, 3} {
		if err := conns[i].QueryRowContext(context.Background(), pipeQuery+"9").Scan(&v); err != nil || v != "v9" {
			t.Errorf("session %d after: %q, %v", i, v, err)
		}
	}
}

// TestPipelineClosedWithItsConnection: a backend whose pipeline was open
// (a safe SELECT in flight, no rider yet) when its connection broke takes
// no rider after it reconnects and serves a command that cannot ride.
func TestPipelineClosedWithItsConnection(t *testing.T) {
	tp := startProxy(t, 1, 1, func(c *Config) { c.PipelineDepth = 8 })
	scriptPipeQuery(tp.fake, 0)
	tp.fake.On(pipeQuery+"0", mysqlfake.Hang())
	tp.fake.On("UPDATE t SET v = 1", mysqlfake.Affected(1, 0).After(300*time.Millisecond))
	db := tp.open(t, "")
	ctx := context.Background()
	conns := openConns(t, db, 3)
	headDone := make(chan error, 1)
	go func() {
		var v string
		headDone <- conns[0].QueryRowContext(ctx, pipeQuery+"0").Scan(&v)
	}()
	waitFor(t, func() bool { return tp.p.Stats().Questions == 1 })
	reconnects := tp.p.Stats().BackendReconnects
	for _, c := range tp.fake.Conns() {
		c.Kill()
	}
	if err := <-headDone; err == nil {
		t.Fatal("the head statement survived its backend")
	}
	waitFor(t, func() bool { return tp.p.Stats().BackendReconnects > reconnects })
	updateDone := make(chan error, 1)
	go func() {
		_, err := conns[1].ExecContext(ctx, "UPDATE t SET v = 1")
		updateDone <- err
	}()
	waitFor(t, func() bool { return tp.p.Stats().Questions == 2 })
	var v string
	if err := conns[2].QueryRowContext(ctx, pipeQuery+"5").Scan(&v); err != nil || v != "v5" {
		t.Fatalf("SELECT after the UPDATE: %q, %v", v, err)
	}
	if err := <-updateDone; err != nil {
		t.Fatalf("UPDATE: %v", err)
	}
	if n := tp.p.Stats().Pipelined; n != 0 {
		t.Fatalf("%d pipelined onto a backend serving an UPDATE", n)
	}
}

// TestPipelineNotBehindLongStatement: a statement that has run longer
// than Config.PipelineMaxWait takes no more riders behind it (they would
// wait for it); one that has just started does.
func TestPipelineNotBehindLongStatement(t *testing.T) {
	tp := startProxy(t, 1, 1, func(c *Config) { c.PipelineDepth, c.PipelineMaxWait = 8, 100*time.Millisecond })
	scriptPipeQuery(tp.fake, 0)
	tp.fake.On(pipeQuery+"0", mysqlfake.Rows([]string{"v"}, []any{"v0"}).After(time.Second))
	db := tp.open(t, "")
	ctx := context.Background()
	conns := openConns(t, db, 3)
	errs := make(chan error, 3)
	query := func(i int) {
		var v string
		err := conns[i].QueryRowContext(ctx, pipeQuery+strconv.Itoa(i)).Scan(&v)
		if err == nil && v != "v"+strconv.Itoa(i) {
			err = fmt.Errorf("statement %d got %q", i, v)
		}
		errs <- err
	}
	go query(0)
	waitFor(t, func() bool { return tp.p.Stats().Questions == 1 })
	go query(1) // at once: it rides
	waitFor(t, func() bool { return tp.p.Stats().Pipelined == 1 })
	time.Sleep(300 * time.Millisecond)
	go query(2) // the head has run 300 ms: it waits for the backend
	waitFor(t, func() bool { return tp.p.Stats().QueueWaiting == 1 })
	time.Sleep(100 * time.Millisecond)
	if n := tp.p.Stats().Pipelined; n != 1 {
		t.Fatalf("%d pipelined behind a statement running for 400 ms, want 1", n)
	}
	// (Once the long one is done, the waiting one may ride behind the
	// first rider.)
	for i := 0; i < 3; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestPipelineWritesNotStarved keeps the one backend busy with a closed
// loop of pipeline-safe SELECTs from many clients while another client
// sends UPDATEs, which cannot ride: each UPDATE gets the backend well
// within the queue timeout (a pipeline that took riders for ever would
// never give the backend back).
func TestPipelineWritesNotStarved(t *testing.T) {
	tp := startProxy(t, 1, 1, func(c *Config) {
		c.PipelineDepth = 4
		c.QueueTimeout = 5 * time.Second
	})
	scriptPipeQuery(tp.fake, time.Millisecond)
	tp.fake.On("UPDATE t SET v = 1", mysqlfake.Affected(1, 0))
	db := tp.open(t, "")
	db.SetMaxOpenConns(17)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				var v string
				_ = db.QueryRowContext(ctx, pipeQuery+strconv.Itoa(g*100000+i)).Scan(&v)
			}
		}(g)
	}
	waitFor(t, func() bool { return tp.p.Stats().Pipelined > 100 })
	for i := 0; i < 5; i++ {
		start := time.Now()
		if _, err := db.ExecContext(context.Background(), "UPDATE t SET v = 1"); err != nil {
			t.Errorf("UPDATE %d under pipelined load: %v", i, err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("UPDATE %d waited %v", i, d)
		}
	}
	cancel()
	wg.Wait()
	t.Logf("pipelined %d", tp.p.Stats().Pipelined)
}

// openConns takes n connections of db's pool, closed when the test ends.
func openConns(t *testing.T, db *sql.DB, n int) []*sql.Conn {
	t.Helper()
	conns := make([]*sql.Conn, n)
	for i := range conns {
		c, err := db.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
		t.Cleanup(func() { c.Close() })
	}
	return conns
}
