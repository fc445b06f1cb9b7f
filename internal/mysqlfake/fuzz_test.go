package mysqlfake

import (
	"strings"
	"testing"

	"github.com/scalestack/scalestack/mysqlwire"
)

// FuzzParseSet feeds the double's own SQL scanning (SET, SELECT lists,
// placeholders): whatever it accepts must be well formed, and nothing may
// panic, since tests send it hostile statements on purpose.
func FuzzParseSet(f *testing.F) {
	for _, s := range []string{
		"NAMES utf8mb4 COLLATE utf8mb4_general_ci, @@session.wait_timeout=3600",
		"SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED, READ ONLY",
		"@a := 'x''y', @b = \"q\\\"z\", autocommit = 0",
		"GLOBAL max_connections = DEFAULT", "CHARACTER SET latin1", "a = (1, 2) /* , */ , b = 2 -- x",
		"'unterminated", "x = `a``b`", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if assigns, err := parseSet(s); err == nil {
			for _, a := range assigns {
				if a.name == "" || strings.ContainsAny(a.name, " \t") {
					t.Fatalf("parseSet(%q) accepted name %q", s, a.name)
				}
			}
		}
		if items, err := splitTop(s); err == nil {
			for _, it := range items {
				if it == "" {
					t.Fatalf("splitTop(%q) returned an empty item", s)
				}
			}
		}
		if n, err := countParams(s); err == nil && n > strings.Count(s, "?") {
			t.Fatalf("countParams(%q) = %d", s, n)
		}
		_ = unquote(s)
	})
}

// FuzzExecuteLongData feeds the COM_STMT_EXECUTE decoder used when long
// data was sent (the one part of the wire the double parses itself).
func FuzzExecuteLongData(f *testing.F) {
	types := []byte{byte(mysqlwire.TypeLongLong), 0, byte(mysqlwire.TypeBlob), 0, byte(mysqlwire.TypeVarString), 0}
	good, _ := mysqlwire.AppendStmtExecute(nil, 0, 1, 0, []mysqlwire.Value{
		{Type: mysqlwire.TypeLongLong, Int: 5}, {Type: mysqlwire.TypeBlob, Null: true}, {Type: mysqlwire.TypeVarString, Bytes: []byte("hi")}})
	f.Add(good[mysqlwire.HeaderSize:], 3, true)
	f.Add(good[mysqlwire.HeaderSize:], 3, false)
	f.Add([]byte{0x17, 1, 0, 0, 0, 0, 1, 0, 0, 0}, 0, false)
	f.Fuzz(func(t *testing.T, payload []byte, numParams int, prev bool) {
		if numParams < 0 || numParams > 64 {
			return
		}
		var prevTypes []byte
		if prev && 2*numParams <= len(types) {
			prevTypes = types[:2*numParams]
		}
		long := map[uint16][]byte{1: []byte("long")}
		params, gotTypes, _, err := parseExecuteLongData(payload, numParams, prevTypes, long)
		if err != nil {
			return
		}
		if numParams > 0 && (len(params) != numParams || len(gotTypes) != 2*numParams) {
			t.Fatalf("%d parameters, %d type bytes for %d parameters", len(params), len(gotTypes), numParams)
		}
		if numParams > 1 && params[1] != "long" {
			t.Fatalf("long data parameter decoded as %#v", params[1])
		}
	})
}
