package mysqlproxy

import (
	"testing"

	"github.com/scalestack/scalestack/internal/mysqlfake"
	"github.com/scalestack/scalestack/mysqlwire"
)

// TestExtendedTypeInfo (issue 16, item 5): the greeting offers MariaDB's
// extended type metadata when the backends' server does, and every client
// gets column definitions in the layout it negotiated, whatever its
// backend's: with the metadata, without it (cut out), and with it where
// the backend has none (put in, empty). The proxy's own result sets follow
// the client's layout too.
func TestExtendedTypeInfo(t *testing.T) {
	const ext = mysqlwire.MariaDBClientExtendedTypeInfo
	query := append([]byte{byte(mysqlwire.ComQuery)}, "SELECT ext_a, ext_b"...)
	result := mysqlfake.Response{Result: &mysqlfake.ResultSet{
		Columns: []mysqlfake.Column{{Name: "ext_a"}, {Name: "ext_b"}},
		Rows:    [][]any{{int64(1), "two"}},
	}}
	for _, tc := range []struct {
		name        string
		backendExt  bool
		clientExt   bool
		offerAnyway bool // a client that logged in before a backend without it was seen
	}{
		{"both", true, true, false},
		{"backend only", true, false, false},
		{"client only", false, true, true},
		{"neither", false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc := mysqlfake.Config{
				Accounts: []mysqlfake.Account{{User: fakeUser, Password: fakePassword}},
				Schemas:  []string{testDB},
			}
			if !tc.backendExt {
				fc.Capabilities = mysqlfake.MariaDBCaps &^ ext
			}
			srv := mysqlfake.Start(t, fc)
			srv.On(string(query[1:]), result)
			tp := startProxyAt(t, mysqlEnv{addr: srv.Addr(), user: fakeUser, password: fakePassword}, 1, 1, nil)
			waitFor(t, func() bool { return tp.p.Stats().BackendsIdle == 1 })
			if tc.offerAnyway {
				tp.p.extCaps.Store(uint64(ext))
			}
			r := dialRaw(t, tp.addr)
			caps := mysqlwire.Capabilities(0)
			if !tc.clientExt {
				caps = mysqlwire.ClientLongPassword | mysqlwire.ClientProtocol41 | mysqlwire.ClientSecureConnection |
					mysqlwire.ClientPluginAuth | mysqlwire.ClientConnectWithDB | mysqlwire.ClientTransactions
			}
			if p := r.login(testUser, testPassword, mysqlwire.AuthNativePassword, caps); !mysqlwire.IsOK(p) {
				t.Fatalf("login: %x", p)
			}
			if offered := r.hs.Capabilities&ext != 0; offered != (tc.backendExt || tc.offerAnyway) {
				t.Fatalf("greeting offers extended type info: %v (capabilities %#x)", offered, uint64(r.hs.Capabilities))
			}
			clientCaps := r.hs.Capabilities
			if !tc.clientExt {
				clientCaps = caps
			}
			check := func(what string, resp [][]byte, names ...string) {
				t.Helper()
				if len(resp) < 1+len(names) {
					t.Fatalf("%s: %d packets", what, len(resp))
				}
				for i, name := range names {
					def, err := mysqlwire.ParseColumnDefinition(resp[1+i], clientCaps)
					if err != nil || string(def.Name) != name || def.DefaultValue != nil || (def.ExtendedMetadata != nil) != tc.clientExt {
						t.Errorf("%s: column %d as the client reads it: name %q, metadata %q, default %q, %v (payload %x)",
							what, i, def.Name, def.ExtendedMetadata, def.DefaultValue, err, resp[1+i])
					}
				}
			}
			check("relayed", r.command(query), "ext_a", "ext_b")
			check("the proxy's own", r.command(append([]byte{byte(mysqlwire.ComQuery)}, "SELECT CONNECTION_ID()"...)), "CONNECTION_ID()")
		})
	}
}
