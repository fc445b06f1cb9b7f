package mysqlproxytest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/scalestack/scalestack/internal/testutil"
	"github.com/scalestack/scalestack/mysqlwire"
	"github.com/scalestack/scalestack/pool/mysqlproxy"
)

// drainGrace is the grace period of the drain tests: long enough for the
// commands they run during it, short enough to keep them quick.
const drainGrace = time.Second

// TestDrainStages drains a proxy with one session in each situation Drain
// distinguishes and checks what each sees: during the grace period every
// session is served (an idle one runs a command, an open transaction goes
// on); at the deadline the idle session and the one in a transaction get
// ERR 1053 and are closed (the transaction rolled back); a statement that
// runs across the deadline completes with its result before its session
// is closed; one that runs past the hard cut is cut off and its backend
// closed; nobody can connect once draining started; and when Drain is done
// every backend connection is closed. Takes about 2.2 s.
func TestDrainStages(t *testing.T) {
	testutil.CheckLeaks(t)
	tp := startProxy(t, 4, 2, nil)
	direct := tp.direct(t)
	table := fmt.Sprintf("drain_%d", time.Now().UnixNano())
	mustExec(t, direct, "CREATE TABLE "+table+" (id INT PRIMARY KEY)")
	t.Cleanup(func() { _, _ = direct.Exec("DROP TABLE " + table) })
	db := tp.open(t, "")
	ctx := context.Background()
	newConn := func() *sql.Conn {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}

	idle := dialRaw(t, tp.addr)
	if resp := idle.login(testUser, testPassword, mysqlwire.AuthNativePassword, 0); !mysqlwire.IsOK(resp) {
		t.Fatalf("raw login: %s", errText(resp))
	}
	txn := newConn()
	mustExec(t, txn, "BEGIN")
	mustExec(t, txn, "INSERT INTO "+table+" VALUES (1)")
	unknownBefore := tp.p.Stats().BackendUnknownState

	// A statement crossing the deadline but not the hard cut, and one
	// that outlasts both.
	type result struct {
		v   int
		err error
		at  time.Duration
	}
	start := time.Now()
	crossing, outlasting := make(chan result, 1), make(chan result, 1)
	crossingConn, outlastingConn := newConn(), newConn()
	go func() {
		var r result
		r.err = crossingConn.QueryRowContext(ctx, "SELECT 42 FROM (SELECT SLEEP(1.4)) AS s").Scan(&r.v)
		r.at = time.Since(start)
		crossing <- r
	}()
	go func() {
		var r result
		r.err = outlastingConn.QueryRowContext(ctx, "SELECT 7 FROM (SELECT SLEEP(3)) AS s").Scan(&r.v)
		r.at = time.Since(start)
		outlasting <- r
	}()
	waitFor(t, func() bool { return tp.p.Stats().BackendsIdle <= 1 })

	if err := tp.p.Ready(); err != nil {
		t.Fatalf("not ready before Drain: %v", err)
	}
	drained := tp.p.Drain(drainGrace)
	if tp.p.Ready() == nil {
		t.Error("still ready once Drain started")
	}

	// Grace: nobody new, everyone already here served.
	if c, err := net.DialTimeout("tcp", tp.addr, time.Second); err == nil {
		c.Close()
		t.Fatal("a client could connect after Drain started")
	}
	time.Sleep(200 * time.Millisecond)
	if pkts := idle.command([]byte("\x03SELECT 1")); mysqlwire.IsERR(pkts[0]) {
		t.Fatalf("idle session during the grace period: %s", errText(pkts[0]))
	}
	mustExec(t, txn, "INSERT INTO "+table+" VALUES (2)")

	// Deadline: the idle session is told and closed.
	p, seq, err := idle.read()
	if err != nil || seq != 1 || !isERR(p, mysqlwire.ErServerShutdown) {
		t.Fatalf("idle session at the deadline: packet %x (seq %d), %v; want ERR 1053 with sequence id 1", p, seq, err)
	}
	if e, _ := mysqlwire.ParseERR(p); string(e.SQLState) != "08S01" {
		t.Errorf("ERR 1053 with SQLSTATE %q, want 08S01", e.SQLState)
	}
	if at := time.Since(start); at < drainGrace {
		t.Errorf("idle session closed %v after Drain, before the %v deadline", at, drainGrace)
	}
	if _, _, err := idle.read(); !errors.Is(err, io.EOF) {
		t.Fatalf("idle session after ERR 1053: %v, want EOF", err)
	}
	// Each loop closes its own sessions when the deadline reaches it, so the
	// transaction's loop may still be a moment behind the idle session's.
	txnClosedBy := time.Now().Add(time.Second)
	for txn.PingContext(ctx) == nil {
		if time.Now().After(txnClosedBy) {
			t.Error("session in a transaction still open 1 s after the deadline")
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	r := <-crossing
	if r.err != nil || r.v != 42 {
		t.Fatalf("statement running across the deadline: %d, %v; want its result 42", r.v, r.err)
	}
	if err := crossingConn.PingContext(ctx); err == nil {
		t.Error("session whose statement crossed the deadline still open after its result")
	}
	r = <-outlasting
	if r.err == nil {
		t.Fatalf("statement outlasting the hard cut returned %d", r.v)
	}
	if cut := drainGrace + mysqlproxy.DrainHardCut; r.at < cut || r.at > cut+time.Second {
		t.Errorf("statement outlasting the hard cut failed after %v, want about %v", r.at, cut)
	}

	select {
	case <-drained:
	case <-time.After(3 * time.Second):
		t.Fatalf("Drain not done 3 s after the hard cut: %+v", tp.p.Stats())
	}
	st := tp.p.Stats()
	// The idle session, the transaction and the queued or cut commands were
	// told why: operators see drain closes as errors with code 1053.
	slot := errorSlot(mysqlwire.ErServerShutdown)
	if name := mysqlproxy.ErrorSlotName(slot); name != "1053" {
		t.Errorf("ERR 1053 is counted under %q, want its own label", name)
	}
	if n := st.Errors[slot]; n < 1 {
		t.Errorf("ERR 1053 counted %d times after the drain, want at least the idle session's", n)
	}
	if st.ClientsConnected != 0 || st.BackendsConnected != 0 {
		t.Errorf("after Drain: %d clients, %d backend connections; want none", st.ClientsConnected, st.BackendsConnected)
	}
	if st.BackendUnknownState <= unknownBefore {
		t.Error("the backend whose statement was cut off was not closed as unknown")
	}
	var n int
	if err := direct.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil || n != 0 {
		t.Errorf("rows left by the transaction the drain ended: %d, %v; want it rolled back", n, err)
	}
	if again := tp.p.Drain(drainGrace); again != drained {
		t.Error("a second Drain returned another channel")
	}
}
