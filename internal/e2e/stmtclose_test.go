package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"
)

// TestPreparedStatementsRetryAfter1461 (issue 16 item 6): when the server's
// max_prepared_stmt_count is taken by others, a PREPARE through the proxy
// that meets ERR 1461 makes room on its backend (closing statements there,
// which their holders prepare again lazily) and is retried instead of
// failing the client. On a private MariaDB with a limit of 50, a client
// holds 40 open statements, another connection takes the other 10 direct,
// and the client prepares 5 more and executes all 45.
func TestPreparedStatementsRetryAfter1461(t *testing.T) {
	priv := privateServer(t)
	if _, err := priv.root.Exec("SET GLOBAL max_prepared_stmt_count = 50"); err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, proxyOptions{backend: priv, backendConns: 1, loops: 1})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := sql.Open("mysql", driverOptions{}.dsn(compatTarget{"proxy", p.addr, clientUser, clientPassword}))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var stmts []*sql.Stmt
	prepare := func(k int) {
		st, err := c.PrepareContext(ctx, fmt.Sprintf("SELECT ? + %d", k))
		if err != nil {
			t.Fatalf("prepare %d through the proxy: %v", k, err)
		}
		stmts = append(stmts, st)
	}
	for k := 0; k < 40; k++ {
		prepare(k)
	}
	other, err := priv.root.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for k := 0; k < 10; k++ {
		st, err := other.PrepareContext(ctx, fmt.Sprintf("SELECT %d", k))
		if err != nil {
			t.Fatalf("direct prepare %d: %v (the server's count: %d)", k, err, preparedStmtCount(t, priv))
		}
		defer st.Close()
	}
	for k := 40; k < 45; k++ {
		prepare(k)
	}
	for k, st := range stmts {
		var v int
		if err := st.QueryRowContext(ctx, 1).Scan(&v); err != nil || v != k+1 {
			t.Fatalf("execute %d: %d, %v", k, v, err)
		}
		st.Close()
	}
	p.requireAlive(t)
}
