package mysqlproxy

import (
	"database/sql"
	"strings"
	"testing"

	"github.com/scalestack/scalestack/mysqlwire"
)

// TestMySQL55Mode resets backends with COM_CHANGE_USER and offers only 5.5
// capabilities.
func TestMySQL55Mode(t *testing.T) {
	tp := startProxy(t, 1, 1, func(c *Config) { c.MySQL55 = true })
	for round := 1; round <= 2; round++ {
		r := dialRaw(t, tp.addr)
		if p := r.login(testUser, testPassword, mysqlwire.AuthNativePassword, 0); !mysqlwire.IsOK(p) {
			t.Fatalf("login: %x", p)
		}
		if r.hs.Capabilities&^mysqlwire.MySQL55Caps != 0 || !strings.HasPrefix(string(r.hs.ServerVersion), "5.5") {
			t.Fatalf("greeting: caps %x version %s", r.hs.Capabilities, r.hs.ServerVersion)
		}
		r.command(append([]byte{byte(mysqlwire.ComQuery)}, "SET @leak = 1"...))
		r.c.Close()
		waitFor(t, func() bool { st := tp.p.Stats(); return st.BackendResets == uint64(2*round-1) && st.BackendsIdle == 1 })
		db := tp.open(t, "")
		var v sql.NullInt64
		if err := db.QueryRow("SELECT @leak").Scan(&v); err != nil || v.Valid {
			t.Fatalf("@leak after reset %d: %v %v", round, v, err)
		}
		db.Close()
		waitFor(t, func() bool { st := tp.p.Stats(); return st.BackendResets == uint64(2*round) && st.BackendsIdle == 1 })
	}
	if st := tp.p.Stats(); st.BackendConnects != 1 {
		t.Fatalf("the backend was replaced instead of reset: %+v", st)
	}
}
