package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/scalestack/scalestack/conn"
)

// tlsFlags are the TLS flags of the echo and tcpproxy modules: the client
// side (--tls-*), the backend side (--backend-tls*, tcpproxy only) and the
// handshake pool both share.
type tlsFlags struct {
	cert, key, ca    string
	handshakeTimeout time.Duration
	workers          int
	maxHandshakes    int
	queue            int

	backend           bool // the module has a backend side
	backendTLS        bool
	backendCA         string
	backendServerName string
}

func (f *tlsFlags) register(fs *flag.FlagSet, backend bool) {
	fs.StringVar(&f.cert, "tls-cert", "", "PEM certificate chain (leaf first): clients must connect with TLS 1.2 or 1.3; re-read on SIGHUP and POST /reload")
	fs.StringVar(&f.key, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&f.ca, "tls-ca", "", "PEM CA certificates: clients must present a certificate signed by one of them (mutual TLS); needs --tls-cert")
	fs.DurationVar(&f.handshakeTimeout, "tls-handshake-timeout", conn.DefaultHandshakeTimeout, "a TLS handshake not finished this long after the TCP connection opened is closed (waiting for a handshake goroutine included)")
	fs.IntVar(&f.workers, "tls-handshake-workers", 2, "TLS handshakes computing at once; one waiting for its peer does not count (the default matches the two spare Ps the engine keeps beside its loops)")
	fs.IntVar(&f.maxHandshakes, "tls-max-handshakes", conn.DefaultHandshakeMaxInFlight, "TLS handshakes under way at once, each on a goroutine parked while it waits for its peer; the rest queue (a client's handshake begins with its first byte: one that sends nothing takes no goroutine)")
	fs.IntVar(&f.queue, "tls-handshake-queue", conn.DefaultHandshakeQueue, "connections waiting for a TLS handshake to start (they read nothing meanwhile); beyond it new ones are closed at once")
	if backend {
		f.backend = true
		fs.BoolVar(&f.backendTLS, "backend-tls", false, "connect to the backend with TLS, verifying its certificate (against --backend-tls-ca, or the system's roots)")
		fs.StringVar(&f.backendCA, "backend-tls-ca", "", "PEM CA certificates that verify the backend's certificate (instead of the system's roots); re-read on SIGHUP and POST /reload")
		fs.StringVar(&f.backendServerName, "backend-tls-server-name", "", "name the backend's certificate must carry, also sent as SNI (default: the host of --backend)")
	}
}

// tlsSetup is what the flags built: nil fields for sides without TLS.
type tlsSetup struct {
	front, back           *conn.TLS
	frontCerts, backCerts *conn.TLSCerts
	pool                  *conn.HandshakePool
}

// build validates the flags and loads the files. backend is the parsed
// --backend address (tcpproxy).
func (f *tlsFlags) build(backend conn.Addr) (*tlsSetup, error) {
	s := &tlsSetup{}
	if f.cert == "" && f.key == "" && f.ca != "" {
		return nil, errors.New("--tls-ca needs --tls-cert and --tls-key")
	}
	if !f.backendTLS && (f.backendCA != "" || f.backendServerName != "") {
		return nil, errors.New("--backend-tls-ca and --backend-tls-server-name need --backend-tls")
	}
	if f.handshakeTimeout <= 0 {
		return nil, fmt.Errorf("--tls-handshake-timeout must be positive, not %v", f.handshakeTimeout)
	}
	if f.workers <= 0 || f.maxHandshakes <= 0 || f.queue <= 0 {
		return nil, errors.New("--tls-handshake-workers, --tls-max-handshakes and --tls-handshake-queue must be positive")
	}
	if f.cert == "" && f.key == "" && !f.backendTLS {
		return s, nil
	}
	s.pool = conn.NewHandshakePool(conn.HandshakePoolConfig{Workers: f.workers, MaxInFlight: f.maxHandshakes, Queue: f.queue})
	if f.cert != "" || f.key != "" {
		certs, err := conn.NewServerTLSCerts(conn.TLSFiles{CertFile: f.cert, KeyFile: f.key, CAFile: f.ca}, nil)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key/--tls-ca: %w", err)
		}
		s.frontCerts = certs
		s.front = &conn.TLS{Config: certs.Config, HandshakeTimeout: f.handshakeTimeout, Pool: s.pool}
	}
	if f.backendTLS {
		name := f.backendServerName
		if name == "" && backend.Network == "tcp" {
			if host, _, err := net.SplitHostPort(backend.Address); err == nil {
				name = host
			}
		}
		if name == "" {
			return nil, errors.New("--backend-tls: give --backend-tls-server-name (the backend address has no host name)")
		}
		certs, err := conn.NewClientTLSCerts(conn.TLSFiles{CAFile: f.backendCA}, &tls.Config{ServerName: name})
		if err != nil {
			return nil, fmt.Errorf("--backend-tls-ca: %w", err)
		}
		s.backCerts = certs
		s.back = &conn.TLS{Config: certs.Config, HandshakeTimeout: f.handshakeTimeout, Pool: s.pool}
	}
	return s, nil
}

// liveFlags are the flags a reload applies: the files of the sides that
// run TLS (turning TLS on or off needs a restart).
func (s *tlsSetup) liveFlags() []string {
	var live []string
	if s.frontCerts != nil {
		live = append(live, "tls-cert", "tls-key", "tls-ca")
	}
	if s.backCerts != nil {
		live = append(live, "backend-tls-ca")
	}
	return live
}

// reload re-reads the certificate files named in a freshly parsed flag set
// (the same names or new ones). Both sides are loaded in full before either
// is switched, so a bad file changes nothing.
func (s *tlsSetup) reload(fs *flag.FlagSet) error {
	val := func(name string) string {
		if fl := fs.Lookup(name); fl != nil {
			return fl.Value.String()
		}
		return ""
	}
	var frontFiles, backFiles conn.TLSFiles
	if s.frontCerts != nil {
		frontFiles = conn.TLSFiles{CertFile: val("tls-cert"), KeyFile: val("tls-key"), CAFile: val("tls-ca")}
		if frontFiles.CertFile == "" || frontFiles.KeyFile == "" {
			return errors.New("TLS towards clients cannot be turned off by a reload")
		}
		if _, err := conn.NewServerTLSCerts(frontFiles, nil); err != nil {
			return fmt.Errorf("--tls-cert/--tls-key/--tls-ca: %w", err)
		}
	}
	if s.backCerts != nil {
		backFiles = conn.TLSFiles{CAFile: val("backend-tls-ca")}
		if _, err := conn.NewClientTLSCerts(backFiles, nil); err != nil {
			return fmt.Errorf("--backend-tls-ca: %w", err)
		}
	}
	if s.frontCerts != nil {
		if err := s.frontCerts.Load(frontFiles); err != nil {
			return fmt.Errorf("--tls-cert/--tls-key/--tls-ca: %w", err)
		}
	}
	if s.backCerts != nil {
		if err := s.backCerts.Load(backFiles); err != nil {
			return fmt.Errorf("--backend-tls-ca: %w", err)
		}
	}
	return nil
}

// apply wires the setup into a module: reload and, when TLS is on, the
// handshake pool's metrics.
func (s *tlsSetup) apply(m *module) {
	if s.pool == nil {
		return
	}
	m.liveFlags = append(m.liveFlags, s.liveFlags()...)
	m.reload = s.reload
	m.collectors = append(m.collectors, newHandshakeCollector(s.pool))
}

// handshakeCollector exports a handshake pool's counters.
type handshakeCollector struct {
	pool                    *conn.HandshakePool
	inFlight, queued, total *prometheus.Desc
}

func newHandshakeCollector(p *conn.HandshakePool) *handshakeCollector {
	return &handshakeCollector{
		pool:     p,
		inFlight: prometheus.NewDesc("scalestack_tls_handshakes_in_flight", "TLS handshakes under way (one goroutine each).", nil, nil),
		queued:   prometheus.NewDesc("scalestack_tls_handshakes_queued", "Connections waiting for a TLS handshake to start.", nil, nil),
		total:    prometheus.NewDesc("scalestack_tls_handshakes_total", "TLS handshakes by outcome: ok, failed (by the peer or its certificate), timeout, busy (queue full).", []string{"outcome"}, nil),
	}
}

func (c *handshakeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.inFlight
	ch <- c.queued
	ch <- c.total
}

func (c *handshakeCollector) Collect(ch chan<- prometheus.Metric) {
	running, queued := c.pool.InFlight()
	ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(running))
	ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(queued))
	st := &c.pool.Stats
	for _, o := range []struct {
		name string
		n    int64
	}{{"ok", st.Succeeded.Load()}, {"failed", st.Failed.Load()}, {"timeout", st.TimedOut.Load()}, {"busy", st.Refused.Load()}} {
		ch <- prometheus.MustNewConstMetric(c.total, prometheus.CounterValue, float64(o.n), o.name)
	}
}
