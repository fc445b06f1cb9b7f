package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"

	"github.com/go-sql-driver/mysql"
)

// TestPipelining runs many clients of two accounts in four schemas through
// N=2 backends with --pipeline-depth 8: every answer is its own session's
// (a token per statement, the schema's marker row), the session's schema
// seen by a statement that is never pipelined (DATABASE()) stays its own,
// and /metrics shows commands pipelined at depths above 1.
func TestPipelining(t *testing.T) {
	admin := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	p := startProxy(t, proxyOptions{backendConns: 2, loops: 1,
		extraArgs: []string{"--admin", admin, "--pipeline-depth", "8"}})
	const clients, rounds = 32, 40
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := 0; c < clients; c++ {
		schema := isoSchema(c % isoSchemas)
		user, password := clientUser, clientPassword
		if c%2 == 1 {
			user, password = otherUser, otherPassword
		}
		db := openProxyDB(t, p.addr, schema, func(cfg *mysql.Config) { cfg.User, cfg.Passwd = user, password })
		db.SetMaxOpenConns(1)
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			errs <- pipelineClient(db, c, rounds, schema)
		}(c)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	pipelined := scrapeMetric(t, admin, "scalestack_mysqlproxy_pipelined_commands_total")
	count := scrapeMetric(t, admin, "scalestack_mysqlproxy_pipeline_depth_count")
	sum := scrapeMetric(t, admin, "scalestack_mysqlproxy_pipeline_depth_sum")
	if pipelined == 0 || count != pipelined || sum < 2*count {
		t.Fatalf("pipelined %v, depth histogram count %v sum %v: want commands pipelined at depth > 1", pipelined, count, sum)
	}
	t.Logf("pipelined %v of %d statements, mean depth %.2f", pipelined, clients*rounds, sum/count)
}

// pipelineClient runs rounds of a pipeline-safe SELECT (text, or prepared
// for odd clients) whose answer names the session's schema and carries a
// token of the statement's own, and every tenth round a SELECT
// DATABASE(), which is never pipelined.
func pipelineClient(db *sql.DB, c, rounds int, schema string) error {
	ctx := context.Background()
	for r := 0; r < rounds; r++ {
		token := strconv.Itoa(c*1000 + r)
		var got, tok string
		var err error
		if c%2 == 1 {
			err = db.QueryRowContext(ctx, "SELECT schema_name, ? FROM marker", token).Scan(&got, &tok)
		} else {
			err = db.QueryRowContext(ctx, "SELECT schema_name, '"+token+"' FROM marker").Scan(&got, &tok)
		}
		if err != nil {
			return fmt.Errorf("client %d round %d: %w", c, r, err)
		}
		if got != schema || tok != token {
			return fmt.Errorf("client %d round %d: got (%s, %s), want (%s, %s): another session's answer", c, r, got, tok, schema, token)
		}
		if r%10 == 9 {
			var cur string
			if err := db.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&cur); err != nil || cur != schema {
				return fmt.Errorf("client %d round %d: DATABASE() = %q, %v; want %s", c, r, cur, err, schema)
			}
		}
	}
	return nil
}
