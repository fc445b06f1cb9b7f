package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"

	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/pool"
)

// mysqlTLSFlags are the MySQL proxy's TLS flags: the client side and the
// handshake pool as for echo and tcpproxy (tlsFlags), and a backend side
// with MySQL's ssl-mode levels instead of tcpproxy's on/off.
type mysqlTLSFlags struct {
	front             tlsFlags
	requireTLS        bool
	backendMode       string
	backendCA         string
	backendServerName string
}

// Backend TLS modes, as MySQL's --ssl-mode names them.
const (
	backendTLSOff            = "off"
	backendTLSPreferred      = "preferred"
	backendTLSRequired       = "required"
	backendTLSVerifyCA       = "verify-ca"
	backendTLSVerifyIdentity = "verify-identity"
)

func (f *mysqlTLSFlags) register(fs *flag.FlagSet) {
	f.front.register(fs, false)
	// Unlike echo's, the MySQL protocol upgrades in place: TLS is offered,
	// and required only where --require-tls or the users file say so.
	fs.Lookup("tls-cert").Usage = "PEM certificate chain (leaf first): clients are offered TLS (CLIENT_SSL; an SSLRequest upgrades the connection, TLS 1.2 or 1.3); re-read on SIGHUP and POST /reload"
	fs.Lookup("tls-handshake-timeout").Usage = "a TLS handshake (client or backend) not finished this long after it began (a client's SSLRequest, a backend's greeting) is closed; waiting for a handshake goroutine included"
	fs.BoolVar(&f.requireTLS, "require-tls", false, "refuse every login that does not come over TLS with ERR 1045 (28000), as MariaDB refuses an account with REQUIRE SSL (the users-file field require-tls does it per account); needs --tls-cert")
	fs.StringVar(&f.backendMode, "backend-tls", backendTLSOff, "TLS towards the backends, as MySQL's --ssl-mode: off; preferred (TLS when the server offers it, certificate not checked); required (TLS or no login, certificate not checked); verify-ca (the certificate must chain to --backend-tls-ca, or the system's roots); verify-identity (verify-ca, and it must name the backend's host or --backend-tls-server-name). Backends on TLS stay on the loop that opened them: --backend-conns must be at least --loops")
	fs.StringVar(&f.backendCA, "backend-tls-ca", "", "PEM CA certificates that verify the backends' certificates (verify-ca, verify-identity; default: the system's roots); re-read on SIGHUP and POST /reload")
	fs.StringVar(&f.backendServerName, "backend-tls-server-name", "", "name the backends' certificates must carry with --backend-tls=verify-identity, also sent as SNI (default: each backend's host)")
}

// mysqlTLSSetup is what the flags built: the client side and the handshake
// pool in tlsSetup (its reload re-reads --tls-* and --backend-tls-ca), and
// one backend TLS per target (each verifies its own host name).
type mysqlTLSSetup struct {
	tlsSetup
	backends []*conn.TLS
	optional bool
}

// backendTLS is mysqlproxy.Config.BackendTLS: nil when TLS is off.
func (s *mysqlTLSSetup) backendTLS() func(target int) *conn.TLS {
	if s.backends == nil {
		return nil
	}
	return func(target int) *conn.TLS { return s.backends[target] }
}

func (f *mysqlTLSFlags) build(targets []pool.Target) (*mysqlTLSSetup, error) {
	front, err := f.front.build(conn.Addr{})
	if err != nil {
		return nil, err
	}
	s := &mysqlTLSSetup{tlsSetup: *front}
	if f.requireTLS && s.front == nil {
		return nil, errors.New("--require-tls needs --tls-cert and --tls-key")
	}
	mode := f.backendMode
	switch mode {
	case backendTLSOff:
		if f.backendCA != "" || f.backendServerName != "" {
			return nil, errors.New("--backend-tls-ca and --backend-tls-server-name need --backend-tls")
		}
		return s, nil
	case backendTLSPreferred, backendTLSRequired:
		if f.backendCA != "" || f.backendServerName != "" {
			return nil, fmt.Errorf("--backend-tls=%s checks no certificate: --backend-tls-ca and --backend-tls-server-name need verify-ca or verify-identity", mode)
		}
	case backendTLSVerifyCA:
		if f.backendServerName != "" {
			return nil, errors.New("--backend-tls=verify-ca checks no name: --backend-tls-server-name needs verify-identity")
		}
	case backendTLSVerifyIdentity:
	default:
		return nil, fmt.Errorf("--backend-tls: want off, preferred, required, verify-ca or verify-identity, not %q", mode)
	}
	if s.pool == nil {
		s.pool = conn.NewHandshakePool(conn.HandshakePoolConfig{Workers: f.front.workers, MaxInFlight: f.front.maxHandshakes, Queue: f.front.queue})
	}
	certs, err := conn.NewClientTLSCerts(conn.TLSFiles{CAFile: f.backendCA}, nil)
	if err != nil {
		return nil, fmt.Errorf("--backend-tls-ca: %w", err)
	}
	s.backCerts = certs
	s.optional = mode == backendTLSPreferred
	for _, t := range targets {
		name := f.backendServerName
		if name == "" && t.Addr.Network == "tcp" {
			if host, _, err := net.SplitHostPort(t.Addr.Address); err == nil {
				name = host
			}
		}
		if name == "" && mode == backendTLSVerifyIdentity {
			return nil, fmt.Errorf("--backend-tls=verify-identity: backend %s has no host name to verify: give --backend-tls-server-name", t.Addr)
		}
		s.backends = append(s.backends, &conn.TLS{Config: backendTLSConfig(certs, mode, name), HandshakeTimeout: f.front.handshakeTimeout, Pool: s.pool})
	}
	return s, nil
}

// backendTLSConfig returns the configuration of each handshake with one
// backend: the current CA file's (reloads apply to new connections) with
// the backend's name and the mode's checks.
func backendTLSConfig(certs *conn.TLSCerts, mode, name string) func() *tls.Config {
	return func() *tls.Config {
		c := certs.Config().Clone()
		c.ServerName = name
		switch mode {
		case backendTLSPreferred, backendTLSRequired:
			c.InsecureSkipVerify = true
		case backendTLSVerifyCA:
			// crypto/tls verifies the chain and the name together; the
			// chain alone is checked here, as MySQL's VERIFY_CA does.
			c.InsecureSkipVerify = true
			roots := c.RootCAs
			c.VerifyConnection = func(cs tls.ConnectionState) error {
				return verifyChain(cs.PeerCertificates, roots)
			}
		}
		return c
	}
}

// verifyChain checks that the peer's certificate chains to roots (nil: the
// system's), whatever name it carries.
func verifyChain(certs []*x509.Certificate, roots *x509.CertPool) error {
	if len(certs) == 0 {
		return errors.New("the backend sent no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter}); err != nil {
		return fmt.Errorf("backend certificate: %w", err)
	}
	return nil
}
