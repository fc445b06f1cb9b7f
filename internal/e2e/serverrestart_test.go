package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/scalestack/scalestack/internal/testutil"
)

// TestChaosServerRestart stops and restarts MariaDB (a private one: the
// shared server's other users must not see it go away) while 32 clients run
// statements through the proxy on connections they keep. Only statements
// in flight while the server is away may fail, each with an ERR packet;
// every client connection survives; the server shows N proxy connections
// again within a bounded time; statements started after that all succeed,
// and the proxy was never restarted.
func TestChaosServerRestart(t *testing.T) {
	start := time.Now()
	priv := testutil.PrivateMariaDB(t)
	b := &server{addr: priv.Addr, rootUser: priv.RootUser, rootPassword: priv.RootPassword,
		serviceUser: priv.User, servicePassword: priv.Password, servicePasswordFile: priv.PasswordFile}
	if err := b.openRoot(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.root.Close() })
	if _, err := b.root.Exec("CREATE TABLE " + priv.Database + ".r (id INT PRIMARY KEY) ENGINE=InnoDB; " +
		"INSERT INTO " + priv.Database + ".r WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 100) SELECT n FROM s"); err != nil {
		t.Fatal(err)
	}
	const backends, workers = 8, 32
	p := startProxy(t, proxyOptions{backend: b, backendConns: backends})
	db := openProxyDB(t, p.addr, priv.Database, nil)
	db.SetMaxOpenConns(workers)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	type outcome struct {
		started, ended time.Time
		err            error
	}
	results := make([][]outcome, workers)
	conns := make([]*sql.Conn, workers)
	for w := range conns {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns[w] = c
		defer c.Close()
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				o := outcome{started: time.Now()}
				o.err = restartProbe(ctx, conns[w], w, k)
				o.ended = time.Now()
				results[w] = append(results[w], o)
				if o.err != nil {
					if _, isERR := asMySQLError(o.err); !isERR {
						return // the client connection is gone; reported below
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
		}(w)
	}

	time.Sleep(2 * time.Second)
	stopAt := time.Now()
	testutil.StopMariaDB(t, priv)
	time.Sleep(time.Second)
	testutil.StartMariaDB(t, priv)
	upAt := time.Now()
	p.waitBackendCount(t, backends, 30*time.Second)
	poolAt := time.Now()
	time.Sleep(3 * time.Second)
	close(stop)
	wg.Wait()
	p.requireAlive(t)
	t.Logf("server stopped at +0, back at +%v (script), pool back to %d at +%v", upAt.Sub(stopAt).Round(time.Millisecond),
		backends, poolAt.Sub(stopAt).Round(time.Millisecond))

	var failedERR, failedOther, afterPool, failedAfterPool int
	var errs errorCollector
	for w, rs := range results {
		for _, o := range rs {
			if !o.started.Before(poolAt) {
				afterPool++
			}
			if o.err == nil {
				continue
			}
			me, isERR := asMySQLError(o.err)
			switch {
			case !isERR:
				failedOther++
				errs.addKind("not an ERR packet", "worker %d at +%v: the client connection failed without an ERR packet: %v",
					w, o.started.Sub(stopAt).Round(time.Millisecond), o.err)
			case !o.started.Before(poolAt):
				failedAfterPool++
				errs.addKind("after recovery", "worker %d at +%v (after the pool was back): ERR %d %s",
					w, o.started.Sub(stopAt).Round(time.Millisecond), me.Number, me.Message)
			case o.ended.Before(stopAt):
				errs.addKind("before the stop", "worker %d at +%v (before the server stopped): ERR %d %s",
					w, o.started.Sub(stopAt).Round(time.Millisecond), me.Number, me.Message)
			default:
				failedERR++
				errs.addKind(fmt.Sprintf("expected: ERR %d (%s)", me.Number, string(me.SQLState[:])), "worker %d at +%v: ERR %d %s",
					w, o.started.Sub(stopAt).Round(time.Millisecond), me.Number, me.Message)
			}
		}
	}
	t.Logf("%d statements failed with an ERR while the server was away, %d failed otherwise, %d of %d started after recovery failed (%s)",
		failedERR, failedOther, failedAfterPool, afterPool, errs.summary())
	if failedOther > 0 || failedAfterPool > 0 || errs.n() > failedERR {
		errs.check(t, "statements around the server restart")
	}
	if afterPool < workers {
		t.Errorf("only %d statements started after the pool was back", afterPool)
	}
	// Every client connection is still the one it was.
	for w, c := range conns {
		var v int
		if err := c.QueryRowContext(ctx, "SELECT 5").Scan(&v); err != nil || v != 5 {
			t.Errorf("worker %d's connection after the restart: %d, %v", w, v, err)
		}
	}
	t.Logf("TestChaosServerRestart took %v", time.Since(start).Round(time.Millisecond))
}

// restartProbe runs one statement whose answer is known: a short sleep (so
// that some are in flight when the server goes) or a count.
func restartProbe(ctx context.Context, c *sql.Conn, w, k int) error {
	if k%2 == 0 {
		var slept, tag int
		want := w*1_000_000 + k
		if err := c.QueryRowContext(ctx, "SELECT SLEEP(0.05), "+strconv.Itoa(want)).Scan(&slept, &tag); err != nil {
			return err
		}
		if slept != 0 || tag != want {
			return fmt.Errorf("wrong answer (%d, %d), want (0, %d)", slept, tag, want)
		}
		return nil
	}
	limit := 1 + k%100
	var n int
	if err := c.QueryRowContext(ctx, "SELECT COUNT(*) FROM r WHERE id <= "+strconv.Itoa(limit)).Scan(&n); err != nil {
		return err
	}
	if n != limit {
		return fmt.Errorf("COUNT(*) = %d, want %d", n, limit)
	}
	return nil
}
