package e2e

import (
	"context"
	"database/sql"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scalestack/scalestack/internal/testutil"
)

// readyz fetches the proxy's /readyz: true for 200, false for 503.
func readyz(t testing.TB, admin string) bool {
	t.Helper()
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + admin + "/readyz")
	if err != nil {
		t.Fatalf("/readyz: %v", err)
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true
	case http.StatusServiceUnavailable:
		return false
	}
	t.Fatalf("/readyz answered %d", resp.StatusCode)
	return false
}

// loadProxy runs workers clients of db with short statements until the
// returned stop is called; it reports how many statements failed.
func loadProxy(t testing.TB, db *sql.DB, workers int, stmt string) (stop func() (ok, failed int)) {
	t.Helper()
	db.SetMaxOpenConns(workers)
	done := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ok, failed int
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				var v int
				err := db.QueryRowContext(ctx, stmt).Scan(&v)
				cancel()
				mu.Lock()
				if err == nil {
					ok++
				} else {
					failed++
				}
				mu.Unlock()
			}
		}()
	}
	return func() (int, int) {
		close(done)
		wg.Wait()
		return ok, failed
	}
}

// TestReadyzUnderLoad: /readyz is the pool's own view. With 2 loops and more
// clients than backends, backends move between loops all the time; a sum of
// per-loop gauges dipped during each move (the issue saw 11% "not ready").
func TestReadyzUnderLoad(t *testing.T) {
	admin := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	p := startProxy(t, proxyOptions{backendConns: 4, loops: 2, extraArgs: []string{"--admin", admin}})
	db := openProxyDB(t, p.addr, dataSchema, nil)
	stop := loadProxy(t, db, 24, "SELECT 1")
	time.Sleep(300 * time.Millisecond)
	notReady := 0
	const probes = 200
	for i := 0; i < probes; i++ {
		if !readyz(t, admin) {
			notReady++
		}
		time.Sleep(10 * time.Millisecond)
	}
	ok, failed := stop()
	t.Logf("%d of %d probes not ready under load (%d statements, %d failed)", notReady, probes, ok, failed)
	if notReady != 0 || failed != 0 || ok == 0 {
		t.Fatalf("%d of %d /readyz probes said not ready under healthy load; %d statements failed of %d", notReady, probes, failed, ok+failed)
	}
}

// TestReadyzStalledServer: a server that hangs (SIGSTOP) with statements in
// flight makes /readyz fail within --backend-stall-timeout + 1 s, and it is
// ready again within 2 s of SIGCONT.
func TestReadyzStalledServer(t *testing.T) {
	priv := testutil.PrivateMariaDB(t)
	b := &server{addr: priv.Addr, rootUser: priv.RootUser, rootPassword: priv.RootPassword,
		serviceUser: priv.User, servicePassword: priv.Password, servicePasswordFile: priv.PasswordFile}
	if err := b.openRoot(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.root.Close() })
	const stall = 2 * time.Second
	admin := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	p := startProxy(t, proxyOptions{backend: b, backendConns: 4, loops: 2,
		extraArgs: []string{"--admin", admin, "--backend-stall-timeout", stall.String()}})
	db := openProxyDB(t, p.addr, priv.Database, nil)
	deadline := time.Now().Add(5 * time.Second)
	for !readyz(t, admin) {
		if time.Now().After(deadline) {
			t.Fatal("not ready before the stop")
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop := loadProxy(t, db, 8, "SELECT SLEEP(0.01)+1")
	defer stop()
	time.Sleep(500 * time.Millisecond)

	stopped := false
	cont := func() {
		if stopped {
			stopped = false
			if err := syscall.Kill(priv.PID, syscall.SIGCONT); err != nil {
				t.Errorf("SIGCONT: %v", err)
			}
		}
	}
	defer cont()
	if err := syscall.Kill(priv.PID, syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP: %v", err)
	}
	stopped = true
	wait := func(want bool, within time.Duration, what string) time.Duration {
		start := time.Now()
		for readyz(t, admin) != want {
			if time.Since(start) > within {
				t.Fatalf("%s: /readyz still %v after %v; log:\n%s", what, !want, within, p.logTail(20))
			}
			time.Sleep(50 * time.Millisecond)
		}
		return time.Since(start)
	}
	notReadyAfter := wait(false, stall+time.Second, "server stopped")
	cont()
	readyAfter := wait(true, 2*time.Second, "server continued")
	t.Logf("not ready %v after SIGSTOP (stall timeout %v), ready %v after SIGCONT",
		notReadyAfter.Round(time.Millisecond), stall, readyAfter.Round(time.Millisecond))
}
