package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scalestack/scalestack/pool"
)

// TestParseTenants: the [tenants] tables of a mysqlproxy configuration
// file, and the mistakes they can hold, pointed at by line.
func TestParseTenants(t *testing.T) {
	cases := []struct {
		name    string
		text    string
		want    map[string]pool.TenantRules
		def     pool.TenantRules
		wantErr string // substring; "" for none
	}{
		{name: "none", text: "listen = \"127.0.0.1:0\"\n", want: map[string]pool.TenantRules{}},
		{name: "every setting and defaults", text: `
[tenants]
max-queued = 100

[tenants.shop]
weight = 3
min-backends = 2
max-backends = 6
max-clients = 50
max-queued = 10
queue-timeout = "2s"
max-qps = 250.5
max-statement-time = "1.5s"

[tenants.batch]
weight = 1
`, want: map[string]pool.TenantRules{
			"shop":  {Weight: 3, MinBackends: 2, MaxBackends: 6, MaxClients: 50, MaxQueued: 10, QueueTimeout: 2 * time.Second, MaxQPS: 250.5, StatementTime: 1500 * time.Millisecond},
			"batch": {Weight: 1},
		}, def: pool.TenantRules{MaxQueued: 100}},
		{name: "unknown key", text: "[tenants.shop]\nwieght = 3\n", wantErr: ":2: [tenants.shop] wieght: unknown tenant setting"},
		{name: "weight out of range", text: "[tenants.shop]\nweight = 0\n", wantErr: ":2: [tenants.shop] weight: want 1 to 1000"},
		{name: "bad duration", text: "[tenants.shop]\nqueue-timeout = 5\n", wantErr: "queue-timeout: want a duration"},
		{name: "min over max", text: "[tenants.shop]\nmin-backends = 3\nmax-backends = 2\n", wantErr: "min-backends: 3 is more than max-backends 2"},
		{name: "mins over N", text: "[tenants.a]\nmin-backends = 5\n[tenants.b]\nmin-backends = 4\n", wantErr: "add up to 9, more than --backend-conns 8"},
		{name: "bad name", text: "[tenants.\"a b\"]\nweight = 2\n", wantErr: "a tenant name is"},
		{name: "negative qps", text: "[tenants.a]\nmax-qps = -1\n", wantErr: "max-qps: want 0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "proxy.toml")
			if err := os.WriteFile(path, []byte(tc.text), 0o600); err != nil {
				t.Fatal(err)
			}
			ts, err := readTenants(path, 8)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(ts.Rules) != len(tc.want) {
				t.Fatalf("tenants %+v, want %+v", ts.Rules, tc.want)
			}
			for name, r := range tc.want {
				if ts.Rules[name] != r {
					t.Errorf("%s: %+v, want %+v", name, ts.Rules[name], r)
				}
			}
			if ts.Default != tc.def {
				t.Errorf("defaults %+v, want %+v", ts.Default, tc.def)
			}
		})
	}
}

// TestTenantsTableOnlyForMySQLProxy: the flags of mysqlproxy's file are
// applied with its [tenants] tables left to readTenants; other commands
// still refuse a table.
func TestTenantsTableOnlyForMySQLProxy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "proxy.toml")
	if err := os.WriteFile(path, []byte("max-clients = 7\n[tenants.shop]\nweight = 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs, _, _ := mysqlProxyFlags(os.Stderr)
	if err := applyConfigFile(fs, path); err != nil {
		t.Fatalf("mysqlproxy: %v", err)
	}
	if got := fs.Lookup("max-clients").Value.String(); got != "7" {
		t.Fatalf("max-clients = %s, want 7", got)
	}
	other, _ := newServerFlags("tcpproxy", os.Stderr, "127.0.0.1:0")
	if err := applyConfigFile(other, path); err == nil || !strings.Contains(err.Error(), "tables are not settings") {
		t.Fatalf("another command: %v, want the table refused", err)
	}
}
