package mysqlproxytest

import (
	"database/sql"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/internal/testutil"
	"github.com/scalestack/scalestack/pool/mysqlproxy"
	"github.com/scalestack/scalestack/reactor"
)

// startPrivateProxy runs a proxy with n backends in front of a MariaDB of
// the test's own, which the test may stop, freeze and restart.
func startPrivateProxy(t *testing.T, n int) (*mysqlproxy.Proxy, testutil.Env, *sql.DB) {
	t.Helper()
	env := testutil.PrivateMariaDB(t)
	users, err := mysqlproxy.ParseUsers(strings.NewReader(mysqlproxy.UserLine(testUser, []byte(testPassword)) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	baddr, err := conn.ParseAddr(env.Addr)
	if err != nil {
		t.Fatal(err)
	}
	var quiet atomic.Bool
	p, err := mysqlproxy.New(mysqlproxy.Config{
		Backend: baddr, User: env.User, Password: []byte(env.Password), BackendConns: n, Users: users,
		Identity:     mysqlproxy.IdentityService, // the client accounts exist only at the proxy
		QueueTimeout: 10 * time.Second, ConnectTimeout: time.Second, HealthInterval: 100 * time.Millisecond,
		Logf: func(format string, args ...any) {
			if !quiet.Load() {
				t.Logf("proxy: "+format, args...)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	e, err := reactor.New(reactor.Config{Loops: 2})
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
	t.Cleanup(func() { stopProxy(p, e, &quiet) })
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = testUser, testPassword, "tcp", p.Addr().Address, env.Database
	cfg.Timeout = 5 * time.Second
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	waitUntil(t, 10*time.Second, "all backends logged in", func() bool { return p.Ready() == nil })
	return p, env, db
}

func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBackendHealth follows a backend server through a freeze and a stop:
// idle backends are pinged; a server that stops answering is noticed by
// the health checks; while every connection is down, commands fail at once
// with ERR 9003 instead of waiting their queue timeout; readiness fails
// while fewer than N backends are logged in; and once the server is back
// the pool returns to N without a restart.
func TestBackendHealth(t *testing.T) {
	const n = 4
	p, env, db := startPrivateProxy(t, n)
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
	var one int
	if err := db.QueryRow("SELECT 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "idle backends pinged", func() bool { return p.Stats().HealthChecks >= n })

	t.Run("frozen server", func(t *testing.T) {
		// A stopped (SIGSTOP) server keeps its sockets open but answers
		// nothing: only the health checks can tell.
		if err := syscall.Kill(env.PID, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		resumed := false
		resume := func() {
			if !resumed {
				resumed = true
				_ = syscall.Kill(env.PID, syscall.SIGCONT)
			}
		}
		defer resume()
		failures := p.Stats().HealthCheckFailures
		waitUntil(t, 5*time.Second, "a health check failing", func() bool { return p.Stats().HealthCheckFailures > failures })
		waitUntil(t, 5*time.Second, "readiness failing", func() bool { return p.Ready() != nil })
		resume()
		waitUntil(t, 20*time.Second, "the pool back to N", func() bool { return p.Ready() == nil })
		if err := db.QueryRow("SELECT 1").Scan(&one); err != nil {
			t.Fatalf("after the server resumed: %v", err)
		}
	})

	t.Run("stopped server", func(t *testing.T) {
		testutil.StopMariaDB(t, env)
		waitUntil(t, 5*time.Second, "the backend marked unavailable", func() bool { return !p.Available() })
		if err := p.Ready(); err == nil {
			t.Fatal("ready with the server stopped")
		}
		fastFails := p.Stats().FastFails
		start := time.Now()
		err := db.QueryRow("SELECT 1").Scan(&one)
		took := time.Since(start)
		var me *mysql.MySQLError
		if !asMySQLError(err, &me) || me.Number != 9003 || string(me.SQLState[:]) != "HY000" {
			t.Fatalf("query with the server stopped: %v, want ERR 9003 (HY000)", err)
		}
		if took > time.Second {
			t.Fatalf("ERR 9003 took %v; it must not wait for the 10 s queue timeout", took)
		}
		if p.Stats().FastFails != fastFails+1 {
			t.Fatalf("FastFails %d, want %d", p.Stats().FastFails, fastFails+1)
		}
		restarted := testutil.StartMariaDB(t, env)
		_ = restarted
		waitUntil(t, 25*time.Second, "the pool back to N after the restart", func() bool { return p.Ready() == nil })
		if !p.Available() {
			t.Fatal("backend still marked unavailable with every connection logged in")
		}
		if err := db.QueryRow("SELECT 1").Scan(&one); err != nil {
			t.Fatalf("after the server came back: %v", err)
		}
		if st := p.Stats(); st.BackendsConnected != n || st.BackendReconnects < n {
			t.Fatalf("after the restart: %d backends connected, %d reconnects", st.BackendsConnected, st.BackendReconnects)
		}
	})
}

func asMySQLError(err error, target **mysql.MySQLError) bool {
	if err == nil {
		return false
	}
	me, ok := err.(*mysql.MySQLError)
	if ok {
		*target = me
	}
	return ok
}
