package e2e

import (
	"context"
	"testing"
	"time"
)

// TestCommentOnlyStatements: the server answers text that is only comments
// with OK and white space alone with 1065 (42000); the proxy must answer
// each the same way.
func TestCommentOnlyStatements(t *testing.T) {
	p := startProxy(t, proxyOptions{backendConns: 1, loops: 1})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := openProxyDB(t, p.addr, dataSchema, nil)
	for _, q := range []string{"/* x */", "-- x", "# x", "-- x\n", "/*! */", "/* x */;", " ", "\t\n", ";"} {
		_, direct := rootDB.ExecContext(ctx, q)
		_, proxied := db.ExecContext(ctx, q)
		if errorCode(direct) != errorCode(proxied) {
			t.Errorf("%q: direct %v, through the proxy %v", q, direct, proxied)
		}
	}
	p.requireAlive(t)
}

// errorCode is the MySQL error code of err, 0 for nil, -1 for any other error.
func errorCode(err error) int {
	if err == nil {
		return 0
	}
	if me, ok := asMySQLError(err); ok {
		return int(me.Number)
	}
	return -1
}
