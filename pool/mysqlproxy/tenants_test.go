package mysqlproxy

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scalestack/scalestack/internal/mysqlfake"
	"github.com/scalestack/scalestack/mysqlwire"
	"github.com/scalestack/scalestack/pool"
)

func withTenant(rules pool.TenantRules) func(*Config) {
	return func(c *Config) { c.Tenants = Tenants{Rules: map[string]pool.TenantRules{testUser: rules}} }
}

func errState(p []byte) string {
	e, err := mysqlwire.ParseERR(p)
	if err != nil {
		return ""
	}
	return string(e.SQLState)
}

// TestTenantMaxQPS: commands beyond the tenant's bucket get ERR 1226
// (42000) and the session stays usable; commands the proxy answers itself
// take no token; another tenant is not limited.
func TestTenantMaxQPS(t *testing.T) {
	tp := startProxy(t, 2, 1, withTenant(pool.TenantRules{MaxQPS: 3}))
	c := dialRaw(t, tp.addr)
	if resp := c.login(testUser, testPassword, mysqlwire.AuthNativePassword, 0); !mysqlwire.IsOK(resp) {
		t.Fatalf("login: %s", errText(resp))
	}
	ok, limited := 0, 0
	for i := 0; i < 10; i++ {
		p := c.command(append([]byte{byte(mysqlwire.ComQuery)}, "SELECT 1"...))
		switch last := p[len(p)-1]; {
		case isERR(last, mysqlwire.ErUserLimitReached):
			limited++
			if errState(last) != "42000" || !strings.Contains(errText(last), "max-qps") {
				t.Fatalf("refusal: %s (%s)", errText(last), errState(last))
			}
		case mysqlwire.IsERR(last):
			t.Fatalf("unexpected %s", errText(last))
		default:
			ok++
		}
	}
	if ok != 3 || limited != 7 {
		t.Fatalf("%d served, %d refused; want 3 and 7 at max-qps 3", ok, limited)
	}
	if p := c.command([]byte{byte(mysqlwire.ComPing)}); !mysqlwire.IsOK(p[0]) {
		t.Fatalf("COM_PING after the limit: %s", errText(p[0]))
	}
	if p := c.command(append([]byte{byte(mysqlwire.ComQuery)}, "SELECT CONNECTION_ID()"...)); mysqlwire.IsERR(p[len(p)-1]) {
		t.Fatalf("a statement the proxy answers was limited: %s", errText(p[len(p)-1]))
	}
	other := dialRaw(t, tp.addr)
	if resp := other.login(testNoPWUser, "", mysqlwire.AuthNativePassword, 0); !mysqlwire.IsOK(resp) {
		t.Fatalf("login: %s", errText(resp))
	}
	for i := 0; i < 10; i++ {
		if p := other.command(append([]byte{byte(mysqlwire.ComQuery)}, "SELECT 1"...)); mysqlwire.IsERR(p[len(p)-1]) {
			t.Fatalf("another tenant was limited: %s", errText(p[len(p)-1]))
		}
	}
	var snap TenantStats
	for _, s := range tp.p.TenantStats() {
		if s.Name == testUser {
			snap = s
		}
	}
	if snap.Refused[pool.RefusedMaxQPS] != 7 || snap.Commands != 3 || !snap.Named || snap.Clients != 1 {
		t.Fatalf("tenant counters %+v", snap)
	}
}

// TestTenantMaxClients: a login beyond the tenant's max-clients gets ERR
// 1203 (42000) instead of OK; one that leaves makes room.
func TestTenantMaxClients(t *testing.T) {
	tp := startProxy(t, 1, 1, withTenant(pool.TenantRules{MaxClients: 1}))
	first := dialRaw(t, tp.addr)
	if resp := first.login(testUser, testPassword, mysqlwire.AuthNativePassword, 0); !mysqlwire.IsOK(resp) {
		t.Fatalf("first login: %s", errText(resp))
	}
	second := dialRaw(t, tp.addr)
	resp := second.login(testUser, testPassword, mysqlwire.AuthNativePassword, 0)
	if !isERR(resp, mysqlwire.ErTooManyUserConnections) || errState(resp) != "42000" {
		t.Fatalf("second login: %s, want ERR 1203 (42000)", errText(resp))
	}
	first.c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		third := dialRaw(t, tp.addr)
		if resp := third.login(testUser, testPassword, mysqlwire.AuthNativePassword, 0); mysqlwire.IsOK(resp) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no login after the first client left")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTenantMaxQueued: with the tenant's max-queued commands waiting, one
// more gets ERR 9006 (HY000) at once.
func TestTenantMaxQueued(t *testing.T) {
	tp := startProxy(t, 1, 1, withTenant(pool.TenantRules{MaxQueued: 1}))
	tp.fake.On("SELECT SLEEP(0.5)", mysqlfake.OK().After(500*time.Millisecond))
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ { // one runs, one waits
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := dialRaw(t, tp.addr)
			c.login(testUser, testPassword, mysqlwire.AuthNativePassword, 0)
			c.command(append([]byte{byte(mysqlwire.ComQuery)}, "SELECT SLEEP(0.5)"...))
		}()
	}
	defer wg.Wait()
	for deadline := time.Now().Add(5 * time.Second); tp.p.Stats().QueueWaiting < 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("nothing queued")
		}
	}
	c := dialRaw(t, tp.addr)
	c.login(testUser, testPassword, mysqlwire.AuthNativePassword, 0)
	start := time.Now()
	p := c.command(append([]byte{byte(mysqlwire.ComQuery)}, "SELECT 1"...))
	if last := p[len(p)-1]; !isERR(last, ErTenantMaxQueued) || errState(last) != "HY000" {
		t.Fatalf("got %s, want ERR 9006 (HY000)", errText(last))
	}
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Fatalf("refused after %v, want at once", d)
	}
}

// TestTenantStatementTime: the tenant's max-statement-time reaches every
// backend as the session's max_statement_time; a client may lower it but
// not raise or lift it, by any statement.
func TestTenantStatementTime(t *testing.T) {
	tp := startProxy(t, 1, 1, withTenant(pool.TenantRules{StatementTime: 1500 * time.Millisecond}))
	c := dialRaw(t, tp.addr)
	if resp := c.login(testUser, testPassword, mysqlwire.AuthNativePassword, 0); !mysqlwire.IsOK(resp) {
		t.Fatalf("login: %s", errText(resp))
	}
	query := func(sql string) []byte {
		p := c.command(append([]byte{byte(mysqlwire.ComQuery)}, sql...))
		return p[len(p)-1]
	}
	tp.fake.On("SHOW VARIABLES LIKE 'max_statement_time'", mysqlfake.Rows([]string{"Variable_name", "Value"}))
	tp.fake.ResetLog()
	if last := query("SELECT 1"); mysqlwire.IsERR(last) {
		t.Fatalf("SELECT 1: %s", errText(last))
	}
	replayed := false
	for _, q := range tp.fake.Queries() {
		if strings.Contains(q, "max_statement_time=1.5") {
			replayed = true
		}
	}
	if !replayed {
		t.Fatalf("no max_statement_time=1.5 reached the backend: %q", tp.fake.Queries())
	}
	refused := []string{
		"SET max_statement_time=0",
		"SET SESSION max_statement_time = 10",
		"SET @@max_statement_time=DEFAULT",
		"SET STATEMENT max_statement_time=0 FOR SELECT 1",
		"SELECT 1; SET max_statement_time=0",
		"CREATE PROCEDURE p() SET max_statement_time=0",
	}
	for _, sql := range refused {
		if last := query(sql); !isERR(last, ErStatementTimeCap) || errState(last) != "42000" {
			t.Errorf("%s: got %s, want ERR 9007 (42000)", sql, errText(last))
		}
	}
	for _, sql := range []string{"SET max_statement_time=0.5", "SELECT @@max_statement_time", "SHOW VARIABLES LIKE 'max_statement_time'"} {
		if last := query(sql); mysqlwire.IsERR(last) {
			t.Errorf("%s: %s", sql, errText(last))
		}
	}
	prep := c.command(append([]byte{byte(mysqlwire.ComStmtPrepare)}, "SET max_statement_time=0"...))
	if !isERR(prep[0], ErStatementTimeCap) {
		t.Errorf("prepared SET: got %s, want ERR 9007", errText(prep[0]))
	}
}

// TestTenantGroupsAccounts: accounts with the same users-file tenant field
// share their tenant's limits; an account without one is its own tenant.
func TestTenantGroupsAccounts(t *testing.T) {
	tp := startProxy(t, 1, 1, func(c *Config) {
		users, err := ParseUsers(strings.NewReader(UserLine(testUser, []byte(testPassword)) + ":tenant=shop\n" +
			UserLine(testNoPWUser, nil) + ":tenant=shop\n" + UserLine("solo", nil) + "\n"))
		if err != nil {
			t.Fatal(err)
		}
		c.Users = users
		c.Tenants = Tenants{Rules: map[string]pool.TenantRules{"shop": {MaxClients: 1}}}
	})
	first := dialRaw(t, tp.addr)
	if resp := first.login(testUser, testPassword, mysqlwire.AuthNativePassword, 0); !mysqlwire.IsOK(resp) {
		t.Fatalf("first account: %s", errText(resp))
	}
	second := dialRaw(t, tp.addr)
	if resp := second.login(testNoPWUser, "", mysqlwire.AuthNativePassword, 0); !isERR(resp, mysqlwire.ErTooManyUserConnections) {
		t.Fatalf("second account of the same tenant: %s, want ERR 1203", errText(resp))
	}
	solo := dialRaw(t, tp.addr)
	if resp := solo.login("solo", "", mysqlwire.AuthNativePassword, 0); !mysqlwire.IsOK(resp) {
		t.Fatalf("an account of its own tenant: %s", errText(resp))
	}
	names := map[string]bool{}
	for _, s := range tp.p.TenantStats() {
		names[s.Name] = s.Named
	}
	if named, ok := names["shop"]; !ok || !named {
		t.Errorf("tenant shop missing or not named: %v", names)
	}
	if named, ok := names["solo"]; !ok || named {
		t.Errorf("tenant solo missing or named: %v", names)
	}
}
