package mysqlproxy

import "testing"

func TestSideEffectFree(t *testing.T) {
	tests := []struct {
		sql  string
		free bool
	}{
		{"SELECT 1", true},
		{"select c from sbtest1 where id=?", true},
		{"SELECT c FROM sbtest1 WHERE id BETWEEN ? AND ? ORDER BY c", true},
		{"SELECT SUM(k) FROM sbtest1 WHERE id BETWEEN ? AND ?", true},
		{"SELECT DISTINCT c FROM sbtest1 WHERE id BETWEEN 1 AND 10 ORDER BY c", true},
		{"SELECT count(*), max(a) FROM t WHERE b IN (1, 2) AND EXISTS (SELECT 1 FROM u)", true},
		{"(SELECT a FROM t) UNION (SELECT a FROM u)", true},
		{"SELECT a FROM t JOIN u USING (id);", true},
		{"SELECT CAST(a AS CHAR(10)), COALESCE(b, 'x') FROM t", true},
		{"SELECT @@sql_mode", true},
		{"SELECT 'GET_LOCK(1)' /* SLEEP(1) */", true},

		{"SELECT a FROM t FOR UPDATE", false},
		{"SELECT a FROM t LOCK IN SHARE MODE", false},
		{"SELECT a FROM t FOR SHARE", false},
		{"SELECT a INTO @x FROM t", false},
		{"SELECT a FROM t INTO OUTFILE '/tmp/x'", false},
		{"SELECT @x := 1", false},
		{"SELECT @x", false},
		{"SELECT my_func(1)", false},
		{"SELECT db.count(1)", false},
		{"SELECT `count`(1)", false},
		{"SELECT SLEEP(1)", false},
		{"SELECT GET_LOCK('a', 1)", false},
		{"SELECT NEXTVAL(s)", false},
		{"SELECT NEXT VALUE FOR s", false},
		{"SELECT RAND()", false},
		{"SELECT LAST_INSERT_ID(5)", false},
		{"SELECT LAST_INSERT_ID()+1", false},
		{"SELECT CONNECTION_ID()+1", false},
		{"SELECT @@warning_count", false},
		{"SELECT 1; SELECT 2", false},
		{"SELECT SQL_CALC_FOUND_ROWS a FROM t", false},
		{"SELECT 'unterminated", false},
		{"SELECT a FROM t PROCEDURE ANALYSE()", false},
		{"INSERT INTO t VALUES (1)", false},
		{"SHOW WARNINGS", false},
		{"DO 1", false},
		{"WITH x AS (SELECT 1) SELECT * FROM x", false},
		{"/*!50000 SELECT */ 1", true},             // an executable comment's body is code
		{"SELECT 1 /*!50000 , SLEEP(1) */", false}, // and is read as such
	}
	for _, tc := range tests {
		qi := scanQuery([]byte(tc.sql), false)
		if got := sideEffectFree([]byte(tc.sql), false, &qi); got != tc.free {
			t.Errorf("sideEffectFree(%q) = %v, want %v", tc.sql, got, tc.free)
		}
	}
}

func TestPlainTxControl(t *testing.T) {
	tests := []struct {
		sql  string
		want txControl
	}{
		{"BEGIN", txBegin},
		{"begin work", txBegin},
		{" BEGIN ; ", txBegin},
		{"START TRANSACTION", txBegin},
		{"/* x */ start transaction;", txBegin},
		{"COMMIT", txCommit},
		{"COMMIT WORK", txCommit},
		{"ROLLBACK", txRollback},
		{"rollback work;", txRollback},

		{"START TRANSACTION READ ONLY", txNone},
		{"START TRANSACTION READ WRITE", txNone},
		{"START TRANSACTION WITH CONSISTENT SNAPSHOT", txNone},
		{"START TRANSACTION WORK", txNone},
		{"BEGIN NOT ATOMIC SELECT 1; END", txNone},
		{"BEGIN; SELECT 1", txNone},
		{"COMMIT AND CHAIN", txNone},
		{"COMMIT RELEASE", txNone},
		{"ROLLBACK TO SAVEPOINT a", txNone},
		{"ROLLBACK AND NO CHAIN", txNone},
		{"START SLAVE", txNone},
		{"BEGIN /*! WORK", txNone},
		{"SELECT 1", txNone},
	}
	for _, tc := range tests {
		if got := plainTxControl([]byte(tc.sql), false); got != tc.want {
			t.Errorf("plainTxControl(%q) = %d, want %d", tc.sql, got, tc.want)
		}
	}
}
