package testutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is a throwaway certificate authority for TLS tests, made with crypto/x509 in the test's own
// temporary directory: no network, no fixed files that expire.
type PKI struct {
	t    testing.TB
	dir  string
	ca   *x509.Certificate
	key  *ecdsa.PrivateKey
	Pool *x509.CertPool
	// CAFile is the CA certificate in PEM.
	CAFile string
	serial int64
}

// Issued is a certificate the PKI signed, as files and in memory.
type Issued struct {
	CertFile, KeyFile string
	Cert              tls.Certificate
	Leaf              *x509.Certificate
}

// NewPKI makes a CA named name.
func NewPKI(t testing.TB, name string) *PKI {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("create CA: %v", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse CA: %v", err)
	}
	p := &PKI{t: t, dir: t.TempDir(), ca: ca, key: key, Pool: x509.NewCertPool(), serial: 1}
	p.Pool.AddCert(ca)
	p.CAFile = p.write(name+"-ca.pem", "CERTIFICATE", der)
	return p
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	return key
}

func (p *PKI) write(name, typ string, der []byte) string {
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		p.t.Fatalf("write %s: %v", path, err)
	}
	return path
}

// Server issues a server certificate for the given DNS names and IP addresses (strings that parse
// as IPs become IP SANs), written to files named after file.
func (p *PKI) Server(file string, names ...string) Issued {
	return p.issue(file, x509.ExtKeyUsageServerAuth, names)
}

// Client issues a client certificate with common name cn.
func (p *PKI) Client(file, cn string) Issued {
	return p.issue(file, x509.ExtKeyUsageClientAuth, []string{cn})
}

func (p *PKI) issue(file string, usage x509.ExtKeyUsage, names []string) Issued {
	p.t.Helper()
	key := newKey(p.t)
	p.serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.serial),
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.key)
	if err != nil {
		p.t.Fatalf("issue %s: %v", file, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		p.t.Fatalf("marshal key: %v", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		p.t.Fatalf("parse %s: %v", file, err)
	}
	return Issued{
		CertFile: p.write(file+".pem", "CERTIFICATE", der),
		KeyFile:  p.write(file+"-key.pem", "PRIVATE KEY", keyDER),
		Cert:     tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		Leaf:     leaf,
	}
}
