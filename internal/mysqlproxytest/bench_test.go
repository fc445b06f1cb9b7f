package mysqlproxytest

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
	r, later := preparedSession(b)
	buf := make([]byte, 1<<16)

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
