package conn

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
)

// TLSFiles names the PEM files of one side of TLS.
type TLSFiles struct {
	// CertFile and KeyFile hold the certificate chain (leaf first) and its
	// private key. A server needs them; a client presents them to servers
	// that ask for a client certificate.
	CertFile, KeyFile string
	// CAFile holds the certificates of the authorities to trust. A server
	// with one requires and verifies a client certificate (mTLS); a client
	// verifies the server against it instead of the system's roots.
	CAFile string
}

// TLSCerts is a TLS configuration built from files that can be reloaded
// while connections run: handshakes that begin after Reload use the new
// files, established connections keep what they negotiated. Its Config
// method is what TLS.Config wants. Safe for concurrent use.
type TLSCerts struct {
	server   bool
	template *tls.Config
	files    atomic.Pointer[TLSFiles]
	current  atomic.Pointer[tls.Config]
	// base is what a server's connections start with: it holds the
	// session ticket keys, which crypto/tls rotates itself and which
	// therefore survive reloads, and hands each handshake the current
	// configuration through GetConfigForClient.
	base *tls.Config
}

// NewServerTLSCerts loads a server's certificate, key and, when CAFile is
// set, the authorities client certificates must chain to. template, when
// not nil, supplies the other settings (NextProtos for ALPN, versions,
// cipher suites...); its Certificates, ClientCAs and ClientAuth are
// replaced. TLS 1.2 is the minimum unless the template says otherwise.
func NewServerTLSCerts(files TLSFiles, template *tls.Config) (*TLSCerts, error) {
	if files.CertFile == "" || files.KeyFile == "" {
		return nil, errors.New("conn: a TLS server needs a certificate file and a key file")
	}
	t := &TLSCerts{server: true, template: templateOrDefault(template)}
	if err := t.Load(files); err != nil {
		return nil, err
	}
	t.base = t.template.Clone()
	t.base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return t.current.Load(), nil }
	// The base needs a certificate of its own only to pass crypto/tls's
	// checks; every handshake runs with the current configuration.
	t.base.Certificates = t.current.Load().Certificates
	return t, nil
}

// NewClientTLSCerts builds a client's configuration: CAFile, when set,
// replaces the system roots; CertFile and KeyFile, when set, are the
// client certificate. template supplies ServerName and the rest; a session
// cache is added when it has none, so reconnections resume sessions.
func NewClientTLSCerts(files TLSFiles, template *tls.Config) (*TLSCerts, error) {
	t := &TLSCerts{template: templateOrDefault(template)}
	if t.template.ClientSessionCache == nil {
		t.template.ClientSessionCache = tls.NewLRUClientSessionCache(0)
	}
	if err := t.Load(files); err != nil {
		return nil, err
	}
	return t, nil
}

func templateOrDefault(template *tls.Config) *tls.Config {
	if template == nil {
		template = &tls.Config{}
	}
	t := template.Clone()
	if t.MinVersion == 0 {
		t.MinVersion = tls.VersionTLS12
	}
	return t
}

// Config returns the configuration for a new connection.
func (t *TLSCerts) Config() *tls.Config {
	if t.server {
		return t.base
	}
	return t.current.Load()
}

// Files returns the files in use.
func (t *TLSCerts) Files() TLSFiles { return *t.files.Load() }

// Reload reads the same files again. On error the configuration in use
// stays.
func (t *TLSCerts) Reload() error { return t.Load(t.Files()) }

// Load switches to files (new names, or the same after they changed). On
// error the configuration in use stays.
func (t *TLSCerts) Load(files TLSFiles) error {
	cfg := t.template.Clone()
	if files.CertFile != "" || files.KeyFile != "" {
		if files.CertFile == "" || files.KeyFile == "" {
			return errors.New("conn: TLS certificate and key files go together")
		}
		cert, err := tls.LoadX509KeyPair(files.CertFile, files.KeyFile)
		if err != nil {
			return fmt.Errorf("conn: TLS certificate %s, key %s: %w", files.CertFile, files.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	} else if t.server {
		return errors.New("conn: a TLS server needs a certificate file and a key file")
	}
	if files.CAFile != "" {
		pem, err := os.ReadFile(files.CAFile)
		if err != nil {
			return fmt.Errorf("conn: TLS CA file: %w", err)
		}
		pool, err := ParseCertPool(pem)
		if err != nil {
			return fmt.Errorf("conn: TLS CA file %s: %w", files.CAFile, err)
		}
		if t.server {
			cfg.ClientCAs = pool
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		} else {
			cfg.RootCAs = pool
		}
	}
	f := files
	t.files.Store(&f)
	t.current.Store(cfg)
	return nil
}

// ParseCertPool parses PEM certificates into a pool. Unlike
// x509.CertPool.AppendCertsFromPEM it refuses what it cannot use instead of
// skipping it: a block that is not a certificate, a certificate that does
// not parse, or no certificate at all (a key or a DER file given as the CA
// would otherwise silently trust nothing, or less than meant). Text around
// the blocks, such as the subject lines openssl writes, is ignored.
func ParseCertPool(data []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for rest := data; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		n++
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is a %q, not a CERTIFICATE", n, block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", n, err)
		}
		pool.AddCert(cert)
	}
	if n == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return pool, nil
}
