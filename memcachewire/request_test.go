package memcachewire

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseRequest(t *testing.T) {
	long := strings.Repeat("k", MaxKeyLen)
	tests := []struct {
		in      string
		status  Status
		cmd     Command
		key     string
		keys    string
		nkeys   int
		data    string
		noreply bool
		cut     string // Line[:ReplyCut] (or the line without q)
		size    int    // 0: len(in)
		check   func(t *testing.T, r *Request)
	}{
		{in: "get a\r\n", cmd: CmdGet, keys: "a", nkeys: 1, cut: "get a"},
		{in: "get a  b c\r\n", cmd: CmdGet, keys: "a  b c", nkeys: 3, cut: "get a  b c"},
		{in: "get a\n", cmd: CmdGet, keys: "a", nkeys: 1, cut: "get a"},
		{in: "gets " + long + "\r\n", cmd: CmdGets, keys: long, nkeys: 1},
		{in: "gets " + long + "x\r\n", status: ErrBadFormat, cmd: CmdGets},
		{in: "get\r\n", status: ErrUnknown, cmd: CmdGet},
		{in: "gat 100 a b\r\n", cmd: CmdGat, keys: "a b", nkeys: 2, check: func(t *testing.T, r *Request) {
			if r.Exptime != 100 || string(r.Line[:r.KeysAt]) != "gat 100 " {
				t.Errorf("exptime %d prefix %q", r.Exptime, r.Line[:r.KeysAt])
			}
		}},
		{in: "gats -1 a\r\n", cmd: CmdGats, keys: "a", nkeys: 1},
		{in: "gat abc k\r\n", status: ErrBadExptime, cmd: CmdGat},
		{in: "gat 1\r\n", status: ErrUnknown, cmd: CmdGat},
		{in: "set k 5 10 2\r\nhi\r\n", cmd: CmdSet, key: "k", data: "hi", cut: "set k 5 10 2", check: func(t *testing.T, r *Request) {
			if r.Flags != 5 || r.Exptime != 10 {
				t.Errorf("flags %d exptime %d", r.Flags, r.Exptime)
			}
		}},
		{in: "set k 0 0 2 noreply\r\nhi\r\n", cmd: CmdSet, key: "k", data: "hi", noreply: true, cut: "set k 0 0 2"},
		{in: "set k 0 0 2 foo\r\nhi\r\n", cmd: CmdSet, key: "k", data: "hi", cut: "set k 0 0 2 foo"},
		{in: "set k 0 0 0\r\n\r\n", cmd: CmdSet, key: "k", data: ""},
		{in: "set k 0 0 2 noreply junk\r\nhi\r\n", status: ErrUnknown, cmd: CmdSet, size: len("set k 0 0 2 noreply junk\r\n")},
		{in: "set k 0 0 -1\r\n", status: ErrBadFormat, cmd: CmdSet},
		{in: "set k x 0 1\r\n", status: ErrBadFormat, cmd: CmdSet},
		{in: "set k 4294967296 0 1\r\n", status: ErrBadFormat, cmd: CmdSet},
		{in: "set k 4294967295 0 1\r\na\r\n", cmd: CmdSet, key: "k", data: "a"},
		{in: "set " + long + "x 0 0 1\r\n", status: ErrBadFormat, cmd: CmdSet},
		{in: "set k 0 0 2\r\nabcd\r\n", status: ErrBadChunk, cmd: CmdSet, size: len("set k 0 0 2\r\nabcd")},
		{in: "set k 0 0 2000000\r\n", status: ErrTooLarge, cmd: CmdSet, size: len("set k 0 0 2000000\r\n") + 2000002},
		{in: "add k 0 0 1\r\n1\r\n", cmd: CmdAdd, key: "k", data: "1"},
		{in: "replace k 0 0 1\r\n1\r\n", cmd: CmdReplace, key: "k", data: "1"},
		{in: "append k 0 0 1\r\n1\r\n", cmd: CmdAppend, key: "k", data: "1"},
		{in: "prepend k 0 0 1\r\n1\r\n", cmd: CmdPrepend, key: "k", data: "1"},
		{in: "cas k 0 0 1 77 noreply\r\n1\r\n", cmd: CmdCas, key: "k", data: "1", noreply: true, cut: "cas k 0 0 1 77", check: func(t *testing.T, r *Request) {
			if r.Cas != 77 {
				t.Errorf("cas %d", r.Cas)
			}
		}},
		{in: "cas k 0 0 1\r\n", status: ErrUnknown, cmd: CmdCas},
		{in: "delete k\r\n", cmd: CmdDelete, key: "k", cut: "delete k"},
		{in: "delete k noreply\r\n", cmd: CmdDelete, key: "k", noreply: true, cut: "delete k"},
		{in: "delete k 0\r\n", cmd: CmdDelete, key: "k"},
		{in: "delete k 0 noreply\r\n", cmd: CmdDelete, key: "k", noreply: true, cut: "delete k 0"},
		{in: "delete k 5\r\n", status: ErrDeleteUsage, cmd: CmdDelete},
		{in: "incr k 5\r\n", cmd: CmdIncr, key: "k", check: func(t *testing.T, r *Request) {
			if r.Delta != 5 {
				t.Errorf("delta %d", r.Delta)
			}
		}},
		{in: "decr k 18446744073709551615 noreply\r\n", cmd: CmdDecr, key: "k", noreply: true, cut: "decr k 18446744073709551615"},
		{in: "incr k 18446744073709551616\r\n", status: ErrBadDelta, cmd: CmdIncr},
		{in: "incr k abc\r\n", status: ErrBadDelta, cmd: CmdIncr},
		{in: "touch k 10\r\n", cmd: CmdTouch, key: "k"},
		{in: "touch k abc\r\n", status: ErrBadExptime, cmd: CmdTouch},
		{in: "mg k v f t\r\n", cmd: CmdMetaGet, key: "k", cut: "mg k v f t", check: func(t *testing.T, r *Request) {
			if string(r.MetaFlags) != "v f t" {
				t.Errorf("flags %q", r.MetaFlags)
			}
		}},
		{in: "mg k v q O12\r\n", cmd: CmdMetaGet, key: "k", noreply: true, cut: "mg k v O12"},
		{in: "mg\r\n", status: ErrUnknown, cmd: CmdMetaGet},
		{in: "mg Zm9v b v\r\n", cmd: CmdMetaGet, key: "Zm9v", check: func(t *testing.T, r *Request) {
			var buf [MaxKeyLen]byte
			if !r.Base64 || string(DecodeBase64Key(buf[:], r.Key)) != "foo" {
				t.Errorf("base64 %v %q", r.Base64, DecodeBase64Key(buf[:], r.Key))
			}
		}},
		{in: "mg Zm9!v b v\r\n", status: ErrBadFormat, cmd: CmdMetaGet},
		{in: "ms k 2 T90 F1 q\r\nhi\r\n", cmd: CmdMetaSet, key: "k", data: "hi", noreply: true, cut: "ms k 2 T90 F1"},
		{in: "ms k\r\n", status: ErrBadFormat, cmd: CmdMetaSet},
		{in: "ms k 2000000\r\n", status: ErrTooLarge, cmd: CmdMetaSet, size: len("ms k 2000000\r\n") + 2000002},
		{in: "md k q\r\n", cmd: CmdMetaDelete, key: "k", noreply: true, cut: "md k"},
		{in: "ma k N0 J5 v\r\n", cmd: CmdMetaArithmetic, key: "k"},
		{in: "mn\r\n", cmd: CmdMetaNoop},
		{in: "me k\r\n", cmd: CmdMetaDebug, key: "k"},
		{in: "version\r\n", cmd: CmdVersion},
		{in: "stats\r\n", cmd: CmdStats},
		{in: "stats slabs\r\n", cmd: CmdStats},
		{in: "verbosity 1\r\n", cmd: CmdVerbosity},
		{in: "verbosity 1 noreply\r\n", cmd: CmdVerbosity, noreply: true, cut: "verbosity 1"},
		{in: "verbosity\r\n", status: ErrUnknown, cmd: CmdVerbosity},
		// As memcached 1.6.18 answers them:
		{in: "verbosity noreply\r\n", cmd: CmdVerbosity, noreply: true, cut: "verbosity"},
		{in: "verbosity foo\r\n", status: ErrBadFormat, cmd: CmdVerbosity},
		{in: "verbosity foo bar my\r\n", status: ErrUnknown, cmd: CmdVerbosity},
		{in: "version foo bar\r\n", cmd: CmdVersion},
		{in: "quit noreply\r\n", cmd: CmdQuit},
		{in: "stats noreply\r\n", status: ErrUnknown, cmd: CmdStats},
		{in: "flush_all\r\n", cmd: CmdFlushAll},
		{in: "flush_all 10\r\n", cmd: CmdFlushAll},
		{in: "flush_all noreply\r\n", cmd: CmdFlushAll, noreply: true, cut: "flush_all"},
		{in: "flush_all 10 noreply\r\n", cmd: CmdFlushAll, noreply: true, cut: "flush_all 10"},
		{in: "flush_all abc\r\n", status: ErrBadExptime, cmd: CmdFlushAll},
		{in: "quit\r\n", cmd: CmdQuit},
		{in: "\r\n", status: ErrUnknown},
		{in: "bogus\r\n", status: ErrUnknown},
		{in: "GET a\r\n", status: ErrUnknown},
		{in: "set " + strings.Repeat("a ", 2000) + "\r\n", status: ErrLineTooLong, cmd: CmdSet},
		{in: "get " + strings.Repeat("a ", 5000) + "\r\n", cmd: CmdGet, keys: strings.Repeat("a ", 5000), nkeys: 5000},
	}
	lim := Limits{}
	for _, tt := range tests {
		name := tt.in
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			var r Request
			st := ParseRequest([]byte(tt.in), &lim, &r)
			if st == Incomplete && tt.status == ErrTooLarge {
				t.Fatalf("status %v, want %v", st, tt.status)
			}
			if st != tt.status {
				t.Fatalf("status %v, want %v", st, tt.status)
			}
			if r.Cmd != tt.cmd {
				t.Errorf("cmd %v, want %v", r.Cmd, tt.cmd)
			}
			if st == ErrLineTooLong {
				return
			}
			want := tt.size
			if want == 0 && (st == OK || st == ErrBadChunk) {
				want = len(tt.in)
			}
			if want != 0 && r.Size != want {
				t.Errorf("size %d, want %d", r.Size, want)
			}
			if st != OK {
				return
			}
			if string(r.Key) != tt.key {
				t.Errorf("key %q, want %q", r.Key, tt.key)
			}
			if string(r.Keys) != tt.keys || r.NKeys != tt.nkeys {
				t.Errorf("keys %q (%d), want %q (%d)", r.Keys, r.NKeys, tt.keys, tt.nkeys)
			}
			if string(r.Data) != tt.data {
				t.Errorf("data %q, want %q", r.Data, tt.data)
			}
			if r.Noreply != tt.noreply {
				t.Errorf("noreply %v", r.Noreply)
			}
			if tt.cut != "" {
				got := string(r.Line[:r.ReplyCut])
				if r.QuietAt >= 0 {
					h, tl := r.CutQuiet()
					got = string(h) + string(tl)
				}
				if got != tt.cut {
					t.Errorf("line for the server %q, want %q", got, tt.cut)
				}
			}
			if tt.check != nil {
				tt.check(t, &r)
			}
		})
	}
}

// TestParseRequestInPieces feeds every prefix of a pipeline of requests:
// each prefix shorter than a whole request is Incomplete, never an error,
// and the whole one parses to the same request.
func TestParseRequestInPieces(t *testing.T) {
	inputs := []string{
		"set k 1 2 10\r\n0123456789\r\n",
		"get a b c\r\n",
		"ms k 3 T1\r\nabc\r\n",
		"cas k 0 0 1 9 noreply\r\nx\r\n",
		"mn\r\n",
	}
	lim := Limits{}
	for _, in := range inputs {
		var r Request
		for i := 0; i < len(in); i++ {
			if st := ParseRequest([]byte(in[:i]), &lim, &r); st != Incomplete {
				t.Fatalf("%q: prefix of %d bytes: %v, want incomplete", in, i, st)
			}
		}
		if st := ParseRequest([]byte(in+"get x\r\n"), &lim, &r); st != OK || r.Size != len(in) {
			t.Fatalf("%q: %v size %d", in, st, r.Size)
		}
	}
}

func TestLimits(t *testing.T) {
	lim := Limits{MaxLine: 64, MaxKeysLine: 128, MaxValue: 10}
	var r Request
	cases := []struct {
		in   string
		want Status
	}{
		{"set k 0 0 10\r\n0123456789\r\n", OK},
		{"set k 0 0 11\r\n", ErrTooLarge},
		{"set " + strings.Repeat("k", 70), ErrLineTooLong},             // no line end yet, already over
		{"get " + strings.Repeat("k ", 40), Incomplete},                // retrievals may be longer
		{"get " + strings.Repeat("k ", 70), ErrLineTooLong},            // but not without bound
		{"get " + strings.Repeat("k ", 40) + "\r\n", OK},               //
		{"delete " + strings.Repeat("k", 60) + "\r\n", ErrLineTooLong}, // complete but too long
	}
	for _, c := range cases {
		if st := ParseRequest([]byte(c.in), &lim, &r); st != c.want {
			t.Errorf("%.30q: %v, want %v", c.in, st, c.want)
		}
	}
}

func TestNextKey(t *testing.T) {
	var got []string
	for rest := []byte("  a bb  ccc "); ; {
		var k []byte
		k, rest = NextKey(rest)
		if k == nil {
			break
		}
		got = append(got, string(k))
	}
	if strings.Join(got, ",") != "a,bb,ccc" {
		t.Fatalf("keys %q", got)
	}
}

func TestRoundTripBuilders(t *testing.T) {
	var r Request
	lim := Limits{}
	b := AppendStorage(nil, CmdCas, []byte("key"), 7, -1, []byte("va\r\nl"), 99, true)
	if st := ParseRequest(b, &lim, &r); st != OK || r.Cmd != CmdCas || string(r.Key) != "key" || r.Flags != 7 ||
		r.Exptime != -1 || string(r.Data) != "va\r\nl" || r.Cas != 99 || !r.Noreply || r.Size != len(b) {
		t.Fatalf("%v %+v", st, r)
	}
	b = AppendRetrieval(nil, CmdGats, 5, []byte("a"), []byte("b"))
	if st := ParseRequest(b, &lim, &r); st != OK || string(b) != "gats 5 a b\r\n" || r.NKeys != 2 {
		t.Fatalf("%v %q", st, b)
	}
	var resp Response
	b = AppendValue(nil, []byte("k"), 3, []byte("xyz"), 12, true)
	if st := ParseResponse(b, 0, &resp); st != OK || resp.Kind != RespValue || string(resp.Key) != "k" ||
		resp.Flags != 3 || resp.Cas != 12 || !resp.HasCas || string(resp.Data) != "xyz" || resp.Size != len(b) {
		t.Fatalf("%v %+v", st, resp)
	}
}

func TestStatusReplies(t *testing.T) {
	for s := ErrUnknown; s <= ErrBadResponse; s++ {
		r := s.Reply()
		if !bytes.HasSuffix(r, []byte("\r\n")) || !(bytes.HasPrefix(r, []byte("ERROR")) ||
			bytes.HasPrefix(r, []byte("CLIENT_ERROR ")) || bytes.HasPrefix(r, []byte("SERVER_ERROR "))) {
			t.Errorf("%d: reply %q", s, r)
		}
	}
	if OK.Reply() != nil || Incomplete.Reply() != nil {
		t.Error("OK and Incomplete have no reply")
	}
}

func TestParseAllocatesNothing(t *testing.T) {
	lim := Limits{}
	reqs := [][]byte{
		[]byte("get a b c d e f\r\n"),
		[]byte("set k 0 0 5 noreply\r\nhello\r\n"),
		[]byte("mg k v q b O1\r\n"),
		[]byte("incr k 5\r\n"),
	}
	var r Request
	var resp Response
	var keybuf [MaxKeyLen]byte
	resps := []byte("VALUE k 0 5 9\r\nhello\r\nEND\r\n")
	allocs := testing.AllocsPerRun(200, func() {
		for _, in := range reqs {
			_ = ParseRequest(in, &lim, &r)
			for rest := r.Keys; ; {
				var k []byte
				if k, rest = NextKey(rest); k == nil {
					break
				}
			}
		}
		_ = DecodeBase64Key(keybuf[:], []byte("Zm9vYmFy"))
		_ = ParseResponse(resps, 0, &resp)
		_ = ParseResponse(resps[resp.Size:], 0, &resp)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run", allocs)
	}
	buf := make([]byte, 0, 256)
	allocs = testing.AllocsPerRun(200, func() {
		b := AppendStorage(buf[:0], CmdSet, []byte("k"), 1, 2, []byte("v"), 0, false)
		b = AppendValue(b, []byte("k"), 1, []byte("v"), 3, true)
		_ = AppendRetrieval(b, CmdGet, 0, []byte("a"))
	})
	if allocs != 0 {
		t.Fatalf("builders: %v allocations per run", allocs)
	}
}
