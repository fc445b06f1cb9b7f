package mysqlwire_test

import (
	"fmt"

	"github.com/scalestack/scalestack/mysqlwire"
)

// A proxy relays a backend's response to the client packet by packet and
// uses the tracker to learn when the backend connection is free again and
// whether it must stay pinned (open transaction, cursor, LOCAL INFILE).
func ExampleResponseTracker() {
	caps := mysqlwire.ClientProtocol41 | mysqlwire.ClientTransactions | mysqlwire.ClientDeprecateEOF
	// What the backend sent for "SELECT 1" (normally read from a socket
	// into the reactor's buffer).
	var backend []byte
	seq := uint8(1)
	backend, seq = mysqlwire.AppendPacket(backend, seq, mysqlwire.AppendLenEncInt(nil, 1))
	backend, seq = mysqlwire.AppendPacket(backend, seq, mysqlwire.AppendColumnDefinition(nil, mysqlwire.ColumnDefinition{Name: []byte("1"), Type: mysqlwire.TypeLongLong}))
	backend, seq = mysqlwire.AppendPacket(backend, seq, mysqlwire.AppendTextRow(nil, [][]byte{[]byte("1")}))
	backend, _ = mysqlwire.AppendResultSetEnd(backend, seq, caps, 0, mysqlwire.StatusAutocommit|mysqlwire.StatusInTrans)

	var tr mysqlwire.ResponseTracker
	if _, err := tr.Start(mysqlwire.ComQuery, caps); err != nil {
		panic(err)
	}
	buf := backend
	for {
		p, ok, err := mysqlwire.ReadPacket(buf, 1<<24-1)
		if err != nil {
			panic(err) // the proxy would send the client an ERR and close
		}
		if !ok {
			break // wait for the reactor to deliver more bytes
		}
		// ... forward buf[:p.Size] to the client here ...
		progress, err := tr.Feed(p.Payload)
		if err != nil {
			panic(err)
		}
		buf = buf[p.Size:]
		if progress == mysqlwire.Complete {
			break
		}
	}
	fmt.Println("done:", tr.Done(), "rows:", tr.Rows(), "keep pinned:", tr.InTransaction() || tr.CursorOpen())
	// Output: done: true rows: 1 keep pinned: true
}

// Answering a client with an error the server would send; an empty
// SQLSTATE takes the server's for the code.
func ExampleAppendERR() {
	out, next := mysqlwire.AppendERR(nil, 1, mysqlwire.ErServerShutdown, "", "Server shutdown in progress")
	e, _ := mysqlwire.ParseERR(out[mysqlwire.HeaderSize:])
	fmt.Println(e.Code, string(e.SQLState), next)
	// Output: 1053 08S01 2
}

// Mapping a client's statement id to the backend's in place.
func ExampleRewriteStatementID() {
	req, _ := mysqlwire.AppendStmtClose(nil, 0, 7)
	payload := req[mysqlwire.HeaderSize:]
	old, _ := mysqlwire.RewriteStatementID(payload, 1042)
	now, _ := mysqlwire.StatementID(payload)
	fmt.Println(old, "->", now)
	// Output: 7 -> 1042
}
