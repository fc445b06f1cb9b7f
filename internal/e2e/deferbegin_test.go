package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"testing"
	"time"
)

// rawOK sends sql as COM_QUERY and returns the one packet answering it,
// which must be an OK.
func rawOK(c *rawConn, sql string) ([]byte, error) {
	if err := c.writeCommand(comQuery, []byte(sql)); err != nil {
		return nil, err
	}
	p, err := c.readPacket()
	if err != nil {
		return nil, err
	}
	if len(p) == 0 || p[0] != 0x00 {
		if len(p) > 0 && p[0] == 0xff {
			return nil, parseErr(p)
		}
		return nil, fmt.Errorf("%s: want an OK, got %x", sql, p)
	}
	return p, nil
}

// TestDeferredBeginWire: with --defer-begin (the default) the proxy answers
// a plain BEGIN, START TRANSACTION or BEGIN WORK, and the COMMIT or
// ROLLBACK of a transaction that ran nothing, with the very OK packet
// MariaDB sends (status flags, warnings, and the session-tracking layout
// for a client that asked for CLIENT_SESSION_TRACK), and a transaction's
// statements see @@in_transaction and the status flags as on a direct
// connection.
func TestDeferredBeginWire(t *testing.T) {
	p := startProxy(t, proxyOptions{backendConns: 2})
	for _, track := range []bool{false, true} {
		o := rawOptions{db: dataSchema, sessionTrack: track}
		direct, err := dialRaw(srv.addr, srv.serviceUser, srv.servicePassword, o)
		if err != nil {
			t.Fatal(err)
		}
		defer direct.Close()
		proxied, err := dialRaw(p.addr, clientUser, clientPassword, o)
		if err != nil {
			t.Fatal(err)
		}
		defer proxied.Close()
		if (direct.hello.caps&capSessionTrack != 0) != (proxied.hello.caps&capSessionTrack != 0) {
			t.Fatalf("CLIENT_SESSION_TRACK offered: direct %v, proxy %v", direct.hello.caps&capSessionTrack != 0, proxied.hello.caps&capSessionTrack != 0)
		}
		for _, tc := range []struct{ begin, end string }{
			{"BEGIN", "COMMIT"}, {"START TRANSACTION", "ROLLBACK"}, {"BEGIN WORK", "COMMIT WORK"}, {"begin;", "rollback work"},
		} {
			for _, step := range []string{tc.begin, tc.end} {
				want, err := rawOK(direct, step)
				if err != nil {
					t.Fatalf("direct %s: %v", step, err)
				}
				got, err := rawOK(proxied, step)
				if err != nil {
					t.Fatalf("proxy %s: %v", step, err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("track=%v %s: proxy answered %x, MariaDB %x", track, step, got, want)
				}
			}
			// A transaction that runs a statement: the statement sees it.
			for _, c := range []*rawConn{direct, proxied} {
				if _, err := rawOK(c, tc.begin); err != nil {
					t.Fatal(err)
				}
			}
			for _, sql := range []string{"SELECT @@in_transaction", "SELECT COUNT(*) FROM big WHERE id < 10"} {
				want, err := direct.query(sql)
				if err != nil {
					t.Fatal(err)
				}
				got, err := proxied.query(sql)
				if err != nil {
					t.Fatalf("proxy %s: %v", sql, err)
				}
				if rowsText(got[0].rows) != rowsText(want[0].rows) || len(got[0].rows) != 1 {
					t.Errorf("track=%v %s: proxy %s, MariaDB %s", track, sql, rowsText(got[0].rows), rowsText(want[0].rows))
				}
				const inTrans, autocommit = 1, 2
				if g, w := got[0].status&(inTrans|autocommit), want[0].status&(inTrans|autocommit); g != w || g&inTrans == 0 {
					t.Errorf("track=%v %s: status %#x through the proxy, %#x direct", track, sql, g, w)
				}
			}
			for _, c := range []*rawConn{direct, proxied} {
				if _, err := rawOK(c, tc.end); err != nil {
					t.Fatal(err)
				}
			}
		}
		// Prepared BEGIN and COMMIT, EXECUTEd (sysbench's way).
		var ids [2][2]uint32 // [direct, proxied][BEGIN, COMMIT]
		for i, c := range []*rawConn{direct, proxied} {
			for j, text := range []string{"BEGIN", "COMMIT"} {
				if ids[i][j], _, err = c.prepare(text); err != nil {
					t.Fatalf("prepare %s: %v", text, err)
				}
			}
		}
		for round := 0; round < 2; round++ {
			for j := range 2 {
				want, err := rawExecOK(direct, ids[0][j])
				if err != nil {
					t.Fatal(err)
				}
				got, err := rawExecOK(proxied, ids[1][j])
				if err != nil {
					t.Fatalf("proxy: %v", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("track=%v prepared statement %d: proxy answered %x, MariaDB %x", track, j, got, want)
				}
			}
		}
	}
}

// rawExecOK EXECUTEs the parameterless prepared statement id and returns
// the one packet answering it, which must be an OK.
func rawExecOK(c *rawConn, id uint32) ([]byte, error) {
	arg := binary.LittleEndian.AppendUint32(nil, id)
	arg = append(arg, 0)                           // no cursor
	arg = binary.LittleEndian.AppendUint32(arg, 1) // iteration count
	if err := c.writeCommand(comStmtExecute, arg); err != nil {
		return nil, err
	}
	p, err := c.readPacket()
	if err != nil {
		return nil, err
	}
	if len(p) == 0 || p[0] != 0x00 {
		return nil, fmt.Errorf("EXECUTE %d: want an OK, got %x", id, p)
	}
	return p, nil
}

func rowsText(rows [][]*string) string {
	var b bytes.Buffer
	for _, r := range rows {
		for _, v := range r {
			if v == nil {
				b.WriteString("NULL ")
			} else {
				b.WriteString(*v + " ")
			}
		}
	}
	return b.String()
}

// TestDeferredBeginNeedsNoBackend: a transaction that runs nothing takes
// no backend: BEGIN and COMMIT, as text or prepared and EXECUTEd, are
// answered at once while the only backend
// is pinned by another client's transaction (a command that needed one
// would wait out --queue-timeout).
func TestDeferredBeginNeedsNoBackend(t *testing.T) {
	p := startProxy(t, proxyOptions{backendConns: 1, queueTimeout: 2 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// sysbench's way: BEGIN and COMMIT prepared (before the backend is
	// taken), then EXECUTEd.
	prepared, err := openProxyDB(t, p.addr, dataSchema, nil).Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer prepared.Close()
	var stmts []*sql.Stmt
	for _, text := range []string{"BEGIN", "COMMIT"} {
		st, err := prepared.PrepareContext(ctx, text)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		stmts = append(stmts, st)
	}
	holder := openProxyDB(t, p.addr, dataSchema, nil)
	tx, err := holder.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var one int
	if err := tx.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatal(err) // the only backend is pinned from here on
	}
	c, err := dialRaw(p.addr, clientUser, clientPassword, rawOptions{db: dataSchema})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	for i := 0; i < 20; i++ {
		for _, step := range []string{"BEGIN", "COMMIT", "START TRANSACTION", "ROLLBACK"} {
			if _, err := rawOK(c, step); err != nil {
				t.Fatalf("%s while the only backend is pinned: %v", step, err)
			}
		}
	}
	for i := 0; i < 20; i++ {
		for _, st := range stmts {
			if _, err := st.ExecContext(ctx); err != nil {
				t.Fatalf("prepared BEGIN/COMMIT while the only backend is pinned: %v", err)
			}
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("120 transaction statements took %v with no backend free", d)
	}
}

// TestDeferredBeginTransactions: sysbench-like read-only transactions
// (BEGIN, prepared and text SELECTs, COMMIT) through go-sql-driver give
// what the same transactions give on a direct connection, with the
// transaction visible to them; and writes in a deferred transaction are
// rolled back and committed as they should be.
func TestDeferredBeginTransactions(t *testing.T) {
	p := startProxy(t, proxyOptions{backendConns: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	direct, err := sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(%s)/%s", srv.serviceUser, srv.servicePassword, srv.addr, dataSchema))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	proxied := openProxyDB(t, p.addr, dataSchema, nil)
	proxied.SetMaxOpenConns(4)
	type outcome struct {
		inTx   int
		point  string
		rangeN int
		sum    int64
	}
	run := func(db *sql.DB, i int) (outcome, error) {
		var o outcome
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return o, err
		}
		defer tx.Rollback()
		if err := tx.QueryRowContext(ctx, "SELECT @@in_transaction").Scan(&o.inTx); err != nil {
			return o, err
		}
		id := 1 + i*37%1000
		if err := tx.QueryRowContext(ctx, "SELECT pad FROM big WHERE id = ?", id).Scan(&o.point); err != nil {
			return o, err
		}
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*), SUM(id) FROM big WHERE id BETWEEN ? AND ?", id, id+99).Scan(&o.rangeN, &o.sum); err != nil {
			return o, err
		}
		return o, tx.Commit()
	}
	for i := 0; i < 50; i++ {
		want, err := run(direct, i)
		if err != nil {
			t.Fatal(err)
		}
		got, err := run(proxied, i)
		if err != nil {
			t.Fatalf("transaction %d through the proxy: %v", i, err)
		}
		if got != want || got.inTx != 1 {
			t.Fatalf("transaction %d: proxy %+v, direct %+v", i, got, want)
		}
	}

	// Writes: the first statement of a deferred transaction is a write
	// (BEGIN goes alone first); ROLLBACK undoes it, COMMIT keeps it.
	key := time.Now().UnixNano()
	for _, commit := range []bool{false, true} {
		tx, err := proxied.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO kv (id, owner, val) VALUES (?, 0, 'deferred')", key); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := rootDB.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+dataSchema+".kv WHERE id = ?", key).Scan(&n); err != nil || n != 0 {
			t.Fatalf("uncommitted row visible outside the transaction: %d, %v", n, err)
		}
		if commit {
			err = tx.Commit()
		} else {
			err = tx.Rollback()
		}
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		if commit {
			want = 1
		}
		if err := rootDB.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+dataSchema+".kv WHERE id = ?", key).Scan(&n); err != nil || n != want {
			t.Fatalf("commit=%v: %d rows after, want %d (%v)", commit, n, want, err)
		}
	}
	if _, err := rootDB.ExecContext(ctx, "DELETE FROM "+dataSchema+".kv WHERE id = ?", key); err != nil {
		t.Fatal(err)
	}
}
