package mysqlproxytest

import (
	"testing"

	"github.com/scalestack/scalestack/pool"
	"github.com/scalestack/scalestack/pool/mysqlproxy"
)

// TestWeightedTargets runs a proxy over two addresses of the same server
// (TCP and its Unix socket) weighted 3:1 and checks that the connections
// are split so (as the server sees them: a socket connection's host is
// "localhost"), log in, and serve queries.
func TestWeightedTargets(t *testing.T) {
	env := privateMySQL(t) // its service-account threads are this proxy's
	if env.socket == "" {
		t.Fatal("the server's socket is needed (scripts/mariadb.sh writes it to the env file)")
	}
	targets, err := pool.ParseTargets(env.addr+"=3,unix:"+env.socket, "")
	if err != nil {
		t.Fatal(err)
	}
	tp := startProxyAt(t, env, 4, 2, func(c *mysqlproxy.Config) { c.Targets = targets })
	root := openRoot(t, env)
	var tcp, unix int
	if err := root.QueryRow(`SELECT COALESCE(SUM(HOST <> 'localhost'), 0), COALESCE(SUM(HOST = 'localhost'), 0)
		FROM information_schema.PROCESSLIST WHERE USER = ?`, env.user).Scan(&tcp, &unix); err != nil {
		t.Fatal(err)
	}
	if tcp != 3 || unix != 1 {
		t.Fatalf("connections per target: %d over TCP, %d over the socket; want 3 and 1", tcp, unix)
	}
	db := tp.open(t, "")
	for i := 0; i < 20; i++ {
		var one int
		if err := db.QueryRow("SELECT 1").Scan(&one); err != nil {
			t.Fatal(err)
		}
	}
}
