package e2e

import (
	"context"
	"database/sql"
	"strings"
	"testing"
)

// TestKillOwnSession (issue 16, items 7 and 9): KILL QUERY of the session's
// own id (by number and as CONNECTION_ID()) answers ERROR 1317 and the
// session goes on; KILL CONNECTION_ID() answers ERROR 1927 and closes it;
// both as direct.
func TestKillOwnSession(t *testing.T) {
	p := startProxy(t, proxyOptions{backendConns: 1, loops: 1})
	compareDriver(t, p, driverOptions{db: dataSchema}, func(ctx context.Context, c *sql.Conn) []string {
		var id string
		if err := c.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
			return []string{"SELECT CONNECTION_ID(): " + errAnswer(err)}
		}
		return []string{
			strings.ReplaceAll(execAnswer(ctx, c, "KILL QUERY "+id), id, "<own id>"),
			queryAnswer(ctx, c, "SELECT 'after KILL QUERY of its own id'"),
			execAnswer(ctx, c, "KILL QUERY CONNECTION_ID()"),
			queryAnswer(ctx, c, "SELECT 'after KILL QUERY CONNECTION_ID()'"),
			execAnswer(ctx, c, "KILL CONNECTION_ID()"),
			queryAnswer(ctx, c, "SELECT 'after KILL CONNECTION_ID()'"),
		}
	})
	p.requireAlive(t)
}
