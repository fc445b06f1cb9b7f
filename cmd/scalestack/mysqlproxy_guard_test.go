package main

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scalestack/scalestack/mysqlwire"
	"github.com/scalestack/scalestack/pool/mysqlproxy"
)

// dialGreeted opens a client connection to the proxy and reads its first
// packet (the greeting, or the ERR of a refusal).
func dialGreeted(t *testing.T, addr string) (*rawSession, []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := &rawSession{c: c}
	p, _, err := r.read(5 * time.Second)
	if err != nil {
		t.Fatalf("first packet: %v", err)
	}
	return r, p
}

// expectTooManyConnections checks that p is ERR 1040 (08004).
func expectTooManyConnections(t *testing.T, p []byte) {
	t.Helper()
	e, err := mysqlwire.ParseERR(p)
	if err != nil || e.Code != mysqlwire.ErConCountError || string(e.SQLState) != "08004" {
		t.Fatalf("first packet %x (%v), want ERR 1040 (08004)", p, err)
	}
}

// TestMaxClientsRefusalsCounted fills --max-clients and checks that the
// refused clients show in both refusal counters. The listener's
// scalestack_client_connections_refused_total{reason="max_clients"} stayed
// 0 while the proxy refused clients itself.
func TestMaxClientsRefusalsCounted(t *testing.T) {
	op := startOpsProxy(t, map[string]string{"max-clients": "2"})
	for i := 0; i < 2; i++ {
		rawLogin(t, op.addr, op.env.Database)
	}
	const refused = 3
	for i := 0; i < refused; i++ {
		_, p := dialGreeted(t, op.addr)
		expectTooManyConnections(t, p)
	}
	m := op.scrape(t)
	if v := m.value("scalestack_client_connections_refused_total", "reason", "max_clients"); v != refused {
		t.Errorf(`scalestack_client_connections_refused_total{reason="max_clients"} = %v, want %d`, v, refused)
	}
	if v := m.value("scalestack_mysqlproxy_clients_refused_total"); v != refused {
		t.Errorf("scalestack_mysqlproxy_clients_refused_total = %v, want %d", v, refused)
	}
}

// TestWritableSecretFilesRefused: a users file or --backend-password-file
// that the group or everyone may write stops the proxy from starting, and
// a reload that finds the users file so keeps the accounts it had.
func TestWritableSecretFilesRefused(t *testing.T) {
	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	password := filepath.Join(dir, "password")
	writeFile(t, users, mysqlproxy.UserLine("alice", []byte("pw"))+"\n")
	writeFile(t, password, "pw\n")
	args := []string{"--backend", "127.0.0.1:3306", "--backend-user", "svc", "--users", users, "--backend-password-file", password}
	for _, path := range []string{users, password} {
		if err := os.Chmod(path, 0o666); err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		_, _, err := parseServerFlags(command{name: "mysqlproxy", flags: mysqlProxyFlags}, args, &stderr)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "0666") {
			t.Errorf("start with %s at mode 0666: %v, want an error naming the file and its mode", path, err)
		}
		if err := os.Chmod(path, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	op := startOpsProxy(t, nil)
	writeFile(t, op.usersFile, mysqlproxy.UserLine(opsUser, []byte(opsPassword))+"\n"+mysqlproxy.UserLine("mallory", []byte("pw"))+"\n")
	if err := os.Chmod(op.usersFile, 0o666); err != nil {
		t.Fatal(err)
	}
	rep := postReload(t, op, http.StatusUnprocessableEntity)
	if !strings.Contains(rep.Error, op.usersFile) || !strings.Contains(rep.Error, "0666") {
		t.Errorf("reload error %q, want one naming %s and mode 0666", rep.Error, op.usersFile)
	}
	if err := op.db(t, "mallory", "pw").Ping(); mysqlErrNumber(err) != 1045 {
		t.Errorf("account added by a reload that failed: %v, want ERR 1045", err)
	}
	if err := op.db(t, opsUser, opsPassword).Ping(); err != nil {
		t.Errorf("account kept by the failed reload: %v", err)
	}
}

// TestSilentSocketsDoNotLockOutClients: with --max-clients 500, 600
// sockets that connect and never log in used to fill the limit, and real
// clients were refused until the login timeout closed them. They count
// against --max-pending-logins now: a real client logs in and runs a
// statement, and beyond --max-pending-logins new sockets get ERR 1040,
// counted as refused for reason max_pending_logins.
func TestSilentSocketsDoNotLockOutClients(t *testing.T) {
	const maxClients, silent, maxPending = 500, 600, 700
	op := startOpsProxy(t, map[string]string{"max-clients": strconv.Itoa(maxClients),
		"max-pending-logins": strconv.Itoa(maxPending), "loops": "2"})
	for i := 0; i < silent; i++ {
		dialGreeted(t, op.addr)
	}
	db := op.db(t, opsUser, opsPassword)
	var one int
	if err := db.QueryRow("SELECT 1").Scan(&one); err != nil {
		t.Fatalf("real client with %d silent sockets and --max-clients %d: %v", silent, maxClients, err)
	}
	db.Close()
	for i := silent; i < maxPending; i++ {
		dialGreeted(t, op.addr)
	}
	_, p := dialGreeted(t, op.addr)
	expectTooManyConnections(t, p)
	m := op.scrape(t)
	if v := m.value("scalestack_client_connections_refused_total", "reason", "max_pending_logins"); v != 1 {
		t.Errorf(`scalestack_client_connections_refused_total{reason="max_pending_logins"} = %v, want 1`, v)
	}
	if v := m.value("scalestack_mysqlproxy_pending_logins_refused_total"); v != 1 {
		t.Errorf("scalestack_mysqlproxy_pending_logins_refused_total = %v, want 1", v)
	}
	if v := m.value("scalestack_mysqlproxy_clients_logging_in"); v != maxPending {
		t.Errorf("scalestack_mysqlproxy_clients_logging_in = %v, want %d", v, maxPending)
	}
}

// TestPerUserMetricsOptIn: by default /metrics names no account (the
// per-account series are opt-in, --per-user-metrics);
// TestMetricsFollowTraffic checks them with the switch on.
func TestPerUserMetricsOptIn(t *testing.T) {
	op := startOpsProxy(t, nil)
	db := op.db(t, opsUser, opsPassword)
	if _, err := db.Exec("SELECT 1"); err != nil {
		t.Fatal(err)
	}
	code, body := httpGet(t, "http://"+op.admin+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	if strings.Contains(body, `user="`) || strings.Contains(body, "scalestack_mysqlproxy_user_") || strings.Contains(body, opsUser) {
		t.Errorf("/metrics names accounts without --per-user-metrics:\n%s", grepLines(body, opsUser, "_user_"))
	}
}

func grepLines(text string, subs ...string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		for _, s := range subs {
			if strings.Contains(line, s) {
				out = append(out, line)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// TestReloadRefusesCrossOrigin: POST /reload from another site's page (an
// Origin that is not the admin address, or Sec-Fetch-Site other than
// same-origin) gets 403 and reloads nothing; curl-like requests and the
// admin address's own origin are served.
func TestReloadRefusesCrossOrigin(t *testing.T) {
	reloads := 0
	admin, err := startAdmin(adminConfig{addr: "127.0.0.1:0", registry: newRegistry(),
		reload: func() (any, bool) { reloads++; return map[string]string{}, true }})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	self := "http://" + admin.Addr()
	for _, c := range []struct {
		origin, fetchSite string
		want              int
	}{
		{"", "", http.StatusOK},
		{self, "", http.StatusOK},
		{self, "same-origin", http.StatusOK},
		{"", "none", http.StatusOK},
		{"http://evil.example", "", http.StatusForbidden},
		{"http://evil.example", "cross-site", http.StatusForbidden},
		{"", "cross-site", http.StatusForbidden},
		{"", "same-site", http.StatusForbidden},
		{"null", "", http.StatusForbidden},
		{"http://localhost:1", "", http.StatusForbidden},
		{"https://127.0.0.1:" + strings.Split(admin.Addr(), ":")[1] + ".evil.example", "", http.StatusForbidden},
	} {
		before := reloads
		req, err := http.NewRequest(http.MethodPost, self+"/reload", nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.origin != "" {
			req.Header.Set("Origin", c.origin)
		}
		if c.fetchSite != "" {
			req.Header.Set("Sec-Fetch-Site", c.fetchSite)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("Origin %q, Sec-Fetch-Site %q: status %d, want %d", c.origin, c.fetchSite, resp.StatusCode, c.want)
		}
		if ran := reloads > before; ran != (c.want == http.StatusOK) {
			t.Errorf("Origin %q, Sec-Fetch-Site %q: reload ran: %v", c.origin, c.fetchSite, ran)
		}
	}
}
