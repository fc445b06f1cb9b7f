package memcachewire

import (
	"strings"
	"testing"
)

func TestParseResponse(t *testing.T) {
	tests := []struct {
		in     string
		status Status
		kind   RespKind
		data   string
	}{
		{"VALUE k 1 2\r\nhi\r\n", OK, RespValue, "hi"},
		{"VALUE k 1 2 55\r\nhi\r\n", OK, RespValue, "hi"},
		{"VALUE k 1 2\r\nhi", Incomplete, RespValue, ""},
		{"VALUE k 1 2\r\nhiXX", ErrBadResponse, RespValue, ""},
		{"VALUE k 1\r\n", ErrBadResponse, RespNone, ""},
		{"VALUE k 1 -2\r\n", ErrBadResponse, RespNone, ""},
		{"VALUE k 1 2 3 4\r\nhi\r\n", ErrBadResponse, RespNone, ""},
		{"VALUE k 1 9999999\r\n", ErrTooLarge, RespValue, ""},
		{"END\r\n", OK, RespEnd, ""},
		{"STORED\r\n", OK, RespStored, ""},
		{"NOT_STORED\r\n", OK, RespNotStored, ""},
		{"EXISTS\r\n", OK, RespExists, ""},
		{"NOT_FOUND\r\n", OK, RespNotFound, ""},
		{"DELETED\r\n", OK, RespDeleted, ""},
		{"TOUCHED\r\n", OK, RespTouched, ""},
		{"OK\r\n", OK, RespOK, ""},
		{"42\r\n", OK, RespNumber, ""},
		{"42  \r\n", OK, RespNumber, ""},
		{"VERSION 1.6.18\r\n", OK, RespVersion, ""},
		{"STAT pid 1\r\n", OK, RespStat, ""},
		{"ERROR\r\n", OK, RespError, ""},
		{"CLIENT_ERROR bad data chunk\r\n", OK, RespClientError, ""},
		{"SERVER_ERROR out of memory\r\n", OK, RespServerError, ""},
		{"VA 2 s2 f1\r\nhi\r\n", OK, RespMetaVA, "hi"},
		{"VA x\r\n", ErrBadResponse, RespNone, ""},
		{"HD c5\r\n", OK, RespMetaHD, ""},
		{"NS\r\n", OK, RespMetaNS, ""},
		{"EX\r\n", OK, RespMetaEX, ""},
		{"NF\r\n", OK, RespMetaNF, ""},
		{"EN\r\n", OK, RespMetaEN, ""},
		{"MN\r\n", OK, RespMetaMN, ""},
		{"ME k exp=-1\r\n", OK, RespMetaME, ""},
		{"RESET\r\n", OK, RespOther, ""},
		{" END\r\n", ErrBadResponse, RespNone, ""},
		{"\r\n", ErrBadResponse, RespNone, ""},
		{"END", Incomplete, RespNone, ""},
		{strings.Repeat("x", MaxResponseLine+2), ErrBadResponse, RespNone, ""},
	}
	for _, tt := range tests {
		var r Response
		st := ParseResponse([]byte(tt.in), 1<<20, &r)
		if st != tt.status {
			t.Errorf("%.30q: status %v, want %v", tt.in, st, tt.status)
			continue
		}
		if st == OK && (r.Kind != tt.kind || string(r.Data) != tt.data || r.Size != len(tt.in)) {
			t.Errorf("%q: kind %d data %q size %d", tt.in, r.Kind, r.Data, r.Size)
		}
	}
}

func TestEnds(t *testing.T) {
	if Ends(CmdGet, RespValue) || !Ends(CmdGet, RespEnd) || !Ends(CmdGets, RespServerError) {
		t.Error("retrieval")
	}
	if Ends(CmdStats, RespStat) || !Ends(CmdStats, RespEnd) {
		t.Error("stats")
	}
	if !Ends(CmdSet, RespStored) || !Ends(CmdMetaGet, RespMetaVA) {
		t.Error("single")
	}
}

func TestQuietHides(t *testing.T) {
	cases := []struct {
		cmd  Command
		kind RespKind
		want bool
	}{
		{CmdMetaGet, RespMetaEN, true},
		{CmdMetaGet, RespMetaHD, false},
		{CmdMetaGet, RespMetaVA, false},
		{CmdMetaSet, RespMetaHD, true},
		{CmdMetaSet, RespMetaNS, false},
		{CmdMetaDelete, RespMetaHD, true},
		{CmdMetaDelete, RespMetaNF, false},
		{CmdMetaArithmetic, RespMetaVA, true},
		{CmdMetaArithmetic, RespMetaNF, false},
		{CmdMetaGet, RespServerError, false},
	}
	for _, c := range cases {
		if got := QuietHides(c.cmd, c.kind); got != c.want {
			t.Errorf("%v %d: %v", c.cmd, c.kind, got)
		}
	}
}
