package mysqlproxytest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/scalestack/scalestack/pool/mysqlproxy"
)

// TestPipelineReadOnlyEnforced proves the server-side half of pipelining's
// safety: a write that the allowlist misjudged (forced here through
// Config.PipelineAllow, which marks the INSERT pipeline-safe) rides a busy
// backend, and MariaDB refuses it with 1792 (25006) because the backend
// was put in a read-only session first: no row is written. The same
// session's INSERT sent when no pipeline is open then runs on the same
// backend (N=1) and writes its row: the read-write flag is replayed
// before it.
func TestPipelineReadOnlyEnforced(t *testing.T) {
	const (
		head   = "SELECT SLEEP(0.5)"
		insert = "INSERT INTO pipe_ro VALUES (1)"
	)
	tp := startProxy(t, 1, 1, func(c *mysqlproxy.Config) {
		c.PipelineDepth, c.PipelineMaxWait = 8, time.Hour
		c.PipelineAllow = func(sql []byte) bool {
			return bytes.Equal(sql, []byte(head)) || bytes.Equal(sql, []byte(insert))
		}
	})
	direct := tp.direct(t)
	mustExec(t, direct, "DROP TABLE IF EXISTS pipe_ro")
	mustExec(t, direct, "CREATE TABLE pipe_ro (a INT)")
	t.Cleanup(func() { _, _ = direct.Exec("DROP TABLE IF EXISTS pipe_ro") })
	rows := func() int {
		var n int
		if err := direct.QueryRow("SELECT COUNT(*) FROM pipe_ro").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	db := tp.open(t, "")
	ctx := context.Background()
	a, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	before := tp.p.Stats()
	headDone := make(chan error, 1)
	go func() {
		_, err := a.ExecContext(ctx, head)
		headDone <- err
	}()
	waitFor(t, func() bool { return tp.p.Stats().Questions > before.Questions })
	_, err = b.ExecContext(ctx, insert)
	if code := mysqlErrCode(err); code != 1792 {
		t.Fatalf("pipelined INSERT: %v (want ERR 1792 from the read-only session)", err)
	}
	if err := <-headDone; err != nil {
		t.Fatal(err)
	}
	if st := tp.p.Stats(); st.Pipelined != before.Pipelined+1 {
		t.Fatalf("pipelined %d, want 1", st.Pipelined-before.Pipelined)
	}
	if n := rows(); n != 0 {
		t.Fatalf("%d rows written by a pipelined write", n)
	}
	// No pipeline now: the same backend runs it, read-write again.
	if _, err := b.ExecContext(ctx, insert); err != nil {
		t.Fatalf("INSERT after the pipeline: %v", err)
	}
	if n := rows(); n != 1 {
		t.Fatalf("%d rows, want 1", n)
	}
}
