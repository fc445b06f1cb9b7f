package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/go-sql-driver/mysql"
)

// TestPipelining runs many clients through N=2 backends with
// --pipeline-depth 8: every answer is its own session's (a token per
// statement, the schema's marker row), the session's schema and account
// seen by statements that are never pipelined (DATABASE(),
// CURRENT_USER()) stay its own, and /metrics shows commands pipelined at
// depths above 1. Two setups: two users-file accounts in four schemas,
// all run as the service account; and two server accounts each run as
// itself (--backend-identity account), whose backends never carry the
// other's statements.
func TestPipelining(t *testing.T) {
	type account struct{ user, password, server string }
	for _, tc := range []struct {
		name     string
		args     []string
		accounts []account
		schemas  int
	}{
		{"service identity", nil, []account{{clientUser, clientPassword, srv.serviceUser}, {otherUser, otherPassword, srv.serviceUser}}, isoSchemas},
		{"account identity", []string{"--backend-identity", "account"},
			[]account{{readerUser, readerPassword, readerUser}, {writerUser, writerPassword, writerUser}}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			admin := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
			p := startProxy(t, proxyOptions{backendConns: 2, loops: 1,
				extraArgs: append([]string{"--admin", admin, "--pipeline-depth", "8"}, tc.args...)})
			const clients, rounds = 32, 40
			var wg sync.WaitGroup
			errs := make(chan error, clients)
			for c := 0; c < clients; c++ {
				schema := isoSchema(c % tc.schemas)
				a := tc.accounts[c%2]
				db := openProxyDB(t, p.addr, schema, func(cfg *mysql.Config) { cfg.User, cfg.Passwd = a.user, a.password })
				db.SetMaxOpenConns(1)
				wg.Add(1)
				go func(c int) {
					defer wg.Done()
					errs <- pipelineClient(db, c, rounds, schema, a.server)
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
		})
	}
}

// pipelineClient runs rounds of a pipeline-safe SELECT (text, or prepared
// for odd clients) whose answer names the session's schema and carries a
// token of the statement's own, and every tenth round a SELECT
// DATABASE(), CURRENT_USER(), which is never pipelined.
func pipelineClient(db *sql.DB, c, rounds int, schema, server string) error {
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
			var cur, user string
			err := db.QueryRowContext(ctx, "SELECT DATABASE(), CURRENT_USER()").Scan(&cur, &user)
			if err != nil || cur != schema || !strings.HasPrefix(user, server+"@") {
				return fmt.Errorf("client %d round %d: DATABASE(), CURRENT_USER() = %q, %q, %v; want %s, %s@...", c, r, cur, user, err, schema, server)
			}
		}
	}
	return nil
}
