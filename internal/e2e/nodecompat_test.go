package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// nodeDir holds compat.cjs and, once scripts/node-drivers.sh has run, the
// npm packages mysql2 and mariadb in node_modules.
var nodeDir = filepath.Join("testdata", "node")

// nodeCase is one line of compat.cjs's output.
type nodeCase struct {
	Name   string          `json:"name"`
	Driver string          `json:"driver"`
	Item   int             `json:"item"`
	Direct json.RawMessage `json:"direct"`
	Proxy  json.RawMessage `json:"proxy"`
	Same   bool            `json:"same"`
}

type nodeTarget struct {
	Host          string `json:"host"`
	Port          int    `json:"port"`
	User          string `json:"user"`
	Password      string `json:"password"`
	Database      string `json:"database"`
	OtherDatabase string `json:"otherDatabase"`
	Other         struct {
		User     string `json:"user"`
		Password string `json:"password"`
	} `json:"other"`
}

// requireNode returns the node binary and makes sure the drivers are
// installed: where Node.js or the drivers are missing it runs
// scripts/node-drivers.sh (idempotent; make test runs it too) and fails if
// they are missing still, so the comparison never silently does not run.
func requireNode(t *testing.T) string {
	t.Helper()
	if node, missing := nodeMissing(); missing == "" {
		return node
	}
	out, err := exec.Command("bash", filepath.Join("..", "..", "scripts", "node-drivers.sh")).CombinedOutput()
	node, missing := nodeMissing()
	if missing != "" {
		t.Fatalf("%s after scripts/node-drivers.sh (%v):\n%s", missing, err, out)
	}
	return node
}

// nodeMissing returns the node binary, or what is missing to run the
// comparison.
func nodeMissing() (node, missing string) {
	node, err := exec.LookPath("node")
	if err != nil {
		return "", "node is not installed"
	}
	for _, pkg := range []string{"mysql2", "mariadb"} {
		if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", pkg, "package.json")); err != nil {
			return "", "the npm package " + pkg + " is not installed in " + nodeDir
		}
	}
	return node, ""
}

// otherAccountOnce creates e2e_other on the server too, with the password
// the proxy's users file has for it, so that COM_CHANGE_USER to it works
// direct as through the proxy.
var otherAccountOnce sync.Once
var otherAccountErr error

func ensureServerOtherAccount(t *testing.T) {
	t.Helper()
	otherAccountOnce.Do(func() {
		for _, host := range []string{"%", "localhost"} {
			acct := "'" + otherUser + "'@'" + host + "'"
			for _, q := range []string{"CREATE USER IF NOT EXISTS " + acct,
				"ALTER USER " + acct + " IDENTIFIED VIA mysql_native_password USING PASSWORD('" + otherPassword + "')",
				"GRANT ALL PRIVILEGES ON `e2e\\_%`.* TO " + acct} {
				if _, err := rootDB.Exec(q); err != nil {
					otherAccountErr = fmt.Errorf("%s: %w", q, err)
					return
				}
			}
		}
	})
	if otherAccountErr != nil {
		t.Fatal(otherAccountErr)
	}
}

// TestNodeDriversCompat runs internal/e2e/testdata/node/compat.cjs: the
// npm drivers mysql2 and mariadb send the same statements to MariaDB and
// through the proxy, one subtest per case, for each numbered item of issue
// 16.
func TestNodeDriversCompat(t *testing.T) {
	start := time.Now()
	node := requireNode(t)
	ensureServerOtherAccount(t)
	p := startProxy(t, proxyOptions{backendConns: 2, loops: 1})
	target := func(addr, user, password, otherPw string) nodeTarget {
		host, portText, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		port, _ := strconv.Atoi(portText)
		tg := nodeTarget{Host: host, Port: port, User: user, Password: password, Database: dataSchema, OtherDatabase: cliSchema}
		tg.Other.User, tg.Other.Password = otherUser, otherPw
		return tg
	}
	cfg, err := json.Marshal(map[string]any{
		"targets": map[string]nodeTarget{
			"direct": target(srv.addr, srv.serviceUser, srv.servicePassword, otherPassword),
			"proxy":  target(p.addr, clientUser, clientPassword, otherPassword),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "compat.cjs")
	cmd.Dir = nodeDir
	cmd.Env = append(os.Environ(), "SCALESTACK_COMPAT_CONFIG="+string(cfg))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node compat.cjs: %v\n%s", err, stderr.String())
	}
	var cases []nodeCase
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var c nodeCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("compat.cjs printed a line that is not a case (%v): %.200s", err, sc.Text())
		}
		cases = append(cases, c)
	}
	if len(cases) < 20 { // mysql2 alone has 25 outside the pending items
		t.Fatalf("compat.cjs ran only %d cases; stderr:\n%s", len(cases), stderr.String())
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			if bytes.Contains(c.Direct, []byte(`"failed"`)) {
				t.Fatalf("the direct run failed, so the comparison is void: %s", c.Direct)
			}
			if !c.Same {
				what := "item " + strconv.Itoa(c.Item)
				if c.Item == 0 {
					what = "no numbered cause"
				}
				t.Errorf("%s (issue 16, %s) differs through the proxy:\n  direct: %s\n  proxy:  %s", c.Name, what,
					clip(c.Direct), clip(c.Proxy))
			}
		})
	}
	p.requireAlive(t)
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	t.Logf("%s; TestNodeDriversCompat took %v", lines[len(lines)-1], time.Since(start).Round(time.Millisecond))
}

func clip(b []byte) string {
	if len(b) > 1500 {
		return string(b[:1500]) + "..."
	}
	return string(b)
}
