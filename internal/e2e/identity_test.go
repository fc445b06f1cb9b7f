package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// identityArgs run clients as their own server accounts (the proxy's
// default; the harness passes --backend-identity service).
var identityArgs = []string{"--backend-identity", "account"}

// openAs opens the proxy (addr) or the server as user.
func openAs(t testing.TB, addr, user, password, db string, conns int) *sql.DB {
	t.Helper()
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr, c.DBName = user, password, "tcp", addr, db
	c.Timeout, c.ReadTimeout, c.WriteTimeout = 10*time.Second, 60*time.Second, 60*time.Second
	d, err := sql.Open("mysql", c.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	d.SetMaxOpenConns(conns)
	d.SetMaxIdleConns(conns)
	t.Cleanup(func() { d.Close() })
	return d
}

func grantsOf(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query("SHOW GRANTS")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			t.Fatal(err)
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// wantServerCode checks that err is the MySQL error code.
func wantServerCode(t *testing.T, what string, err error, code uint16) {
	t.Helper()
	if me, ok := asMySQLError(err); !ok || me.Number != code {
		t.Errorf("%s: %v, want ERROR %d", what, err, code)
	}
}

func queryString(t *testing.T, db *sql.DB, q string) string {
	t.Helper()
	var s string
	if err := db.QueryRow(q).Scan(&s); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return s
}

// TestIdentityRights (issue 17, acceptance "Rights"): through the proxy an
// account with SELECT on one schema only gets 1142 on another schema, its
// CURRENT_USER() is its own account and SHOW GRANTS matches a direct
// connection; an account mapped with backend= runs as the mapped account;
// a PREPARE another account made is not answered from the proxy's cache to
// one without the grant; the admin statements the proxy refuses to a
// shared account reach the server, which decides.
func TestIdentityRights(t *testing.T) {
	p := startProxy(t, proxyOptions{backendConns: 2, extraArgs: identityArgs})
	reader := openAs(t, p.addr, readerUser, readerPassword, "", 1)
	writer := openAs(t, p.addr, writerUser, writerPassword, "", 1)
	alias := openAs(t, p.addr, aliasUser, aliasPassword, "", 1)
	direct := openAs(t, srv.addr, readerUser, readerPassword, "", 1)

	if got := queryString(t, reader, "SELECT CURRENT_USER()"); got != readerUser+"@%" {
		t.Errorf("reader: CURRENT_USER() = %q, want %s@%%", got, readerUser)
	}
	if got := queryString(t, reader, "SELECT schema_name FROM "+isoSchema(0)+".marker"); got != isoSchema(0) {
		t.Errorf("reader: its own schema's marker = %q", got)
	}
	_, err := reader.Exec("SELECT COUNT(*) FROM " + dataSchema + ".kv")
	wantServerCode(t, "reader: SELECT on another schema", err, 1142)
	_, err = reader.Exec("CREATE TABLE " + isoSchema(1) + ".reader_was_here (id INT)")
	wantServerCode(t, "reader: CREATE TABLE in another schema", err, 1142)
	if got, want := grantsOf(t, reader), grantsOf(t, direct); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("reader: SHOW GRANTS through the proxy\n%s\nwant (direct)\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	if got := queryString(t, writer, "SELECT CURRENT_USER()"); got != writerUser+"@%" {
		t.Errorf("writer: CURRENT_USER() = %q", got)
	}
	if got := queryString(t, alias, "SELECT CURRENT_USER()"); got != writerUser+"@%" {
		t.Errorf("alias (backend=%s): CURRENT_USER() = %q, want the mapped account", writerUser, got)
	}
	if got := queryString(t, alias, "SELECT USER()"); !strings.HasPrefix(got, writerUser+"@") {
		t.Errorf("alias: USER() = %q, want the mapped account", got)
	}

	// The writer's PREPARE is cached by the proxy; the reader's PREPARE of
	// the same text must meet the server's refusal, not the cache.
	st, err := writer.Prepare("SELECT COUNT(*) FROM " + dataSchema + ".kv")
	if err != nil {
		t.Fatalf("writer PREPARE: %v", err)
	}
	st.Close()
	_, err = reader.Prepare("SELECT COUNT(*) FROM " + dataSchema + ".kv")
	wantServerCode(t, "reader: PREPARE of a statement on another schema", err, 1142)

	// The server, not the proxy, decides the admin statements of an
	// account running as itself: the reader lacks SUPER, the server says
	// so (1227 from the server: its own message names the privilege).
	_, err = reader.Exec("SET GLOBAL max_connections = 151")
	wantServerCode(t, "reader: SET GLOBAL", err, 1227)
	_, err = reader.Exec("GRANT SELECT ON " + dataSchema + ".* TO '" + readerUser + "'@'%'")
	wantServerCode(t, "reader: GRANT to itself", err, 1044)
}

// TestIdentityKillQuery: KILL QUERY of a session running as its own account
// is sent as that account (the server lets an account kill only its own
// threads without privileges), on a backend that changes to it first.
func TestIdentityKillQuery(t *testing.T) {
	p := startProxy(t, proxyOptions{backendConns: 2, loops: 1, extraArgs: identityArgs})
	victim := openAs(t, p.addr, readerUser, readerPassword, "", 1)
	killer := openAs(t, p.addr, readerUser, readerPassword, "", 1)
	writer := openAs(t, p.addr, writerUser, writerPassword, "", 1)
	var id int64
	if err := victim.QueryRow("SELECT CONNECTION_ID()").Scan(&id); err != nil {
		t.Fatal(err)
	}
	queryString(t, writer, "SELECT CURRENT_USER()") // a backend logged in as the writer
	done := make(chan error, 1)
	go func() {
		_, err := victim.Exec("SELECT SLEEP(10)")
		done <- err
	}()
	time.Sleep(500 * time.Millisecond) // the victim holds one backend; the other is the writer's or the reader's
	start := time.Now()
	if _, err := killer.Exec("KILL QUERY " + strconv.FormatInt(id, 10)); err != nil {
		t.Fatalf("KILL QUERY: %v", err)
	}
	select {
	case err := <-done:
		wantServerCode(t, "the killed statement", err, 1317)
		if waited := time.Since(start); waited > 5*time.Second {
			t.Errorf("the statement ended %v after KILL QUERY", waited)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the statement was not killed")
	}
}

// TestIdentityInterleaved (issue 17, acceptance "Rights"): two accounts with
// different grants interleave statements on N=4 backends (2 loops), each
// checking CURRENT_USER() in its results: not one runs as the other, and
// each may read only what its grants allow. SCALESTACK_E2E_IDENTITY_STATEMENTS
// sets the total (default 20,000; the 100,000 by hand).
func TestIdentityInterleaved(t *testing.T) {
	total := 20000
	if s := os.Getenv("SCALESTACK_E2E_IDENTITY_STATEMENTS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("SCALESTACK_E2E_IDENTITY_STATEMENTS=%q: want a positive number", s)
		}
		total = n
	}
	admin := "127.0.0.1:" + strconv.Itoa(freePort(t))
	p := startProxy(t, proxyOptions{backendConns: 4, loops: 2, extraArgs: append([]string{"--admin", admin}, identityArgs...)})
	const clientsPerAccount = 8
	accounts := []struct {
		user, password string
		// query's second column reads a table the account's grants
		// allow; forbidden reads one they do not (ERROR 1142).
		query, want, forbidden string
	}{
		{readerUser, readerPassword, "SELECT CURRENT_USER(), (SELECT schema_name FROM " + isoSchema(0) + ".marker)", isoSchema(0),
			"SELECT COUNT(*) FROM " + dataSchema + ".kv"},
		{writerUser, writerPassword, "SELECT CURRENT_USER(), (SELECT COUNT(*) >= 0 FROM " + dataSchema + ".kv)", "1",
			"SELECT COUNT(*) FROM " + isoSchema(2) + ".marker"},
	}
	var ran, wrong, failed atomic.Int64
	var mu sync.Mutex
	var firstErr []string
	note := func(format string, args ...any) {
		mu.Lock()
		if len(firstErr) < 10 {
			firstErr = append(firstErr, fmt.Sprintf(format, args...))
		}
		mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	perClient := total / (len(accounts) * clientsPerAccount)
	for _, a := range accounts {
		db := openAs(t, p.addr, a.user, a.password, "", clientsPerAccount)
		for c := 0; c < clientsPerAccount; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				conn, err := db.Conn(ctx)
				if err != nil {
					failed.Add(1)
					note("%s: %v", a.user, err)
					return
				}
				defer conn.Close()
				for i := 0; i < perClient; i++ {
					var who, got string
					if err := conn.QueryRowContext(ctx, a.query).Scan(&who, &got); err != nil {
						failed.Add(1)
						note("%s: %v", a.user, err)
						return
					}
					ran.Add(1)
					if who != a.user+"@%" || got != a.want {
						wrong.Add(1)
						note("%s ran as %q (read %q)", a.user, who, got)
					}
					if i%50 == 0 {
						// A table its grants do not allow: refused by
						// the server on whichever backend it runs on.
						if _, err := conn.ExecContext(ctx, a.forbidden); err == nil {
							wrong.Add(1)
							note("%s read a table it has no grant on", a.user)
						} else if me, ok := asMySQLError(err); !ok || me.Number != 1142 {
							failed.Add(1)
							note("%s: other table: %v", a.user, err)
							return
						}
					}
				}
			}()
		}
	}
	wg.Wait()
	t.Logf("%d statements, %d under the wrong identity, %d failures, %s", ran.Load(), wrong.Load(), failed.Load(),
		metricLine(t, admin, "scalestack_mysqlproxy_identity_switches_total"))
	if wrong.Load() != 0 || failed.Load() != 0 || ran.Load() != int64(perClient*len(accounts)*clientsPerAccount) {
		t.Fatalf("%d statements ran of %d, %d under the wrong identity, %d failed: %v", ran.Load(),
			perClient*len(accounts)*clientsPerAccount, wrong.Load(), failed.Load(), firstErr)
	}
}

// metricLine returns the line of the proxy's /metrics (on admin) that
// starts with name.
func metricLine(t *testing.T, admin, name string) string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, name+" ") {
			return l
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return ""
}
