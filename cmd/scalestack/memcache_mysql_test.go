package main

import (
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/internal/testutil"
	"github.com/scalestack/scalestack/memcachewire"
	"github.com/scalestack/scalestack/pool/mysqlproxy"
)

// Tests of the memcached module's MySQL table back end against the MariaDB
// of `make test`, compared with a real memcached where the outcome is
// memcached's to define.

const mcSQLAccount = "mcapp"

// mcSQLTable creates a fresh table for the test and returns the back end's
// configuration for it (every optional column when full).
func mcSQLTable(t *testing.T, full bool) (mcConfig, *sql.DB) {
	t.Helper()
	env := testutil.MySQL(t)
	db, err := sql.Open("mysql", env.TestDSN(env.Database))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	table := fmt.Sprintf("mc_%s", strings.ToLower(strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())))
	if len(table) > 60 {
		table = table[:60]
	}
	cols := "k VARBINARY(250) PRIMARY KEY, v MEDIUMBLOB NOT NULL"
	if full {
		cols += ", f INT UNSIGNED NOT NULL DEFAULT 0, e BIGINT NOT NULL DEFAULT 0, c BIGINT UNSIGNED NOT NULL DEFAULT 0"
	}
	for _, q := range []string{"DROP TABLE IF EXISTS " + table, "CREATE TABLE " + table + " (" + cols + ")"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() { db.Exec("DROP TABLE IF EXISTS " + table) })
	users, err := mysqlproxy.ParseUsers(strings.NewReader(mysqlproxy.UserLine(mcSQLAccount, []byte("pw")) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	baddr, err := conn.ParseAddr(env.Addr)
	if err != nil {
		t.Fatal(err)
	}
	sc := &mcSQLConf{
		proxy: mysqlproxy.Config{Backend: baddr, User: env.User, Password: []byte(env.Password), BackendConns: 2,
			Users: users, Logf: t.Logf},
		account: mcSQLAccount, schema: env.Database, table: table, key: "k", value: "v",
	}
	if full {
		sc.flags, sc.exptime, sc.cas = "f", "e", "c"
	}
	return mcConfig{lim: memcachewire.Limits{}.WithDefaults(), maxPipeline: 256, sql: sc}, db
}

// startMemcacheSQL runs a MySQL table front in this process on two loops.
func startMemcacheSQL(t *testing.T, cfg mcConfig) string {
	t.Helper()
	// Each proxy its own accounts: a proxy adopts the Users it is given
	// (their counters), as a separately loaded users file would be.
	sc := *cfg.sql
	users, err := mysqlproxy.ParseUsers(strings.NewReader(mysqlproxy.UserLine(mcSQLAccount, []byte("pw")) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	sc.proxy.Users = users
	cfg.sql = &sc
	e := startTestEngine(t, "epoll", 2)
	laddr, _ := conn.ParseAddr("127.0.0.1:0")
	m, err := memcacheModule(laddr, false, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.start(e.Engine); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.stop)
	ln, err := conn.Listen(e.Engine, m.listen)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().Address
}

// mcScript is a sequence of gomemcache calls whose outcomes (values and
// errors) are recorded as text, to compare a back end with memcached.
func mcScript(t *testing.T, c *memcache.Client) []string {
	var out []string
	note := func(what string, err error) {
		if err != nil {
			out = append(out, what+": "+err.Error())
			return
		}
		out = append(out, what+": ok")
	}
	get := func(key string) {
		it, err := c.Get(key)
		if err != nil {
			note("get "+key, err)
			return
		}
		out = append(out, fmt.Sprintf("get %s: %q flags %d", key, it.Value, it.Flags))
	}
	note("set a", c.Set(&memcache.Item{Key: "a", Value: []byte("one\r\ntwo\x00"), Flags: 42}))
	get("a")
	get("missing")
	note("add a", c.Add(&memcache.Item{Key: "a", Value: []byte("x")}))
	note("add b", c.Add(&memcache.Item{Key: "b", Value: []byte("bee"), Flags: 7}))
	get("b")
	note("replace missing", c.Replace(&memcache.Item{Key: "missing", Value: []byte("x")}))
	note("replace b", c.Replace(&memcache.Item{Key: "b", Value: []byte("bee2"), Flags: 8}))
	note("replace b same", c.Replace(&memcache.Item{Key: "b", Value: []byte("bee2"), Flags: 8}))
	get("b")
	note("append b", c.Append(&memcache.Item{Key: "b", Value: []byte("-tail")}))
	note("prepend b", c.Prepend(&memcache.Item{Key: "b", Value: []byte("head-")}))
	note("append missing", c.Append(&memcache.Item{Key: "missing", Value: []byte("x")}))
	get("b")
	items, err := c.GetMulti([]string{"a", "missing", "b"})
	note("getmulti", err)
	out = append(out, fmt.Sprintf("getmulti: %d items, b=%q", len(items), items["b"].Value))
	note("set n", c.Set(&memcache.Item{Key: "n", Value: []byte("10")}))
	n, err := c.Increment("n", 5)
	out = append(out, fmt.Sprintf("incr n: %d %v", n, err))
	n, err = c.Decrement("n", 20)
	out = append(out, fmt.Sprintf("decr n: %d %v", n, err))
	n, err = c.Increment("n", 18446744073709551615)
	out = append(out, fmt.Sprintf("incr n wrap: %d %v", n, err))
	_, err = c.Increment("a", 1)
	note("incr non-numeric", err)
	_, err = c.Increment("missing", 1)
	note("incr missing", err)
	note("touch a", c.Touch("a", 100))
	note("touch missing", c.Touch("missing", 100))
	note("set expired", c.Set(&memcache.Item{Key: "x", Value: []byte("gone"), Expiration: -1}))
	get("x")
	note("add over expired", c.Add(&memcache.Item{Key: "x", Value: []byte("back")}))
	get("x")
	// CAS: a fresh unique works once; the old one conflicts afterwards.
	it, err := c.Get("a")
	note("gets a", err)
	if err == nil {
		it.Value = []byte("cas1")
		note("cas a", c.CompareAndSwap(it))
		it.Value = []byte("cas2")
		note("cas a stale", c.CompareAndSwap(it))
		get("a")
		note("delete a", c.Delete("a"))
		note("cas a deleted", c.CompareAndSwap(it))
	}
	note("delete a again", c.Delete("a"))
	get("a")
	return out
}

// TestMemcacheMySQLMatchesMemcached runs one script against memcached and
// against the MySQL table back end (every column configured) and wants
// the same outcomes, then checks the rows in the table.
func TestMemcacheMySQLMatchesMemcached(t *testing.T) {
	cfg, db := mcSQLTable(t, true)
	addr := startMemcacheSQL(t, cfg)
	got := mcScript(t, newMemcacheClient(t, addr))
	mc := startMemcached(t, 0)
	want := mcScript(t, newMemcacheClient(t, mc.addr()))
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		for i := range max(len(got), len(want)) {
			var g, w string
			if i < len(got) {
				g = got[i]
			}
			if i < len(want) {
				w = want[i]
			}
			mark := "  "
			if g != w {
				mark = "!="
			}
			t.Logf("%s mysql %-45q memcached %q", mark, g, w)
		}
		t.Fatal("the MySQL table back end answers differently from memcached")
	}
	var v []byte
	var f uint32
	if err := db.QueryRow("SELECT v, f FROM "+cfg.sql.table+" WHERE k = 'b'").Scan(&v, &f); err != nil ||
		string(v) != "head-bee2-tail" || f != 8 {
		t.Fatalf("row b: %q %d %v", v, f, err)
	}
}

// TestMemcacheMySQLGat: gat and gats answer as memcached's (but for the
// cas uniques), and gat's expiry takes effect.
func TestMemcacheMySQLGat(t *testing.T) {
	cfg, db := mcSQLTable(t, true)
	addr := startMemcacheSQL(t, cfg)
	mc := startMemcached(t, 0)
	script := "set a 5 0 2\r\nv1\r\nset b 0 0 2\r\nv2\r\ngat 100 a missing b\r\ngats 0 b\r\ngat -1 a\r\nget a b\r\n"
	casField := regexp.MustCompile(`(?m)^(VALUE b 0 2) \d+\r$`)
	norm := func(s string) string { return casField.ReplaceAllString(s, "$1 CAS\r") }
	want := norm(roundTrip(t, mc.addr(), script, 0))
	got := norm(roundTrip(t, addr, script, len(want)))
	if got != want {
		t.Fatalf("gat through the table:\n%q\nmemcached:\n%q", got, want)
	}
	var e int64
	if err := db.QueryRow("SELECT e FROM " + cfg.sql.table + " WHERE k = 'b'").Scan(&e); err != nil || e != 0 {
		t.Fatalf("b's expiry after gats 0: %d %v", e, err)
	}
}

// TestMemcacheMySQLMinimalTable: a table of a key and a value only.
func TestMemcacheMySQLMinimalTable(t *testing.T) {
	cfg, _ := mcSQLTable(t, false)
	c := newMemcacheClient(t, startMemcacheSQL(t, cfg))
	if err := c.Set(&memcache.Item{Key: "k1", Value: []byte("v1"), Flags: 3}); err != nil {
		t.Fatal(err)
	}
	it, err := c.Get("k1")
	if err != nil || string(it.Value) != "v1" || it.Flags != 0 {
		t.Fatalf("get: %+v %v", it, err)
	}
	if err := c.Replace(&memcache.Item{Key: "k1", Value: []byte("v1")}); err != nil {
		t.Fatalf("replace with the same value (no cas column: an unchanged row): %v", err)
	}
	if err := c.CompareAndSwap(it); err == nil || !strings.Contains(err.Error(), "cas needs --cas-column") {
		t.Fatalf("cas without a cas column: %v", err)
	}
	if _, err := c.Increment("k1", 1); err == nil {
		t.Fatal("incr of a non-numeric value succeeded")
	}
}

// TestMemcacheMySQLConcurrentCAS: two proxies in front of one table, two
// clients that read the same unique and cas at once: exactly one is
// stored and the other gets EXISTS, every round, as with memcached.
func TestMemcacheMySQLConcurrentCAS(t *testing.T) {
	cfg, _ := mcSQLTable(t, true)
	c1 := newMemcacheClient(t, startMemcacheSQL(t, cfg))
	c2 := newMemcacheClient(t, startMemcacheSQL(t, cfg))
	mc := startMemcached(t, 0)
	m1, m2 := newMemcacheClient(t, mc.addr()), newMemcacheClient(t, mc.addr())
	round := func(a, b *memcache.Client, i int) (stored, conflicts int) {
		key := fmt.Sprintf("cas%d", i%3)
		if err := a.Set(&memcache.Item{Key: key, Value: []byte("start")}); err != nil {
			t.Fatal(err)
		}
		ia, err := a.Get(key)
		if err != nil {
			t.Fatal(err)
		}
		ib, err := b.Get(key)
		if err != nil {
			t.Fatal(err)
		}
		ia.Value, ib.Value = []byte("from a"), []byte("from b")
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for j, pair := range []struct {
			c  *memcache.Client
			it *memcache.Item
		}{{a, ia}, {b, ib}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[j] = pair.c.CompareAndSwap(pair.it)
			}()
		}
		wg.Wait()
		for _, err := range errs {
			switch {
			case err == nil:
				stored++
			case errors.Is(err, memcache.ErrCASConflict):
				conflicts++
			default:
				t.Fatalf("cas: %v", err)
			}
		}
		return stored, conflicts
	}
	const rounds = 30
	for i := range rounds {
		if s, c := round(c1, c2, i); s != 1 || c != 1 {
			t.Fatalf("round %d through two proxies: %d stored, %d EXISTS; want 1 and 1", i, s, c)
		}
		if s, c := round(m1, m2, i); s != 1 || c != 1 {
			t.Fatalf("round %d on memcached: %d stored, %d EXISTS", i, s, c)
		}
	}
}

// TestServeConfigMySQLBackends: a serve file sets the memcached module's
// MySQL table back end (backend = "mysql") and the HTTP SQL gateway with
// the commands' flag names; mistakes name their section.
func TestServeConfigMySQLBackends(t *testing.T) {
	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	writeFile(t, users, mysqlproxy.UserLine("app", []byte("pw"))+"\n")
	if err := os.Chmod(users, 0o600); err != nil {
		t.Fatal(err)
	}
	mc := "[memcache]\nlisten = \"127.0.0.1:1\"\nbackend = \"mysql\"\nmysql = \"127.0.0.1:3306\"\nmysql-user = \"svc\"\n" +
		"users = \"" + users + "\"\naccount = \"app\"\nmysql-schema = \"db\"\n"
	web := "[http]\nlisten = \"127.0.0.1:2\"\nsql-path = \"/v1/query\"\nsql-backend = \"127.0.0.1:3306\"\nsql-backend-user = \"svc\"\n" +
		"sql-users = \"" + users + "\"\n"
	for _, tt := range []struct {
		name, file, wantErr string
	}{
		{"both", mc + "table = \"kv\"\ncas-column = \"c\"\n" + web, ""},
		{"no table", mc + web, "[memcache]: --table is required with --backend mysql"},
		{"bad column", mc + "table = \"kv\"\nkey-column = \"k; DROP\"\n", `--key-column: "k; DROP" is not a plain identifier`},
		{"unknown account", strings.Replace(mc, "account = \"app\"", "account = \"bob\"", 1) + "table = \"kv\"\n", `--account: "bob" is not in the users file`},
		{"unknown back end", "[memcache]\nbackend = \"redis\"\n", `--backend: want memcached or mysql, got "redis"`},
		{"gateway without a server", "[http]\nsql-path = \"/q\"\n", "--sql-path needs --sql-backend"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sc, err := parseServeConfig([]string{"--config", writeConfig(t, tt.file)}, io.Discard)
			var mods []module
			if err == nil {
				mods, err = sc.prepareModules()
			}
			for _, m := range mods {
				if m.stop != nil {
					m.stop()
				}
			}
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
			if tt.wantErr == "" && len(mods) != 2 {
				t.Fatalf("%d modules", len(mods))
			}
		})
	}
}
