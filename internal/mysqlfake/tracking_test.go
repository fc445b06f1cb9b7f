package mysqlfake_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/scalestack/scalestack/internal/mysqlfake"
	"github.com/scalestack/scalestack/mysqlwire"
	"github.com/scalestack/scalestack/pool/mysqlproxy"
)

// TestTrackingFallback: a server that refuses the tracking SET (MariaDB
// before 10.3 lacks session_track_transaction_info, MySQL 5.6 every
// session_track variable) must not fail the clients' commands. The proxy
// tries less tracking, and with none serves the target as in 5.5 mode
// (statement kinds outside the allowlist pin). The SET is part of the
// login: it reaches the server before any client command.
func TestTrackingFallback(t *testing.T) {
	const unknownVar = mysqlwire.ErrCode(1193)
	tests := []struct {
		name        string
		refuse      func(sql string) bool
		accepted    string // the tracking SET the server took ("" none)
		unlistedPin bool   // CALL pins (no tracking)
	}{
		{"all accepted", func(string) bool { return false },
			"session_track_transaction_info", false},
		{"no transaction tracker", func(sql string) bool { return strings.Contains(sql, "session_track_transaction_info") },
			"session_track_system_variables='*'", false},
		{"no tracking", func(sql string) bool { return strings.Contains(sql, "session_track_") },
			"", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := start(t, nil)
			var mu sync.Mutex
			var accepted []string
			srv.OnFunc(func(sql string) bool { return strings.HasPrefix(sql, "SET session_track_") },
				func(q mysqlfake.Query) mysqlfake.Response {
					if tc.refuse(q.SQL) {
						return mysqlfake.Fail(unknownVar, "HY000", "Unknown system variable")
					}
					mu.Lock()
					accepted = append(accepted, q.SQL)
					mu.Unlock()
					return mysqlfake.OK()
				})
			srv.On("CALL p()", mysqlfake.OK())
			p := startProxy(t, srv, 2, 1, nil)

			// Both backends logged in: their tracking SETs already ran.
			var sets int
			for _, e := range srv.Log() {
				if e.Cmd == mysqlwire.ComQuery && strings.Contains(string(e.Payload), "session_track_") {
					sets++
				}
			}
			if sets < 2 {
				t.Errorf("%d tracking SETs reached the server during the logins, want at least 2", sets)
			}

			db := open(t, "tcp", p.Addr().Address, "alice", "secret", schema, nil)
			db.SetMaxOpenConns(1)
			var one int
			if err := db.QueryRow("SELECT 1").Scan(&one); err != nil || one != 1 {
				t.Fatalf("SELECT 1: %d, %v", one, err)
			}
			if _, err := db.Exec("CALL p()"); err != nil {
				t.Fatalf("CALL p(): %v", err)
			}
			// The next answer comes after the proxy has done with the CALL
			// (it may ask the server for LAST_INSERT_ID() after relaying it).
			if err := db.QueryRow("SELECT 1").Scan(&one); err != nil {
				t.Fatal(err)
			}
			if got := p.Stats().Pins[mysqlproxy.PinUnlisted] != 0; got != tc.unlistedPin {
				t.Errorf("CALL pinned for unlisted_statement: %v, want %v", got, tc.unlistedPin)
			}
			mu.Lock()
			defer mu.Unlock()
			if tc.accepted == "" {
				if len(accepted) != 0 {
					t.Errorf("server took %q", accepted)
				}
				return
			}
			if len(accepted) < 2 {
				t.Fatalf("server took %d tracking SETs, want one per backend: %q", len(accepted), accepted)
			}
			for _, a := range accepted {
				if !strings.Contains(a, tc.accepted) || tc.refuse(a) {
					t.Errorf("server took %q, want one with %s", a, tc.accepted)
				}
			}
		})
	}
}
