package conn_test

import (
	"bytes"
	"errors"
	"log"

	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/reactor"
)

// upgrading speaks a protocol that switches to TLS on request, the way
// MySQL's SSLRequest or SMTP's STARTTLS do: "STARTTLS\n" in the clear,
// then the TLS handshake on the same connection, then lines echoed.
type upgrading struct {
	tls    *conn.TLS
	secure bool // the handshake finished
}

func (h *upgrading) OnOpen(*conn.Conn) {}

func (h *upgrading) OnData(c *conn.Conn, data []byte) int {
	if h.secure {
		c.Write(data) // plaintext, decrypted on the loop
		return len(data)
	}
	const request = "STARTTLS\n"
	if len(data) < len(request) {
		return 0 // the request is still arriving
	}
	if !bytes.HasPrefix(data, []byte(request)) {
		c.Abort(errors.New("expected STARTTLS"))
		return len(data)
	}
	err := c.StartTLSServer(h.tls, func(err error) {
		if err != nil {
			log.Printf("%s: %v", c.RemoteAddr(), err) // OnClose follows
			return
		}
		h.secure = true
		if st, ok := c.TLSState(); ok {
			log.Printf("%s: TLS %#x, %s", c.RemoteAddr(), st.Version, st.ServerName)
		}
	})
	if err != nil {
		c.Abort(err)
	}
	// Consume the request only: a client that sent its ClientHello right
	// behind it has those bytes handed to the handshake.
	return len(request)
}

func (h *upgrading) OnClose(*conn.Conn, error) {}

// A server whose clients ask for TLS after connecting in the clear: each
// connection's handler upgrades it in place with StartTLSServer.
func ExampleConn_StartTLSServer() {
	e, err := reactor.New(reactor.Config{Loops: 2})
	if err != nil {
		log.Fatal(err)
	}
	if err := e.Start(); err != nil {
		log.Fatal(err)
	}
	defer e.Stop()
	certs, err := conn.NewServerTLSCerts(conn.TLSFiles{CertFile: "server.pem", KeyFile: "server-key.pem"}, nil)
	if err != nil {
		log.Fatal(err)
	}
	tlsCfg := &conn.TLS{Config: certs.Config} // one for every connection
	addr, err := conn.ResolveAddr("tcp", "127.0.0.1:7025")
	if err != nil {
		log.Fatal(err)
	}
	ln, err := conn.Listen(e, conn.ListenConfig{
		Addr:       addr,
		NewHandler: func(*conn.Conn) conn.Handler { return &upgrading{tls: tlsCfg} },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	select {} // serve until the process ends
}
