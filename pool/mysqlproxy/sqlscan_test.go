package mysqlproxy

import (
	"testing"
)

func TestScanQuery(t *testing.T) {
	cases := []struct {
		sql     string
		kind    stmtKind
		feats   uint32
		arg     string
		colName string
	}{
		{"SELECT 1", stmtSelect, 0, "", ""},
		{"  /* hi */ select c from t where id = 5", stmtSelect, 0, "", ""},
		{"", stmtEmpty, 0, "", ""},
		{" \t\n", stmtEmpty, 0, "", ""},
		// MariaDB answers text that is only comments with OK, not 1065.
		{"-- only a comment\n", stmtOther, 0, "", ""},
		{"# hash comment", stmtOther, 0, "", ""},
		{"/* c */", stmtOther, 0, "", ""},
		{"/*! */", stmtOther, 0, "", ""},
		{"SELECT CONNECTION_ID()", stmtConnectionID, featConnID, "", "CONNECTION_ID()"},
		{"SHOW STATUS LIKE 'Ssl_cipher'", stmtShowSSL, 0, "Ssl_cipher", ""},
		{"show session status like \"ssl%\";", stmtShowSSL, 0, "ssl%", ""},
		{"SHOW LOCAL STATUS LIKE 'SSL_VERSION'", stmtShowSSL, 0, "SSL_VERSION", ""},
		{"SHOW STATUS LIKE 'Ssl\\_cipher'", stmtOther, 0, "", ""},      // an escape: the server decodes it
		{"SHOW STATUS LIKE 'S%'", stmtOther, 0, "", ""},                // matches more than Ssl_
		{"SHOW GLOBAL STATUS LIKE 'Ssl_cipher'", stmtOther, 0, "", ""}, // the server's, not the connection's
		{"SHOW STATUS LIKE 'Ssl_cipher'; SELECT 1", stmtOther, featMulti, "", ""},
		{"select connection_id() as cid;", stmtConnectionID, featConnID, "", "cid"},
		{"SELECT LAST_INSERT_ID()", stmtLastInsertID, 0, "", "LAST_INSERT_ID()"},
		{"SELECT LAST_INSERT_ID(5)", stmtSelect, featLastIDRead | featLastIDWrite, "", ""},
		{"SELECT CONNECTION_ID(), 1", stmtSelect, featConnID, "", ""},
		{"USE scalestack_test", stmtUse, 0, "scalestack_test", ""},
		{"use `odd``name`;", stmtUse, 0, "odd``name", ""},
		{"USE a b", stmtOther, 0, "a", ""},
		// Unterminated or introducer-quoted names: left to the server (a
		// fuzzer found the unterminated alias panicking the scanner).
		{`SELECT CONNECTION_ID() AS "cid"`, stmtConnectionID, featConnID, "", "cid"},
		{`seleCt ConneCtion_id()"`, stmtSelect, featBad | featConnID, "", ""},
		{"SELECT LAST_INSERT_ID() `x", stmtSelect, featBad | featLastIDRead | featLastIDWrite, "", ""},
		{`USE "`, stmtOther, featBad, "", ""},
		{"USE 'db'", stmtUse, 0, "db", ""},
		{"USE _utf8'db'", stmtOther, 0, "", ""},
		{"KILL 12", stmtKill, 0, "12", ""},
		{"kill query 7", stmtKill, 0, "7", ""},
		{"KILL CONNECTION 9;", stmtKill, 0, "9", ""},
		{"KILL USER bob", stmtKill, 0, "", ""},
		{"LOCK TABLES t WRITE", stmtLock, 0, "", ""},
		{"unlock tables", stmtUnlock, 0, "", ""},
		{"FLUSH TABLES WITH READ LOCK", stmtFlushLock, 0, "", ""},
		{"FLUSH TABLES", stmtOther, 0, "", ""},
		{"PREPARE s FROM 'SELECT 1'", stmtPrepare, 0, "", ""},
		{"LOAD DATA LOCAL INFILE 'x' INTO TABLE t", stmtLoadLocal, featLastIDWrite, "", ""},
		{"LOAD DATA INFILE 'x' INTO TABLE t", stmtOther, featLastIDWrite, "", ""},
		{"CREATE TEMPORARY TABLE t (a int)", stmtCreateTemp, featTempTable, "", ""},
		{"CREATE TABLE t (a int)", stmtOther, 0, "", ""},
		{"SET @a = 1", stmtSet, featUserVar, "", ""},
		{"SELECT @a", stmtSelect, featUserVar, "", ""},
		{"SELECT '@a', \"@b\", `@c`", stmtSelect, 0, "", ""},
		{"SELECT @@session.autocommit", stmtSelect, 0, "", ""},
		{"SELECT x := 1", stmtSelect, featUserVar, "", ""},
		{"SELECT GET_LOCK('l', 1)", stmtSelect, featGetLock, "", ""},
		{"SELECT 'GET_LOCK(' FROM t", stmtSelect, 0, "", ""},
		{"SELECT SQL_CALC_FOUND_ROWS * FROM t", stmtSelect, featCalcFoundRows, "", ""},
		{"SELECT 1; SELECT 2", stmtSelect, featMulti, "", ""},
		{"SELECT 1;", stmtSelect, 0, "", ""},
		{"SELECT 1; SET NAMES utf8", stmtSelect, featMulti | featSet, "", ""},
		{"SELECT 1; USE x", stmtSelect, featMulti | featUse, "", ""},
		{"SELECT 1; LOCK TABLES t READ", stmtSelect, featMulti | featLockTables, "", ""},
		{"SELECT 'a;b'", stmtSelect, 0, "", ""},
		{"SELECT 'it''s'; SELECT 2", stmtSelect, featMulti, "", ""},
		{"SELECT 'a\\'; SELECT 2'", stmtSelect, 0, "", ""},
		{"/*!40101 SET NAMES utf8 */", stmtSet, 0, "", ""},
		{"/*!40101 SET @x = 1 */", stmtSet, featUserVar, "", ""},
		{"SELECT 'unterminated", stmtSelect, featBad, "", ""},
		{"SELECT /* unterminated", stmtSelect, featBad, "", ""},
		{"(SELECT 1) UNION (SELECT 2)", stmtSelect, 0, "", ""},
		{"select --1", stmtSelect, 0, "", ""},
		{"SELECT 1 -- ; SELECT 2", stmtSelect, 0, "", ""},
	}
	for _, c := range cases {
		t.Run(c.sql, func(t *testing.T) {
			qi := scanQuery([]byte(c.sql), false)
			if qi.kind != c.kind || qi.feats != c.feats {
				t.Fatalf("kind %d feats %b, want kind %d feats %b", qi.kind, qi.feats, c.kind, c.feats)
			}
			if c.arg != "" && string(qi.arg) != c.arg {
				t.Fatalf("arg %q, want %q", qi.arg, c.arg)
			}
			if c.colName != "" && string(qi.colName) != c.colName {
				t.Fatalf("column name %q, want %q", qi.colName, c.colName)
			}
		})
	}
}

func TestLikeMatch(t *testing.T) {
	cases := []struct {
		pattern, s string
		want       bool
	}{
		{"Ssl_cipher", "Ssl_cipher", true},
		{"ssl_CIPHER", "Ssl_cipher", true},
		{"Ssl_%", "Ssl_version", true},
		{"Ssl%", "Ssl_", true},
		{"Ssl_c%", "Ssl_version", false},
		{"Ssl_versio_", "Ssl_version", true},
		{"Ssl_versio_", "Ssl_versio", false},
		{"%ph%r", "Ssl_cipher", true},
		{"%%", "", true},
		{"Ssl", "Ssl_cipher", false},
	}
	for _, c := range cases {
		if got := likeMatch(c.pattern, c.s); got != c.want {
			t.Errorf("likeMatch(%q, %q) = %v, want %v", c.pattern, c.s, got, c.want)
		}
	}
}

func TestScanQueryNoBackslashEscapes(t *testing.T) {
	// With NO_BACKSLASH_ESCAPES the backslash ends nothing: the string
	// closes at the next quote and the second statement is real.
	if qi := scanQuery([]byte(`SELECT 'a\'; SELECT @x`), true); qi.feats&(featMulti|featUserVar) != featMulti|featUserVar {
		t.Fatalf("feats %b", qi.feats)
	}
	if qi := scanQuery([]byte(`SELECT 'a\'; SELECT @x`), false); qi.feats != featBad {
		t.Fatalf("feats %b", qi.feats)
	}
}

func TestParseSET(t *testing.T) {
	type assign struct {
		v     varID
		value string // "" for DEFAULT
	}
	cases := []struct {
		sql     string
		res     setResult
		assigns []assign
		names   string
	}{
		{"SET autocommit = 0", setTracked, []assign{{varAutocommit, "0"}}, ""},
		{"SET SESSION sql_mode = 'STRICT_ALL_TABLES'", setTracked, []assign{{varSQLMode, "'STRICT_ALL_TABLES'"}}, ""},
		{"set @@session.time_zone='+00:00', @@wait_timeout = 60", setTracked,
			[]assign{{varTimeZone, "'+00:00'"}, {varWaitTimeout, "60"}}, ""},
		{"SET LOCAL sql_select_limit = DEFAULT", setTracked, []assign{{varSQLSelectLimit, ""}}, ""},
		{"SET @@local.foreign_key_checks = OFF;", setTracked, []assign{{varForeignKeyChecks, "OFF"}}, ""},
		{"SET max_statement_time = -1", setTracked, []assign{{varMaxStatementTime, "-1"}}, ""},
		{"SET transaction_isolation = 'READ-COMMITTED'", setTracked, []assign{{varTxIsolation, "'READ-COMMITTED'"}}, ""},
		{"SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", setTracked, []assign{{varTxIsolation, "'READ-COMMITTED'"}}, ""},
		{"SET SESSION TRANSACTION READ ONLY, ISOLATION LEVEL SERIALIZABLE", setTracked,
			[]assign{{varTxReadOnly, "1"}, {varTxIsolation, "'SERIALIZABLE'"}}, ""},
		{"SET NAMES utf8mb4", setTracked, nil, "NAMES utf8mb4"},
		{"SET NAMES 'utf8mb4' COLLATE 'utf8mb4_bin', autocommit=1", setTracked, []assign{{varAutocommit, "1"}}, "NAMES 'utf8mb4' COLLATE 'utf8mb4_bin'"},
		{"SET CHARACTER SET latin1", setTracked, nil, "CHARACTER SET latin1"},
		{"SET character_set_results = NULL", setTracked, []assign{{varCharsetResults, "NULL"}}, ""},
		{"SET GLOBAL max_connections = 10", setTracked, nil, ""},
		{"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", setUnknown, nil, ""},
		{"SET @x = 1", setUserVar, nil, ""},
		{"SET autocommit = 1, @x = 2", setUserVar, nil, ""},
		{"SET sql_mode = CONCAT(@@sql_mode, ',STRICT')", setUnknown, nil, ""},
		{"SET profiling = 1", setUnknown, nil, ""},
		{"SET autocommit", setUnknown, nil, ""},
		{"SET autocommit = 1 garbage", setUnknown, nil, ""},
		{"SET GLOBAL a = 1, b = 2", setUnknown, nil, ""},
		{"SET autocommit = 1; SELECT 1", setUnknown, nil, ""},
	}
	for _, c := range cases {
		t.Run(c.sql, func(t *testing.T) {
			var p setPlan
			res := parseSET([]byte(c.sql), false, &p)
			if res != c.res {
				t.Fatalf("result %d, want %d", res, c.res)
			}
			if res != setTracked {
				return
			}
			if p.n != len(c.assigns) {
				t.Fatalf("%d assignments, want %d", p.n, len(c.assigns))
			}
			for i, a := range c.assigns {
				if p.assigns[i].v != a.v || string(p.assigns[i].value) != a.value {
					t.Fatalf("assignment %d: %s=%q, want %s=%q", i, varNames[p.assigns[i].v], p.assigns[i].value, varNames[a.v], a.value)
				}
			}
			if string(p.names) != c.names {
				t.Fatalf("names %q, want %q", p.names, c.names)
			}
		})
	}
}

func TestReplaySET(t *testing.T) {
	fl := flavorFor("10.11.6-MariaDB")
	base := sessionState{names: collationNames[45]}
	cases := []struct {
		name    string
		session func(*sessionState)
		backend func(*sessionState)
		want    string
	}{
		{"same", func(*sessionState) {}, func(*sessionState) {}, ""},
		{"one var", func(s *sessionState) { s.setVar(varTimeZone, "'UTC'") }, func(*sessionState) {},
			"SET @@session.time_zone='UTC'"},
		{"back to default", func(*sessionState) {}, func(b *sessionState) { b.setVar(varSQLMode, "''") },
			"SET @@session.sql_mode=DEFAULT"},
		{"isolation per flavor", func(s *sessionState) { s.setVar(varTxIsolation, "'SERIALIZABLE'") }, func(*sessionState) {},
			"SET @@session.tx_isolation='SERIALIZABLE'"},
		{"charset group first", func(s *sessionState) {
			s.names = "NAMES latin1"
			s.setVar(varCharsetResults, "NULL")
			s.setVar(varAutocommit, "1")
		}, func(*sessionState) {}, "SET NAMES latin1, @@session.character_set_results=NULL, @@session.autocommit=1"},
		{"unknown backend charset", func(*sessionState) {}, func(b *sessionState) { b.names = namesUnknown },
			"SET NAMES utf8mb4 COLLATE utf8mb4_general_ci"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, b := base, base
			c.session(&s)
			c.backend(&b)
			out, need := appendReplaySET(nil, &s, &b, &fl)
			if string(out) != c.want || need != (c.want != "") {
				t.Fatalf("got %q (%v), want %q", out, need, c.want)
			}
		})
	}
	if f := flavorFor("8.0.36"); f.txIsolation != "transaction_isolation" {
		t.Fatalf("MySQL 8 flavor %+v", f)
	}
	if f := flavorFor("5.5.62-log"); f.txIsolation != "tx_isolation" {
		t.Fatalf("MySQL 5.5 flavor %+v", f)
	}
}

func TestSetPlanApply(t *testing.T) {
	st := sessionState{names: "NAMES utf8mb4"}
	st.setVar(varCharsetClient, "latin1")
	var p setPlan
	if parseSET([]byte("SET NAMES latin1, time_zone = '+01:00'"), false, &p) != setTracked {
		t.Fatal("not tracked")
	}
	p.apply(&st)
	if st.names != "NAMES latin1" || st.varValue(varCharsetClient) != "" || st.varValue(varTimeZone) != "'+01:00'" {
		t.Fatalf("state %+v", st)
	}
	if parseSET([]byte("SET time_zone = DEFAULT"), false, &p) != setTracked {
		t.Fatal("not tracked")
	}
	p.apply(&st)
	if st.varValue(varTimeZone) != "" {
		t.Fatalf("DEFAULT kept %q", st.varValue(varTimeZone))
	}
	for _, v := range []string{"0", "OFF", "'off'", "false"} {
		if !autocommitOff(v) {
			t.Errorf("autocommitOff(%q) = false", v)
		}
	}
	for _, v := range []string{"1", "ON", "", "DEFAULT"} {
		if autocommitOff(v) {
			t.Errorf("autocommitOff(%q) = true", v)
		}
	}
}

func FuzzScanQuery(f *testing.F) {
	for _, s := range []string{
		"SELECT 1", "SET @x := 'a''b'; USE `x`", "/*!40101 SET NAMES utf8 */", "KILL QUERY 5",
		"select connection_id() as `a`", "SELECT 'x\\", "-- \n#\n/* */", "LOAD DATA LOCAL INFILE",
		"SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", "SET NAMES 'a' COLLATE 'b', @@x = -1",
		`PREPARE s FROM 'SET PASSWORD = \'x\''`, "EXECUTE IMMEDIATE 'GRANT ALL ON *.* TO x' USING @a",
		"SET a = 1, @@global.b = (SELECT 1, 2)", "SET STATEMENT x=1 FOR FLUSH TABLES",
		"CREATE OR REPLACE FUNCTION f RETURNS INT SONAME 'x'", "SELECT 1; SET DEFAULT ROLE r",
		"EXECUTE IMMEDIATE 'EXECUTE IMMEDIATE ''EXECUTE IMMEDIATE SHUTDOWN '' '",
	} {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, sql []byte, noBackslash bool) {
		qi := scanQuery(sql, noBackslash)
		if qi.kind == stmtUse && len(qi.arg) > len(sql) {
			t.Fatal("argument longer than the query")
		}
		// What COM_STMT_PREPARE refuses, COM_QUERY refuses too.
		if p := privilegeOf(sql, noBackslash, 0); p != privNone && qi.priv == privNone {
			t.Fatalf("privilegeOf %d but scanQuery none", p)
		}
		var p setPlan
		if parseSET(sql, noBackslash, &p) == setTracked {
			var st sessionState
			p.apply(&st)
			fl := flavorFor("10.11")
			appendReplaySET(nil, &st, &sessionState{}, &fl)
		}
	})
}

// TestVarValues checks the lazily allocated variable values: nil reads as
// every default, comparisons treat nil and an all-default array alike, and
// a copy never shares the source's array (a backend's later SET must not
// change the session it was synced from).
func TestVarValues(t *testing.T) {
	withTZ := func(tz string) sessionState {
		var s sessionState
		s.setVar(varTimeZone, tz)
		return s
	}
	cases := []struct {
		name string
		a, b sessionState
		same bool
	}{
		{"both nil", sessionState{}, sessionState{}, true},
		{"nil vs set", sessionState{}, withTZ("'UTC'"), false},
		{"set vs nil", withTZ("'UTC'"), sessionState{}, false},
		{"nil vs back to default", sessionState{}, withTZ(""), true},
		{"equal values", withTZ("'UTC'"), withTZ("'UTC'"), true},
		{"different values", withTZ("'UTC'"), withTZ("'+01:00'"), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.a.sameVars(&c.b); got != c.same {
				t.Errorf("sameVars = %v, want %v", got, c.same)
			}
			if got := c.b.sameVars(&c.a); got != c.same {
				t.Errorf("sameVars (reversed) = %v, want %v", got, c.same)
			}
			var fresh, used sessionState
			used.setVar(varSQLMode, "'ANSI'") // a value the copy must clear
			for _, dst := range []*sessionState{&fresh, &used} {
				dst.copyVarsFrom(&c.a)
				if !dst.sameVars(&c.a) {
					t.Fatalf("copy differs from its source")
				}
				if c.a.vars != nil && dst.vars == c.a.vars {
					t.Fatal("copy shares the source's array")
				}
				dst.setVar(varTimeZone, "'changed'")
				if c.a.varValue(varTimeZone) == "'changed'" {
					t.Fatal("a write to the copy reached the source")
				}
			}
		})
	}
	var fresh sessionState
	fresh.setVar(varTimeZone, "")
	if fresh.vars != nil {
		t.Error("setting a default allocated the values")
	}
}

// TestStatementPrivilege checks which statements only an admin account may
// run through the proxy, wherever they hide in a COM_QUERY's text.
func TestStatementPrivilege(t *testing.T) {
	cases := []struct {
		sql  string
		want privilege
	}{
		// Ordinary statements, including look-alikes.
		{"SELECT 1", privNone},
		{"SELECT 'GRANT ALL ON *.* TO x'", privNone},
		{"SELECT * FROM t WHERE `grant` = 1", privNone},
		{"SELECT @@global.wait_timeout", privNone},
		{"INSERT INTO t (password) VALUES ('x')", privNone},
		{"SET NAMES utf8mb4", privNone},
		{"SET SESSION wait_timeout = 1", privNone},
		{"SET @@session.sql_mode = '', @@local.autocommit = 1", privNone},
		{"SET sql_mode = CONCAT(@@global.sql_mode, ',X')", privNone},
		{"SET @a = (SELECT @@global.x, 1)", privNone},
		{"SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", privNone},
		{"SET ROLE r", privNone},
		{"SET STATEMENT max_statement_time=1 FOR SELECT 1", privNone},
		{"START TRANSACTION", privNone},
		{"start transaction read only", privNone},
		{"CREATE TABLE user (a int)", privNone},
		{"CREATE FUNCTION f() RETURNS INT RETURN 1", privNone},
		{"CREATE OR REPLACE TABLE t (a int)", privNone},
		{"DROP TABLE user", privNone},
		{"ALTER TABLE t CHANGE a b int", privNone},
		{"PREPARE s FROM 'SELECT 1'", privNone},
		{"PREPARE s FROM 'SELECT ''GRANT'''", privNone},
		{`PREPARE s FROM 'SELECT \'GRANT\''`, privNone},
		{"EXECUTE s", privNone},
		{"EXECUTE s USING @a", privNone},
		{"EXECUTE IMMEDIATE 'SELECT ?' USING 1", privNone},
		{"LOCK TABLES t READ", privNone},
		{"/* GRANT */ SELECT 1 -- ; GRANT", privNone},
		{"KILL 5", privNone}, // the proxy answers KILL itself

		// Accounts and grants.
		{"SET PASSWORD = PASSWORD('x')", privCreateUser},
		{"set password for 'svc'@'%' = 'x'", privCreateUser},
		{"SET password='x'", privCreateUser},
		{"SET DEFAULT ROLE r FOR svc", privCreateUser},
		{"CREATE USER x", privCreateUser},
		{"CREATE OR REPLACE USER x", privCreateUser},
		{"CREATE ROLE r", privCreateUser},
		{"ALTER USER CURRENT_USER() IDENTIFIED BY 'x'", privCreateUser},
		{"DROP USER IF EXISTS x", privCreateUser},
		{"DROP ROLE r", privCreateUser},
		{"RENAME USER a TO b", privCreateUser},
		{"GRANT ALL ON *.* TO x", privGrantOption},
		{"revoke all on *.* from x", privGrantOption},

		// Server-wide statements.
		{"SET GLOBAL max_connections = 1", privSuper},
		{"SET @@global.max_connections = 1", privSuper},
		// MariaDB reads these as the global scope too (checked on 10.11).
		{"SET @@global . max_connections = 1", privSuper},
		{"SET @@global/**/.max_connections = 1", privSuper},
		{"SET @@global.`max_connections` = 1", privSuper},
		{"set @@GLOBAL .`max_connections`=1", privSuper},
		{"SET @@persist . x = 1", privSuper},
		// Stored programs run later with the definer's (the service
		// account's) rights: admin statements anywhere in their body.
		{"CREATE EVENT e ON SCHEDULE EVERY 1 SECOND DO SET GLOBAL max_connections = 1", privSuper},
		{"CREATE DEFINER = CURRENT_USER PROCEDURE p() SET PASSWORD = PASSWORD('x')", privCreateUser},
		{"CREATE OR REPLACE TRIGGER t BEFORE INSERT ON x FOR EACH ROW BEGIN FLUSH TABLES; END", privReload},
		{"ALTER EVENT e DO GRANT ALL ON *.* TO someone", privGrantOption},
		{"CREATE FUNCTION f() RETURNS INT BEGIN SET @@global.x = 1; RETURN 1; END", privSuper},
		{"CREATE AGGREGATE FUNCTION f RETURNS INTEGER SONAME 'udf.so'", privSuper},
		{"CREATE FUNCTION f RETURNS STRING SONAME 'udf.so'", privSuper},
		{"CREATE PROCEDURE p() BEGIN SELECT 1; END", privNone},
		{"CREATE FUNCTION f(a INT) RETURNS INT RETURN a + 1", privNone},
		{"ALTER TABLE t ADD COLUMN c INT", privNone},
		{"CREATE DEFINER = CURRENT_USER VIEW v AS SELECT 1", privNone},
		{"SET @@GLOBAL.max_connections := 1", privSuper},
		{"SET PERSIST max_connections = 1", privSuper},
		{"SET PERSIST_ONLY max_connections = 1", privSuper},
		{"SET @@persist.max_connections = 1", privSuper},
		{"SET sql_mode = '', GLOBAL max_connections = 1", privSuper},
		{"SET sql_mode = (SELECT 1), @@global.max_connections = 1", privSuper},
		{"SET GLOBAL TRANSACTION ISOLATION LEVEL SERIALIZABLE", privSuper},
		{"SET STATEMENT sql_mode='' FOR SET GLOBAL x = 1", privSuper},
		{"/*!40101 SET GLOBAL x = 1 */", privSuper},
		{"SHUTDOWN", privShutdown},
		{"RESTART", privShutdown},
		{"INSTALL PLUGIN x SONAME 'x.so'", privSuper},
		{"INSTALL SONAME 'x'", privSuper},
		{"UNINSTALL PLUGIN x", privSuper},
		{"FLUSH TABLES", privReload},
		{"FLUSH TABLES WITH READ LOCK", privReload},
		{"flush privileges", privReload},
		{"RESET MASTER", privReload},
		{"RESET QUERY CACHE", privReload},
		{"CHANGE MASTER TO MASTER_HOST='x'", privSuper},
		{"START SLAVE", privSuper},
		{"START REPLICA", privSuper},
		{"START ALL SLAVES", privSuper},
		{"STOP SLAVE", privSuper},
		{"PURGE BINARY LOGS BEFORE NOW()", privSuper},
		{"CREATE SERVER s FOREIGN DATA WRAPPER mysql OPTIONS (HOST 'x')", privSuper},
		{"ALTER SERVER s OPTIONS (HOST 'y')", privSuper},
		{"DROP SERVER s", privSuper},
		{"BACKUP STAGE START", privBackup},
		{"BACKUP LOCK t", privBackup},
		{"CREATE FUNCTION f RETURNS INTEGER SONAME 'udf.so'", privSuper},
		{"CREATE OR REPLACE AGGREGATE FUNCTION f RETURNS REAL SONAME 'udf.so'", privSuper},
		{"BINLOG 'abc'", privSuper},

		// Anywhere in a batch, in executable comments, in literals.
		{"SELECT 1; GRANT ALL ON *.* TO x", privGrantOption},
		{"SELECT 1;SET GLOBAL x=1", privSuper},
		{"SELECT 'a;b'; /* c */ SHUTDOWN", privShutdown},
		{"PREPARE s FROM 'SET PASSWORD = ''x'''", privCreateUser},
		{`PREPARE s FROM "GRANT ALL ON *.* TO x"`, privGrantOption},
		{"PREPARE s FROM 'SELECT 1; SET GLOBAL x = 1'", privSuper},
		{`PREPARE s FROM 'SELECT \'a\'; FLUSH TABLES'`, privReload},
		{"EXECUTE IMMEDIATE 'SET GLOBAL x = 1'", privSuper},
		{"EXECUTE IMMEDIATE 'GRANT ALL ON *.* TO x' USING 1", privGrantOption},
		{"SELECT 1; EXECUTE IMMEDIATE 'SHUTDOWN'", privShutdown},

		// Dynamic SQL whose text the proxy cannot see.
		{"PREPARE s FROM @q", privDynamicSQL},
		{"PREPARE s FROM CONCAT('GRA', 'NT ALL ON *.* TO x')", privDynamicSQL},
		{"PREPARE s FROM 'SELECT 1' 'x'", privDynamicSQL},
		{"PREPARE s FROM _utf8'GRANT ALL ON *.* TO x'", privDynamicSQL},
		{"PREPARE s FROM x'4752414e54'", privDynamicSQL},
		{"EXECUTE IMMEDIATE @q", privDynamicSQL},
		{"EXECUTE IMMEDIATE CONCAT('SHUT', 'DOWN')", privDynamicSQL},
		{"EXECUTE IMMEDIATE 'EXECUTE IMMEDIATE @q'", privDynamicSQL},
		{"PREPARE s FROM 'unterminated", privDynamicSQL},
	}
	for _, c := range cases {
		t.Run(c.sql, func(t *testing.T) {
			if got := scanQuery([]byte(c.sql), false).priv; got != c.want {
				t.Errorf("scanQuery: privilege %d (%s), want %d (%s)", got, privilegeNames[got], c.want, privilegeNames[c.want])
			}
			if got := privilegeOf([]byte(c.sql), false, 0); got != c.want {
				t.Errorf("privilegeOf: privilege %d, want %d", got, c.want)
			}
		})
	}
	// The same literal reads differently with and without
	// NO_BACKSLASH_ESCAPES: without it \' is a quote and the literal is one
	// SELECT; with it the backslash is plain and SHUTDOWN is a statement.
	const lit = `EXECUTE IMMEDIATE 'SELECT ''\''; SHUTDOWN'`
	if got := privilegeOf([]byte(lit), true, 0); got != privShutdown {
		t.Errorf("no-backslash literal: privilege %d, want SHUTDOWN", got)
	}
	if got := scanQuery([]byte(lit), true).priv; got != privShutdown {
		t.Errorf("no-backslash literal (scanQuery): privilege %d, want SHUTDOWN", got)
	}
}

func TestUnescapeString(t *testing.T) {
	cases := []struct {
		in          string
		quote       byte
		noBackslash bool
		want        string
	}{
		{"plain", '\'', false, "plain"},
		{"it''s", '\'', false, "it's"},
		{`a\'b`, '\'', false, "a'b"},
		{`a\\b`, '\'', false, `a\b`},
		{`a\nb\%`, '\'', false, "a\nb\\%"},
		{`a\'b`, '\'', true, `a\'b`},
		{`say ""hi""`, '"', false, `say "hi"`},
		{`trailing\`, '\'', false, `trailing\`},
	}
	for _, c := range cases {
		if got := string(unescapeString([]byte(c.in), c.quote, c.noBackslash)); got != c.want {
			t.Errorf("unescapeString(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestTimeoutFloors checks that a client's SET and the replay never give a
// backend a timeout below its floor, and that the session keeps the
// client's value for its own reads.
func TestTimeoutFloors(t *testing.T) {
	cases := []struct{ sql, sent string }{
		{"SET SESSION wait_timeout=1", "SET SESSION wait_timeout=3600"},
		{"SET @@session.wait_timeout = -5, net_read_timeout=2 /* c */", "SET @@session.wait_timeout = 3600, net_read_timeout=30 /* c */"},
		{"SET NAMES utf8, interactive_timeout = 0x10, net_write_timeout=59", "SET NAMES utf8, interactive_timeout = 3600, net_write_timeout=60"},
		{"SET wait_timeout=7200, net_write_timeout=DEFAULT, sql_mode=''", ""},
		{"SET wait_timeout=3600", ""},
		{"/*!40101 SET wait_timeout=5 */", "/*!40101 SET wait_timeout=3600 */"},
	}
	for _, c := range cases {
		var plan setPlan
		if r := parseSET([]byte(c.sql), false, &plan); r != setTracked {
			t.Fatalf("%q: parseSET %d", c.sql, r)
		}
		got, changed := flooredSET(nil, []byte(c.sql), &plan)
		if changed != (c.sent != "") || (changed && string(got) != c.sent) {
			t.Errorf("%q: sent %q (changed %v), want %q", c.sql, got, changed, c.sent)
		}
	}
	var plan setPlan
	parseSET([]byte("SET wait_timeout=1, net_read_timeout=40, sql_select_limit=1"), false, &plan)
	var st sessionState
	plan.apply(&st)
	if st.varValue(varWaitTimeout) != "1" {
		t.Fatalf("session value %q, want the client's 1", st.varValue(varWaitTimeout))
	}
	fl := flavorFor("10.11")
	replay, _ := appendReplaySET(nil, &st, &sessionState{}, &fl)
	want := "SET @@session.wait_timeout=3600, @@session.net_read_timeout=40, @@session.sql_select_limit=1"
	if string(replay) != want {
		t.Fatalf("replay %q, want %q", replay, want)
	}
	for v, want := range map[string]uint64{"1": 1, "0": 1, "-3": 1, "+7": 7, "99999999999": 31536000} {
		if got, ok := sessionTimeout(v); !ok || got != want {
			t.Errorf("sessionTimeout(%q) = %d %v, want %d", v, got, ok, want)
		}
	}
	for _, v := range []string{"", "0x10", "'1'", "1.5"} {
		if _, ok := sessionTimeout(v); ok {
			t.Errorf("sessionTimeout(%q) ok", v)
		}
	}
}

func TestSelectSysVars(t *testing.T) {
	cases := []struct {
		sql   string
		match bool
		names []string
	}{
		{"SELECT @@wait_timeout", true, []string{"@@wait_timeout"}},
		{"select @@session.wait_timeout, @@LOCAL.net_read_timeout;", true, []string{"@@session.wait_timeout", "@@LOCAL.net_read_timeout"}},
		{"SELECT @@wait_timeout AS w, @@interactive_timeout `i`", true, []string{"w", "i"}},
		{"SELECT @@global.wait_timeout", false, nil},
		{"SELECT @@wait_timeout FROM dual", false, nil},
		{"SELECT @@wait_timeout, @@autocommit", false, nil},
		{"SELECT @@wait_timeout + 1", false, nil},
		{"SELECT @@wait_timeout; SELECT 1", false, nil},
	}
	for _, c := range cases {
		qi := scanQuery([]byte(c.sql), false)
		if (qi.kind == stmtReadSysVars) != c.match {
			t.Errorf("%q: kind %d, match %v", c.sql, qi.kind, c.match)
			continue
		}
		if !c.match {
			continue
		}
		lx := lexer{src: []byte(c.sql)}
		lx.next()
		for i, want := range c.names {
			_, name, more, ok := readSysVarColumn(&lx)
			if !ok || string(name) != want || more != (i < len(c.names)-1) {
				t.Errorf("%q column %d: %q %v %v, want %q", c.sql, i, name, more, ok, want)
			}
		}
	}
}

// TestRewriteConnectionID: CONNECTION_ID() calls outside strings and
// comments become the session's id, spelled in a comment for the column
// name; anything else is left alone.
func TestRewriteConnectionID(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"SELECT CONNECTION_ID() + 0", "SELECT CAST(7/*CONNECTION_ID()*/ AS UNSIGNED) + 0"},
		{"select connection_id ( ), 'CONNECTION_ID()', `CONNECTION_ID()`", "select CAST(7/*connection_id ( )*/ AS UNSIGNED), 'CONNECTION_ID()', `CONNECTION_ID()`"},
		{"SELECT 1 -- CONNECTION_ID()\n, CONNECTION_ID()/*c*/", "SELECT 1 -- CONNECTION_ID()\n, CAST(7/*CONNECTION_ID()*/ AS UNSIGNED)/*c*/"},
		{"SELECT CONNECTION_ID(/* x */)", "SELECT CAST(7/*CONNECTION_ID()*/ AS UNSIGNED)"},
		{"SELECT /*! CONNECTION_ID(), */ 1", "SELECT /*! CAST(7 AS UNSIGNED), */ 1"},
		{"SELECT db.CONNECTION_ID(), CONNECTION_ID", ""},
		{"SELECT CONNECTION_ID(1)", ""},
		{"KILL CONNECTION_ID(); SELECT CONNECTION_ID()=CONNECTION_ID()", "KILL CAST(7/*CONNECTION_ID()*/ AS UNSIGNED); SELECT CAST(7/*CONNECTION_ID()*/ AS UNSIGNED)=CAST(7/*CONNECTION_ID()*/ AS UNSIGNED)"},
	} {
		got, found := rewriteConnectionID(nil, []byte(tc.in), false, 7)
		if tc.want == "" {
			if found || string(got) != tc.in {
				t.Errorf("%q: rewritten to %q (found %v), want it left alone", tc.in, got, found)
			}
			continue
		}
		if !found || string(got) != tc.want {
			t.Errorf("%q:\n got  %q (found %v)\n want %q", tc.in, got, found, tc.want)
		}
	}
}
