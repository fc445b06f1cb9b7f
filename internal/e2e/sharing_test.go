package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"
)

// Safe sharing: whatever one client does to its server session, other
// clients on the same backends must see exactly what a connection of their
// own to the server would show. Each scenario lets a victim's (or an
// attacker's) session change state in a way the proxy does not see in the
// statement text, then checks 40 later sessions of another account on the
// same two backends, while the first session is still connected and again
// after it has gone, and checks the pool is whole afterwards.

const (
	sharingLock  = "e2e_sharing_lock"
	sharingTemp  = dataSchema + ".sharing_planted"
	sharingProcs = dataSchema + ".sharing_"
)

// sharingDefaults are the server's defaults for the state the scenarios
// change, as a fresh connection shows them.
type sharingDefaults struct {
	autocommit, sqlMode, selectLimit string
}

func probeSharingDefaults(ctx context.Context, t *testing.T) sharingDefaults {
	t.Helper()
	var d sharingDefaults
	if err := rootDB.QueryRowContext(ctx, "SELECT @@GLOBAL.autocommit, @@GLOBAL.sql_mode, @@GLOBAL.sql_select_limit").
		Scan(&d.autocommit, &d.sqlMode, &d.selectLimit); err != nil {
		t.Fatal(err)
	}
	return d
}

// checkOthers opens 40 sessions of otherUser one after the other (each a
// new client connection) and checks that each sees the server's defaults.
func checkOthers(ctx context.Context, t *testing.T, addr string, d sharingDefaults, when string) {
	t.Helper()
	other := openOtherDB(t, addr, dataSchema)
	other.SetMaxIdleConns(0) // every session is a new client connection
	for i := 0; i < 40; i++ {
		conn, err := other.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() }) // also when a check fails
		var autocommit, sqlMode, limit string
		var inTrans, userVar, lockMine sql.NullInt64
		err = conn.QueryRowContext(ctx, "SELECT @@autocommit, @@sql_mode, @@sql_select_limit, @@in_transaction, "+
			// @@pseudo_thread_id: the server connection's id (the proxy
			// answers CONNECTION_ID() with the session's).
			"@sharing_v, IS_USED_LOCK('"+sharingLock+"') = @@pseudo_thread_id").
			Scan(&autocommit, &sqlMode, &limit, &inTrans, &userVar, &lockMine)
		if err != nil {
			t.Fatalf("%s: session %d of %s: %v", when, i, otherUser, err)
		}
		if autocommit != d.autocommit || sqlMode != d.sqlMode || limit != d.selectLimit || inTrans.Int64 != 0 ||
			userVar.Valid || lockMine.Int64 != 0 {
			t.Fatalf("%s: session %d of %s sees autocommit %s, sql_mode %q, sql_select_limit %s, in_transaction %d, "+
				"@sharing_v %v, holds the lock: %v; a fresh connection sees autocommit %s, sql_mode %q, "+
				"sql_select_limit %s, no transaction, no variable, no lock",
				when, i, otherUser, autocommit, sqlMode, limit, inTrans.Int64, userVar, lockMine.Int64 == 1,
				d.autocommit, d.sqlMode, d.selectLimit)
		}
		var n int
		err = conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+sharingTemp).Scan(&n)
		if me, ok := asMySQLError(err); !ok || me.Number != 1146 {
			t.Fatalf("%s: session %d of %s reads another session's temporary table: %d rows, %v (want ERROR 1146)",
				when, i, otherUser, n, err)
		}
		conn.Close()
	}
}

// TestSharingUnseenState runs the scenarios of state changes the statement
// text does not show (issue 15): prepared SETs, EXECUTE IMMEDIATE, prepared
// CREATE TEMPORARY TABLE, prepared GET_LOCK and SELECT ... INTO @v, XA, and
// procedures that change session state, with and without an error.
func TestSharingUnseenState(t *testing.T) { testSharingUnseenState(t, false) }

// TestSharingUnseenState55: the same in 5.5 mode, where backends report
// nothing (no CLIENT_SESSION_TRACK): the scanner's allowlist pins CALL,
// EXECUTE and XA, and a failed one is reset with COM_CHANGE_USER.
func TestSharingUnseenState55(t *testing.T) { testSharingUnseenState(t, true) }

func testSharingUnseenState(t *testing.T, mysql55 bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, q := range []string{
		"DROP PROCEDURE IF EXISTS " + sharingProcs + "set_then_fail",
		"CREATE PROCEDURE " + sharingProcs + "set_then_fail() BEGIN SET SESSION sql_select_limit = 1; " +
			"SET @sharing_v = 1; SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'sharing: failed on purpose'; END",
		"DROP PROCEDURE IF EXISTS " + sharingProcs + "set_var",
		"CREATE PROCEDURE " + sharingProcs + "set_var() SET @sharing_v = 2",
	} {
		if _, err := rootDB.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	d := probeSharingDefaults(ctx, t)
	p := startProxy(t, proxyOptions{backendConns: 2, loops: 1, mysql55: mysql55})

	for _, tc := range []struct {
		name string
		// act changes the session's state; it reports an error only when
		// the statement did not answer as the server would.
		act func(*sql.Conn) error
	}{
		{"prepared SET autocommit", func(c *sql.Conn) error {
			// Another client's INSERT on that backend would be rolled
			// back later (autocommit off): checkOthers sees autocommit.
			return prepExec(ctx, c, "SET autocommit = ?", 0)
		}},
		{"prepared SET sql_mode", func(c *sql.Conn) error {
			return prepExec(ctx, c, "SET sql_mode = ?", "NO_BACKSLASH_ESCAPES")
		}},
		{"EXECUTE IMMEDIATE SET SESSION", func(c *sql.Conn) error {
			_, err := c.ExecContext(ctx, "EXECUTE IMMEDIATE 'SET SESSION sql_select_limit = 1'")
			return err
		}},
		{"prepared CREATE TEMPORARY TABLE", func(c *sql.Conn) error {
			if err := prepExec(ctx, c, "CREATE TEMPORARY TABLE "+sharingTemp+" (v INT)"); err != nil {
				return err
			}
			return prepExec(ctx, c, "INSERT INTO "+sharingTemp+" VALUES (?)", 666)
		}},
		{"prepared GET_LOCK", func(c *sql.Conn) error {
			var got int
			if err := c.QueryRowContext(ctx, "SELECT GET_LOCK(?, 0)", sharingLock).Scan(&got); err != nil || got != 1 {
				return errors.Join(err, errors.New("GET_LOCK did not return 1"))
			}
			return nil
		}},
		{"prepared SELECT INTO @v", func(c *sql.Conn) error {
			return prepExec(ctx, c, "SELECT ? INTO @sharing_v", 7)
		}},
		{"EXECUTE IMMEDIATE SELECT @v:=", func(c *sql.Conn) error {
			_, err := c.ExecContext(ctx, "EXECUTE IMMEDIATE 'SELECT @sharing_v := 3'")
			return err
		}},
		{"XA START", func(c *sql.Conn) error {
			_, err := c.ExecContext(ctx, "XA START 'e2e_sharing_xa'")
			return err
		}},
		{"CALL that sets state", func(c *sql.Conn) error {
			_, err := c.ExecContext(ctx, "CALL "+sharingProcs+"set_var()")
			return err
		}},
		{"CALL that sets state then SIGNALs", func(c *sql.Conn) error {
			_, err := c.ExecContext(ctx, "CALL "+sharingProcs+"set_then_fail()")
			if me, ok := asMySQLError(err); !ok || me.Number != 1644 {
				return errors.Join(err, errors.New("want ERROR 1644 from the procedure's SIGNAL"))
			}
			// The session goes on: its next statements answer.
			var one int
			return c.QueryRowContext(ctx, "SELECT 1").Scan(&one)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			victimDB := openProxyDB(t, p.addr, dataSchema, nil)
			victimDB.SetMaxIdleConns(0)
			victim, err := victimDB.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { victim.Close() })
			if err := tc.act(victim); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			checkOthers(ctx, t, p.addr, d, "while the first session is connected")
			victim.Close()
			checkOthers(ctx, t, p.addr, d, "after the first session left")
			var free int
			if err := rootDB.QueryRowContext(ctx, "SELECT IS_FREE_LOCK('"+sharingLock+"')").Scan(&free); err != nil || free != 1 {
				t.Fatalf("the lock after its holder left: free %d, %v", free, err)
			}
		})
	}
	p.requireAlive(t)
	p.waitBackendCount(t, 2, 10*time.Second)
	rootDB.ExecContext(ctx, "XA ROLLBACK 'e2e_sharing_xa'") // in case a failed run left it prepared
}

// TestSharingRelayedOK: backends report session state in their OK packets;
// clients, which did not ask for CLIENT_SESSION_TRACK, must get OK packets
// in their own layout: the info text as it is, no tracking data, no
// SERVER_SESSION_STATE_CHANGED.
func TestSharingRelayedOK(t *testing.T) {
	p := startProxy(t, proxyOptions{backendConns: 1, loops: 1})
	c, err := dialRaw(p.addr, clientUser, clientPassword, rawOptions{db: dataSchema})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.setDeadline(30 * time.Second)
	if _, err := rootDB.Exec("REPLACE INTO " + dataSchema + ".kv VALUES (15002, 15, 'ok')"); err != nil {
		t.Fatal(err)
	}
	// MariaDB writes the info text length-prefixed to every client.
	for _, tc := range []struct{ sql, info string }{
		{"USE " + dataSchema, ""},
		{"SET sql_mode = 'STRICT_ALL_TABLES'", ""},
		{"SET @a = 1", ""},
		{"UPDATE " + dataSchema + ".kv SET val = 'ok' WHERE id = 15002", "(Rows matched: 1  Changed: 0  Warnings: 0"},
		{"BEGIN", ""},
		{"COMMIT", ""},
	} {
		if err := c.writeCommand(comQuery, []byte(tc.sql)); err != nil {
			t.Fatal(err)
		}
		pkt, err := c.readPacket()
		if err != nil {
			t.Fatal(err)
		}
		if len(pkt) < 7 || pkt[0] != 0 {
			t.Fatalf("%s: want an OK packet, got %x", tc.sql, pkt)
		}
		r, err := parseOK(pkt)
		if err != nil {
			t.Fatal(err)
		}
		_, w1, _ := lenenc(pkt[1:])
		_, w2, _ := lenenc(pkt[1+w1:])
		info := pkt[1+w1+w2+4:]
		if r.status&0x4000 != 0 || !bytes.Equal(info, []byte(tc.info)) {
			t.Fatalf("%s: OK status %#04x, info %q; want no SERVER_SESSION_STATE_CHANGED and info %q",
				tc.sql, r.status, info, tc.info)
		}
	}
}

// prepExec runs a statement through COM_STMT_PREPARE and COM_STMT_EXECUTE
// (the driver sends one without arguments as text otherwise).
func prepExec(ctx context.Context, c *sql.Conn, q string, args ...any) error {
	st, err := c.PrepareContext(ctx, q)
	if err != nil {
		return err
	}
	defer st.Close()
	_, err = st.ExecContext(ctx, args...)
	return err
}

// TestSharingDiagnostics: a session's warnings stay its own. The one
// backend that a session keeps for its diagnostics is taken by another
// account's SHOW WARNINGS, 40 times: the other sees none of them, and the
// first session, whose backend was taken, sees none of the other's either.
func TestSharingDiagnostics(t *testing.T) {
	for _, mysql55 := range []bool{false, true} {
		t.Run(map[bool]string{false: "tracking", true: "mysql55"}[mysql55], func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			p := startProxy(t, proxyOptions{backendConns: 1, loops: 1, mysql55: mysql55})
			victimDB := openProxyDB(t, p.addr, dataSchema, nil)
			victim, err := victimDB.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { victim.Close() })
			other := openOtherDB(t, p.addr, dataSchema)
			other.SetMaxIdleConns(0)
			for i := 0; i < 40; i++ {
				var v int
				if err := victim.QueryRowContext(ctx, "SELECT CAST('victim-secret' AS INT)").Scan(&v); err != nil {
					t.Fatal(err)
				}
				conn, err := other.Conn(ctx)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { conn.Close() })
				if got := warningTexts(ctx, t, conn); got != "" {
					t.Fatalf("round %d: %s's SHOW WARNINGS shows %q: another session's diagnostics", i, otherUser, got)
				}
				var count int
				if err := conn.QueryRowContext(ctx, "SELECT @@warning_count").Scan(&count); err != nil || count != 0 {
					t.Fatalf("round %d: %s's @@warning_count = %d, %v; want 0", i, otherUser, count, err)
				}
				// Now the other leaves warnings, and the victim (whose
				// backend was taken) asks for its own.
				if err := conn.QueryRowContext(ctx, "SELECT CAST('other-secret' AS INT)").Scan(&v); err != nil {
					t.Fatal(err)
				}
				if got := warningTexts(ctx, t, victim); got != "" && !bytes.Contains([]byte(got), []byte("victim-secret")) {
					t.Fatalf("round %d: the first session's SHOW WARNINGS shows %q: another session's diagnostics", i, got)
				}
				conn.Close()
			}
			p.requireAlive(t)
			p.waitBackendCount(t, 1, 10*time.Second)
		})
	}
}

// warningTexts runs SHOW WARNINGS and joins the messages.
func warningTexts(ctx context.Context, t *testing.T, c *sql.Conn) string {
	t.Helper()
	rows, err := c.QueryContext(ctx, "SHOW WARNINGS")
	if err != nil {
		t.Fatalf("SHOW WARNINGS: %v", err)
	}
	defer rows.Close()
	var out []byte
	for rows.Next() {
		var level, msg string
		var code int
		if err := rows.Scan(&level, &code, &msg); err != nil {
			t.Fatal(err)
		}
		out = append(append(out, msg...), ';')
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return string(out)
}
