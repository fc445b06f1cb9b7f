package main

import (
	"bufio"
	"bytes"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/internal/testutil"
	"github.com/scalestack/scalestack/pool/mysqlproxy"
)

// Tests of the HTTP -> SQL gateway against the MariaDB of `make test`:
// its answers are compared with go-sql-driver's for the same statements.

const (
	sqlAccount  = "webapp"
	sqlPassword = "web secret"
)

// sqlGatewayArgs writes a users file and returns the http command's
// arguments for a gateway at /v1/query.
func sqlGatewayArgs(t *testing.T, env testutil.Env, listen string) []string {
	t.Helper()
	// Statements run as the account's own server account (the gateway's
	// default identity), so webapp exists on the server with the same
	// password and the rights the comparisons' service account has on the
	// test schema; nopw, an account without a password at the proxy, is
	// mapped to the service account rather than made passwordless there.
	root, err := sql.Open("mysql", env.RootDSN(""))
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	acct := "'" + sqlAccount + "'@'%'"
	for _, q := range []string{"CREATE USER IF NOT EXISTS " + acct,
		"ALTER USER " + acct + " IDENTIFIED VIA mysql_native_password USING PASSWORD('" + sqlPassword + "')",
		"GRANT ALL PRIVILEGES ON `" + env.Database + "`.* TO " + acct} {
		if _, err := root.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	users := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(users, []byte(mysqlproxy.UserLine(sqlAccount, []byte(sqlPassword))+"\n"+
		mysqlproxy.UserLine("nopw", nil)+":backend="+env.User+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"--listen", listen, "--sql-path", "/v1/query", "--sql-backend", env.Addr,
		"--sql-backend-user", env.User, "--sql-backend-password-file", env.PasswordFile, "--sql-backend-conns", "2",
		"--sql-users", users, "--sql-schema", env.Database}
}

// startSQLGateway runs the http module with the gateway in this process.
func startSQLGateway(t *testing.T, extra ...string) (string, testutil.Env) {
	url, env, _ := startSQLGatewayModule(t, extra...)
	return url, env
}

func startSQLGatewayModule(t *testing.T, extra ...string) (string, testutil.Env, module) {
	t.Helper()
	env := testutil.MySQL(t)
	fs, _, build := httpFlags(io.Discard)
	if err := fs.Parse(append(sqlGatewayArgs(t, env, "127.0.0.1:0"), extra...)); err != nil {
		t.Fatal(err)
	}
	m, err := build()
	if err != nil {
		t.Fatal(err)
	}
	e := startTestEngine(t, "epoll", 2)
	if err := m.start(e.Engine); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.stop)
	ln, err := conn.Listen(e.Engine, m.listen)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for m.ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("gateway not ready: %v", m.ready())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return "http://" + ln.Addr().Address + "/v1/query", env, m
}

type sqlAnswer struct {
	status  int
	Columns []struct {
		Name string `json:"name"`
		Type string `json:"type"`
	} `json:"columns"`
	Rows         [][]any `json:"rows"`
	AffectedRows *uint64 `json:"affected_rows"`
	LastInsertID *uint64 `json:"last_insert_id"`
	Error        *struct {
		Code     uint16 `json:"code"`
		SQLState string `json:"sqlstate"`
		Message  string `json:"message"`
	} `json:"error"`
}

func postSQL(t *testing.T, url, user, password, query string, params ...any) sqlAnswer {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"sql": query, "params": params})
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.SetBasicAuth(user, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a sqlAnswer
	a.status = resp.StatusCode
	if resp.StatusCode == 401 {
		return a
	}
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(&a); err != nil {
		t.Fatalf("%s: %d: %v", query, resp.StatusCode, err)
	}
	return a
}

// driverJSON is what the gateway should answer for a value go-sql-driver
// returned, given its column's database type name.
func driverJSON(v any, typ string) any {
	switch x := v.(type) {
	case nil:
		return nil
	case int64:
		return json.Number(strconv.FormatInt(x, 10))
	case uint64:
		return json.Number(strconv.FormatUint(x, 10))
	case float32:
		return json.Number(strconv.FormatFloat(float64(x), 'g', -1, 32))
	case float64:
		return json.Number(strconv.FormatFloat(x, 'g', -1, 64))
	case []byte:
		if strings.HasSuffix(typ, "INT") {
			// An unsigned BIGINT over MaxInt64 comes back as text.
			return json.Number(x)
		}
		switch typ {
		case "BLOB", "TINYBLOB", "MEDIUMBLOB", "LONGBLOB", "VARBINARY", "BINARY", "BIT", "GEOMETRY":
			return base64.StdEncoding.EncodeToString(x)
		}
		return string(x)
	}
	return fmt.Sprintf("unexpected %T", v)
}

// TestHTTPSQLMatchesDriver runs statements through the gateway and through
// go-sql-driver (prepared, as the gateway runs them) and compares the
// answers: columns and types, every common type's values, an INSERT's OK,
// errors with code and SQLSTATE.
func TestHTTPSQLMatchesDriver(t *testing.T) {
	url, env := startSQLGateway(t)
	db, err := sql.Open("mysql", env.TestDSN(env.Database))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{"DROP TABLE IF EXISTS http_sql_types",
		"CREATE TABLE http_sql_types (id INT AUTO_INCREMENT PRIMARY KEY, ti TINYINT, su SMALLINT UNSIGNED, mi MEDIUMINT, " +
			"bi BIGINT, bu BIGINT UNSIGNED, de DECIMAL(10,3), fl FLOAT, do DOUBLE, da DATE, dt DATETIME(6), ts TIMESTAMP NULL, " +
			"tm TIME(3), yr YEAR, ch CHAR(5), vc VARCHAR(20), tx TEXT, bl BLOB, vb VARBINARY(10), en ENUM('a','b'), " +
			"st SET('x','y'), bt BIT(8), js JSON)"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() { db.Exec("DROP TABLE IF EXISTS http_sql_types") })

	insert := "INSERT INTO http_sql_types (ti, su, mi, bi, bu, de, fl, do, da, dt, ts, tm, yr, ch, vc, tx, bl, vb, en, st, bt, js) " +
		"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
	a := postSQL(t, url, sqlAccount, sqlPassword, insert, -5, 65535, -8388608, int64(-1)<<62, uint64(1)<<63, "-1234.5", 0.5, 1e100,
		"2026-12-06", "2026-12-06 10:11:12.345678", "2026-12-06 01:02:03", "-838:59:58.5", 2026, "ab", "héllo \"q\"\n<tag>",
		"line\ttab", "\x00\x01\xff", "bin", "b", "x,y", 129, `{"k": [1, 2]}`)
	if a.status != 200 || a.AffectedRows == nil || *a.AffectedRows != 1 || a.LastInsertID == nil || *a.LastInsertID != 1 {
		t.Fatalf("INSERT: %+v %+v", a, a.Error)
	}
	res, err := db.Exec("INSERT INTO http_sql_types (ti) VALUES (?)", nil)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := res.LastInsertId(); id != 2 {
		t.Fatalf("driver's insert id %d", id)
	}
	a = postSQL(t, url, sqlAccount, sqlPassword, "INSERT INTO http_sql_types (ti) VALUES (?)", nil)
	if a.status != 200 || *a.AffectedRows != 1 || *a.LastInsertID != 3 {
		t.Fatalf("INSERT of a NULL: %+v", a)
	}

	for _, query := range []string{
		"SELECT * FROM http_sql_types WHERE id > ? ORDER BY id",
		"SELECT id, de * 2 AS twice, CONCAT(vc, ?) AS c, NULL AS n, 1.5e0 AS f, CAST(? AS SIGNED) AS s FROM http_sql_types WHERE id = 1",
	} {
		params := []any{0}
		if strings.Contains(query, "CONCAT") {
			params = []any{"!", "42"}
		}
		a := postSQL(t, url, sqlAccount, sqlPassword, query, params...)
		rows, err := db.Query(query, params...)
		if err != nil {
			t.Fatal(err)
		}
		types, _ := rows.ColumnTypes()
		var want [][]any
		for rows.Next() {
			vals := make([]any, len(types))
			ptrs := make([]any, len(types))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			row := make([]any, len(types))
			for i, v := range vals {
				row[i] = driverJSON(v, types[i].DatabaseTypeName())
			}
			want = append(want, row)
		}
		rows.Close()
		if a.status != 200 || len(a.Columns) != len(types) {
			t.Fatalf("%s: %+v", query, a)
		}
		for i, c := range types {
			if a.Columns[i].Name != c.Name() || a.Columns[i].Type != c.DatabaseTypeName() {
				t.Errorf("%s: column %d: %+v, driver %s %s", query, i, a.Columns[i], c.Name(), c.DatabaseTypeName())
			}
		}
		if !reflect.DeepEqual(a.Rows, want) {
			for i := range min(len(a.Rows), len(want)) {
				for j := range min(len(a.Rows[i]), len(want[i])) {
					if !reflect.DeepEqual(a.Rows[i][j], want[i][j]) {
						t.Logf("row %d column %s: gateway %#v, driver %#v", i, types[j].Name(), a.Rows[i][j], want[i][j])
					}
				}
			}
			t.Fatalf("%s: rows differ from the driver's", query)
		}
	}

	// Errors: the server's code, SQLSTATE and message; the gateway's own.
	for _, c := range []struct {
		query  string
		params []any
	}{
		{"SELECT * FROM http_sql_missing WHERE id = ?", []any{1}},
		{"INSERT INTO http_sql_types (id) VALUES (?)", []any{1}},
		{"SELECT * FROM WHERE", nil},
	} {
		a := postSQL(t, url, sqlAccount, sqlPassword, c.query, c.params...)
		_, err := db.Exec(c.query, c.params...)
		var me *mysql.MySQLError
		if !errors.As(err, &me) {
			t.Fatalf("%s: driver: %v", c.query, err)
		}
		if a.status != 400 || a.Error == nil || a.Error.Code != me.Number || a.Error.SQLState != string(me.SQLState[:]) || a.Error.Message != me.Message {
			t.Fatalf("%s: %d %+v, driver %v", c.query, a.status, a.Error, me)
		}
	}
	for _, q := range []string{"BEGIN", "START TRANSACTION", "COMMIT", "SET autocommit = 0", "SELECT @v"} {
		a := postSQL(t, url, sqlAccount, sqlPassword, q)
		if a.status != 400 || a.Error == nil || a.Error.Code != 9005 || a.Error.SQLState != "0A000" {
			t.Fatalf("%s: %d %+v", q, a.status, a.Error)
		}
	}
}

// TestHTTPSQLCredentials: only an account of the users file with its
// password gets in.
func TestHTTPSQLCredentials(t *testing.T) {
	url, _ := startSQLGateway(t)
	for _, c := range []struct {
		user, password string
		status         int
	}{
		{sqlAccount, sqlPassword, 200},
		{sqlAccount, "wrong", 401},
		{sqlAccount, "", 401},
		{"nobody", sqlPassword, 401},
		{"nopw", "", 200},
		{"nopw", "x", 401},
	} {
		if a := postSQL(t, url, c.user, c.password, "SELECT ?", 1); a.status != c.status {
			t.Errorf("%s/%q: %d, want %d", c.user, c.password, a.status, c.status)
		}
	}
	// Each account's statements run as its server account: webapp's own
	// (derived from its credentials), nopw's mapping (the service account).
	env := testutil.MySQL(t)
	for _, c := range []struct{ user, password, want string }{
		{sqlAccount, sqlPassword, sqlAccount + "@%"},
		{"nopw", "", env.User + "@%"},
	} {
		a := postSQL(t, url, c.user, c.password, "SELECT CURRENT_USER()")
		if a.status != 200 || len(a.Rows) != 1 || len(a.Rows[0]) != 1 || a.Rows[0][0] != c.want {
			t.Errorf("%s: CURRENT_USER() answered %d %v, want %q", c.user, a.status, a.Rows, c.want)
		}
	}
	resp, err := http.Post(url, "application/json", strings.NewReader(`{"sql":"SELECT 1"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
		t.Fatalf("no credentials: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	resp, err = http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
}

// TestHTTPSQLStreamsWithFlatRSS runs the binary and reads a 100,000-row
// result slowly: the rows arrive whole and in order while the process's
// resident memory stays within a few MiB of what it was before, though
// the JSON is much larger.
func TestHTTPSQLStreamsWithFlatRSS(t *testing.T) {
	env := testutil.MySQL(t)
	bin := buildBinary(t)
	listen := "127.0.0.1:" + freePort(t)
	args := append([]string{"http", "--loops", "1"}, sqlGatewayArgs(t, env, listen)...)
	cmd, logf := startProcess(t, bin, args...)
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("log:\n%s", b)
		}
	})
	url := "http://" + listen + "/v1/query"
	deadline := time.Now().Add(10 * time.Second)
	for postSQL(t, url, sqlAccount, sqlPassword, "SELECT ?", 1).status != 200 {
		if time.Now().After(deadline) {
			t.Fatal("gateway not answering")
		}
		time.Sleep(50 * time.Millisecond)
	}
	rss := func() int64 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				n, _ := strconv.ParseInt(f[1], 10, 64)
				return n << 10
			}
		}
		t.Fatal("no VmRSS")
		return 0
	}
	// Warm up the paths once with a small result.
	postSQL(t, url, sqlAccount, sqlPassword, "SELECT seq, REPEAT('x', 200) FROM seq_1_to_1000 WHERE seq >= ?", 1)
	before := rss()

	body, _ := json.Marshal(map[string]any{"sql": "SELECT seq, REPEAT('x', 200) AS pad FROM seq_1_to_100000 WHERE seq >= ?", "params": []any{1}})
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.SetBasicAuth(sqlAccount, sqlPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Transfer-Encoding") != "" && resp.ContentLength >= 0 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// Read slowly: 64 KiB, then a pause, so the gateway must hold back.
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	var all bytes.Buffer
	peak := before
	buf := make([]byte, 64<<10)
	for i := 0; ; i++ {
		n, err := br.Read(buf)
		all.Write(buf[:n])
		if i%16 == 0 {
			time.Sleep(20 * time.Millisecond)
			peak = max(peak, rss())
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	size := int64(all.Len())
	var a sqlAnswer
	dec := json.NewDecoder(&all)
	dec.UseNumber()
	if err := dec.Decode(&a); err != nil {
		t.Fatal(err)
	}
	if len(a.Rows) != 100000 || a.Rows[99999][0] != json.Number("100000") || a.Error != nil {
		t.Fatalf("%d rows, last %v, error %+v", len(a.Rows), a.Rows[len(a.Rows)-1][0], a.Error)
	}
	t.Logf("JSON %.1f MiB; RSS before %.1f MiB, peak while streaming %.1f MiB", float64(size)/(1<<20),
		float64(before)/(1<<20), float64(peak)/(1<<20))
	if growth := peak - before; growth > 8<<20 || size < 4*growth {
		t.Fatalf("RSS grew by %.1f MiB while streaming %.1f MiB of JSON", float64(growth)/(1<<20), float64(size)/(1<<20))
	}
}

// TestHTTPSQLHalfBodies: clients that send part of a body and leave do not
// stay in the gateway's bookkeeping (the handler is not told of a close
// mid-body: entries of closed connections are swept as new ones come).
func TestHTTPSQLHalfBodies(t *testing.T) {
	url, _, m := startSQLGatewayModule(t, "--body-timeout", "300ms")
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/v1/query")
	auth := base64.StdEncoding.EncodeToString([]byte(sqlAccount + ":" + sqlPassword))
	pending := func() int64 {
		return m.status().(map[string]any)["sql_pending_bodies"].(int64)
	}
	for range 300 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "POST /v1/query HTTP/1.1\r\nHost: x\r\nAuthorization: Basic %s\r\nContent-Length: 100000\r\n\r\n{\"sql\":", auth)
		c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for pending() < 300 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	// Their body timeouts pass and the connections close; requests that
	// come later sweep them away.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for deadline := time.Now().Add(10 * time.Second); pending() > 64; {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests of closed connections still held", pending())
		}
		time.Sleep(200 * time.Millisecond)
		for range 10 {
			req, _ := http.NewRequest("POST", url, strings.NewReader(`{"sql":"SELECT 1"}`))
			req.SetBasicAuth(sqlAccount, sqlPassword)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
		}
	}
}
