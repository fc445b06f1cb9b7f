package pool

import (
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
