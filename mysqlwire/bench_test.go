package mysqlwire

import "testing"

// resultSetStream builds the wire bytes of a text result set with cols
// columns and rows rows, as a backend would send it.
func resultSetStream(caps Capabilities, cols, rows int) []byte {
	var wire []byte
	seq := uint8(1)
	wire, seq = AppendPacket(wire, seq, AppendLenEncInt(nil, uint64(cols)))
	for range cols {
		wire, seq = AppendPacket(wire, seq, colDef())
	}
	if caps&ClientDeprecateEOF == 0 {
		wire, seq = AppendEOF(wire, seq, 0, StatusAutocommit)
	}
	row := textRow("12345", "some name", "2024-01-01 00:00:00", "42.5")
	for range rows {
		wire, seq = AppendPacket(wire, seq, row)
	}
	wire, _ = AppendResultSetEnd(wire, seq, caps, 0, StatusAutocommit)
	return wire
}

// trackStream frames and tracks a whole response the way a proxy does: find
// each packet in the buffer, feed it to the tracker, advance.
func trackStream(tr *ResponseTracker, caps Capabilities, stream []byte) Progress {
	_, _ = tr.Start(ComQuery, caps)
	var prog Progress
	for len(stream) > 0 {
		p, ok, err := ReadPacket(stream, 0)
		if !ok || err != nil {
			panic("bad stream")
		}
		prog, err = tr.Feed(p.Payload)
		if err != nil {
			panic(err)
		}
		stream = stream[p.Size:]
	}
	return prog
}

func TestHotPathZeroAlloc(t *testing.T) {
	caps := caps41 | ClientSessionTrack
	stream := resultSetStream(caps, 4, 100)
	okPkt, _ := AppendOK(nil, 1, caps, OK{AffectedRows: 1, Status: StatusAutocommit | StatusInTrans, Info: []byte("x")})
	query, _ := AppendCommand(nil, 0, ComQuery, []byte("SELECT 1"))
	exec, _ := AppendStmtExecute(nil, 0, 1, 0, []Value{{Type: TypeLong, Int: 1}})
	var tr ResponseTracker
	out := make([]byte, 0, 64)
	cases := map[string]func(){
		"ReadPacket": func() { _, _, _ = ReadPacket(stream, 0) },
		"PeekHeader": func() { _, _, _ = PeekHeader(stream) },
		"CommandOf":  func() { _, _ = CommandOf(query[HeaderSize:]) },
		"ParseOK":    func() { _, _ = ParseOK(okPkt[HeaderSize:], caps) },
		"IsResultSetTerminator": func() {
			_ = IsResultSetTerminator(okPkt[HeaderSize:], true)
		},
		"RewriteStatementID": func() { _, _ = RewriteStatementID(exec[HeaderSize:], 9) },
		"track 100-row result set": func() {
			if trackStream(&tr, caps, stream) != Complete {
				panic("incomplete")
			}
		},
		"AppendPacket into capacity": func() { out, _ = AppendPacket(out[:0], 0, []byte("hello")) },
		"AppendERR into capacity":    func() { out, _ = AppendERR(out[:0], 1, ErServerShutdown, "", "shutting down") },
	}
	for name, fn := range cases {
		if allocs := testing.AllocsPerRun(100, fn); allocs != 0 {
			t.Errorf("%s allocates %v times per call", name, allocs)
		}
	}
}

func BenchmarkReadPacket(b *testing.B) {
	stream := resultSetStream(caps41, 4, 1000)
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		s := stream
		for len(s) > 0 {
			p, _, _ := ReadPacket(s, 0)
			s = s[p.Size:]
		}
	}
}

func BenchmarkCommandOf(b *testing.B) {
	query, _ := AppendCommand(nil, 0, ComQuery, []byte("SELECT * FROM t WHERE id = 1"))
	payload := query[HeaderSize:]
	b.ReportAllocs()
	var n int
	for b.Loop() {
		if c, ok := CommandOf(payload); ok && c == ComQuery {
			n++
		}
	}
	_ = n
}

func BenchmarkAppendPacket(b *testing.B) {
	payload := make([]byte, 200)
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = AppendPacket(buf[:0], 1, payload)
	}
}

func BenchmarkRewriteStatementID(b *testing.B) {
	exec, _ := AppendStmtExecute(nil, 0, 1, 0, []Value{{Type: TypeLong, Int: 1}})
	payload := exec[HeaderSize:]
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_, _ = RewriteStatementID(payload, uint32(i))
	}
}

func BenchmarkTrackResultSet(b *testing.B) {
	for _, bc := range []struct {
		name string
		caps Capabilities
	}{
		{"classic-EOF/1000rows", caps41 | ClientSessionTrack},
		{"deprecate-EOF/1000rows", caps41 | ClientSessionTrack | ClientDeprecateEOF},
	} {
		b.Run(bc.name, func(b *testing.B) {
			stream := resultSetStream(bc.caps, 4, 1000)
			var tr ResponseTracker
			b.SetBytes(int64(len(stream)))
			b.ReportAllocs()
			for b.Loop() {
				if trackStream(&tr, bc.caps, stream) != Complete {
					b.Fatal("incomplete")
				}
			}
		})
	}
}

func BenchmarkTrackOK(b *testing.B) {
	caps := caps41 | ClientSessionTrack
	okPkt, _ := AppendOK(nil, 1, caps, OK{AffectedRows: 1, Status: StatusAutocommit})
	payload := okPkt[HeaderSize:]
	var tr ResponseTracker
	b.ReportAllocs()
	for b.Loop() {
		_, _ = tr.Start(ComQuery, caps)
		_, _ = tr.Feed(payload)
	}
}
