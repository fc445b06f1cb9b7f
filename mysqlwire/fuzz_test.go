package mysqlwire

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// goldenSeeds returns the payloads of every packet in the golden files, so
// each fuzz target starts from real server traffic.
func goldenSeeds(f *testing.F) [][]byte {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.bin"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no golden files: %v", err)
	}
	var out [][]byte
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		for len(b) > 0 {
			p, ok, err := ReadPacket(b, 0)
			if !ok || err != nil {
				f.Fatalf("%s does not frame", name)
			}
			out = append(out, p.Payload)
			b = b[p.Size:]
		}
	}
	return out
}

func goldenFiles(f *testing.F) [][]byte {
	f.Helper()
	files, _ := filepath.Glob(filepath.Join("testdata", "*.bin"))
	var out [][]byte
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func FuzzReadPacket(f *testing.F) {
	for _, b := range goldenFiles(f) {
		f.Add(b, 1<<20)
	}
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0}, 0)
	f.Fuzz(func(t *testing.T, buf []byte, limit int) {
		p, ok, err := ReadPacket(buf, limit)
		if err != nil || !ok {
			return
		}
		if p.Size != HeaderSize+len(p.Payload) || p.Size > len(buf) {
			t.Fatalf("size %d payload %d buf %d", p.Size, len(p.Payload), len(buf))
		}
		if limit > 0 && len(p.Payload) > limit {
			t.Fatalf("payload %d over limit %d", len(p.Payload), limit)
		}
	})
}

func FuzzJoiner(f *testing.F) {
	for _, b := range goldenFiles(f) {
		f.Add(b, 1<<20)
	}
	f.Add([]byte{0xFF, 0xFF, 0x00, 1, 'x'}, 1<<10) // announces 64 KiB-1 under a 1 KiB limit
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0}, MaxPacketPayload-1)
	f.Fuzz(func(t *testing.T, buf []byte, limit int) {
		j := Joiner{MaxPayload: limit}
		payload, _, size, ok, err := j.Next(buf)
		if err == nil && !ok {
			// Asking for more input is a promise that the caller will not
			// buffer past the limit: the headers seen so far fit in it.
			if announced := announcedPayload(buf); announced > effectiveLimit(limit) {
				t.Fatalf("need-more with %d bytes announced over limit %d", announced, limit)
			}
		}
		if err != nil || !ok {
			return
		}
		if size > len(buf) || len(payload) > size {
			t.Fatalf("size %d payload %d buf %d", size, len(payload), len(buf))
		}
	})
}

// announcedPayload sums the payload lengths announced by the chain of
// headers visible at the start of buf, the way a Joiner walks them.
func announcedPayload(buf []byte) int {
	total := 0
	for off := 0; ; {
		n, _, ok := PeekHeader(buf[off:])
		if !ok {
			return total
		}
		total += n
		if n < MaxPacketPayload || len(buf) < off+HeaderSize+n {
			return total
		}
		off += HeaderSize + n
	}
}

func effectiveLimit(limit int) int {
	if limit <= 0 {
		return DefaultMaxPayload
	}
	return limit
}

func FuzzLenEnc(f *testing.F) {
	for _, p := range goldenSeeds(f) {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if v, isNull, n, err := ReadLenEncInt(b); err == nil {
			if n > len(b) || n == 0 {
				t.Fatalf("n %d", n)
			}
			if !isNull && n == LenEncIntSize(v) && !bytes.Equal(AppendLenEncInt(nil, v), b[:n]) {
				t.Fatalf("canonical %d re-encodes differently", v)
			}
		}
		if s, _, n, err := ReadLenEncString(b); err == nil && (n > len(b) || len(s) > n) {
			t.Fatalf("string %d n %d", len(s), n)
		}
		if s, n, err := ReadNulString(b); err == nil && (n != len(s)+1 || n > len(b)) {
			t.Fatalf("nul string %d n %d", len(s), n)
		}
		it := NewTextRowIter(b)
		for {
			if _, _, ok := it.Next(); !ok {
				break
			}
		}
	})
}

func FuzzParseOK(f *testing.F) {
	for _, p := range goldenSeeds(f) {
		f.Add(p, uint64(goldenClassic))
		f.Add(p, uint64(goldenDeprecate))
	}
	f.Fuzz(func(t *testing.T, payload []byte, caps uint64) {
		ok, err := ParseOK(payload, Capabilities(caps))
		if err != nil {
			return
		}
		it := NewSessionStateIter(ok.SessionState)
		for {
			e, more := it.Next()
			if !more {
				break
			}
			_, _ = e.Value()
			_, _, _ = e.SystemVariable()
		}
		// What was decoded must encode and decode to the same fields.
		again, err := ParseOK(AppendOKPayload(nil, Capabilities(caps), ok), Capabilities(caps))
		if err != nil || again.AffectedRows != ok.AffectedRows || again.LastInsertID != ok.LastInsertID || again.Status != ok.Status {
			t.Fatalf("re-encode: %+v vs %+v (%v)", again, ok, err)
		}
	})
}

func FuzzParseERREOF(f *testing.F) {
	for _, p := range goldenSeeds(f) {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		if e, err := ParseERR(payload); err == nil {
			if e.SQLState != nil && len(e.SQLState) != 5 {
				t.Fatalf("sqlstate %q", e.SQLState)
			}
		}
		_, _ = ParseEOF(payload)
		_ = IsResultSetTerminator(payload, true)
		_ = IsProgressReport(payload)
	})
}

func FuzzParseHandshake(f *testing.F) {
	for _, p := range goldenSeeds(f) {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		h, err := ParseHandshake(payload)
		if err != nil {
			return
		}
		if len(h.AuthPluginData) > len(payload) {
			t.Fatalf("nonce %d bytes from a %d-byte payload", len(h.AuthPluginData), len(payload))
		}
	})
}

func FuzzParseHandshakeResponse(f *testing.F) {
	for _, p := range goldenSeeds(f) {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		hr, err := ParseHandshakeResponse(payload)
		if err != nil || hr.SSLRequest {
			return
		}
		// Every response we accept must survive a re-encoding.
		wire, _ := AppendHandshakeResponse(nil, 1, hr)
		again, err := ParseHandshakeResponse(wire[HeaderSize:])
		if err != nil || !bytes.Equal(again.Username, hr.Username) || !bytes.Equal(again.AuthResponse, hr.AuthResponse) && len(hr.AuthResponse) <= 255 {
			t.Fatalf("re-encode: %v", err)
		}
	})
}

func FuzzParseAuthPackets(f *testing.F) {
	for _, p := range goldenSeeds(f) {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		_, _ = ParseAuthSwitchRequest(payload)
		_, _ = AuthMoreData(payload)
		_, _ = VerifyNativePassword(NativePasswordHash([]byte("pw")), testNonce, payload)
		_ = VerifyCachingSHA2(CachingSHA2Hash([]byte("pw")), testNonce, payload)
	})
}

func FuzzParseColumnDefinition(f *testing.F) {
	for _, p := range goldenSeeds(f) {
		f.Add(p, uint64(goldenClassic))
		f.Add(p, uint64(goldenMariaDB))
	}
	f.Fuzz(func(t *testing.T, payload []byte, caps uint64) {
		_, _ = ParseColumnDefinition(payload, Capabilities(caps))
	})
}

func FuzzDecodeBinaryValue(f *testing.F) {
	for _, p := range goldenSeeds(f) {
		f.Add(p, uint8(TypeDateTime), false)
	}
	f.Add([]byte{11, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, uint8(TypeTimestamp), false)
	f.Add([]byte{12, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, uint8(TypeTime), false)
	f.Fuzz(func(t *testing.T, b []byte, typ uint8, unsigned bool) {
		v, n, err := DecodeBinaryValue(b, FieldType(typ), unsigned)
		if err != nil {
			return
		}
		if n > len(b) {
			t.Fatalf("consumed %d of %d", n, len(b))
		}
		enc := AppendBinaryValue(nil, v)
		if len(enc) > n && !v.Null {
			// Encoding picks the shortest form, never a longer one.
			t.Fatalf("re-encoded to %d bytes from %d", len(enc), n)
		}
	})
}

func FuzzBinaryRow(f *testing.F) {
	for _, p := range goldenSeeds(f) {
		f.Add(p, []byte{byte(TypeLong), byte(TypeVarString), byte(TypeDateTime), byte(TypeTime), byte(TypeDouble)})
	}
	f.Fuzz(func(t *testing.T, payload []byte, types []byte) {
		br, err := NewBinaryRowReader(payload, len(types))
		if err != nil {
			return
		}
		for _, typ := range types {
			if _, err := br.Next(FieldType(typ), false); err != nil {
				return
			}
		}
	})
}

func FuzzParseStmtExecute(f *testing.F) {
	exec, _ := AppendStmtExecute(nil, 0, 1, 0, []Value{{Type: TypeLong, Int: 1}, {Type: TypeVarString, Bytes: []byte("x")}, {Type: TypeNull, Null: true}})
	f.Add(exec[HeaderSize:], 3, []byte(nil), uint64(caps41))
	f.Add(exec[HeaderSize:], 3, []byte(nil), uint64(caps41|ClientQueryAttributes))
	for _, p := range goldenSeeds(f) {
		f.Add(p, 1, []byte{byte(TypeLongLong), 0}, uint64(caps41))
	}
	f.Fuzz(func(t *testing.T, payload []byte, numParams int, prevTypes []byte, caps uint64) {
		if numParams > 1<<16 {
			numParams %= 1 << 16 // the prepare response carries a uint16
		}
		e, err := ParseStmtExecute(payload, numParams, prevTypes, Capabilities(caps))
		if err != nil {
			return
		}
		it := e.Params(prevTypes)
		for {
			if _, ok := it.Next(); !ok {
				break
			}
		}
		if p := append([]byte(nil), payload...); len(p) >= 5 {
			if _, err := RewriteStatementID(p, 5); err != nil {
				t.Fatalf("rewrite of a parsed execute failed: %v", err)
			}
		}
	})
}

func FuzzParseCommands(f *testing.F) {
	cu, _ := AppendChangeUser(nil, 0, caps41|ClientConnectAttrs, ChangeUser{Username: []byte("u"), AuthResponse: []byte("12345678901234567890"), Database: []byte("d"), CharacterSet: 8, AuthPlugin: []byte(AuthNativePassword), Attrs: AppendAttr(nil, "a", "b")})
	f.Add(cu[HeaderSize:], uint64(caps41|ClientConnectAttrs))
	for _, p := range goldenSeeds(f) {
		f.Add(p, uint64(caps41))
	}
	f.Fuzz(func(t *testing.T, payload []byte, caps uint64) {
		if c, err := ParseChangeUser(payload, Capabilities(caps)); err == nil {
			it := NewAttrIter(c.Attrs)
			for {
				if _, _, ok := it.Next(); !ok {
					break
				}
			}
		}
		_, _ = ParseStmtSendLongData(payload)
		_, _ = ParseStmtClose(payload)
		_, _ = ParseStmtReset(payload)
		_, _, _ = ParseStmtFetch(payload)
		_, _ = ParseSetOption(payload)
		_, _ = ParsePrepareOK(payload)
		_, _ = StatementID(payload)
		_, _ = QueryText(payload, Capabilities(caps))
	})
}

// FuzzResponseTracker feeds arbitrary framed packets to a tracker for every
// command. It must never panic, must stop accepting packets once complete,
// and must not allocate on the success path.
func FuzzResponseTracker(f *testing.F) {
	for _, b := range goldenFiles(f) {
		for _, cmd := range []Command{ComQuery, ComStmtExecute, ComStmtPrepare, ComStmtFetch, ComFieldList} {
			f.Add(byte(cmd), uint64(goldenClassic), b)
			f.Add(byte(cmd), uint64(goldenDeprecate), b)
		}
	}
	f.Fuzz(func(t *testing.T, cmd byte, caps uint64, stream []byte) {
		var tr ResponseTracker
		if _, err := tr.Start(Command(cmd), Capabilities(caps)); err != nil {
			return
		}
		for len(stream) > 0 {
			p, ok, err := ReadPacket(stream, 0)
			if !ok || err != nil {
				return
			}
			stream = stream[p.Size:]
			wasDone := tr.Done()
			prog, err := tr.Feed(p.Payload)
			if wasDone && err == nil && tr.LastKind() != KindContinuation {
				t.Fatal("packet accepted after completion")
			}
			if err != nil {
				if !tr.Done() {
					t.Fatal("error without ending the response")
				}
				continue
			}
			if (prog == Complete) != tr.Done() {
				t.Fatalf("progress %v but done=%v", prog, tr.Done())
			}
		}
	})
}

// framingScratch is shared by FuzzFraming's iterations: payloads around
// 2^24 bytes are too large to allocate afresh for each input.
var framingScratch []byte

// FuzzFraming frames payloads whose length lies within a few hundred bytes
// of a multiple of MaxPacketPayload (where a writer that puts one 3-byte
// header on a long payload lets its tail run as further packets: request
// smuggling) and checks that every packet but the last is full, the
// sequence ids run on, the size is FramedLen's, and a Joiner gives the same
// payload back.
func FuzzFraming(f *testing.F) {
	for _, d := range []int16{-7, -1, 0, 1, 7, 300} {
		f.Add(uint8(1), d, uint8(0), byte('x'))
		f.Add(uint8(0), d, uint8(255), byte(0x03))
	}
	f.Fuzz(func(t *testing.T, chunks uint8, delta int16, seq uint8, fill byte) {
		n := int(chunks%3)*MaxPacketPayload + int(delta)%512
		if n < 0 {
			n = -n
		}
		if cap(framingScratch) < n {
			framingScratch = make([]byte, 2*MaxPacketPayload+512)
		}
		payload := framingScratch[:n]
		for i := range payload {
			payload[i] = fill + byte(i)
		}
		wire, next := AppendPacket(nil, seq, payload)
		if len(wire) != FramedLen(n) {
			t.Fatalf("payload %d: framed to %d bytes, FramedLen says %d", n, len(wire), FramedLen(n))
		}
		packets := 0
		for off := 0; off < len(wire); packets++ {
			size, s, ok := PeekHeader(wire[off:])
			if !ok || off+HeaderSize+size > len(wire) {
				t.Fatalf("payload %d: packet %d at %d does not fit", n, packets, off)
			}
			if s != seq+uint8(packets) {
				t.Fatalf("payload %d: packet %d has sequence id %d, want %d", n, packets, s, seq+uint8(packets))
			}
			off += HeaderSize + size
			if (off == len(wire)) != (size < MaxPacketPayload) {
				t.Fatalf("payload %d: packet %d of %d bytes ends at %d of %d", n, packets, size, off, len(wire))
			}
		}
		if next != seq+uint8(packets) {
			t.Fatalf("payload %d: next sequence id %d after %d packets from %d", n, next, packets, seq)
		}
		var j Joiner
		got, _, size, ok, err := j.Next(wire)
		if err != nil || !ok || size != len(wire) || !bytes.Equal(got, payload) {
			t.Fatalf("payload %d: joiner gave %d bytes, ok %v, err %v, consumed %d of %d", n, len(got), ok, err, size, len(wire))
		}
	})
}
