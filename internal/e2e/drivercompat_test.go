package e2e

import (
	"bytes"
	"context"
	"crypto/md5"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/scalestack/scalestack/internal/testutil"
)

// Issue 16 ("behave like the server"): real clients send the same statements
// to MariaDB directly and through the proxy, and every answer must be the
// same. This file drives go-sql-driver/mysql with its connector options and
// the mariadb command-line client; nodecompat_test.go drives two Node.js
// drivers. scripts/driver-suites.sh runs the drivers' own suites both ways.

// compatTarget is one side of a comparison: MariaDB direct, logged in as the
// service account (the account the proxy's backends use, so privileges and
// visible schemas are the same), or the proxy with its client account.
type compatTarget struct {
	name, addr, user, password string
}

func compatTargets(p *proxyProcess) [2]compatTarget {
	return [2]compatTarget{
		{"direct", srv.addr, srv.serviceUser, srv.servicePassword},
		{"proxy", p.addr, clientUser, clientPassword},
	}
}

// driverOptions are the go-sql-driver connector options a comparison runs with.
type driverOptions struct {
	db                string
	collation         string
	charset           string // DSN charset=: the driver sends SET NAMES after login
	interpolateParams bool
	multiStatements   bool
	clientFoundRows   bool
	maxAllowedPacket  int
}

func (o driverOptions) String() string {
	var parts []string
	if o.collation != "" {
		parts = append(parts, "collation="+o.collation)
	}
	if o.charset != "" {
		parts = append(parts, "charset="+o.charset)
	}
	parts = append(parts, fmt.Sprintf("interpolateParams=%v", o.interpolateParams))
	if o.multiStatements {
		parts = append(parts, "multiStatements=true")
	}
	if o.clientFoundRows {
		parts = append(parts, "clientFoundRows=true")
	}
	if o.maxAllowedPacket > 0 {
		parts = append(parts, fmt.Sprintf("maxAllowedPacket=%d", o.maxAllowedPacket))
	}
	return strings.Join(parts, ",")
}

func (o driverOptions) dsn(tg compatTarget) string {
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr, c.DBName = tg.user, tg.password, "tcp", tg.addr, o.db
	c.Timeout, c.ReadTimeout, c.WriteTimeout = 10*time.Second, 60*time.Second, 60*time.Second
	c.InterpolateParams = o.interpolateParams
	c.MultiStatements = o.multiStatements
	c.ClientFoundRows = o.clientFoundRows
	if o.collation != "" {
		c.Collation = o.collation
	}
	if o.maxAllowedPacket > 0 {
		c.MaxAllowedPacket = o.maxAllowedPacket
	}
	dsn := c.FormatDSN()
	if o.charset != "" {
		dsn += "&charset=" + o.charset
	}
	return dsn
}

// compareDriver runs script on one connection to each target, opened with
// o, and fails t if the two transcripts differ.
func compareDriver(t *testing.T, p *proxyProcess, o driverOptions, script func(ctx context.Context, c *sql.Conn) []string) {
	t.Helper()
	var got [2][]string
	for i, tg := range compatTargets(p) {
		got[i] = driverTranscript(t, tg, o, script)
	}
	compareTranscripts(t, o.String(), got[0], got[1])
}

func driverTranscript(t *testing.T, tg compatTarget, o driverOptions, script func(ctx context.Context, c *sql.Conn) []string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := sql.Open("mysql", o.dsn(tg))
	if err != nil {
		return []string{"open: " + err.Error()}
	}
	defer db.Close()
	c, err := db.Conn(ctx)
	if err != nil {
		return []string{"connect: " + errAnswer(err)}
	}
	defer c.Close()
	return script(ctx, c)
}

// compareTranscripts reports every line where the proxy's answer differs.
func compareTranscripts(t *testing.T, what string, direct, proxied []string) {
	t.Helper()
	if len(direct) == 0 {
		t.Fatalf("%s: the direct run answered nothing, so the comparison is void", what)
	}
	for i := 0; i < max(len(direct), len(proxied)); i++ {
		var d, p string
		if i < len(direct) {
			d = direct[i]
		}
		if i < len(proxied) {
			p = proxied[i]
		}
		if d != p {
			t.Errorf("%s, step %d:\n  direct: %s\n  proxy:  %s", what, i+1, d, p)
		}
	}
}

// errAnswer renders err as a client sees it: the server's error number, or
// that the connection is gone; never text that names an address.
func errAnswer(err error) string {
	if me, ok := asMySQLError(err); ok {
		return fmt.Sprintf("ERROR %d (%s)", me.Number, string(me.SQLState[:]))
	}
	switch {
	case errors.Is(err, mysql.ErrInvalidConn), errors.Is(err, sql.ErrConnDone), isReset(err),
		strings.Contains(err.Error(), "bad connection"), strings.Contains(err.Error(), "EOF"):
		return "connection lost"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return fmt.Sprintf("client error %T", err)
}

// queryAnswer runs q and renders every result set: the column names, then
// each row's values (NULL or quoted bytes).
func queryAnswer(ctx context.Context, c *sql.Conn, q string, args ...any) string {
	rows, err := c.QueryContext(ctx, q, args...)
	if err != nil {
		return q + " => " + errAnswer(err)
	}
	defer rows.Close()
	var sb strings.Builder
	sb.WriteString(q + " =>")
	for {
		cols, err := rows.Columns()
		if err != nil {
			return sb.String() + " " + errAnswer(err)
		}
		fmt.Fprintf(&sb, " %q:", cols)
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				return sb.String() + " " + errAnswer(err)
			}
			sb.WriteString(" [")
			for i, v := range vals {
				if i > 0 {
					sb.WriteString(" ")
				}
				if v == nil {
					sb.WriteString("NULL")
				} else {
					fmt.Fprintf(&sb, "%q", v)
				}
			}
			sb.WriteString("]")
		}
		if !rows.NextResultSet() {
			break
		}
		sb.WriteString(" ;")
	}
	if err := rows.Err(); err != nil {
		sb.WriteString(" " + errAnswer(err))
	}
	return sb.String()
}

// execAnswer runs q and renders the affected rows and the insert id.
func execAnswer(ctx context.Context, c *sql.Conn, q string, args ...any) string {
	res, err := c.ExecContext(ctx, q, args...)
	if err != nil {
		return q + " => " + errAnswer(err)
	}
	n, err1 := res.RowsAffected()
	id, err2 := res.LastInsertId()
	if err := errors.Join(err1, err2); err != nil {
		return q + " => " + errAnswer(err)
	}
	return fmt.Sprintf("%s => affected %d, insert id %d", q, n, id)
}

// collationSamples pairs collations with text in their character set's own
// encoding (bytes, since go-sql-driver sends strings as they are).
var collationSamples = []struct{ collation, text string }{
	{"latin1_general_ci", "Gr\xfc\xdfe, se\xf1or"},
	{"latin2_general_ci", "\xa3\xf3d\xbc, \xbf\xf3\xb3w"},
	{"cp1257_bin", "\xc0\xfeuolas, \xebgl\xeb"},
	{"sjis_japanese_ci", "\x93\xfa\x96\x7b\x8c\xea"},
	{"koi8r_general_ci", "\xf0\xd2\xc9\xd7\xc5\xd4, \xcd\xc9\xd2"},
	{"cp1251_general_ci", "\xcf\xf0\xe8\xe2\xe5\xf2"},
	{"greek_general_ci", "\xca\xe1\xeb\xe7\xec\xdd\xf1\xe1"},
	{"big5_chinese_ci", "\xa4\xa4\xa4\xe5"},
	{"ujis_japanese_ci", "\xc6\xfc\xcb\xdc"},
	{"gbk_chinese_ci", "\xd6\xd0\xce\xc4"},
	{"binary", "\x00\xff\x80 bytes"},
	{"utf8_general_ci", "na\xc3\xafve \xe2\x82\xac"},
	{"utf8mb4_unicode_ci", "emoji \xf0\x9f\x98\x80 \xe6\x97\xa5\xe6\x9c\xac"},
	{"utf8mb4_bin", "\xce\xa9 \xf0\x9f\x8e\x89"},
}

// TestDriverCompat compares go-sql-driver/mysql's answers direct and through
// the proxy under its connector options, one subtest per issue 16 item.
func TestDriverCompat(t *testing.T) {
	start := time.Now()
	p := startProxy(t, proxyOptions{backendConns: 2, loops: 1})
	base := driverOptions{db: dataSchema}

	// The same mixed script with interpolateParams and multiStatements on
	// and off: comments (item 3), prepared and interpolated arguments,
	// multi-statements, errors, a transaction.
	t.Run("statements", func(t *testing.T) {
		for _, interpolate := range []bool{false, true} {
			for _, multi := range []bool{false, true} {
				o := base
				o.interpolateParams, o.multiStatements = interpolate, multi
				compareDriver(t, p, o, func(ctx context.Context, c *sql.Conn) []string {
					out := []string{
						execAnswer(ctx, c, "DROP TABLE IF EXISTS compat_go"),
						execAnswer(ctx, c, "CREATE TABLE compat_go (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20), d DECIMAL(8,3), t DATETIME(3))"),
						execAnswer(ctx, c, "INSERT INTO compat_go (v, d, t) VALUES (?, ?, ?), (?, ?, ?)",
							"a'b\\c", "12.5", "2024-02-29 12:34:56.789", nil, -1, time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC)),
						queryAnswer(ctx, c, "SELECT id, v, d, t FROM compat_go WHERE id > ? ORDER BY id", 0),
						queryAnswer(ctx, c, "SELECT ? + 1, CONCAT(?, '!'), ? IS NULL", 41, "x", nil),
					}
					for _, q := range []string{"/* only a comment */", "-- only a comment", "# only a comment",
						"/* x */ ;", "/*!40101 */", "SELECT 1 /* trailing */", "   "} {
						out = append(out, execAnswer(ctx, c, q))
					}
					out = append(out,
						queryAnswer(ctx, c, "SELECT 1 AS a; SELECT 'two' AS b"),
						execAnswer(ctx, c, "UPDATE compat_go SET v = 'z' WHERE id = 1; DELETE FROM compat_go WHERE id = 2"),
						queryAnswer(ctx, c, "SELECT * FROM no_such_table"),
						execAnswer(ctx, c, "BEGIN"),
						execAnswer(ctx, c, "INSERT INTO compat_go (v) VALUES ('rolled back')"),
						execAnswer(ctx, c, "ROLLBACK"),
						queryAnswer(ctx, c, "SELECT COUNT(*) FROM compat_go"),
						queryAnswer(ctx, c, "SELECT DATABASE(), @@autocommit, @@sql_mode = @@GLOBAL.sql_mode"),
					)
					return out
				})
			}
		}
	})

	// Item 1: every collation the handshake can name, with text of its
	// character set both ways; and the driver's charset= (SET NAMES).
	t.Run("item1_collations", func(t *testing.T) {
		for _, s := range collationSamples {
			for _, interpolate := range []bool{false, true} {
				o := base
				o.collation, o.interpolateParams = s.collation, interpolate
				compareDriver(t, p, o, func(ctx context.Context, c *sql.Conn) []string {
					return []string{
						queryAnswer(ctx, c, "SELECT @@character_set_client, @@collation_connection, @@character_set_results"),
						queryAnswer(ctx, c, "SELECT ? AS echo, HEX(?) AS hx, CHAR_LENGTH(?) AS n", s.text, s.text, s.text),
					}
				})
			}
		}
		for _, cs := range []string{"latin2", "koi8r", "cp1257", "sjis", "latin1,utf8mb4"} {
			o := base
			o.charset = cs
			compareDriver(t, p, o, func(ctx context.Context, c *sql.Conn) []string {
				return []string{
					queryAnswer(ctx, c, "SELECT @@character_set_client, @@collation_connection, @@character_set_results"),
					execAnswer(ctx, c, "SET CHARACTER SET cp1257"),
					queryAnswer(ctx, c, "SELECT @@character_set_client, @@collation_connection, @@character_set_results"),
					execAnswer(ctx, c, "SET NAMES koi8r COLLATE koi8r_bin"),
					queryAnswer(ctx, c, "SELECT @@collation_connection, HEX(?)", "\xf0\xd2\xc9"),
				}
			})
		}
	})

	// Item 2: an argument and a result of over 16 MiB (more than one wire
	// packet) with maxAllowedPacket at 40 MiB: the argument inlined in the
	// text (interpolateParams) or sent in COM_STMT_EXECUTE or as long data.
	// (TestLongPacketsThroughDriver checks the stored bytes; this compares
	// the answers.)
	t.Run("item2_long_packets", func(t *testing.T) {
		const size = 1<<24 + 1<<10
		big := bytes.Repeat([]byte("x"), size)
		copy(big[size-3:], "end")
		sum := md5.Sum(big)
		want := hex.EncodeToString(sum[:])
		for _, interpolate := range []bool{false, true} {
			o := base
			o.interpolateParams, o.maxAllowedPacket = interpolate, 40<<20
			compareDriver(t, p, o, func(ctx context.Context, c *sql.Conn) []string {
				// One copy of the argument, and no derived table (the server would
				// write a 16 MiB one to its tmpdir).
				out := []string{queryAnswer(ctx, c, "SELECT MD5(?) = ?", big, want)}
				if !interpolate { // the result's way does not depend on the option
					var r []byte
					err := c.QueryRowContext(ctx, "SELECT REPEAT('y', ?)", size).Scan(&r)
					out = append(out, fmt.Sprintf("REPEAT: %d bytes, all y: %v, %v", len(r),
						len(bytes.Trim(r, "y")) == 0, errAnswerOrNil(err)))
				}
				return out
			})
		}
	})

	// Item 8: no default schema.
	t.Run("item8_no_schema", func(t *testing.T) {
		for _, interpolate := range []bool{false, true} {
			o := driverOptions{interpolateParams: interpolate}
			compareDriver(t, p, o, func(ctx context.Context, c *sql.Conn) []string {
				return []string{
					queryAnswer(ctx, c, "SELECT DATABASE()"),
					queryAnswer(ctx, c, "SELECT COUNT(*) FROM compat_go"),
					execAnswer(ctx, c, "USE "+dataSchema),
					queryAnswer(ctx, c, "SELECT DATABASE()"),
				}
			})
		}
	})

	// Item 4: matched rows with clientFoundRows, changed rows without.
	for _, found := range []bool{false, true} {
		t.Run(fmt.Sprintf("item4_client_found_rows=%v", found), func(t *testing.T) {
			if found {
			}
			for _, interpolate := range []bool{false, true} {
				o := base
				o.clientFoundRows, o.interpolateParams = found, interpolate
				compareDriver(t, p, o, func(ctx context.Context, c *sql.Conn) []string {
					return []string{
						execAnswer(ctx, c, "DROP TABLE IF EXISTS compat_found"),
						execAnswer(ctx, c, "CREATE TABLE compat_found (id INT PRIMARY KEY, v INT NOT NULL)"),
						execAnswer(ctx, c, "INSERT INTO compat_found VALUES (1, 1), (2, 2), (3, 3)"),
						execAnswer(ctx, c, "UPDATE compat_found SET v = ? WHERE id IN (1, 2, 3)", 1),
						execAnswer(ctx, c, "UPDATE compat_found SET v = 1"),
						execAnswer(ctx, c, "INSERT INTO compat_found VALUES (1, 1) ON DUPLICATE KEY UPDATE v = 1"),
					}
				})
			}
		})
	}

	// Item 5: the greeting offers MariaDB's extended type metadata when the
	// server does (what the mariadb Node.js driver's JSON mapping needs).
	t.Run("item5_extended_capabilities", func(t *testing.T) {
		const extendedTypeInfo = 1 << 3 // MARIADB_CLIENT_EXTENDED_TYPE_INFO, bit 35
		direct, proxied := greeting(t, srv.addr), greeting(t, p.addr)
		if direct.extCaps&extendedTypeInfo == 0 {
			t.Fatalf("MariaDB offers no extended type metadata (extended capabilities %#x)", direct.extCaps)
		}
		if proxied.extCaps&extendedTypeInfo == 0 {
			t.Errorf("MariaDB offers extended capabilities %#x, the proxy %#x (no extended type metadata)",
				direct.extCaps, proxied.extCaps)
		}
		// go-sql-driver does not ask for the metadata: the proxy's backends
		// have it, and cut it out of the column definitions of JSON, INET6,
		// UUID and POINT columns (where it is not empty), text and binary.
		for _, interpolate := range []bool{false, true} {
			o := base
			o.interpolateParams = interpolate
			compareDriver(t, p, o, func(ctx context.Context, c *sql.Conn) []string {
				return []string{
					execAnswer(ctx, c, "DROP TABLE IF EXISTS compat_ext"),
					execAnswer(ctx, c, "CREATE TABLE compat_ext (doc JSON, addr INET6, u UUID, p POINT)"),
					execAnswer(ctx, c, "INSERT INTO compat_ext VALUES ('{\"a\": [1, 2]}', '::1', "+
						"'123e4567-e89b-12d3-a456-426655440000', POINT(1, 2))"),
					queryAnswer(ctx, c, "SELECT doc, addr, u, ST_AsText(p), p FROM compat_ext WHERE ? = 1", 1),
				}
			})
		}
	})

	// Item 7: one id wherever the session can see it: CONNECTION_ID() in
	// any expression, with other columns, prepared or not, with the column
	// named as the server names it. (The processlist is the backends' view,
	// a documented difference: TestProcesslistIsTheBackends.)
	t.Run("item7_connection_id", func(t *testing.T) {
		for _, interpolate := range []bool{false, true} {
			o := base
			o.interpolateParams = interpolate
			compareDriver(t, p, o, func(ctx context.Context, c *sql.Conn) []string {
				var id string
				if err := c.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
					return []string{"SELECT CONNECTION_ID(): " + errAnswer(err)}
				}
				// same reports whether q answers the id; label stands for q
				// in the transcript, since q may hold the id itself.
				same := func(label, q string, args ...any) string {
					var got sql.NullString
					err := c.QueryRowContext(ctx, q, args...).Scan(&got)
					return fmt.Sprintf("%s is CONNECTION_ID(): %v %v", label, got.String == id, errAnswerOrNil(err))
				}
				// names renders the column names of q's result.
				names := func(q string, args ...any) string {
					rows, err := c.QueryContext(ctx, q, args...)
					if err != nil {
						return q + ": " + errAnswer(err)
					}
					defer rows.Close()
					cols, err := rows.Columns()
					return fmt.Sprintf("%s: columns %q %v", q, cols, errAnswerOrNil(err))
				}
				return []string{
					same("CONNECTION_ID() + 0", "SELECT CONNECTION_ID() + 0"),
					same("CONNECTION_ID() + ?", "SELECT CONNECTION_ID() + ?", 0),
					same("CONNECTION_ID() with another column", "SELECT CONNECTION_ID() AS id, 1 AS one LIMIT ?", 1),
					same("a subquery", "SELECT (SELECT CONNECTION_ID()) FROM DUAL WHERE ? = 1", 1),
					same("CONCAT", "SELECT CONCAT('', CONNECTION_ID())"),
					same("a comparison", "SELECT CONNECTION_ID() = "+id+" AND ? = 1", 1),
					names("SELECT CONNECTION_ID() + 0, connection_id()*1 AS x, 1 + CONNECTION_ID( ) WHERE ? = 1", 1),
					names("SELECT 'CONNECTION_ID()' AS s, `CONNECTION_ID()`.a FROM (SELECT 1 AS a) AS `CONNECTION_ID()`"),
					execAnswer(ctx, c, "KILL CONNECTION_ID()"),
				}
			})
		}
	})

	// Item 9: KILL QUERY from another connection of the same account cancels
	// the running statement; the session stays usable.
	t.Run("item9_kill_query", func(t *testing.T) {
		var got [2][]string
		for i, tg := range compatTargets(p) {
			got[i] = killQueryTranscript(t, tg)
		}
		compareTranscripts(t, "KILL QUERY", got[0], got[1])
	})

	p.requireAlive(t)
	t.Logf("TestDriverCompat took %v", time.Since(start).Round(time.Millisecond))
}

// TestProcesslistIsTheBackends (issue 16, item 7; a documented
// difference): SHOW PROCESSLIST and information_schema.PROCESSLIST through
// the proxy show the server's threads, the backends', whose ids are not the
// sessions': no row has the session's id, and the rows of the service
// account are the proxy's backends.
func TestProcesslistIsTheBackends(t *testing.T) {
	p := startProxy(t, proxyOptions{backendConns: 2, loops: 1})
	db := openProxyDB(t, p.addr, dataSchema, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var id string
	if err := c.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
		t.Fatal(err)
	}
	if got := showProcesslistLists(ctx, c, id); got != "SHOW PROCESSLIST lists the id: false ok" {
		t.Errorf("%s, want false: SHOW PROCESSLIST is the server's", got)
	}
	var n int
	if err := c.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()").Scan(&n); err != nil || n != 0 {
		t.Errorf("information_schema.PROCESSLIST rows with the session's id: %d %v, want 0", n, err)
	}
	if err := c.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ?", srv.serviceUser).Scan(&n); err != nil || n != 2 {
		t.Errorf("processlist rows of the service account: %d %v, want the 2 backends", n, err)
	}
}

// showProcesslistLists reports whether SHOW PROCESSLIST has a row whose Id
// is id.
func showProcesslistLists(ctx context.Context, c *sql.Conn, id string) string {
	rows, err := c.QueryContext(ctx, "SHOW PROCESSLIST")
	if err != nil {
		return "SHOW PROCESSLIST: " + errAnswer(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return "SHOW PROCESSLIST: " + errAnswer(err)
	}
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	found := false
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return "SHOW PROCESSLIST: " + errAnswer(err)
		}
		found = found || string(vals[0]) == id
	}
	return fmt.Sprintf("SHOW PROCESSLIST lists the id: %v %v", found, errAnswerOrNil(rows.Err()))
}

func errAnswerOrNil(err error) string {
	if err == nil {
		return "ok"
	}
	return errAnswer(err)
}

// killQueryTranscript runs SELECT SLEEP(10) on one connection of tg, kills
// it with KILL QUERY from a second one, and reports what both see.
func killQueryTranscript(t *testing.T, tg compatTarget) []string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := sql.Open("mysql", driverOptions{db: dataSchema}.dsn(tg))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	victim, err := db.Conn(ctx)
	if err != nil {
		t.Fatalf("%s: %v", tg.name, err)
	}
	defer victim.Close()
	killer, err := db.Conn(ctx)
	if err != nil {
		t.Fatalf("%s: %v", tg.name, err)
	}
	defer killer.Close()
	var id string
	if err := victim.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
		t.Fatalf("%s: %v", tg.name, err)
	}
	var wg sync.WaitGroup
	var sleep string
	wg.Add(1)
	go func() {
		defer wg.Done()
		sleep = queryAnswer(ctx, victim, "SELECT SLEEP(10)")
	}()
	time.Sleep(500 * time.Millisecond)
	kill := execAnswer(ctx, killer, "KILL QUERY "+id)
	wg.Wait()
	return []string{
		strings.ReplaceAll(kill, id, "<victim>"),
		sleep,
		queryAnswer(ctx, victim, "SELECT 'still usable'"),
	}
}

// TestPreparedStatementsClosed (issue 16 item 6): statements a client closed
// must not stay open on the server. On a private MariaDB (the count is
// global), 300 statements prepared and closed one after the other leave the
// server's Prepared_stmt_count where it was, and with max_prepared_stmt_count
// at 50 none of them is refused with 1461; both direct and through the proxy.
func TestPreparedStatementsClosed(t *testing.T) {
	start := time.Now()
	priv := privateServer(t)
	if _, err := priv.root.Exec("SET GLOBAL max_prepared_stmt_count = 50"); err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, proxyOptions{backend: priv, backendConns: 1, loops: 1})
	targets := [2]compatTarget{
		{"direct", priv.addr, priv.serviceUser, priv.servicePassword},
		{"proxy", p.addr, clientUser, clientPassword},
	}
	var got [2][]string
	for i, tg := range targets {
		o := driverOptions{interpolateParams: false}
		got[i] = driverTranscript(t, tg, o, func(ctx context.Context, c *sql.Conn) []string {
			before := preparedStmtCount(t, priv)
			refused := 0
			var first string
			for k := 0; k < 300; k++ {
				var v int
				err := c.QueryRowContext(ctx, fmt.Sprintf("SELECT ? + %d", k), 1).Scan(&v)
				if err != nil {
					refused++
					if first == "" {
						first = fmt.Sprintf("statement %d: %s", k, errAnswer(err))
					}
				}
			}
			// The driver sends the last COM_STMT_CLOSE without waiting for
			// an answer (the protocol has none), and through the proxy it
			// takes one more hop to reach the server: give the count up to
			// 2 s to settle before reading it, on both sides alike.
			left := preparedStmtCount(t, priv) - before
			for deadline := time.Now().Add(2 * time.Second); left > 0 && time.Now().Before(deadline); {
				time.Sleep(20 * time.Millisecond)
				left = preparedStmtCount(t, priv) - before
			}
			return []string{
				fmt.Sprintf("refused: %d %s", refused, first),
				fmt.Sprintf("statements left open on the server: %d", left),
			}
		})
	}
	compareTranscripts(t, "300 statements prepared and closed", got[0], got[1])
	p.requireAlive(t)
	t.Logf("TestPreparedStatementsClosed took %v", time.Since(start).Round(time.Millisecond))
}

// privateServer starts a MariaDB of the test's own (for global settings
// and counts no other package's tests may see) with root connections open.
func privateServer(t *testing.T) *server {
	t.Helper()
	priv := testutil.PrivateMariaDB(t)
	b := &server{addr: priv.Addr, rootUser: priv.RootUser, rootPassword: priv.RootPassword,
		serviceUser: priv.User, servicePassword: priv.Password, servicePasswordFile: priv.PasswordFile}
	if err := b.openRoot(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.root.Close() })
	return b
}

func preparedStmtCount(t *testing.T, s *server) int {
	t.Helper()
	var name string
	var n int
	if err := s.root.QueryRow("SHOW GLOBAL STATUS LIKE 'Prepared_stmt_count'").Scan(&name, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestMariaDBCLICharsets runs the mariadb client with several
// --default-character-set values direct and through the proxy (items 1 and
// 3): the character set of the handshake, text in it, the client's charset
// command (SET NAMES), and comment-only statements it sends with --comments.
func TestMariaDBCLICharsets(t *testing.T) {
	start := time.Now()
	p := startProxy(t, proxyOptions{backendConns: 2, loops: 1})
	defaults := func(name, user, password string) string {
		f := filepath.Join(workDir, name+".cnf")
		body := fmt.Sprintf("[client]\nuser=%s\npassword=%s\n", user, password)
		if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	targets := []struct{ addr, defaultsFile string }{
		{srv.addr, defaults("cli-direct", srv.serviceUser, srv.servicePassword)},
		{p.addr, defaults("cli-proxy", clientUser, clientPassword)},
	}
	for _, s := range []struct{ charset, text string }{
		{"latin1", "Gr\xfc\xdfe"},
		{"latin2", "\xa3\xf3d\xbc"},
		{"cp1257", "\xc0\xfeuolas"},
		{"koi8r", "\xf0\xd2\xc9\xd7\xc5\xd4"},
		{"cp1251", "\xcf\xf0\xe8\xe2\xe5\xf2"},
		{"sjis", "\x93\xfa\x96\x7b"},
		{"greek", "\xca\xe1\xeb\xe7"},
		{"utf8mb3", "na\xc3\xafve"},
		{"utf8mb4", "\xf0\x9f\x98\x80"},
	} {
		stdin := []byte("SELECT @@character_set_client, @@character_set_results, @@collation_connection;\n" +
			"SELECT HEX('" + s.text + "') AS hx, CHAR_LENGTH('" + s.text + "') AS n, '" + s.text + "' AS echo;\n" +
			"/* only a comment */;\n-- only a comment\n" +
			"charset latin2\n" +
			"SELECT @@character_set_client, HEX('\xa3\xf3d');\n" +
			"SET NAMES " + s.charset + ";\n" +
			"SELECT @@collation_connection, DATABASE();\n")
		var out [2]string
		for i, tg := range targets {
			host, port := splitAddr(t, tg.addr)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			b, err := runCommand(ctx, stdin, "mariadb", "--defaults-file="+tg.defaultsFile, "--host", host,
				"--port", port, "--protocol", "tcp", "--batch", "--comments", "--default-character-set="+s.charset, dataSchema)
			cancel()
			out[i] = string(b)
			if err != nil {
				out[i] += "\nexit: " + err.Error()
			}
		}
		if !strings.Contains(out[0], "character_set_client") || strings.Contains(out[0], "exit:") {
			t.Fatalf("--default-character-set=%s: the direct session failed, so the fixture is broken:\n%s", s.charset, out[0])
		}
		if out[0] != out[1] {
			t.Errorf("--default-character-set=%s: the session through the proxy differs:\n%s", s.charset, lineDiff(out[0], out[1]))
		}
	}
	p.requireAlive(t)
	t.Logf("TestMariaDBCLICharsets took %v", time.Since(start).Round(time.Millisecond))
}
