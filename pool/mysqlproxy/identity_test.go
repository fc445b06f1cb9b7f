package mysqlproxy

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/scalestack/scalestack/internal/mysqlfake"
	"github.com/scalestack/scalestack/mysqlwire"
)

// Accounts of the identity tests: alice, nopw and bob exist on the double
// with the passwords of the proxy's users file; mallory is in the users
// file only; mapped is mapped to the double's account "app".
const (
	bobUser, bobPassword = "bob", "bob-secret"
	malloryUser          = "mallory"
	mappedUser           = "mapped"
	appAccount, appPW    = "app", "app-secret"
)

// startIdentityProxy runs a proxy with per-account identities (the
// default) in front of a double that has the clients' accounts (a MySQL
// 5.5 double and proxy with mysql55).
func startIdentityProxy(t *testing.T, n, loops int, mysql55 bool) *testProxy {
	t.Helper()
	flavor := mysqlfake.MariaDB
	if mysql55 {
		flavor = mysqlfake.MySQL55
	}
	srv := mysqlfake.Start(t, mysqlfake.Config{
		Flavor: flavor,
		Accounts: []mysqlfake.Account{
			{User: fakeUser, Password: fakePassword},
			{User: testUser, Password: testPassword},
			{User: testNoPWUser},
			{User: bobUser, Password: bobPassword},
			{User: appAccount, Password: appPW},
		},
		Schemas: []string{testDB},
	})
	// CURRENT_USER() answers the account the backend connection is
	// logged in as: what the server would say.
	srv.OnFunc(func(sql string) bool { return sql == "SELECT CURRENT_USER()" }, func(q mysqlfake.Query) mysqlfake.Response {
		return mysqlfake.Rows([]string{"CURRENT_USER()"}, []any{q.Conn.State().User + "@%"})
	})
	// What the session's replayed state is on the backend.
	srv.OnFunc(func(sql string) bool { return sql == "SELECT DATABASE(), @@sql_mode" }, func(q mysqlfake.Query) mysqlfake.Response {
		st := q.Conn.State()
		return mysqlfake.Rows([]string{"DATABASE()", "@@sql_mode"}, []any{st.Schema, st.Vars["sql_mode"]})
	})
	tp := startProxyAt(t, mysqlEnv{addr: srv.Addr(), user: fakeUser, password: fakePassword}, n, loops, func(c *Config) {
		c.Identity = IdentityAccount
		c.MySQL55 = mysql55
		users, err := ParseUsers(strings.NewReader(strings.Join([]string{
			UserLine(testUser, []byte(testPassword)),
			UserLine(testNoPWUser, nil),
			UserLine(bobUser, []byte(bobPassword)),
			UserLine(malloryUser, []byte("mallory-secret")),
			UserLine(mappedUser, []byte("mapped-secret")),
			UserLine(fakeUser, []byte(fakePassword)),
		}, "\n")))
		if err != nil {
			t.Fatal(err)
		}
		users[mappedUser].Backend, users[mappedUser].BackendPassword = appAccount, []byte(appPW)
		c.Users = users
	})
	tp.fake = srv
	return tp
}

func (tp *testProxy) openAs(t *testing.T, user, password string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", tp.dsn(user, password, testDB, ""))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func currentUser(t *testing.T, db *sql.DB) string {
	t.Helper()
	var u string
	if err := db.QueryRow("SELECT CURRENT_USER()").Scan(&u); err != nil {
		t.Fatal(err)
	}
	return u
}

// TestIdentityRunsAsClientAccount: each client's statements run on a
// backend logged in as its own account (derived from its native login; an
// account without a password too), or as the account its line maps it to,
// on one shared backend that changes identity with COM_CHANGE_USER; with a
// backend per identity idle, none changes.
func TestIdentityRunsAsClientAccount(t *testing.T) {
	for _, mysql55 := range []bool{false, true} {
		t.Run(map[bool]string{false: "tracking", true: "mysql55"}[mysql55], func(t *testing.T) {
			testIdentityRunsAsClientAccount(t, mysql55)
		})
	}
}

func testIdentityRunsAsClientAccount(t *testing.T, mysql55 bool) {
	tp := startIdentityProxy(t, 1, 1, mysql55)
	clients := []struct{ user, password, want string }{
		{testUser, testPassword, testUser + "@%"},
		{testNoPWUser, "", testNoPWUser + "@%"},
		{bobUser, bobPassword, bobUser + "@%"},
		{mappedUser, "mapped-secret", appAccount + "@%"},
	}
	dbs := make([]*sql.DB, len(clients))
	for i, c := range clients {
		dbs[i] = tp.openAs(t, c.user, c.password)
	}
	// bob's session state is replayed after each COM_CHANGE_USER, which
	// resets the server session.
	if _, err := dbs[2].Exec("SET sql_mode = 'ANSI'"); err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 3; round++ {
		for i, c := range clients {
			// First after the change of account: the state replayed.
			var schema, mode string
			if err := dbs[i].QueryRow("SELECT DATABASE(), @@sql_mode").Scan(&schema, &mode); err != nil {
				t.Fatal(err)
			}
			if want := map[bool]string{true: "ANSI"}[i == 2]; schema != testDB || mode != want {
				t.Fatalf("round %d: %s runs in schema %q with sql_mode %q, want %q and %q", round, c.user, schema, mode, testDB, want)
			}
			if got := currentUser(t, dbs[i]); got != c.want {
				t.Fatalf("round %d: %s runs as %q, want %q", round, c.user, got, c.want)
			}
		}
		// A pinned session that leaves has its backend reset (in 5.5
		// mode with COM_CHANGE_USER): as the account it is logged in
		// as, which the next session of that account then uses as is.
		pinned := tp.openAs(t, testUser, testPassword)
		if _, err := pinned.Exec("SET @pin = 1"); err != nil {
			t.Fatal(err)
		}
		pinned.Close()
		if got := currentUser(t, dbs[0]); got != clients[0].want {
			t.Fatalf("round %d: after a reset %s runs as %q", round, clients[0].user, got)
		}
	}
	if sw := tp.p.Stats().IdentitySwitches; sw < 3*uint64(len(clients)) {
		t.Errorf("IdentitySwitches = %d: one backend serving %d identities in turn changes before each", sw, len(clients))
	}
}

// TestIdentityPrefersIdleBackendOfItsAccount: with as many idle backends
// as identities, clients taking turns find one of their own each time.
func TestIdentityPrefersIdleBackendOfItsAccount(t *testing.T) {
	tp := startIdentityProxy(t, 2, 1, false)
	alice, bob := tp.openAs(t, testUser, testPassword), tp.openAs(t, bobUser, bobPassword)
	currentUser(t, alice)
	currentUser(t, bob)
	before := tp.p.Stats().IdentitySwitches
	for i := 0; i < 20; i++ {
		if got := currentUser(t, alice); got != testUser+"@%" {
			t.Fatalf("alice runs as %q", got)
		}
		if got := currentUser(t, bob); got != bobUser+"@%" {
			t.Fatalf("bob runs as %q", got)
		}
	}
	if after := tp.p.Stats().IdentitySwitches; after != before {
		t.Errorf("IdentitySwitches went from %d to %d with a backend of each identity idle", before, after)
	}
}

// TestIdentityRefusedByServer: an account the server does not have gets
// the server's 1045 at its first command and is disconnected; the backend
// reconnects and other clients are served.
func TestIdentityRefusedByServer(t *testing.T) {
	tp := startIdentityProxy(t, 1, 1, false)
	mallory := tp.openAs(t, malloryUser, "mallory-secret")
	_, err := mallory.Exec("SELECT CURRENT_USER()")
	refused := time.Now()
	if code := mysqlErrCode(err); code != uint16(mysqlwire.ErAccessDenied) {
		t.Fatalf("mallory's first command: %v, want ERROR 1045", err)
	}
	tp.waitBackends(t, 1)
	// Within a second the proxy refuses mallory's login itself, without
	// another backend reconnect.
	reconnects := tp.p.Stats().BackendReconnects
	_, err = tp.openAs(t, malloryUser, "mallory-secret").Exec("SELECT 1")
	if time.Since(refused) < refusalMemory*8/10 {
		if code := mysqlErrCode(err); code != uint16(mysqlwire.ErAccessDenied) || !strings.Contains(err.Error(), "less than a second ago") {
			t.Fatalf("mallory's second login: %v, want the proxy's ERROR 1045", err)
		}
		if got := tp.p.Stats().BackendReconnects; got != reconnects {
			t.Errorf("BackendReconnects went from %d to %d on a refusal the proxy remembered", reconnects, got)
		}
	} else {
		t.Logf("the machine is slow: the second login came %v after the refusal; not checked", time.Since(refused))
	}
	if got := currentUser(t, tp.openAs(t, testUser, testPassword)); got != testUser+"@%" {
		t.Fatalf("alice after mallory's refusal runs as %q", got)
	}
}

// TestIdentityScopesPrepareCache: a PREPARE answered for one account is
// not answered from the cache to another (its grants decide whether the
// statement prepares and what it describes).
func TestIdentityScopesPrepareCache(t *testing.T) {
	tp := startIdentityProxy(t, 1, 1, false)
	alice, bob := tp.openAs(t, testUser, testPassword), tp.openAs(t, bobUser, bobPassword)
	for _, c := range []struct {
		db   *sql.DB
		want string
	}{{alice, testUser + "@%"}, {bob, bobUser + "@%"}, {alice, testUser + "@%"}} {
		st, err := c.db.Prepare("SELECT CURRENT_USER()")
		if err != nil {
			t.Fatal(err)
		}
		var got string
		if err := st.QueryRow().Scan(&got); err != nil || got != c.want {
			t.Fatalf("EXECUTE: %q %v, want %q", got, err, c.want)
		}
		st.Close()
	}
	if hits := tp.p.Stats().PrepareCacheHits; hits != 1 {
		t.Errorf("PrepareCacheHits = %d, want 1 (alice's second PREPARE only)", hits)
	}
}

// TestIdentityAdminStatements: a client running as its own account gets
// the server's verdict on statements the proxy refuses to a shared
// account; a mapped account (shared) is refused as before, and BACKUP
// STAGE, whose lock the server does not report, stays refused.
func TestIdentityAdminStatements(t *testing.T) {
	tp := startIdentityProxy(t, 1, 1, false)
	tp.fake.OnPrefix("SET GLOBAL", mysqlfake.OK())
	alice, mapped := tp.openAs(t, testUser, testPassword), tp.openAs(t, mappedUser, "mapped-secret")
	if _, err := alice.Exec("SET GLOBAL max_connections = 100"); err != nil {
		t.Errorf("alice (own account) SET GLOBAL: %v, want the server's answer", err)
	}
	if _, err := mapped.Exec("SET GLOBAL max_connections = 100"); mysqlErrCode(err) != 1227 {
		t.Errorf("mapped (shared account) SET GLOBAL: %v, want ERROR 1227", err)
	}
	if _, err := alice.Exec("BACKUP STAGE START"); mysqlErrCode(err) != 1227 {
		t.Errorf("alice BACKUP STAGE: %v, want ERROR 1227", err)
	}
}

// TestIdentityAsksCachingSHA2ClientsForNative: with per-account identities
// a client offering caching_sha2_password is switched to
// mysql_native_password (whose answer yields SHA1(password)), and then
// runs as its own account.
func TestIdentityAsksCachingSHA2ClientsForNative(t *testing.T) {
	tp := startIdentityProxy(t, 1, 1, false)
	for _, user := range []string{testUser, "nobody"} {
		rc := dialRaw(t, tp.addr)
		resp := rc.login(user, testPassword, mysqlwire.AuthCachingSHA2, 0)
		sw, err := mysqlwire.ParseAuthSwitchRequest(resp)
		if err != nil || string(sw.PluginName) != mysqlwire.AuthNativePassword {
			t.Fatalf("%s: answer to a caching_sha2 login %x (%v), want an auth switch to mysql_native_password", user, resp, err)
		}
		if user != testUser {
			continue // an unknown name is asked the same
		}
		rc.write(3, mysqlwire.NativePasswordScramble([]byte(testPassword), sw.PluginData[:20]))
		if ok, _ := rc.mustRead(); !mysqlwire.IsOK(ok) {
			t.Fatalf("native answer: %x", ok)
		}
		rows := rc.command(append([]byte{byte(mysqlwire.ComQuery)}, "SELECT CURRENT_USER()"...))
		if len(rows) != 5 || string(rows[3]) != "\x07"+testUser+"@%" {
			t.Fatalf("CURRENT_USER(): %q", rows)
		}
	}
}

// TestIdentityServiceAccountClient: a client that logs in as the service
// account itself (same name and password) runs on the backends as they
// are, with no COM_CHANGE_USER.
func TestIdentityServiceAccountClient(t *testing.T) {
	tp := startIdentityProxy(t, 2, 1, false)
	db := tp.openAs(t, fakeUser, fakePassword)
	for i := 0; i < 5; i++ {
		if got := currentUser(t, db); got != fakeUser+"@%" {
			t.Fatalf("runs as %q", got)
		}
	}
	if sw := tp.p.Stats().IdentitySwitches; sw != 0 {
		t.Errorf("IdentitySwitches = %d, want 0", sw)
	}
}

// TestIdentityPrintsNoSecret: however an identity is formatted (a log
// line, an error), it shows the account name, never SHA1(password) or the
// password.
func TestIdentityPrintsNoSecret(t *testing.T) {
	r := newIdentities("svc", []byte("service-password"))
	derived := r.get("alice", mysqlwire.NativePasswordHash([]byte("x"))[:20], nil)
	for _, id := range []*identity{r.service, derived} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
			out := fmt.Sprintf(verb, id)
			if !strings.Contains(out, id.name) || strings.Contains(out, "password") ||
				(id.stage1 != nil && (strings.Contains(out, string(id.stage1)) || strings.Contains(out, fmt.Sprintf("%x", id.stage1)) ||
					strings.Contains(out, fmt.Sprint(id.stage1[:4])[1:6]))) {
				t.Errorf("%s of %s: %q", verb, id.name, out)
			}
		}
	}
	if err := fmt.Errorf("login as %q: %w", derived, errNoPassword); strings.Contains(err.Error(), fmt.Sprintf("%x", derived.stage1)) {
		t.Errorf("error text %q holds the secret", err)
	}
}
