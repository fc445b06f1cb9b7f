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

// echoUDPModule is echo over UDP: one SO_REUSEPORT socket per loop.
func echoUDPModule(addr conn.Addr, spread bool, ts *tlsSetup, cfg conn.UDPConfig) (module, error) {
	switch {
	case addr.Network == "unix":
		return module{}, fmt.Errorf("--udp: --listen must be host:port, not %s", addr)
	case spread:
		return module{}, fmt.Errorf("--udp: --spread is for accepted connections; UDP always has one socket per loop")
	case ts != nil && ts.front != nil:
		return module{}, fmt.Errorf("--udp: TLS is for streams (DTLS is not supported)")
	case cfg.MaxDatagram <= 0 || cfg.MaxDatagram > 65535:
		return module{}, fmt.Errorf("--udp-max-datagram: %d is not between 1 and 65535", cfg.MaxDatagram)
	case cfg.QueueDatagrams <= 0:
		return module{}, fmt.Errorf("--udp-queue: %d is not positive", cfg.QueueDatagrams)
	}
	cfg.Addr = addr
	cfg.OnDatagram = udpEcho
	return module{name: "echo", udp: &cfg}, nil
}

// startEcho listens for the echo module on an already started engine.
func startEcho(e *reactor.Engine, addr conn.Addr, spread bool) (*conn.Listener, error) {
	return conn.Listen(e, echoModule(addr, spread, nil).listen)
}

func echoFlags(stderr io.Writer) (*flag.FlagSet, *engineFlags, func() (module, error)) {
	fs, ef := newServerFlags("echo", stderr, "")
	listen := fs.String("listen", "127.0.0.1:7000", "address to listen on: host:port, or unix:/path for a Unix socket")
	spread := fs.Bool("spread", false, "accept on one loop and hand connections round-robin, instead of one SO_REUSEPORT socket per loop")
	udp := fs.Bool("udp", false, "echo UDP datagrams on --listen (host:port) instead of a stream: each datagram goes back to its sender whole")
	udpMax := fs.Int("udp-max-datagram", 65535, "with --udp: the largest datagram echoed; larger ones are counted and dropped, never echoed cut short")
	udpQueue := fs.Int("udp-queue", 4096, "with --udp: each loop's output queue, in datagrams (and 4 MiB); replies beyond it are dropped and counted")
	udpRcvbuf := fs.Int("udp-rcvbuf", 0, "with --udp: SO_RCVBUF in bytes for each loop's socket (0: the kernel default; capped by net.core.rmem_max)")
	var tf tlsFlags
	tf.register(fs, false)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: scalestack echo [flags]\n\nEchoes every byte back to its sender (over TLS with --tls-cert and --tls-key),\nor every UDP datagram with --udp.\n\nFlags:\n")
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
		if *udp {
			return echoUDPModule(addr, *spread, ts, conn.UDPConfig{MaxDatagram: *udpMax, QueueDatagrams: *udpQueue, RecvBuffer: *udpRcvbuf})
		}
		return echoModule(addr, *spread, ts), nil
	}
}
