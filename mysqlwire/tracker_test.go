package mysqlwire

import (
	"errors"
	"testing"
)

// Synthetic server packets for tracker tests.

func okPayload(caps Capabilities, status StatusFlags, affected, insertID uint64) []byte {
	return AppendOKPayload(nil, caps, OK{AffectedRows: affected, LastInsertID: insertID, Status: status})
}

func eofPayload(status StatusFlags) []byte {
	wire, _ := AppendEOF(nil, 0, 0, status)
	return wire[HeaderSize:]
}

func okTerminator(caps Capabilities, status StatusFlags) []byte {
	return AppendOKPayload(nil, caps, OK{Header: HeaderEOF, Status: status})
}

func errPayload(code ErrCode) []byte {
	wire, _ := AppendERR(nil, 0, code, "", "boom")
	return wire[HeaderSize:]
}

func colDef() []byte {
	return AppendColumnDefinition(nil, ColumnDefinition{Schema: []byte("s"), Table: []byte("t"), Name: []byte("c"), Type: TypeVarString, CharacterSet: 33, ColumnLength: 30})
}

func textRow(vals ...string) []byte {
	var b []byte
	for _, v := range vals {
		b = AppendLenEncStr(b, v)
	}
	return b
}

type step struct {
	payload []byte
	want    Progress
}

// resultSet builds the packets of one result set (no terminator handling
// for cursors) in the given EOF mode.
func resultSet(caps Capabilities, cols int, rows [][]byte, final StatusFlags) []step {
	steps := []step{{AppendLenEncInt(nil, uint64(cols)), NeedMore}}
	for range cols {
		steps = append(steps, step{colDef(), NeedMore})
	}
	if caps&ClientDeprecateEOF == 0 {
		steps = append(steps, step{eofPayload(final &^ StatusMoreResultsExist), NeedMore})
	}
	for _, r := range rows {
		steps = append(steps, step{r, NeedMore})
	}
	end := Complete
	if final&StatusMoreResultsExist != 0 {
		end = NeedMore
	}
	if caps&ClientDeprecateEOF != 0 {
		steps = append(steps, step{okTerminator(caps, final), end})
	} else {
		steps = append(steps, step{eofPayload(final), end})
	}
	return steps
}

func concat(parts ...[]step) []step {
	var out []step
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestResponseTracker(t *testing.T) {
	classic := caps41 | ClientSessionTrack | ClientMultiResults
	modern := classic | ClientDeprecateEOF
	ac := StatusAutocommit
	more := StatusAutocommit | StatusMoreResultsExist
	// Rows that look like terminators unless the length rule is applied.
	row0xFE9 := append([]byte{0xFE}, make([]byte, 8)...)
	binRow := []byte{0x00, 0x00, 1, 0, 0, 0}
	tests := []struct {
		name  string
		cmd   Command
		caps  Capabilities
		steps []step
		check func(t *testing.T, tr *ResponseTracker)
	}{
		{
			name: "query OK", cmd: ComQuery, caps: classic,
			steps: []step{{okPayload(classic, StatusInTrans|StatusSessionStateChanged, 3, 42), Complete}},
			check: func(t *testing.T, tr *ResponseTracker) {
				if tr.AffectedRows() != 3 || tr.LastInsertID() != 42 || !tr.InTransaction() || !tr.SessionStateChanged() {
					t.Errorf("affected %d id %d in-trans %v changed %v", tr.AffectedRows(), tr.LastInsertID(), tr.InTransaction(), tr.SessionStateChanged())
				}
			},
		},
		{
			name: "query ERR", cmd: ComQuery, caps: classic,
			steps: []step{{errPayload(ErNoSuchTable), Complete}},
			check: func(t *testing.T, tr *ResponseTracker) {
				code, state, failed := tr.Err()
				if !failed || code != ErNoSuchTable || string(state[:]) != "42S02" {
					t.Errorf("err %d %s %v", code, state, failed)
				}
				if _, seen := tr.Status(); seen {
					t.Error("ERR-only response reported a status")
				}
			},
		},
		{
			name: "text result set classic EOF", cmd: ComQuery, caps: classic,
			steps: resultSet(classic, 2, [][]byte{textRow("a", "b"), row0xFE9, textRow("c", "d")}, ac),
			check: func(t *testing.T, tr *ResponseTracker) {
				if tr.Rows() != 3 || tr.ResultSets() != 1 {
					t.Errorf("rows %d sets %d", tr.Rows(), tr.ResultSets())
				}
			},
		},
		{
			name: "text result set deprecate EOF", cmd: ComQuery, caps: modern,
			steps: resultSet(modern, 1, [][]byte{textRow("x"), textRow("\xfe")}, ac|StatusInTrans),
			check: func(t *testing.T, tr *ResponseTracker) {
				if tr.Rows() != 2 || !tr.InTransaction() || tr.LastKind() != KindEOF {
					t.Errorf("rows %d in-trans %v kind %d", tr.Rows(), tr.InTransaction(), tr.LastKind())
				}
			},
		},
		{
			name: "empty result set deprecate EOF", cmd: ComQuery, caps: modern,
			steps: resultSet(modern, 3, nil, ac),
		},
		{
			name: "ERR in the middle of rows", cmd: ComQuery, caps: classic,
			steps: concat(resultSet(classic, 1, [][]byte{textRow("1")}, ac)[:4], []step{{errPayload(ErQueryInterrupted), Complete}}),
			check: func(t *testing.T, tr *ResponseTracker) {
				if code, _, failed := tr.Err(); !failed || code != ErQueryInterrupted || tr.Rows() != 1 {
					t.Errorf("code %d failed %v rows %d", code, failed, tr.Rows())
				}
			},
		},
		{
			name: "multi-statement classic", cmd: ComQuery, caps: classic,
			steps: concat(
				resultSet(classic, 1, [][]byte{textRow("1")}, more),
				[]step{{okPayload(classic, more, 1, 0), NeedMore}},
				resultSet(classic, 2, [][]byte{textRow("a", "b")}, ac),
			),
			check: func(t *testing.T, tr *ResponseTracker) {
				if tr.ResultSets() != 2 || tr.Rows() != 2 {
					t.Errorf("sets %d rows %d", tr.ResultSets(), tr.Rows())
				}
			},
		},
		{
			name: "CALL with two result sets and final OK, deprecate EOF", cmd: ComQuery, caps: modern,
			steps: concat(
				resultSet(modern, 1, [][]byte{textRow("1")}, more),
				resultSet(modern, 1, [][]byte{textRow("2"), textRow("3")}, more),
				[]step{{okPayload(modern, ac, 0, 0), Complete}},
			),
		},
		{
			name: "multi-statement ending in ERR", cmd: ComQuery, caps: classic,
			steps: []step{{okPayload(classic, more, 1, 0), NeedMore}, {errPayload(ErParseError), Complete}},
			check: func(t *testing.T, tr *ResponseTracker) {
				st, _ := tr.Status()
				if st&StatusMoreResultsExist != 0 {
					t.Error("MORE_RESULTS survived the terminating ERR")
				}
			},
		},
		{
			name: "LOCAL INFILE", cmd: ComQuery, caps: classic | ClientLocalFiles,
			steps: []step{{append([]byte{0xFB}, "/tmp/x.csv"...), ClientTurn}, {okPayload(classic, ac, 7, 0), Complete}},
			check: func(t *testing.T, tr *ResponseTracker) {
				if !tr.LocalInfile() || tr.AffectedRows() != 7 {
					t.Errorf("infile %v affected %d", tr.LocalInfile(), tr.AffectedRows())
				}
			},
		},
		{
			name: "prepare with params and columns classic", cmd: ComStmtPrepare, caps: classic,
			steps: []step{
				{[]byte{0, 7, 0, 0, 0, 2, 0, 1, 0, 0, 0, 0}, NeedMore},
				{colDef(), NeedMore}, {eofPayload(ac), NeedMore},
				{colDef(), NeedMore}, {colDef(), NeedMore}, {eofPayload(ac), Complete},
			},
			check: func(t *testing.T, tr *ResponseTracker) {
				id, cols, params, ok := tr.Prepared()
				if id != 7 || cols != 2 || params != 1 || !ok {
					t.Errorf("id %d cols %d params %d ok %v", id, cols, params, ok)
				}
			},
		},
		{
			name: "prepare with params only deprecate EOF", cmd: ComStmtPrepare, caps: modern,
			steps: []step{{[]byte{0, 1, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0}, NeedMore}, {colDef(), NeedMore}, {colDef(), Complete}},
		},
		{
			name: "prepare with columns only deprecate EOF", cmd: ComStmtPrepare, caps: modern,
			steps: []step{{[]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0}, NeedMore}, {colDef(), Complete}},
		},
		{
			name: "prepare with nothing", cmd: ComStmtPrepare, caps: classic,
			steps: []step{{[]byte{0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, Complete}},
		},
		{
			name: "prepare ERR", cmd: ComStmtPrepare, caps: classic,
			steps: []step{{errPayload(ErParseError), Complete}},
			check: func(t *testing.T, tr *ResponseTracker) {
				if _, _, _, ok := tr.Prepared(); ok {
					t.Error("failed prepare reported as prepared")
				}
			},
		},
		{
			name: "execute binary result set", cmd: ComStmtExecute, caps: classic,
			steps: resultSet(classic, 1, [][]byte{binRow, binRow}, ac),
		},
		{
			name: "execute opens cursor classic", cmd: ComStmtExecute, caps: classic,
			steps: []step{{[]byte{1}, NeedMore}, {colDef(), NeedMore}, {eofPayload(ac | StatusCursorExists), Complete}},
			check: func(t *testing.T, tr *ResponseTracker) {
				if !tr.CursorOpen() || tr.Rows() != 0 {
					t.Errorf("cursor %v rows %d", tr.CursorOpen(), tr.Rows())
				}
			},
		},
		{
			name: "execute opens cursor deprecate EOF", cmd: ComStmtExecute, caps: modern,
			steps: []step{{[]byte{1}, NeedMore}, {colDef(), NeedMore}, {okTerminator(modern, ac|StatusCursorExists), Complete}},
			check: func(t *testing.T, tr *ResponseTracker) {
				if !tr.CursorOpen() {
					t.Error("cursor not reported")
				}
			},
		},
		{
			name: "fetch with rows left", cmd: ComStmtFetch, caps: classic,
			steps: []step{{binRow, NeedMore}, {binRow, NeedMore}, {eofPayload(ac | StatusCursorExists), Complete}},
			check: func(t *testing.T, tr *ResponseTracker) {
				if !tr.CursorOpen() || tr.Rows() != 2 {
					t.Errorf("cursor %v rows %d", tr.CursorOpen(), tr.Rows())
				}
			},
		},
		{
			name: "fetch last rows", cmd: ComStmtFetch, caps: modern,
			steps: []step{{binRow, NeedMore}, {okTerminator(modern, ac|StatusCursorExists|StatusLastRowSent), Complete}},
			check: func(t *testing.T, tr *ResponseTracker) {
				if tr.CursorOpen() {
					t.Error("cursor still reported open after LAST_ROW_SENT")
				}
			},
		},
		{
			name: "field list", cmd: ComFieldList, caps: classic,
			steps: []step{{colDef(), NeedMore}, {colDef(), NeedMore}, {eofPayload(ac), Complete}},
		},
		{
			name: "field list ERR", cmd: ComFieldList, caps: classic,
			steps: []step{{errPayload(ErNoSuchTable), Complete}},
		},
		{
			name: "statistics", cmd: ComStatistics, caps: classic,
			steps: []step{{[]byte("Uptime: 5  Threads: 1"), Complete}},
		},
		{name: "ping", cmd: ComPing, caps: classic, steps: []step{{okPayload(classic, ac, 0, 0), Complete}}},
		{name: "init db", cmd: ComInitDB, caps: modern, steps: []step{{okPayload(modern, ac|StatusSessionStateChanged, 0, 0), Complete}}},
		{name: "reset connection", cmd: ComResetConnection, caps: classic, steps: []step{{okPayload(classic, ac, 0, 0), Complete}}},
		{name: "set option old server EOF", cmd: ComSetOption, caps: classic, steps: []step{{eofPayload(ac), Complete}}},
		{name: "debug EOF", cmd: ComDebug, caps: classic, steps: []step{{eofPayload(ac), Complete}}},
		{name: "obsolete command ERR", cmd: ComTime, caps: classic, steps: []step{{errPayload(ErUnknownComError), Complete}}},
		{
			name: "change user OK", cmd: ComChangeUser, caps: classic,
			steps: []step{{okPayload(classic, ac, 0, 0), Complete}},
		},
		{
			name: "change user auth switch then OK", cmd: ComChangeUser, caps: classic,
			steps: []step{
				{append(append([]byte{0xFE}, AuthNativePassword+"\x00"...), make([]byte, 21)...), ClientTurn},
				{okPayload(classic, ac, 0, 0), Complete},
			},
			check: func(t *testing.T, tr *ResponseTracker) {
				if !tr.AuthSwitched() {
					t.Error("auth switch not reported")
				}
			},
		},
		{
			name: "change user caching_sha2 fast auth", cmd: ComChangeUser, caps: classic,
			steps: []step{{[]byte{0x01, 0x03}, NeedMore}, {okPayload(classic, ac, 0, 0), Complete}},
		},
		{
			name: "change user caching_sha2 full auth", cmd: ComChangeUser, caps: classic,
			steps: []step{{[]byte{0x01, 0x04}, ClientTurn}, {[]byte("\x01-----BEGIN PUBLIC KEY-----"), ClientTurn}, {errPayload(ErAccessDenied), Complete}},
		},
		{
			name: "MariaDB progress reports are skipped", cmd: ComQuery, caps: classic | MariaDBClientProgress,
			steps: []step{{[]byte{0xFF, 0xFF, 0xFF, 1, 1, 0, 0, 0, 0, 0}, NeedMore}, {okPayload(classic, ac, 1, 0), Complete}},
		},
		{
			name: "16 MiB row is passed over in chunks", cmd: ComQuery, caps: modern,
			steps: []step{
				{[]byte{1}, NeedMore}, {colDef(), NeedMore},
				{append([]byte{0xFE}, make([]byte, MaxPacketPayload-1)...), NeedMore},
				{make([]byte, MaxPacketPayload), NeedMore},
				{[]byte{0xFE, 0, 0, 2, 0, 0, 0}, NeedMore}, // continuation tail that looks like a terminator
				{okTerminator(modern, ac), Complete},
			},
			check: func(t *testing.T, tr *ResponseTracker) {
				if tr.Rows() != 1 {
					t.Errorf("rows %d, want 1", tr.Rows())
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tr ResponseTracker
			if p, err := tr.Start(tt.cmd, tt.caps); err != nil || p != NeedMore {
				t.Fatalf("Start: %v %v", p, err)
			}
			for i, s := range tt.steps {
				got, err := tr.Feed(s.payload)
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if got != s.want {
					t.Fatalf("step %d (0x%02x, %d bytes): got %v, want %v", i, s.payload[0], len(s.payload), got, s.want)
				}
			}
			if !tr.Done() {
				t.Fatal("not done after the last packet")
			}
			if _, err := tr.Feed(okPayload(tt.caps, 0, 0, 0)); !errors.Is(err, ErrResponseComplete) {
				t.Fatalf("feeding after completion: %v", err)
			}
			if tt.check != nil {
				tt.check(t, &tr)
			}
		})
	}
}

func TestResponseTrackerNoResponseCommands(t *testing.T) {
	for _, cmd := range []Command{ComQuit, ComStmtClose, ComStmtSendLongData} {
		var tr ResponseTracker
		if p, err := tr.Start(cmd, caps41); p != Complete || err != nil || !tr.Done() {
			t.Errorf("%s: %v %v", cmd, p, err)
		}
	}
	for _, cmd := range []Command{ComBinlogDump, ComBinlogDumpGTID, ComTableDump, ComRegisterSlave, ComDaemon, ComClone, ComStmtBulkExecute, ComMulti} {
		var tr ResponseTracker
		if _, err := tr.Start(cmd, caps41); !errors.Is(err, ErrUnsupportedCommand) {
			t.Errorf("%s: err = %v, want ErrUnsupportedCommand", cmd, err)
		}
	}
}

func TestResponseTrackerProtocolViolations(t *testing.T) {
	tests := []struct {
		name    string
		cmd     Command
		caps    Capabilities
		packets [][]byte
	}{
		{"empty packet", ComQuery, caps41, [][]byte{{}}},
		{"zero column count", ComQuery, caps41, [][]byte{{0x00}}},
		{"bad column count", ComQuery, caps41, [][]byte{{0xFC, 1}}},
		{"row instead of column EOF", ComQuery, caps41, [][]byte{{1}, colDef(), textRow("x")}},
		{"LOCAL INFILE for execute", ComStmtExecute, caps41, [][]byte{{0xFB, 'f'}}},
		{"short prepare OK", ComStmtPrepare, caps41, [][]byte{{0, 1, 0}}},
		{"row for ping", ComPing, caps41, [][]byte{textRow("x")}},
		{"truncated OK", ComPing, caps41, [][]byte{{0, 0}}},
		{"garbage during auth", ComChangeUser, caps41, [][]byte{{0x07}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tr ResponseTracker
			if _, err := tr.Start(tt.cmd, tt.caps); err != nil {
				t.Fatal(err)
			}
			var err error
			for _, p := range tt.packets {
				if _, err = tr.Feed(p); err != nil {
					break
				}
			}
			if err == nil || !tr.Done() {
				t.Fatalf("err = %v done = %v, want a protocol error that ends tracking", err, tr.Done())
			}
		})
	}
}

func TestResponseTrackerStartAuth(t *testing.T) {
	var tr ResponseTracker
	tr.StartAuth(caps41)
	steps := []step{{[]byte{0x01, 0x04}, ClientTurn}, {okPayload(caps41, StatusAutocommit, 0, 0), Complete}}
	for i, s := range steps {
		if got, err := tr.Feed(s.payload); err != nil || got != s.want {
			t.Fatalf("step %d: %v %v", i, got, err)
		}
	}
}

func TestResponseTrackerZeroAlloc(t *testing.T) {
	caps := caps41 | ClientSessionTrack | ClientDeprecateEOF
	steps := resultSet(caps, 3, [][]byte{textRow("a", "b", "c"), textRow("d", "e", "f")}, StatusAutocommit)
	allocs := testing.AllocsPerRun(200, func() {
		var tr ResponseTracker
		tr.Start(ComQuery, caps)
		for _, s := range steps {
			tr.Feed(s.payload)
		}
	})
	if allocs != 0 {
		t.Fatalf("tracking a result set allocates %v times", allocs)
	}
}
