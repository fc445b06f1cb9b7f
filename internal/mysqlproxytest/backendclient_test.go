package mysqlproxytest

// Acceptance tests of the backend client (backend.go) against the real
// MariaDB that scripts/mariadb.sh starts: login in normal and 5.5 mode, a
// refused service login, text and binary results of every type the server
// sends, multi-statements, a procedure's two result sets, LOCAL INFILE, 20 MiB
// packets in both directions, and the COM_RESET_CONNECTION / COM_CHANGE_USER
// resets. Each runs a go-sql-driver client through the proxy, so the client
// side is exercised too.

import (
	"bytes"
	"context"
	"crypto/md5"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/scalestack/scalestack/mysqlwire"
	"github.com/scalestack/scalestack/pool/mysqlproxy"
)

// openRoot connects straight to the server as its root account.
func openRoot(t testing.TB, env mysqlEnv) *sql.DB {
	t.Helper()
	if env.rootUser == "" {
		t.Fatal("the server's root account is needed (scripts/mariadb.sh writes it to the env file)")
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = env.rootUser, env.rootPassword, "tcp", env.addr
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// readResultSets reads every result set of rows as strings ("NULL" for
// NULL).
func readResultSets(t testing.TB, rows *sql.Rows) [][][]string {
	t.Helper()
	defer rows.Close()
	var sets [][][]string
	for {
		var set [][]string
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			row := make([]string, len(vals))
			for i, v := range vals {
				row[i] = valueText(v)
			}
			set = append(set, row)
		}
		sets = append(sets, set)
		if !rows.NextResultSet() {
			break
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return sets
}

func valueText(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case []byte:
		return string(v)
	default:
		return fmt.Sprint(v)
	}
}

// TestBackendClientModes runs the backend client's whole repertoire in both
// modes: normal, and --mysql55 (capabilities masked with MySQL55Caps, resets
// through COM_CHANGE_USER instead of COM_RESET_CONNECTION).
func TestBackendClientModes(t *testing.T) {
	for _, mode := range []struct {
		name    string
		mysql55 bool
	}{{"normal", false}, {"mysql55", true}} {
		t.Run(mode.name, func(t *testing.T) {
			// A server of its own: the service account's threads on it
			// are this proxy's backends (backendThreadIDs).
			tp := startProxyAt(t, privateMySQL(t), 1, 1, func(c *mysqlproxy.Config) { c.MySQL55 = mode.mysql55 })
			root := openRoot(t, tp.env)

			t.Run("login", func(t *testing.T) {
				// What the login negotiated is checked against the
				// double in pool/mysqlproxy (TestBackendLoginNegotiation).
				if st := tp.p.Stats(); st.BackendsConnected != 1 {
					t.Fatalf("backends logged in: %d, want 1", st.BackendsConnected)
				}
				// The server sees the service account logged in over TCP.
				var n int
				if err := root.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ?",
					tp.env.user).Scan(&n); err != nil || n < 1 {
					t.Fatalf("service account sessions on the server: %d %v", n, err)
				}
			})

			db := tp.open(t, "multiStatements=true")
			db.SetMaxOpenConns(1)

			t.Run("text query", func(t *testing.T) {
				rows, err := db.Query("SELECT 6 * 7, 'é', NULL, CAST(-1.5 AS DECIMAL(4,2))")
				if err != nil {
					t.Fatal(err)
				}
				got := readResultSets(t, rows)
				want := [][][]string{{{"42", "é", "NULL", "-1.50"}}}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("got %q, want %q", got, want)
				}
			})

			t.Run("multi statements", func(t *testing.T) {
				mustExec(t, db, "CREATE OR REPLACE TABLE wacc_multi (v INT)")
				rows, err := db.Query("SELECT 1; INSERT INTO wacc_multi VALUES (7), (8); SELECT 'two', 2 UNION ALL SELECT 'three', 3")
				if err != nil {
					t.Fatal(err)
				}
				got := readResultSets(t, rows)
				// go-sql-driver passes over the INSERT's OK between the sets.
				want := [][][]string{{{"1"}}, {{"two", "2"}, {"three", "3"}}}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("got %q, want %q", got, want)
				}
				var sum int
				if err := db.QueryRow("SELECT SUM(v) FROM wacc_multi").Scan(&sum); err != nil || sum != 15 {
					t.Fatalf("the INSERT inside the batch: sum %d, %v", sum, err)
				}
			})

			t.Run("stored procedure with two result sets", func(t *testing.T) {
				mustExec(t, db, "DROP PROCEDURE IF EXISTS wacc_two_sets")
				mustExec(t, db, "CREATE PROCEDURE wacc_two_sets(n INT) BEGIN SELECT n AS a; "+
					"SELECT n * 2 AS b, 'second' AS c UNION ALL SELECT n * 3, 'third'; END")
				want := [][][]string{{{"5"}}, {{"10", "second"}, {"15", "third"}}}
				// Text protocol (no arguments) and binary protocol (a
				// prepared CALL, which needs CLIENT_PS_MULTI_RESULTS).
				for _, call := range []struct {
					q    string
					args []any
				}{{"CALL wacc_two_sets(5)", nil}, {"CALL wacc_two_sets(?)", []any{5}}} {
					rows, err := db.Query(call.q, call.args...)
					if err != nil {
						t.Fatalf("%s: %v", call.q, err)
					}
					got := readResultSets(t, rows)
					// The CALL's final OK may show as one more empty set.
					if len(got) == 3 && got[2] == nil {
						got = got[:2]
					}
					if !reflect.DeepEqual(got, want) {
						t.Fatalf("%s: got %q, want %q", call.q, got, want)
					}
				}
				if mode.mysql55 {
					// Without session tracking a CALL pins its session
					// (the procedure may have changed anything): let the
					// connection go so the one backend is free again.
					db.SetMaxIdleConns(0)
					db.SetMaxIdleConns(2)
					waitFor(t, func() bool { return tp.p.Stats().BackendsIdle == 1 })
				}
			})

			t.Run("local infile", func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "wacc.tsv")
				if err := os.WriteFile(path, []byte("1\tone\n2\ttwo\n3\tthree\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				mysql.RegisterLocalFile(path)
				defer mysql.DeregisterLocalFile(path)
				mustExec(t, db, "CREATE OR REPLACE TABLE wacc_infile (id INT PRIMARY KEY, v VARCHAR(10))")
				res, err := db.Exec("LOAD DATA LOCAL INFILE '" + path + "' INTO TABLE wacc_infile")
				if err != nil {
					t.Fatal(err)
				}
				if n, _ := res.RowsAffected(); n != 3 {
					t.Fatalf("loaded %d rows, want 3", n)
				}
				var got string
				if err := db.QueryRow("SELECT GROUP_CONCAT(v ORDER BY id) FROM wacc_infile").Scan(&got); err != nil || got != "one,two,three" {
					t.Fatalf("table holds %q, %v", got, err)
				}
			})

			t.Run("reset after a pinned client", func(t *testing.T) {
				// COM_RESET_CONNECTION normally, COM_CHANGE_USER in 5.5 mode:
				// the same server connection comes back with nothing left of
				// the pinned client's session.
				idsBefore := tp.backendThreadIDs(t, root)
				before := tp.p.Stats()
				pinned := tp.open(t, "")
				c, err := pinned.Conn(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				mustExec(t, c, "SET @wacc_leak = 'leaked'")
				mustExec(t, c, "CREATE TEMPORARY TABLE wacc_tmp (x INT)")
				if tp.p.Stats().PinnedSessions != 1 {
					t.Fatal("the session did not pin its backend")
				}
				c.Close()
				pinned.Close()
				waitFor(t, func() bool {
					st := tp.p.Stats()
					return st.BackendResets == before.BackendResets+1 && st.BackendsIdle == 1
				})
				var leak sql.NullString
				if err := db.QueryRow("SELECT @wacc_leak").Scan(&leak); err != nil || leak.Valid {
					t.Fatalf("user variable after reset: %v %v", leak, err)
				}
				if _, err := db.Exec("SELECT * FROM wacc_tmp"); mysqlErrCode(err) != 1146 {
					t.Fatalf("temporary table after reset: %v, want ERR 1146", err)
				}
				if st := tp.p.Stats(); st.BackendConnects != before.BackendConnects || st.BackendUnknownState != 0 {
					t.Fatalf("the backend was replaced instead of reset: %+v", st)
				}
				if ids := tp.backendThreadIDs(t, root); !reflect.DeepEqual(ids, idsBefore) {
					t.Fatalf("server thread ids %v after reset, %v before", ids, idsBefore)
				}
			})
		})
	}
}

// TestBackendClientBinaryTypes reads every column type MariaDB sends in the
// binary protocol through a prepared statement, and compares each value with
// what was stored and with what a direct connection to the server reads.
func TestBackendClientBinaryTypes(t *testing.T) {
	tp := startProxy(t, 1, 1, nil)
	db := tp.open(t, "")
	mustExec(t, db, `CREATE OR REPLACE TABLE wacc_types (
		id INT PRIMARY KEY,
		ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
		mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
		f FLOAT, d DOUBLE, dc DECIMAL(20,6),
		dt DATE, dtm DATETIME(6), ts TIMESTAMP NULL, tm TIME(6), yr YEAR,
		ch CHAR(5), vc VARCHAR(20), tx TEXT, bl BLOB, bt BIT(10), en ENUM('a','b','c'), st SET('x','y','z'), js JSON)`)
	cols := []string{"id", "ti", "tiu", "si", "siu", "mi", "miu", "i", "iu", "bi", "biu", "f", "d", "dc",
		"dt", "dtm", "ts", "tm", "yr", "ch", "vc", "tx", "bl", "bt", "en", "st", "js"}
	// Each row as inserted (SQL literals) and as a client must read it.
	rows := []struct{ sql, want []string }{
		{
			sql: []string{"1", "-128", "255", "-32768", "65535", "-8388608", "16777215", "-2147483648", "4294967295",
				"-9223372036854775808", "18446744073709551615", "1.5", "-2.25e300", "'-12345678901234.123456'",
				"'1000-01-01'", "'2024-02-29 23:59:59.123456'", "'2038-01-19 03:14:07'", "'-838:59:59'", "1901",
				"'ab'", "'hello'", "'some text'", "x'00ff10'", "b'1010101010'", "'b'", "'x,z'", `'{"k": [1, 2]}'`},
			want: []string{"1", "-128", "255", "-32768", "65535", "-8388608", "16777215", "-2147483648", "4294967295",
				"-9223372036854775808", "18446744073709551615", "1.5", "-2.25e+300", "-12345678901234.123456",
				"1000-01-01", "2024-02-29 23:59:59.123456", "2038-01-19 03:14:07", "-838:59:59.000000", "1901",
				"ab", "hello", "some text", "\x00\xff\x10", "\x02\xaa", "b", "x,z", `{"k": [1, 2]}`},
		},
		{
			sql: []string{"2", "127", "0", "32767", "0", "8388607", "0", "2147483647", "0",
				"9223372036854775807", "0", "-0.25", "0.1", "'0.000001'",
				"'9999-12-31'", "'1970-01-01 00:00:00.000001'", "'1970-01-01 00:00:01'", "'-00:00:00.000001'", "2155",
				"''", "''", "''", "''", "b'0'", "'c'", "''", `'[]'`},
			want: []string{"2", "127", "0", "32767", "0", "8388607", "0", "2147483647", "0",
				"9223372036854775807", "0", "-0.25", "0.1", "0.000001",
				"9999-12-31", "1970-01-01 00:00:00.000001", "1970-01-01 00:00:01", "-00:00:00.000001", "2155",
				"", "", "", "", "\x00\x00", "c", "", `[]`},
		},
		{
			sql: []string{"3", "1", "1", "1", "1", "1", "1", "1", "1", "1", "1", "1", "1", "'1'",
				"'2000-01-02'", "'2000-01-02 03:04:05'", "'2000-01-02 03:04:05'", "'-26:03:04.500000'", "2000",
				"'five5'", "'v'", "'t'", "x'01'", "b'1111111111'", "'a'", "'x,y,z'", `'{}'`},
			want: []string{"3", "1", "1", "1", "1", "1", "1", "1", "1", "1", "1", "1", "1", "1.000000",
				"2000-01-02", "2000-01-02 03:04:05.000000", "2000-01-02 03:04:05", "-26:03:04.500000", "2000",
				"five5", "v", "t", "\x01", "\x03\xff", "a", "x,y,z", `{}`},
		},
	}
	for _, r := range rows {
		mustExec(t, db, "INSERT INTO wacc_types VALUES ("+strings.Join(r.sql, ", ")+")")
	}
	allNull := make([]string, len(cols))
	for i := range allNull {
		allNull[i] = "NULL"
	}
	allNull[0] = "4"
	mustExec(t, db, "INSERT INTO wacc_types (id) VALUES (4)")

	want := [][][]string{{}}
	for _, r := range rows {
		want[0] = append(want[0], r.want)
	}
	want[0] = append(want[0], allNull)
	query := "SELECT " + strings.Join(cols, ", ") + " FROM wacc_types WHERE id > ? ORDER BY id"
	for _, via := range []struct {
		name string
		db   *sql.DB
	}{{"proxy", db}, {"direct", tp.direct(t)}} {
		// An argument makes go-sql-driver prepare and execute: binary rows.
		res, err := via.db.Query(query, 0)
		if err != nil {
			t.Fatalf("%s: %v", via.name, err)
		}
		got := readResultSets(t, res)
		if len(got) != 1 || len(got[0]) != len(want[0]) {
			t.Fatalf("%s: got %q", via.name, got)
		}
		for i := range want[0] {
			for j, c := range cols {
				if got[0][i][j] != want[0][i][j] {
					t.Errorf("%s: row %d column %s = %q, want %q", via.name, i+1, c, got[0][i][j], want[0][i][j])
				}
			}
		}
	}
	// The rows as MariaDB sent them, decoded with mysqlwire's binary row
	// reader on a hand-rolled connection through the proxy.
	raw := rawBinaryRows(t, tp, query)
	if len(raw) != len(want[0]) {
		t.Fatalf("mysqlwire decoding: %d rows, want %d", len(raw), len(want[0]))
	}
	for i := range want[0] {
		if !reflect.DeepEqual(raw[i], want[0][i]) {
			t.Errorf("mysqlwire decoding, row %d: %q, want %q", i+1, raw[i], want[0][i])
		}
	}
	// The same rows in the text protocol.
	res, err := db.Query(strings.Replace(query, "?", "0", 1))
	if err != nil {
		t.Fatal(err)
	}
	text := readResultSets(t, res)
	if len(text) != 1 || len(text[0]) != 4 || text[0][3][1] != "NULL" || text[0][0][17] != "-838:59:59.000000" {
		t.Fatalf("text protocol: %q", text)
	}
}

// TestBackendClientLargePackets round-trips a 20 MiB BLOB: a client payload
// (a prepared INSERT) and a server row (read in the binary and the text
// protocol) both larger than one packet (16 MiB - 1).
func TestBackendClientLargePackets(t *testing.T) {
	env := requireMySQL(t)
	root := openRoot(t, env)
	const need = 64 << 20
	var old int64
	if err := root.QueryRow("SELECT @@GLOBAL.max_allowed_packet").Scan(&old); err != nil {
		t.Fatal(err)
	}
	if old < need {
		// Sessions opened from now on (the proxy's backends, the direct
		// check) get the larger limit.
		if _, err := root.Exec(fmt.Sprintf("SET GLOBAL max_allowed_packet = %d", need)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if _, err := root.Exec(fmt.Sprintf("SET GLOBAL max_allowed_packet = %d", old)); err != nil {
				t.Errorf("restoring max_allowed_packet: %v", err)
			}
		})
	}
	tp := startProxy(t, 1, 1, nil)
	blob := make([]byte, 20<<20)
	for i := range blob {
		// Every byte value, and not periodic in 16 MiB, so a chunk
		// dropped, doubled or misplaced at a packet boundary shows.
		blob[i] = byte(i*131 + i>>16)
	}
	db := tp.open(t, "")
	mustExec(t, db, "CREATE OR REPLACE TABLE wacc_blob (id INT PRIMARY KEY, b LONGBLOB)")
	// A prepared INSERT: the COM_STMT_EXECUTE payload spans two packets.
	if _, err := db.Exec("INSERT INTO wacc_blob VALUES (?, ?)", 1, blob); err != nil {
		t.Fatalf("insert: %v", err)
	}
	sum := md5.Sum(blob)
	var length int
	var digest string
	if err := tp.direct(t).QueryRow("SELECT LENGTH(b), MD5(b) FROM wacc_blob WHERE id = 1").Scan(&length, &digest); err != nil ||
		length != len(blob) || digest != hex.EncodeToString(sum[:]) {
		t.Fatalf("the server holds %d bytes with MD5 %s, want %d and %x (%v)", length, digest, len(blob), sum, err)
	}
	for _, c := range []struct {
		name string
		q    string
		args []any
	}{
		{"binary", "SELECT b FROM wacc_blob WHERE id = ?", []any{1}},
		{"text", "SELECT b FROM wacc_blob WHERE id = 1", nil},
	} {
		var got []byte
		if err := db.QueryRow(c.q, c.args...).Scan(&got); err != nil {
			t.Fatalf("%s select: %v", c.name, err)
		}
		if !bytes.Equal(got, blob) {
			t.Fatalf("%s select: %d bytes back, differ from the %d sent", c.name, len(got), len(blob))
		}
	}
	if st := tp.p.Stats(); st.BackendUnknownState != 0 || st.BackendConnects != 1 {
		t.Fatalf("the backend did not survive the large packets: %+v", st)
	}
}

// rawBinaryRows prepares query (one integer parameter, bound to 0) on a raw
// connection through the proxy, executes it and decodes the binary rows with
// mysqlwire, rendering values as go-sql-driver does.
func rawBinaryRows(t *testing.T, tp *testProxy, query string) [][]string {
	t.Helper()
	r := dialRaw(t, tp.addr)
	if p := r.login(testUser, testPassword, mysqlwire.AuthNativePassword, 0); !mysqlwire.IsOK(p) {
		t.Fatalf("login: %s", errText(p))
	}
	prep := r.command(append([]byte{byte(mysqlwire.ComStmtPrepare)}, query...))
	if mysqlwire.IsERR(prep[0]) {
		t.Fatalf("prepare: %s", errText(prep[0]))
	}
	exec := []byte{byte(mysqlwire.ComStmtExecute), 0, 0, 0, 0, mysqlwire.CursorTypeNoCursor, 1, 0, 0, 0,
		0,                                  // NULL bitmap of the one parameter
		1, byte(mysqlwire.TypeLongLong), 0, // new parameters bound: BIGINT
		0, 0, 0, 0, 0, 0, 0, 0} // its value: 0
	copy(exec[1:5], prep[0][1:5])
	resp := r.command(exec)
	if mysqlwire.IsERR(resp[0]) {
		t.Fatalf("execute: %s", errText(resp[0]))
	}
	n := int(resp[0][0])
	var cols []mysqlwire.ColumnDefinition
	for _, p := range resp[1 : 1+n] {
		c, err := mysqlwire.ParseColumnDefinition(p, r.hs.Capabilities)
		if err != nil {
			t.Fatal(err)
		}
		cols = append(cols, c)
	}
	var rows [][]string
	for _, p := range resp[2+n : len(resp)-1] { // after the columns' EOF, before the last
		br, err := mysqlwire.NewBinaryRowReader(p, n)
		if err != nil {
			t.Fatal(err)
		}
		row := make([]string, n)
		for i, c := range cols {
			v, err := br.Next(c.Type, c.Flags&mysqlwire.FlagUnsigned != 0)
			if err != nil {
				t.Fatalf("column %s: %v", c.Name, err)
			}
			row[i] = binaryValueText(v, c.Decimals)
		}
		if br.Remaining() != 0 {
			t.Fatalf("%d bytes left in a binary row", br.Remaining())
		}
		rows = append(rows, row)
	}
	return rows
}

func binaryValueText(v mysqlwire.Value, decimals uint8) string {
	frac := func(us uint32) string {
		if decimals == 0 || decimals > 6 {
			return ""
		}
		return fmt.Sprintf(".%06d", us)[:1+decimals]
	}
	switch {
	case v.Null:
		return "NULL"
	case v.Type == mysqlwire.TypeFloat:
		return strconv.FormatFloat(v.Float, 'g', -1, 32)
	case v.Type == mysqlwire.TypeDouble:
		return strconv.FormatFloat(v.Float, 'g', -1, 64)
	case v.Type == mysqlwire.TypeDate:
		d := v.DateTime
		return fmt.Sprintf("%04d-%02d-%02d", d.Year, d.Month, d.Day)
	case v.Type == mysqlwire.TypeDateTime || v.Type == mysqlwire.TypeTimestamp:
		d := v.DateTime
		return fmt.Sprintf("%04d-%02d-%02d %02d:%02d:%02d", d.Year, d.Month, d.Day, d.Hour, d.Minute, d.Second) +
			frac(d.Microsecond)
	case v.Type == mysqlwire.TypeTime:
		d := v.Duration
		sign := ""
		if d.Negative {
			sign = "-"
		}
		return fmt.Sprintf("%s%02d:%02d:%02d", sign, d.Days*24+uint32(d.Hour), d.Minute, d.Second) + frac(d.Microsecond)
	case v.Bytes != nil:
		return string(v.Bytes)
	case v.Unsigned:
		return strconv.FormatUint(v.Uint, 10)
	default:
		return strconv.FormatInt(v.Int, 10)
	}
}
