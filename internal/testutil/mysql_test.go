package testutil

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

func TestEnvFromReportsWhatIsMissing(t *testing.T) {
	full := map[string]string{
		envAddr: "127.0.0.1:21000", envUser: "scalestack_svc", envPassword: "p", envTestUser: "test_native",
		envTestPassword: "scalestack-test", envRootUser: "root", envRootPassword: "r", envDir: "/tmp/x",
		envPID: "42",
	}
	without := func(names ...string) map[string]string {
		m := map[string]string{}
		for k, v := range full {
			m[k] = v
		}
		for _, n := range names {
			delete(m, n)
		}
		return m
	}
	tests := []struct {
		name    string
		vars    map[string]string
		wantErr []string
	}{
		{"complete", full, nil},
		{"nothing set", map[string]string{}, []string{envAddr, envRootPassword, "make test"}},
		{"no address", without(envAddr), []string{envAddr, "make test"}},
		{"bad pid", map[string]string{envAddr: "a", envUser: "b", envPassword: "c", envTestUser: "d",
			envTestPassword: "e", envRootUser: "f", envRootPassword: "g", envDir: "h", envPID: "x"},
			[]string{envPID}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := envFrom(func(n string) string { return tt.vars[n] })
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if e.Addr != full[envAddr] || e.PID != 42 || e.Database != "scalestack_test" || e.Port() != 21000 {
					t.Errorf("envFrom = %+v", e)
				}
				return
			}
			if err == nil {
				t.Fatalf("envFrom accepted %v", tt.vars)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

func TestParseEnvFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "env")
	content := "# comment\nexport SCALESTACK_MYSQL_ADDR=127.0.0.1:23456\nexport SCALESTACK_MYSQL_USER=svc\n" +
		"export SCALESTACK_MYSQL_PASSWORD=a=b\nexport SCALESTACK_MYSQL_TEST_USER=t\n" +
		"export SCALESTACK_MYSQL_TEST_PASSWORD=tp\nexport SCALESTACK_MYSQL_ROOT_USER=root\n" +
		"export SCALESTACK_MYSQL_ROOT_PASSWORD=rp\nexport SCALESTACK_MYSQL_DIR=/d\nexport SCALESTACK_MYSQL_PID=7\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	e, err := parseEnvFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if e.Addr != "127.0.0.1:23456" || e.Password != "a=b" || e.PID != 7 || e.Dir != "/d" {
		t.Errorf("parseEnvFile = %+v", e)
	}
	if err := os.WriteFile(path, []byte("export NOT_AN_ASSIGNMENT\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := parseEnvFile(path); err == nil {
		t.Error("parseEnvFile accepted a line without '='")
	}
}

func TestDSNRoundTrip(t *testing.T) {
	dsn := DSN("127.0.0.1:6033", "us@r", "p@ss:/word", "sbtest")
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("ParseDSN(%q): %v", dsn, err)
	}
	if cfg.Addr != "127.0.0.1:6033" || cfg.User != "us@r" || cfg.Passwd != "p@ss:/word" || cfg.DBName != "sbtest" ||
		cfg.Net != "tcp" || cfg.Timeout <= 0 || cfg.ReadTimeout <= 0 {
		t.Errorf("DSN %q parses back as %+v", dsn, cfg)
	}
}

// The tests below need the server that `make test` starts.

func TestMySQLAccountsCanLogIn(t *testing.T) {
	e := MySQL(t)
	ed := "test_ed25519"
	tests := []struct {
		name, dsn, wantUser string
	}{
		{"root", e.RootDSN(""), e.RootUser + "@127.0.0.1"},
		{"test user", e.TestDSN(e.Database), e.TestUser + "@%"},
		{"service account", e.ServiceDSN("sbtest"), e.User + "@%"},
		{"ed25519 test user", DSN(e.Addr, ed, e.TestPassword, e.Database), ed + "@%"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openDB(t, tt.dsn)
			var user string
			err := db.QueryRow("SELECT CURRENT_USER()").Scan(&user)
			// go-sql-driver strips a trailing zero byte from an auth-switch
			// nonce and then wants 32 bytes for client_ed25519, so one login
			// in 256 fails with ErrMalformPkt when MariaDB's random nonce
			// ends in 0x00 (CI hit it). A fresh login draws a fresh nonce;
			// any other error, or three in a row, still fails the test.
			for try := 1; try < 3 && errors.Is(err, mysql.ErrMalformPkt); try++ {
				t.Logf("login %d: %v (driver's trailing-zero nonce bug); retrying with a new nonce", try, err)
				err = db.QueryRow("SELECT CURRENT_USER()").Scan(&user)
			}
			if err != nil {
				t.Fatal(err)
			}
			if user != tt.wantUser {
				t.Errorf("CURRENT_USER() = %q, want %q", user, tt.wantUser)
			}
		})
	}
	t.Run("wrong password refused", func(t *testing.T) {
		db := openDB(t, DSN(e.Addr, e.TestUser, "wrong", ""))
		err := db.Ping()
		var myErr *mysql.MySQLError
		if !errors.As(err, &myErr) || myErr.Number != 1045 {
			t.Errorf("ping with a wrong password = %v, want error 1045", err)
		}
	})
}

func TestTestUserPrivileges(t *testing.T) {
	e := MySQL(t)
	db := openDB(t, e.TestDSN(e.Database))
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	table := fmt.Sprintf("testutil_priv_%d", time.Now().UnixNano())
	for _, stmt := range []string{
		"CREATE TEMPORARY TABLE tmp_priv (a INT)",
		"CREATE TABLE " + table + " (a INT)",
		"LOCK TABLES " + table + " WRITE",
		"UNLOCK TABLES",
		"DROP TABLE " + table,
		"SELECT COUNT(*) FROM information_schema.PROCESSLIST",
	} {
		if _, err := conn.ExecContext(context.Background(), stmt); err != nil {
			t.Errorf("%s: %v", stmt, err)
		}
	}
}

func TestProcesslistCountsConnections(t *testing.T) {
	e := MySQL(t)
	const extra = 5
	db := openDB(t, e.TestDSN(e.Database))
	db.SetMaxIdleConns(extra)
	var conns []*sql.Conn
	for range extra {
		c, err := db.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if err := c.PingContext(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	// Other packages' tests may use the same account concurrently, so only a lower bound is certain.
	if got := Processlist(t)[e.TestUser]; got < extra {
		t.Errorf("processlist shows %d %s connections with %d open", got, e.TestUser, extra)
	}
	for _, p := range e.Processes(t) {
		if p.Command == "Daemon" {
			t.Errorf("Processes includes daemon thread %+v", p)
		}
	}
	for _, c := range conns {
		c.Close()
	}
}

func TestMariaDBCLI(t *testing.T) {
	e := MySQL(t)
	out := MariaDBCLI(t, append(e.CLIArgs(e.TestUser, e.TestPassword), "-N", "-e", "SELECT 40+2")...)
	if strings.TrimSpace(out) != "42" {
		t.Errorf("mariadb printed %q, want 42", out)
	}
	_, stderr, err := RunMariaDBCLI(context.Background(), append(e.CLIArgs(e.TestUser, "wrong"), "-e", "SELECT 1")...)
	if err == nil || !strings.Contains(stderr, "1045") {
		t.Errorf("mariadb with a wrong password: err %v, stderr %q; want a 1045 failure", err, stderr)
	}
}

func TestSysbenchAgainstServer(t *testing.T) {
	e := MySQL(t)
	// scalestack_test rather than sbtest, which benchmarks fill with their own tables.
	table := []string{"--tables=1", "--table-size=1000"}
	conn := SysbenchConnArgs(e.Addr, e.TestUser, e.TestPassword, "scalestack_test")
	args := func(extra ...string) []string {
		return append(append(append([]string{"oltp_point_select"}, conn...), table...), extra...)
	}
	Sysbench(t, args("--time=5", "prepare")...)
	defer Sysbench(t, args("--time=5", "cleanup")...)
	res := Sysbench(t, args("--threads=2", "--time=2", "run")...)
	if res.Queries == 0 || res.QPS <= 0 || res.LatencyAvg <= 0 || res.Percentile != 95 || res.Errors != 0 {
		t.Errorf("sysbench run = %+v, want queries, QPS and latency", res)
	}
	if res.TotalTime < 2*time.Second || res.TotalTime > 4*time.Second {
		t.Errorf("sysbench --time=2 ran for %v", res.TotalTime)
	}
	if _, out, err := RunSysbench(context.Background(), append(args("--time=1", "run"),
		"--mysql-password=wrong")...); err == nil || !strings.Contains(err.Error(), "Access denied") {
		t.Errorf("sysbench with a wrong password: %v\n%s", err, out)
	}
	if _, _, err := RunSysbench(context.Background(), args("--time=0", "run")...); err == nil {
		t.Error("RunSysbench accepted --time=0")
	}
}

func TestPrivateMariaDBStopCrashStart(t *testing.T) {
	e := PrivateMariaDB(t)
	if shared, err := LoadEnv(); err == nil && shared.Addr == e.Addr {
		t.Fatalf("private server shares the address %s of the shared one", e.Addr)
	}
	write := func(e Env, q string) {
		t.Helper()
		db := openDB(t, e.TestDSN(e.Database))
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		db.Close()
	}
	count := func(e Env) int {
		t.Helper()
		db := openDB(t, e.TestDSN(e.Database))
		defer db.Close()
		var n int
		if err := db.QueryRow("SELECT COUNT(*) FROM kept").Scan(&n); err != nil {
			t.Fatalf("counting rows: %v", err)
		}
		return n
	}
	write(e, "CREATE TABLE kept (a INT)")
	write(e, "INSERT INTO kept VALUES (1)")

	StopMariaDB(t, e)
	db := openDB(t, e.TestDSN(e.Database))
	if err := db.Ping(); err == nil {
		t.Error("server still answers after StopMariaDB")
	}
	db.Close()
	e = StartMariaDB(t, e)
	if n := count(e); n != 1 {
		t.Errorf("after a clean restart the table has %d rows, want 1", n)
	}

	write(e, "INSERT INTO kept VALUES (2)")
	oldPID := e.PID
	CrashMariaDB(t, e)
	if _, err := os.Stat("/proc/" + strconv.Itoa(oldPID)); err == nil {
		if state, _ := os.ReadFile("/proc/" + strconv.Itoa(oldPID) + "/stat"); !strings.Contains(string(state), ") Z") {
			t.Errorf("pid %d still runs after CrashMariaDB", oldPID)
		}
	}
	e = StartMariaDB(t, e)
	if e.PID == oldPID {
		t.Errorf("StartMariaDB reports the crashed pid %d", oldPID)
	}
	if n := count(e); n != 2 {
		t.Errorf("after crash recovery the table has %d rows, want 2", n)
	}
}

func TestStopRefusesSharedServer(t *testing.T) {
	e := MySQL(t)
	rec := &fatalRecorder{recordingTB: recordingTB{TB: t}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		StopMariaDB(rec, e)
	}()
	<-done
	if len(rec.errors) == 0 || !strings.Contains(rec.errors[0], "PrivateMariaDB") {
		t.Errorf("StopMariaDB on the shared server: %q, want a refusal naming PrivateMariaDB", rec.errors)
	}
	if err := e.ping(); err != nil {
		t.Errorf("the shared server no longer answers: %v", err)
	}
}

// fatalRecorder records Fatalf and ends the calling goroutine as testing.T would.
type fatalRecorder struct{ recordingTB }

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.errors = append(f.errors, fmt.Sprintf(format, args...))
	runtime.Goexit()
}

func openDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
