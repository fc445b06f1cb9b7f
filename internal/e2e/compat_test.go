package e2e

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestCommentOnlyStatements: the server answers text that is only comments
// with OK and white space alone with 1065 (42000); the proxy must answer
// each the same way.
func TestCommentOnlyStatements(t *testing.T) {
	p := startProxy(t, proxyOptions{backendConns: 1, loops: 1})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := openProxyDB(t, p.addr, dataSchema, nil)
	for _, q := range []string{"/* x */", "-- x", "# x", "-- x\n", "/*! */", "/* x */;", " ", "\t\n", ";"} {
		_, direct := rootDB.ExecContext(ctx, q)
		_, proxied := db.ExecContext(ctx, q)
		if errorCode(direct) != errorCode(proxied) {
			t.Errorf("%q: direct %v, through the proxy %v", q, direct, proxied)
		}
	}
	p.requireAlive(t)
}

// errorCode is the MySQL error code of err, 0 for nil, -1 for any other error.
func errorCode(err error) int {
	if err == nil {
		return 0
	}
	if me, ok := asMySQLError(err); ok {
		return int(me.Number)
	}
	return -1
}

// TestHandshakeCollations: a client that names a collation in its handshake
// gets it through the proxy exactly as it would direct, whichever backend
// serves it, for every collation a client may name; and the proxy's table
// (pool/collations.go) lists each one the server knows.
func TestHandshakeCollations(t *testing.T) {
	p := startProxy(t, proxyOptions{backendConns: 2, loops: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rows, err := rootDB.QueryContext(ctx, "SELECT ID, COLLATION_NAME FROM information_schema.COLLATIONS "+
		"WHERE ID IS NOT NULL AND ID < 256 AND CHARACTER_SET_NAME NOT IN ('ucs2','utf16','utf16le','utf32') ORDER BY ID")
	if err != nil {
		t.Fatal(err)
	}
	type collation struct {
		id   int
		name string
	}
	var all []collation
	for rows.Next() {
		var c collation
		if err := rows.Scan(&c.id, &c.name); err != nil {
			t.Fatal(err)
		}
		all = append(all, c)
	}
	rows.Close()
	if len(all) < 100 {
		t.Fatalf("the server lists only %d client collations", len(all))
	}
	// Three sessions per collation on two backends: each login replays the
	// character set on whichever backend the previous one left in another.
	for _, c := range all {
		for i := 0; i < 3; i++ {
			rc, err := dialRaw(p.addr, clientUser, clientPassword, rawOptions{collation: byte(c.id)})
			if err != nil {
				t.Fatalf("collation %d (%s): login: %v", c.id, c.name, err)
			}
			rc.setDeadline(10 * time.Second)
			got, err := rc.scalar("SELECT @@collation_connection")
			rc.Close()
			if err != nil {
				t.Fatalf("collation %d (%s): %v", c.id, c.name, err)
			}
			if got != c.name && got != strings.Replace(c.name, "utf8mb3", "utf8", 1) {
				t.Fatalf("collation %d: the session got %s, want %s as a direct connection", c.id, got, c.name)
			}
		}
	}
	p.requireAlive(t)
}

// TestSessionWithoutSchema: a client that named no schema runs with none,
// as a direct connection does (DATABASE() is NULL, an unqualified table is
// 1046), even on the backend another client's schema was left on; and the
// other client keeps its own. In 5.5 mode too.
func TestSessionWithoutSchema(t *testing.T) {
	var direct sql.NullString
	if err := rootDB.QueryRow("SELECT DATABASE()").Scan(&direct); err != nil || direct.Valid {
		t.Fatalf("direct without a schema: DATABASE() = %v, %v (want NULL)", direct, err)
	}
	for _, mysql55 := range []bool{false, true} {
		t.Run(fmt.Sprintf("mysql55=%v", mysql55), func(t *testing.T) {
			p := startProxy(t, proxyOptions{backendConns: 1, loops: 1, mysql55: mysql55})
			withSchema, err := dialRaw(p.addr, clientUser, clientPassword, rawOptions{db: dataSchema})
			if err != nil {
				t.Fatal(err)
			}
			without, err := dialRaw(p.addr, otherUser, otherPassword, rawOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for round := 0; round < 3; round++ {
				if got, err := withSchema.scalar("SELECT DATABASE()"); err != nil || got != dataSchema {
					t.Fatalf("mysql55=%v round %d: the session with a schema sees %q, %v", mysql55, round, got, err)
				}
				if got, err := without.scalar("SELECT DATABASE()"); err != nil || got != "NULL" {
					t.Fatalf("mysql55=%v round %d: the session without a schema sees DATABASE() = %q, %v (direct: NULL)",
						mysql55, round, got, err)
				}
				_, err := without.query("SELECT COUNT(*) FROM big")
				var se *serverError
				if !errors.As(err, &se) || se.Code != 1046 {
					t.Fatalf("mysql55=%v round %d: an unqualified table without a schema: %v, want ERROR 1046", mysql55, round, err)
				}
			}
			withSchema.Close()
			without.Close()
			p.requireAlive(t)
		})
	}
}
