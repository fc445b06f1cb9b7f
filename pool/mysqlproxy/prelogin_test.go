package mysqlproxy

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scalestack/scalestack/internal/mysqlfake"
	"github.com/scalestack/scalestack/mysqlwire"
)

// handshakeOfSize is a valid HandshakeResponse41 for the test account,
// padded with a connect attribute to exactly size bytes of payload.
func handshakeOfSize(t *testing.T, r *rawClient, size int) []byte {
	t.Helper()
	hr := mysqlwire.HandshakeResponse{
		Capabilities: r.hs.Capabilities | mysqlwire.ClientConnectAttrs, MaxPacketSize: 1 << 24, CharacterSet: 45,
		Username:     []byte(testUser),
		AuthResponse: mysqlwire.NativePasswordScramble([]byte(testPassword), r.hs.AuthPluginData[:20]),
		AuthPlugin:   []byte(mysqlwire.AuthNativePassword), Database: []byte(testDB),
	}
	value := 0
	for i := 0; i < 4; i++ {
		attrs := mysqlwire.AppendLenEncStr(nil, "pad")
		hr.Attrs = mysqlwire.AppendLenEncStr(attrs, string(bytes.Repeat([]byte{'x'}, value)))
		pkt, _ := mysqlwire.AppendHandshakeResponse(nil, 1, hr)
		got := len(pkt) - mysqlwire.HeaderSize
		if got == size {
			return pkt[mysqlwire.HeaderSize:]
		}
		value += size - got
	}
	t.Fatalf("could not pad a handshake response to %d bytes", size)
	return nil
}

// expectPacketTooLarge reads ERR 1153 (08S01) with sequence id seq, as
// MariaDB answers a login packet over max_allowed_packet, and then the
// close.
func expectPacketTooLarge(t *testing.T, r *rawClient, seq uint8) {
	t.Helper()
	p, gotSeq, err := r.read()
	if err != nil {
		t.Fatalf("read: %v, want ERR 1153", err)
	}
	if !isERR(p, mysqlwire.ErNetPacketTooLarge) || gotSeq != seq {
		t.Fatalf("got %s with sequence id %d, want ERR 1153 with %d", errText(p), gotSeq, seq)
	}
	if e, _ := mysqlwire.ParseERR(p); string(e.SQLState) != "08S01" {
		t.Fatalf("SQLSTATE %s, want 08S01", e.SQLState)
	}
	r.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	var b [1]byte
	if _, err := r.c.Read(b[:]); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("after ERR 1153: %v, want the connection closed", err)
	}
}

// TestLoginPacketLimit checks issue 13's bound on login packets: a
// handshake response, an auth switch answer or COM_CHANGE_USER's auth
// answer over 64 KiB is refused with ERR 1153 as soon as its header
// arrives (nothing of its payload is sent), while one of exactly 64 KiB is
// served, and after login the 64 MiB bound applies again.
func TestLoginPacketLimit(t *testing.T) {
	tp := startProxy(t, 1, 1, nil)
	header := func(r *rawClient, n int, seq uint8) {
		t.Helper()
		var h [mysqlwire.HeaderSize]byte
		mysqlwire.PutHeader(h[:], n, seq)
		if _, err := r.c.Write(h[:]); err != nil {
			t.Fatal(err)
		}
	}
	greet := func() *rawClient {
		r := dialRaw(t, tp.addr)
		p, _ := r.mustRead()
		hs, err := mysqlwire.ParseHandshake(p)
		if err != nil {
			t.Fatal(err)
		}
		r.hs = hs
		r.hs.AuthPluginData = append([]byte(nil), hs.AuthPluginData...)
		return r
	}
	for _, tc := range []struct {
		name     string
		announce int
	}{
		{"handshake response one byte over 64 KiB", 64<<10 + 1},
		{"handshake response of 16 MiB-2", mysqlwire.MaxPacketPayload - 1},
		{"split handshake response", mysqlwire.MaxPacketPayload},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := greet()
			header(r, tc.announce, 1)
			expectPacketTooLarge(t, r, 2)
		})
	}
	t.Run("handshake response of exactly 64 KiB", func(t *testing.T) {
		r := greet()
		r.write(1, handshakeOfSize(t, r, 64<<10))
		if p, _ := r.mustRead(); !mysqlwire.IsOK(p) {
			t.Fatalf("login: %s", errText(p))
		}
		// Logged in: a 1 MiB statement is within the session's bound;
		// the double answers with the length of the literal it received.
		tp.fake.OnFunc(func(sql string) bool { return strings.HasPrefix(sql, "SELECT LENGTH('") },
			func(q mysqlfake.Query) mysqlfake.Response {
				lit := strings.TrimSuffix(strings.TrimPrefix(q.SQL, "SELECT LENGTH('"), "')")
				return mysqlfake.Rows([]string{"LENGTH"}, []any{int64(len(lit))})
			})
		long := append([]byte{byte(mysqlwire.ComQuery)}, "SELECT LENGTH('"...)
		long = append(long, bytes.Repeat([]byte{'y'}, 1<<20)...)
		long = append(long, "')"...)
		resp := r.command(long)
		if len(resp) != 5 || !bytes.Contains(resp[3], []byte("1048576")) {
			t.Fatalf("1 MiB statement after login: %q", resp)
		}
	})
	t.Run("auth switch answer over 64 KiB", func(t *testing.T) {
		r := greet()
		hr := mysqlwire.HandshakeResponse{Capabilities: r.hs.Capabilities, MaxPacketSize: 1 << 24, CharacterSet: 45,
			Username: []byte(testUser), AuthPlugin: []byte("mysql_clear_password")}
		pkt, _ := mysqlwire.AppendHandshakeResponse(nil, 1, hr)
		if _, err := r.c.Write(pkt); err != nil {
			t.Fatal(err)
		}
		p, seq := r.mustRead()
		if !mysqlwire.IsAuthSwitchRequest(p) {
			t.Fatalf("got %s, want an auth switch", errText(p))
		}
		header(r, 64<<10+1, seq+1)
		expectPacketTooLarge(t, r, seq+2)
	})
	t.Run("COM_CHANGE_USER auth answer over 64 KiB", func(t *testing.T) {
		r := dialRaw(t, tp.addr)
		if p := r.login(testUser, testPassword, mysqlwire.AuthNativePassword, 0); !mysqlwire.IsOK(p) {
			t.Fatalf("login: %s", errText(p))
		}
		cu := append([]byte{byte(mysqlwire.ComChangeUser)}, testUser...)
		cu = append(cu, 0, 20)
		cu = append(cu, make([]byte, 20)...) // a wrong scramble: the proxy asks again
		cu = append(cu, 0, 45, 0)
		cu = append(cu, mysqlwire.AuthNativePassword...)
		cu = append(cu, 0)
		r.write(0, cu)
		p, seq := r.mustRead()
		if !mysqlwire.IsAuthSwitchRequest(p) {
			t.Fatalf("got %s, want an auth switch", errText(p))
		}
		header(r, 64<<10+1, seq+1)
		expectPacketTooLarge(t, r, seq+2)
	})
	// None of that disturbed the proxy.
	r := dialRaw(t, tp.addr)
	if p := r.login(testUser, testPassword, mysqlwire.AuthNativePassword, 0); !mysqlwire.IsOK(p) {
		t.Fatalf("login after the oversized ones: %s", errText(p))
	}
	if n := tp.p.loginInput.Used(); n != 0 {
		t.Fatalf("login budget holds %d bytes with no client logging in", n)
	}
}
