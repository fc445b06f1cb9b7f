package loadgen

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

// tlsEchoServer serves TLS echo on loopback with a throwaway self-signed
// certificate until the test ends.
func tlsEchoServer(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						if _, err := c.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestRunTLS: with Config.TLS the connections handshake before the
// warm-up, echoes are checked through TLS, and the negotiated parameters
// are reported; the epoll engine, which needs raw sockets, refuses TLS.
func TestRunTLS(t *testing.T) {
	addr := tlsEchoServer(t)
	cfg := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}
	res, err := Run(context.Background(), Config{Network: "tcp", Addr: addr, Conns: 4, Size: 64, Engine: EngineNet,
		Duration: 200 * time.Millisecond, TLS: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if res.Msgs == 0 || res.Failures != 0 {
		t.Fatalf("%d messages, %d failures (%v)", res.Msgs, res.Failures, res.FirstErr)
	}
	if !strings.HasPrefix(res.TLS, "TLS 1.3 ") {
		t.Fatalf("TLS %q, want TLS 1.3", res.TLS)
	}
	if _, err := Run(context.Background(), Config{Network: "tcp", Addr: addr, Conns: 1, Engine: EngineEpoll,
		Duration: time.Second, TLS: cfg}); err == nil || !strings.Contains(err.Error(), "net engine") {
		t.Fatalf("epoll engine with TLS: %v, want a refusal", err)
	}
}
