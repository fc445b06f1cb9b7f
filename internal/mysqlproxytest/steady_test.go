package mysqlproxytest

import (
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/scalestack/scalestack/mysqlwire"
)

// leanRoundTrip sends one prebuilt request and reads packets until the
// response completes, reusing buf, so the test client allocates nothing.
func leanRoundTrip(t testing.TB, r *rawClient, req []byte, cmd mysqlwire.Command, buf []byte) {
	// Per round trip, not per session: a long benchmark run must not
	// outlive one deadline set at its start.
	if err := r.c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.c.Write(req); err != nil {
		t.Fatal(err)
	}
	var tr mysqlwire.ResponseTracker
	tr.Start(cmd, clientCaps())
	for {
		if _, err := io.ReadFull(r.c, buf[:4]); err != nil {
			t.Fatal(err)
		}
		n := int(buf[0]) | int(buf[1])<<8 | int(buf[2])<<16
		if _, err := io.ReadFull(r.c, buf[:n]); err != nil {
			t.Fatal(err)
		}
		prog, err := tr.Feed(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		if prog == mysqlwire.Complete {
			if _, _, failed := tr.Err(); failed {
				t.Fatalf("%s failed: %s", cmd, errText(buf[:n]))
			}
			return
		}
	}
}

// TestSteadyStateAllocations checks that relaying text queries and
// prepared-statement executions allocates nothing per statement in the
// whole process (proxy and test client together).
func TestSteadyStateAllocations(t *testing.T) {
	r, laterExec := preparedSession(t)
	laterPkt, _ := mysqlwire.AppendPacket(nil, 0, laterExec)
	queryPkt, _ := mysqlwire.AppendPacket(nil, 0, append([]byte{byte(mysqlwire.ComQuery)}, "SELECT 1"...))
	buf := make([]byte, 1<<16)
	for i := 0; i < 200; i++ { // warm pools and maps
		leanRoundTrip(t, r, laterPkt, mysqlwire.ComStmtExecute, buf)
		leanRoundTrip(t, r, queryPkt, mysqlwire.ComQuery, buf)
	}
	const rounds = 2000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < rounds; i++ {
		leanRoundTrip(t, r, laterPkt, mysqlwire.ComStmtExecute, buf)
		leanRoundTrip(t, r, queryPkt, mysqlwire.ComQuery, buf)
	}
	runtime.ReadMemStats(&after)
	perStmt := float64(after.Mallocs-before.Mallocs) / (2 * rounds)
	t.Logf("%.3f allocations per statement", perStmt)
	limit := 0.1
	if raceEnabled {
		// sync.Pool drops a share of Puts under -race by design; the
		// count is still bounded by one pooled buffer per statement.
		limit = 2
	}
	if perStmt > limit {
		t.Fatalf("%.3f allocations per statement in steady state, want none", perStmt)
	}
}

// preparedSession logs a raw client in through a fresh one-loop,
// one-backend proxy, prepares "SELECT ? + 1" and executes it once with its
// parameter types bound, as libmysqlclient does the first time. It returns
// the client and an EXECUTE of that statement for later rounds (types not
// bound again, parameter 41).
func preparedSession(tb testing.TB) (*rawClient, []byte) {
	tb.Helper()
	tp := startProxy(tb, 1, 1, nil)
	r := dialRaw(tb, tp.addr)
	if p := r.login(testUser, testPassword, mysqlwire.AuthNativePassword, 0); !mysqlwire.IsOK(p) {
		tb.Fatalf("login: %x", p)
	}
	resp := r.command(append([]byte{byte(mysqlwire.ComStmtPrepare)}, "SELECT ? + 1"...))
	id := getUint32(resp[0][1:])
	first := []byte{byte(mysqlwire.ComStmtExecute), 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 8, 0, 41, 0, 0, 0, 0, 0, 0, 0}
	putUint32(first[1:], id)
	later := []byte{byte(mysqlwire.ComStmtExecute), 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 41, 0, 0, 0, 0, 0, 0, 0}
	putUint32(later[1:], id)
	firstPkt, _ := mysqlwire.AppendPacket(nil, 0, first)
	leanRoundTrip(tb, r, firstPkt, mysqlwire.ComStmtExecute, make([]byte, 1<<16))
	return r, later
}
