package mysqlproxy

import (
	"testing"
	"time"

	"github.com/scalestack/scalestack/internal/mysqlfake"
	"github.com/scalestack/scalestack/mysqlwire"
)

// TestWithheldStateChangePins: a result set whose EOF says the session
// state changed (on MariaDB, a SELECT calling a stored function, which may
// have set a user variable) pins the session, as a change reported in an OK
// does. Resetting the backend after the statement instead, as the proxy
// did, kept the change from other sessions but lost it to the session that
// made it: its next statement ran on a reset backend.
func TestWithheldStateChangePins(t *testing.T) {
	tp := startProxy(t, 1, 1, func(c *Config) { c.QueueTimeout = 200 * time.Millisecond })
	tp.fake.On("SELECT f()", mysqlfake.Response{Result: &mysqlfake.ResultSet{
		Columns: []mysqlfake.Column{{Name: "f()"}}, Rows: [][]any{{int64(1)}},
		Status: mysqlwire.StatusSessionStateChanged}})
	login := func() *rawClient {
		r := dialRaw(t, tp.addr)
		if p := r.login(testUser, testPassword, mysqlwire.AuthNativePassword, 0); !mysqlwire.IsOK(p) {
			t.Fatalf("login: %x", p)
		}
		return r
	}
	query := func(r *rawClient, q string) [][]byte {
		return r.command(append([]byte{byte(mysqlwire.ComQuery)}, q...))
	}
	a := login()
	before := tp.p.Stats()
	resp := query(a, "SELECT f()")
	if len(resp) != 5 {
		t.Fatalf("SELECT f(): %d packets, want column count, definition, EOF, row, EOF", len(resp))
	}
	if st := resp[4]; (mysqlwire.StatusFlags(st[3])|mysqlwire.StatusFlags(st[4])<<8)&mysqlwire.StatusSessionStateChanged != 0 {
		t.Errorf("the client saw SERVER_SESSION_STATE_CHANGED, which it did not ask for: %x", st)
	}
	st := tp.p.Stats()
	if st.PinnedSessions != 1 || st.Pins[PinServerState] != before.Pins[PinServerState]+1 {
		t.Fatalf("after a result set reporting a change: %d pinned, server_state pins %d -> %d; want the session pinned",
			st.PinnedSessions, before.Pins[PinServerState], st.Pins[PinServerState])
	}
	if st.BackendResets != before.BackendResets {
		t.Fatalf("the backend was reset under the session that changed its state (%d resets)", st.BackendResets-before.BackendResets)
	}
	// The session keeps its backend: another client waits for it in vain.
	b := login()
	if p := query(b, "SELECT 1"); len(p) != 1 || !isERR(p[0], ErQueueTimeout) {
		t.Fatalf("another client got the pinned backend: %x", p)
	}
	if p := query(a, "SELECT 1"); len(p) != 5 {
		t.Fatalf("the pinned session's next statement: %x", p)
	}
	// Once the session leaves, its backend is reset and serves the other.
	a.c.Close()
	waitFor(t, func() bool {
		st := tp.p.Stats()
		return st.PinnedSessions == 0 && st.BackendResets == before.BackendResets+1 && st.BackendsIdle == 1
	})
	if p := query(b, "SELECT 1"); len(p) != 5 {
		t.Fatalf("after the pinned session left: %x", p)
	}
}
