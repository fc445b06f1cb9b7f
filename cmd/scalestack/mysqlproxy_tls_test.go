package main

import (
	"strings"
	"testing"

	"github.com/scalestack/scalestack/internal/testutil"
	"github.com/scalestack/scalestack/pool"
)

// TestMySQLTLSFlags: --backend-tls takes MySQL's ssl-mode names, the CA and
// server name only where a mode checks them, a name for every backend that
// verify-identity checks; --require-tls needs a certificate.
func TestMySQLTLSFlags(t *testing.T) {
	pki := testutil.NewPKI(t, "mysql-flags-test")
	server := pki.Server("server", "127.0.0.1")
	tcp, err := pool.ParseTargets("127.0.0.1:3306,localhost:3307", "")
	if err != nil {
		t.Fatal(err)
	}
	unix, err := pool.ParseTargets("unix:/tmp/x.sock", "")
	if err != nil {
		t.Fatal(err)
	}
	flags := func(mode, ca, name string, require bool, cert bool) mysqlTLSFlags {
		f := mysqlTLSFlags{front: testTLSFlags("", "", ""), backendMode: mode, backendCA: ca, backendServerName: name, requireTLS: require}
		if cert {
			f.front.cert, f.front.key = server.CertFile, server.KeyFile
		}
		return f
	}
	for _, tc := range []struct {
		name     string
		f        mysqlTLSFlags
		targets  []pool.Target
		want     string // substring of the error; "" means valid
		backends int    // backend TLS configurations built
	}{
		{"off", flags("off", "", "", false, false), tcp, "", 0},
		{"client TLS only", flags("off", "", "", true, true), tcp, "", 0},
		{"require-tls without a certificate", flags("off", "", "", true, false), tcp, "--require-tls needs", 0},
		{"unknown mode", flags("on", "", "", false, false), tcp, "want off, preferred", 0},
		{"CA with TLS off", flags("off", pki.CAFile, "", false, false), tcp, "need --backend-tls", 0},
		{"preferred", flags("preferred", "", "", false, false), tcp, "", 2},
		{"required", flags("required", "", "", false, false), unix, "", 1},
		{"required checks no CA", flags("required", pki.CAFile, "", false, false), tcp, "checks no certificate", 0},
		{"verify-ca", flags("verify-ca", pki.CAFile, "", false, false), unix, "", 1},
		{"verify-ca checks no name", flags("verify-ca", pki.CAFile, "db", false, false), tcp, "checks no name", 0},
		{"verify-identity", flags("verify-identity", pki.CAFile, "", false, true), tcp, "", 2},
		{"verify-identity, Unix socket without a name", flags("verify-identity", pki.CAFile, "", false, false), unix, "--backend-tls-server-name", 0},
		{"verify-identity, Unix socket with a name", flags("verify-identity", pki.CAFile, "db.internal", false, false), unix, "", 1},
		{"key as backend CA", flags("verify-ca", server.KeyFile, "", false, false), tcp, "--backend-tls-ca", 0},
	} {
		s, err := tc.f.build(tc.targets)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.want)
		case err == nil && len(s.backends) != tc.backends:
			t.Errorf("%s: %d backend TLS configurations, want %d", tc.name, len(s.backends), tc.backends)
		case err == nil && tc.backends > 0 && s.pool == nil:
			t.Errorf("%s: backend TLS without a handshake pool", tc.name)
		}
	}
	// verify-identity checks each backend's own host.
	f := flags("verify-identity", pki.CAFile, "", false, false)
	s, err := f.build(tcp)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"127.0.0.1", "localhost"} {
		if c := s.backendTLS()(i).Config(); c.ServerName != want || c.InsecureSkipVerify {
			t.Errorf("backend %d: ServerName %q InsecureSkipVerify %v, want %q and verification", i, c.ServerName, c.InsecureSkipVerify, want)
		}
	}
}
