package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	"strconv"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Payloads of 16 MiB and more travel as several packets: 0xFFFFFF-byte ones
// and a final shorter one. A proxy that writes such a payload behind one
// header (holding only the low 24 bits of its length) makes the server run
// the payload's tail as commands of the client's choosing on a pooled
// connection. These tests send such payloads the way drivers do, and the way
// an attacker would.

const (
	comStmtSendLongData = 0x18
	blobsTable          = dataSchema + ".blobs"
)

// TestLongPacketsThroughDriver stores a 21 MiB placeholder value (which
// go-sql-driver sends as COM_STMT_SEND_LONG_DATA with maxAllowedPacket at
// 40 MiB) and a 20 MiB text statement through the proxy, and reads both back
// straight from the server, byte for byte.
func TestLongPacketsThroughDriver(t *testing.T) {
	p := startProxy(t, proxyOptions{backendConns: 2, loops: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, q := range []string{
		"CREATE TABLE IF NOT EXISTS " + blobsTable + " (id INT PRIMARY KEY, v LONGBLOB NOT NULL) ENGINE=InnoDB",
		"DELETE FROM " + blobsTable,
	} {
		if _, err := rootDB.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db := openProxyDB(t, p.addr, dataSchema, func(c *mysql.Config) { c.MaxAllowedPacket = 40 << 20 })
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))

	value := make([]byte, 21<<20)
	rng.Read(value) // every byte value, NULs and quote characters included
	if _, err := db.ExecContext(ctx, "INSERT INTO "+blobsTable+" VALUES (1, ?)", value); err != nil {
		t.Fatalf("21 MiB placeholder value (long data) through the proxy: %v", err)
	}

	text := make([]byte, 20<<20)
	for i := range text {
		text[i] = 'a' + byte(rng.Intn(26))
	}
	stmt := "INSERT INTO " + blobsTable + " VALUES (2, '" + string(text) + "')"
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		t.Fatalf("%d-byte text statement through the proxy: %v", len(stmt), err)
	}

	for _, tc := range []struct {
		id   int
		want []byte
	}{{1, value}, {2, text}} {
		var got []byte
		if err := rootDB.QueryRowContext(ctx, "SELECT v FROM "+blobsTable+" WHERE id = ?", tc.id).Scan(&got); err != nil {
			t.Fatalf("read row %d back from the server: %v", tc.id, err)
		}
		if !bytes.Equal(got, tc.want) {
			t.Errorf("row %d: the server stored %d bytes that differ from the %d sent", tc.id, len(got), len(tc.want))
		}
	}
	// The same connections go on serving ordinary statements.
	var one int
	if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1 after the long packets: %d, %v", one, err)
	}
	if _, err := rootDB.ExecContext(ctx, "DELETE FROM "+blobsTable); err != nil {
		t.Fatal(err)
	}
	p.requireAlive(t)
}

// TestLongDataSmuggling sends 2^24+7 bytes of long data whose tail is framed
// like two commands (SET sql_select_limit=1, then a filler), executes the
// statement, and then checks 40 later sessions of another account on the
// same two backends: each must see the server's default session state.
func TestLongDataSmuggling(t *testing.T) {
	p := startProxy(t, proxyOptions{backendConns: 2, loops: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	c, err := dialRaw(p.addr, clientUser, clientPassword, rawOptions{db: dataSchema})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.setDeadline(time.Minute)
	id, params, err := c.prepare("SELECT LENGTH(?)")
	if err != nil || params != 1 {
		t.Fatalf("prepare: %d params, %v", params, err)
	}

	// The long data packet's payload: command, statement id, parameter 0,
	// then data. Its length is 2^24+7, so a writer keeping only the low 24
	// bits announces 7 bytes (the head alone) and the data that follows is
	// read by the server as packets: the smuggled SET, then a DO whose
	// comment fills the rest exactly.
	data := smugglingData(1 << 24)
	payload := make([]byte, 0, 7+len(data))
	payload = append(payload, comStmtSendLongData)
	payload = binary.LittleEndian.AppendUint32(payload, id)
	payload = append(payload, 0, 0)
	payload = append(payload, data...)
	if len(payload) != 1<<24+7 {
		t.Fatalf("payload is %d bytes, want 2^24+7", len(payload))
	}
	if err := c.writeSplit(payload); err != nil {
		t.Fatal(err)
	}
	// EXECUTE: no cursor, one iteration, no NULLs, types bound (BLOB); the
	// value itself came as long data.
	exec := []byte{comStmtExecute}
	exec = binary.LittleEndian.AppendUint32(exec, id)
	exec = append(exec, 0, 1, 0, 0, 0, 0, 1, 0xfc, 0)
	c.seq = 0
	if err := c.writePacket(exec); err != nil {
		t.Fatal(err)
	}
	n, err := c.readBinaryInt()
	if err != nil {
		t.Fatalf("EXECUTE after 2^24+7 bytes of long data: %v", err)
	}
	if n != int64(len(data)) {
		t.Fatalf("LENGTH(?) of the long data = %d, want %d", n, len(data))
	}
	if err := c.expectQuiet(300 * time.Millisecond); err != nil {
		t.Fatalf("after the EXECUTE's result: %v", err)
	}

	var defaultLimit string
	if err := rootDB.QueryRowContext(ctx, "SELECT @@GLOBAL.sql_select_limit").Scan(&defaultLimit); err != nil {
		t.Fatal(err)
	}
	other := openOtherDB(t, p.addr, dataSchema)
	other.SetMaxOpenConns(40)
	for i := 0; i < 40; i++ {
		conn, err := other.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var limit string
		if err := conn.QueryRowContext(ctx, "SELECT @@sql_select_limit").Scan(&limit); err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		rows := countRows(ctx, t, conn, "SELECT id FROM "+dataSchema+".big LIMIT 100")
		conn.Close()
		if limit != defaultLimit || rows != 100 {
			t.Fatalf("session %d of %s: sql_select_limit %s (server default %s), %d of 100 rows: "+
				"another client's smuggled SET reached it", i, otherUser, limit, defaultLimit, rows)
		}
	}
	p.requireAlive(t)
	p.waitBackendCount(t, 2, 10*time.Second)
}

// smugglingData returns size bytes that, read as packets, are a COM_QUERY
// "SET sql_select_limit=1" followed by a COM_QUERY "DO 1 /* ... */" that
// ends exactly at the end.
func smugglingData(size int) []byte {
	set := append([]byte{comQuery}, "SET sql_select_limit=1"...)
	out := make([]byte, 0, size)
	out = append(out, byte(len(set)), byte(len(set)>>8), byte(len(set)>>16), 0)
	out = append(out, set...)
	fill := size - len(out) - 4
	out = append(out, byte(fill), byte(fill>>8), byte(fill>>16), 0)
	out = append(out, comQuery)
	out = append(out, "DO 1 /*"...)
	for len(out) < size-2 {
		out = append(out, 'x')
	}
	return append(out, "*/"...)
}

// writeSplit writes one logical payload framed as a driver must: packets of
// 0xFFFFFF bytes followed by a shorter (possibly empty) one, with
// consecutive sequence ids from 0.
func (c *rawConn) writeSplit(payload []byte) error {
	c.seq = 0
	for {
		chunk := payload[:min(len(payload), maxPayload)]
		if err := c.writePacket(chunk); err != nil {
			return err
		}
		payload = payload[len(chunk):]
		if len(chunk) < maxPayload {
			return nil
		}
	}
}

// readBinaryInt reads a binary-protocol result set of one integer column
// and one row, and returns the value.
func (c *rawConn) readBinaryInt() (int64, error) {
	p, err := c.readPacket()
	if err != nil {
		return 0, err
	}
	switch {
	case len(p) > 0 && p[0] == 0xff:
		return 0, parseErr(p)
	case len(p) != 1 || p[0] != 1:
		return 0, fmt.Errorf("protocol: want a one-column result set, got %x", p[:min(len(p), 16)])
	}
	if _, err := c.readPacket(); err != nil { // column definition
		return 0, err
	}
	if p, err = c.readPacket(); err != nil || !isEOF(p) {
		return 0, fmt.Errorf("protocol: want EOF after the column definition: %x %v", p, err)
	}
	var v int64
	rows := 0
	for {
		p, err := c.readPacket()
		if err != nil {
			return 0, err
		}
		if isEOF(p) {
			break
		}
		// 0x00, a one-byte NULL bitmap (offset 2), then an INT (4 bytes) or
		// a BIGINT (8 bytes).
		switch {
		case len(p) == 6 && p[0] == 0:
			v = int64(int32(binary.LittleEndian.Uint32(p[2:])))
		case len(p) == 10 && p[0] == 0:
			v = int64(binary.LittleEndian.Uint64(p[2:]))
		default:
			return 0, fmt.Errorf("protocol: want one binary integer row, got %x", p[:min(len(p), 16)])
		}
		rows++
	}
	if rows != 1 {
		return 0, errors.New("protocol: want exactly one row, got " + strconv.Itoa(rows))
	}
	return v, nil
}

func openOtherDB(t testing.TB, addr, db string) *sql.DB {
	return openProxyDB(t, addr, db, func(c *mysql.Config) { c.User, c.Passwd = otherUser, otherPassword })
}

func countRows(ctx context.Context, t testing.TB, conn *sql.Conn, q string) int {
	t.Helper()
	rows, err := conn.QueryContext(ctx, q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// TestLongDataBound: the proxy holds long data until a backend runs the
// EXECUTE, so a session may buffer at most 64 MiB of it. Beyond that the
// EXECUTE fails as the server's would (1105) and the session goes on.
func TestLongDataBound(t *testing.T) {
	p := startProxy(t, proxyOptions{backendConns: 1, loops: 1})
	c, err := dialRaw(p.addr, clientUser, clientPassword, rawOptions{db: dataSchema})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.setDeadline(time.Minute)
	id, _, err := c.prepare("SELECT LENGTH(?)")
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte{'z'}, 40<<20)
	for i := 0; i < 2; i++ { // 80 MiB in all
		payload := append([]byte{comStmtSendLongData}, binary.LittleEndian.AppendUint32(nil, id)...)
		payload = append(append(payload, 0, 0), chunk...)
		if err := c.writeSplit(payload); err != nil {
			t.Fatal(err)
		}
	}
	exec := binary.LittleEndian.AppendUint32([]byte{comStmtExecute}, id)
	exec = append(exec, 0, 1, 0, 0, 0, 0, 1, 0xfc, 0)
	c.seq = 0
	if err := c.writePacket(exec); err != nil {
		t.Fatal(err)
	}
	_, err = c.readBinaryInt()
	var se *serverError
	if !errors.As(err, &se) || se.Code != 1105 || se.State != "HY000" {
		t.Fatalf("EXECUTE after 80 MiB of long data: %v, want ERROR 1105 (HY000)", err)
	}
	if v, err := c.scalar("SELECT 7"); err != nil || v != "7" {
		t.Fatalf("the session after the refused EXECUTE: %q, %v", v, err)
	}
	p.requireAlive(t)
}
