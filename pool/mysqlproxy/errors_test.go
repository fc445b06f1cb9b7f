package mysqlproxy

import (
	"strings"
	"testing"

	"github.com/scalestack/scalestack/mysqlwire"
)

// TestProxyErrorsTable checks each of the proxy's own errors: a code, a
// well-formed SQLSTATE that agrees with the server's for a server code,
// and a message that formats without leftover verbs.
func TestProxyErrorsTable(t *testing.T) {
	args := map[proxyErr][]any{
		errAccessDenied:     {"app", "127.0.0.1", "YES"},
		errNoSuchThread:     {uint64(7)},
		errUnknownStatement: {uint32(3), "mysqld_stmt_execute"},
		errNoCursor:         {uint32(3)},
		errPrivilegeNeeded:  {privilegeMessages[privSuper]},
		errUnknownDatabase:  {"shop"},
		errTenantMaxClients: {"shop"},
		errTenantMaxQPS:     {"shop", int64(200)},
		errTenantMaxQueued:  {"shop", int64(10)},
		errStatementTimeCap: {"0.5", "shop"},
		errIdentityUnusable: {"app", "no such account"},
	}
	for e := proxyErr(0); e < numProxyErrs; e++ {
		pe := proxyErrors[e]
		if pe.code == 0 || len(pe.state) != 5 {
			t.Errorf("error %d: code %d, SQLSTATE %q", e, pe.code, pe.state)
			continue
		}
		if pe.code < 9000 && pe.code.SQLState() != pe.state && pe.code.SQLState() != "HY000" {
			t.Errorf("error %d (%d): SQLSTATE %s, the server's is %s", e, pe.code, pe.state, pe.code.SQLState())
		}
		msg := e.message(args[e]...)
		if msg == "" || strings.Contains(msg, "%!") || strings.Contains(msg, "%d") || strings.Contains(msg, "%s") {
			t.Errorf("error %d (%d): message %q", e, pe.code, msg)
		}
		pkt, next := e.appendERR(nil, 4, args[e]...)
		p, ok, err := mysqlwire.ReadPacket(pkt, 0)
		if !ok || err != nil || next != 5 {
			t.Fatalf("error %d: framing %v %v", e, ok, err)
		}
		got, err := mysqlwire.ParseERR(p.Payload)
		if err != nil || got.Code != pe.code || string(got.SQLState) != pe.state || string(got.Message) != msg {
			t.Errorf("error %d: packet says %+v (%v)", e, got, err)
		}
	}
}
