package pool

import (
	"os"
	"strings"
	"testing"

	"github.com/scalestack/scalestack/conn"
)

func TestParseTargets(t *testing.T) {
	cases := []struct {
		list, ro string
		want     string // Target strings joined by "|"
		wantErr  string
	}{
		{"127.0.0.1:3306", "", "tcp:127.0.0.1:3306", ""},
		{"127.0.0.1:1=3, 127.0.0.2:2", "", "tcp:127.0.0.1:1=3|tcp:127.0.0.2:2", ""},
		{"127.0.0.1:1", "127.0.0.3:3=2", "tcp:127.0.0.1:1|tcp:127.0.0.3:3=2 (read-only, unused)", ""},
		{"unix:/run/mysqld.sock=2", "", "unix:/run/mysqld.sock=2", ""},
		{"127.0.0.1:1=0", "", "", "weight"},
		{"127.0.0.1:1=x", "", "", "weight"},
		{"127.0.0.1:1,127.0.0.1:1", "", "", "twice"},
		{"", "", "", ""},
	}
	for _, c := range cases {
		got, err := ParseTargets(c.list, c.ro)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("ParseTargets(%q, %q): %v, want an error about %q", c.list, c.ro, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseTargets(%q, %q): %v", c.list, c.ro, err)
			continue
		}
		var s []string
		for _, tg := range got {
			s = append(s, tg.String())
		}
		if strings.Join(s, "|") != c.want {
			t.Errorf("ParseTargets(%q, %q) = %q, want %q", c.list, c.ro, strings.Join(s, "|"), c.want)
		}
	}
}

func TestSplitConns(t *testing.T) {
	tcp := func(a string, w int, ro bool) Target {
		return Target{Addr: conn.Addr{Network: "tcp", Address: a}, Weight: w, ReadOnly: ro}
	}
	cases := []struct {
		n       int
		targets []Target
		want    []int // connections per target
	}{
		{4, []Target{tcp("a", 1, false)}, []int{4}},
		{4, []Target{tcp("a", 3, false), tcp("b", 1, false)}, []int{3, 1}},
		{5, []Target{tcp("a", 1, false), tcp("b", 1, false)}, []int{3, 2}},
		{10, []Target{tcp("a", 1, false), tcp("b", 1, false), tcp("c", 1, false)}, []int{4, 3, 3}},
		{8, []Target{tcp("a", 1, false), tcp("r", 5, true), tcp("b", 1, false)}, []int{4, 0, 4}},
		{1, []Target{tcp("a", 1, false), tcp("b", 2, false)}, []int{0, 1}},
	}
	for _, c := range cases {
		got := splitConns(c.n, c.targets)
		if len(got) != c.n {
			t.Fatalf("splitConns(%d): %d connections", c.n, len(got))
		}
		counts := make([]int, len(c.targets))
		for _, i := range got {
			counts[i]++
		}
		for i := range counts {
			if counts[i] != c.want[i] {
				t.Errorf("splitConns(%d, %v) per target %v, want %v", c.n, c.targets, counts, c.want)
				break
			}
		}
	}
}

// TestWeightedTargets runs a proxy over two addresses of the same server
// (TCP and its Unix socket) weighted 3:1 and checks that the connections
// are split so, log in, and serve queries.
func TestWeightedTargets(t *testing.T) {
	env := requireMySQL(t)
	socket := requireSocket(t)
	targets, err := ParseTargets(env.addr+"=3,unix:"+socket, "")
	if err != nil {
		t.Fatal(err)
	}
	tp := startProxy(t, 4, 2, func(c *Config) { c.Targets = targets })
	perTarget := map[int]int{}
	for _, b := range tp.p.backends {
		perTarget[b.target]++
	}
	if perTarget[0] != 3 || perTarget[1] != 1 {
		t.Fatalf("connections per target %v, want 3 and 1", perTarget)
	}
	db := tp.open(t, "")
	for i := 0; i < 20; i++ {
		var one int
		if err := db.QueryRow("SELECT 1").Scan(&one); err != nil {
			t.Fatal(err)
		}
	}
}

func requireSocket(t *testing.T) string {
	t.Helper()
	s := os.Getenv("SCALESTACK_MYSQL_SOCKET")
	if s == "" {
		t.Fatal("SCALESTACK_MYSQL_SOCKET is not set: start the server with scripts/mariadb.sh start and source .tmp/mariadb/env")
	}
	return s
}
