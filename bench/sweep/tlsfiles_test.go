package main

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestWriteTLSFiles: the proxy's certificate verifies for 127.0.0.1 against the CA sysbench reads,
// and the TLS target's proxy is started with it.
func TestWriteTLSFiles(t *testing.T) {
	dir := t.TempDir()
	if err := writeTLSFiles(dir); err != nil {
		t.Fatal(err)
	}
	for _, pair := range [][2]string{{tlsServerCert, tlsServerKey}, {tlsClientCert, tlsClientKey}} {
		if _, err := tls.LoadX509KeyPair(filepath.Join(dir, pair[0]), filepath.Join(dir, pair[1])); err != nil {
			t.Fatalf("%s: %v", pair[0], err)
		}
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, tlsCACert))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("no CA certificate")
	}
	pair, _ := tls.LoadX509KeyPair(filepath.Join(dir, tlsServerCert), filepath.Join(dir, tlsServerKey))
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "127.0.0.1"}); err != nil {
		t.Fatalf("the proxy's certificate does not verify for 127.0.0.1: %v", err)
	}
	argv := proxyArgv(targetProxyEpollTLS, 1, 0, targetEnv{ProxyBin: "scalestack", TLSDir: dir})
	if !slices.Contains(argv, "--tls-cert") || !slices.Contains(argv, filepath.Join(dir, tlsServerKey)) {
		t.Errorf("the TLS target's proxy runs without its certificate: %v", argv)
	}
	if argv := proxyArgv(targetProxyEpoll, 1, 0, targetEnv{ProxyBin: "scalestack", TLSDir: dir}); slices.Contains(argv, "--tls-cert") {
		t.Errorf("proxy-epoll runs with TLS: %v", argv)
	}
}
