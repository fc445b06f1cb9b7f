package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	sysbenchDB        = "e2e_sbtest" // not sbtest: other packages may prepare and clean that one up meanwhile
	sysbenchTableSize = 10000
)

var prepareSysbench sync.Once
var prepareSysbenchErr error

// ensureSysbenchTables prepares sbtest.sbtest1 (10,000 rows) directly on
// the server, once per test binary, unless it already holds them.
func ensureSysbenchTables(t *testing.T) {
	t.Helper()
	prepareSysbench.Do(func() {
		var n int
		err := rootDB.QueryRow("SELECT COUNT(*) FROM " + sysbenchDB + ".sbtest1").Scan(&n)
		if err == nil && n == sysbenchTableSize {
			return
		}
		host, port := splitAddr(t, srv.addr)
		common := []string{"oltp_read_only", "--db-driver=mysql", "--mysql-host=" + host, "--mysql-port=" + port,
			"--mysql-user=" + srv.rootUser, "--mysql-password=" + srv.rootPassword, "--mysql-db=" + sysbenchDB,
			"--tables=1", "--table-size=" + strconv.Itoa(sysbenchTableSize)}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if out, err := runCommand(ctx, nil, "sysbench", append(common, "cleanup")...); err != nil {
			prepareSysbenchErr = fmt.Errorf("sysbench cleanup: %w\n%s", err, out)
			return
		}
		if out, err := runCommand(ctx, nil, "sysbench", append(common, "prepare")...); err != nil {
			prepareSysbenchErr = fmt.Errorf("sysbench prepare: %w\n%s", err, out)
		}
	})
	if prepareSysbenchErr != nil {
		t.Fatal(prepareSysbenchErr)
	}
}

func splitAddr(t testing.TB, addr string) (host, port string) {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		t.Fatalf("bad address %q", addr)
	}
	return addr[:i], addr[i+1:]
}

// sysbenchRun is what a sysbench run reported.
type sysbenchRun struct {
	transactions, queries, errors, reconnects int64
	qps                                       float64
	output                                    string
}

var (
	sbTransactions = regexp.MustCompile(`(?m)^\s*transactions:\s+(\d+)`)
	sbQueries      = regexp.MustCompile(`(?m)^\s*queries:\s+(\d+)\s+\(([\d.]+) per sec`)
	sbErrors       = regexp.MustCompile(`(?m)^\s*(?:ignored )?errors:\s+(\d+)`)
	sbReconnects   = regexp.MustCompile(`(?m)^\s*reconnects:\s+(\d+)`)
)

// parseSysbench extracts the counters of a finished run; every one of them
// must be present, or the output is not what this test understands.
func parseSysbench(out string) (sysbenchRun, error) {
	r := sysbenchRun{output: out}
	for _, f := range []struct {
		re  *regexp.Regexp
		dst *int64
	}{{sbTransactions, &r.transactions}, {sbQueries, &r.queries}, {sbErrors, &r.errors}, {sbReconnects, &r.reconnects}} {
		m := f.re.FindStringSubmatch(out)
		if m == nil {
			return r, fmt.Errorf("sysbench output lacks %q", f.re.String())
		}
		*f.dst, _ = strconv.ParseInt(m[1], 10, 64)
	}
	m := sbQueries.FindStringSubmatch(out)
	r.qps, _ = strconv.ParseFloat(m[2], 64)
	return r, nil
}

// runSysbench runs one sysbench test through addr.
func runSysbench(t *testing.T, addr, test string, threads int, d time.Duration, psMode string) sysbenchRun {
	t.Helper()
	host, port := splitAddr(t, addr)
	args := []string{test, "--db-driver=mysql", "--mysql-host=" + host, "--mysql-port=" + port,
		"--mysql-user=" + clientUser, "--mysql-password=" + clientPassword, "--mysql-db=" + sysbenchDB,
		"--tables=1", "--table-size=" + strconv.Itoa(sysbenchTableSize), "--threads=" + strconv.Itoa(threads),
		"--time=" + strconv.Itoa(int(d/time.Second)), "--report-interval=0", "--db-ps-mode=" + psMode, "run"}
	ctx, cancel := context.WithTimeout(context.Background(), d+90*time.Second)
	defer cancel()
	out, err := runCommand(ctx, nil, "sysbench", args...)
	if err != nil {
		t.Fatalf("sysbench %s (%d threads, ps-mode %s) failed: %v\n%s", test, threads, psMode, err, tail(string(out), 40))
	}
	r, err := parseSysbench(string(out))
	if err != nil {
		t.Fatalf("%v\n%s", err, tail(string(out), 40))
	}
	return r
}

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// TestSysbench1024Clients16Backends runs sysbench's read_only and
// point_select at 1024 client threads through a proxy with 16 backend
// connections, with server-side prepared statements on and off: no errors,
// no reconnects, and the server never sees more than 16 proxy connections.
func TestSysbench1024Clients16Backends(t *testing.T) {
	ensureSysbenchTables(t)
	const backends, threads = 16, 1024
	p := startProxy(t, proxyOptions{backendConns: backends})
	for _, c := range []struct{ test, psMode string }{
		{"oltp_point_select", "auto"},
		{"oltp_point_select", "disable"},
		{"oltp_read_only", "auto"},
		{"oltp_read_only", "disable"},
	} {
		t.Run(c.test+"/ps="+c.psMode, func(t *testing.T) {
			checkSysbench(t, p, c.test, c.psMode, threads, 10*time.Second)
		})
	}
}

func checkSysbench(t *testing.T, p *proxyProcess, test, psMode string, threads int, d time.Duration) {
	start := time.Now()
	w := watchProcesslist(t, p.backend)
	r := runSysbench(t, p.addr, test, threads, d, psMode)
	maxSeen, samples, failures := w.finish()
	p.requireAlive(t)
	t.Logf("%s ps=%s: %d threads, %d transactions, %d queries (%.0f qps), %d errors, %d reconnects; "+
		"processlist max %d of %s over %d samples; took %v", test, psMode, threads, r.transactions, r.queries, r.qps,
		r.errors, r.reconnects, maxSeen, srv.serviceUser, samples, time.Since(start).Round(time.Millisecond))
	if r.errors != 0 || r.reconnects != 0 {
		t.Errorf("sysbench reported %d errors and %d reconnects, want none:\n%s", r.errors, r.reconnects, tail(r.output, 30))
	}
	if r.transactions == 0 {
		t.Errorf("sysbench completed no transaction:\n%s", tail(r.output, 30))
	}
	if maxSeen > int64(p.n) {
		t.Errorf("the server showed %d connections of %s during the run, more than --backend-conns %d", maxSeen, srv.serviceUser, p.n)
	}
	// Every backend must be back in service once the clients are gone; a
	// backend lost to the pool shows up as queue timeouts in the next run.
	if n := p.usableBackends(t, p.n); n != p.n {
		t.Errorf("after the run only %d of %d backends serve clients (%d concurrent SELECT SLEEP(0.5) finished in the first 0.9 s)",
			n, p.n, n)
	}
	if samples < int64(d/(200*time.Millisecond)) || failures > 0 {
		t.Errorf("processlist watch took only %d samples (%d failed) in %v: the bound was not really checked", samples, failures, d)
	}
}
