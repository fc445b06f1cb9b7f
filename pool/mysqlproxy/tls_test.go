package mysqlproxy

// TLS towards clients: the SSLRequest upgrade, caching_sha2_password's full
// authentication over TLS, require-tls, the client's own Ssl_ status, and
// clients that ask for TLS and stall.

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/internal/testutil"
	"github.com/scalestack/scalestack/mysqlwire"
)

// startTLSProxy is startProxy with TLS offered to clients (a certificate
// for 127.0.0.1 from a throwaway CA) and a require-tls account; the client
// configuration it returns verifies the proxy's certificate.
func startTLSProxy(t *testing.T, tweak func(*Config)) (*testProxy, *tls.Config) {
	t.Helper()
	pki := testutil.NewPKI(t, "proxy-test")
	cert := pki.Server("proxy", "127.0.0.1")
	tp := startProxy(t, 1, 1, func(c *Config) {
		c.TLS = &conn.TLS{Config: func() *tls.Config {
			return &tls.Config{Certificates: []tls.Certificate{cert.Cert}, MinVersion: tls.VersionTLS12}
		}, HandshakeTimeout: 2 * time.Second}
		c.Users[tlsOnlyUser] = &User{Name: tlsOnlyUser, Native: mysqlwire.NativePasswordHash([]byte(testPassword)),
			SHA2: mysqlwire.CachingSHA2Hash([]byte(testPassword)), RequireTLS: true}
		if tweak != nil {
			tweak(c)
		}
	})
	return tp, &tls.Config{RootCAs: pki.Pool, ServerName: "127.0.0.1"}
}

// upgrade reads the greeting, sends SSLRequest and runs the TLS handshake;
// the login goes on with sequence id 2.
func (r *rawClient) upgrade(cfg *tls.Config) {
	r.t.Helper()
	p, _ := r.mustRead()
	hs, err := mysqlwire.ParseHandshake(p)
	if err != nil {
		r.t.Fatal(err)
	}
	if hs.Capabilities&mysqlwire.ClientSSL == 0 {
		r.t.Fatalf("the greeting does not offer CLIENT_SSL (capabilities %#x)", hs.Capabilities)
	}
	r.hs = hs
	r.hs.AuthPluginData = append([]byte(nil), hs.AuthPluginData...)
	pkt, _ := mysqlwire.AppendHandshakeResponse(nil, 1, mysqlwire.HandshakeResponse{
		Capabilities: hs.Capabilities, MaxPacketSize: 1 << 24, CharacterSet: 45, SSLRequest: true})
	if _, err := r.c.Write(pkt); err != nil {
		r.t.Fatal(err)
	}
	tc := tls.Client(r.c, cfg)
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		r.t.Fatalf("TLS handshake after SSLRequest: %v", err)
	}
	tc.SetDeadline(time.Time{})
	r.c = tc
}

// sendLogin sends the HandshakeResponse (sequence id seq) with auth as the
// plugin's first answer and returns the server's reply.
func (r *rawClient) sendLogin(seq uint8, user, plugin string, auth []byte) ([]byte, uint8) {
	r.t.Helper()
	hr := mysqlwire.HandshakeResponse{Capabilities: r.hs.Capabilities | mysqlwire.ClientSSL, MaxPacketSize: 1 << 24,
		CharacterSet: 45, Username: []byte(user), AuthResponse: auth, AuthPlugin: []byte(plugin), Database: []byte(testDB)}
	pkt, _ := mysqlwire.AppendHandshakeResponse(nil, seq, hr)
	if _, err := r.c.Write(pkt); err != nil {
		r.t.Fatal(err)
	}
	return r.mustRead()
}

// sslStatus runs SHOW STATUS LIKE pattern and returns name=value pairs.
func (r *rawClient) sslStatus(pattern string) map[string]string {
	r.t.Helper()
	resp := r.command(append([]byte{byte(mysqlwire.ComQuery)}, "SHOW SESSION STATUS LIKE '"+pattern+"'"...))
	if len(resp) < 4 || resp[0][0] != 2 {
		r.t.Fatalf("SHOW STATUS: %d packets, first %x", len(resp), resp[0])
	}
	vars := map[string]string{}
	for _, row := range resp[4 : len(resp)-1] {
		name, _, n, err := mysqlwire.ReadLenEncString(row)
		if err != nil {
			r.t.Fatalf("row %x: %v", row, err)
		}
		value, _, _, err := mysqlwire.ReadLenEncString(row[n:])
		if err != nil {
			r.t.Fatalf("row %x: %v", row, err)
		}
		vars[string(name)] = string(value)
	}
	return vars
}

func wantAccessDenied(t *testing.T, p []byte, user string) {
	t.Helper()
	e, err := mysqlwire.ParseERR(p)
	if err != nil || e.Code != mysqlwire.ErAccessDenied || string(e.SQLState[:]) != "28000" ||
		!strings.HasPrefix(string(e.Message), "Access denied for user '"+user+"'@'127.0.0.1' (using password: YES)") {
		t.Fatalf("got %s, want ERR 1045 (28000) Access denied for user '%s'@'127.0.0.1' (using password: YES)", errText(p), user)
	}
}

// TestTLSClientLogin: a client upgrades with SSLRequest and logs in over
// TLS with each plugin; caching_sha2_password's full authentication takes
// the password in clear over TLS only; require-tls refuses a plain login
// with the 1045 MariaDB sends for REQUIRE SSL; SHOW STATUS LIKE 'Ssl_%'
// describes the client's own connection.
func TestTLSClientLogin(t *testing.T) {
	tp, clientTLS := startTLSProxy(t, nil)
	junk := make([]byte, 32) // a fast-path scramble that matches nothing
	if _, err := rand.Read(junk); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, user, password, plugin string
		tls                          bool
		// scramble: the first answer (nil: the plugin's, from password).
		scramble []byte
		// fullAuth: the clear password sent when the proxy asks for it
		// ("": the proxy must not ask).
		fullAuth string
		ok       bool
	}{
		{name: "native over TLS", user: testUser, password: testPassword, plugin: mysqlwire.AuthNativePassword, tls: true, ok: true},
		{name: "caching_sha2 fast path over TLS", user: testUser, password: testPassword, plugin: mysqlwire.AuthCachingSHA2, tls: true, ok: true},
		{name: "caching_sha2 full authentication over TLS", user: testUser, plugin: mysqlwire.AuthCachingSHA2, tls: true, scramble: junk, fullAuth: testPassword, ok: true},
		{name: "caching_sha2 full authentication, wrong password", user: testUser, plugin: mysqlwire.AuthCachingSHA2, tls: true, scramble: junk, fullAuth: "wrong"},
		{name: "caching_sha2 full authentication, unknown user", user: "mallory", plugin: mysqlwire.AuthCachingSHA2, tls: true, scramble: junk, fullAuth: testPassword},
		{name: "caching_sha2 without TLS: no full authentication", user: testUser, plugin: mysqlwire.AuthCachingSHA2, scramble: junk},
		{name: "require-tls over TLS", user: tlsOnlyUser, password: testPassword, plugin: mysqlwire.AuthNativePassword, tls: true, ok: true},
		{name: "require-tls over TLS, caching_sha2", user: tlsOnlyUser, password: testPassword, plugin: mysqlwire.AuthCachingSHA2, tls: true, ok: true},
		{name: "require-tls without TLS", user: tlsOnlyUser, password: testPassword, plugin: mysqlwire.AuthNativePassword},
		{name: "require-tls without TLS, caching_sha2", user: tlsOnlyUser, password: testPassword, plugin: mysqlwire.AuthCachingSHA2},
		{name: "plain login still works", user: testUser, password: testPassword, plugin: mysqlwire.AuthNativePassword, ok: true},
	}
	tlsLogins := 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := dialRaw(t, tp.addr)
			seq := uint8(1)
			if c.tls {
				r.upgrade(clientTLS)
				seq = 2
				tlsLogins++
			} else {
				p, _ := r.mustRead()
				hs, err := mysqlwire.ParseHandshake(p)
				if err != nil {
					t.Fatal(err)
				}
				r.hs = hs
				r.hs.AuthPluginData = append([]byte(nil), hs.AuthPluginData...)
			}
			nonce := r.hs.AuthPluginData[:20]
			auth := c.scramble
			if auth == nil {
				if c.plugin == mysqlwire.AuthCachingSHA2 {
					auth = mysqlwire.CachingSHA2Scramble([]byte(c.password), nonce)
				} else {
					auth = mysqlwire.NativePasswordScramble([]byte(c.password), nonce)
				}
			}
			p, rseq := r.sendLogin(seq, c.user, c.plugin, auth)
			if c.fullAuth != "" {
				if !bytes.Equal(p, []byte{0x01, mysqlwire.CachingSHA2PerformFullAuth}) {
					t.Fatalf("got %x (%s), want perform-full-authentication", p, errText(p))
				}
				r.write(rseq+1, append([]byte(c.fullAuth), 0))
				p, rseq = r.mustRead()
				if want := seq + 3; rseq != want {
					t.Errorf("answer to the full password has sequence id %d, want %d", rseq, want)
				}
			} else if bytes.Equal(p, []byte{0x01, mysqlwire.CachingSHA2FastAuthSuccess}) && c.ok {
				p, _ = r.mustRead()
			}
			if !c.ok {
				wantAccessDenied(t, p, c.user)
				if _, _, err := r.read(); err == nil {
					t.Fatal("the connection stayed open after ERR 1045")
				}
				return
			}
			if !mysqlwire.IsOK(p) {
				t.Fatalf("got %s, want OK", errText(p))
			}
			vars := r.sslStatus("Ssl_%")
			if !c.tls {
				if vars["Ssl_cipher"] != "" || vars["Ssl_version"] != "" || len(vars) != 2 {
					t.Fatalf("plain connection: SHOW STATUS LIKE 'Ssl_%%' = %v, want Ssl_cipher and Ssl_version empty", vars)
				}
				return
			}
			if !strings.HasPrefix(vars["Ssl_version"], "TLSv1.") || !strings.HasPrefix(vars["Ssl_cipher"], "TLS_") {
				t.Fatalf("SHOW STATUS LIKE 'Ssl_%%' = %v, want this connection's TLS version and cipher", vars)
			}
			if only := r.sslStatus("SSL_CIPH%"); len(only) != 1 || only["Ssl_cipher"] == "" {
				t.Fatalf("SHOW STATUS LIKE 'SSL_CIPH%%' = %v, want Ssl_cipher alone", only)
			}
		})
	}
	st := tp.p.Stats()
	if st.ClientsTLS != uint64(tlsLogins) {
		t.Errorf("ClientsTLS = %d, want %d", st.ClientsTLS, tlsLogins)
	}
	deadline := time.Now().Add(5 * time.Second)
	for tp.p.Stats().TLSClientsConnected != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := tp.p.Stats().TLSClientsConnected; n != 0 {
		t.Errorf("TLSClientsConnected = %d after every client left, want 0", n)
	}
}

// TestTLSRequireAll: Config.RequireTLS refuses every plain login, with the
// same 1045 as an account with REQUIRE SSL, and admits TLS ones.
func TestTLSRequireAll(t *testing.T) {
	tp, clientTLS := startTLSProxy(t, func(c *Config) { c.RequireTLS = true })
	r := dialRaw(t, tp.addr)
	wantAccessDenied(t, r.login(testUser, testPassword, mysqlwire.AuthNativePassword, 0), testUser)

	r = dialRaw(t, tp.addr)
	r.upgrade(clientTLS)
	if p, _ := r.sendLogin(2, testUser, mysqlwire.AuthNativePassword,
		mysqlwire.NativePasswordScramble([]byte(testPassword), r.hs.AuthPluginData[:20])); !mysqlwire.IsOK(p) {
		t.Fatalf("TLS login: %s, want OK", errText(p))
	}
}

// TestTLSNotOffered: without a certificate the greeting does not offer
// CLIENT_SSL, and an SSLRequest is a bad handshake (ERR 1043), as from a
// server without TLS.
func TestTLSNotOffered(t *testing.T) {
	tp := startProxy(t, 1, 1, nil)
	r := dialRaw(t, tp.addr)
	p, _ := r.mustRead()
	hs, err := mysqlwire.ParseHandshake(p)
	if err != nil {
		t.Fatal(err)
	}
	if hs.Capabilities&mysqlwire.ClientSSL != 0 {
		t.Fatal("the greeting offers CLIENT_SSL without a certificate")
	}
	pkt, _ := mysqlwire.AppendHandshakeResponse(nil, 1, mysqlwire.HandshakeResponse{
		Capabilities: hs.Capabilities | mysqlwire.ClientSSL, MaxPacketSize: 1 << 24, CharacterSet: 45, SSLRequest: true})
	if _, err := r.c.Write(pkt); err != nil {
		t.Fatal(err)
	}
	p, _ = r.mustRead()
	if e, err := mysqlwire.ParseERR(p); err != nil || e.Code != mysqlwire.ErHandshakeError {
		t.Fatalf("got %s, want ERR 1043", errText(p))
	}
}

// TestTLSStalledUpgrade: clients that send SSLRequest and then nothing, or
// only part of a ClientHello, are closed at the login timeout while a
// client that completes its handshake meanwhile logs in.
func TestTLSStalledUpgrade(t *testing.T) {
	const loginTimeout = 500 * time.Millisecond
	tp, clientTLS := startTLSProxy(t, func(c *Config) {
		c.LoginTimeout = loginTimeout
		c.TLS.HandshakeTimeout = time.Minute // the login timeout must cut them
	})
	for _, partial := range [][]byte{nil, {0x16, 0x03, 0x01, 0x02, 0x00, 0x01}} {
		start := time.Now()
		r := dialRaw(t, tp.addr)
		p, _ := r.mustRead()
		hs, err := mysqlwire.ParseHandshake(p)
		if err != nil {
			t.Fatal(err)
		}
		pkt, _ := mysqlwire.AppendHandshakeResponse(nil, 1, mysqlwire.HandshakeResponse{
			Capabilities: hs.Capabilities, MaxPacketSize: 1 << 24, CharacterSet: 45, SSLRequest: true})
		if _, err := r.c.Write(append(pkt, partial...)); err != nil {
			t.Fatal(err)
		}
		// A well-behaved client meanwhile.
		good := dialRaw(t, tp.addr)
		good.upgrade(clientTLS)
		if p, _ := good.sendLogin(2, testUser, mysqlwire.AuthNativePassword,
			mysqlwire.NativePasswordScramble([]byte(testPassword), good.hs.AuthPluginData[:20])); !mysqlwire.IsOK(p) {
			t.Fatalf("TLS login beside a stalled client: %s, want OK", errText(p))
		}
		r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := io.Copy(io.Discard, r.c)
		took := time.Since(start)
		if err != nil {
			t.Fatalf("stalled client (%d bytes of ClientHello): %v after %v, want the proxy to close it", len(partial), err, took)
		}
		if took < loginTimeout || took > loginTimeout+2*time.Second {
			t.Errorf("stalled client (%d bytes of ClientHello) closed after %v (%d bytes), want about the login timeout %v", len(partial), took, n, loginTimeout)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for tp.p.Stats().PendingLogins != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := tp.p.Stats().PendingLogins; got != 0 {
		t.Errorf("PendingLogins = %d after the stalled clients were closed, want 0", got)
	}
}
