package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/reactor"
)

// echoHandler writes back whatever it receives. The connection pauses its
// own reading when the echoed output is not being read (conn's default
// backpressure), so a client that only sends cannot grow the queue forever.
type echoHandler struct{}

func (echoHandler) OnOpen(*conn.Conn) {}

func (echoHandler) OnData(c *conn.Conn, data []byte) int {
	c.Write(data)
	return len(data)
}

func (echoHandler) OnClose(*conn.Conn, error) {}

var sharedEcho echoHandler

func echoModule(addr conn.Addr, spread bool, ts *tlsSetup) module {
	m := module{name: "echo", listen: conn.ListenConfig{
		Addr:       addr,
		Spread:     spread,
		NewHandler: func(*conn.Conn) conn.Handler { return sharedEcho },
	}}
	if ts != nil {
		m.listen.Options.TLS = ts.front
		ts.apply(&m)
	}
	return m
}

// startEcho listens for the echo module on an already started engine.
func startEcho(e *reactor.Engine, addr conn.Addr, spread bool) (*conn.Listener, error) {
	return conn.Listen(e, echoModule(addr, spread, nil).listen)
}

func echoFlags(stderr io.Writer) (*flag.FlagSet, *engineFlags, func() (module, error)) {
	fs, ef := newServerFlags("echo", stderr, "")
	listen := fs.String("listen", "127.0.0.1:7000", "address to listen on: host:port, or unix:/path for a Unix socket")
	spread := fs.Bool("spread", false, "accept on one loop and hand connections round-robin, instead of one SO_REUSEPORT socket per loop")
	var tf tlsFlags
	tf.register(fs, false)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: scalestack echo [flags]\n\nEchoes every byte back to its sender (over TLS with --tls-cert and --tls-key).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	return fs, ef, func() (module, error) {
		addr, err := conn.ParseAddr(*listen)
		if err != nil {
			return module{}, fmt.Errorf("--listen: %w", err)
		}
		ts, err := tf.build(conn.Addr{})
		if err != nil {
			return module{}, err
		}
		return echoModule(addr, *spread, ts), nil
	}
}
