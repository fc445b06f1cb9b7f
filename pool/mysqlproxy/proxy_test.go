package mysqlproxy

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/scalestack/scalestack/internal/mysqlfake"
	"github.com/scalestack/scalestack/mysqlwire"
)

func TestAuth(t *testing.T) {
	tp := startProxy(t, 1, 1, nil)
	cases := []struct {
		name, user, password string
		wantCode             uint16
	}{
		{"right password", testUser, testPassword, 0},
		{"wrong password", testUser, "nope", 1045},
		{"unknown user", "mallory", testPassword, 1045},
		{"empty password account", testNoPWUser, "", 0},
		{"password for a passwordless account", testNoPWUser, "x", 1045},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db, err := sql.Open("mysql", tp.dsn(c.user, c.password, testDB, ""))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var one int
			err = db.QueryRow("SELECT 1").Scan(&one)
			if got := mysqlErrCode(err); got != c.wantCode || (c.wantCode == 0 && err != nil) {
				t.Fatalf("error %v (code %d), want code %d", err, got, c.wantCode)
			}
		})
	}
	if tp.p.Stats().AuthFailures != 3 {
		t.Errorf("AuthFailures = %d, want 3", tp.p.Stats().AuthFailures)
	}
}

func TestAuthCachingSHA2FastPath(t *testing.T) {
	tp := startProxy(t, 1, 1, nil)
	for _, c := range []struct {
		password string
		ok       bool
	}{{testPassword, true}, {"wrong", false}} {
		r := dialRaw(t, tp.addr)
		first := r.login(testUser, c.password, mysqlwire.AuthCachingSHA2, 0)
		if !c.ok {
			if !isERR(first, mysqlwire.ErAccessDenied) {
				t.Fatalf("wrong sha2 password: got %x, want ERR 1045", first)
			}
			continue
		}
		if len(first) != 2 || first[0] != 0x01 || first[1] != mysqlwire.CachingSHA2FastAuthSuccess {
			t.Fatalf("first packet %x, want fast auth success", first)
		}
		if p, _ := r.mustRead(); !mysqlwire.IsOK(p) {
			t.Fatalf("after fast auth: %x, want OK", p)
		}
		if resp := r.command([]byte{byte(mysqlwire.ComPing)}); !mysqlwire.IsOK(resp[0]) {
			t.Fatalf("ping: %x", resp[0])
		}
	}
}

func TestKillAcrossLoops(t *testing.T) {
	tp := startProxy(t, 2, 2, nil)
	r := dialRaw(t, tp.addr)
	if p := r.login(testUser, testPassword, mysqlwire.AuthNativePassword, 0); !mysqlwire.IsOK(p) {
		t.Fatalf("login: %x", p)
	}
	// Find a victim on the other loop (ids name their loop: id % loops).
	for i := 0; i < 50; i++ {
		v := dialRaw(t, tp.addr)
		if p := v.login(testUser, testPassword, mysqlwire.AuthNativePassword, 0); !mysqlwire.IsOK(p) {
			t.Fatalf("login: %x", p)
		}
		if v.hs.ConnectionID%2 == r.hs.ConnectionID%2 {
			continue
		}
		var p [5]byte
		p[0] = byte(mysqlwire.ComProcessKill)
		putUint32(p[1:], v.hs.ConnectionID)
		if resp := r.command(p[:]); !mysqlwire.IsOK(resp[0]) {
			t.Fatalf("COM_PROCESS_KILL: %s", errText(resp[0]))
		}
		if _, _, err := v.read(); err == nil {
			t.Fatal("victim still open")
		}
		putUint32(p[1:], v.hs.ConnectionID)
		if resp := r.command(p[:]); !isERR(resp[0], mysqlwire.ErNoSuchThread) {
			t.Fatalf("second kill: %x", resp[0])
		}
		return
	}
	t.Fatal("no session landed on the other loop")
}

func TestMaxClients(t *testing.T) {
	tp := startProxy(t, 1, 1, func(c *Config) { c.MaxClients = 2 })
	// MaxClients counts logged-in clients (those still logging in count
	// against MaxPendingLogins).
	for _, r := range []*rawClient{dialRaw(t, tp.addr), dialRaw(t, tp.addr)} {
		if p := r.login(testUser, testPassword, mysqlwire.AuthNativePassword, 0); !mysqlwire.IsOK(p) {
			t.Fatalf("login: %s", errText(p))
		}
	}
	c := dialRaw(t, tp.addr)
	p, seq := c.mustRead()
	if !isERR(p, mysqlwire.ErConCountError) || seq != 0 {
		t.Fatalf("third client got %x (seq %d), want ERR 1040 first", p, seq)
	}
	if e, _ := mysqlwire.ParseERR(p); string(e.SQLState) != "08004" {
		t.Fatalf("SQLSTATE %s", e.SQLState)
	}
}

func TestResetConnectionAndChangeUser(t *testing.T) {
	tp := startProxy(t, 1, 1, nil)
	r := dialRaw(t, tp.addr)
	if p := r.login(testUser, testPassword, mysqlwire.AuthNativePassword, 0); !mysqlwire.IsOK(p) {
		t.Fatalf("login: %x", p)
	}
	query := func(q string) [][]byte { return r.command(append([]byte{byte(mysqlwire.ComQuery)}, q...)) }
	query("SET @v = 1")
	if tp.p.Stats().PinnedSessions != 1 {
		t.Fatal("user variable did not pin")
	}
	if resp := r.command([]byte{byte(mysqlwire.ComResetConnection)}); !mysqlwire.IsOK(resp[0]) {
		t.Fatalf("reset: %x", resp[0])
	}
	waitFor(t, func() bool {
		st := tp.p.Stats()
		return st.PinnedSessions == 0 && st.BackendResets == 1 && st.BackendsIdle == 1
	})
	resp := query("SELECT @v")
	// column count, column, EOF, row, EOF: the row holds NULL (0xFB).
	if len(resp) != 5 || resp[3][0] != 0xFB {
		t.Fatalf("@v after reset: %x", resp)
	}
	// COM_CHANGE_USER to the passwordless account, then a wrong password.
	cu := append([]byte{byte(mysqlwire.ComChangeUser)}, testNoPWUser...)
	cu = append(cu, 0, 0) // user NUL, empty auth
	cu = append(cu, testDB...)
	cu = append(cu, 0, 45, 0)
	cu = append(cu, mysqlwire.AuthNativePassword...)
	cu = append(cu, 0)
	r.write(0, cu)
	if p, _ := r.mustRead(); !mysqlwire.IsOK(p) {
		t.Fatalf("change user: %s", errText(p))
	}
	cu = append([]byte{byte(mysqlwire.ComChangeUser)}, testUser...)
	cu = append(cu, 0, 20)
	cu = append(cu, make([]byte, 20)...)
	cu = append(cu, 0, 45, 0)
	cu = append(cu, mysqlwire.AuthNativePassword...)
	cu = append(cu, 0)
	r.write(0, cu)
	p, seq := r.mustRead()
	if !mysqlwire.IsAuthSwitchRequest(p) {
		t.Fatalf("bad change user: %x, want auth switch", p)
	}
	r.write(seq+1, make([]byte, 20))
	if p, _ := r.mustRead(); !isERR(p, mysqlwire.ErAccessDenied) {
		t.Fatalf("after wrong auth: %x", p)
	}
}

func TestMalformedClientPackets(t *testing.T) {
	tp := startProxy(t, 1, 1, nil)
	cases := []struct {
		name    string
		payload []byte
		code    mysqlwire.ErrCode // 0: no response expected
	}{
		{"empty packet", []byte{}, mysqlwire.ErUnknownComError},
		{"unknown command", []byte{0x77}, mysqlwire.ErUnknownComError},
		{"binlog dump", []byte{byte(mysqlwire.ComBinlogDump), 1, 2}, mysqlwire.ErUnknownComError},
		{"short execute", []byte{byte(mysqlwire.ComStmtExecute), 1}, mysqlwire.ErUnknownComError},
		{"execute unknown statement", []byte{byte(mysqlwire.ComStmtExecute), 9, 0, 0, 0, 0, 1, 0, 0, 0}, mysqlwire.ErUnknownStmtHandler},
		{"fetch without cursor", []byte{byte(mysqlwire.ComStmtFetch), 9, 0, 0, 0, 1, 0, 0, 0}, mysqlwire.ErUnknownStmtHandler},
		{"short set option", []byte{byte(mysqlwire.ComSetOption), 5}, mysqlwire.ErUnknownComError},
		{"short kill", []byte{byte(mysqlwire.ComProcessKill), 1}, mysqlwire.ErUnknownComError},
		// White space alone is the empty query; text that is only a comment
		// is not (the server answers it with OK: internal/e2e compares).
		{"empty query", []byte{byte(mysqlwire.ComQuery), ' ', '\t', '\n'}, mysqlwire.ErEmptyQuery},
		{"unterminated string", append([]byte{byte(mysqlwire.ComQuery)}, "SELECT 'abc"...), mysqlwire.ErParseError},
		{"stmt close unknown", []byte{byte(mysqlwire.ComStmtClose), 1, 2, 3, 4}, 0},
		{"long data unknown", []byte{byte(mysqlwire.ComStmtSendLongData), 1, 2}, 0},
	}
	r := dialRaw(t, tp.addr)
	if p := r.login(testUser, testPassword, mysqlwire.AuthNativePassword, 0); !mysqlwire.IsOK(p) {
		t.Fatalf("login: %x", p)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.code == 0 {
				r.write(0, c.payload)
				return
			}
			if len(c.payload) == 0 {
				r.write(0, nil)
				if p, _ := r.mustRead(); !isERR(p, c.code) {
					t.Fatalf("got %s, want ERR %d", errText(p), c.code)
				}
				return
			}
			resp := r.command(c.payload)
			if !isERR(resp[len(resp)-1], c.code) {
				t.Fatalf("got %s, want ERR %d", errText(resp[len(resp)-1]), c.code)
			}
		})
	}
	// The session and the proxy still serve.
	if resp := r.command(append([]byte{byte(mysqlwire.ComQuery)}, "SELECT 1"...)); len(resp) != 5 {
		t.Fatalf("after garbage: %x", resp)
	}
}

// waitFor waits for something that must happen eventually. Its deadline
// only catches a hang: on a loaded 2-core CI host (make test runs packages
// side by side under -race) a 1 MiB result through a slow reader took over
// 5 s to reach the proxy's high-water mark, so no test may rely on it as a
// bound on how fast something happens.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	const hang = 20 * time.Second
	deadline := time.Now().Add(hang)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not reached in %v", hang)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestConnectStorm logs in many clients at once (ProxySQL had trouble with
// storms of more than 1024 connects): every one must be served.
func TestConnectStorm(t *testing.T) {
	tp := startProxy(t, 2, 2, nil)
	const clients = 300
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := sql.Open("mysql", tp.dsn(testUser, testPassword, testDB, ""))
			if err != nil {
				errs <- err
				return
			}
			defer db.Close()
			var id uint32
			if err := db.QueryRow("SELECT CONNECTION_ID()").Scan(&id); err != nil {
				errs <- err
				return
			}
			if err := db.QueryRow("SELECT 1").Scan(new(int)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := tp.p.Stats(); st.ClientsAccepted != clients {
		t.Errorf("accepted %d clients, want %d", st.ClientsAccepted, clients)
	}
}

// TestLoginAfterIdle: a loop that slept for a long time must still give a
// new client its whole login deadline (timers armed from event callbacks
// used to count from the time the loop went to sleep).
func TestLoginAfterIdle(t *testing.T) {
	tp := startProxy(t, 1, 1, func(c *Config) { c.LoginTimeout = 300 * time.Millisecond })
	time.Sleep(700 * time.Millisecond) // the loop sleeps: nothing is armed
	r := dialRaw(t, tp.addr)
	p, _ := r.mustRead()
	hs, err := mysqlwire.ParseHandshake(p)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // well inside the deadline
	hr := mysqlwire.HandshakeResponse{Capabilities: hs.Capabilities, MaxPacketSize: 1 << 24, CharacterSet: 45,
		Username: []byte(testUser), AuthResponse: mysqlwire.NativePasswordScramble([]byte(testPassword), hs.AuthPluginData[:20]),
		AuthPlugin: []byte(mysqlwire.AuthNativePassword)}
	pkt, _ := mysqlwire.AppendHandshakeResponse(nil, 1, hr)
	if _, err := r.c.Write(pkt); err != nil {
		t.Fatal(err)
	}
	if p, _, err := r.read(); err != nil || !mysqlwire.IsOK(p) {
		t.Fatalf("login after idle: %x %v", p, err)
	}
	// And a client that never answers is dropped after the deadline.
	slow := dialRaw(t, tp.addr)
	slow.mustRead()
	start := time.Now()
	if _, _, err := slow.read(); err == nil {
		t.Fatal("silent client was not dropped")
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("dropped after %v, before its deadline", d)
	}
}

// TestQueuedClientLeaves: a client that hangs up while waiting for a
// backend leaves the queue at once, not at its deadline.
func TestQueuedClientLeaves(t *testing.T) {
	tp := startProxy(t, 1, 1, nil)
	holder := dialRaw(t, tp.addr)
	if p := holder.login(testUser, testPassword, mysqlwire.AuthNativePassword, 0); !mysqlwire.IsOK(p) {
		t.Fatalf("login: %x", p)
	}
	holder.command(append([]byte{byte(mysqlwire.ComQuery)}, "BEGIN"...))
	waiter := dialRaw(t, tp.addr)
	if p := waiter.login(testUser, testPassword, mysqlwire.AuthNativePassword, 0); !mysqlwire.IsOK(p) {
		t.Fatalf("login: %x", p)
	}
	// Two pipelined commands: the second stays buffered.
	waiter.write(0, append([]byte{byte(mysqlwire.ComQuery)}, "SELECT 1"...))
	waiter.write(0, append([]byte{byte(mysqlwire.ComQuery)}, "SELECT 2"...))
	waitFor(t, func() bool { return tp.p.Stats().QueueWaiting == 1 })
	waiter.c.Close()
	waitFor(t, func() bool { st := tp.p.Stats(); return st.QueueWaiting == 0 && st.ClientsConnected == 1 })
	// Pipelined commands of a live client are all answered, in order.
	holder.command(append([]byte{byte(mysqlwire.ComQuery)}, "COMMIT"...))
	p := dialRaw(t, tp.addr)
	if resp := p.login(testUser, testPassword, mysqlwire.AuthNativePassword, 0); !mysqlwire.IsOK(resp) {
		t.Fatalf("login: %x", resp)
	}
	for i := 1; i <= 3; i++ {
		p.write(0, append([]byte{byte(mysqlwire.ComQuery)}, fmt.Sprintf("SELECT %d", i)...))
	}
	for i := 1; i <= 3; i++ {
		var row []byte
		for j := 0; j < 5; j++ {
			pkt, _ := p.mustRead()
			if j == 3 {
				row = pkt
			}
		}
		if string(row[1:]) != fmt.Sprint(i) {
			t.Fatalf("pipelined answer %d: row %q", i, row)
		}
	}
}

func TestQueueTimeoutKeepsClient(t *testing.T) {
	tp := startProxy(t, 1, 1, func(c *Config) { c.QueueTimeout = 200 * time.Millisecond })
	tp.fake.On("SELECT SLEEP(0.6)", mysqlfake.OK().After(600*time.Millisecond))
	busy := tp.open(t, "")
	done := make(chan error)
	go func() {
		_, err := busy.Exec("SELECT SLEEP(0.6)")
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	db := tp.open(t, "")
	c, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	err = c.QueryRowContext(context.Background(), "SELECT 1").Scan(new(int))
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 9001 || string(me.SQLState[:]) != "HY000" {
		t.Fatalf("got %v, want ERR 9001 (HY000)", err)
	}
	if waited := time.Since(start); waited < 150*time.Millisecond || waited > 2*time.Second {
		t.Fatalf("waited %v", waited)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := c.QueryRowContext(context.Background(), "SELECT 1").Scan(new(int)); err != nil {
		t.Fatalf("same client after the timeout: %v", err)
	}
}
