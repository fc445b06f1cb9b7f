package e2e

import (
	"strings"
	"testing"
	"time"
)

// backendIDs lists the server's connection ids of the service account, as
// text (the same text means the same connections: none was replaced).
func backendIDs(t testing.TB) string {
	t.Helper()
	rows, err := srv.root.Query("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = '" +
		strings.ReplaceAll(srv.serviceUser, "'", "''") + "' ORDER BY ID")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return strings.Join(ids, ",")
}

func comChangeDB(t testing.TB) int {
	t.Helper()
	var name string
	var n int
	if err := srv.root.QueryRow("SHOW GLOBAL STATUS LIKE 'Com_change_db'").Scan(&name, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestMissingDatabaseLogin: a login naming a database that does not exist
// costs no backend connection. The first one's COM_INIT_DB fails with 1049
// on a backend, which the server keeps (with its previous schema), and the
// answer is cached: a flood of such logins reaches the server about once a
// second, and the pooled backend serves others as before.
func TestMissingDatabaseLogin(t *testing.T) {
	p := startProxy(t, proxyOptions{backendConns: 1, loops: 1})
	good := openProxyDB(t, p.addr, dataSchema, nil)
	good.SetMaxOpenConns(1)
	var dbName string
	if err := good.QueryRow("SELECT DATABASE()").Scan(&dbName); err != nil || dbName != dataSchema {
		t.Fatalf("DATABASE() before: %q, %v", dbName, err)
	}
	before := backendIDs(t)
	changesBefore := comChangeDB(t)
	start := time.Now()
	const logins = 50
	for i := 0; i < logins; i++ {
		bad := openProxyDB(t, p.addr, "e2e_no_such_db", nil)
		var one int
		err := bad.QueryRow("SELECT 1").Scan(&one)
		if me, ok := asMySQLError(err); !ok || me.Number != 1049 || string(me.SQLState[:]) != "42000" {
			t.Fatalf("login %d naming a missing database: %v, want ERR 1049 (42000)", i, err)
		}
		bad.Close()
	}
	elapsed := time.Since(start)
	if after := backendIDs(t); after != before {
		t.Errorf("backend connections %s became %s: a missing database cost a reconnect", before, after)
	}
	changes := comChangeDB(t) - changesBefore
	if limit := 2 + int(elapsed/time.Second); changes > limit {
		t.Errorf("%d logins naming a missing database in %v reached the server %d times (COM_INIT_DB), want at most %d",
			logins, elapsed.Round(time.Millisecond), changes, limit)
	}
	t.Logf("%d logins in %v: %d COM_INIT_DB on the server", logins, elapsed.Round(time.Millisecond), changes)
	// The backend's state is still known: the pooled session runs where
	// it should.
	if err := good.QueryRow("SELECT DATABASE()").Scan(&dbName); err != nil || dbName != dataSchema {
		t.Fatalf("DATABASE() after: %q, %v", dbName, err)
	}
	var n int
	if err := good.QueryRow("SELECT COUNT(*) FROM big").Scan(&n); err != nil || n != bigRows {
		t.Fatalf("unqualified table after: %d, %v", n, err)
	}
	if after := backendIDs(t); after != before {
		t.Errorf("backend connections %s became %s", before, after)
	}
}
