package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMariaDBScriptGuards checks the refusals that keep scripts/mariadb.sh from harming anything it
// did not make; none of these cases starts a server.
func TestMariaDBScriptGuards(t *testing.T) {
	script, err := findScript()
	if err != nil {
		t.Fatal(err)
	}
	foreign := t.TempDir()
	precious := filepath.Join(foreign, "precious")
	if err := os.WriteFile(precious, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "never-started")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
	}{
		{"stop refuses a directory it did not make", []string{"stop", "--dir", foreign}, 1, "not made by this script"},
		{"start refuses a non-empty foreign directory", []string{"start", "--dir", foreign}, 1, "not made by this script"},
		{"start refuses port 3306", []string{"start", "--dir", missing, "--port", "3306"}, 1, "3306"},
		{"reuse needs earlier data", []string{"start", "--dir", missing, "--reuse"}, 1, "holds no data"},
		{"status of nothing", []string{"status", "--dir", missing}, 3, "not running"},
		{"stop of nothing succeeds", []string{"stop", "--dir", missing}, 0, "nothing to stop"},
		{"unknown subcommand", []string{"explode"}, 1, "unknown subcommand"},
		{"help", []string{"--help"}, 0, "restart [--dir DIR]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := exec.Command("bash", append([]string{script}, tt.args...)...).CombinedOutput()
			code := 0
			if exitErr, ok := err.(*exec.ExitError); ok {
				code = exitErr.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.wantCode || !strings.Contains(string(out), tt.wantOut) {
				t.Errorf("mariadb.sh %s: exit %d, output %q; want exit %d and %q", strings.Join(tt.args, " "),
					code, out, tt.wantCode, tt.wantOut)
			}
		})
	}
	if data, err := os.ReadFile(precious); err != nil || string(data) != "keep me" {
		t.Errorf("the foreign directory's file was touched: %q, %v", data, err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("refused commands left %s behind (stat: %v)", missing, err)
	}
}
