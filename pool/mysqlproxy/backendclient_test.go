package mysqlproxy

import (
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scalestack/scalestack/internal/mysqlfake"
	"github.com/scalestack/scalestack/mysqlwire"
	"github.com/scalestack/scalestack/reactor"
)

// The backend client against the in-process double. The same logins
// against a real MariaDB are internal/mysqlproxytest's
// TestBackendClientModes.

// backendView is what the backend client negotiated, read on its loop.
type backendView struct {
	caps     mysqlwire.Capabilities
	plugin   string
	loggedIn bool
	stmts    int
}

func (tp *testProxy) backendViews(t testing.TB) []backendView {
	t.Helper()
	var out []backendView
	for _, pl := range tp.p.loops {
		if err := pl.loop.Exec(func(*reactor.Loop) {
			for _, b := range tp.p.backends {
				if b.pb.Loop() == pl.lp {
					out = append(out, backendView{b.caps, b.plugin, b.phase == bReady && b.c() != nil, len(b.stmts)})
				}
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestBackendLoginNegotiation checks what the backend login negotiates in
// both modes: normal, and --mysql55 (capabilities masked with MySQL55Caps).
func TestBackendLoginNegotiation(t *testing.T) {
	for _, mode := range []struct {
		name    string
		mysql55 bool
	}{{"normal", false}, {"mysql55", true}} {
		t.Run(mode.name, func(t *testing.T) {
			tp := startProxy(t, 1, 1, func(c *Config) { c.MySQL55 = mode.mysql55 })
			views := tp.backendViews(t)
			if len(views) != 1 || !views[0].loggedIn {
				t.Fatalf("backends %+v", views)
			}
			v := views[0]
			if v.plugin != mysqlwire.AuthNativePassword {
				t.Errorf("plugin %q, want %s", v.plugin, mysqlwire.AuthNativePassword)
			}
			if mode.mysql55 && v.caps&^mysqlwire.MySQL55Caps != 0 {
				t.Errorf("5.5 mode negotiated %#x, beyond MySQL55Caps", v.caps&^mysqlwire.MySQL55Caps)
			}
			if !mode.mysql55 && !v.caps.Has(mysqlwire.ClientPluginAuthLenEncClientData|mysqlwire.ClientMultiStatements) {
				t.Errorf("normal mode negotiated %#x", v.caps)
			}
			if v.caps&mysqlwire.ClientDeprecateEOF != 0 || (v.caps&mysqlwire.ClientSessionTrack != 0) == mode.mysql55 {
				t.Errorf("negotiated %#x: want no DEPRECATE_EOF, and SESSION_TRACK unless in 5.5 mode", v.caps)
			}
			// The double saw the service account log in.
			conns := tp.fake.Conns()
			if len(conns) != 1 || conns[0].State().User != fakeUser {
				t.Fatalf("backend connections on the double: %d", len(conns))
			}
		})
	}
}

// TestBackendStmtBound: each backend keeps at most MaxStmtsPerBackend
// prepared statements, closing the least recently used, as both the proxy
// and the server (the double) count them. The client holds all ten
// statements open (one it closed would be closed on the backends at once,
// and the bound would never be reached).
func TestBackendStmtBound(t *testing.T) {
	const bound = 3
	tp := startProxy(t, 2, 2, func(c *Config) { c.MaxStmtsPerBackend = bound })
	tp.fake.OnRegexp(`^SELECT [0-9]+ \+ \?$`, mysqlfake.Rows([]string{"v"}, []any{int64(1)}))
	db := tp.open(t, "")
	db.SetMaxOpenConns(1) // one session holds every statement
	stmts := make([]*sql.Stmt, 10)
	for i := range stmts {
		st, err := db.Prepare(fmt.Sprintf("SELECT %d + ?", i))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		stmts[i] = st
	}
	for round := 0; round < 2; round++ {
		for i, st := range stmts {
			var v int64
			if err := st.QueryRow(int64(1)).Scan(&v); err != nil || v != 1 {
				t.Fatalf("execute %d: %d %v", i, v, err)
			}
		}
	}
	st := tp.p.Stats()
	if st.BackendStmtEvictions == 0 {
		t.Errorf("expected evictions: %+v", st)
	}
	for _, v := range tp.backendViews(t) {
		if v.stmts > bound {
			t.Errorf("a backend keeps %d statements, want at most %d", v.stmts, bound)
		}
	}
	for _, c := range tp.fake.Conns() {
		if n := len(c.State().Stmts); n > bound {
			t.Errorf("the server holds %d statements on backend connection %d, want at most %d", n, c.ID(), bound)
		}
	}
}

// TestBackendClientWrongServicePassword: a service login the server refuses
// is reported with the server's code (log), counted in BackendFailures, makes
// Ready (/readyz) fail and leaves clients with ERR 9001; the pool recovers
// once the password is right again.
func TestBackendClientWrongServicePassword(t *testing.T) {
	var mu sync.Mutex
	var logs []string
	tp := startProxy(t, 1, 1, func(c *Config) {
		c.QueueTimeout = 300 * time.Millisecond
		next := c.Logf
		c.Logf = func(format string, args ...any) {
			mu.Lock()
			logs = append(logs, fmt.Sprintf(format, args...))
			mu.Unlock()
			next(format, args...)
		}
	})
	if err := tp.p.Ready(); err != nil {
		t.Fatalf("Ready with the backend logged in: %v", err)
	}
	tp.fake.On("SELECT 41 + 1", mysqlfake.Rows([]string{"41 + 1"}, []any{int64(42)}))
	good := tp.p.cfg.Password
	setPassword := func(pw []byte) {
		// The backend reads the password on its loop when it logs in.
		// Identities are immutable: the service account is replaced.
		if err := tp.p.loops[0].loop.Exec(func(*reactor.Loop) {
			tp.p.cfg.Password = pw
			tp.p.idents.service = newIdentities(tp.p.cfg.User, pw).service
		}); err != nil {
			t.Fatal(err)
		}
	}
	setPassword([]byte("not-the-service-password"))
	tp.fake.KillAll()
	waitFor(t, func() bool { st := tp.p.Stats(); return st.BackendFailures >= 1 && st.BackendsConnected == 0 })
	if err := tp.p.Ready(); err == nil {
		t.Fatal("Ready (what /readyz reports) is nil with no backend logged in")
	}
	mu.Lock()
	refused := ""
	for _, l := range logs {
		if strings.Contains(l, "login failed") {
			refused = l
		}
	}
	mu.Unlock()
	want := fmt.Sprintf("backend login as %q refused: 1045 Access denied for user '%s'", tp.env.user, tp.env.user)
	if !strings.Contains(refused, want) {
		t.Fatalf("log line %q does not carry the server's ERR (want it to contain %q)", refused, want)
	}
	db := tp.open(t, "")
	// No backend can log in: the command fails at once with 9003 rather
	// than waiting out the queue timeout.
	if err := db.QueryRow("SELECT 1").Scan(new(int)); mysqlErrCode(err) != uint16(ErBackendUnavailable) {
		t.Fatalf("query without a backend: %v, want ERR %d", err, ErBackendUnavailable)
	}
	setPassword(good)
	tp.waitBackends(t, 1)
	if err := tp.p.Ready(); err != nil {
		t.Fatalf("Ready after recovery: %v", err)
	}
	var n int
	if err := db.QueryRow("SELECT 41 + 1").Scan(&n); err != nil || n != 42 {
		t.Fatalf("after recovery: %d %v", n, err)
	}
}
