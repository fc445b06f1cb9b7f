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

func echoModule(addr conn.Addr, spread bool) module {
	return module{name: "echo", listen: conn.ListenConfig{
		Addr:       addr,
		Spread:     spread,
		NewHandler: func(*conn.Conn) conn.Handler { return sharedEcho },
	}}
}

// startEcho listens for the echo module on an already started engine.
func startEcho(e *reactor.Engine, addr conn.Addr, spread bool) (*conn.Listener, error) {
	return conn.Listen(e, echoModule(addr, spread).listen)
}

func echoFlags(stderr io.Writer) (*flag.FlagSet, *engineFlags, func() (module, error)) {
	fs, ef := newServerFlags("echo", stderr, "")
	listen := fs.String("listen", "127.0.0.1:7000", "address to listen on: host:port, or unix:/path for a Unix socket")
	spread := fs.Bool("spread", false, "accept on one loop and hand connections round-robin, instead of one SO_REUSEPORT socket per loop")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: scalestack echo [flags]\n\nEchoes every byte back to its sender.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	return fs, ef, func() (module, error) {
		addr, err := conn.ParseAddr(*listen)
		if err != nil {
			return module{}, fmt.Errorf("--listen: %w", err)
		}
		return echoModule(addr, *spread), nil
	}
}
