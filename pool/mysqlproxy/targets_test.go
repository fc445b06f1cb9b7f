package mysqlproxy

import (
	"os"
	"testing"

	"github.com/scalestack/scalestack/pool"
)

// TestWeightedTargets runs a proxy over two addresses of the same server
// (TCP and its Unix socket) weighted 3:1 and checks that the connections
// are split so, log in, and serve queries.
func TestWeightedTargets(t *testing.T) {
	env := requireMySQL(t)
	socket := requireSocket(t)
	targets, err := pool.ParseTargets(env.addr+"=3,unix:"+socket, "")
	if err != nil {
		t.Fatal(err)
	}
	tp := startProxy(t, 4, 2, func(c *Config) { c.Targets = targets })
	perTarget := map[int]int{}
	for _, target := range tp.p.pool.BackendTargets() {
		perTarget[target]++
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
