package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// The tenants tests run the proxy with a configuration file of [tenants]
// tables and read the split of backend time from /status.

type tenantProxy struct {
	*proxyProcess
	admin, config string
}

func startTenantProxy(t *testing.T, n, loops int, config string) *tenantProxy {
	t.Helper()
	path := filepath.Join(t.TempDir(), "proxy.toml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	admin := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	p := startProxy(t, proxyOptions{backendConns: n, loops: loops, queueTimeout: 20 * time.Second,
		extraArgs: []string{"--config", path, "--admin", admin}})
	return &tenantProxy{proxyProcess: p, admin: admin, config: path}
}

type tenantStatusEntry struct {
	Name           string            `json:"name"`
	Clients        int64             `json:"clients"`
	BackendSeconds float64           `json:"backend_seconds_total"`
	Refused        map[string]uint64 `json:"refused"`
	Weight         int               `json:"weight"`
	MaxQPS         float64           `json:"max_qps"`
}

func (tp *tenantProxy) tenants(t *testing.T) map[string]tenantStatusEntry {
	t.Helper()
	resp, err := http.Get("http://" + tp.admin + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	out := map[string]tenantStatusEntry{}
	// The module's section sits somewhere in /status; find "tenants".
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if ts, ok := x["tenants"].([]any); ok {
				b, _ := json.Marshal(ts)
				var list []tenantStatusEntry
				if json.Unmarshal(b, &list) == nil {
					for _, e := range list {
						out[e.Name] = e
					}
				}
			}
			for _, y := range x {
				walk(y)
			}
		case []any:
			for _, y := range x {
				walk(y)
			}
		}
	}
	walk(raw)
	return out
}

// queueWaits reads tenant's queue-wait histogram from /metrics: waits
// within 50 ms and all waits.
func (tp *tenantProxy) queueWaits(t *testing.T, tenant string) (within, all uint64) {
	t.Helper()
	resp, err := http.Get("http://" + tp.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	const name = "scalestack_mysqlproxy_tenant_queue_wait_seconds"
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.Contains(line, `tenant="`+tenant+`"`) {
			continue
		}
		f := strings.Fields(line)
		n, _ := strconv.ParseUint(f[len(f)-1], 10, 64)
		switch {
		case strings.HasPrefix(line, name+"_bucket{") && strings.Contains(line, `le="0.05"`):
			within = n
		case strings.HasPrefix(line, name+"_count{"):
			all = n
		}
	}
	return within, all
}

func (tp *tenantProxy) reload(t *testing.T, config string) {
	t.Helper()
	if err := os.WriteFile(tp.config, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+tp.admin+"/reload", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /reload: %s", resp.Status)
	}
}

func tenantDB(t *testing.T, addr, user, password string, conns int) *sql.DB {
	t.Helper()
	db := openProxyDB(t, addr, "", func(c *mysql.Config) { c.User, c.Passwd = user, password })
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	return db
}

// saturate runs SELECT SLEEP(sleep) back to back on clients connections
// of db until ctx ends.
func saturate(ctx context.Context, db *sql.DB, clients int, sleep string, errs *errorCollector, wg *sync.WaitGroup) {
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				var x int
				if err := db.QueryRowContext(context.Background(), "SELECT SLEEP("+sleep+")").Scan(&x); err != nil {
					errs.add("SELECT SLEEP: %v", err)
					return
				}
			}
		}()
	}
}

// timingAttempts is how many times a test of shares or waits measures
// before it fails: on a loaded machine (make test runs packages in
// parallel on two cores) one window can be starved, and a FIFO proxy
// misses by far in every window, so a pass in any of them is meaningful.
const timingAttempts = 3

// TestTenantWeightsSplitBackendTime: two tenants with weights 3 and 1,
// both saturating N=4 backends, split the backend time 3:1 within ±10%,
// with one loop and with two.
func TestTenantWeightsSplitBackendTime(t *testing.T) {
	for _, loops := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d loops", loops), func(t *testing.T) {
			tp := startTenantProxy(t, 4, loops, fmt.Sprintf("[tenants.%s]\nweight = 3\n[tenants.%s]\nweight = 1\n", clientUser, otherUser))
			heavy := tenantDB(t, tp.addr, clientUser, clientPassword, 12)
			light := tenantDB(t, tp.addr, otherUser, otherPassword, 12)
			var errs errorCollector
			var wg sync.WaitGroup
			ctx, cancel := context.WithCancel(context.Background())
			saturate(ctx, heavy, 12, "0.01", &errs, &wg)
			saturate(ctx, light, 12, "0.01", &errs, &wg)
			defer func() { cancel(); wg.Wait(); errs.check(t, "saturating clients") }()
			// Skip the start (logins, the first grants) before measuring.
			time.Sleep(500 * time.Millisecond)
			var splits []float64
			for attempt := 0; attempt < timingAttempts; attempt++ {
				before := tp.tenants(t)
				time.Sleep(2500 * time.Millisecond)
				after := tp.tenants(t)
				h := after[clientUser].BackendSeconds - before[clientUser].BackendSeconds
				l := after[otherUser].BackendSeconds - before[otherUser].BackendSeconds
				if l <= 0 || h <= 0 {
					t.Fatalf("backend seconds %v and %v (status %+v)", h, l, after)
				}
				ratio := h / l
				t.Logf("backend seconds %.2f : %.2f = %.2f", h, l, ratio)
				if ratio >= 2.7 && ratio <= 3.3 {
					return
				}
				splits = append(splits, ratio)
			}
			t.Fatalf("splits %.2f (:1) in %d windows, want 3:1 ±10%% in one", splits, timingAttempts)
		})
	}
}

// TestTenantMinBackendsAndLiveRules: a tenant with min-backends=1 gets a
// backend within 50 ms while another saturates every backend; then a
// reload gives it max-qps and max-statement-time, which its connected
// client meets (ERR 1226, the server's ERR 1969) without being dropped.
func TestTenantMinBackendsAndLiveRules(t *testing.T) {
	base := fmt.Sprintf("[tenants.%s]\nweight = 1\n[tenants.%s]\nmin-backends = 1\n", clientUser, otherUser)
	tp := startTenantProxy(t, 4, 1, base)
	noisy := tenantDB(t, tp.addr, clientUser, clientPassword, 32)
	var errs errorCollector
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	saturate(ctx, noisy, 32, "0.02", &errs, &wg)
	defer func() { cancel(); wg.Wait(); errs.check(t, "noisy clients") }()
	time.Sleep(300 * time.Millisecond)

	reserved := tenantDB(t, tp.addr, otherUser, otherPassword, 1)
	conn, err := reserved.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The proxy's own queue-wait histogram is what min-backends bounds
	// (the client's latency adds this machine's CPU contention).
	var tries []string
	for attempt := 0; ; attempt++ {
		within0, waits0 := tp.queueWaits(t, otherUser)
		var worst time.Duration
		for i := 0; i < 20; i++ {
			start := time.Now()
			var x int
			if err := conn.QueryRowContext(context.Background(), "SELECT 1").Scan(&x); err != nil {
				t.Fatal(err)
			}
			worst = max(worst, time.Since(start))
			time.Sleep(20 * time.Millisecond)
		}
		within1, waits1 := tp.queueWaits(t, otherUser)
		waits, within := waits1-waits0, within1-within0
		try := fmt.Sprintf("%d of %d waits within 50 ms (worst client latency %v)", within, waits, worst)
		t.Logf("min-backends tenant beside a saturating one: %s", try)
		if waits > 0 && within == waits {
			break
		}
		tries = append(tries, try)
		if attempt+1 == timingAttempts {
			t.Fatalf("the min-backends tenant waited over 50 ms for a backend: %q", tries)
		}
	}

	tp.reload(t, base+"max-qps = 2\nmax-statement-time = \"200ms\"\n")
	var limited bool
	for i := 0; i < 10 && !limited; i++ {
		var x int
		err := conn.QueryRowContext(context.Background(), "SELECT 1").Scan(&x)
		if me, ok := asMySQLError(err); ok && me.Number == 1226 && string(me.SQLState[:]) == "42000" {
			limited = true
		} else if err != nil {
			t.Fatalf("under max-qps: %v", err)
		}
	}
	if !limited {
		t.Fatal("no ERR 1226 after max-qps = 2 was reloaded")
	}
	time.Sleep(1100 * time.Millisecond) // the bucket refills
	var x int
	err = conn.QueryRowContext(context.Background(), "SELECT SLEEP(2)").Scan(&x)
	if me, ok := asMySQLError(err); !ok || me.Number != 1969 {
		t.Fatalf("SELECT SLEEP(2) under max-statement-time 200ms: %v (%d), want the server's ERR 1969", err, x)
	}
	time.Sleep(1100 * time.Millisecond)
	if err := conn.QueryRowContext(context.Background(), "SELECT 1").Scan(&x); err != nil {
		t.Fatalf("the same client after the limits: %v", err)
	}
	if st := tp.tenants(t)[otherUser]; st.Refused["max_qps"] == 0 || st.MaxQPS != 2 {
		t.Fatalf("status after the reload: %+v", st)
	}
}
