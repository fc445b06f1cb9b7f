package mysqlwire

import (
	"bytes"
	"errors"
	"testing"
)

func TestStatementIDRewrite(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
		wantErr bool
	}{
		{"execute", mustPayload(AppendStmtExecute(nil, 0, 7, 0, nil)), false},
		{"close", mustPayload(AppendStmtClose(nil, 0, 7)), false},
		{"reset", mustPayload(AppendStmtReset(nil, 0, 7)), false},
		{"fetch", mustPayload(AppendStmtFetch(nil, 0, 7, 100)), false},
		{"send long data", mustPayload(AppendStmtSendLongData(nil, 0, 7, 1, []byte("blob"))), false},
		{"query has no id", mustPayload(AppendCommand(nil, 0, ComQuery, []byte("SELECT 1234"))), true},
		{"truncated", []byte{byte(ComStmtClose), 1, 2}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := append([]byte(nil), tt.payload...)
			old, err := RewriteStatementID(tt.payload, 0x01020304)
			if tt.wantErr {
				if err == nil || !bytes.Equal(before, tt.payload) {
					t.Fatalf("err %v; payload changed: %v", err, !bytes.Equal(before, tt.payload))
				}
				return
			}
			if err != nil || old != 7 {
				t.Fatalf("old %d err %v", old, err)
			}
			if id, _ := StatementID(tt.payload); id != 0x01020304 {
				t.Fatalf("id %#x", id)
			}
			if !bytes.Equal(before[5:], tt.payload[5:]) || before[0] != tt.payload[0] {
				t.Fatal("rewrite touched bytes other than the id")
			}
			allocs := testing.AllocsPerRun(100, func() { _, _ = RewriteStatementID(tt.payload, 9) })
			if allocs != 0 {
				t.Fatalf("rewrite allocates %v", allocs)
			}
		})
	}
}

func mustPayload(wire []byte, _ uint8) []byte { return wire[HeaderSize:] }

func TestPrepareOK(t *testing.T) {
	want := PrepareOK{StatementID: 99, NumColumns: 3, NumParams: 2, Warnings: 1}
	wire, next := AppendPrepareOK(nil, 1, want)
	if next != 2 {
		t.Fatal(next)
	}
	got, err := ParsePrepareOK(wire[HeaderSize:])
	if err != nil || got != want {
		t.Fatalf("%+v %v", got, err)
	}
	if got, err := ParsePrepareOK(wire[HeaderSize : HeaderSize+9]); err != nil || got.Warnings != 0 || got.NumParams != 2 {
		t.Fatalf("short form %+v %v", got, err)
	}
	for _, bad := range [][]byte{nil, {0x00, 1, 2}, {0xFF, 0, 0, 0, 0, 0, 0, 0, 0}} {
		if _, err := ParsePrepareOK(bad); err == nil {
			t.Errorf("% x accepted", bad)
		}
	}
}

func TestStmtExecute(t *testing.T) {
	params := []Value{
		{Type: TypeLongLong, Int: -5},
		{Type: TypeVarString, Null: true},
		{Type: TypeVarString, Bytes: []byte("hello")},
		{Type: TypeLong, Unsigned: true, Uint: 4000000000},
		{Type: TypeDouble, Float: 3.25},
		{Type: TypeDateTime, DateTime: DateTime{Year: 2020, Month: 5, Day: 6, Hour: 7}},
		{Type: TypeTime, Duration: Duration{Negative: true, Hour: 1, Microsecond: 5}},
		{Type: TypeTiny, Int: -1},
		{Type: TypeNull, Null: true},
	}
	wire, _ := AppendStmtExecute(nil, 0, 42, CursorTypeReadOnly, params)
	payload := wire[HeaderSize:]
	e, err := ParseStmtExecute(payload, len(params), nil, caps41)
	if err != nil {
		t.Fatal(err)
	}
	if e.StatementID != 42 || e.Flags != CursorTypeReadOnly || e.IterationCount != 1 || !e.NewParamsBound ||
		e.ParamCount != len(params) || len(e.NullBitmap) != 2 || len(e.Types) != 2*len(params) {
		t.Fatalf("%+v", e)
	}
	checkParams := func(it ParamIter) {
		t.Helper()
		for i, want := range params {
			p, ok := it.Next()
			if !ok {
				t.Fatalf("param %d: %v", i, it.Err())
			}
			got := p.Value
			if got.Null != want.Null || got.Type != want.Type || got.Unsigned != want.Unsigned {
				t.Fatalf("param %d: %+v want %+v", i, got, want)
			}
			if want.Null {
				continue
			}
			if !bytes.Equal(AppendBinaryValue(nil, got), AppendBinaryValue(nil, want)) {
				t.Fatalf("param %d value: %+v want %+v", i, got, want)
			}
		}
		if _, ok := it.Next(); ok {
			t.Fatal("extra parameter")
		}
	}
	checkParams(e.Params(nil))

	// A re-execution without rebinding needs the earlier types.
	rebind := append([]byte(nil), payload[:10]...)
	rebind = append(rebind, e.NullBitmap...)
	rebind = append(rebind, 0)
	rebind = append(rebind, e.Values...)
	e2, err := ParseStmtExecute(rebind, len(params), e.Types, caps41)
	if err != nil || e2.NewParamsBound || e2.Types != nil {
		t.Fatalf("%+v %v", e2, err)
	}
	checkParams(e2.Params(e.Types))
	if _, err := ParseStmtExecute(rebind[:len(rebind)-1], len(params), e.Types, caps41); err == nil {
		t.Fatal("truncated values accepted when types are known")
	}
	// Without types the values cannot be delimited but parsing succeeds.
	if e3, err := ParseStmtExecute(rebind, len(params), nil, caps41); err != nil || len(e3.Values) != len(e.Values) {
		t.Fatalf("%+v %v", e3, err)
	}

	noParams, _ := AppendStmtExecute(nil, 0, 1, 0, nil)
	if e, err := ParseStmtExecute(noParams[HeaderSize:], 0, nil, caps41); err != nil || e.ParamCount != 0 || e.NullBitmap != nil {
		t.Fatalf("%+v %v", e, err)
	}

	for _, tt := range []struct {
		name    string
		payload []byte
		n       int
	}{
		{"wrong command", []byte{0x03, 1, 0, 0, 0, 0, 1, 0, 0, 0}, 0},
		{"short header", payload[:6], 0},
		{"missing bitmap", payload[:10], 9},
		{"missing types", payload[:14], 9},
		{"absurd param count", payload, 1 << 20},
		{"negative param count", payload, -1},
	} {
		if _, err := ParseStmtExecute(tt.payload, tt.n, nil, caps41); err == nil {
			t.Errorf("%s accepted", tt.name)
		}
	}
}

func TestStmtExecuteQueryAttributes(t *testing.T) {
	// MySQL 8 layout: parameter count, then type pairs each followed by a name.
	p := []byte{byte(ComStmtExecute), 5, 0, 0, 0, ExecuteParameterCountAvailable, 1, 0, 0, 0}
	p = append(p, 1) // parameter_count
	p = append(p, 0) // null bitmap
	p = append(p, 1) // new params bound
	p = append(p, byte(TypeLong), 0)
	p = AppendLenEncStr(p, "trace_id")
	p = append(p, 7, 0, 0, 0)
	e, err := ParseStmtExecute(p, 0, nil, caps41|ClientQueryAttributes)
	if err != nil || e.ParamCount != 1 {
		t.Fatalf("%+v %v", e, err)
	}
	it := e.Params(nil)
	got, ok := it.Next()
	if !ok || string(got.Name) != "trace_id" || got.Value.Int != 7 {
		t.Fatalf("%+v %v", got, it.Err())
	}
}

func TestSmallCommands(t *testing.T) {
	d, err := ParseStmtSendLongData(mustPayload(AppendStmtSendLongData(nil, 0, 3, 2, []byte("chunk"))))
	if err != nil || d.StatementID != 3 || d.ParamID != 2 || string(d.Data) != "chunk" {
		t.Fatalf("%+v %v", d, err)
	}
	if _, err := ParseStmtSendLongData([]byte{byte(ComStmtSendLongData), 1}); !errors.Is(err, ErrTruncated) {
		t.Fatalf("truncated long data: %v", err)
	}
	if id, err := ParseStmtClose(mustPayload(AppendStmtClose(nil, 0, 11))); err != nil || id != 11 {
		t.Fatal(id, err)
	}
	if id, err := ParseStmtReset(mustPayload(AppendStmtReset(nil, 0, 12))); err != nil || id != 12 {
		t.Fatal(id, err)
	}
	if _, err := ParseStmtReset(mustPayload(AppendStmtClose(nil, 0, 12))); err == nil {
		t.Fatal("close parsed as reset")
	}
	if id, n, err := ParseStmtFetch(mustPayload(AppendStmtFetch(nil, 0, 13, 500))); err != nil || id != 13 || n != 500 {
		t.Fatal(id, n, err)
	}
	if _, _, err := ParseStmtFetch([]byte{byte(ComStmtFetch), 1, 2}); err == nil {
		t.Fatal("short fetch accepted")
	}
	for _, opt := range []uint16{OptionMultiStatementsOn, OptionMultiStatementsOff} {
		if got, err := ParseSetOption(mustPayload(AppendSetOption(nil, 0, opt))); err != nil || got != opt {
			t.Fatal(got, err)
		}
	}
	if _, err := ParseSetOption([]byte{byte(ComSetOption), 2, 0}); err == nil {
		t.Fatal("unknown option accepted")
	}
	kill := mustPayload(AppendProcessKill(nil, 0, 77))
	if !bytes.Equal(kill, []byte{byte(ComProcessKill), 77, 0, 0, 0}) {
		t.Fatalf("kill % x", kill)
	}
}

func TestChangeUser(t *testing.T) {
	attrs := AppendAttr(nil, "k", "v")
	tests := []struct {
		name string
		caps Capabilities
		cu   ChangeUser
	}{
		{"full", caps41 | ClientConnectAttrs, ChangeUser{Username: []byte("bob"), AuthResponse: bytes.Repeat([]byte{1}, 20), Database: []byte("db"), CharacterSet: 45, AuthPlugin: []byte(AuthNativePassword), Attrs: attrs}},
		{"no plugin auth", ClientProtocol41 | ClientSecureConnection, ChangeUser{Username: []byte("bob"), AuthResponse: []byte{9, 9}, CharacterSet: 8}},
		{"old auth encoding", ClientProtocol41, ChangeUser{Username: []byte("bob"), AuthResponse: []byte("scr"), Database: []byte("x"), CharacterSet: 8}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wire, _ := AppendChangeUser(nil, 0, tt.caps, tt.cu)
			got, err := ParseChangeUser(wire[HeaderSize:], tt.caps)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Username, tt.cu.Username) || !bytes.Equal(got.AuthResponse, tt.cu.AuthResponse) ||
				!bytes.Equal(got.Database, tt.cu.Database) || got.CharacterSet != tt.cu.CharacterSet ||
				!bytes.Equal(got.AuthPlugin, tt.cu.AuthPlugin) || !bytes.Equal(got.Attrs, tt.cu.Attrs) {
				t.Fatalf("got %+v want %+v", got, tt.cu)
			}
		})
	}
	if _, err := ParseChangeUser([]byte{byte(ComChangeUser), 'b', 0, 20, 1}, caps41); !errors.Is(err, ErrTruncated) {
		t.Fatalf("truncated: %v", err)
	}
}

func TestQueryText(t *testing.T) {
	plain := []byte("\x03SELECT 1")
	withAttrs := []byte{byte(ComQuery), 2, 1, 0b10, 1}
	withAttrs = append(withAttrs, byte(TypeVarString), 0)
	withAttrs = AppendLenEncStr(withAttrs, "trace")
	withAttrs = append(withAttrs, byte(TypeLong), 0)
	withAttrs = AppendLenEncStr(withAttrs, "nothing")
	withAttrs = AppendLenEncStr(withAttrs, "abc")
	withAttrs = append(withAttrs, "SELECT 2"...)
	noAttrs := append([]byte{byte(ComQuery), 0, 1}, "SELECT 3"...)
	tests := []struct {
		name    string
		payload []byte
		caps    Capabilities
		want    string
		wantErr bool
	}{
		{"plain", plain, caps41, "SELECT 1", false},
		{"attributes", withAttrs, caps41 | ClientQueryAttributes, "SELECT 2", false},
		{"attributes capability, no attributes", noAttrs, caps41 | ClientQueryAttributes, "SELECT 3", false},
		{"truncated attribute value", withAttrs[:len(withAttrs)-10], caps41 | ClientQueryAttributes, "", true},
		{"absurd attribute count", []byte{byte(ComQuery), 0xFC, 0xFF, 0xFF, 1}, caps41 | ClientQueryAttributes, "", true},
		{"not a query", []byte{byte(ComPing)}, caps41, "", true},
		{"empty", nil, caps41, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := QueryText(tt.payload, tt.caps)
			if (err != nil) != tt.wantErr || string(got) != tt.want {
				t.Fatalf("%q %v", got, err)
			}
		})
	}
}
