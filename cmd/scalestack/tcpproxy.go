package main

import (
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/reactor"
)

// proxySide is one half of a forwarded pair: it copies what its connection
// receives to the other side's connection, and throttles the other side
// when its own output backs up.
type proxySide struct {
	peer   *proxySide
	c      *conn.Conn
	open   bool // connected
	eof    bool
	failed error // the backend dial failed before the client opened
	// dial, on a client side over TLS, dials the backend once the client
	// finished its handshake, so that clients stalling in it hold no
	// backend connection.
	dial func(client *conn.Conn)
}

func (s *proxySide) OnOpen(c *conn.Conn) {
	s.c = c
	s.open = true
	if s.dial != nil {
		s.dial(c)
		s.dial = nil
	}
	if s.failed != nil {
		c.Abort(s.failed)
		return
	}
	if s.peer.c == nil || !s.peer.open {
		// The other side is not connected yet: hold input until it is.
		c.PauseRead()
		return
	}
	// Both sides are up: let the waiting side flow.
	s.peer.c.ResumeRead()
}

func (s *proxySide) OnData(c *conn.Conn, data []byte) int {
	if s.peer.c == nil || !s.peer.open {
		return 0
	}
	s.peer.c.Write(data)
	return len(data)
}

func (s *proxySide) OnEOF(c *conn.Conn) {
	s.eof = true
	if s.peer.open {
		s.peer.c.CloseWrite()
	}
	if s.peer.eof {
		s.c.Close()
		s.peer.c.Close()
	}
}

func (s *proxySide) OnClose(c *conn.Conn, err error) {
	s.open = false
	if s.peer.c != nil && !s.peer.c.Closed() {
		if err != nil {
			s.peer.c.Abort(err)
		} else {
			s.peer.c.Close()
		}
	}
}

// OnHighWater pauses the peer that feeds this side.
func (s *proxySide) OnHighWater(*conn.Conn) {
	if s.peer.c != nil && s.peer.open {
		s.peer.c.PauseRead()
	}
}

// OnLowWater resumes it.
func (s *proxySide) OnLowWater(*conn.Conn) {
	if s.peer.c != nil && s.peer.open {
		s.peer.c.ResumeRead()
	}
}

// tcpProxy forwards every accepted connection to backend from the same loop,
// so a pair never crosses threads.
type tcpProxy struct {
	backend        conn.Addr
	connectTimeout time.Duration
	// frontTLS is set when clients connect with TLS, backTLS when the
	// backend is reached with it.
	frontTLS, backTLS *conn.TLS
}

func (p *tcpProxy) newHandler(client *conn.Conn) conn.Handler {
	front := &proxySide{}
	back := &proxySide{}
	front.peer, back.peer = back, front
	if p.frontTLS != nil {
		front.dial = func(client *conn.Conn) { p.dialBackend(client, front, back) }
		return front
	}
	p.dialBackend(client, front, back)
	return front
}

func (p *tcpProxy) dialBackend(client *conn.Conn, front, back *proxySide) {
	bc, err := conn.Dial(client.Loop(), p.backend, p.connectTimeout, back, conn.Options{TLS: p.backTLS})
	if err != nil {
		front.failed = err
	}
	back.c = bc
}

func tcpProxyModule(listen, backend conn.Addr, spread bool, ts *tlsSetup) module {
	p := &tcpProxy{backend: backend, connectTimeout: 5 * time.Second}
	m := module{name: "tcpproxy", listen: conn.ListenConfig{Addr: listen, Spread: spread, NewHandler: p.newHandler}}
	if ts != nil {
		p.frontTLS, p.backTLS = ts.front, ts.back
		m.listen.Options.TLS = ts.front
		ts.apply(&m)
	}
	return m
}

func startTCPProxy(e *reactor.Engine, listen, backend conn.Addr, spread bool) (*conn.Listener, error) {
	return conn.Listen(e, tcpProxyModule(listen, backend, spread, nil).listen)
}

func tcpProxyFlags(stderr io.Writer) (*flag.FlagSet, *engineFlags, func() (module, error)) {
	fs, ef := newServerFlags("tcpproxy", stderr, "")
	listen := fs.String("listen", "127.0.0.1:7001", "address to listen on: host:port, or unix:/path")
	backend := fs.String("backend", "", "backend address: host:port, or unix:/path (required)")
	spread := fs.Bool("spread", false, "accept on one loop and hand connections round-robin")
	var tf tlsFlags
	tf.register(fs, true)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: scalestack tcpproxy --backend ADDR [flags]\n\nForwards each client connection to its own backend connection. It terminates TLS\nwith --tls-cert and --tls-key, originates it towards the backend with --backend-tls,\nor both.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	return fs, ef, func() (module, error) {
		if *backend == "" {
			return module{}, fmt.Errorf("--backend is required")
		}
		laddr, err := conn.ParseAddr(*listen)
		if err != nil {
			return module{}, fmt.Errorf("--listen: %w", err)
		}
		baddr, err := conn.ParseAddr(*backend)
		if err != nil {
			return module{}, fmt.Errorf("--backend: %w", err)
		}
		ts, err := tf.build(baddr)
		if err != nil {
			return module{}, err
		}
		return tcpProxyModule(laddr, baddr, *spread, ts), nil
	}
}
