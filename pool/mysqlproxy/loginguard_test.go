package mysqlproxy

import (
	"bytes"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scalestack/scalestack/mysqlwire"
)

// logLines collects a proxy's log lines.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
}

func (l *logLines) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// counted sums the counts of the lines "N <what> in the last second, last:
// <detail>" and returns them with the number of lines mentioning what and
// the last detail.
func (l *logLines) counted(t *testing.T, what string) (sum, lines int, last string) {
	t.Helper()
	re := regexp.MustCompile(`^(\d+) ` + regexp.QuoteMeta(what) + ` in the last second, last: (.*)$`)
	for _, line := range l.snapshot() {
		if !strings.Contains(line, what) {
			continue
		}
		lines++
		m := re.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("log line %q is not a counted summary", line)
			continue
		}
		n, _ := strconv.Atoi(m[1])
		sum += n
		last = m[2]
	}
	return sum, lines, last
}

// TestLoginFailuresLoggedOncePerSecond: a burst of failed logins and of
// sockets reset during login gives at most a couple of log lines each,
// whose counts add up to the burst, instead of one line per client.
func TestLoginFailuresLoggedOncePerSecond(t *testing.T) {
	var logs logLines
	tp := startProxy(t, 1, 2, func(c *Config) { c.Logf = logs.logf })
	const failures, resets = 60, 100
	for i := 0; i < failures; i++ {
		r := dialRaw(t, tp.addr)
		if p := r.login("intruder", "guess", mysqlwire.AuthNativePassword, 0); !isERR(p, mysqlwire.ErAccessDenied) {
			t.Fatalf("login of an unknown user: %s, want ERR 1045", errText(p))
		}
		r.c.Close()
	}
	for i := 0; i < resets; i++ {
		r := dialRaw(t, tp.addr)
		r.mustRead() // the greeting: the session is open
		r.c.(*net.TCPConn).SetLinger(0)
		r.c.Close()
	}
	// The tail of each burst is logged when its second ends.
	deadline := time.Now().Add(5 * time.Second)
	for {
		f, _, _ := logs.counted(t, "failed logins")
		c, _, _ := logs.counted(t, "clients closed during login")
		if f >= failures && c >= resets || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	sum, lines, last := logs.counted(t, "failed logins")
	if sum != failures || lines > 3 || !strings.Contains(last, "user 'intruder' from 127.0.0.1") {
		t.Errorf("failed logins: %d counted in %d lines (last: %q), want %d in at most 3", sum, lines, last, failures)
	}
	sum, lines, _ = logs.counted(t, "clients closed during login")
	if sum != resets || lines > 3 {
		t.Errorf("clients closed during login: %d counted in %d lines, want %d in at most 3", sum, lines, resets)
	}
	if all := logs.snapshot(); len(all) > 8 {
		t.Errorf("%d log lines for %d failed logins and %d resets: %q", len(all), failures, resets, all)
	}
}

// TestPendingLoginsHaveTheirOwnLimit: clients that connect and never log
// in count against MaxPendingLogins, not MaxClients, so more silent
// sockets than MaxClients do not lock a real client out; beyond
// MaxPendingLogins new clients get ERR 1040 as their first packet; and a
// login that would take the logged-in clients over MaxClients gets ERR 1040
// instead of its OK.
func TestPendingLoginsHaveTheirOwnLimit(t *testing.T) {
	const maxClients, maxPending = 3, 8
	tp := startProxy(t, 1, 2, func(c *Config) { c.MaxClients, c.MaxPendingLogins = maxClients, maxPending })
	greet := func() *rawClient {
		r := dialRaw(t, tp.addr)
		p, seq := r.mustRead()
		if mysqlwire.IsERR(p) {
			t.Fatalf("client refused (seq %d): %s", seq, errText(p))
		}
		hs, err := mysqlwire.ParseHandshake(p)
		if err != nil {
			t.Fatal(err)
		}
		r.hs = hs
		r.hs.AuthPluginData = append([]byte(nil), hs.AuthPluginData...)
		return r
	}
	var silent []*rawClient
	for i := 0; i < maxClients+2; i++ {
		silent = append(silent, greet())
	}
	// More silent sockets than MaxClients: a real client still logs in.
	real := dialRaw(t, tp.addr)
	if p := real.login(testUser, testPassword, mysqlwire.AuthNativePassword, 0); !mysqlwire.IsOK(p) {
		t.Fatalf("login with %d silent sockets and MaxClients %d: %s", len(silent), maxClients, errText(p))
	}
	waitFor(t, func() bool { return tp.p.PendingLogins() == int64(len(silent)) })
	for len(silent) < maxPending {
		silent = append(silent, greet())
	}
	waitFor(t, func() bool { return tp.p.PendingLogins() == maxPending })
	over := dialRaw(t, tp.addr)
	if p, seq := over.mustRead(); !isERR(p, mysqlwire.ErConCountError) || seq != 0 {
		t.Fatalf("client beyond MaxPendingLogins got %s (seq %d), want ERR 1040 first", errText(p), seq)
	}
	if st := tp.p.Stats(); st.PendingLoginsRefused != 1 || st.ClientsRefused != 0 {
		t.Fatalf("refusals: pending %d, max clients %d; want 1 and 0", st.PendingLoginsRefused, st.ClientsRefused)
	}
	// Two of the silent ones log in now (2 logged in, MaxClients 3);
	// the third login would be one too many.
	for i, r := range silent[:3] {
		hr := mysqlwire.HandshakeResponse{Capabilities: r.hs.Capabilities, MaxPacketSize: 1 << 24, CharacterSet: 45,
			Username: []byte(testUser), AuthResponse: mysqlwire.NativePasswordScramble([]byte(testPassword), r.hs.AuthPluginData[:20]),
			AuthPlugin: []byte(mysqlwire.AuthNativePassword), Database: []byte(testDB)}
		pkt, _ := mysqlwire.AppendHandshakeResponse(nil, 1, hr)
		if _, err := r.c.Write(pkt); err != nil {
			t.Fatal(err)
		}
		p, seq := r.mustRead()
		if i < 2 {
			if !mysqlwire.IsOK(p) {
				t.Fatalf("login %d under MaxClients: %s", i, errText(p))
			}
			continue
		}
		if !isERR(p, mysqlwire.ErConCountError) || seq != 2 {
			t.Fatalf("login over MaxClients got %s (seq %d), want ERR 1040 with sequence id 2", errText(p), seq)
		}
	}
	// MaxClients are logged in: a new client is refused at once.
	if p, _ := dialRaw(t, tp.addr).mustRead(); !isERR(p, mysqlwire.ErConCountError) {
		t.Fatalf("client with MaxClients logged in got %s, want ERR 1040", errText(p))
	}
	// Everyone leaves: nothing is left counted.
	for _, r := range silent {
		r.c.Close()
	}
	real.c.Close()
	waitFor(t, func() bool { return tp.p.PendingLogins() == 0 && tp.p.Stats().ClientsConnected == 0 })
}

// loginTranscript logs in by hand as user with password, announcing
// plugin and sending first as the first auth response ("scramble": the
// plugin's scramble of password, "": none), answers an auth switch the
// way the switch asks, and returns the packets the proxy sent after the
// greeting, each as "seq:kind" with an ERR's code, state and message (the
// user's name replaced by USER) and an auth switch's plugin.
func loginTranscript(t *testing.T, addr, user, password, plugin, first string) []string {
	t.Helper()
	r := dialRaw(t, addr)
	p, _ := r.mustRead()
	hs, err := mysqlwire.ParseHandshake(p)
	if err != nil {
		t.Fatal(err)
	}
	nonce := append([]byte(nil), hs.AuthPluginData[:20]...)
	scramble := func(plugin string, nonce []byte) []byte {
		if plugin == mysqlwire.AuthCachingSHA2 {
			return mysqlwire.CachingSHA2Scramble([]byte(password), nonce)
		}
		return mysqlwire.NativePasswordScramble([]byte(password), nonce)
	}
	var auth []byte
	if first == "scramble" {
		auth = scramble(plugin, nonce)
	}
	hr := mysqlwire.HandshakeResponse{Capabilities: hs.Capabilities, MaxPacketSize: 1 << 24, CharacterSet: 45,
		Username: []byte(user), AuthResponse: auth, AuthPlugin: []byte(plugin)}
	pkt, _ := mysqlwire.AppendHandshakeResponse(nil, 1, hr)
	if _, err := r.c.Write(pkt); err != nil {
		t.Fatal(err)
	}
	var out []string
	for {
		p, seq, err := r.read()
		if err != nil {
			out = append(out, "closed")
			return out
		}
		switch {
		case mysqlwire.IsERR(p):
			e, _ := mysqlwire.ParseERR(p)
			msg := strings.ReplaceAll(string(e.Message), "'"+user+"'", "'USER'")
			out = append(out, fmt.Sprintf("%d:ERR %d %s %s", seq, e.Code, e.SQLState, msg))
		case mysqlwire.IsOK(p):
			out = append(out, fmt.Sprintf("%d:OK", seq))
		case len(p) > 0 && p[0] == 0xFE:
			// Auth switch: plugin name NUL, then the nonce.
			name, data, _ := bytes.Cut(p[1:], []byte{0})
			if !bytes.Equal(bytes.TrimRight(data, "\x00"), nonce) {
				t.Errorf("%s: auth switch with another nonce", user)
			}
			out = append(out, fmt.Sprintf("%d:switch %s", seq, name))
			r.write(seq+1, scramble(string(name), nonce))
		default:
			out = append(out, fmt.Sprintf("%d:%x", seq, p))
		}
	}
}

// TestUnknownUserLooksLikeWrongPassword: whatever the client's plugin and
// first answer, the packets an unknown user gets are those a known user
// with a wrong password gets (an auth switch where that one gets one, the
// same ERR 1045 with the same sequence id), so a stranger cannot tell
// which accounts exist.
func TestUnknownUserLooksLikeWrongPassword(t *testing.T) {
	tp := startProxy(t, 1, 1, nil)
	for _, c := range []struct{ plugin, first string }{
		{mysqlwire.AuthNativePassword, "scramble"},
		{mysqlwire.AuthNativePassword, ""},
		{mysqlwire.AuthCachingSHA2, "scramble"},
		{mysqlwire.AuthCachingSHA2, ""},
		{"mysql_clear_password", ""},
		{"", "scramble"},
	} {
		known := loginTranscript(t, tp.addr, testUser, "wrong", c.plugin, c.first)
		unknown := loginTranscript(t, tp.addr, "nobody", "wrong", c.plugin, c.first)
		if fmt.Sprint(known) != fmt.Sprint(unknown) {
			t.Errorf("plugin %q, first answer %q: known user with a wrong password got %q, unknown user %q",
				c.plugin, c.first, known, unknown)
		}
		if !strings.Contains(fmt.Sprint(unknown), "ERR 1045 28000") {
			t.Errorf("plugin %q: unknown user got %q, want ERR 1045", c.plugin, unknown)
		}
	}
	// The right password still works after all that.
	if p := dialRaw(t, tp.addr).login(testUser, testPassword, mysqlwire.AuthCachingSHA2, 0); !mysqlwire.IsOK(p) &&
		(len(p) == 0 || p[0] != 0x01) {
		t.Fatalf("login with the right password: %s", errText(p))
	}
}
