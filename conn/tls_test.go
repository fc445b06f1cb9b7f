package conn_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/internal/testutil"
	"github.com/scalestack/scalestack/reactor"
)

var tlsVersions = []struct {
	name string
	v    uint16
}{{"tls12", tls.VersionTLS12}, {"tls13", tls.VersionTLS13}}

// tlsFixture is a throwaway CA with a server certificate for 127.0.0.1
// and a client certificate.
type tlsFixture struct {
	pki    *testutil.PKI
	server testutil.Issued
	client testutil.Issued
}

func newTLSFixture(t *testing.T) *tlsFixture {
	t.Helper()
	pki := testutil.NewPKI(t, "conn-test")
	return &tlsFixture{pki: pki, server: pki.Server("server", "127.0.0.1", "localhost"), client: pki.Client("client", "alice")}
}

func (f *tlsFixture) serverCerts(t *testing.T, withCA bool, template *tls.Config) *conn.TLSCerts {
	t.Helper()
	files := conn.TLSFiles{CertFile: f.server.CertFile, KeyFile: f.server.KeyFile}
	if withCA {
		files.CAFile = f.pki.CAFile
	}
	certs, err := conn.NewServerTLSCerts(files, template)
	if err != nil {
		t.Fatalf("server certs: %v", err)
	}
	return certs
}

// clientConfig verifies the test server and speaks exactly version v.
func (f *tlsFixture) clientConfig(v uint16) *tls.Config {
	return &tls.Config{RootCAs: f.pki.Pool, ServerName: "127.0.0.1", MinVersion: v, MaxVersion: v}
}

// tlsEchoServer listens with TLS and echoes.
func tlsEchoServer(t *testing.T, e *reactor.Engine, tc *conn.TLS, onOpen func(c *conn.Conn)) *conn.Listener {
	t.Helper()
	return listen(t, e, conn.ListenConfig{
		Options: conn.Options{TLS: tc},
		NewHandler: func(*conn.Conn) conn.Handler {
			return &funcHandler{onOpen: onOpen, onData: echoData}
		},
	})
}

// tlsRoundTrip dials addr over TLS, sends payload while reading it back,
// and checks the bytes.
func tlsRoundTrip(addr string, cfg *tls.Config, payload []byte, deadline time.Time) error {
	raw, err := net.DialTimeout("tcp", addr, time.Until(deadline))
	if err != nil {
		return err
	}
	c := tls.Client(raw, cfg)
	defer c.Close()
	c.SetDeadline(deadline)
	if err := c.Handshake(); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		werr <- err
	}()
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("read %d bytes back: %w", len(payload), err)
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if !bytes.Equal(got, payload) {
		return fmt.Errorf("%d bytes came back different", len(payload))
	}
	return nil
}

func TestTLSEchoBothVersions(t *testing.T) {
	f := newTLSFixture(t)
	forEachDriver(t, func(t *testing.T, newDriver reactor.NewDriverFunc) {
		for _, ver := range tlsVersions {
			t.Run(ver.name, func(t *testing.T) {
				checkLeaks(t)
				e := startEngine(t, 2, newDriver)
				pool := conn.NewHandshakePool(conn.HandshakePoolConfig{})
				var negotiated atomic.Uint32
				ln := tlsEchoServer(t, e, &conn.TLS{Config: f.serverCerts(t, false, nil).Config, Pool: pool}, func(c *conn.Conn) {
					st, ok := c.TLSState()
					if !ok {
						t.Errorf("OnOpen: no TLS state")
						return
					}
					negotiated.Store(uint32(st.Version))
				})
				rng := rand.New(rand.NewPCG(1, 2))
				sizes := []int{1, 100, 16 << 10, 16<<10 + 1, 100 << 10, 1 << 20}
				var wg sync.WaitGroup
				errs := make(chan error, 64)
				for i := 0; i < 24; i++ {
					payload := make([]byte, sizes[i%len(sizes)])
					for j := range payload {
						payload[j] = byte(rng.Uint32())
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						if err := tlsRoundTrip(ln.Addr().Address, f.clientConfig(ver.v), payload, time.Now().Add(20*time.Second)); err != nil {
							errs <- err
						}
					}()
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Error(err)
				}
				if got := uint16(negotiated.Load()); got != ver.v {
					t.Errorf("negotiated version %x, want %x", got, ver.v)
				}
				if s := pool.Stats.Succeeded.Load(); s != 24 {
					t.Errorf("%d handshakes succeeded, want 24", s)
				}
				waitOpen(t, ln, 0)
			})
		}
	})
}

// waitOpen waits until ln counts want open connections.
func waitOpen(t *testing.T, ln *conn.Listener, want int64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ln.OpenConns() != want; {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open, want %d", ln.OpenConns(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var _ = errors.New
var _ = strings.Contains
var _ = runtime.NumGoroutine
