package mysqlwire

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Capabilities the capture tool negotiated (see testdata/README.md).
const (
	goldenClassic = ClientLongPassword | ClientFoundRows | ClientLongFlag | ClientLocalFiles | ClientProtocol41 |
		ClientTransactions | ClientSecureConnection | ClientMultiStatements | ClientMultiResults |
		ClientPSMultiResults | ClientPluginAuth | ClientConnectAttrs | ClientPluginAuthLenEncClientData |
		ClientSessionTrack
	goldenDeprecate = goldenClassic | ClientDeprecateEOF
	goldenMariaDB   = goldenDeprecate&^ClientMySQL | MariaDBClientStmtBulkOperations |
		MariaDBClientExtendedTypeInfo | MariaDBClientCacheMetadata
	goldenMariaDBClassic = goldenClassic&^ClientMySQL | MariaDBClientCacheMetadata
)

func readGoldenFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("golden file: %v", err)
	}
	return b
}

// goldenPackets splits a golden file into its packets; it fails the test if
// the file does not frame cleanly.
func goldenPackets(t testing.TB, name string) []Packet {
	t.Helper()
	b := readGoldenFile(t, name)
	var out []Packet
	for len(b) > 0 {
		p, ok, err := ReadPacket(b, 0)
		if err != nil || !ok {
			t.Fatalf("%s: framing: ok=%v err=%v", name, ok, err)
		}
		out = append(out, p)
		b = b[p.Size:]
	}
	return out
}

func TestGoldenGreeting(t *testing.T) {
	raw := readGoldenFile(t, "greeting.bin")
	pk := goldenPackets(t, "greeting.bin")[0]
	h, err := ParseHandshake(pk.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(h.ServerVersion), "5.5.5-10.11.") || !strings.Contains(string(h.ServerVersion), "MariaDB") {
		t.Errorf("server version %q", h.ServerVersion)
	}
	if len(h.AuthPluginData) != ScrambleLength || string(h.AuthPluginName) != AuthNativePassword || h.ConnectionID == 0 {
		t.Errorf("nonce %d bytes, plugin %q, conn id %d", len(h.AuthPluginData), h.AuthPluginName, h.ConnectionID)
	}
	want := ClientProtocol41 | ClientSecureConnection | ClientPluginAuth | ClientSessionTrack | ClientDeprecateEOF |
		ClientConnectAttrs | ClientMultiResults | ClientPSMultiResults | ClientLocalFiles |
		MariaDBClientStmtBulkOperations | MariaDBClientExtendedTypeInfo | MariaDBClientCacheMetadata | MariaDBClientProgress
	if !h.Capabilities.Has(want) || h.Capabilities.Has(ClientMySQL) {
		t.Errorf("capabilities %#x lack %#x or have CLIENT_MYSQL", uint64(h.Capabilities), uint64(want&^h.Capabilities))
	}
	if !h.Status.Has(StatusAutocommit) {
		t.Errorf("status %#x", h.Status)
	}
	again, next := AppendHandshake(nil, h)
	if !bytes.Equal(again, raw) || next != 1 {
		t.Errorf("re-encoded greeting differs:\n got % x\nwant % x", again, raw)
	}
}

func TestGoldenClientHandshakeResponse(t *testing.T) {
	greeting, err := ParseHandshake(goldenPackets(t, "greeting.bin")[0].Payload)
	if err != nil {
		t.Fatal(err)
	}
	raw := readGoldenFile(t, "client_handshake_response.bin")
	pk := goldenPackets(t, "client_handshake_response.bin")[0]
	if pk.Seq != 1 || IsSSLRequest(pk.Payload) {
		t.Fatalf("seq %d / SSLRequest", pk.Seq)
	}
	hr, err := ParseHandshakeResponse(pk.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if string(hr.Username) != "wire" || string(hr.Database) != "wiretest" || string(hr.AuthPlugin) != AuthNativePassword {
		t.Errorf("user %q db %q plugin %q", hr.Username, hr.Database, hr.AuthPlugin)
	}
	stage1, err := VerifyNativePassword(NativePasswordHash([]byte("wirepw")), greeting.AuthPluginData, hr.AuthResponse)
	if err != nil {
		t.Fatalf("the real client's scramble does not verify: %v", err)
	}
	if !bytes.Equal(NativeScrambleFromStage1(stage1, greeting.AuthPluginData), hr.AuthResponse) {
		t.Error("scramble rebuilt from the recovered SHA1(pw) differs")
	}
	if _, err := VerifyNativePassword(NativePasswordHash([]byte("wrong")), greeting.AuthPluginData, hr.AuthResponse); err == nil {
		t.Error("wrong stored hash verified")
	}
	attrs := map[string]string{}
	it := NewAttrIter(hr.Attrs)
	for {
		k, v, ok := it.Next()
		if !ok {
			break
		}
		attrs[string(k)] = string(v)
	}
	if it.Err() != nil || attrs["_client_name"] != "libmariadb" || attrs["program_name"] == "" {
		t.Errorf("attrs %v err %v", attrs, it.Err())
	}
	again, _ := AppendHandshakeResponse(nil, 1, hr)
	if !bytes.Equal(again, raw) {
		t.Errorf("re-encoded response differs:\n got % x\nwant % x", again, raw)
	}
	ssl := hr
	ssl.SSLRequest = true
	ssl.Capabilities |= ClientSSL
	sslWire, _ := AppendHandshakeResponse(nil, 1, ssl)
	if !IsSSLRequest(sslWire[HeaderSize:]) {
		t.Error("SSLRequest not recognised")
	}
	parsed, err := ParseHandshakeResponse(sslWire[HeaderSize:])
	if err != nil || !parsed.SSLRequest || parsed.Capabilities != ssl.Capabilities {
		t.Errorf("SSLRequest parse: %+v %v", parsed, err)
	}
}

func TestGoldenErrors(t *testing.T) {
	tests := []struct {
		file  string
		code  ErrCode
		state string
		msg   string
	}{
		{"err_1045.bin", ErAccessDenied, "28000", "Access denied for user 'wire'"},
		{"err_1064.bin", ErParseError, "42000", "You have an error in your SQL syntax"},
		{"err_1146.bin", ErNoSuchTable, "42S02", "doesn't exist"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			pk := goldenPackets(t, tt.file)
			e, err := ParseERR(pk[len(pk)-1].Payload)
			if err != nil || e.Code != tt.code || string(e.SQLState) != tt.state || !strings.Contains(string(e.Message), tt.msg) {
				t.Fatalf("%+v %v", e, err)
			}
			if tt.code.SQLState() != tt.state {
				t.Errorf("table maps %d to %s, server says %s", tt.code, tt.code.SQLState(), tt.state)
			}
			again, _ := AppendERR(nil, pk[len(pk)-1].Seq, e.Code, "", string(e.Message))
			if !bytes.Equal(again[HeaderSize:], pk[len(pk)-1].Payload) {
				t.Errorf("AppendERR differs from the server's packet")
			}
		})
	}
}

func TestGoldenOKSessionTrack(t *testing.T) {
	tests := []struct {
		file            string
		sysvars         map[string]string
		schema          string
		txnState        string
		characteristics string
		stateChange     bool
	}{
		{file: "ok_session_track.bin", sysvars: map[string]string{"autocommit": "OFF"}, stateChange: true},
		{file: "ok_session_track_schema.bin", sysvars: map[string]string{}, schema: "mysql", stateChange: true},
		// COM_CHANGE_USER resets session_track_state_change to its default (OFF).
		{file: "change_user.bin", sysvars: map[string]string{}, schema: "wiretest"},
		{file: "ok_session_track_txn.bin", sysvars: map[string]string{}, txnState: "T_______", characteristics: "START TRANSACTION READ ONLY;"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			pks := goldenPackets(t, tt.file)
			pk := pks[len(pks)-1]
			ok, err := ParseOK(pk.Payload, goldenClassic)
			if err != nil {
				t.Fatal(err)
			}
			if !ok.Status.Has(StatusSessionStateChanged) || len(ok.SessionState) == 0 {
				t.Fatalf("status %#x state % x", ok.Status, ok.SessionState)
			}
			gotVars := map[string]string{}
			var schema, txnState, characteristics string
			stateChange := false
			it := NewSessionStateIter(ok.SessionState)
			for {
				e, more := it.Next()
				if !more {
					break
				}
				switch e.Type {
				case SessionTrackSystemVariables:
					n, v, err := e.SystemVariable()
					if err != nil {
						t.Fatal(err)
					}
					gotVars[string(n)] = string(v)
				case SessionTrackSchema:
					v, err := e.Value()
					if err != nil {
						t.Fatal(err)
					}
					schema = string(v)
				case SessionTrackStateChange:
					v, _ := e.Value()
					stateChange = string(v) == "1"
				case SessionTrackTransactionState:
					v, _ := e.Value()
					txnState = string(v)
				case SessionTrackTransactionCharacteristics:
					v, _ := e.Value()
					characteristics = string(v)
				}
			}
			if it.Err() != nil || schema != tt.schema || len(gotVars) != len(tt.sysvars) ||
				txnState != tt.txnState || characteristics != tt.characteristics {
				t.Fatalf("vars %v schema %q txn %q %q err %v", gotVars, schema, txnState, characteristics, it.Err())
			}
			if stateChange != tt.stateChange {
				t.Errorf("state-change entry %v", stateChange)
			}
			for k, v := range tt.sysvars {
				if gotVars[k] != v {
					t.Errorf("%s = %q, want %q", k, gotVars[k], v)
				}
			}
			again, _ := AppendOK(nil, pk.Seq, goldenClassic, ok)
			if !bytes.Equal(again[HeaderSize:], pk.Payload) {
				t.Errorf("AppendOK differs:\n got % x\nwant % x", again[HeaderSize:], pk.Payload)
			}
		})
	}
	ok, err := ParseOK(goldenPackets(t, "ok_insert.bin")[0].Payload, goldenClassic)
	if err != nil || ok.AffectedRows != 2 || ok.LastInsertID != 4 || !ok.Status.Has(StatusAutocommit) {
		t.Fatalf("insert OK %+v %v", ok, err)
	}
	if ok, err := ParseOK(goldenPackets(t, "auth_ok.bin")[0].Payload, goldenClassic); err != nil || !ok.Status.Has(StatusAutocommit) {
		t.Fatalf("auth OK %+v %v", ok, err)
	}
}

// TestGoldenTracker feeds every recorded response to the tracker and checks
// that it completes exactly on the last packet, with the right summary.
func TestGoldenTracker(t *testing.T) {
	tests := []struct {
		file       string
		cmd        Command
		caps       Capabilities
		resultSets uint32
		rows       uint64
		errCode    ErrCode
		cursor     bool
		infile     bool
		authSwitch bool
		status     StatusFlags // flags that must be set at the end
	}{
		{file: "ok_insert.bin", cmd: ComQuery, caps: goldenClassic, status: StatusAutocommit},
		{file: "ok_session_track.bin", cmd: ComQuery, caps: goldenClassic, status: StatusSessionStateChanged},
		{file: "err_1064.bin", cmd: ComQuery, caps: goldenClassic, errCode: ErParseError},
		{file: "text_classic.bin", cmd: ComQuery, caps: goldenClassic, resultSets: 1, rows: 5, status: StatusAutocommit},
		{file: "text_deprecate.bin", cmd: ComQuery, caps: goldenDeprecate, resultSets: 1, rows: 5, status: StatusAutocommit},
		{file: "text_empty_classic.bin", cmd: ComQuery, caps: goldenClassic, resultSets: 1},
		{file: "text_empty_deprecate.bin", cmd: ComQuery, caps: goldenDeprecate, resultSets: 1},
		{file: "call_classic.bin", cmd: ComQuery, caps: goldenClassic, resultSets: 2, rows: 6, status: StatusAutocommit},
		{file: "call_deprecate.bin", cmd: ComQuery, caps: goldenDeprecate, resultSets: 2, rows: 6, status: StatusAutocommit},
		{file: "multi_classic.bin", cmd: ComQuery, caps: goldenClassic, resultSets: 2, rows: 2, status: StatusAutocommit},
		{file: "multi_err_classic.bin", cmd: ComQuery, caps: goldenClassic, resultSets: 1, rows: 1, errCode: ErParseError},
		{file: "local_infile.bin", cmd: ComQuery, caps: goldenClassic, infile: true, status: StatusAutocommit},
		{file: "prepare_classic.bin", cmd: ComStmtPrepare, caps: goldenClassic},
		{file: "prepare_deprecate.bin", cmd: ComStmtPrepare, caps: goldenDeprecate},
		{file: "prepare_types_classic.bin", cmd: ComStmtPrepare, caps: goldenClassic},
		{file: "prepare_types_deprecate.bin", cmd: ComStmtPrepare, caps: goldenDeprecate},
		{file: "prepare_cache_metadata.bin", cmd: ComStmtPrepare, caps: goldenMariaDB},
		{file: "execute_types_classic.bin", cmd: ComStmtExecute, caps: goldenClassic, resultSets: 1, rows: 2},
		{file: "execute_types_deprecate.bin", cmd: ComStmtExecute, caps: goldenDeprecate, resultSets: 1, rows: 2},
		{file: "execute_call_classic.bin", cmd: ComStmtExecute, caps: goldenClassic, resultSets: 2, rows: 6},
		{file: "execute_cache_metadata_first.bin", cmd: ComStmtExecute, caps: goldenMariaDB, resultSets: 1, rows: 1},
		{file: "execute_cache_metadata_second.bin", cmd: ComStmtExecute, caps: goldenMariaDB, resultSets: 1, rows: 1},
		{file: "execute_cache_metadata_first_classic.bin", cmd: ComStmtExecute, caps: goldenMariaDBClassic, resultSets: 1, rows: 1},
		{file: "cursor_open_classic.bin", cmd: ComStmtExecute, caps: goldenClassic, resultSets: 1, cursor: true},
		{file: "cursor_open_deprecate.bin", cmd: ComStmtExecute, caps: goldenDeprecate, resultSets: 1, cursor: true},
		{file: "cursor_fetch_more_classic.bin", cmd: ComStmtFetch, caps: goldenClassic, rows: 1, cursor: true},
		// The server learns that the cursor is exhausted only on the next fetch.
		{file: "cursor_fetch_last_classic.bin", cmd: ComStmtFetch, caps: goldenClassic, rows: 1, cursor: true, status: StatusCursorExists},
		{file: "cursor_fetch_last_deprecate.bin", cmd: ComStmtFetch, caps: goldenDeprecate, rows: 2, status: StatusLastRowSent},
		{file: "field_list_classic.bin", cmd: ComFieldList, caps: goldenClassic},
		{file: "field_list_deprecate.bin", cmd: ComFieldList, caps: goldenDeprecate},
		{file: "statistics.bin", cmd: ComStatistics, caps: goldenClassic},
		{file: "ping.bin", cmd: ComPing, caps: goldenClassic, status: StatusAutocommit},
		{file: "set_option_classic.bin", cmd: ComSetOption, caps: goldenClassic},
		{file: "set_option_deprecate.bin", cmd: ComSetOption, caps: goldenDeprecate},
		{file: "reset_connection.bin", cmd: ComResetConnection, caps: goldenClassic},
		{file: "change_user.bin", cmd: ComChangeUser, caps: goldenClassic, authSwitch: true, status: StatusSessionStateChanged},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			pks := goldenPackets(t, tt.file)
			var tr ResponseTracker
			if _, err := tr.Start(tt.cmd, tt.caps); err != nil {
				t.Fatal(err)
			}
			for i, pk := range pks {
				p, err := tr.Feed(pk.Payload)
				if err != nil {
					t.Fatalf("packet %d: %v", i, err)
				}
				last := i == len(pks)-1
				if last != (p == Complete) {
					t.Fatalf("packet %d of %d: progress %v", i, len(pks), p)
				}
			}
			code, _, failed := tr.Err()
			if code != tt.errCode || failed != (tt.errCode != 0) {
				t.Errorf("err %d failed %v, want %d", code, failed, tt.errCode)
			}
			if tr.ResultSets() != tt.resultSets || tr.Rows() != tt.rows {
				t.Errorf("result sets %d rows %d, want %d %d", tr.ResultSets(), tr.Rows(), tt.resultSets, tt.rows)
			}
			if tr.CursorOpen() != tt.cursor || tr.LocalInfile() != tt.infile || tr.AuthSwitched() != tt.authSwitch {
				t.Errorf("cursor %v infile %v auth switch %v", tr.CursorOpen(), tr.LocalInfile(), tr.AuthSwitched())
			}
			st, _ := tr.Status()
			if !st.Has(tt.status) || st.Has(StatusMoreResultsExist) {
				t.Errorf("status %#x, want %#x and no MORE_RESULTS", st, tt.status)
			}
		})
	}
}

func TestGoldenPrepare(t *testing.T) {
	for _, tt := range []struct {
		file string
		caps Capabilities
	}{{"prepare_classic.bin", goldenClassic}, {"prepare_deprecate.bin", goldenDeprecate}} {
		pks := goldenPackets(t, tt.file)
		p, err := ParsePrepareOK(pks[0].Payload)
		if err != nil || p.NumColumns != 2 || p.NumParams != 2 || p.StatementID == 0 {
			t.Fatalf("%s: %+v %v", tt.file, p, err)
		}
		want := 1 + 2 + 2
		if tt.caps&ClientDeprecateEOF == 0 {
			want += 2
		}
		if len(pks) != want {
			t.Fatalf("%s: %d packets, want %d", tt.file, len(pks), want)
		}
		col, err := ParseColumnDefinition(pks[len(pks)-1-boolInt(tt.caps&ClientDeprecateEOF == 0)].Payload, tt.caps)
		if err != nil || string(col.Name) != "name" || string(col.Table) != "people" || col.Type != TypeVarString {
			t.Fatalf("%s: last column %+v %v", tt.file, col, err)
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestGoldenBinaryRows decodes the recorded binary result set of the types
// table with the column definitions the server sent.
func TestGoldenBinaryRows(t *testing.T) {
	for _, tt := range []struct {
		file string
		caps Capabilities
	}{{"execute_types_classic.bin", goldenClassic}, {"execute_types_deprecate.bin", goldenDeprecate}} {
		t.Run(tt.file, func(t *testing.T) {
			pks := goldenPackets(t, tt.file)
			n, _, _, err := ReadLenEncInt(pks[0].Payload)
			if err != nil || n != 25 {
				t.Fatalf("column count %d %v", n, err)
			}
			cols := make([]ColumnDefinition, n)
			for i := range cols {
				if cols[i], err = ParseColumnDefinition(pks[1+i].Payload, tt.caps); err != nil {
					t.Fatalf("column %d: %v", i, err)
				}
			}
			rowAt := 1 + int(n) + boolInt(tt.caps&ClientDeprecateEOF == 0)
			decode := func(payload []byte) map[string]Value {
				br, err := NewBinaryRowReader(payload, len(cols))
				if err != nil {
					t.Fatal(err)
				}
				out := map[string]Value{}
				for _, c := range cols {
					v, err := br.Next(c.Type, c.Flags&FlagUnsigned != 0)
					if err != nil {
						t.Fatalf("%s: %v", c.Name, err)
					}
					out[string(c.Name)] = v
				}
				if br.Remaining() != 0 {
					t.Fatalf("%d bytes left after the last column", br.Remaining())
				}
				// Re-encoding the decoded values must give the server's bytes.
				vals := make([]Value, 0, len(cols))
				for _, c := range cols {
					vals = append(vals, out[string(c.Name)])
				}
				if again := AppendBinaryRow(nil, vals); !bytes.Equal(again, payload) {
					t.Errorf("re-encoded row differs:\n got % x\nwant % x", again, payload)
				}
				return out
			}
			r1 := decode(pks[rowAt].Payload)
			check := func(name string, ok bool) {
				t.Helper()
				if !ok {
					t.Errorf("column %s: %+v", name, r1[name])
				}
			}
			check("id", r1["id"].Int == 1 && r1["id"].Type == TypeLong)
			check("ti", r1["ti"].Int == -128 && r1["ti"].Type == TypeTiny)
			check("tu", r1["tu"].Uint == 255 && r1["tu"].Unsigned)
			check("si", r1["si"].Int == -32768)
			check("mi", r1["mi"].Int == -8388608 && r1["mi"].Type == TypeInt24)
			check("i", r1["i"].Int == math.MinInt32)
			check("bi", r1["bi"].Int == math.MinInt64 && r1["bi"].Type == TypeLongLong)
			check("bu", r1["bu"].Uint == math.MaxUint64)
			check("f", r1["f"].Float == 1.5 && r1["f"].Type == TypeFloat)
			check("d", r1["d"].Float == -2.25 && r1["d"].Type == TypeDouble)
			check("dc", string(r1["dc"].Bytes) == "-1234567.891" && r1["dc"].Type == TypeNewDecimal)
			check("dt", r1["dt"].DateTime == DateTime{Year: 2024, Month: 2, Day: 29})
			check("dtm", r1["dtm"].DateTime == DateTime{Year: 2024, Month: 2, Day: 29, Hour: 13, Minute: 14, Second: 15, Microsecond: 123456})
			check("ts", r1["ts"].DateTime == DateTime{Year: 2001, Month: 2, Day: 3, Hour: 4, Minute: 5, Second: 6, Microsecond: 789000} && r1["ts"].Type == TypeTimestamp)
			check("tm", r1["tm"].Duration == Duration{Negative: true, Days: 34, Hour: 22, Minute: 59, Second: 58, Microsecond: 500000})
			check("yr", r1["yr"].Uint == 2155 && r1["yr"].Type == TypeYear)
			check("vc", string(r1["vc"].Bytes) == "varchar")
			check("ch", string(r1["ch"].Bytes) == "ch" && r1["ch"].Type == TypeString)
			check("bl", bytes.Equal(r1["bl"].Bytes, []byte{0, 0xFF, 0x10}) && r1["bl"].Type == TypeBlob)
			check("tx", string(r1["tx"].Bytes) == "text")
			check("js", string(r1["js"].Bytes) == `{"a": 1}`)
			check("bt", bytes.Equal(r1["bt"].Bytes, []byte{0x02, 0xAA}) && r1["bt"].Type == TypeBit)
			check("en", string(r1["en"].Bytes) == "b")
			check("st", string(r1["st"].Bytes) == "x,y")
			check("geo", len(r1["geo"].Bytes) == 25 && r1["geo"].Type == TypeGeometry)

			r2 := decode(pks[rowAt+1].Payload)
			if r2["id"].Int != 2 || !r2["ti"].Null || !r2["geo"].Null || r2["dtm"].DateTime != (DateTime{Year: 2020, Month: 1, Day: 1}) ||
				r2["tm"].Duration != (Duration{}) || r2["dt"].DateTime != (DateTime{Year: 1000, Month: 1, Day: 1}) {
				t.Errorf("row 2: %+v", r2)
			}
		})
	}
}

func TestGoldenExtendedMetadata(t *testing.T) {
	pks := goldenPackets(t, "text_extended_metadata.bin")
	var kinds []string
	for _, pk := range pks[1:3] {
		c, err := ParseColumnDefinition(pk.Payload, goldenMariaDB)
		if err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, string(c.ExtendedMetadata))
	}
	if !strings.Contains(kinds[0], "json") || !strings.Contains(kinds[1], "point") {
		t.Fatalf("extended metadata %q", kinds)
	}
}

func TestGoldenExecuteRequest(t *testing.T) {
	raw := readGoldenFile(t, "execute_request.bin")
	payload := append([]byte(nil), raw[HeaderSize:]...)
	e, err := ParseStmtExecute(payload, 1, nil, goldenClassic)
	if err != nil || e.Flags != CursorTypeNoCursor || e.IterationCount != 1 || !e.NewParamsBound {
		t.Fatalf("%+v %v", e, err)
	}
	it := e.Params(nil)
	p, ok := it.Next()
	if !ok || p.Value.Type != TypeLongLong || p.Value.Int != 1 {
		t.Fatalf("param %+v %v", p, it.Err())
	}
	old, err := RewriteStatementID(payload, 0xDEADBEEF)
	if err != nil || old != e.StatementID {
		t.Fatalf("rewrite: old %d err %v", old, err)
	}
	if id, _ := StatementID(payload); id != 0xDEADBEEF {
		t.Fatalf("rewritten id %#x", id)
	}
}

func TestGoldenLocalInfileAndStatistics(t *testing.T) {
	pks := goldenPackets(t, "local_infile.bin")
	if pks[0].Payload[0] != HeaderLocalInfile || string(pks[0].Payload[1:]) != "/nonexistent/data.csv" {
		t.Fatalf("infile request % x", pks[0].Payload)
	}
	ok, err := ParseOK(pks[1].Payload, goldenClassic)
	if err != nil || ok.AffectedRows != 2 || !strings.HasPrefix(string(ok.Info), "Records: 2") || pks[1].Seq != 4 {
		t.Fatalf("infile OK %+v seq %d %v", ok, pks[1].Seq, err)
	}
	if s := goldenPackets(t, "statistics.bin")[0].Payload; !strings.HasPrefix(string(s), "Uptime: ") {
		t.Fatalf("statistics %q", s)
	}
}
