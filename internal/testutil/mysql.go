package testutil

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Names of the variables scripts/mariadb.sh writes to DIR/env.
const (
	envAddr         = "SCALESTACK_MYSQL_ADDR"
	envSocket       = "SCALESTACK_MYSQL_SOCKET"
	envUser         = "SCALESTACK_MYSQL_USER"
	envPassword     = "SCALESTACK_MYSQL_PASSWORD"
	envPasswordFile = "SCALESTACK_MYSQL_PASSWORD_FILE"
	envTestUser     = "SCALESTACK_MYSQL_TEST_USER"
	envTestPassword = "SCALESTACK_MYSQL_TEST_PASSWORD"
	envRootUser     = "SCALESTACK_MYSQL_ROOT_USER"
	envRootPassword = "SCALESTACK_MYSQL_ROOT_PASSWORD"
	envDatabase     = "SCALESTACK_MYSQL_DATABASE"
	envDir          = "SCALESTACK_MYSQL_DIR"
	envPID          = "SCALESTACK_MYSQL_PID"
	envScript       = "SCALESTACK_MYSQL_SCRIPT"
	envTLSCA        = "SCALESTACK_MYSQL_TLS_CA"
	// envPrivateDir is where PrivateMariaDB puts its servers; scripts/test.sh sets it so that it can
	// stop servers that a killed test binary left behind.
	envPrivateDir = "SCALESTACK_MYSQL_PRIVATE_DIR"
)

// requiredEnv lists the variables without which no test can reach the server.
var requiredEnv = []string{envAddr, envUser, envPassword, envTestUser, envTestPassword, envRootUser,
	envRootPassword, envDir}

// howToRun is appended to every "no database" failure, so that whoever reads it knows the fix.
const howToRun = "run the tests with `make test` (it starts a throwaway MariaDB), or start one with " +
	"`scripts/mariadb.sh start` and `source .tmp/mariadb/env` before `go test`"

// scriptTimeout bounds every call of scripts/mariadb.sh; a start normally takes one to five seconds.
const scriptTimeout = 2 * time.Minute

// Env describes one throwaway MariaDB started by scripts/mariadb.sh.
type Env struct {
	Addr         string // 127.0.0.1:PORT
	Socket       string // unix socket path
	User         string // the proxy's service account (scalestack_svc)
	Password     string
	PasswordFile string // file holding Password, for --backend-password-file
	TestUser     string // test_native, mysql_native_password
	TestPassword string
	RootUser     string
	RootPassword string
	Database     string // scalestack_test; sbtest also exists
	Dir          string // the server's directory (data, socket, env file)
	PID          int
	Script       string // scripts/mariadb.sh that started it
	TLSCA        string // the CA of the server's certificate (started with --tls), else empty

	// private marks a server that PrivateMariaDB started for one test, the only kind that a test may
	// stop: other packages' tests share the server from `make test` and run at the same time.
	private bool
}

// LoadEnv reads the SCALESTACK_MYSQL_* environment without contacting the server.
func LoadEnv() (Env, error) {
	return envFrom(os.Getenv)
}

func envFrom(get func(string) string) (Env, error) {
	var missing []string
	for _, name := range requiredEnv {
		if get(name) == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return Env{}, fmt.Errorf("MariaDB test environment incomplete (missing %s): %s",
			strings.Join(missing, ", "), howToRun)
	}
	e := Env{
		Addr:         get(envAddr),
		Socket:       get(envSocket),
		User:         get(envUser),
		Password:     get(envPassword),
		PasswordFile: get(envPasswordFile),
		TestUser:     get(envTestUser),
		TestPassword: get(envTestPassword),
		RootUser:     get(envRootUser),
		RootPassword: get(envRootPassword),
		Database:     get(envDatabase),
		Dir:          get(envDir),
		Script:       get(envScript),
		TLSCA:        get(envTLSCA),
	}
	if e.Database == "" {
		e.Database = "scalestack_test"
	}
	if pid := get(envPID); pid != "" {
		n, err := strconv.Atoi(pid)
		if err != nil {
			return Env{}, fmt.Errorf("%s=%q is not a process id: %w", envPID, pid, err)
		}
		e.PID = n
	}
	return e, nil
}

// parseEnvFile reads the `export NAME=VALUE` lines of a DIR/env file.
func parseEnvFile(path string) (Env, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Env{}, fmt.Errorf("reading MariaDB env file: %w", err)
	}
	vars := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if !ok {
			return Env{}, fmt.Errorf("env file %s: line %q is not NAME=VALUE", path, line)
		}
		vars[name] = value
	}
	e, err := envFrom(func(name string) string { return vars[name] })
	if err != nil {
		return Env{}, fmt.Errorf("env file %s: %w", path, err)
	}
	return e, nil
}

// MySQL returns the shared test server's environment after checking that it answers; it fails the
// test with instructions when the environment is missing or the server is down.
func MySQL(t testing.TB) Env {
	t.Helper()
	e, err := LoadEnv()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.ping(); err != nil {
		t.Fatalf("MariaDB from %s does not answer at %s: %v; %s", envDir, e.Addr, err, howToRun)
	}
	return e
}

func (e Env) ping() error {
	db, err := sql.Open("mysql", e.RootDSN(""))
	if err != nil {
		return fmt.Errorf("opening root connection: %w", err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		return fmt.Errorf("pinging as %s: %w", e.RootUser, err)
	}
	return nil
}

// Port is the TCP port of Addr.
func (e Env) Port() int {
	_, port, _ := strings.Cut(e.Addr, ":")
	n, _ := strconv.Atoi(port)
	return n
}

// DSN builds a go-sql-driver/mysql data source name for a TCP server at addr (the database itself or
// a proxy in front of it), with timeouts so that a hung server fails a test instead of stalling it.
func DSN(addr, user, password, database string) string {
	cfg := mysql.NewConfig()
	cfg.Net = "tcp"
	cfg.Addr = addr
	cfg.User = user
	cfg.Passwd = password
	cfg.DBName = database
	cfg.Timeout = 10 * time.Second
	cfg.ReadTimeout = 60 * time.Second
	cfg.WriteTimeout = 60 * time.Second
	return cfg.FormatDSN()
}

// RootDSN connects to the server directly as root; database may be empty.
func (e Env) RootDSN(database string) string {
	return DSN(e.Addr, e.RootUser, e.RootPassword, database)
}

// TestDSN connects to the server directly as the mysql_native_password test user.
func (e Env) TestDSN(database string) string {
	return DSN(e.Addr, e.TestUser, e.TestPassword, database)
}

// ServiceDSN connects to the server directly as the proxy's service account.
func (e Env) ServiceDSN(database string) string {
	return DSN(e.Addr, e.User, e.Password, database)
}

// CLIArgs are the mariadb client arguments that reach this server over TCP as user.
func (e Env) CLIArgs(user, password string) []string {
	host, port, _ := strings.Cut(e.Addr, ":")
	return []string{"--protocol=TCP", "-h" + host, "-P" + port, "-u" + user, "-p" + password}
}

// RunMariaDBCLI runs the mariadb command-line client (ignoring any my.cnf) and returns what it
// printed; err is non-nil when it could not run or exited non-zero, for tests that expect failure.
func RunMariaDBCLI(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	client, err := exec.LookPath("mariadb")
	if err != nil {
		return "", "", fmt.Errorf("mariadb client not installed (scripts/mariadb.sh deps installs it): %w", err)
	}
	cmd := exec.CommandContext(ctx, client, append([]string{"--no-defaults", "--connect-timeout=10"}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), errOut.String(), fmt.Errorf("mariadb %s: %w: %s", strings.Join(args, " "), err,
			strings.TrimSpace(errOut.String()))
	}
	return out.String(), errOut.String(), nil
}

// MariaDBCLI runs the mariadb client with args (which must say where to connect, see Env.CLIArgs)
// for at most a minute and returns its standard output; it fails the test if the client fails.
func MariaDBCLI(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, _, err := RunMariaDBCLI(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Process is one row of information_schema.PROCESSLIST.
type Process struct {
	ID      int64
	User    string
	Host    string
	DB      string
	Command string
	Time    int64
	State   string
	Info    string
}

// Processes lists the server's client connections, leaving out its own daemon threads and the
// connection used to ask.
func (e Env) Processes(t testing.TB) []Process {
	t.Helper()
	db, err := sql.Open("mysql", e.RootDSN(""))
	if err != nil {
		t.Fatalf("opening root connection to %s: %v", e.Addr, err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, `SELECT ID, USER, COALESCE(HOST, ''), COALESCE(DB, ''), COMMAND, TIME,
		COALESCE(STATE, ''), COALESCE(INFO, '') FROM information_schema.PROCESSLIST
		WHERE ID <> CONNECTION_ID() AND COMMAND <> 'Daemon' ORDER BY ID`)
	if err != nil {
		t.Fatalf("reading the processlist of %s: %v", e.Addr, err)
	}
	defer rows.Close()
	var procs []Process
	for rows.Next() {
		var p Process
		if err := rows.Scan(&p.ID, &p.User, &p.Host, &p.DB, &p.Command, &p.Time, &p.State, &p.Info); err != nil {
			t.Fatalf("scanning the processlist of %s: %v", e.Addr, err)
		}
		procs = append(procs, p)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("reading the processlist of %s: %v", e.Addr, err)
	}
	return procs
}

// Processlist counts the server's client connections by user (see Processes).
func (e Env) Processlist(t testing.TB) map[string]int {
	t.Helper()
	byUser := map[string]int{}
	for _, p := range e.Processes(t) {
		byUser[p.User]++
	}
	return byUser
}

// Processlist counts the shared test server's client connections by user; a proxy test asserts with
// it that the service account never holds more than its pool's N backend connections.
func Processlist(t testing.TB) map[string]int {
	t.Helper()
	return MySQL(t).Processlist(t)
}

// PrivateMariaDB starts a MariaDB of the test's own, in a fresh directory and on its own port, and
// removes it when the test ends. Tests that stop, crash or restart the server must use one: the
// server from `make test` is shared by packages whose tests run at the same time. It costs a few
// seconds. args go to `scripts/mariadb.sh start` (--tls: the server serves TLS; Env.TLSCA is its
// CA).
func PrivateMariaDB(t testing.TB, args ...string) Env {
	t.Helper()
	script, err := findScript()
	if err != nil {
		t.Fatal(err)
	}
	base := os.Getenv(envPrivateDir)
	if base != "" {
		if err := os.MkdirAll(base, 0o755); err != nil {
			t.Fatalf("making %s: %v", base, err)
		}
	}
	dir, err := os.MkdirTemp(base, "private-")
	if err != nil {
		t.Fatalf("making a directory for a private MariaDB: %v", err)
	}
	t.Cleanup(func() {
		if _, err := runScript(script, "stop", "--dir", dir); err != nil {
			t.Errorf("stopping private MariaDB in %s: %v", dir, err)
		}
	})
	if out, err := runScript(script, append([]string{"start", "--dir", dir}, args...)...); err != nil {
		t.Fatalf("starting private MariaDB in %s: %v\n%s", dir, err, out)
	}
	e, err := parseEnvFile(filepath.Join(dir, "env"))
	if err != nil {
		t.Fatal(err)
	}
	e.Script = script
	e.private = true
	return e
}

// StopMariaDB shuts the private server e down cleanly, keeping its data and port for StartMariaDB.
func StopMariaDB(t testing.TB, e Env) {
	t.Helper()
	e.control(t, "stop", "--dir", e.Dir, "--keep")
}

// CrashMariaDB kills the private server e with SIGKILL, keeping its data and port for StartMariaDB.
func CrashMariaDB(t testing.TB, e Env) {
	t.Helper()
	e.control(t, "stop", "--dir", e.Dir, "--keep", "--crash")
}

// StartMariaDB brings a stopped private server back on the same port with the same data and
// returns its new environment (only PID changes).
func StartMariaDB(t testing.TB, e Env) Env {
	t.Helper()
	e.control(t, "start", "--dir", e.Dir, "--reuse")
	restarted, err := parseEnvFile(filepath.Join(e.Dir, "env"))
	if err != nil {
		t.Fatal(err)
	}
	if restarted.Addr != e.Addr {
		t.Fatalf("MariaDB came back on %s instead of %s", restarted.Addr, e.Addr)
	}
	restarted.Script, restarted.private = e.Script, e.private
	return restarted
}

func (e Env) control(t testing.TB, args ...string) {
	t.Helper()
	if !e.private {
		t.Fatalf("refusing to %s the shared MariaDB at %s: other packages' tests use it concurrently; "+
			"start one with PrivateMariaDB(t)", args[0], e.Addr)
	}
	if out, err := runScript(e.Script, args...); err != nil {
		t.Fatalf("scripts/mariadb.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func runScript(script string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return string(out), fmt.Errorf("timed out after %v: %w", scriptTimeout, ctx.Err())
	}
	if err != nil {
		return string(out), fmt.Errorf("running %s: %w", script, err)
	}
	return string(out), nil
}

// findScript locates scripts/mariadb.sh: from the environment `make test` sets, else by walking up
// from the working directory (a package directory under `go test`) to the module root.
func findScript() (string, error) {
	if s := os.Getenv(envScript); s != "" {
		return s, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("locating scripts/mariadb.sh: %w", err)
	}
	for {
		candidate := filepath.Join(dir, "scripts", "mariadb.sh")
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(candidate); err != nil {
				return "", fmt.Errorf("module root %s has no scripts/mariadb.sh: %w", dir, err)
			}
			return candidate, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("locating scripts/mariadb.sh: no go.mod above the working directory")
		}
		dir = parent
	}
}
