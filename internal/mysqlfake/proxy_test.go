package mysqlfake_test

import (
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/internal/mysqlfake"
	"github.com/scalestack/scalestack/mysqlwire"
	"github.com/scalestack/scalestack/pool/mysqlproxy"
	"github.com/scalestack/scalestack/reactor"
)

// startProxy runs the real proxy in-process, on reactor loops, in front of
// the double: the shape pool's unit tests can take without a database.
func startProxy(t *testing.T, srv *mysqlfake.Server, n, loops int, tweak func(*mysqlproxy.Config)) *mysqlproxy.Proxy {
	t.Helper()
	users, err := mysqlproxy.ParseUsers(strings.NewReader(mysqlproxy.UserLine("alice", []byte("secret")) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	baddr, err := conn.ParseAddr(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	cfg := mysqlproxy.Config{Backend: baddr, User: appUser, Password: []byte(appPW), BackendConns: n, Users: users,
		Identity: mysqlproxy.IdentityService, // alice exists only at the proxy
		Logf:     func(format string, args ...any) { t.Logf("proxy: "+format, args...) }}
	if tweak != nil {
		tweak(&cfg)
	}
	p, err := mysqlproxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e, err := reactor.New(reactor.Config{Loops: loops})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	laddr, _ := conn.ParseAddr("127.0.0.1:0")
	if err := p.Start(e, laddr); err != nil {
		e.Stop()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		e.Stop()
	})
	waitFor(t, "the proxy's backends to log in", func() bool {
		return p.Stats().BackendsConnected == int64(n) && srv.LoggedInConns() == n
	})
	return p
}

func TestThroughProxy(t *testing.T) {
	for _, flavor := range []mysqlfake.Flavor{mysqlfake.MariaDB, mysqlfake.MySQL55} {
		name := map[mysqlfake.Flavor]string{mysqlfake.MariaDB: "MariaDB", mysqlfake.MySQL55: "MySQL55"}[flavor]
		t.Run(name, func(t *testing.T) { testThroughProxy(t, flavor) })
	}
}

func testThroughProxy(t *testing.T, flavor mysqlfake.Flavor) {
	const backends = 3
	srv := start(t, func(c *mysqlfake.Config) { c.Flavor = flavor })
	srv.On("SELECT id, name FROM users WHERE id = ?", mysqlfake.Response{Result: &mysqlfake.ResultSet{
		Columns: []mysqlfake.Column{{Name: "id", Type: mysqlwire.TypeLongLong}, {Name: "name"}},
		Rows:    [][]any{{int64(7), "ada"}},
	}})
	srv.On("SELECT COUNT(*) FROM users", mysqlfake.Rows([]string{"COUNT(*)"}, []any{int64(2)}))
	p := startProxy(t, srv, backends, 2, func(c *mysqlproxy.Config) { c.MySQL55 = flavor == mysqlfake.MySQL55 })

	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = "alice", "secret", "tcp", p.Addr().Address, schema
	cfg.InterpolateParams = false
	cfg.Timeout = 5 * time.Second
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()

	var count int
	if err := db.QueryRow("SELECT COUNT(*) FROM users").Scan(&count); err != nil || count != 2 {
		t.Fatalf("query through the proxy: %d, %v", count, err)
	}
	st, err := db.Prepare("SELECT id, name FROM users WHERE id = ?")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := 0; i < 5; i++ {
		var id int64
		var name string
		if err := st.QueryRow(int64(7)).Scan(&id, &name); err != nil || id != 7 || name != "ada" {
			t.Fatalf("execute %d through the proxy: %d %q %v", i, id, name, err)
		}
	}
	_, err = db.Exec("DROP TABLE users")
	if code, state := errCode(err); code != 1064 || state != "42000" {
		t.Fatalf("unscripted statement through the proxy: %v", err)
	}

	// The proxy holds exactly its N backends, all logged in as the service
	// account, and the client's schema reached them through COM_INIT_DB.
	conns := srv.Conns()
	if len(conns) != backends {
		t.Fatalf("%d backend connections, want %d", len(conns), backends)
	}
	sawSchema := false
	for _, bc := range conns {
		st := bc.State()
		if st.User != appUser {
			t.Errorf("backend %d logged in as %q", bc.ID(), st.User)
		}
		sawSchema = sawSchema || st.Schema == schema
		if st.ClientCaps&mysqlwire.ClientDeprecateEOF != 0 {
			t.Errorf("backend %d negotiated %#x: the proxy relays result sets as they are and must not ask for DEPRECATE_EOF", bc.ID(), st.ClientCaps)
		}
	}
	if !sawSchema {
		t.Error("no backend was switched to the client's schema")
	}
	stats := srv.Stats()
	if stats.Commands[mysqlwire.ComInitDB] == 0 || stats.Commands[mysqlwire.ComStmtPrepare] == 0 || stats.Commands[mysqlwire.ComStmtExecute] != 5 {
		t.Errorf("commands seen by the server: %v", stats.Commands)
	}
	if stats.LoggedIn < backends {
		t.Errorf("%d logins, want at least %d", stats.LoggedIn, backends)
	}
}

// TestProxyReconnects restarts the double on the same address: the proxy
// logs its backends in again, as after a server restart.
func TestProxyReconnects(t *testing.T) {
	srv := start(t, nil)
	p := startProxy(t, srv, 2, 1, nil)
	addr := srv.Addr()
	srv.Close()
	waitFor(t, "the proxy to see its backends go", func() bool { return p.Stats().BackendsConnected == 0 })
	again := start(t, func(c *mysqlfake.Config) { c.Addr = addr })
	waitFor(t, "the proxy to log in again", func() bool {
		return p.Stats().BackendsConnected == 2 && again.LoggedInConns() == 2
	})
}
