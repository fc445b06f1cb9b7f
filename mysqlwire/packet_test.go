package mysqlwire

import (
	"bytes"
	"errors"
	"testing"
)

func TestReadPacket(t *testing.T) {
	tests := []struct {
		name     string
		buf      []byte
		max      int
		wantOK   bool
		wantErr  error
		wantPay  []byte
		wantSeq  uint8
		wantSize int
	}{
		{name: "empty", buf: nil},
		{name: "partial header", buf: []byte{1, 0}},
		{name: "header only", buf: []byte{3, 0, 0, 7}},
		{name: "partial payload", buf: []byte{3, 0, 0, 7, 'a', 'b'}},
		{name: "complete", buf: []byte{3, 0, 0, 7, 'a', 'b', 'c'}, wantOK: true, wantPay: []byte("abc"), wantSeq: 7, wantSize: 7},
		{name: "complete with trailing bytes", buf: []byte{1, 0, 0, 2, 'x', 9, 9}, wantOK: true, wantPay: []byte("x"), wantSeq: 2, wantSize: 5},
		{name: "empty payload", buf: []byte{0, 0, 0, 3}, wantOK: true, wantPay: []byte{}, wantSeq: 3, wantSize: 4},
		{name: "over limit before payload arrives", buf: []byte{0, 1, 0, 0}, max: 255, wantErr: ErrPacketTooLarge},
		{name: "at limit", buf: append([]byte{4, 0, 0, 0}, "abcd"...), max: 4, wantOK: true, wantPay: []byte("abcd"), wantSize: 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok, err := ReadPacket(tt.buf, tt.max)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tt.wantOK)
			}
			if !ok {
				return
			}
			if !bytes.Equal(p.Payload, tt.wantPay) || p.Seq != tt.wantSeq || p.Size != tt.wantSize {
				t.Fatalf("got %q seq %d size %d, want %q seq %d size %d", p.Payload, p.Seq, p.Size, tt.wantPay, tt.wantSeq, tt.wantSize)
			}
			if len(p.Payload) > 0 && &p.Payload[0] != &tt.buf[HeaderSize] {
				t.Fatal("payload does not alias the input buffer")
			}
		})
	}
}

func TestAppendPacketSplitsLargePayloads(t *testing.T) {
	tests := []struct {
		name       string
		size       int
		wantChunks []int
	}{
		{"empty", 0, []int{0}},
		{"small", 10, []int{10}},
		{"one below max", MaxPacketPayload - 1, []int{MaxPacketPayload - 1}},
		{"exactly max", MaxPacketPayload, []int{MaxPacketPayload, 0}},
		{"max plus one", MaxPacketPayload + 1, []int{MaxPacketPayload, 1}},
		{"two full chunks", 2 * MaxPacketPayload, []int{MaxPacketPayload, MaxPacketPayload, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload := make([]byte, tt.size)
			for i := range payload {
				payload[i] = byte(i * 7)
			}
			const startSeq = 254 // exercises wraparound
			for _, builder := range []string{"AppendPacket", "FinishPacket"} {
				var out []byte
				var next uint8
				if builder == "AppendPacket" {
					out, next = AppendPacket([]byte("xx"), startSeq, payload)
				} else {
					buf, at := AppendHeader([]byte("xx"))
					buf = append(buf, payload...)
					out, next = FinishPacket(buf, at, startSeq)
				}
				if want := uint8(startSeq + len(tt.wantChunks)); next != want {
					t.Fatalf("%s: next seq = %d, want %d", builder, next, want)
				}
				rest := out[2:]
				var joined []byte
				for i, want := range tt.wantChunks {
					p, ok, err := ReadPacket(rest, 0)
					if err != nil || !ok {
						t.Fatalf("%s: chunk %d: ok=%v err=%v", builder, i, ok, err)
					}
					if len(p.Payload) != want || p.Seq != uint8(startSeq+i) {
						t.Fatalf("%s: chunk %d: len %d seq %d, want len %d seq %d", builder, i, len(p.Payload), p.Seq, want, uint8(startSeq+i))
					}
					joined = append(joined, p.Payload...)
					rest = rest[p.Size:]
				}
				if len(rest) != 0 || !bytes.Equal(joined, payload) {
					t.Fatalf("%s: leftover %d bytes or payload mismatch", builder, len(rest))
				}
				var j Joiner
				got, lastSeq, size, ok, err := j.Next(out[2:])
				if err != nil || !ok || size != len(out)-2 || !bytes.Equal(got, payload) || lastSeq != uint8(startSeq+len(tt.wantChunks)-1) {
					t.Fatalf("%s: joiner: ok=%v err=%v size=%d lastSeq=%d", builder, ok, err, size, lastSeq)
				}
			}
		})
	}
}

func TestJoinerNeedsMoreAndLimits(t *testing.T) {
	payload := make([]byte, MaxPacketPayload+5)
	wire, _ := AppendPacket(nil, 0, payload)
	var j Joiner
	for _, cut := range []int{0, 3, HeaderSize + 100, HeaderSize + MaxPacketPayload, HeaderSize + MaxPacketPayload + 2, len(wire) - 1} {
		if _, _, _, ok, err := j.Next(wire[:cut]); ok || err != nil {
			t.Fatalf("cut %d: ok=%v err=%v, want need-more", cut, ok, err)
		}
	}
	j.MaxPayload = MaxPacketPayload
	if _, _, _, _, err := j.Next(wire); !errors.Is(err, ErrPacketTooLarge) {
		t.Fatalf("limit: err = %v, want ErrPacketTooLarge", err)
	}
	// The limit must trip from headers alone, before the data arrives.
	if _, _, _, _, err := j.Next(wire[:HeaderSize+MaxPacketPayload+HeaderSize]); !errors.Is(err, ErrPacketTooLarge) {
		t.Fatalf("early limit: err = %v, want ErrPacketTooLarge", err)
	}
	bad := append([]byte(nil), wire...)
	bad[HeaderSize+MaxPacketPayload+3] = 5 // continuation with a wrong sequence id
	j.MaxPayload = 0
	if _, _, _, _, err := j.Next(bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad seq: err = %v, want ErrMalformed", err)
	}
	small := []byte{2, 0, 0, 0, 'h', 'i'}
	j.MaxPayload = 1
	if _, _, _, _, err := j.Next(small); !errors.Is(err, ErrPacketTooLarge) {
		t.Fatalf("small over limit: err = %v", err)
	}
}

// TestJoinerLimitFromHeader checks that a payload over the limit is refused
// as soon as the header announcing it is visible, whatever part of the data
// has arrived: a caller buffers until Next succeeds, so waiting for the data
// would let a peer make it hold the whole announced size.
func TestJoinerLimitFromHeader(t *testing.T) {
	const limit = 64 << 10
	tests := []struct {
		name     string
		announce int // payload length in the first header
		sent     int // payload bytes present after it
		wantErr  error
	}{
		{"at the limit, complete", limit, limit, nil},
		{"at the limit, partial", limit, 100, nil},
		{"one over, header only", limit + 1, 0, ErrPacketTooLarge},
		{"one over, 60 KiB sent", limit + 1, 60 << 10, ErrPacketTooLarge},
		{"16 MiB-2 announced, 60 KiB sent", MaxPacketPayload - 1, 60 << 10, ErrPacketTooLarge},
		{"split payload, 60 KiB of the first chunk", MaxPacketPayload, 60 << 10, ErrPacketTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := make([]byte, HeaderSize+tt.sent)
			PutHeader(in, tt.announce, 1)
			j := Joiner{MaxPayload: limit}
			payload, seq, size, ok, err := j.Next(in)
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) || ok {
					t.Fatalf("ok=%v err=%v, want %v", ok, err, tt.wantErr)
				}
			case tt.sent < tt.announce:
				if ok || err != nil {
					t.Fatalf("ok=%v err=%v, want need-more", ok, err)
				}
			default:
				if !ok || err != nil || len(payload) != tt.announce || size != len(in) || seq != 1 {
					t.Fatalf("ok=%v err=%v len=%d size=%d seq=%d", ok, err, len(payload), size, seq)
				}
			}
		})
	}
}

func TestLenEncInt(t *testing.T) {
	values := []uint64{0, 1, 250, 251, 252, 0xFFFF, 0x10000, 0xFFFFFF, 0x1000000, 1<<64 - 1}
	for _, v := range values {
		b := AppendLenEncInt(nil, v)
		if len(b) != LenEncIntSize(v) {
			t.Fatalf("%d: size %d, LenEncIntSize %d", v, len(b), LenEncIntSize(v))
		}
		got, isNull, n, err := ReadLenEncInt(b)
		if err != nil || isNull || n != len(b) || got != v {
			t.Fatalf("%d: got %d null=%v n=%d err=%v", v, got, isNull, n, err)
		}
		for cut := 0; cut < len(b); cut++ {
			if _, _, _, err := ReadLenEncInt(b[:cut]); !errors.Is(err, ErrTruncated) {
				t.Fatalf("%d cut %d: err = %v, want ErrTruncated", v, cut, err)
			}
		}
	}
	if _, isNull, n, err := ReadLenEncInt([]byte{0xFB}); !isNull || n != 1 || err != nil {
		t.Fatalf("NULL marker: null=%v n=%d err=%v", isNull, n, err)
	}
	if _, _, _, err := ReadLenEncInt([]byte{0xFF}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("0xFF: err = %v", err)
	}
}

func TestLenEncAndNulStrings(t *testing.T) {
	for _, s := range []string{"", "a", string(make([]byte, 300)), string(make([]byte, 70000))} {
		b := AppendLenEncStr([]byte{}, s)
		got, isNull, n, err := ReadLenEncString(append(b, "tail"...))
		if err != nil || isNull || n != len(b) || string(got) != s {
			t.Fatalf("len %d: n=%d err=%v", len(s), n, err)
		}
		if len(s) > 0 {
			if _, _, _, err := ReadLenEncString(b[:len(b)-1]); !errors.Is(err, ErrTruncated) {
				t.Fatalf("len %d truncated: err = %v", len(s), err)
			}
		}
	}
	// A length that overflows int must not wrap into a small slice.
	huge := []byte{0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 'x'}
	if _, _, _, err := ReadLenEncString(huge); !errors.Is(err, ErrTruncated) {
		t.Fatalf("huge length: err = %v", err)
	}
	b := AppendNulString(nil, "root")
	s, n, err := ReadNulString(append(b, 'x'))
	if err != nil || string(s) != "root" || n != 5 {
		t.Fatalf("nul string: %q %d %v", s, n, err)
	}
	if _, _, err := ReadNulString([]byte("unterminated")); !errors.Is(err, ErrTruncated) {
		t.Fatalf("unterminated: err = %v", err)
	}
}

func TestReaderStickyError(t *testing.T) {
	r := reader{b: []byte{1, 2, 3}}
	if r.u16() != 0x0201 || r.err != nil {
		t.Fatal("u16 failed")
	}
	if r.u32() != 0 || !errors.Is(r.err, ErrTruncated) {
		t.Fatalf("u32 past end: err = %v", r.err)
	}
	if r.u8() != 0 || r.bytes(0) != nil || r.lenEncString() != nil {
		t.Fatal("reads after an error must return zero values")
	}
}

func TestFramedLen(t *testing.T) {
	for _, tc := range []struct{ payload, want int }{
		{0, 4},
		{1, 5},
		{MaxPacketPayload - 1, MaxPacketPayload + 3},
		{MaxPacketPayload, MaxPacketPayload + 8},      // a full packet and an empty one
		{MaxPacketPayload + 7, MaxPacketPayload + 15}, // the smuggling length of the hotfix issue
		{2 * MaxPacketPayload, 2*MaxPacketPayload + 12},
	} {
		if got := FramedLen(tc.payload); got != tc.want {
			t.Errorf("FramedLen(%d) = %d, want %d", tc.payload, got, tc.want)
		}
	}
}
