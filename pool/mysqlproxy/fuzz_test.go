package mysqlproxy

import (
	"bytes"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/scalestack/scalestack/mysqlwire"
)

var (
	fuzzOnce  sync.Once
	fuzzProxy *testProxy
)

// sentinel answers a query whose result proves the session still works.
func sentinel(r *rawClient) bool {
	const mark = "scalestack-fuzz-sentinel"
	pkt, _ := mysqlwire.AppendPacket(nil, 0, append([]byte{byte(mysqlwire.ComQuery)}, "SELECT '"+mark+"'"...))
	if _, err := r.c.Write(pkt); err != nil {
		return false
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		r.c.SetReadDeadline(deadline)
		p, _, err := r.read()
		if err != nil {
			return false
		}
		if bytes.Contains(p, []byte(mark)) && !bytes.HasPrefix(p, []byte{3}) {
			// The row; drain its terminator.
			r.read()
			return true
		}
	}
	return false
}

// FuzzClientPacket sends one arbitrary command packet from a logged-in
// client. Whatever it is, the proxy must not crash or hang: the session
// either still answers or was closed, and a new client is served.
func FuzzClientPacket(f *testing.F) {
	fuzzOnce.Do(func() {
		// The proxy logs from its loops while inputs run, and testing
		// forbids f.Logf inside the fuzz target: such a log line (a failed
		// COM_CHANGE_USER, a client gone during login) killed the fuzzing
		// process. The outcome is judged by what clients see, not by logs.
		fuzzProxy = startProxy(f, 2, 2, func(c *Config) { c.Logf = func(string, ...any) {} })
	})
	tp := fuzzProxy
	seeds := [][]byte{
		{}, {0x03}, append([]byte{0x03}, "SELECT 1"...), {0x16}, append([]byte{0x16}, "SELECT ?"...),
		{0x17, 1, 0, 0, 0, 0, 1, 0, 0, 0}, {0x17, 0xff, 0xff, 0xff, 0xff, 1, 1, 0, 0, 0, 0, 1, 8, 0},
		{0x18, 1, 0, 0, 0, 0, 0, 'x'}, {0x19, 1, 0, 0, 0}, {0x1a, 1, 0, 0, 0}, {0x1c, 1, 0, 0, 0, 1, 0, 0, 0},
		{0x1b, 0, 0}, {0x1b, 1, 0}, {0x1f}, {0x11}, {0x11, 'a', 0, 5}, {0x0c, 1, 0, 0, 0}, {0x0e}, {0x02},
		append([]byte{0x02}, "scalestack_test"...), {0x09}, {0x04, 'x', 0}, {0x12, 0, 0, 0, 0}, {0xfe}, {0xfa, 1},
		append([]byte{0x03}, "SET NAMES utf8mb4, @x = 1"...), append([]byte{0x03}, "KILL 1"...),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		if len(payload) > 1<<16 || (len(payload) > 0 && payload[0] == byte(mysqlwire.ComQuit)) {
			return
		}
		r := dialRaw(t, tp.addr)
		if p := r.login(testUser, testPassword, mysqlwire.AuthNativePassword, 0); !mysqlwire.IsOK(p) {
			t.Fatalf("login: %x", p)
		}
		r.write(0, payload)
		if sentinel(r) {
			return
		}
		// The session may have been closed (bad COM_CHANGE_USER, KILL of
		// itself...): the proxy itself must still serve.
		r.c.(*net.TCPConn).Close()
		fresh := dialRaw(t, tp.addr)
		if p := fresh.login(testUser, testPassword, mysqlwire.AuthNativePassword, 0); !mysqlwire.IsOK(p) {
			t.Fatalf("login after %x: %x", payload, p)
		}
		if !sentinel(fresh) {
			t.Fatalf("proxy stopped serving after %x", payload)
		}
	})
}
