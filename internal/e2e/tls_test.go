package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"database/sql/driver"
	"errors"
	"fmt"
	"github.com/scalestack/scalestack/internal/mysqlfake"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/scalestack/scalestack/internal/testutil"
	"github.com/scalestack/scalestack/mysqlwire"
)

// tlsOnlyUser is an account of the TLS tests' users file with require-tls.
const tlsOnlyUser = "e2e_tls_only"

var registerTLSOnce sync.Once

// startTLSProxy starts a proxy in front of the shared server that offers
// clients TLS with a certificate for 127.0.0.1 from a throwaway CA, with a
// users file that adds tlsOnlyUser (require-tls) to clientUser.
func startTLSProxy(t *testing.T, pki *testutil.PKI, extra ...string) *proxyProcess {
	t.Helper()
	cert := pki.Server("proxy", "127.0.0.1", "localhost")
	var users []byte
	for _, acct := range []struct{ name, password, fields string }{
		{clientUser, clientPassword, ""}, {tlsOnlyUser, clientPassword, ":require-tls"},
	} {
		passwd := exec.Command(binaryPath, "passwd", acct.name)
		passwd.Stdin = strings.NewReader(acct.password + "\n")
		line, err := passwd.Output()
		if err != nil {
			t.Fatalf("scalestack passwd %s: %v", acct.name, err)
		}
		users = append(append(append(users, bytes.TrimRight(line, "\n")...), acct.fields...), '\n')
	}
	path := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(path, users, 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--users", path, "--tls-cert", cert.CertFile, "--tls-key", cert.KeyFile}, extra...)
	return startProxy(t, proxyOptions{backendConns: 2, extraArgs: args})
}

// mariadbCLI runs the mariadb client against addr and returns its output.
func mariadbCLI(t *testing.T, addr, user string, args ...string) (string, error) {
	t.Helper()
	host, port := splitAddr(t, addr)
	all := append([]string{"--no-defaults", "--protocol=TCP", "-h", host, "-P", port, "-u", user, "-p" + clientPassword,
		"--connect-timeout=5", "-D", cliSchema, "-N", "-B"}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := runCommand(ctx, nil, "mariadb", all...)
	return string(out), err
}

// TestTLSClients: through a proxy with a certificate, the mariadb client
// with --ssl and with --ssl-verify-server-cert (the test's CA), and
// go-sql-driver with tls=custom (verifying) and tls=skip-verify, log in over
// TLS and see it in SHOW STATUS LIKE 'Ssl_%'; a client holding another CA
// refuses the proxy; an account with require-tls is refused without TLS
// with MariaDB's 1045 (28000) for REQUIRE SSL, and logs in with it.
func TestTLSClients(t *testing.T) {
	pki := testutil.NewPKI(t, "e2e-proxy")
	other := testutil.NewPKI(t, "e2e-other")
	p := startTLSProxy(t, pki)
	const query = "SHOW STATUS LIKE 'Ssl_version'; SELECT name FROM items WHERE id = 2"

	t.Run("mariadb --ssl", func(t *testing.T) {
		out, err := mariadbCLI(t, p.addr, clientUser, "--ssl", "--skip-ssl-verify-server-cert", "-e", query)
		if err != nil || !strings.Contains(out, "Ssl_version\tTLSv1.") || !strings.Contains(out, "beta") {
			t.Fatalf("mariadb --ssl: %v\n%s", err, out)
		}
	})
	t.Run("mariadb --ssl-verify-server-cert", func(t *testing.T) {
		out, err := mariadbCLI(t, p.addr, clientUser, "--ssl", "--ssl-ca", pki.CAFile, "--ssl-verify-server-cert", "-e", query)
		if err != nil || !strings.Contains(out, "Ssl_version\tTLSv1.") || !strings.Contains(out, "beta") {
			t.Fatalf("mariadb --ssl-verify-server-cert: %v\n%s", err, out)
		}
		out, err = mariadbCLI(t, p.addr, clientUser, "--ssl", "--ssl-ca", other.CAFile, "--ssl-verify-server-cert", "-e", query)
		if err == nil || !strings.Contains(out, "ERROR 2026") {
			t.Fatalf("mariadb verifying against another CA: %v, want ERROR 2026 (TLS)\n%s", err, out)
		}
	})
	t.Run("mariadb require-tls", func(t *testing.T) {
		out, err := mariadbCLI(t, p.addr, tlsOnlyUser, "--skip-ssl", "-e", query)
		want := "ERROR 1045 (28000): Access denied for user '" + tlsOnlyUser + "'@'127.0.0.1' (using password: YES)"
		if err == nil || !strings.Contains(out, want) {
			t.Fatalf("require-tls account without TLS: %v, want %q\n%s", err, want, out)
		}
		out, err = mariadbCLI(t, p.addr, tlsOnlyUser, "--ssl", "--ssl-ca", pki.CAFile, "--ssl-verify-server-cert", "-e", query)
		if err != nil || !strings.Contains(out, "beta") {
			t.Fatalf("require-tls account over TLS: %v\n%s", err, out)
		}
	})

	registerTLSOnce.Do(func() {
		if err := mysql.RegisterTLSConfig("e2e-proxy-ca", &tls.Config{RootCAs: pki.Pool, ServerName: "127.0.0.1"}); err != nil {
			t.Fatal(err)
		}
		if err := mysql.RegisterTLSConfig("e2e-other-ca", &tls.Config{RootCAs: other.Pool, ServerName: "127.0.0.1"}); err != nil {
			t.Fatal(err)
		}
	})
	for _, c := range []struct {
		name, user, tls string
		ok              bool
	}{
		{"go-sql-driver tls=custom", clientUser, "e2e-proxy-ca", true},
		{"go-sql-driver tls=skip-verify", clientUser, "skip-verify", true},
		{"go-sql-driver tls=custom, another CA", clientUser, "e2e-other-ca", false},
		{"go-sql-driver require-tls over TLS", tlsOnlyUser, "e2e-proxy-ca", true},
		{"go-sql-driver require-tls without TLS", tlsOnlyUser, "false", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			db := openProxyDB(t, p.addr, cliSchema, func(cfg *mysql.Config) {
				cfg.User, cfg.TLSConfig = c.user, c.tls
			})
			var name, cipher, item string
			err := db.QueryRow("SHOW STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher)
			if !c.ok {
				if c.tls == "false" {
					var me *mysql.MySQLError
					if !errors.As(err, &me) || me.Number != 1045 || string(me.SQLState[:]) != "28000" {
						t.Fatalf("got %v, want ERR 1045 (28000)", err)
					}
				} else if err == nil || !strings.Contains(err.Error(), "certificate") {
					t.Fatalf("got %v, want a certificate error", err)
				}
				return
			}
			if err != nil || cipher == "" {
				t.Fatalf("SHOW STATUS LIKE 'Ssl_cipher': %v (%q)", err, cipher)
			}
			if err := db.QueryRow("SELECT name FROM items WHERE id = ?", 3).Scan(&item); err != nil || item != "gamma" {
				t.Fatalf("prepared SELECT over TLS: %v (%q)", err, item)
			}
		})
	}

	t.Run("sysbench --mysql-ssl=on", func(t *testing.T) {
		ensureSysbenchTables(t)
		// sysbench 1.0 hands libmariadb the files client-key.pem,
		// client-cert.pem and cacert.pem of its working directory.
		dir := t.TempDir()
		client := pki.Client("sysbench-client", "sysbench")
		for dst, src := range map[string]string{"client-key.pem": client.KeyFile, "client-cert.pem": client.CertFile, "cacert.pem": pki.CAFile} {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, dst), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		host, port := splitAddr(t, p.addr)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "sysbench", "oltp_point_select", "--db-driver=mysql", "--mysql-ssl=on",
			"--mysql-host="+host, "--mysql-port="+port, "--mysql-user="+tlsOnlyUser, "--mysql-password="+clientPassword,
			"--mysql-db="+sysbenchDB, "--tables=1", "--table-size="+strconv.Itoa(sysbenchTableSize), "--threads=16",
			"--time=3", "--report-interval=0", "run")
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("sysbench --mysql-ssl=on: %v\n%s", err, tail(string(out), 30))
		}
		r, err := parseSysbench(string(out))
		if err != nil {
			t.Fatal(err)
		}
		// The require-tls account logs in only over TLS: every thread did.
		t.Logf("sysbench over TLS: %d queries (%.0f qps), %d errors, %d reconnects", r.queries, r.qps, r.errors, r.reconnects)
		if r.transactions == 0 || r.errors != 0 || r.reconnects != 0 {
			t.Fatalf("sysbench over TLS: %d transactions, %d errors, %d reconnects\n%s", r.transactions, r.errors, r.reconnects, tail(r.output, 30))
		}
	})
	p.requireAlive(t)
}

// TestTLSStalledSSLRequest: clients that send SSLRequest and then nothing
// are closed at --tls-handshake-timeout, while other clients log in over
// TLS meanwhile.
func TestTLSStalledSSLRequest(t *testing.T) {
	pki := testutil.NewPKI(t, "e2e-stall")
	p := startTLSProxy(t, pki, "--tls-handshake-timeout", "1s")
	const stalled = 50
	conns := make([]*rawConn, 0, stalled)
	start := time.Now()
	for i := 0; i < stalled; i++ {
		c, err := dialRaw(p.addr, clientUser, clientPassword, rawOptions{noHandshake: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.sendSSLRequest(); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	if out, err := mariadbCLI(t, p.addr, clientUser, "--ssl", "--skip-ssl-verify-server-cert", "-e", "SELECT 1"); err != nil {
		t.Fatalf("TLS login beside %d stalled clients: %v\n%s", stalled, err, out)
	}
	for i, c := range conns {
		if err := c.waitClosed(5 * time.Second); err != nil {
			t.Fatalf("stalled client %d: %v", i, err)
		}
	}
	if took := time.Since(start); took < time.Second || took > 4*time.Second {
		t.Errorf("the stalled clients were closed after %v, want about --tls-handshake-timeout (1s)", took)
	}
	p.requireAlive(t)
}

// TestTLSBackends: against a MariaDB started with TLS by scripts/mariadb.sh,
// --backend-tls=verify-identity logs every backend in over TLS (the server
// reports TLS for the session a client's statements run in), 5.5 mode
// included (its resets are COM_CHANGE_USER over TLS), and a CA that did not
// sign the server's certificate, or a server without TLS for required,
// leaves the proxy without backends (ERR 9003).
func TestTLSBackends(t *testing.T) {
	priv := testutil.PrivateMariaDB(t, "--tls")
	if priv.TLSCA == "" {
		t.Fatal("scripts/mariadb.sh start --tls wrote no SCALESTACK_MYSQL_TLS_CA")
	}
	b := &server{addr: priv.Addr, rootUser: priv.RootUser, rootPassword: priv.RootPassword,
		serviceUser: priv.User, servicePassword: priv.Password, servicePasswordFile: priv.PasswordFile}
	if err := b.openRoot(); err != nil {
		t.Fatal(err)
	}
	defer b.root.Close()
	const sslVersion = "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'Ssl_version'"
	for _, c := range []struct {
		name string
		args []string
		opts proxyOptions
	}{
		{"verify-identity", []string{"--backend-tls", "verify-identity", "--backend-tls-ca", priv.TLSCA}, proxyOptions{loops: 2, backendConns: 4}},
		{"verify-ca", []string{"--backend-tls", "verify-ca", "--backend-tls-ca", priv.TLSCA}, proxyOptions{backendConns: 2}},
		{"required, 5.5 mode", []string{"--backend-tls", "required"}, proxyOptions{backendConns: 2, mysql55: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := c.opts
			o.backend, o.extraArgs = b, c.args
			p := startProxy(t, o)
			db := openProxyDB(t, p.addr, priv.Database, nil)
			db.SetMaxOpenConns(8)
			var wg sync.WaitGroup
			var errs errorCollector
			for w := 0; w < 8; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 20; i++ {
						var v string
						if err := db.QueryRow(sslVersion).Scan(&v); err != nil || !strings.HasPrefix(v, "TLSv1.") {
							errs.add("backend Ssl_version %q: %v", v, err)
							return
						}
						// A pinned session: its backend is reset when it ends.
						conn, err := db.Conn(context.Background())
						if err != nil {
							errs.add("conn: %v", err)
							return
						}
						if _, err := conn.ExecContext(context.Background(), "SET @x = 1"); err != nil {
							errs.add("SET @x: %v", err)
						}
						_ = conn.Raw(func(any) error { return driver.ErrBadConn })
						conn.Close()
					}
				}()
			}
			wg.Wait()
			errs.check(t, "queries over backend TLS")
			p.requireAlive(t)
		})
	}
	t.Run("verify-identity and verify-ca with another CA", func(t *testing.T) {
		other := testutil.NewPKI(t, "e2e-not-the-servers")
		wantNoBackends(t, b, "certificate signed by unknown authority", "--backend-tls", "verify-identity", "--backend-tls-ca", other.CAFile)
		wantNoBackends(t, b, "certificate signed by unknown authority", "--backend-tls", "verify-ca", "--backend-tls-ca", other.CAFile)
	})
	t.Run("verify-identity with another name", func(t *testing.T) {
		wantNoBackends(t, b, "not db.example", "--backend-tls", "verify-identity", "--backend-tls-ca", priv.TLSCA, "--backend-tls-server-name", "db.example")
	})
	t.Run("required against a server without TLS", func(t *testing.T) {
		// The in-process double greets without CLIENT_SSL whatever the
		// shared server does (a developer's may serve TLS), so this never
		// depends on which MariaDB the tests were given.
		fake := mysqlfake.Start(t, mysqlfake.Config{
			Capabilities: mysqlfake.MariaDBCaps &^ mysqlwire.ClientSSL,
			Accounts:     []mysqlfake.Account{{User: srv.serviceUser, Password: srv.servicePassword}},
		})
		plain := &server{addr: fake.Addr(), serviceUser: srv.serviceUser, servicePassword: srv.servicePassword,
			servicePasswordFile: srv.servicePasswordFile}
		wantNoBackends(t, plain, "does not offer TLS", "--backend-tls", "required")
	})
	t.Run("preferred against a server without TLS", func(t *testing.T) {
		p := startProxy(t, proxyOptions{backendConns: 2, extraArgs: []string{"--backend-tls", "preferred"}})
		var one int
		if err := openProxyDB(t, p.addr, cliSchema, nil).QueryRow("SELECT 1").Scan(&one); err != nil {
			t.Fatal(err)
		}
	})
}

// sendSSLRequest answers the greeting (read by dialRaw with noHandshake)
// with an SSLRequest, after which the server expects a TLS ClientHello.
func (c *rawConn) sendSSLRequest() error {
	hr := mysqlwire.HandshakeResponse{Capabilities: mysqlwire.ClientProtocol41 | mysqlwire.ClientSecureConnection |
		mysqlwire.ClientPluginAuth | mysqlwire.ClientSSL, MaxPacketSize: 1 << 24, CharacterSet: 45, SSLRequest: true}
	payload, _ := mysqlwire.AppendHandshakeResponse(nil, 0, hr)
	return c.writePacket(payload[mysqlwire.HeaderSize:])
}

// waitClosed reads until the server closes the connection, or fails after
// within.
func (c *rawConn) waitClosed(within time.Duration) error {
	c.setDeadline(within)
	if n, err := io.Copy(io.Discard, c.r); err != nil {
		return fmt.Errorf("still open after %v (%d bytes read): %w", within, n, err)
	}
	return nil
}

// wantNoBackends runs a proxy in front of b with args that keep every
// backend from logging in, and checks that a client gets ERR 9003 (no
// backend connection is available) rather than a backend, and that the
// proxy's log says why (logWant).
func wantNoBackends(t *testing.T, b *server, logWant string, args ...string) {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	all := append([]string{"mysqlproxy", "--listen", addr, "--backend", b.addr, "--backend-user", b.serviceUser,
		"--backend-password-file", b.servicePasswordFile, "--backend-conns", "2", "--users", usersPath, "--admin", "",
		"--queue-timeout", "20s"}, args...)
	var log lockedBuffer // written by exec's copying goroutine, read here
	cmd := exec.Command(binaryPath, all...)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("proxy log:\n%s", log.String())
		}
	}()
	db := openProxyDB(t, addr, cliSchema, func(c *mysql.Config) { c.Timeout = 2 * time.Second })
	deadline := time.Now().Add(20 * time.Second)
	for {
		var one int
		err := db.QueryRow("SELECT 1").Scan(&one)
		var me *mysql.MySQLError
		if errors.As(err, &me) && me.Number == 9003 {
			time.Sleep(100 * time.Millisecond) // the log line may follow the refusal
			if !strings.Contains(log.String(), logWant) {
				t.Errorf("ERR 9003, but the proxy's log does not say %q", logWant)
			}
			return
		}
		if err == nil {
			t.Fatal("a statement ran: a backend logged in")
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ERR 9003 within 20 s; last: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// lockedBuffer is a bytes.Buffer that a process's output goroutine may
// write while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
