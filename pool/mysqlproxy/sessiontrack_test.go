package mysqlproxy

import (
	"fmt"
	"strings"
	"testing"

	"github.com/scalestack/scalestack/internal/mysqlfake"
	"github.com/scalestack/scalestack/mysqlwire"
)

// TestSessionTrackToClients (issue 16, item 10): a client that asks for
// CLIENT_SESSION_TRACK is told what its command changed that a session with
// the server's default tracking reports (tracked variables in its default
// list's order, then the schema), never what the proxy asks its backends to track
// for itself (the state-change flag, other variables, transaction
// characteristics); a client that did not ask gets no report.
func TestSessionTrackToClients(t *testing.T) {
	tp := startProxy(t, 1, 1, nil)
	const stmt = "DO track_me()"
	tp.fake.On(stmt, mysqlfake.Response{OK: &mysqlfake.OKResult{SessionState: []mysqlfake.SessionChange{
		mysqlfake.SysVarChange("character_set_results", "latin1"),
		mysqlfake.StateChange(),
		mysqlfake.SchemaChange(testDB),
		mysqlfake.SysVarChange("wait_timeout", "3600"),
		mysqlfake.SysVarChange("character_set_client", "latin1"),
		{Type: mysqlwire.SessionTrackTransactionCharacteristics, Data: mysqlwire.AppendLenEncStr(nil, "")},
	}}})
	for _, tracks := range []bool{true, false} {
		r := dialRaw(t, tp.addr)
		caps := mysqlwire.Capabilities(0)
		if !tracks {
			caps = mysqlwire.ClientLongPassword | mysqlwire.ClientProtocol41 | mysqlwire.ClientSecureConnection |
				mysqlwire.ClientPluginAuth | mysqlwire.ClientConnectWithDB | mysqlwire.ClientTransactions
		}
		if p := r.login(testUser, testPassword, mysqlwire.AuthNativePassword, caps); !mysqlwire.IsOK(p) {
			t.Fatalf("login: %x", p)
		}
		if r.hs.Capabilities&mysqlwire.ClientSessionTrack == 0 {
			t.Fatalf("the greeting offers no CLIENT_SESSION_TRACK (%#x)", uint64(r.hs.Capabilities))
		}
		clientCaps := r.hs.Capabilities &^ mysqlwire.ClientFoundRows
		if !tracks {
			clientCaps = caps
		}
		resp := r.command(append([]byte{byte(mysqlwire.ComQuery)}, stmt...))
		ok, err := mysqlwire.ParseOK(resp[0], clientCaps)
		if err != nil {
			t.Fatalf("tracks %v: %v (%x)", tracks, err, resp[0])
		}
		var got []string
		it := mysqlwire.NewSessionStateIter(ok.SessionState)
		for e, more := it.Next(); more; e, more = it.Next() {
			if name, value, err := e.SystemVariable(); err == nil {
				got = append(got, fmt.Sprintf("%s=%s", name, value))
			} else if v, err := e.Value(); err == nil {
				got = append(got, fmt.Sprintf("%d:%s", e.Type, v))
			}
		}
		want := ""
		if tracks {
			want = "character_set_client=latin1 character_set_results=latin1 1:" + testDB
		}
		changed := ok.Status&mysqlwire.StatusSessionStateChanged != 0
		if strings.Join(got, " ") != want || changed != tracks {
			t.Errorf("tracks %v: report %q (SERVER_SESSION_STATE_CHANGED %v), want %q", tracks, got, changed, want)
		}
		r.c.Close()
	}
}
