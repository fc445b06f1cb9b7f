package mysqlwire

import (
	"bytes"
	"errors"
	"testing"
)

const caps41 = ClientProtocol41 | ClientTransactions | ClientSecureConnection | ClientPluginAuth

func TestOKRoundTrip(t *testing.T) {
	var state []byte
	state = AppendSessionStateEntry(state, SessionTrackSchema, AppendLenEncStr(nil, "shop"))
	state = AppendSessionStateEntry(state, SessionTrackSystemVariables, AppendLenEncStr(AppendLenEncStr(nil, "autocommit"), "OFF"))
	state = AppendSessionStateEntry(state, SessionTrackStateChange, []byte("1"))
	tests := []struct {
		name string
		caps Capabilities
		ok   OK
	}{
		{"plain 4.1", caps41, OK{AffectedRows: 3, LastInsertID: 70000, Status: StatusAutocommit, Warnings: 2, Info: []byte("Rows matched: 3")}},
		{"no info", caps41, OK{Status: StatusInTrans}},
		{"session track without state", caps41 | ClientSessionTrack, OK{AffectedRows: 1, Status: StatusAutocommit, Info: []byte("x")}},
		{"session track empty", caps41 | ClientSessionTrack, OK{Status: StatusAutocommit}},
		{"session track with state", caps41 | ClientSessionTrack, OK{Status: StatusAutocommit | StatusSessionStateChanged, SessionState: state}},
		{"eof header", caps41 | ClientDeprecateEOF, OK{Header: HeaderEOF, Status: StatusMoreResultsExist, Warnings: 1}},
		{"transactions only", ClientTransactions, OK{AffectedRows: 1, Status: StatusInTrans, Info: []byte("i")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wire, next := AppendOK(nil, 5, tt.caps, tt.ok)
			if next != 6 {
				t.Fatalf("next seq %d", next)
			}
			p, ok, err := ReadPacket(wire, 0)
			if !ok || err != nil || p.Seq != 5 || p.Size != len(wire) {
				t.Fatalf("framing: ok=%v err=%v", ok, err)
			}
			got, err := ParseOK(p.Payload, tt.caps)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.ok
			if want.Header == 0 {
				want.Header = HeaderOK
			}
			if tt.caps&ClientProtocol41 == 0 {
				want.Warnings = 0
			}
			if got.Header != want.Header || got.AffectedRows != want.AffectedRows || got.LastInsertID != want.LastInsertID ||
				got.Status != want.Status || got.Warnings != want.Warnings || !bytes.Equal(got.Info, want.Info) ||
				!bytes.Equal(got.SessionState, want.SessionState) {
				t.Fatalf("got %+v, want %+v", got, want)
			}
		})
	}
}

func TestSessionStateIter(t *testing.T) {
	var state []byte
	state = AppendSessionStateEntry(state, SessionTrackSchema, AppendLenEncStr(nil, "shop"))
	state = AppendSessionStateEntry(state, SessionTrackSystemVariables, AppendLenEncStr(AppendLenEncStr(nil, "autocommit"), "OFF"))
	state = AppendSessionStateEntry(state, 0x7F, []byte{1, 2, 3}) // unknown types are skipped by length
	state = AppendSessionStateEntry(state, SessionTrackTransactionCharacteristics, AppendLenEncStr(nil, "START TRANSACTION;"))
	it := NewSessionStateIter(state)
	var types []uint8
	for {
		e, ok := it.Next()
		if !ok {
			break
		}
		types = append(types, e.Type)
		switch e.Type {
		case SessionTrackSchema:
			if v, err := e.Value(); err != nil || string(v) != "shop" {
				t.Fatalf("schema %q %v", v, err)
			}
		case SessionTrackSystemVariables:
			n, v, err := e.SystemVariable()
			if err != nil || string(n) != "autocommit" || string(v) != "OFF" {
				t.Fatalf("sysvar %q=%q %v", n, v, err)
			}
		case SessionTrackTransactionCharacteristics:
			if v, err := e.Value(); err != nil || string(v) != "START TRANSACTION;" {
				t.Fatalf("characteristics %q %v", v, err)
			}
		}
	}
	if it.Err() != nil || !bytes.Equal(types, []byte{1, 0, 0x7F, 4}) {
		t.Fatalf("types %v err %v", types, it.Err())
	}
	bad := NewSessionStateIter(state[:len(state)-2])
	for {
		if _, ok := bad.Next(); !ok {
			break
		}
	}
	if !errors.Is(bad.Err(), ErrTruncated) {
		t.Fatalf("truncated state: err = %v", bad.Err())
	}
	allocs := testing.AllocsPerRun(100, func() {
		it := NewSessionStateIter(state)
		for {
			if _, ok := it.Next(); !ok {
				break
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("iteration allocates %v times", allocs)
	}
}

func TestParseOKErrors(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
		caps    Capabilities
	}{
		{"empty", nil, caps41},
		{"wrong header", []byte{0x05, 0, 0, 2, 0, 0, 0}, caps41},
		{"truncated status", []byte{0x00, 0, 0, 2}, caps41},
		{"bad lenenc", []byte{0x00, 0xFF, 0, 2, 0, 0, 0}, caps41},
		{"info length past end", []byte{0x00, 0, 0, 2, 0, 0, 0, 9, 'a'}, caps41 | ClientSessionTrack},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseOK(tt.payload, tt.caps); err == nil {
				t.Fatal("expected an error")
			}
		})
	}
}

func TestERR(t *testing.T) {
	tests := []struct {
		name      string
		code      ErrCode
		state     string
		msg       string
		wantState string
	}{
		{"lookup access denied", ErAccessDenied, "", "Access denied", "28000"},
		{"lookup parse error", ErParseError, "", "syntax", "42000"},
		{"lookup unknown code", 4242, "", "?", "HY000"},
		{"explicit state", ErUnknownError, "XY123", "custom", "XY123"},
		{"invalid explicit state", ErUnknownError, "bad", "custom", "HY000"},
		{"lookup server shutdown", ErServerShutdown, "", "shutting down", "08S01"},
		{"net read", ErNetReadError, "", "", "08S01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wire, next := AppendERR(nil, 2, tt.code, tt.state, tt.msg)
			p, ok, err := ReadPacket(wire, 0)
			if !ok || err != nil || next != 3 || p.Seq != 2 {
				t.Fatalf("framing ok=%v err=%v next=%d", ok, err, next)
			}
			if !IsERR(p.Payload) {
				t.Fatal("IsERR false")
			}
			e, err := ParseERR(p.Payload)
			if err != nil || e.Code != tt.code || string(e.SQLState) != tt.wantState || string(e.Message) != tt.msg {
				t.Fatalf("got %+v err %v", e, err)
			}
		})
	}
	// Errors sent before capabilities are known have no SQLSTATE marker.
	e, err := ParseERR([]byte{0xFF, 0x15, 0x04, 'n', 'o'})
	if err != nil || e.Code != 1045 || e.SQLState != nil || string(e.Message) != "no" {
		t.Fatalf("no marker: %+v %v", e, err)
	}
	if _, err := ParseERR([]byte{0xFF, 1}); !errors.Is(err, ErrTruncated) {
		t.Fatalf("truncated: %v", err)
	}
}

func TestSQLStateTable(t *testing.T) {
	want := map[ErrCode]string{
		1040: "08004", 1045: "28000", 1047: "08S01", 1049: "42000", 1064: "42000", 1105: "HY000",
		1146: "42S02", 1158: "08S01", 1159: "08S01", 1160: "08S01", 1161: "08S01", 1243: "HY000",
		1317: "70100", 1461: "42000", 2013: "HY000", 1203: "42000", 1226: "42000",
	}
	for code, state := range want {
		if got := code.SQLState(); got != state {
			t.Errorf("%d: %s, want %s", code, got, state)
		}
	}
}

func TestEOFAndTerminator(t *testing.T) {
	wire, next := AppendEOF(nil, 9, 3, StatusMoreResultsExist|StatusAutocommit)
	p, _, _ := ReadPacket(wire, 0)
	e, err := ParseEOF(p.Payload)
	if err != nil || next != 10 || e.Warnings != 3 || e.Status != StatusMoreResultsExist|StatusAutocommit {
		t.Fatalf("%+v %v", e, err)
	}
	row8 := append([]byte{0xFE}, make([]byte, 8)...) // a row whose first column has an 8-byte length prefix
	tests := []struct {
		name      string
		payload   []byte
		deprecate bool
		want      bool
	}{
		{"eof", p.Payload, false, true},
		{"eof in deprecate mode", p.Payload, true, true},
		{"9-byte 0xFE is a row without deprecate", row8, false, false},
		{"long OK terminator", append([]byte{0xFE, 0, 0, 2, 0, 0, 0, 5}, "hello"...), true, true},
		{"long OK is not EOF in classic mode", append([]byte{0xFE, 0, 0, 2, 0, 0, 0, 5}, "hello"...), false, false},
		{"huge 0xFE row", append([]byte{0xFE}, make([]byte, MaxPacketPayload-1)...), true, false},
		{"ordinary row", []byte{3, 'a', 'b', 'c'}, true, false},
		{"empty", nil, true, false},
	}
	for _, tt := range tests {
		if got := IsResultSetTerminator(tt.payload, tt.deprecate); got != tt.want {
			t.Errorf("%s: got %v", tt.name, got)
		}
	}
	ended, _ := AppendResultSetEnd(nil, 0, caps41|ClientDeprecateEOF, 0, StatusAutocommit)
	if ended[HeaderSize] != HeaderEOF || len(ended) != HeaderSize+7 {
		t.Fatalf("deprecate-EOF terminator % x", ended)
	}
	ok, err := ParseOK(ended[HeaderSize:], caps41|ClientDeprecateEOF)
	if err != nil || ok.Status != StatusAutocommit {
		t.Fatalf("%+v %v", ok, err)
	}
}
