package memcachewire

import (
	"bytes"
	"encoding/base64"
	"testing"
)

// FuzzParseRequest checks that no input panics, that a status's Size never
// points inside the line it came from when the request is whole, that every
// key and data block aliases the input within bounds, and that a complete
// request parses the same when more input follows it.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"get a b\r\n", "gat 1 a\r\n", "set k 0 0 2 noreply\r\nhi\r\n", "cas k 1 2 3 4\r\nabc\r\n",
		"delete k 0 noreply\r\n", "incr k 1\r\n", "touch k 1\r\n", "mg k v q b\r\n", "ms k 2 q\r\nhi\r\n",
		"md k q\r\n", "ma k N0\r\n", "mn\r\n", "me k\r\n", "version\r\n", "stats\r\n", "verbosity 1\r\n",
		"flush_all 0 noreply\r\n", "quit\r\n", "set k 0 0 99999999\r\n", "set k 0 0 2\r\nabcd",
	} {
		f.Add([]byte(s))
	}
	lim := Limits{MaxLine: 256, MaxKeysLine: 1024, MaxValue: 4096}
	f.Fuzz(func(t *testing.T, in []byte) {
		var r Request
		st := ParseRequest(in, &lim, &r)
		switch st {
		case Incomplete:
			return
		case OK:
			if r.Size <= 0 || r.Size > len(in) {
				t.Fatalf("size %d of %d", r.Size, len(in))
			}
			if len(r.Data) > lim.MaxValue {
				t.Fatalf("data %d over the limit", len(r.Data))
			}
			if len(r.Key) > MaxKeyLen {
				t.Fatalf("key %d", len(r.Key))
			}
			n := 0
			for rest := r.Keys; ; {
				var k []byte
				if k, rest = NextKey(rest); k == nil {
					break
				}
				if len(k) > MaxKeyLen || bytes.IndexByte(k, ' ') >= 0 {
					t.Fatalf("key %q", k)
				}
				n++
			}
			if n != r.NKeys {
				t.Fatalf("%d keys walked, %d counted", n, r.NKeys)
			}
			if r.ReplyCut > len(r.Line) || (r.QuietAt >= 0 && r.QuietAt >= len(r.Line)) {
				t.Fatalf("cut %d quiet %d of %d", r.ReplyCut, r.QuietAt, len(r.Line))
			}
			_, _ = r.CutQuiet()
			var again Request
			more := append(append([]byte{}, in[:r.Size]...), "get x\r\n"...)
			if st2 := ParseRequest(more, &lim, &again); st2 != OK || again.Size != r.Size || again.Cmd != r.Cmd {
				t.Fatalf("reparse with more input: %v size %d/%d", st2, again.Size, r.Size)
			}
		default:
			if st.Reply() == nil {
				t.Fatalf("status %v without a reply", st)
			}
			if st != ErrLineTooLong && r.Size <= 0 {
				t.Fatalf("error %v with size %d", st, r.Size)
			}
		}
	})
}

// FuzzParseResponse checks a stream of server responses: no panic, every
// element within bounds, and progress on every OK.
func FuzzParseResponse(f *testing.F) {
	for _, s := range []string{
		"VALUE k 1 2\r\nhi\r\nEND\r\n", "VALUE k 1 2 9\r\nhi\r\n", "STORED\r\n", "42\r\n",
		"VA 2 f1\r\nhi\r\nHD\r\nEN\r\nMN\r\n", "STAT pid 1\r\nEND\r\n", "SERVER_ERROR x\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		for len(in) > 0 {
			var r Response
			st := ParseResponse(in, 4096, &r)
			if st != OK {
				if st != Incomplete && st.Reply() == nil {
					t.Fatalf("status %v", st)
				}
				return
			}
			if r.Size <= 0 || r.Size > len(in) || len(r.Data) > 4096 || r.Kind == RespNone {
				t.Fatalf("element %+v of %d bytes", r, len(in))
			}
			in = in[r.Size:]
		}
	})
}

// FuzzDecodeBase64Key compares the hand-written decoder (it must not
// allocate) with its definition on valid keys.
func FuzzDecodeBase64Key(f *testing.F) {
	f.Add([]byte("Zm9v"))
	f.Add([]byte("Zm8="))
	f.Add([]byte("Zg=="))
	f.Fuzz(func(t *testing.T, k []byte) {
		var dst [MaxKeyLen]byte
		got := DecodeBase64Key(dst[:], k)
		if got == nil {
			return
		}
		want, err := base64.StdEncoding.DecodeString(string(k))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("decoded %q from %q, encoding/base64 says %q (%v)", got, k, want, err)
		}
	})
}
