package mysqlproxy

// Acceptance tests of the server side of the protocol (the proxy's client
// handshake, built on mysqlwire and conn) against real clients: the mariadb
// command-line client, go-sql-driver/mysql, and a hand-rolled mysqlwire
// client for what the others cannot be made to send.

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/scalestack/scalestack/internal/mysqlfake"
	"github.com/scalestack/scalestack/mysqlwire"
)

// Accounts whose two stored hashes disagree on purpose, so that a login
// succeeds only through the plugin under test: nativeOnly's sha2 hash and
// sha2Only's native hash belong to another password.
const (
	nativeOnlyUser = "native_only"
	sha2OnlyUser   = "sha2_only"
	legacyUser     = "legacy"   // a users-file line with no sha2 hash
	tlsOnlyUser    = "tls_only" // require-tls: refused without TLS
	otherPassword  = "not-this-one"
)

func startAuthProxy(t *testing.T) *testProxy {
	t.Helper()
	tp := startProxy(t, 1, 1, func(c *Config) {
		c.Users[nativeOnlyUser] = &User{Name: nativeOnlyUser,
			Native: mysqlwire.NativePasswordHash([]byte(testPassword)),
			SHA2:   mysqlwire.CachingSHA2Hash([]byte(otherPassword))}
		c.Users[sha2OnlyUser] = &User{Name: sha2OnlyUser,
			Native: mysqlwire.NativePasswordHash([]byte(otherPassword)),
			SHA2:   mysqlwire.CachingSHA2Hash([]byte(testPassword))}
		c.Users[legacyUser] = &User{Name: legacyUser, Native: mysqlwire.NativePasswordHash([]byte(testPassword))}
		c.Users[tlsOnlyUser] = &User{Name: tlsOnlyUser, RequireTLS: true,
			Native: mysqlwire.NativePasswordHash([]byte(testPassword)),
			SHA2:   mysqlwire.CachingSHA2Hash([]byte(testPassword))}
	})
	// The statement the command-line client runs once logged in.
	tp.fake.On("SELECT CONCAT('answer ', 6 * 7)", mysqlfake.Rows([]string{"CONCAT('answer ', 6 * 7)"}, []any{"answer 42"}))
	return tp
}

// mariadbCLI runs the mariadb command-line client against the proxy and
// returns its stdout and stderr.
func mariadbCLI(t *testing.T, tp *testProxy, user, password, defaultAuth, query string) (string, string, error) {
	t.Helper()
	path, err := exec.LookPath("mariadb")
	if err != nil {
		t.Fatalf("the mariadb client is needed (scripts/mariadb.sh deps installs it): %v", err)
	}
	host, port, _ := strings.Cut(tp.addr, ":")
	args := []string{"--no-defaults", "--protocol=TCP", "-h", host, "-P", port, "-u", user, "-p" + password,
		"--skip-ssl", "--connect-timeout=5", "-D", testDB, "-N", "-B", "-e", query}
	if defaultAuth != "" {
		args = append(args, "--default-auth="+defaultAuth)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	return stdout.String(), stderr.String(), err
}

// TestServerAuthMariaDBCLI: the mariadb client logs in with
// mysql_native_password (the plugin the greeting names) and, asked to, with
// caching_sha2_password; a wrong password gets ERROR 1045 (28000).
func TestServerAuthMariaDBCLI(t *testing.T) {
	tp := startAuthProxy(t)
	cases := []struct {
		name, user, password, defaultAuth string
		ok                                bool
	}{
		{"native", testUser, testPassword, "", true},
		{"native only through the native hash", nativeOnlyUser, testPassword, "", true},
		{"native cannot use the sha2 hash", sha2OnlyUser, testPassword, "", false},
		{"native wrong password", testUser, "wrong", "", false},
		{"caching_sha2", testUser, testPassword, mysqlwire.AuthCachingSHA2, true},
		{"caching_sha2 only through the sha2 hash", sha2OnlyUser, testPassword, mysqlwire.AuthCachingSHA2, true},
		{"caching_sha2 cannot use the native hash", nativeOnlyUser, testPassword, mysqlwire.AuthCachingSHA2, false},
		{"caching_sha2 account without a sha2 hash", legacyUser, testPassword, mysqlwire.AuthCachingSHA2, true},
		{"caching_sha2 wrong password", testUser, "wrong", mysqlwire.AuthCachingSHA2, false},
	}
	failures := uint64(0)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stdout, stderr, err := mariadbCLI(t, tp, c.user, c.password, c.defaultAuth, "SELECT CONCAT('answer ', 6 * 7)")
			if c.ok {
				if err != nil || strings.TrimSpace(stdout) != "answer 42" {
					t.Fatalf("login failed: %v\nstdout: %s\nstderr: %s", err, stdout, stderr)
				}
				return
			}
			failures++
			var exitErr *exec.ExitError
			if !errors.As(err, &exitErr) || !strings.Contains(stderr, "ERROR 1045 (28000)") ||
				!strings.Contains(stderr, "Access denied for user '"+c.user+"'") {
				t.Fatalf("want ERROR 1045 (28000) and a failing exit: %v\nstdout: %s\nstderr: %s", err, stdout, stderr)
			}
		})
	}
	if got := tp.p.Stats().AuthFailures; got != failures {
		t.Errorf("AuthFailures = %d, want %d", got, failures)
	}
}

// TestServerAuthGoSQLDriver: go-sql-driver answers the greeting's
// mysql_native_password (it picks the plugin the server names, and the proxy
// never asks it for another), with and without allowNativePasswords spelled
// out; a wrong password is ERR 1045 with SQLSTATE 28000.
func TestServerAuthGoSQLDriver(t *testing.T) {
	tp := startAuthProxy(t)
	cases := []struct {
		name, user, password, params string
		ok                           bool
	}{
		{"native", testUser, testPassword, "allowNativePasswords=true", true},
		{"native, driver defaults", testUser, testPassword, "", true},
		{"native hash is the one checked", nativeOnlyUser, testPassword, "allowNativePasswords=true", true},
		{"sha2 hash is not used for native", sha2OnlyUser, testPassword, "allowNativePasswords=true", false},
		{"wrong password", testUser, "wrong", "allowNativePasswords=true&allowCleartextPasswords=false", false},
		{"unknown user", "mallory", testPassword, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db, err := sql.Open("mysql", tp.dsn(c.user, c.password, testDB, c.params))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var user string
			err = db.QueryRow("SELECT CURRENT_USER()").Scan(&user)
			if c.ok {
				// The statement ran on the backend, as the service account.
				if err != nil || !strings.HasPrefix(user, tp.env.user+"@") {
					t.Fatalf("login: %v (CURRENT_USER %q)", err, user)
				}
				return
			}
			var me *mysql.MySQLError
			if !errors.As(err, &me) || me.Number != 1045 || me.SQLState != [5]byte{'2', '8', '0', '0', '0'} {
				t.Fatalf("error %v, want ERR 1045 (28000)", err)
			}
		})
	}
}

// TestServerAuthRawClient drives the handshake by hand: caching_sha2_password
// named in the HandshakeResponse gets fast-auth-success then OK; an account
// without a sha2 hash is switched to mysql_native_password; wrong passwords
// get ERR 1045 with SQLSTATE 28000.
func TestServerAuthRawClient(t *testing.T) {
	tp := startAuthProxy(t)
	accessDenied := func(t *testing.T, p []byte) {
		t.Helper()
		e, err := mysqlwire.ParseERR(p)
		if err != nil || e.Code != mysqlwire.ErAccessDenied || string(e.SQLState[:]) != "28000" {
			t.Fatalf("got %s, want ERR 1045 (28000)", errText(p))
		}
	}
	ping := func(t *testing.T, r *rawClient) {
		t.Helper()
		if resp := r.command([]byte{byte(mysqlwire.ComPing)}); !mysqlwire.IsOK(resp[0]) {
			t.Fatalf("ping after login: %s", errText(resp[0]))
		}
	}
	cases := []struct {
		name, user, password, plugin string
		// want: "ok", "fast" (fast-auth-success, then OK), "switch"
		// (auth switch to native, then OK), "denied", or "sha2-switch"
		// and "sha2-switch-denied" (see loginWithoutFirstScramble).
		want string
	}{
		{"native", testUser, testPassword, mysqlwire.AuthNativePassword, "ok"},
		{"native wrong password", testUser, "wrong", mysqlwire.AuthNativePassword, "denied"},
		{"caching_sha2 fast path", testUser, testPassword, mysqlwire.AuthCachingSHA2, "fast"},
		{"caching_sha2 through the sha2 hash only", sha2OnlyUser, testPassword, mysqlwire.AuthCachingSHA2, "fast"},
		{"caching_sha2 wrong password", testUser, "wrong", mysqlwire.AuthCachingSHA2, "denied"},
		{"caching_sha2 without a sha2 hash", testNoPWUser, "", mysqlwire.AuthCachingSHA2, "fast"},
		{"caching_sha2 for an account without a sha2 hash is switched", legacyUser, testPassword, mysqlwire.AuthCachingSHA2, "switch"},
		{"caching_sha2 without a first scramble is asked for one", testUser, testPassword, mysqlwire.AuthCachingSHA2, "sha2-switch"},
		{"caching_sha2 asked again, wrong password", testUser, "wrong", mysqlwire.AuthCachingSHA2, "sha2-switch-denied"},
		{"unknown plugin is switched to native", testUser, testPassword, "client_ed25519", "switch"},
		// As MariaDB answers an account created with REQUIRE SSL.
		{"require-tls without TLS, native", tlsOnlyUser, testPassword, mysqlwire.AuthNativePassword, "denied"},
		{"require-tls without TLS, caching_sha2", tlsOnlyUser, testPassword, mysqlwire.AuthCachingSHA2, "denied"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := dialRaw(t, tp.addr)
			if strings.HasPrefix(c.want, "sha2-switch") {
				loginWithoutFirstScramble(t, r, c.user, c.password, c.want == "sha2-switch")
				return
			}
			first := r.login(c.user, c.password, c.plugin, 0)
			switch c.want {
			case "ok":
				if !mysqlwire.IsOK(first) {
					t.Fatalf("got %s, want OK", errText(first))
				}
				ping(t, r)
			case "denied":
				accessDenied(t, first)
				if _, _, err := r.read(); err == nil {
					t.Fatal("the connection stayed open after ERR 1045")
				}
			case "fast":
				if !bytes.Equal(first, []byte{0x01, mysqlwire.CachingSHA2FastAuthSuccess}) {
					t.Fatalf("got %x, want fast-auth-success", first)
				}
				if p, _ := r.mustRead(); !mysqlwire.IsOK(p) {
					t.Fatalf("after fast-auth-success: %s, want OK", errText(p))
				}
				ping(t, r)
			case "switch":
				sw, err := mysqlwire.ParseAuthSwitchRequest(first)
				if err != nil || string(sw.PluginName) != mysqlwire.AuthNativePassword {
					t.Fatalf("got %x (%v), want an auth switch to %s", first, err, mysqlwire.AuthNativePassword)
				}
				r.write(3, mysqlwire.NativePasswordScramble([]byte(c.password), sw.PluginData[:20]))
				if p, _ := r.mustRead(); !mysqlwire.IsOK(p) {
					t.Fatalf("after the switch: %s, want OK", errText(p))
				}
				ping(t, r)
			}
		})
	}
}

// loginWithoutFirstScramble logs in the way libmariadb does when its plugin
// (caching_sha2_password) is not the one the greeting named: no scramble in
// the HandshakeResponse, then the answer to the server's auth switch.
func loginWithoutFirstScramble(t *testing.T, r *rawClient, user, password string, ok bool) {
	t.Helper()
	p, _ := r.mustRead()
	hs, err := mysqlwire.ParseHandshake(p)
	if err != nil {
		t.Fatal(err)
	}
	r.hs = hs
	hr := mysqlwire.HandshakeResponse{Capabilities: hs.Capabilities, MaxPacketSize: 1 << 24, CharacterSet: 45,
		Username: []byte(user), AuthPlugin: []byte(mysqlwire.AuthCachingSHA2), Database: []byte(testDB)}
	pkt, _ := mysqlwire.AppendHandshakeResponse(nil, 1, hr)
	if _, err := r.c.Write(pkt); err != nil {
		t.Fatal(err)
	}
	p, seq := r.mustRead()
	sw, err := mysqlwire.ParseAuthSwitchRequest(p)
	if err != nil || string(sw.PluginName) != mysqlwire.AuthCachingSHA2 || len(sw.PluginData) < 20 {
		t.Fatalf("got %x (%v), want an auth switch to %s", p, err, mysqlwire.AuthCachingSHA2)
	}
	r.write(seq+1, mysqlwire.CachingSHA2Scramble([]byte(password), sw.PluginData[:20]))
	p, _ = r.mustRead()
	if !ok {
		if e, err := mysqlwire.ParseERR(p); err != nil || e.Code != mysqlwire.ErAccessDenied || string(e.SQLState[:]) != "28000" {
			t.Fatalf("got %s, want ERR 1045 (28000)", errText(p))
		}
		return
	}
	if !bytes.Equal(p, []byte{0x01, mysqlwire.CachingSHA2FastAuthSuccess}) {
		t.Fatalf("got %x, want fast-auth-success", p)
	}
	if p, _ := r.mustRead(); !mysqlwire.IsOK(p) {
		t.Fatalf("after fast-auth-success: %s, want OK", errText(p))
	}
	if resp := r.command([]byte{byte(mysqlwire.ComPing)}); !mysqlwire.IsOK(resp[0]) {
		t.Fatalf("ping after login: %s", errText(resp[0]))
	}
}
