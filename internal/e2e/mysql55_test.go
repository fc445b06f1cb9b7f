package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestMySQL55Mode runs the proxy with --mysql55: its greeting must look like
// a MySQL 5.5 server's (see the package documentation), and sysbench
// point_select with server-side prepared statements and the go-sql-driver
// workload, both reduced, must pass through it.
func TestMySQL55Mode(t *testing.T) {
	start := time.Now()
	ensureSysbenchTables(t)
	p := startProxy(t, proxyOptions{backendConns: 16, mysql55: true})

	t.Run("greeting", func(t *testing.T) {
		direct := greeting(t, srv.addr)
		proxied := greeting(t, p.addr)
		const allUpTo55 = uint32(capPluginAuth<<1 - 1)
		if direct.caps&^allUpTo55 == 0 && direct.extCaps == 0 {
			t.Fatalf("MariaDB itself offers nothing beyond 5.5 (caps %#x), so masking cannot be checked", direct.caps)
		}
		// "5.5.5-" is MariaDB's prefix for "the real version follows": a
		// client reading "5.5.5-10.11..." treats the server as MariaDB 10.11
		// and may use what 5.5 lacks.
		if !strings.HasPrefix(proxied.version, "5.5.") || strings.HasPrefix(proxied.version, "5.5.5-1") {
			t.Errorf("the proxy announces version %q, want a MySQL 5.5.x version", proxied.version)
		}
		if extra := proxied.caps &^ allUpTo55; extra != 0 {
			t.Errorf("the proxy offers capabilities %#x beyond MySQL 5.5's (all of its: %#x)", extra, proxied.caps)
		}
		if proxied.extCaps != 0 {
			t.Errorf("the proxy offers MariaDB extended capabilities %#x", proxied.extCaps)
		}
		if proxied.authPlugin != nativePasswordPlugin {
			t.Errorf("the proxy asks for auth plugin %q, want %s", proxied.authPlugin, nativePasswordPlugin)
		}
		t.Logf("MariaDB: %q caps %#x ext %#x; proxy --mysql55: %q caps %#x ext %#x plugin %s", direct.version,
			direct.caps, direct.extCaps, proxied.version, proxied.caps, proxied.extCaps, proxied.authPlugin)
	})
	t.Run("sysbench_point_select_ps", func(t *testing.T) {
		checkSysbench(t, p, "oltp_point_select", "auto", 256, 5*time.Second)
	})
	t.Run("go_driver", func(t *testing.T) {
		runDriverWorkload(t, p, 100, 3)
	})
	t.Logf("TestMySQL55Mode took %v", time.Since(start).Round(time.Millisecond))
}

func greeting(t *testing.T, addr string) handshake {
	t.Helper()
	c, err := dialRaw(addr, "", "", rawOptions{noHandshake: true})
	if err != nil {
		t.Fatalf("greeting of %s: %v", addr, err)
	}
	defer c.Close()
	return c.hello
}
