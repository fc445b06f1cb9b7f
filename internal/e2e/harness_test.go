package e2e

import (
	"bytes"
	"context"
	cryptorand "crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// The proxy's client account (in the users file the tests write, not on the server).
const (
	clientUser     = "e2e_client"
	clientPassword = "e2e-client-secret"
	// otherUser is a second account of the users file, for tests where
	// what one account does must not reach another.
	otherUser     = "e2e_other"
	otherPassword = "e2e-other-secret"
	// adminUser has the users-file field admin: the proxy lets it run
	// server-wide statements and KILL any session.
	adminUser     = "e2e_admin"
	adminPassword = "e2e-admin-secret"
	// readerUser and writerUser exist on the server too (createFixtures),
	// with other grants, for the tests of per-account identities:
	// readerUser may SELECT from e2e_iso_0 only; writerUser may also
	// SELECT from e2e_data and change e2e_iso_1. aliasUser is in the users
	// file only, mapped to writerUser with backend= and
	// backend-password-file=.
	readerUser     = "e2e_reader"
	readerPassword = "e2e-reader-secret"
	writerUser     = "e2e_writer"
	writerPassword = "e2e-writer-secret"
	aliasUser      = "e2e_alias"
	aliasPassword  = "e2e-alias-secret"
)

// Schemas the tests create on the server; the service account gets every
// privilege on e2e_% so that the proxy's backends can use them.
const (
	dataSchema = "e2e_data" // shared tables: big result sets, driver workload
	cliSchema  = "e2e_cli"  // fixture of the mariadb client session
	isoSchemas = 4          // e2e_iso_0 .. e2e_iso_3
	bigRows    = 100000     // rows of e2e_data.big
)

// server is a MariaDB the proxies of these tests log in to.
type server struct {
	addr                   string
	rootUser, rootPassword string
	root                   *sql.DB // root's connections, beside the proxy's
	// The proxy's service account. On the shared server it is e2e_svc, an
	// account of this package alone: other packages' tests use the server at
	// the same time (make test runs packages in parallel), and counting only
	// e2e_svc's connections in the processlist keeps their proxies out of
	// this package's bounds.
	serviceUser, servicePassword, servicePasswordFile string
}

// e2eServiceUser is this package's service account on the shared server.
const e2eServiceUser = "e2e_svc"

var (
	srv        *server // the shared server of `make test`
	binaryPath string  // the scalestack binary built by TestMain
	usersPath  string  // users file holding clientUser
	workDir    string  // TestMain's temporary directory
	rootDB     *sql.DB // srv.root
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	var err error
	srv, err = serverFromEnv()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: FAIL: %v\n", err)
		return 2
	}
	workDir, err = os.MkdirTemp("", "scalestack-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: FAIL: %v\n", err)
		return 2
	}
	defer os.RemoveAll(workDir)
	if err := setUp(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: FAIL: set-up: %v\n", err)
		return 2
	}
	defer rootDB.Close()
	return m.Run()
}

func serverFromEnv() (*server, error) {
	s := &server{
		addr:         os.Getenv("SCALESTACK_MYSQL_ADDR"),
		rootUser:     os.Getenv("SCALESTACK_MYSQL_ROOT_USER"),
		rootPassword: os.Getenv("SCALESTACK_MYSQL_ROOT_PASSWORD"),
		serviceUser:  e2eServiceUser,
	}
	var missing []string
	for _, name := range []string{"SCALESTACK_MYSQL_ADDR", "SCALESTACK_MYSQL_ROOT_USER", "SCALESTACK_MYSQL_ROOT_PASSWORD"} {
		if os.Getenv(name) == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("the acceptance tests need the throwaway MariaDB: run `scripts/mariadb.sh start` "+
			"and `source .tmp/mariadb/env` (or use `make test`); missing %s", strings.Join(missing, ", "))
	}
	return s, nil
}

// openRoot connects s.root.
func (s *server) openRoot() error {
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr = s.rootUser, s.rootPassword, "tcp", s.addr
	c.MultiStatements = true
	db, err := sql.Open("mysql", c.FormatDSN())
	if err != nil {
		return err
	}
	db.SetMaxOpenConns(8)
	s.root = db
	return nil
}

// setUp builds the binary, writes the users file and creates the fixtures.
func setUp() error {
	for _, tool := range []string{"mariadb", "sysbench"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed (scripts/mariadb.sh deps --sysbench installs it): %w", tool, err)
		}
	}
	src := os.Getenv("SCALESTACK_E2E_SRC")
	if src == "" {
		src = filepath.Join("..", "..")
	}
	binaryPath = filepath.Join(workDir, "scalestack")
	build := exec.Command("go", "build", "-o", binaryPath, "./cmd/scalestack")
	build.Dir = src
	build.Env = append(os.Environ(), "GOFLAGS=-ldflags=-checklinkname=0 -buildvcs=false")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/scalestack in %s: %w\n%s", src, err, out)
	}
	var users []byte
	for _, acct := range []struct{ name, password, fields string }{
		{clientUser, clientPassword, ""},
		{otherUser, otherPassword, ""},
		{adminUser, adminPassword, ":admin"},
		{readerUser, readerPassword, ""},
		{writerUser, writerPassword, ""},
		{aliasUser, aliasPassword, ":backend=" + writerUser + ":backend-password-file=writer.password"},
	} {
		passwd := exec.Command(binaryPath, "passwd", acct.name)
		passwd.Stdin = strings.NewReader(acct.password + "\n")
		line, err := passwd.Output()
		if err != nil {
			return fmt.Errorf("scalestack passwd %s: %w", acct.name, err)
		}
		users = append(users, bytes.TrimRight(line, "\n")...)
		users = append(users, acct.fields...)
		users = append(users, '\n')
	}
	usersPath = filepath.Join(workDir, "users")
	if err := os.WriteFile(usersPath, users, 0o600); err != nil {
		return err
	}
	// aliasUser's backend-password-file, relative to the users file.
	if err := os.WriteFile(filepath.Join(workDir, "writer.password"), []byte(writerPassword+"\n"), 0o600); err != nil {
		return err
	}
	if err := srv.openRoot(); err != nil {
		return err
	}
	rootDB = srv.root
	return createFixtures()
}

func createFixtures() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var pw [12]byte
	if _, err := cryptorand.Read(pw[:]); err != nil {
		return err
	}
	srv.servicePassword = hex.EncodeToString(pw[:])
	srv.servicePasswordFile = filepath.Join(workDir, "service.password")
	if err := os.WriteFile(srv.servicePasswordFile, []byte(srv.servicePassword+"\n"), 0o600); err != nil {
		return err
	}
	stmts := []string{
		"CREATE DATABASE IF NOT EXISTS " + dataSchema,
		"CREATE DATABASE IF NOT EXISTS " + cliSchema,
		"CREATE DATABASE IF NOT EXISTS " + sysbenchDB,
	}
	for _, host := range []string{"%", "localhost"} {
		acct := "'" + srv.serviceUser + "'@'" + host + "'"
		stmts = append(stmts, "CREATE USER IF NOT EXISTS "+acct,
			"ALTER USER "+acct+" IDENTIFIED VIA mysql_native_password USING PASSWORD('"+srv.servicePassword+"')",
			"GRANT ALL PRIVILEGES ON `e2e\\_%`.* TO "+acct)
	}
	// The accounts of the identity tests, for TCP from anywhere ('%'
	// alone, so that a direct connection to 127.0.0.1 and the proxy's
	// backends are the same account).
	for _, a := range []struct{ name, password string }{{readerUser, readerPassword}, {writerUser, writerPassword}} {
		acct := "'" + a.name + "'@'%'"
		stmts = append(stmts, "CREATE USER IF NOT EXISTS "+acct,
			"ALTER USER "+acct+" IDENTIFIED VIA mysql_native_password USING PASSWORD('"+a.password+"')",
			"REVOKE ALL PRIVILEGES, GRANT OPTION FROM "+acct,
			"GRANT SELECT ON `"+isoSchema(0)+"`.* TO "+acct)
	}
	stmts = append(stmts,
		"GRANT SELECT ON `"+dataSchema+"`.* TO '"+writerUser+"'@'%'",
		"GRANT ALL PRIVILEGES ON `"+isoSchema(1)+"`.* TO '"+writerUser+"'@'%'")
	stmts = append(stmts,
		// big holds bigRows rows of 40 bytes each; it is rebuilt only when its row count is off.
		"CREATE TABLE IF NOT EXISTS "+dataSchema+".big (id INT PRIMARY KEY, pad CHAR(32) NOT NULL) ENGINE=InnoDB",
		"CREATE TABLE IF NOT EXISTS "+dataSchema+".kv (id BIGINT PRIMARY KEY, owner INT NOT NULL, val VARCHAR(64) NOT NULL, KEY (owner)) ENGINE=InnoDB",
		"DROP TABLE IF EXISTS "+cliSchema+".items",
		"CREATE TABLE "+cliSchema+".items (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL) ENGINE=InnoDB",
		"INSERT INTO "+cliSchema+".items VALUES (1, 'alpha'), (2, 'beta'), (3, 'gamma')",
	)
	for i := 0; i < isoSchemas; i++ {
		s := isoSchema(i)
		stmts = append(stmts, "CREATE DATABASE IF NOT EXISTS "+s,
			"CREATE TABLE IF NOT EXISTS "+s+".marker (schema_name VARCHAR(32) NOT NULL)",
			"DELETE FROM "+s+".marker",
			"INSERT INTO "+s+".marker VALUES ('"+s+"')",
			"CREATE TABLE IF NOT EXISTS "+s+".owned (owner INT NOT NULL, n INT NOT NULL, KEY (owner)) ENGINE=InnoDB",
			"TRUNCATE TABLE "+s+".owned")
	}
	for _, q := range stmts {
		if _, err := rootDB.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	var n int
	if err := rootDB.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+dataSchema+".big").Scan(&n); err != nil {
		return err
	}
	if n != bigRows {
		q := "TRUNCATE TABLE " + dataSchema + ".big; INSERT INTO " + dataSchema + ".big " +
			"WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < " + strconv.Itoa(bigRows) + ") " +
			"SELECT n, MD5(n) FROM seq"
		if _, err := rootDB.ExecContext(ctx, "SET SESSION max_recursive_iterations = 1000000; "+q); err != nil {
			return fmt.Errorf("fill big: %w", err)
		}
	}
	return nil
}

func isoSchema(i int) string { return "e2e_iso_" + strconv.Itoa(i) }

// ---- the proxy subprocess ----

type proxyOptions struct {
	backend      *server // nil: the shared server
	backendConns int
	mysql55      bool
	queueTimeout time.Duration
	maxClients   int
	loops        int
	io           string // --io: epoll (default) or uring
	extraArgs    []string
}

// proxyProcess is one running `scalestack mysqlproxy`.
type proxyProcess struct {
	backend *server
	addr    string
	n       int
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	waitErr error
}

// startProxy runs the proxy on a free port and waits until it accepts
// clients and the server shows exactly N backend connections of the
// service account (so that connections of an earlier proxy are gone too).
func startProxy(t testing.TB, o proxyOptions) *proxyProcess {
	t.Helper()
	b := o.backend
	if b == nil {
		b = srv
	}
	port := freePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	args := []string{"mysqlproxy", "--listen", addr, "--backend", b.addr, "--backend-user", b.serviceUser,
		"--backend-password-file", b.servicePasswordFile, "--backend-conns", strconv.Itoa(o.backendConns),
		"--users", usersPath, "--admin", ""}
	// The accounts of usersPath exist only at the proxy: clients run as
	// the service account unless a test passes --backend-identity=account
	// (flags given later win).
	args = append(args, "--backend-identity", "service")
	if o.mysql55 {
		args = append(args, "--mysql55")
	}
	if o.queueTimeout > 0 {
		args = append(args, "--queue-timeout", o.queueTimeout.String())
	}
	if o.maxClients > 0 {
		args = append(args, "--max-clients", strconv.Itoa(o.maxClients))
	}
	if o.loops > 0 {
		args = append(args, "--loops", strconv.Itoa(o.loops))
	}
	if o.io != "" {
		args = append(args, "--io", o.io)
	}
	if k := os.Getenv("SCALESTACK_E2E_PIPELINE_DEPTH"); k != "" {
		// Runs every test's proxy with pipelining on (tests that pass
		// --pipeline-depth themselves win).
		args = append(args, "--pipeline-depth", k)
	}
	args = append(args, o.extraArgs...)
	logFile, err := os.CreateTemp(workDir, "proxy-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binaryPath, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// If the test binary dies, the proxy must not outlive it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start proxy: %v", err)
	}
	p := &proxyProcess{backend: b, addr: addr, n: o.backendConns, cmd: cmd, logPath: logFile.Name(), exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	t.Cleanup(func() { p.stop(t) })
	t.Logf("proxy %s: %s %s", addr, binaryPath, strings.Join(args, " "))

	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-p.exited:
			t.Fatalf("proxy exited during start-up (%v); log:\n%s", p.waitErr, p.logTail(40))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy did not accept connections within 20 s; log:\n%s", p.logTail(40))
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.waitBackendCount(t, o.backendConns, 20*time.Second)
	return p
}

// stop sends SIGTERM and waits; a proxy that does not exit in 10 s is killed
// and the test fails, since hanging on shutdown is a defect too.
func (p *proxyProcess) stop(t testing.TB) {
	select {
	case <-p.exited:
		if !t.Failed() {
			t.Errorf("proxy exited before the test ended (%v); log:\n%s", p.waitErr, p.logTail(40))
		}
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		t.Errorf("proxy did not exit within 10 s of SIGTERM; log:\n%s", p.logTail(40))
	}
	if t.Failed() {
		t.Logf("proxy log tail:\n%s", p.logTail(60))
	}
}

// alive fails the test if the proxy process has exited.
func (p *proxyProcess) requireAlive(t testing.TB) {
	t.Helper()
	select {
	case <-p.exited:
		t.Fatalf("proxy exited (%v); log:\n%s", p.waitErr, p.logTail(60))
	default:
	}
}

func (p *proxyProcess) logTail(lines int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ---- clients ----

// proxyDSN is a go-sql-driver DSN for the proxy's client account.
func proxyDSN(addr, db string, tweak func(*mysql.Config)) string {
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr, c.DBName = clientUser, clientPassword, "tcp", addr, db
	c.Timeout, c.ReadTimeout, c.WriteTimeout = 10*time.Second, 60*time.Second, 60*time.Second
	if tweak != nil {
		tweak(c)
	}
	return c.FormatDSN()
}

func openProxyDB(t testing.TB, addr, db string, tweak func(*mysql.Config)) *sql.DB {
	t.Helper()
	d, err := sql.Open("mysql", proxyDSN(addr, db, tweak))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// ---- the server's view ----

// backendCount is the number of connections of the service account the
// server reports (the proxy is its only user while the tests run).
func (s *server) backendCount(ctx context.Context) (int, error) {
	var n int
	err := s.root.QueryRowContext(ctx, s.processlistQuery()).Scan(&n)
	return n, err
}

// waitBackendCount waits until the server shows exactly want connections of
// the proxy's service account.
func (p *proxyProcess) waitBackendCount(t testing.TB, want int, within time.Duration) {
	t.Helper()
	srv := p.backend
	deadline := time.Now().Add(within)
	last := -1
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		n, err := srv.backendCount(ctx)
		cancel()
		if err == nil {
			last = n
			if n == want {
				return
			}
		}
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("server shows %d connections of %s, want %d (waited %v; last error %v)",
				last, srv.serviceUser, want, within, err)
			msg += "\nproxy log:\n" + p.logTail(30)
			t.Fatal(msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// processlistQuery counts the service account's connections. It is sent as
// text, not as a prepared statement: MariaDB 10.11.19 crashed (signal 11 in
// ha_maria::drop_table under Prepared_statement::execute) when this query
// ran as a server-side prepared statement every 100 ms beside 1024 sysbench
// clients.
func (s *server) processlistQuery() string {
	return "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '" +
		strings.ReplaceAll(s.serviceUser, "'", "''") + "'"
}

// processlistWatch polls the processlist every 100 ms from its own root
// connection and remembers the largest count of service-account
// connections it saw.
type processlistWatch struct {
	max, samples, failures atomic.Int64
	stop                   chan struct{}
	done                   chan struct{}
}

func watchProcesslist(t testing.TB, srv *server) *processlistWatch {
	t.Helper()
	ctx := context.Background()
	c, err := srv.root.Conn(ctx)
	if err != nil {
		t.Fatalf("processlist connection: %v", err)
	}
	w := &processlistWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer c.Close()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			var n int64
			qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := c.QueryRowContext(qctx, srv.processlistQuery()).Scan(&n)
			cancel()
			if err != nil {
				w.failures.Add(1)
			} else {
				w.samples.Add(1)
				for {
					m := w.max.Load()
					if n <= m || w.max.CompareAndSwap(m, n) {
						break
					}
				}
			}
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// finish stops the watcher and returns the largest count and the number of samples.
func (w *processlistWatch) finish() (max, samples, failures int64) {
	close(w.stop)
	<-w.done
	return w.max.Load(), w.samples.Load(), w.failures.Load()
}

// ---- small helpers ----

// runCommand runs name with args under a timeout and returns its combined output.
func runCommand(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s timed out: %w", name, ctx.Err())
	}
	return out.Bytes(), err
}

// errorCollector keeps the first few distinct failures of many goroutines
// and counts all of them.
type errorCollector struct {
	mu     sync.Mutex
	count  int
	sample []string
	kinds  map[string]int
	first  map[string]string // the first failure of each kind
}

func (e *errorCollector) add(format string, args ...any) {
	e.addKind("", format, args...)
}

// addKind also counts the failure under kind, so that a report shows every
// kind of failure, not only the first ten.
func (e *errorCollector) addKind(kind, format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.count++
	if kind != "" {
		if e.kinds == nil {
			e.kinds, e.first = map[string]int{}, map[string]string{}
		}
		e.kinds[kind]++
		if _, ok := e.first[kind]; !ok {
			e.first[kind] = fmt.Sprintf(format, args...)
		}
	}
	if len(e.sample) < 10 {
		e.sample = append(e.sample, fmt.Sprintf(format, args...))
	}
}

func (e *errorCollector) check(t testing.TB, what string) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.count > 0 {
		var kinds []string
		for k, n := range e.kinds {
			kinds = append(kinds, fmt.Sprintf("%6d  %s\n          e.g. %s", n, k, e.first[k]))
		}
		sort.Strings(kinds)
		t.Errorf("%s: %d failures; by kind:\n%s\nfirst ones:\n  %s", what, e.count, strings.Join(kinds, "\n"),
			strings.Join(e.sample, "\n  "))
	}
}

// summary lists the kinds of failures with their counts.
func (e *errorCollector) summary() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var kinds []string
	for k, n := range e.kinds {
		kinds = append(kinds, fmt.Sprintf("%d x %s", n, k))
	}
	sort.Strings(kinds)
	return strings.Join(kinds, "; ")
}

func (e *errorCollector) n() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.count
}

// asMySQLError reports whether err is an ERR packet the driver decoded.
func asMySQLError(err error) (*mysql.MySQLError, bool) {
	var me *mysql.MySQLError
	ok := errors.As(err, &me)
	return me, ok
}

func itoa(i int) string { return strconv.Itoa(i) }

// usableBackends measures how many backends serve clients right now: n
// clients each run SELECT SLEEP(0.5) at once, and those answered within
// 0.9 s ran in the first round, one per free backend.
func (p *proxyProcess) usableBackends(t testing.TB, n int) int {
	t.Helper()
	conns := make([]*rawConn, n)
	for i := range conns {
		c, err := dialRaw(p.addr, clientUser, clientPassword, rawOptions{})
		if err != nil {
			t.Fatalf("capacity probe: %v", err)
		}
		defer c.Close()
		c.setDeadline(30 * time.Second)
		conns[i] = c
	}
	start := time.Now()
	var firstRound atomic.Int64
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func(c *rawConn) {
			defer wg.Done()
			if v, err := c.scalar("SELECT SLEEP(0.5)"); err != nil || v != "0" {
				t.Errorf("capacity probe: %q, %v", v, err)
				return
			}
			if time.Since(start) < 900*time.Millisecond {
				firstRound.Add(1)
			}
		}(c)
	}
	wg.Wait()
	return int(firstRound.Load())
}
