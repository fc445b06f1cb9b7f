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
