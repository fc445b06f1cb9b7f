package testutil

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
)

// TestMariaDBScriptTLS starts a throwaway server with --tls and checks the contract the TLS tests
// build on: the CA it writes verifies the server for 127.0.0.1, test_tls logs in over TLS, and
// test_tls without TLS is refused with the server's 1045 (REQUIRE SSL).
func TestMariaDBScriptTLS(t *testing.T) {
	script, err := findScript()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "mariadb-tls")
	out, err := exec.Command("bash", script, "start", "--dir", dir, "--tls").CombinedOutput()
	if err != nil {
		t.Fatalf("mariadb.sh start --tls: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("bash", script, "stop", "--dir", dir).CombinedOutput(); err != nil {
			t.Errorf("mariadb.sh stop: %v\n%s", err, out)
		}
	})
	env := readEnvFile(t, filepath.Join(dir, "env"))
	for _, k := range []string{"SCALESTACK_MYSQL_ADDR", "SCALESTACK_MYSQL_TLS_CA", "SCALESTACK_MYSQL_TLS_USER", "SCALESTACK_MYSQL_TEST_PASSWORD"} {
		if env[k] == "" {
			t.Fatalf("env file lacks %s: %v", k, env)
		}
	}
	caPEM, err := os.ReadFile(env["SCALESTACK_MYSQL_TLS_CA"])
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("the CA file holds no certificate")
	}
	if err := mysql.RegisterTLSConfig("script-tls-test", &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	open := func(tlsName string) *sql.DB {
		cfg := mysql.NewConfig()
		cfg.User, cfg.Passwd = env["SCALESTACK_MYSQL_TLS_USER"], env["SCALESTACK_MYSQL_TEST_PASSWORD"]
		cfg.Net, cfg.Addr, cfg.TLSConfig = "tcp", env["SCALESTACK_MYSQL_ADDR"], tlsName
		db, err := sql.Open("mysql", cfg.FormatDSN())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	var name, version string
	if err := open("script-tls-test").QueryRow("SHOW SESSION STATUS LIKE 'Ssl_version'").Scan(&name, &version); err != nil {
		t.Fatalf("verified TLS login as test_tls: %v", err)
	}
	if !strings.HasPrefix(version, "TLSv1.") {
		t.Errorf("Ssl_version = %q, want a TLS version", version)
	}
	var myErr *mysql.MySQLError
	if err := open("false").Ping(); !errors.As(err, &myErr) || myErr.Number != 1045 {
		t.Errorf("plain login as test_tls: %v, want ERR 1045 (REQUIRE SSL)", err)
	}
}

func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "export "), "="); ok && !strings.HasPrefix(k, "#") {
			env[k] = v
		}
	}
	return env
}
