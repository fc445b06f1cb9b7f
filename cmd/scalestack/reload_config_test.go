package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
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

// TestGrafanaDashboardUsesExportedMetrics parses dist/grafana-mysqlproxy.json
// and checks that every scalestack_ metric its queries name is one the
// collectors export, so a renamed metric cannot leave a blank panel.
func TestGrafanaDashboardUsesExportedMetrics(t *testing.T) {
	text, err := os.ReadFile(filepath.Join("dist", "grafana-mysqlproxy.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(text, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	exported := map[string]bool{"scalestack_loop_busy_seconds_total": true}
	for _, d := range poolScalarDefs {
		exported[poolPrefix+d.name] = true
	}
	for _, d := range poolVectorDefs {
		exported[poolPrefix+d.name] = true
		exported[poolPrefix+d.name+"_bucket"] = true
	}
	names := regexp.MustCompile(`scalestack_[a-z_]+`)
	n := 0
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range names.FindAllString(tg.Expr, -1) {
				n++
				if !exported[m] {
					t.Errorf("panel %q queries %s, which is not exported", p.Title, m)
				}
			}
		}
	}
	if n < len(dash.Panels) {
		t.Fatalf("%d metric references in %d panels", n, len(dash.Panels))
	}
}
