// Command capture records real server packets from a MariaDB/MySQL server
// into mysqlwire/testdata for the package's golden tests. It speaks the
// protocol with mysqlwire itself, so a capture that completes is also an
// end-to-end check of the handshake, auth and ResponseTracker against a real
// server. It is a development tool, not part of the proxy.
//
// Usage (see mysqlwire/testdata/README.md for the exact invocation):
//
//	go run ./mysqlwire/internal/capture -addr 127.0.0.1:13406 -user wire -password wirepw -out mysqlwire/testdata
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/scalestack/scalestack/mysqlwire"
)

var (
	addr     = flag.String("addr", "127.0.0.1:13406", "server address")
	user     = flag.String("user", "wire", "user with ALL privileges on the wiretest schema")
	password = flag.String("password", "wirepw", "password of -user")
	out      = flag.String("out", "mysqlwire/testdata", "output directory")
	cli      = flag.String("cli", "mariadb", "command-line client whose handshake response is recorded (empty to skip)")
)

const baseCaps = mysqlwire.ClientLongPassword | mysqlwire.ClientFoundRows | mysqlwire.ClientLongFlag |
	mysqlwire.ClientConnectWithDB | mysqlwire.ClientLocalFiles | mysqlwire.ClientProtocol41 |
	mysqlwire.ClientTransactions | mysqlwire.ClientSecureConnection | mysqlwire.ClientMultiStatements |
	mysqlwire.ClientMultiResults | mysqlwire.ClientPSMultiResults | mysqlwire.ClientPluginAuth |
	mysqlwire.ClientConnectAttrs | mysqlwire.ClientPluginAuthLenEncClientData | mysqlwire.ClientSessionTrack

type conn struct {
	nc   net.Conn
	buf  []byte
	caps mysqlwire.Capabilities
	// nonce is kept for COM_CHANGE_USER, which reuses the greeting's nonce.
	nonce []byte
}

func (c *conn) readPacket() (mysqlwire.Packet, []byte, error) {
	for {
		p, ok, err := mysqlwire.ReadPacket(c.buf, 0)
		if err != nil {
			return p, nil, err
		}
		if ok {
			raw := append([]byte(nil), c.buf[:p.Size]...)
			payload := raw[mysqlwire.HeaderSize:]
			c.buf = c.buf[p.Size:]
			return mysqlwire.Packet{Payload: payload, Seq: p.Seq, Size: p.Size}, raw, nil
		}
		tmp := make([]byte, 64<<10)
		if err := c.nc.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			return p, nil, err
		}
		n, err := c.nc.Read(tmp)
		if err != nil {
			return p, nil, fmt.Errorf("read: %w", err)
		}
		c.buf = append(c.buf, tmp[:n]...)
	}
}

func save(name string, data []byte) {
	path := filepath.Join(*out, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		log.Fatalf("write %s: %v", path, err)
	}
	log.Printf("wrote %s (%d bytes)", path, len(data))
}

// dial connects and authenticates. greetingName/okName, when not empty,
// record the greeting and the final auth packet. A wrong password returns
// the server's ERR packet bytes as an error value's payload.
func dial(caps mysqlwire.Capabilities, pw, db string, greetingName, authName string) (*conn, []byte, error) {
	nc, err := net.DialTimeout("tcp", *addr, 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	c := &conn{nc: nc}
	g, raw, err := c.readPacket()
	if err != nil {
		return nil, nil, fmt.Errorf("greeting: %w", err)
	}
	if greetingName != "" {
		save(greetingName, raw)
	}
	hs, err := mysqlwire.ParseHandshake(g.Payload)
	if err != nil {
		return nil, nil, err
	}
	// MariaDB's extended bits are only present on both sides when both
	// cleared CLIENT_MYSQL, so a plain intersection is the negotiated set.
	c.caps = caps & hs.Capabilities
	if db != "" {
		c.caps |= mysqlwire.ClientConnectWithDB
	} else {
		c.caps &^= mysqlwire.ClientConnectWithDB
	}
	c.nonce = hs.AuthPluginData
	var attrs []byte
	attrs = mysqlwire.AppendAttr(attrs, "_client_name", "scalestack-capture")
	attrs = mysqlwire.AppendAttr(attrs, "_pid", fmt.Sprint(os.Getpid()))
	resp := mysqlwire.HandshakeResponse{
		Capabilities:  c.caps,
		MaxPacketSize: 1 << 24,
		CharacterSet:  45, // utf8mb4_general_ci
		Username:      []byte(*user),
		AuthResponse:  mysqlwire.NativePasswordScramble([]byte(pw), hs.AuthPluginData),
		Database:      []byte(db),
		AuthPlugin:    []byte(mysqlwire.AuthNativePassword),
		Attrs:         attrs,
	}
	wire, _ := mysqlwire.AppendHandshakeResponse(nil, g.Seq+1, resp)
	if _, err := nc.Write(wire); err != nil {
		return nil, nil, err
	}
	var tr mysqlwire.ResponseTracker
	tr.StartAuth(c.caps)
	var authRaw []byte
	for {
		p, raw, err := c.readPacket()
		if err != nil {
			return nil, nil, fmt.Errorf("auth: %w", err)
		}
		authRaw = append(authRaw, raw...)
		prog, err := tr.Feed(p.Payload)
		if err != nil {
			return nil, nil, err
		}
		if prog == mysqlwire.ClientTurn {
			sw, err := mysqlwire.ParseAuthSwitchRequest(p.Payload)
			if err != nil || string(sw.PluginName) != mysqlwire.AuthNativePassword {
				return nil, nil, fmt.Errorf("unsupported auth step %q: %v", sw.PluginName, err)
			}
			wire, _ := mysqlwire.AppendAuthSwitchResponse(nil, p.Seq+1, mysqlwire.NativePasswordScramble([]byte(pw), sw.PluginData))
			if _, err := nc.Write(wire); err != nil {
				return nil, nil, err
			}
			continue
		}
		if prog == mysqlwire.Complete {
			break
		}
	}
	if authName != "" {
		save(authName, authRaw)
	}
	if code, _, failed := tr.Err(); failed {
		nc.Close()
		return nil, authRaw, fmt.Errorf("server refused login: error %d", code)
	}
	return c, authRaw, nil
}

// exchange sends one command packet and records the whole response. For a
// LOCAL INFILE request it sends infile as the file's contents.
func (c *conn) exchange(name string, payload []byte, infile []byte) ([]byte, *mysqlwire.ResponseTracker) {
	wire, _ := mysqlwire.AppendPacket(nil, 0, payload)
	if _, err := c.nc.Write(wire); err != nil {
		log.Fatalf("%s: write: %v", name, err)
	}
	tr := new(mysqlwire.ResponseTracker)
	prog, err := tr.Start(mysqlwire.Command(payload[0]), c.caps)
	if err != nil {
		log.Fatalf("%s: %v", name, err)
	}
	var rec []byte
	for prog != mysqlwire.Complete {
		p, raw, err := c.readPacket()
		if err != nil {
			log.Fatalf("%s: %v (tracker waiting after %d bytes)", name, err, len(rec))
		}
		rec = append(rec, raw...)
		prog, err = tr.Feed(p.Payload)
		if err != nil {
			log.Fatalf("%s: tracker: %v", name, err)
		}
		if prog == mysqlwire.ClientTurn && tr.LastKind() == mysqlwire.KindAuthSwitch {
			sw, err := mysqlwire.ParseAuthSwitchRequest(p.Payload)
			if err != nil {
				log.Fatalf("%s: %v", name, err)
			}
			w, _ := mysqlwire.AppendAuthSwitchResponse(nil, p.Seq+1, mysqlwire.NativePasswordScramble([]byte(*password), sw.PluginData))
			if _, err := c.nc.Write(w); err != nil {
				log.Fatalf("%s: auth switch write: %v", name, err)
			}
		}
		if prog == mysqlwire.ClientTurn && tr.LocalInfile() {
			seq := p.Seq + 1
			var w []byte
			w, seq = mysqlwire.AppendPacket(w, seq, infile)
			w, _ = mysqlwire.AppendPacket(w, seq, nil)
			if _, err := c.nc.Write(w); err != nil {
				log.Fatalf("%s: infile write: %v", name, err)
			}
		}
	}
	if name != "" {
		save(name, rec)
	}
	return rec, tr
}

func (c *conn) mustQuery(sql string) {
	_, tr := c.exchange("", append([]byte{byte(mysqlwire.ComQuery)}, sql...), nil)
	if code, _, failed := tr.Err(); failed {
		log.Fatalf("%q failed with %d", sql, code)
	}
}

func query(sql string) []byte { return append([]byte{byte(mysqlwire.ComQuery)}, sql...) }

const setup = `DROP TABLE IF EXISTS types, people, loaded;
CREATE TABLE types (id INT PRIMARY KEY, ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, mi MEDIUMINT,
  i INT, bi BIGINT, bu BIGINT UNSIGNED, f FLOAT, d DOUBLE, dc DECIMAL(10,3), dt DATE, dtm DATETIME(6),
  ts TIMESTAMP(3) NULL, tm TIME(6), yr YEAR, vc VARCHAR(20), ch CHAR(5), bl BLOB, tx TEXT, js JSON,
  bt BIT(10), en ENUM('a','b'), st SET('x','y'), geo POINT);
INSERT INTO types VALUES (1, -128, 255, -32768, -8388608, -2147483648, -9223372036854775808,
  18446744073709551615, 1.5, -2.25, -1234567.891, '2024-02-29', '2024-02-29 13:14:15.123456',
  '2001-02-03 04:05:06.789', '-838:59:58.5', 2155, 'varchar', 'ch', x'00ff10', 'text', '{"a": 1}',
  b'1010101010', 'b', 'x,y', ST_GeomFromText('POINT(1 2)'));
INSERT INTO types (id, dt, dtm, tm) VALUES (2, '1000-01-01', '2020-01-01 00:00:00', '00:00:00');
CREATE TABLE people (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(30), age INT);
INSERT INTO people (name, age) VALUES ('ada', 36), ('bob', NULL), ('cy', 7);
CREATE TABLE loaded (a INT, b VARCHAR(10));
DROP PROCEDURE IF EXISTS two_sets;
CREATE PROCEDURE two_sets() BEGIN SELECT id, name FROM people ORDER BY id; SELECT COUNT(*) AS n FROM people; END`

func main() {
	flag.Parse()
	log.SetFlags(0)
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}

	// Wrong password: ERR 1045.
	if _, errRaw, err := dial(baseCaps, "not-the-password", "", "", ""); err == nil {
		log.Fatal("login with a wrong password succeeded")
	} else {
		save("err_1045.bin", errRaw)
	}

	classic, _, err := dial(baseCaps, *password, "", "greeting.bin", "auth_ok.bin")
	if err != nil {
		log.Fatal(err)
	}
	classic.mustQuery("CREATE DATABASE IF NOT EXISTS wiretest")
	classic.mustQuery("USE wiretest")
	classic.mustQuery(setup)
	classic.mustQuery("SET SESSION session_track_state_change = ON, session_track_system_variables = 'autocommit,time_zone', session_track_transaction_info = 'CHARACTERISTICS'")

	classic.exchange("ok_session_track.bin", query("SET autocommit = 0, @user_var = 1"), nil)
	classic.exchange("ok_session_track_schema.bin", query("USE mysql"), nil)
	classic.mustQuery("USE wiretest")
	classic.mustQuery("SET autocommit = 1")
	classic.exchange("ok_session_track_txn.bin", query("START TRANSACTION READ ONLY"), nil)
	classic.mustQuery("COMMIT")
	classic.exchange("ok_insert.bin", query("INSERT INTO people (name, age) VALUES ('dee', 50), ('eve', 51)"), nil)
	classic.exchange("err_1064.bin", query("SELEC 1"), nil)
	classic.exchange("err_1146.bin", query("SELECT * FROM no_such_table"), nil)
	classic.exchange("text_classic.bin", query("SELECT id, name, age FROM people ORDER BY id"), nil)
	classic.exchange("text_empty_classic.bin", query("SELECT id FROM people WHERE id < 0"), nil)
	classic.exchange("call_classic.bin", query("CALL two_sets()"), nil)
	classic.exchange("multi_classic.bin", query("SELECT 1 AS one; UPDATE people SET age = age WHERE id = 1; SELECT 'x' AS two"), nil)
	classic.exchange("multi_err_classic.bin", query("SELECT 1; SELEC 2; SELECT 3"), nil)
	classic.exchange("prepare_classic.bin", append([]byte{byte(mysqlwire.ComStmtPrepare)}, "SELECT id, name FROM people WHERE id > ? AND name <> ?"...), nil)
	classic.exchange("local_infile.bin", query("LOAD DATA LOCAL INFILE '/nonexistent/data.csv' INTO TABLE loaded FIELDS TERMINATED BY ','"), []byte("1,one\n2,two\n"))
	classic.exchange("field_list_classic.bin", append([]byte{byte(mysqlwire.ComFieldList)}, "people\x00"...), nil)
	classic.exchange("statistics.bin", []byte{byte(mysqlwire.ComStatistics)}, nil)
	classic.exchange("ping.bin", []byte{byte(mysqlwire.ComPing)}, nil)
	classic.exchange("set_option_classic.bin", []byte{byte(mysqlwire.ComSetOption), 1, 0}, nil)
	classic.exchange("reset_connection.bin", []byte{byte(mysqlwire.ComResetConnection)}, nil)

	// Binary protocol: prepare, execute, cursor.
	_, tr := classic.exchange("prepare_types_classic.bin", append([]byte{byte(mysqlwire.ComStmtPrepare)}, "SELECT * FROM wiretest.types WHERE id >= ? ORDER BY id"...), nil)
	id, _, _, ok := tr.Prepared()
	if !ok {
		log.Fatal("prepare failed")
	}
	exec1, _ := mysqlwire.AppendStmtExecute(nil, 0, id, mysqlwire.CursorTypeNoCursor, []mysqlwire.Value{{Type: mysqlwire.TypeLongLong, Int: 1}})
	save("execute_request.bin", exec1)
	classic.exchange("execute_types_classic.bin", exec1[mysqlwire.HeaderSize:], nil)
	cur, _ := mysqlwire.AppendStmtExecute(nil, 0, id, mysqlwire.CursorTypeReadOnly, []mysqlwire.Value{{Type: mysqlwire.TypeLongLong, Int: 1}})
	classic.exchange("cursor_open_classic.bin", cur[mysqlwire.HeaderSize:], nil)
	f, _ := mysqlwire.AppendStmtFetch(nil, 0, id, 1)
	classic.exchange("cursor_fetch_more_classic.bin", f[mysqlwire.HeaderSize:], nil)
	classic.exchange("cursor_fetch_last_classic.bin", f[mysqlwire.HeaderSize:], nil)
	_, tr = classic.exchange("", append([]byte{byte(mysqlwire.ComStmtPrepare)}, "CALL wiretest.two_sets()"...), nil)
	callID, _, _, _ := tr.Prepared()
	ec, _ := mysqlwire.AppendStmtExecute(nil, 0, callID, 0, nil)
	classic.exchange("execute_call_classic.bin", ec[mysqlwire.HeaderSize:], nil)
	cu := mysqlwire.ChangeUser{
		Username:     []byte(*user),
		AuthResponse: mysqlwire.NativePasswordScramble([]byte(*password), classic.nonce),
		Database:     []byte("wiretest"),
		CharacterSet: 45,
		AuthPlugin:   []byte(mysqlwire.AuthNativePassword),
	}
	cuw, _ := mysqlwire.AppendChangeUser(nil, 0, classic.caps, cu)
	classic.exchange("change_user.bin", cuw[mysqlwire.HeaderSize:], nil)
	classic.exchange("", []byte{byte(mysqlwire.ComQuit)}, nil)
	classic.nc.Close()

	modern, _, err := dial(baseCaps|mysqlwire.ClientDeprecateEOF, *password, "wiretest", "", "")
	if err != nil {
		log.Fatal(err)
	}
	modern.exchange("text_deprecate.bin", query("SELECT id, name, age FROM people ORDER BY id"), nil)
	modern.exchange("text_empty_deprecate.bin", query("SELECT id FROM people WHERE id < 0"), nil)
	modern.exchange("call_deprecate.bin", query("CALL two_sets()"), nil)
	modern.exchange("prepare_deprecate.bin", append([]byte{byte(mysqlwire.ComStmtPrepare)}, "SELECT id, name FROM people WHERE id > ? AND name <> ?"...), nil)
	_, tr = modern.exchange("prepare_types_deprecate.bin", append([]byte{byte(mysqlwire.ComStmtPrepare)}, "SELECT * FROM types WHERE id >= ? ORDER BY id"...), nil)
	id, _, _, _ = tr.Prepared()
	e2, _ := mysqlwire.AppendStmtExecute(nil, 0, id, 0, []mysqlwire.Value{{Type: mysqlwire.TypeLongLong, Int: 1}})
	modern.exchange("execute_types_deprecate.bin", e2[mysqlwire.HeaderSize:], nil)
	c2, _ := mysqlwire.AppendStmtExecute(nil, 0, id, mysqlwire.CursorTypeReadOnly, []mysqlwire.Value{{Type: mysqlwire.TypeLongLong, Int: 1}})
	modern.exchange("cursor_open_deprecate.bin", c2[mysqlwire.HeaderSize:], nil)
	f2, _ := mysqlwire.AppendStmtFetch(nil, 0, id, 5)
	modern.exchange("cursor_fetch_last_deprecate.bin", f2[mysqlwire.HeaderSize:], nil)
	modern.exchange("field_list_deprecate.bin", append([]byte{byte(mysqlwire.ComFieldList)}, "people\x00"...), nil)
	modern.exchange("set_option_deprecate.bin", []byte{byte(mysqlwire.ComSetOption), 0, 0}, nil)
	modern.nc.Close()

	// MariaDB extended capabilities: CLIENT_MYSQL cleared, metadata caching
	// and extended type info requested.
	ext := (baseCaps | mysqlwire.ClientDeprecateEOF) &^ mysqlwire.ClientMySQL
	ext |= mysqlwire.MariaDBClientCacheMetadata | mysqlwire.MariaDBClientExtendedTypeInfo | mysqlwire.MariaDBClientStmtBulkOperations
	mdb, _, err := dial(ext, *password, "wiretest", "", "")
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("MariaDB extended session caps: %#x", uint64(mdb.caps)>>32)
	mdb.exchange("text_extended_metadata.bin", query("SELECT js, geo FROM types WHERE id = 1"), nil)
	_, tr = mdb.exchange("prepare_cache_metadata.bin", append([]byte{byte(mysqlwire.ComStmtPrepare)}, "SELECT id, name FROM people WHERE id = ?"...), nil)
	id, _, _, _ = tr.Prepared()
	e3, _ := mysqlwire.AppendStmtExecute(nil, 0, id, 0, []mysqlwire.Value{{Type: mysqlwire.TypeLongLong, Int: 1}})
	mdb.exchange("execute_cache_metadata_first.bin", e3[mysqlwire.HeaderSize:], nil)
	mdb.exchange("execute_cache_metadata_second.bin", e3[mysqlwire.HeaderSize:], nil)
	mdb.nc.Close()

	mdbClassic, _, err := dial((baseCaps&^mysqlwire.ClientMySQL)|mysqlwire.MariaDBClientCacheMetadata, *password, "wiretest", "", "")
	if err != nil {
		log.Fatal(err)
	}
	_, tr = mdbClassic.exchange("", append([]byte{byte(mysqlwire.ComStmtPrepare)}, "SELECT id, name FROM people WHERE id = ?"...), nil)
	id, _, _, _ = tr.Prepared()
	e4, _ := mysqlwire.AppendStmtExecute(nil, 0, id, 0, []mysqlwire.Value{{Type: mysqlwire.TypeLongLong, Int: 1}})
	mdbClassic.exchange("execute_cache_metadata_first_classic.bin", e4[mysqlwire.HeaderSize:], nil)
	mdbClassic.exchange("execute_cache_metadata_second_classic.bin", e4[mysqlwire.HeaderSize:], nil)
	mdbClassic.nc.Close()

	checkLargePackets()

	if *cli != "" {
		if err := recordClientHandshake(); err != nil {
			log.Fatal(err)
		}
	}
}

// checkLargePackets verifies, without recording (the files would be
// 16 MiB), that payloads of 16 MiB and more work in both directions: a
// COM_QUERY split by AppendPacket, and a result row the server splits,
// which the tracker must count once.
func checkLargePackets() {
	admin, _, err := dial(baseCaps, *password, "", "", "")
	if err != nil {
		log.Fatal(err)
	}
	admin.mustQuery("SET GLOBAL max_allowed_packet = 67108864")
	admin.nc.Close()
	c, _, err := dial(baseCaps|mysqlwire.ClientDeprecateEOF, *password, "", "", "")
	if err != nil {
		log.Fatal(err)
	}
	const size = mysqlwire.MaxPacketPayload + 1000
	literal := bytes.Repeat([]byte{'a'}, size)
	q := append(append([]byte("\x03SELECT LENGTH('"), literal...), "') AS n"...)
	rec, tr := c.exchange("", q, nil)
	if tr.Rows() != 1 || !bytes.Contains(rec, []byte(fmt.Sprint(size))) {
		log.Fatalf("large query: rows %d, response % x", tr.Rows(), rec)
	}
	rec, tr = c.exchange("", query(fmt.Sprintf("SELECT REPEAT('b', %d) AS big, 1 AS one", size)), nil)
	if tr.Rows() != 1 || tr.ResultSets() != 1 || len(rec) < size {
		log.Fatalf("large row: rows %d, %d bytes", tr.Rows(), len(rec))
	}
	log.Printf("large packets: %d-byte query and %d-byte row OK", len(q), len(rec))
	c.nc.Close()
}

// recordClientHandshake plays a server towards the command-line client long
// enough to record the HandshakeResponse41 it sends to a real greeting.
func recordClientHandshake() error {
	greeting, err := os.ReadFile(filepath.Join(*out, "greeting.bin"))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	cmd := exec.Command(*cli, "--no-defaults", "-h127.0.0.1", fmt.Sprintf("-P%d", port), "-u"+*user, "-p"+*password,
		"--ssl=0", "-Dwiretest", "-e", "SELECT 1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Wait() }()
	if err := ln.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return err
	}
	nc, err := ln.Accept()
	if err != nil {
		return fmt.Errorf("accept client: %w (%s)", err, stderr.String())
	}
	defer nc.Close()
	if _, err := nc.Write(greeting); err != nil {
		return err
	}
	c := &conn{nc: nc}
	_, raw, err := c.readPacket()
	if err != nil {
		return fmt.Errorf("client handshake response: %w", err)
	}
	save("client_handshake_response.bin", raw)
	w, _ := mysqlwire.AppendERR(nil, 2, mysqlwire.ErAccessDenied, "", "recorded by capture; goodbye")
	if _, err := nc.Write(w); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}
