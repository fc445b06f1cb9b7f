package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/internal/testutil"
)

// tlsClientsEnv sets how many concurrent clients the TLS many-clients test
// runs per case. The default keeps the whole matrix well under a minute
// under -race on two cores; the 1,000 is
// SCALESTACK_TLS_CLIENTS=1000 go test -race -run TestTLSManyClients ./cmd/scalestack/
const tlsClientsEnv = "SCALESTACK_TLS_CLIENTS"

func tlsClientCount(t *testing.T) int {
	if v := os.Getenv(tlsClientsEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("%s=%q: want a positive number", tlsClientsEnv, v)
		}
		return n
	}
	return 200
}

// testTLSFlags are the module flags a test would pass for TLS with the
// given files.
func testTLSFlags(cert, key, ca string) tlsFlags {
	return tlsFlags{cert: cert, key: key, ca: ca, handshakeTimeout: 10 * time.Second, workers: 2,
		maxHandshakes: conn.DefaultHandshakeMaxInFlight, queue: conn.DefaultHandshakeQueue}
}

// tlsTopology is one arrangement of the echo and tcpproxy modules.
type tlsTopology struct {
	name string
	// clientTLS: clients speak TLS to the front; proxy: a tcpproxy in
	// front of echo; backendTLS: the proxy speaks TLS to echo.
	clientTLS, proxy, backendTLS bool
}

var tlsTopologies = []tlsTopology{
	{"echo", true, false, false},
	{"tcpproxy-terminates", true, true, false},
	{"tcpproxy-originates", false, true, true},
	{"tcpproxy-both", true, true, true},
}

// startTLSService starts the topology's modules, built from their flags,
// on e and returns the address clients dial.
func startTLSService(t *testing.T, e *testEngine, pki *testutil.PKI, server testutil.Issued, topo tlsTopology, handshakeTimeout time.Duration) (front conn.Addr, lns []*conn.Listener) {
	t.Helper()
	listen := func(m module) *conn.Listener {
		ln, err := conn.Listen(e.Engine, m.listen)
		if err != nil {
			t.Fatalf("listen %s: %v", m.name, err)
		}
		closeListener(t, ln)
		lns = append(lns, ln)
		return ln
	}
	echoTLS := topo.backendTLS || (topo.clientTLS && !topo.proxy)
	var ef tlsFlags
	if echoTLS {
		ef = testTLSFlags(server.CertFile, server.KeyFile, "")
	} else {
		ef = testTLSFlags("", "", "")
	}
	ef.handshakeTimeout = handshakeTimeout
	ets, err := ef.build(conn.Addr{})
	if err != nil {
		t.Fatalf("echo TLS flags: %v", err)
	}
	echoLn := listen(echoModule(testAddr(t, "tcp"), false, ets))
	if !topo.proxy {
		return echoLn.Addr(), lns
	}
	pf := testTLSFlags("", "", "")
	if topo.clientTLS {
		pf.cert, pf.key = server.CertFile, server.KeyFile
	}
	if topo.backendTLS {
		pf.backendTLS, pf.backendCA = true, pki.CAFile
	}
	pf.handshakeTimeout = handshakeTimeout
	pts, err := pf.build(echoLn.Addr())
	if err != nil {
		t.Fatalf("tcpproxy TLS flags: %v", err)
	}
	proxyLn := listen(tcpProxyModule(testAddr(t, "tcp"), echoLn.Addr(), false, pts))
	return proxyLn.Addr(), lns
}

// tlsEchoRoundTrip is echoRoundTrip over TLS when cfg is set.
func tlsEchoRoundTrip(a conn.Addr, cfg *tls.Config, payload []byte, deadline time.Time) error {
	raw, err := net.DialTimeout(a.Network, a.Address, time.Until(deadline))
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	var c net.Conn = raw
	if cfg != nil {
		c = tls.Client(raw, cfg)
	}
	defer c.Close()
	return roundTripOn(c, payload, deadline)
}

// TestTLSManyClientsEchoedExactly runs many concurrent clients with 1 B to
// 1 MiB each through echo over TLS and through tcpproxy terminating TLS,
// originating it, or both, on epoll and io_uring, TLS 1.2 and 1.3.
func TestTLSManyClientsEchoedExactly(t *testing.T) {
	pki := testutil.NewPKI(t, "scalestack-test")
	server := pki.Server("server", "127.0.0.1", "localhost")
	clients := tlsClientCount(t)
	for _, topo := range tlsTopologies {
		t.Run(topo.name, func(t *testing.T) {
			for _, drv := range engineDrivers {
				versions := []uint16{tls.VersionTLS12, tls.VersionTLS13}
				if !topo.clientTLS {
					// Only the proxy's side to echo is TLS: it negotiates
					// 1.3, whatever the client; one run suffices.
					versions = versions[1:]
				}
				for _, ver := range versions {
					name := drv + "/tls12"
					if ver == tls.VersionTLS13 {
						name = drv + "/tls13"
					}
					t.Run(name, func(t *testing.T) {
						checkLeaks(t)
						e := startTestEngine(t, drv, 2)
						// This test is about the bytes: with a thousand
						// clients doing their own crypto in this process under
						// -race, handshakes can take longer than the default
						// timeout, which has tests of its own.
						front, lns := startTLSService(t, e, pki, server, topo, time.Minute)
						var cfg *tls.Config
						if topo.clientTLS {
							cfg = &tls.Config{RootCAs: pki.Pool, ServerName: "localhost", MinVersion: ver, MaxVersion: ver}
						}
						seed := uint64(time.Now().UnixNano())
						rng := rand.New(rand.NewPCG(seed, seed>>1))
						sizes := skewedSizes(rng, clients)
						total := 0
						payloads := make([][]byte, len(sizes))
						for i, n := range sizes {
							total += n
							payloads[i] = make([]byte, n)
							for j := range payloads[i] {
								payloads[i][j] = byte(rng.Uint32())
							}
						}
						start := time.Now()
						deadline := start.Add(60 * time.Second)
						var wg sync.WaitGroup
						errs := make(chan error, len(payloads))
						for _, p := range payloads {
							wg.Add(1)
							go func() {
								defer wg.Done()
								if err := tlsEchoRoundTrip(front, cfg, p, deadline); err != nil {
									errs <- err
								}
							}()
						}
						wg.Wait()
						close(errs)
						failed := 0
						for err := range errs {
							if failed < 5 {
								t.Errorf("client: %v", err)
							}
							failed++
						}
						if failed > 0 {
							t.Fatalf("%d of %d clients failed (seed %d)", failed, len(payloads), seed)
						}
						t.Logf("%d clients, %d bytes each way, %v (seed %d)", len(payloads), total, time.Since(start).Round(time.Millisecond), seed)
						waitOpenConns(t, 10*time.Second, lns...)
					})
				}
			}
		})
	}
}

// TestTLSEchoBinaryClientCertsAndReload runs `scalestack echo` with
// --tls-cert, --tls-key and --tls-ca: a client with a certificate from the
// CA is served, one without is refused; after the certificate files are
// replaced and SIGHUP sent, new connections get the new certificate while
// an established one goes on.
func TestTLSEchoBinaryClientCertsAndReload(t *testing.T) {
	bin := buildBinary(t)
	pki := testutil.NewPKI(t, "binary-test")
	first, second := pki.Server("first", "127.0.0.1"), pki.Server("second", "127.0.0.1")
	client := pki.Client("client", "alice")
	dir := t.TempDir()
	certFile, keyFile := dir+"/cert.pem", dir+"/key.pem"
	copyTestFile(t, first.CertFile, certFile)
	copyTestFile(t, first.KeyFile, keyFile)
	addr := "127.0.0.1:" + freePort(t)
	cmd, logf := startProcess(t, bin, "echo", "--loops", "1", "--listen", addr,
		"--tls-cert", certFile, "--tls-key", keyFile, "--tls-ca", pki.CAFile, "--tls-handshake-timeout", "5s")
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("echo log:\n%s", b)
		}
	})

	cfg := func(withCert bool) *tls.Config {
		c := &tls.Config{RootCAs: pki.Pool, ServerName: "127.0.0.1"}
		if withCert {
			c.Certificates = []tls.Certificate{client.Cert}
		}
		return c
	}
	dialTLS := func(withCert bool) (*tls.Conn, error) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg(withCert))
		if err != nil {
			return nil, err
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		// The handshake's result for a client certificate arrives with
		// the first read in TLS 1.3: exchange something.
		if _, err := c.Write([]byte("ping")); err != nil {
			c.Close()
			return nil, err
		}
		b := make([]byte, 4)
		if _, err := io.ReadFull(c, b); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
	serial := func(c *tls.Conn) string { return c.ConnectionState().PeerCertificates[0].SerialNumber.String() }

	old, err := dialTLS(true)
	if err != nil {
		t.Fatalf("client with a certificate: %v", err)
	}
	defer old.Close()
	if got, want := serial(old), first.Leaf.SerialNumber.String(); got != want {
		t.Fatalf("serial %s, want %s", got, want)
	}
	if c, err := dialTLS(false); err == nil {
		c.Close()
		t.Fatalf("a client without a certificate was served")
	}

	copyTestFile(t, second.CertFile, certFile)
	copyTestFile(t, second.KeyFile, keyFile)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	var fresh *tls.Conn
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := dialTLS(true)
		if err != nil {
			t.Fatalf("client after reload: %v", err)
		}
		if serial(c) == second.Leaf.SerialNumber.String() {
			fresh = c
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("still the old certificate 10 s after SIGHUP")
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer fresh.Close()
	for _, c := range []*tls.Conn{old, fresh} {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("after")); err != nil {
			t.Fatalf("write after reload: %v", err)
		}
		b := make([]byte, 5)
		if _, err := io.ReadFull(c, b); err != nil || string(b) != "after" {
			t.Fatalf("echo after reload: %q, %v", b, err)
		}
	}
}

func copyTestFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestTLSFlagsValidation: combinations that cannot work are refused at
// start with the flag named.
func TestTLSFlagsValidation(t *testing.T) {
	pki := testutil.NewPKI(t, "flags-test")
	server := pki.Server("server", "127.0.0.1")
	unixBackend, err := conn.ParseAddr("unix:/tmp/x.sock")
	if err != nil {
		t.Fatal(err)
	}
	tcpBackend, err := conn.ParseAddr("127.0.0.1:3306")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		f       tlsFlags
		backend conn.Addr
		want    string // substring of the error; "" means valid
	}{
		{"no TLS", testTLSFlags("", "", ""), tcpBackend, ""},
		{"server", testTLSFlags(server.CertFile, server.KeyFile, pki.CAFile), tcpBackend, ""},
		{"cert without key", testTLSFlags(server.CertFile, "", ""), tcpBackend, "--tls-cert"},
		{"CA without cert", testTLSFlags("", "", pki.CAFile), tcpBackend, "--tls-ca needs"},
		{"key as CA", testTLSFlags(server.CertFile, server.KeyFile, server.KeyFile), tcpBackend, "--tls-ca"},
		{"missing cert file", testTLSFlags(server.CertFile+".nope", server.KeyFile, ""), tcpBackend, "--tls-cert"},
		{"backend CA without backend TLS", func() tlsFlags { f := testTLSFlags("", "", ""); f.backendCA = pki.CAFile; return f }(), tcpBackend, "need --backend-tls"},
		{"backend TLS to a Unix socket without a name", func() tlsFlags { f := testTLSFlags("", "", ""); f.backendTLS = true; return f }(), unixBackend, "--backend-tls-server-name"},
		{"backend TLS to a Unix socket with a name", func() tlsFlags {
			f := testTLSFlags("", "", "")
			f.backendTLS, f.backendServerName = true, "db.internal"
			return f
		}(), unixBackend, ""},
		{"zero timeout", func() tlsFlags { f := testTLSFlags("", "", ""); f.handshakeTimeout = 0; return f }(), tcpBackend, "--tls-handshake-timeout"},
	} {
		_, err := tc.f.build(tc.backend)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
}
