package mysqlproxytest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/scalestack/scalestack/mysqlwire"
	"github.com/scalestack/scalestack/pool/mysqlproxy"
)

// TestClientVanishesMidResult: a client that leaves while its result is
// streaming leaves the backend in an unknown state; it is closed and
// replaced, never handed to another client.
func TestClientVanishesMidResult(t *testing.T) {
	tp := startProxy(t, 1, 1, nil)
	r := dialRaw(t, tp.addr)
	if p := r.login(testUser, testPassword, mysqlwire.AuthNativePassword, 0); !mysqlwire.IsOK(p) {
		t.Fatalf("login: %x", p)
	}
	r.write(0, append([]byte{byte(mysqlwire.ComQuery)}, "SELECT seq, SLEEP(0.2) FROM seq_1_to_3"...))
	time.Sleep(50 * time.Millisecond)
	r.c.Close()
	waitFor(t, func() bool { return tp.p.Stats().BackendUnknownState == 1 })
	tp.waitBackends(t, 1)
	db := tp.open(t, "")
	var n int
	if err := db.QueryRow("SELECT 41 + 1").Scan(&n); err != nil || n != 42 {
		t.Fatalf("next client: %d %v", n, err)
	}
	if st := tp.p.Stats(); st.BackendConnects != 2 || st.BackendsConnected != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestBackendsReconnect: backends killed on the server come back, and the
// pool never exceeds N.
func TestBackendsReconnect(t *testing.T) {
	const n = 3
	// A server of its own: the service account's threads on it are this
	// proxy's backends (backendThreadIDs).
	tp := startProxyAt(t, privateMySQL(t), n, 2, nil)
	root := openRoot(t, tp.env)
	db := tp.open(t, "")
	ids := tp.backendThreadIDs(t, root)
	if len(ids) != n {
		t.Fatalf("found %d backend threads, want %d", len(ids), n)
	}
	for _, id := range ids {
		if _, err := root.Exec(fmt.Sprintf("KILL %d", id)); err != nil {
			t.Fatalf("KILL %d: %v", id, err)
		}
	}
	waitFor(t, func() bool { return tp.p.Stats().BackendConnects >= 2*n })
	tp.waitBackends(t, n)
	for i := 0; i < 10; i++ {
		if err := db.QueryRow("SELECT 1").Scan(new(int)); err != nil {
			// A pooled go-sql-driver connection may see one 9004.
			if mysqlErrCode(err) != uint16(mysqlproxy.ErBackendLost) {
				t.Fatalf("after reconnect: %v", err)
			}
		}
	}
	if ids := tp.backendThreadIDs(t, root); len(ids) != n {
		t.Fatalf("server has %d threads for this proxy, want %d", len(ids), n)
	}
	if st := tp.p.Stats(); st.BackendsConnected != n {
		t.Fatalf("backends %d, want %d", st.BackendsConnected, n)
	}
}

// TestLargeResultStreams relays a result far larger than the connection's
// high-water mark to a client that reads slowly at first.
func TestLargeResultStreams(t *testing.T) {
	tp := startProxy(t, 1, 1, nil)
	db := tp.open(t, "")
	rows, err := db.Query("SELECT seq, REPEAT('x', 1000) FROM seq_1_to_20000")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // let the proxy hit its high-water mark
	n, bytes := 0, 0
	for rows.Next() {
		var seq int
		var s string
		if err := rows.Scan(&seq, &s); err != nil {
			t.Fatal(err)
		}
		n++
		bytes += len(s)
		if seq != n {
			t.Fatalf("row %d has seq %d", n, seq)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != 20000 || bytes != 20000*1000 {
		t.Fatalf("%d rows, %d bytes", n, bytes)
	}
	var one int
	if err := db.QueryRow("SELECT 1").Scan(&one); err != nil || tp.p.Stats().BackendUnknownState != 0 {
		t.Fatalf("after the large result: %v %+v", err, tp.p.Stats())
	}
}

// TestLongData replays COM_STMT_SEND_LONG_DATA chunks on the backend that
// runs the EXECUTE.
func TestLongData(t *testing.T) {
	tp := startProxy(t, 2, 1, nil)
	r := dialRaw(t, tp.addr)
	if p := r.login(testUser, testPassword, mysqlwire.AuthNativePassword, 0); !mysqlwire.IsOK(p) {
		t.Fatalf("login: %x", p)
	}
	resp := r.command(append([]byte{byte(mysqlwire.ComStmtPrepare)}, "SELECT CONCAT(?, '!')"...))
	id := getUint32(resp[0][1:])
	for _, chunk := range []string{"hello, ", "long ", "data"} {
		p := []byte{byte(mysqlwire.ComStmtSendLongData), 0, 0, 0, 0, 0, 0}
		putUint32(p[1:], id)
		r.write(0, append(p, chunk...))
	}
	exec := []byte{byte(mysqlwire.ComStmtExecute), 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, byte(mysqlwire.FieldType(0xfd)), 0}
	putUint32(exec[1:], id)
	resp = r.command(exec)
	if mysqlwire.IsERR(resp[0]) {
		t.Fatalf("execute: %s", errText(resp[0]))
	}
	row := resp[len(resp)-2]
	if !strings.Contains(string(row), "hello, long data!") {
		t.Fatalf("row %q", row)
	}
}

// TestLoadDataLocal relays a client's file through LOAD DATA LOCAL INFILE.
func TestLoadDataLocal(t *testing.T) {
	tp := startProxy(t, 1, 1, nil)
	path := filepath.Join(t.TempDir(), "rows.csv")
	var b strings.Builder
	// Several megabytes: more than the backend connection's high-water
	// mark, so the client is throttled while the server catches up.
	const rows = 200000
	for i := 0; i < rows; i++ {
		fmt.Fprintf(&b, "%d,row%d-%s\n", i, i, strings.Repeat("y", 8))
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	mysql.RegisterLocalFile(path)
	db := tp.open(t, "")
	mustExec(t, db, "CREATE TABLE IF NOT EXISTS proxy_load (id INT PRIMARY KEY, v VARCHAR(32))")
	mustExec(t, db, "DELETE FROM proxy_load")
	c, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.ExecContext(context.Background(), "LOAD DATA LOCAL INFILE '"+path+"' INTO TABLE proxy_load FIELDS TERMINATED BY ','")
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if n, _ := res.RowsAffected(); n != rows {
		t.Fatalf("loaded %d rows", n)
	}
	var count int
	if err := c.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM proxy_load").Scan(&count); err != nil || count != rows {
		t.Fatalf("count %d %v", count, err)
	}
	if st := tp.p.Stats(); st.PinnedSessions != 0 {
		t.Fatalf("still pinned after the load: %+v", st)
	}
}
