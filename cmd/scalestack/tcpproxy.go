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
}

func (s *proxySide) OnOpen(c *conn.Conn) {
	s.c = c
	s.open = true
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
}

func (p *tcpProxy) newHandler(client *conn.Conn) conn.Handler {
	front := &proxySide{}
	back := &proxySide{}
	front.peer, back.peer = back, front
	bc, err := conn.Dial(client.Loop(), p.backend, p.connectTimeout, back, conn.Options{})
	if err != nil {
		front.failed = err
	}
	back.c = bc
	return front
}

func tcpProxyModule(listen, backend conn.Addr, spread bool) module {
	p := &tcpProxy{backend: backend, connectTimeout: 5 * time.Second}
	return module{name: "tcpproxy", listen: conn.ListenConfig{Addr: listen, Spread: spread, NewHandler: p.newHandler}}
}

func startTCPProxy(e *reactor.Engine, listen, backend conn.Addr, spread bool) (*conn.Listener, error) {
	return conn.Listen(e, tcpProxyModule(listen, backend, spread).listen)
}

func tcpProxyFlags(stderr io.Writer) (*flag.FlagSet, *engineFlags, func() (module, error)) {
	fs, ef := newServerFlags("tcpproxy", stderr, "")
	listen := fs.String("listen", "127.0.0.1:7001", "address to listen on: host:port, or unix:/path")
	backend := fs.String("backend", "", "backend address: host:port, or unix:/path (required)")
	spread := fs.Bool("spread", false, "accept on one loop and hand connections round-robin")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: scalestack tcpproxy --backend ADDR [flags]\n\nForwards each client connection to its own backend connection.\n\nFlags:\n")
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
		return tcpProxyModule(laddr, baddr, *spread), nil
	}
}
