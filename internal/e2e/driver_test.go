package e2e

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// TestGoDriver500Goroutines8Backends drives the proxy with go-sql-driver/mysql:
// 500 goroutines on a database/sql pool of up to 500 connections, through 8
// backend connections, running transactions, server-side prepared
// statements and multi-statement queries, and checks every result.
func TestGoDriver500Goroutines8Backends(t *testing.T) {
	start := time.Now()
	p := startProxy(t, proxyOptions{backendConns: 8})
	runDriverWorkload(t, p, 500, 6)
	t.Logf("TestGoDriver500Goroutines8Backends took %v", time.Since(start).Round(time.Millisecond))
}

// TestGoDriverIOUring runs a reduced driver workload through a proxy whose
// loops use io_uring instead of epoll.
func TestGoDriverIOUring(t *testing.T) {
	start := time.Now()
	p := startProxy(t, proxyOptions{backendConns: 8, io: "uring"})
	runDriverWorkload(t, p, 200, 3)
	t.Logf("TestGoDriverIOUring took %v", time.Since(start).Round(time.Millisecond))
}

// runDriverWorkload runs `iterations` rounds of the workload in each of
// `goroutines` goroutines and fails the test on any wrong result or error.
func runDriverWorkload(t *testing.T, p *proxyProcess, goroutines, iterations int) {
	t.Helper()
	if _, err := rootDB.Exec("DELETE FROM " + dataSchema + ".kv"); err != nil {
		t.Fatal(err)
	}
	db := openProxyDB(t, p.addr, dataSchema, func(c *mysql.Config) {
		c.MultiStatements = true
		c.InterpolateParams = false // every query with arguments is a server-side prepared statement
	})
	db.SetMaxOpenConns(goroutines)
	db.SetMaxIdleConns(goroutines)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var errs errorCollector
	var stmts sync.WaitGroup
	committed := make([]int, goroutines) // per goroutine, COMMITs the server acknowledged
	for g := 0; g < goroutines; g++ {
		stmts.Add(1)
		go func(g int) {
			defer stmts.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 42))
			w := driverWorker{db: db, g: g, rng: rng}
			defer func() { committed[g] = w.committed }()
			for i := 0; i < iterations && ctx.Err() == nil; i++ {
				commit := rng.IntN(2) == 0
				if err := w.transaction(ctx, int64(g)*1_000_000+int64(i), commit); err != nil {
					errs.add("goroutine %d transaction %d: %v", g, i, err)
				}
				if err := w.prepared(ctx); err != nil {
					errs.add("goroutine %d prepared %d: %v", g, i, err)
				}
				if err := w.multiStatement(ctx); err != nil {
					errs.add("goroutine %d multi-statement %d: %v", g, i, err)
				}
			}
		}(g)
	}
	stmts.Wait()
	p.requireAlive(t)
	errs.check(t, "go-sql-driver workload")
	if ctx.Err() != nil {
		t.Fatalf("the workload did not finish within its deadline: %v", ctx.Err())
	}
	// Every committed row, and no rolled-back one, must be in the table, as
	// the server itself reports it.
	var wantRows int
	for _, c := range committed {
		wantRows += c
	}
	var gotRows int
	if err := rootDB.QueryRow("SELECT COUNT(*) FROM " + dataSchema + ".kv").Scan(&gotRows); err != nil {
		t.Fatal(err)
	}
	if gotRows != wantRows {
		t.Errorf("the server holds %d rows after the workload, want the %d committed ones", gotRows, wantRows)
	}
	t.Logf("%d goroutines x %d iterations: %d transactions committed, %d rows on the server, %d failures",
		goroutines, iterations, wantRows, gotRows, errs.n())
}

type driverWorker struct {
	db        *sql.DB
	g         int
	rng       *rand.Rand
	committed int // rows of owner g committed so far
}

// transaction inserts a row in a transaction, checks that the transaction
// sees it and other sessions do not, then commits or rolls back and checks
// the row's visibility afterwards.
func (w *driverWorker) transaction(ctx context.Context, id int64, commit bool) error {
	val := fmt.Sprintf("g%d-row%d-%x", w.g, id, w.rng.Uint32())
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, "INSERT INTO kv (id, owner, val) VALUES (?, ?, ?)", id, w.g, val)
	if err != nil {
		return fmt.Errorf("insert: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("insert affected %d rows (%v), want 1", n, err)
	}
	var got string
	if err := tx.QueryRowContext(ctx, "SELECT val FROM kv WHERE id = ?", id).Scan(&got); err != nil {
		return fmt.Errorf("the transaction cannot read its own uncommitted row: %w", err)
	}
	if got != val {
		return fmt.Errorf("the transaction reads %q for its row, want %q", got, val)
	}
	var inTx int
	if err := tx.QueryRowContext(ctx, "SELECT @@in_transaction").Scan(&inTx); err != nil || inTx != 1 {
		return fmt.Errorf("@@in_transaction inside the transaction is %d (%v), want 1", inTx, err)
	}
	var owned int
	if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM kv WHERE owner = ?", w.g).Scan(&owned); err != nil ||
		owned != w.committed+1 {
		return fmt.Errorf("the transaction counts %d rows of its owner (%v), want %d committed + 1 uncommitted",
			owned, err, w.committed)
	}
	// Outside the transaction the row must not exist yet. The check goes to
	// the server directly: asking through the proxy while this session pins
	// a backend would deadlock once 8 goroutines did so at the same time,
	// as with any pool that pins transactions.
	var outside int
	if err := rootDB.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+dataSchema+".kv WHERE id = ?", id).Scan(&outside); err != nil ||
		outside != 0 {
		return fmt.Errorf("the server shows %d copies of the uncommitted row outside the transaction (%v), want 0", outside, err)
	}
	if commit {
		err = tx.Commit()
	} else {
		err = tx.Rollback()
	}
	if err != nil {
		return fmt.Errorf("commit=%v: %w", commit, err)
	}
	want := 0
	if commit {
		want = 1
		w.committed++
	}
	if n, err := w.visible(ctx, id); err != nil || n != want {
		return fmt.Errorf("after commit=%v another session sees %d copies of the row (%v), want %d", commit, n, err, want)
	}
	return nil
}

// visible counts the row from outside the transaction (another connection of the pool).
func (w *driverWorker) visible(ctx context.Context, id int64) (int, error) {
	var n int
	err := w.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM kv WHERE id = ?", id).Scan(&n)
	return n, err
}

// prepared runs server-side prepared statements with parameters of several
// types, one prepared once and executed several times, and checks the
// server's answers.
func (w *driverWorker) prepared(ctx context.Context) error {
	stmt, err := w.db.PrepareContext(ctx, "SELECT ? + 1, CONCAT('g', ?), ? IS NULL, LENGTH(?), ?")
	if err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	defer stmt.Close()
	for k := 0; k < 3; k++ {
		n := w.rng.Int64N(1 << 40)
		s := strings.Repeat(string(rune('a'+w.rng.IntN(26))), w.rng.IntN(300))
		blob := make([]byte, w.rng.IntN(2000))
		for i := range blob {
			blob[i] = byte(w.rng.IntN(256))
		}
		var (
			sum      int64
			concat   string
			isNull   int
			length   int
			blobBack []byte
		)
		if err := stmt.QueryRowContext(ctx, n, s, nil, blob, blob).Scan(&sum, &concat, &isNull, &length, &blobBack); err != nil {
			return fmt.Errorf("execute: %w", err)
		}
		if sum != n+1 || concat != "g"+s || isNull != 1 || length != len(blob) || string(blobBack) != string(blob) {
			return fmt.Errorf("prepared statement answered (%d, %d bytes, %d, %d, %d bytes), want (%d, %d bytes, 1, %d, %d bytes)",
				sum, len(concat), isNull, length, len(blobBack), n+1, len(s)+1, len(blob), len(blob))
		}
	}
	return nil
}

// multiStatement sends multi-statement queries: one whose results must all
// arrive in order, and one that fails in its middle, after which the
// connection must still work.
func (w *driverWorker) multiStatement(ctx context.Context) error {
	conn, err := w.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	a, b := w.rng.Int64N(1<<31), fmt.Sprintf("s%x", w.rng.Uint64())
	q := fmt.Sprintf("SELECT %d AS a; DO 1; SELECT '%s' AS b, %d * 2 AS c; SELECT id FROM %s.big WHERE id <= 3 ORDER BY id",
		a, b, a, dataSchema)
	rows, err := conn.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("multi-statement: %w", err)
	}
	defer rows.Close()
	var got []string
	for {
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]sql.RawBytes, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				return err
			}
			var parts []string
			for _, v := range vals {
				parts = append(parts, string(v))
			}
			got = append(got, strings.Join(cols, ",")+"="+strings.Join(parts, ","))
		}
		if !rows.NextResultSet() {
			break
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("multi-statement results: %w", err)
	}
	rows.Close()
	want := []string{fmt.Sprintf("a=%d", a), fmt.Sprintf("b,c=%s,%d", b, a*2), "id=1", "id=2", "id=3"}
	if strings.Join(got, ";") != strings.Join(want, ";") {
		return fmt.Errorf("multi-statement results %q, want %q", got, want)
	}

	// The second statement fails: the first result arrives, then ERR 1146.
	rows, err = conn.QueryContext(ctx, "SELECT 7 AS x; SELECT * FROM no_such_table_e2e; SELECT 9 AS z")
	if err != nil {
		return fmt.Errorf("failing multi-statement: %w", err)
	}
	var x int
	if !rows.Next() {
		rows.Close()
		return fmt.Errorf("failing multi-statement: no first result (%v)", rows.Err())
	}
	if err := rows.Scan(&x); err != nil || x != 7 {
		rows.Close()
		return fmt.Errorf("failing multi-statement: first result %d (%v), want 7", x, err)
	}
	for rows.Next() {
	}
	more := rows.NextResultSet()
	err = rows.Err()
	rows.Close()
	if me, ok := asMySQLError(err); !ok || me.Number != 1146 {
		return fmt.Errorf("failing multi-statement: want ERR 1146 after the first result, got more=%v err=%v", more, err)
	}
	var y int
	if err := conn.QueryRowContext(ctx, "SELECT 11").Scan(&y); err != nil || y != 11 {
		if errors.Is(err, mysql.ErrInvalidConn) {
			return fmt.Errorf("the connection broke after a failed multi-statement: %w", err)
		}
		return fmt.Errorf("after a failed multi-statement SELECT 11 gave %d (%v)", y, err)
	}
	return nil
}
