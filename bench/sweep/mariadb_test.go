package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBuiltinCnf(t *testing.T) {
	tests := []struct {
		name          string
		maxConns      int
		fileLimit     uint64
		wantOpenFiles string
	}{
		{"fits under the limit", 10000, 20000, "open_files_limit = 14500"},
		{"capped at the process limit", 16770, 20000, "open_files_limit = 20000"},
		{"unknown limit", 100, 0, "open_files_limit = 4600"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cnf := builtinCnf("/w/db", 3999, tc.maxConns, tc.fileLimit, true)
			for _, want := range []string{tc.wantOpenFiles, "port = 3999", "bind-address = 127.0.0.1",
				"thread_handling = one-thread-per-connection", "max_prepared_stmt_count = 1048576", "user = root",
				"max_connections = " + itoa(tc.maxConns), "datadir = /w/db/data"} {
				if !strings.Contains(cnf, want) {
					t.Errorf("cnf lacks %q:\n%s", want, cnf)
				}
			}
		})
	}
	if strings.Contains(builtinCnf("/w", 1, 10, 0, false), "user = root") {
		t.Error("a non-root run must not ask mariadbd to run as root")
	}
}

func TestSocketPathStaysShort(t *testing.T) {
	short := socketPath("/tmp/x")
	long := socketPath("/" + strings.Repeat("deep/", 30))
	if short != "/tmp/x/mariadbd.sock" || len(long) > 100 || long == socketPath("/"+strings.Repeat("other/", 30)) {
		t.Errorf("short %q, long %q", short, long)
	}
}

func TestReadEnvFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "env")
	text := "# comment\nexport SCALESTACK_MYSQL_ADDR=127.0.0.1:20541\nexport SCALESTACK_MYSQL_PID='9747'\nNOT_EXPORTED=1\n"
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	env, err := readEnvFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if env["SCALESTACK_MYSQL_ADDR"] != "127.0.0.1:20541" || env["SCALESTACK_MYSQL_PID"] != "9747" || len(env) != 2 {
		t.Errorf("env = %v", env)
	}
	if _, err := readEnvFile(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing env file read without error")
	}
}
