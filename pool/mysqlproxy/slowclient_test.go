package mysqlproxy

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/scalestack/scalestack/internal/mysqlfake"
	"github.com/scalestack/scalestack/mysqlwire"
)

// bigResultQuery returns about 10 MB: several times the client connection's
// high-water mark (1 MiB) plus what the kernel buffers.
// (The server stops a recursive CTE at 1000 iterations by default: a cross
// join makes the rows.)
const bigResultQuery = "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 100) " +
	"SELECT a.n, b.n, REPEAT('x', 1000) FROM s a, s b LIMIT 10000"

const bigResultRows = 10000

// dialSlowClient logs in, with a small receive buffer when rcvBuf > 0 so
// that what the client does not read stays in the proxy rather than in the
// kernel (and a result crawls in at a few tens of KB/s).
func dialSlowClient(t *testing.T, tp *testProxy, rcvBuf int) *rawClient {
	t.Helper()
	r := dialRaw(t, tp.addr)
	if rcvBuf > 0 {
		if err := r.c.(*net.TCPConn).SetReadBuffer(rcvBuf); err != nil {
			t.Fatal(err)
		}
	}
	if resp := r.login(testUser, testPassword, mysqlwire.AuthNativePassword, 0); resp[0] != 0 {
		t.Fatalf("login: %x", resp)
	}
	return r
}

// readResult reads a text result set until it is complete or until (if
// not zero) has passed, and returns the rows it read.
func (r *rawClient) readResult(until time.Time) (rows int, err error) {
	var tr mysqlwire.ResponseTracker
	if _, err := tr.Start(mysqlwire.ComQuery, r.hs.Capabilities); err != nil {
		return 0, err
	}
	columnsDone := false
	for {
		if !until.IsZero() && time.Now().After(until) {
			return rows, nil
		}
		p, _, err := r.read()
		if err != nil {
			return rows, err
		}
		if columnsDone && !mysqlwire.IsEOF(p) && !mysqlwire.IsERR(p) {
			rows++
		}
		if mysqlwire.IsEOF(p) {
			columnsDone = true
		}
		prog, err := tr.Feed(p)
		if err != nil {
			return rows, err
		}
		if prog == mysqlwire.Complete {
			return rows, nil
		}
	}
}

// TestClientWriteTimeout covers the client write timeout: a client that
// stops reading a result is cut off and the backend it held is replaced; a
// client that reads slowly, or that drained its output and then sits idle,
// is left alone.
func TestClientWriteTimeout(t *testing.T) {
	const timeout = time.Second
	tp := startProxy(t, 1, 1, func(c *Config) { c.ClientWriteTimeout = timeout })
	tp.fake.On(bigResultQuery, bigResult())
	query := append([]byte{byte(mysqlwire.ComQuery)}, bigResultQuery...)

	t.Run("no progress aborts", func(t *testing.T) {
		before := tp.p.Stats()
		r := dialSlowClient(t, tp, 4096)
		sent := time.Now()
		r.write(0, query)
		// The proxy must close the client and the backend it held (the
		// response was cut in the middle), then log a backend in again.
		waitFor(t, func() bool { return tp.p.Stats().ClientWriteTimeouts == before.ClientWriteTimeouts+1 })
		// (No upper bound beyond waitFor's: when the output crosses the
		// high-water mark depends on how fast a loaded server answers.)
		if cut := time.Since(sent); cut < timeout {
			t.Fatalf("cut off %v after the query, before the %v timeout", cut, timeout)
		}
		waitFor(t, func() bool {
			s := tp.p.Stats()
			return s.BackendUnknownState == before.BackendUnknownState+1 &&
				s.BackendsConnected == 1 && s.BackendReconnects > before.BackendReconnects
		})
		// Whatever the kernel had buffered, the stream then ends.
		if _, err := r.readResult(time.Time{}); err == nil {
			t.Fatal("the whole result arrived after the client was cut off")
		}
		var one int
		if err := tp.open(t, "").QueryRow("SELECT 1").Scan(&one); err != nil || one != 1 {
			t.Fatalf("another client after the cut: %v %v", one, err)
		}
	})

	t.Run("progress re-arms", func(t *testing.T) {
		before := tp.p.Stats()
		// Through a 4 KiB receive buffer the result crawls in at a few
		// tens of KB/s: the output stays over the high-water mark for
		// several timeouts, but the client takes some of it all the time.
		r := dialSlowClient(t, tp, 4096)
		r.write(0, query)
		rows, err := r.readResult(time.Now().Add(3 * timeout))
		if err != nil || rows == 0 || rows == bigResultRows {
			t.Fatalf("slow reader: %d rows, %v (client write timeouts %d)", rows, err,
				tp.p.Stats().ClientWriteTimeouts-before.ClientWriteTimeouts)
		}
		if n := tp.p.Stats().ClientWriteTimeouts - before.ClientWriteTimeouts; n != 0 {
			t.Fatalf("%d client write timeouts for a client that kept reading", n)
		}
	})

	t.Run("low water disarms", func(t *testing.T) {
		before := tp.p.Stats()
		r := dialSlowClient(t, tp, 0)
		r.write(0, query)
		// Stall for most of a timeout (the output goes over the high-water
		// mark and the timer is armed), then drain it all.
		time.Sleep(timeout * 3 / 4)
		if rows, err := r.readResult(time.Time{}); err != nil || rows != bigResultRows {
			t.Fatalf("drained %d rows: %v", rows, err)
		}
		// Nothing is pending now: sitting idle for longer than a timeout
		// is no stall.
		time.Sleep(timeout * 3 / 2)
		p := r.command([]byte{byte(mysqlwire.ComPing)})
		if len(p) != 1 || p[0][0] != 0 {
			t.Fatalf("ping after idling: %x", p)
		}
		if n := tp.p.Stats().ClientWriteTimeouts - before.ClientWriteTimeouts; n != 0 {
			t.Fatalf("%d client write timeouts for a client that drained its output", n)
		}
	})
}

// bigResult is what bigResultQuery returns on a server: 10,000 rows of
// about 1 KB, 10 MB in all, far over the client connection's high-water
// mark.
func bigResult() mysqlfake.Response {
	x := strings.Repeat("x", 1000)
	rows := make([][]any, 0, 10000)
	for a := int64(1); a <= 100; a++ {
		for b := int64(1); b <= 100; b++ {
			rows = append(rows, []any{a, b, x})
		}
	}
	return mysqlfake.Rows([]string{"n", "n", "REPEAT('x', 1000)"}, rows...)
}
