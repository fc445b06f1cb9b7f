package mysqlproxytest

import (
	"context"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	sysbenchQueries = regexp.MustCompile(`queries:\s+(\d+)\s+\(([\d.]+) per sec`)
	sysbenchErrors  = regexp.MustCompile(`ignored errors:\s+(\d+)`)
)

// sysbench runs one sysbench phase and returns its output.
func sysbench(t *testing.T, host, port, user, password, phase string, extra ...string) string {
	t.Helper()
	args := append([]string{"oltp_point_select",
		"--mysql-host=" + host, "--mysql-port=" + port, "--mysql-user=" + user, "--mysql-password=" + password,
		"--mysql-db=" + testDB, "--tables=1", "--table-size=1000"}, extra...)
	args = append(args, phase)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "sysbench", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("sysbench %s: %v\n%s\nproxy stats: %+v", phase, err, out, statsOf(t))
	}
	return string(out)
}

// TestSysbenchPointSelect runs sysbench's point-select benchmark with 64
// threads through a proxy with 4 backend connections, with server-side
// prepared statements and without, and requires zero errors.
func TestSysbenchPointSelect(t *testing.T) {
	if _, err := exec.LookPath("sysbench"); err != nil {
		t.Fatalf("sysbench is needed (scripts/mariadb.sh deps --sysbench): %v", err)
	}
	tp := startProxy(t, 4, 2, nil)
	statsOf = func(*testing.T) any { return tp.p.Stats() }
	host, port, _ := strings.Cut(tp.addr, ":")
	sysbench(t, host, port, testUser, testPassword, "cleanup")
	sysbench(t, host, port, testUser, testPassword, "prepare")
	defer sysbench(t, host, port, testUser, testPassword, "cleanup")
	for _, mode := range []string{"auto", "disable"} {
		out := sysbench(t, host, port, testUser, testPassword, "run",
			"--threads=64", "--time=5", "--db-ps-mode="+mode)
		q := sysbenchQueries.FindStringSubmatch(out)
		e := sysbenchErrors.FindStringSubmatch(out)
		if q == nil || e == nil {
			t.Fatalf("ps mode %s: cannot read sysbench output:\n%s", mode, out)
		}
		queries, _ := strconv.Atoi(q[1])
		if e[1] != "0" || queries == 0 || strings.Contains(out, "FATAL") {
			t.Fatalf("ps mode %s: %d queries, %s errors:\n%s", mode, queries, e[1], out)
		}
		t.Logf("ps mode %s: %s queries/s through the proxy (4 backends, 64 threads)", mode, q[2])
	}
	st := tp.p.Stats()
	if st.BackendsConnected != 4 || st.PinnedSessions != 0 || st.BackendUnknownState != 0 {
		t.Fatalf("after sysbench: %+v", st)
	}
}

var statsOf = func(*testing.T) any { return nil }
