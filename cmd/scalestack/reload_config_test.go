package main

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSampleConfig checks that dist/mysqlproxy.toml passes check-config
// (with its file paths pointed at files that exist) and documents every
// mysqlproxy flag except --config itself.
func TestSampleConfig(t *testing.T) {
	sample, err := os.ReadFile(filepath.Join("dist", "mysqlproxy.toml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte("app:native=:sha2=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "backend-password"), []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(sample), "/etc/scalestack/", dir+"/")
	cfg := filepath.Join(dir, "mysqlproxy.toml")
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"check-config", cfg}, &out, &errb); code != 0 {
		t.Fatalf("check-config on the sample: exit %d: %s", code, errb.String())
	}
	fs, _, _ := mysqlProxyFlags(io.Discard)
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name != "config" && !strings.Contains(string(sample), "\n"+f.Name+" = ") {
			t.Errorf("the sample does not set --%s", f.Name)
		}
	})
	// A mistake in the sample's style is caught with its line.
	bad := strings.Replace(text, "queue-timeout = \"10s\"", "queue-timeout = \"ten seconds\"", 1)
	if err := os.WriteFile(cfg, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	errb.Reset()
	if code := run([]string{"check-config", cfg}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "queue-timeout") {
		t.Fatalf("bad queue-timeout: exit %d, stderr %q", code, errb.String())
	}
}
