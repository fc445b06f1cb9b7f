package e2e

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestMariaDBCLI runs scripts/mysql-cli-session.sh (the mariadb client fed
// statements on stdin) directly against MariaDB and through the proxy; the
// outputs must be identical apart from the connection id.
func TestMariaDBCLI(t *testing.T) {
	start := time.Now()
	p := startProxy(t, proxyOptions{backendConns: 2})
	script, err := filepath.Abs(filepath.Join("..", "..", "scripts", "mysql-cli-session.sh"))
	if err != nil {
		t.Fatal(err)
	}
	clientPasswordFile := filepath.Join(workDir, "client.password")
	if err := os.WriteFile(clientPasswordFile, []byte(clientPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(addr, user, passwordFile string) string {
		t.Helper()
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := runCommand(ctx, nil, script, "--host", host, "--port", port, "--user", user,
			"--password-file", passwordFile, "--database", cliSchema)
		if err != nil {
			t.Fatalf("%s against %s: %v\n%s", script, addr, err, out)
		}
		return string(out)
	}
	// The direct run uses the service account, the one the proxy's backends
	// log in as, so that SHOW DATABASES lists the same schemas.
	direct := run(srv.addr, srv.serviceUser, srv.servicePasswordFile)
	proxied := run(p.addr, clientUser, clientPasswordFile)

	for _, want := range []string{"ERROR 1064 (42000) at line", "rows_after_rollback", "*************************** 1. row",
		"Tables_in_" + cliSchema, "still connected after the error"} {
		if !strings.Contains(direct, want) {
			t.Fatalf("the direct session lacks %q, so the script or fixture is broken:\n%s", want, direct)
		}
	}
	d, pr := maskConnectionID(direct), maskConnectionID(proxied)
	if d != pr {
		t.Errorf("the session through the proxy differs from the direct one:\n%s", lineDiff(d, pr))
	}
	t.Logf("TestMariaDBCLI took %v", time.Since(start).Round(time.Millisecond))
}

var spaces = regexp.MustCompile(`\s+`)

// maskConnectionID replaces the value row under the connection_id header
// (the only value that legitimately differs) with a placeholder.
func maskConnectionID(out string) string {
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if strings.Contains(l, "| connection_id |") && i+2 < len(lines) {
			lines[i+2] = spaces.ReplaceAllString(regexp.MustCompile(`\d+`).ReplaceAllString(lines[i+2], "ID"), " ")
		}
	}
	return strings.Join(lines, "\n")
}

// lineDiff shows the first differing lines of two outputs with their context.
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var sb strings.Builder
	shown := 0
	for i := 0; i < max(len(al), len(bl)) && shown < 12; i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			sb.WriteString("line " + itoa(i+1) + ":\n  direct: " + x + "\n  proxy:  " + y + "\n")
			shown++
		}
	}
	return sb.String()
}
