package mysqlproxy

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/scalestack/scalestack/internal/mysqlfake"
	"github.com/scalestack/scalestack/internal/testutil"
	"github.com/scalestack/scalestack/mysqlwire"
)

// TestDrainAnswersQueuedCommands checks that a command still waiting for a
// backend at the deadline is answered ERR 1053 at once, while the one
// holding the only backend completes (1.1 s: past the 0.5 s deadline, 0.4 s
// before the hard cut at 1.5 s, a margin a loaded CI host needs). Takes about 1.2 s.
func TestDrainAnswersQueuedCommands(t *testing.T) {
	testutil.CheckLeaks(t)
	tp := startProxy(t, 1, 1, func(c *Config) { c.QueueTimeout = 10 * time.Second })
	tp.fake.On("SELECT 5 FROM (SELECT SLEEP(1.1)) AS s",
		mysqlfake.Rows([]string{"5"}, []any{int64(5)}).After(1100*time.Millisecond))
	ctx := context.Background()
	db := tp.open(t, "")
	busy, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	waiter, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer waiter.Close()
	busyErr := make(chan error, 1)
	go func() {
		var v int
		err := busy.QueryRowContext(ctx, "SELECT 5 FROM (SELECT SLEEP(1.1)) AS s").Scan(&v)
		if err == nil && v != 5 {
			err = fmt.Errorf("got %d, want 5", v)
		}
		busyErr <- err
	}()
	waitFor(t, func() bool { return tp.p.Stats().BackendsIdle == 0 })
	start := time.Now()
	drained := tp.p.Drain(500 * time.Millisecond)
	err = waiter.QueryRowContext(ctx, "SELECT 1").Scan(new(int))
	if mysqlErrCode(err) != uint16(mysqlwire.ErServerShutdown) {
		t.Fatalf("queued command at the deadline: %v, want ERR 1053", err)
	}
	if waited := time.Since(start); waited < 500*time.Millisecond || waited > 1300*time.Millisecond {
		t.Errorf("queued command answered after %v, want at the 500ms deadline", waited)
	}
	if err := <-busyErr; err != nil {
		t.Fatalf("statement holding the backend across the deadline: %v", err)
	}
	select {
	case <-drained:
	case <-time.After(3 * time.Second):
		t.Fatalf("Drain not done: %+v", tp.p.Stats())
	}
	if st := tp.p.Stats(); st.BackendsConnected != 0 {
		t.Errorf("%d backend connections open after Drain", st.BackendsConnected)
	}
}
