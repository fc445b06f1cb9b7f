package mysqlproxy

import (
	"fmt"
	"testing"
)

func TestPipelineSafe(t *testing.T) {
	cases := []struct {
		sql  string
		want bool
	}{
		// What sysbench and typical read paths send.
		{"SELECT c FROM sbtest1 WHERE id=?", true},
		{"SELECT c FROM sbtest1 WHERE id=42", true},
		{"SELECT c FROM sbtest1 WHERE id BETWEEN 1 AND 100 ORDER BY c", true},
		{"SELECT SUM(k) FROM sbtest1 WHERE id BETWEEN 1 AND 100", true},
		{"SELECT DISTINCT c FROM sbtest1 WHERE id IN (1, 2, 3) ORDER BY c", true},
		{"select count(*), max(id) from t where name like 'a%' group by (x)", true},
		{"SELECT CAST(x AS CHAR(10)), COALESCE(a, b) FROM t", true},
		{"SELECT a FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.id = t.id)", true},
		{"SELECT 1;", true},
		{"SELECT 'SLEEP(1)', \"GET_LOCK(\" FROM t", true}, // strings are data
		{"SELECT /* NEXTVAL(s) */ 1", true},               // comments are not code
		{"(SELECT a FROM t) UNION (SELECT a FROM u)", true},

		// Locking clauses, INTO, assignments and variables.
		{"SELECT c FROM t WHERE id=1 FOR UPDATE", false},
		{"SELECT c FROM t WHERE id=1 FOR SHARE", false},
		{"SELECT c FROM t WHERE id=1 LOCK IN SHARE MODE", false},
		{"SELECT c FROM t FOR UPDATE SKIP LOCKED", false},
		{"SELECT c INTO @v FROM t", false},
		{"SELECT c FROM t INTO OUTFILE '/tmp/x'", false},
		{"SELECT c FROM t INTO DUMPFILE '/tmp/x'", false},
		{"SELECT @x := c FROM t", false},
		{"SELECT @x", false},
		{"SELECT @@warning_count", false},
		{"SELECT @@session.last_insert_id", false},
		{"SELECT c FROM t PROCEDURE ANALYSE()", false},

		// Functions: only the explicit list.
		{"SELECT SLEEP(1)", false},
		{"SELECT GET_LOCK('a', 1)", false},
		{"SELECT RELEASE_LOCK('a')", false},
		{"SELECT LAST_INSERT_ID(5)", false},
		{"SELECT LAST_INSERT_ID()", false},
		{"SELECT CONNECTION_ID()", false},
		{"SELECT id, CONNECTION_ID() FROM t", false},
		{"SELECT FOUND_ROWS()", false},
		{"SELECT SQL_CALC_FOUND_ROWS c FROM t LIMIT 1", false},
		{"SELECT NEXTVAL(s)", false},
		{"SELECT NEXT VALUE FOR s", false},
		{"SELECT PREVIOUS VALUE FOR s", false},
		{"SELECT LASTVAL(s)", false},
		{"SELECT SETVAL(s, 10)", false},
		{"SELECT my_func(1) FROM t", false},
		{"SELECT myfunc (1) FROM t", false}, // space before '(' too
		{"SELECT db.count(1) FROM t", false},
		{"SELECT `count`(1) FROM t", false},
		{"SELECT RAND()", false},
		{"SELECT NOW()", true}, // pure: the statement's time, or the session's replayed timestamp
		{"SELECT BENCHMARK(1000000, MD5('x'))", false},
		{"SELECT /*! SLEEP(1) */ 1", false}, // executable comments are code

		// Not one plain SELECT.
		{"SELECT 1; SELECT 2", false},
		{"INSERT INTO t VALUES (1)", false},
		{"UPDATE t SET a=1", false},
		{"DELETE FROM t", false},
		{"WITH x AS (SELECT 1) SELECT * FROM x", false},
		{"SHOW WARNINGS", false},
		{"SELECT * FROM t WHERE a = 'unterminated", false},
		{"SET @x = 1", false},
		{"CALL p()", false},
		{"DO SLEEP(1)", false},
		{"", false},
	}
	for _, c := range cases {
		qi := scanQuery([]byte(c.sql), false)
		if got := pipelineSafe([]byte(c.sql), false, &qi); got != c.want {
			t.Errorf("pipelineSafe(%q) = %v, want %v", c.sql, got, c.want)
		}
	}
}

// TestPipeWaitersQueue checks the loop's list of candidate riders:
// compaction keeps the entries left in order, and a push reuses the room
// the head left.
func TestPipeWaitersQueue(t *testing.T) {
	var q pipeWaiters
	ss := make([]session, 8)
	for i := range ss {
		q.push(pipeWaiter{s: &ss[i], cmd: int64(i)})
	}
	for _, i := range []int{1, 3, 4} { // dropped by feedPipe among the first 6
		q.buf[q.head+i] = pipeWaiter{}
	}
	q.compact(6, 3)
	cmds := func() string {
		var got []int64
		for _, e := range q.buf[q.head:] {
			got = append(got, e.cmd)
		}
		return fmt.Sprint(got)
	}
	if got, want := cmds(), "[0 2 5 6 7]"; got != want {
		t.Fatalf("after compaction %s, want %s", got, want)
	}
	for len(q.buf) < cap(q.buf) {
		q.push(pipeWaiter{s: &ss[0], cmd: 100})
	}
	n := q.len()
	q.push(pipeWaiter{s: &ss[0], cmd: 101})
	if q.head != 0 || q.len() != n+1 || q.buf[0].cmd != 0 || q.buf[q.len()-1].cmd != 101 {
		t.Fatalf("push at full capacity: head %d, %s", q.head, cmds())
	}
	clear(q.buf[q.head:])
	q.compact(q.len(), q.len())
	if q.len() != 0 || q.head != 0 {
		t.Fatalf("all dropped: head %d len %d", q.head, q.len())
	}
}
