package main

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/scalestack/scalestack/internal/testutil"
	"github.com/scalestack/scalestack/mysqlwire"
	"github.com/scalestack/scalestack/pool/mysqlproxy"
)

// drainProxy describes a mysqlproxy command line in front of the shared
// test MariaDB, for tests that start and stop the process themselves.
type drainProxy struct {
	env    testutil.Env
	bin    string
	listen string // host:port
	args   []string
}

func newDrainProxy(t *testing.T, extra ...string) *drainProxy {
	t.Helper()
	env := testutil.MySQL(t)
	users := filepath.Join(t.TempDir(), "users")
	writeFile(t, users, mysqlproxy.UserLine(opsUser, []byte(opsPassword))+"\n")
	dp := &drainProxy{env: env, bin: buildBinary(t), listen: "127.0.0.1:" + freePort(t)}
	dp.args = append([]string{"mysqlproxy", "--listen", dp.listen, "--backend", env.Addr,
		"--backend-user", env.User, "--backend-password-file", env.PasswordFile, "--users", users,
		"--backend-identity", "service", // opsUser exists only at the proxy
		"--loops", "2", "--backend-conns", "4"}, extra...)
	return dp
}

// proxyProcess is a started mysqlproxy whose exit the test watches.
type proxyProcess struct {
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	err  error // Wait's result, once done is closed
}

// start runs the proxy, waits for its banner, and makes sure it is gone
// (and its log closed) when the test ends.
func (dp *drainProxy) start(t *testing.T) *proxyProcess {
	t.Helper()
	cmd, logf := startProcess(t, dp.bin, dp.args...)
	pp := &proxyProcess{cmd: cmd, log: logf, done: make(chan struct{})}
	go func() {
		pp.err = cmd.Wait()
		close(pp.done)
	}()
	t.Cleanup(func() {
		select {
		case <-pp.done:
		default:
			_ = cmd.Process.Kill()
			<-pp.done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("log of proxy %d:\n%s", cmd.Process.Pid, b)
		}
		logf.Close()
	})
	return pp
}

// waitExit waits at most limit for the process to exit by itself and
// returns how long that took.
func (pp *proxyProcess) waitExit(t *testing.T, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	select {
	case <-pp.done:
	case <-time.After(limit):
		t.Fatalf("proxy %d still running %v later", pp.cmd.Process.Pid, limit)
	}
	if pp.err != nil {
		t.Fatalf("proxy %d exited: %v, want status 0", pp.cmd.Process.Pid, pp.err)
	}
	return time.Since(start)
}

func (dp *drainProxy) connector(t *testing.T) driver.Connector {
	t.Helper()
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = opsUser, opsPassword, "tcp", dp.listen, dp.env.Database
	cfg.Timeout = 5 * time.Second
	cfg.ReadTimeout, cfg.WriteTimeout = 10*time.Second, 10*time.Second
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// directDB opens a pool straight to the server as the test account.
func directDB(t *testing.T, env testutil.Env) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", env.TestDSN(env.Database))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// scratchTable creates a table for one test and drops it afterwards.
func scratchTable(t *testing.T, db *sql.DB, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s_%d", prefix, time.Now().UnixNano())
	if _, err := db.Exec("CREATE TABLE " + name + " (id BIGINT AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = db.Exec("DROP TABLE " + name) })
	return name
}

// connectAndCommit is one iteration of a client that reconnects for every
// unit of work: a fresh connection (no pool to hide a failure), a query,
// a transaction that inserts a row, and a clean close. Every error counts.
func connectAndCommit(ctx context.Context, connector driver.Connector, table string, v int) error {
	c, err := connector.Connect(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	rows, err := c.(driver.QueryerContext).QueryContext(ctx, "SELECT CONNECTION_ID()", nil)
	if err == nil {
		dest := make([]driver.Value, 1)
		err = rows.Next(dest)
		if cerr := rows.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		c.Close()
		return fmt.Errorf("query: %w", err)
	}
	tx, err := c.(driver.ConnBeginTx).BeginTx(ctx, driver.TxOptions{})
	if err != nil {
		c.Close()
		return fmt.Errorf("begin: %w", err)
	}
	if _, err := c.(driver.ExecerContext).ExecContext(ctx, fmt.Sprintf("INSERT INTO %s (v) VALUES (%d)", table, v), nil); err != nil {
		c.Close()
		return fmt.Errorf("insert: %w", err)
	}
	if err := tx.Commit(); err != nil {
		c.Close()
		return fmt.Errorf("commit: %w", err)
	}
	if err := c.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}

// TestMySQLProxyGracefulRestart hands a running mysqlproxy's sockets to a
// second process while clients connect, query and commit in a loop, and a
// longer session keeps a transaction open across the hand-over. Not one
// connect or statement may fail, every commit must be in the table, the
// new process must serve once the old one has gone, and the old one must
// drain and exit by itself with status 0. Both processes use the same
// admin address, which the old one gives up at the hand-over. Takes about
// 4 s.
func TestMySQLProxyGracefulRestart(t *testing.T) {
	testutil.CheckLeaks(t)
	const shutdownTimeout = 3 * time.Second
	admin := "127.0.0.1:" + freePort(t)
	dp := newDrainProxy(t, "--upgrade-socket", filepath.Join(t.TempDir(), "upgrade.sock"),
		"--shutdown-timeout", shutdownTimeout.String(), "--admin", admin)
	direct := directDB(t, dp.env)
	table := scratchTable(t, direct, "restart")
	connector := dp.connector(t)
	ctx := context.Background()

	old := dp.start(t)

	// A session that is in a transaction on the old process when the new
	// one takes over, and finishes it there.
	longDone := make(chan error, 1)
	handedOver := make(chan struct{})
	var handOverOnce sync.Once
	announceHandOver := func() { handOverOnce.Do(func() { close(handedOver) }) }
	defer announceHandOver() // also when the test fails before the hand-over
	go func() {
		longDone <- func() error {
			c, err := connector.Connect(ctx)
			if err != nil {
				return fmt.Errorf("connect: %w", err)
			}
			defer c.Close()
			tx, err := c.(driver.ConnBeginTx).BeginTx(ctx, driver.TxOptions{})
			if err != nil {
				return fmt.Errorf("begin: %w", err)
			}
			exec := c.(driver.ExecerContext)
			if _, err := exec.ExecContext(ctx, "INSERT INTO "+table+" (v) VALUES (-1)", nil); err != nil {
				return fmt.Errorf("insert before the hand-over: %w", err)
			}
			<-handedOver
			time.Sleep(300 * time.Millisecond)
			if _, err := exec.ExecContext(ctx, "INSERT INTO "+table+" (v) VALUES (-2)", nil); err != nil {
				return fmt.Errorf("insert after the hand-over: %w", err)
			}
			if err := tx.Commit(); err != nil {
				return fmt.Errorf("commit after the hand-over: %w", err)
			}
			return nil
		}()
	}()

	const clients = 4
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err := connectAndCommit(ictx, connector, table, i*100000+n)
				cancel()
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				ok.Add(1)
			}
		}(i)
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()

	time.Sleep(500 * time.Millisecond)
	beforeTakeover := ok.Load()
	successor := dp.start(t)
	announceHandOver()
	took := old.waitExit(t, shutdownTimeout+2*time.Second)
	atOldExit := ok.Load()
	if err := <-longDone; err != nil {
		t.Errorf("session open across the hand-over: %v", err)
	}
	time.Sleep(500 * time.Millisecond) // the successor alone serves
	close(stop)
	wg.Wait()

	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d iterations failed across the restart (first: %v)", n, n+ok.Load(), firstErr.Load())
	}
	if beforeTakeover == 0 || ok.Load() == atOldExit {
		t.Fatalf("iterations: %d before the takeover, %d after the old process exited; want progress on both sides",
			beforeTakeover, ok.Load()-atOldExit)
	}
	var rows int64
	if err := direct.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if want := ok.Load() + 2; rows != want {
		t.Errorf("%d rows committed, want %d (one per iteration and two from the long session)", rows, want)
	}
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := hc.Get("http://" + admin + "/healthz")
	if err != nil {
		t.Errorf("successor's admin endpoint at %s: %v", admin, err)
	} else {
		resp.Body.Close()
	}
	t.Logf("%d iterations, none failed; old process exited %v after the successor started", ok.Load(), took)

	_ = successor.cmd.Process.Signal(syscall.SIGTERM)
	successor.waitExit(t, shutdownTimeout+2*time.Second)
}

// rawSession is a client logged in by hand, to see exactly what the proxy
// sends to a session that is not running a command.
type rawSession struct {
	c net.Conn
}

func rawLogin(t *testing.T, addr, database string) *rawSession {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := &rawSession{c: c}
	p, _, err := r.read(5 * time.Second)
	if err != nil {
		t.Fatalf("greeting: %v", err)
	}
	hs, err := mysqlwire.ParseHandshake(p)
	if err != nil {
		t.Fatal(err)
	}
	hr := mysqlwire.HandshakeResponse{Capabilities: hs.Capabilities, MaxPacketSize: 1 << 24, CharacterSet: 45,
		Username: []byte(opsUser), AuthResponse: mysqlwire.NativePasswordScramble([]byte(opsPassword), hs.AuthPluginData[:20]),
		AuthPlugin: []byte(mysqlwire.AuthNativePassword), Database: []byte(database)}
	pkt, _ := mysqlwire.AppendHandshakeResponse(nil, 1, hr)
	if _, err := c.Write(pkt); err != nil {
		t.Fatal(err)
	}
	if p, _, err = r.read(5 * time.Second); err != nil || !mysqlwire.IsOK(p) {
		t.Fatalf("login: %x %v", p, err)
	}
	return r
}

// read returns the next packet's payload and sequence id.
func (r *rawSession) read(limit time.Duration) ([]byte, uint8, error) {
	_ = r.c.SetReadDeadline(time.Now().Add(limit))
	var hdr [4]byte
	if _, err := io.ReadFull(r.c, hdr[:]); err != nil {
		return nil, 0, err
	}
	p := make([]byte, int(hdr[0])|int(hdr[1])<<8|int(hdr[2])<<16)
	if _, err := io.ReadFull(r.c, p); err != nil {
		return nil, 0, err
	}
	return p, hdr[3], nil
}

// TestMySQLProxySIGTERMDrain sends SIGTERM to a proxy while one client
// runs SELECT SLEEP(2), another holds a transaction open and a third sits
// idle. New connections must be refused at once; the statement, still
// running at the shutdown timeout, must complete with its result; at the
// timeout the idle session gets ERR 1053 and is closed, and the
// transaction is closed and rolled back; the process must exit with status
// 0 soon after the statement's result went out. Takes about 2.5 s.
func TestMySQLProxySIGTERMDrain(t *testing.T) {
	testutil.CheckLeaks(t)
	const shutdownTimeout = time.Second
	dp := newDrainProxy(t, "--shutdown-timeout", shutdownTimeout.String(), "--admin", "")
	direct := directDB(t, dp.env)
	table := scratchTable(t, direct, "sigterm")
	connector := dp.connector(t)
	db := sql.OpenDB(connector)
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	pp := dp.start(t)

	txn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Close()
	mustExecConn(t, txn, "BEGIN")
	mustExecConn(t, txn, "INSERT INTO "+table+" (v) VALUES (1)")
	idle := rawLogin(t, dp.listen, dp.env.Database)

	sleeper, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer sleeper.Close()
	type result struct {
		v   int
		err error
	}
	start := time.Now()
	slept := make(chan result, 1)
	go func() {
		var r result
		r.err = sleeper.QueryRowContext(ctx, "SELECT 42 FROM (SELECT SLEEP(2)) AS s").Scan(&r.v)
		slept <- r
	}()
	time.Sleep(500 * time.Millisecond)
	if err := pp.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	signalled := time.Now()

	// Accepting stops at once; it must not resume while draining.
	for {
		c, err := net.DialTimeout("tcp", dp.listen, time.Second)
		if err != nil {
			// A connection that reached the backlog as the listening
			// socket closed is reset rather than refused.
			if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("connect after SIGTERM: %v, want connection refused", err)
			}
			break
		}
		c.Close()
		if time.Since(signalled) > 500*time.Millisecond {
			t.Fatal("still accepting connections 500ms after SIGTERM")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// The shutdown timeout: the idle session is told and closed.
	p, seq, err := idle.read(3 * time.Second)
	at := time.Since(signalled)
	if err != nil || seq != 1 || len(p) < 3 || !mysqlwire.IsERR(p) {
		t.Fatalf("idle session: packet %x seq %d, %v; want ERR 1053 with sequence id 1", p, seq, err)
	}
	if e, _ := mysqlwire.ParseERR(p); e.Code != mysqlwire.ErServerShutdown || string(e.SQLState) != "08S01" {
		t.Fatalf("idle session got %v, want ERR 1053 (08S01)", e)
	}
	if at < shutdownTimeout-50*time.Millisecond || at > shutdownTimeout+500*time.Millisecond {
		t.Errorf("idle session closed %v after SIGTERM, want at the %v shutdown timeout", at, shutdownTimeout)
	}
	if _, _, err := idle.read(time.Second); !errors.Is(err, io.EOF) {
		t.Errorf("idle session after ERR 1053: %v, want EOF", err)
	}
	if c, err := net.DialTimeout("tcp", dp.listen, time.Second); err == nil {
		c.Close()
		t.Error("a connection was accepted while draining")
	}

	r := <-slept
	if r.err != nil || r.v != 42 {
		t.Fatalf("SELECT SLEEP(2) across the shutdown: %d, %v; want its result 42", r.v, r.err)
	}
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("SLEEP(2) answered after %v", d)
	}
	// The process exits once the statement's session is closed: after the
	// timeout, within the hard cut.
	exitAfter := time.Since(signalled) + pp.waitExit(t, shutdownTimeout+mysqlproxy.DrainHardCut+time.Second)
	if exitAfter > shutdownTimeout+mysqlproxy.DrainHardCut+500*time.Millisecond {
		t.Errorf("exited %v after SIGTERM, want within %v", exitAfter, shutdownTimeout+mysqlproxy.DrainHardCut)
	}
	if _, err := txn.ExecContext(ctx, "INSERT INTO "+table+" (v) VALUES (2)"); err == nil {
		t.Error("the session in a transaction was still open after the proxy exited")
	}
	var n int
	if err := direct.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil || n != 0 {
		t.Errorf("the transaction left %d rows (%v); want it rolled back", n, err)
	}
	t.Logf("exited %v after SIGTERM", exitAfter)
}

func mustExecConn(t *testing.T, c *sql.Conn, q string) {
	t.Helper()
	if _, err := c.ExecContext(context.Background(), q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}
