package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// TestFoundRowsBackendClasses (issue 16, item 4): clients with and without
// CLIENT_FOUND_ROWS at once on 2 backends. Each gets the affected rows its
// flag calls for (matched rows with it, changed rows without) on every
// statement, while the proxy logs backends in again with the other flag as
// the mix needs (backend_reopens_total), and the server never sees more
// than the 2 connections.
func TestFoundRowsBackendClasses(t *testing.T) {
	const conns, clients, rounds = 2, 8, 25
	admin := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	p := startProxy(t, proxyOptions{backendConns: conns, loops: 1, extraArgs: []string{"--admin", admin}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	setup := openProxyDB(t, p.addr, dataSchema, nil)
	for _, q := range []string{
		"DROP TABLE IF EXISTS found_rows_mix",
		"CREATE TABLE found_rows_mix (id INT PRIMARY KEY, v INT NOT NULL)",
		"INSERT INTO found_rows_mix SELECT seq, 0 FROM seq_1_to_" + strconv.Itoa(clients),
	} {
		if _, err := setup.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	watch := watchProcesslist(t, srv)
	var errs errorCollector
	var wg sync.WaitGroup
	for i := 1; i <= clients; i++ {
		found := i%2 == 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			db := openProxyDB(t, p.addr, dataSchema, func(c *mysql.Config) { c.ClientFoundRows = found })
			db.SetMaxOpenConns(1)
			// A statement that changes nothing: 1 matched row, 0 changed.
			noChange := int64(0)
			if found {
				noChange = 1
			}
			for r := 0; r < rounds; r++ {
				for _, st := range []struct {
					q    string
					want int64
				}{
					{"UPDATE found_rows_mix SET v = v + 1 WHERE id = ?", 1},
					{"UPDATE found_rows_mix SET v = v WHERE id = ?", noChange},
				} {
					res, err := db.ExecContext(ctx, st.q, i)
					if err != nil {
						errs.add("client %d (found rows %v): %s: %v", i, found, st.q, err)
						return
					}
					if n, _ := res.RowsAffected(); n != st.want {
						errs.add("client %d (found rows %v): %s: affected %d, want %d", i, found, st.q, n, st.want)
					}
				}
			}
		}()
	}
	wg.Wait()
	most, samples, _ := watch.finish()
	errs.check(t, "affected rows")
	if samples == 0 {
		t.Fatal("the processlist was never read")
	}
	if most > conns {
		t.Errorf("the server saw %d connections of the service account, want at most %d", most, conns)
	}
	reopens := scrapeMetric(t, admin, "scalestack_mysqlproxy_backend_reopens_total")
	if reopens < 1 {
		t.Errorf("backend_reopens_total = %v: no backend was logged in again with CLIENT_FOUND_ROWS", reopens)
	}
	t.Logf("%d clients x %d rounds, %v backend reopens, at most %d server connections", clients, rounds, reopens, most)
	p.waitBackendCount(t, conns, 10*time.Second)
	p.requireAlive(t)
}

// scrapeMetric reads one unlabelled series from the proxy's /metrics.
func scrapeMetric(t *testing.T, admin, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatalf("scrape /metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("/metrics has no %s (%v)", name, fmt.Sprint(sc.Err()))
	return 0
}
