package pool

import (
	"testing"

	"github.com/scalestack/scalestack/mysqlwire"
)

// BenchmarkStatementRoundTrip measures one statement through the proxy (one
// loop, one backend, a private MariaDB) as sysbench drives it: a prepared
// point lookup, a text query, and a 100-row result relayed packet by packet.
// ns/op includes MariaDB and the loopback round trips; allocs/op covers the
// proxy and this client together and must stay at 0 (the client reuses its
// buffers), which is the per-statement allocation budget of the data path.
//
//	go test ./pool -run '^$' -bench StatementRoundTrip -benchmem
func BenchmarkStatementRoundTrip(b *testing.B) {
	tp := startProxy(b, 1, 1, nil)
	r := dialRaw(b, tp.addr)
	if p := r.login(testUser, testPassword, mysqlwire.AuthNativePassword, 0); !mysqlwire.IsOK(p) {
		b.Fatalf("login: %x", p)
	}
	resp := r.command(append([]byte{byte(mysqlwire.ComStmtPrepare)}, "SELECT ? + 1"...))
	id := getUint32(resp[0][1:])
	first := []byte{byte(mysqlwire.ComStmtExecute), 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 8, 0, 41, 0, 0, 0, 0, 0, 0, 0}
	putUint32(first[1:], id)
	later := []byte{byte(mysqlwire.ComStmtExecute), 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 41, 0, 0, 0, 0, 0, 0, 0}
	putUint32(later[1:], id)
	firstPkt, _ := mysqlwire.AppendPacket(nil, 0, first)
	buf := make([]byte, 1<<16)
	leanRoundTrip(b, r, firstPkt, mysqlwire.ComStmtExecute, buf)

	cases := []struct {
		name string
		cmd  mysqlwire.Command
		pkt  []byte
	}{
		{"execute", mysqlwire.ComStmtExecute, later},
		{"query", mysqlwire.ComQuery, append([]byte{byte(mysqlwire.ComQuery)}, "SELECT 1"...)},
		{"rows100", mysqlwire.ComQuery, append([]byte{byte(mysqlwire.ComQuery)},
			"WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM r WHERE n<100) SELECT n, 'abcdefghijklmnopqrstuvwxyz' FROM r"...)},
	}
	for _, tc := range cases {
		pkt, _ := mysqlwire.AppendPacket(nil, 0, tc.pkt)
		b.Run(tc.name, func(b *testing.B) {
			for range 50 { // warm buffers and maps
				leanRoundTrip(b, r, pkt, tc.cmd, buf)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				leanRoundTrip(b, r, pkt, tc.cmd, buf)
			}
		})
	}
}
