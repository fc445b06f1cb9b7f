package conn_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strconv"
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

// countGoroutines counts the goroutines whose stack mentions fn; buf holds
// the dump.
func countGoroutines(buf []byte, fn string) int {
	n := runtime.Stack(buf, true)
	return bytes.Count(buf[:n], []byte(fn))
}

// TestTLSHandshakeStormBoundsGoroutines opens many TLS clients at once: the
// pool runs at most MaxInFlight handshake goroutines (the rest wait in its
// queue), every client gets through, and an established connection on the
// same loops keeps being served meanwhile.
func TestTLSHandshakeStormBoundsGoroutines(t *testing.T) {
	const maxInFlight = 16
	// The clients share this process's CPUs with the server: at most
	// clientConcurrency handshake at once on the client side, three times
	// what the pool runs, so its queue fills. By hand, more:
	// SCALESTACK_TLS_STORM=9000,1000 (clients,concurrency; the descriptor
	// limit of 20,000 here holds both ends of 9,000 connections).
	clients, clientConcurrency := envPair(t, "SCALESTACK_TLS_STORM", 300, 48)
	f := newTLSFixture(t)
	forEachDriver(t, func(t *testing.T, newDriver reactor.NewDriverFunc) {
		checkLeaks(t)
		e := startEngine(t, 2, newDriver)
		pool := conn.NewHandshakePool(conn.HandshakePoolConfig{Workers: 2, MaxInFlight: maxInFlight})
		ln := tlsEchoServer(t, e, &conn.TLS{Config: f.serverCerts(t, false, nil).Config, Pool: pool, HandshakeTimeout: time.Minute}, nil)
		addr := ln.Addr().Address

		// An established connection pings through the storm.
		established, err := tls.Dial("tcp", addr, f.clientConfig(tls.VersionTLS13))
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer established.Close()
		stormOver := make(chan struct{})
		type pingResult struct {
			n       int
			slowest time.Duration
			err     error
		}
		pinged := make(chan pingResult, 1)
		go func() {
			var r pingResult
			msg, got := []byte("ping"), make([]byte, 4)
			for {
				select {
				case <-stormOver:
					pinged <- r
					return
				default:
				}
				start := time.Now()
				established.SetDeadline(start.Add(10 * time.Second))
				if _, r.err = established.Write(msg); r.err == nil {
					_, r.err = io.ReadFull(established, got)
				}
				if r.err != nil {
					pinged <- r
					return
				}
				r.n++
				r.slowest = max(r.slowest, time.Since(start))
				time.Sleep(5 * time.Millisecond)
			}
		}()

		// Sample the handshake goroutines while the storm runs.
		var maxRunning, maxQueued, maxGoroutines atomic.Int64
		sampling := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			buf := make([]byte, 4<<20)
			for i := 0; ; i++ {
				select {
				case <-sampling:
					return
				case <-time.After(10 * time.Millisecond):
				}
				running, queued := pool.InFlight()
				maxRunning.Store(max(maxRunning.Load(), int64(running)))
				maxQueued.Store(max(maxQueued.Load(), int64(queued)))
				if i%10 == 0 { // a full stack dump stops the world
					maxGoroutines.Store(max(maxGoroutines.Load(), int64(countGoroutines(buf, "conn.(*HandshakePool).run("))))
				}
			}
		}()

		start := time.Now()
		var wg sync.WaitGroup
		var failed atomic.Int64
		sem := make(chan struct{}, clientConcurrency)
		for i := 0; i < clients; i++ {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				if err := tlsRoundTrip(addr, f.clientConfig(tls.VersionTLS13), []byte("storm"), time.Now().Add(60*time.Second)); err != nil {
					if failed.Add(1) < 5 {
						t.Errorf("storm client: %v", err)
					}
				}
			}()
		}
		wg.Wait()
		took := time.Since(start)
		close(sampling)
		<-sampled
		close(stormOver)
		r := <-pinged
		if r.err != nil {
			t.Fatalf("established connection during the storm: %v", r.err)
		}
		t.Logf("%d handshakes in %v; pool goroutines at most %d (counted in stacks: %d), queue at most %d; established connection: %d pings, slowest %v",
			clients, took.Round(time.Millisecond), maxRunning.Load(), maxGoroutines.Load(), maxQueued.Load(), r.n, r.slowest.Round(time.Millisecond))
		if failed.Load() > 0 {
			t.Fatalf("%d of %d storm clients failed", failed.Load(), clients)
		}
		if g := maxGoroutines.Load(); g > maxInFlight || maxRunning.Load() > maxInFlight {
			t.Fatalf("up to %d handshake goroutines (pool says %d), want at most %d", g, maxRunning.Load(), maxInFlight)
		}
		if maxQueued.Load() == 0 {
			t.Fatalf("the storm never queued a handshake: it did not test the bound")
		}
		if r.n < 5 {
			t.Fatalf("the established connection got only %d pings through during %v", r.n, took)
		}
		if got := pool.Stats.Succeeded.Load(); got != int64(clients)+1 {
			t.Fatalf("%d handshakes succeeded, want %d", got, clients+1)
		}
	})
}

// stallAfterFirstWrite passes the client's first flight through, then
// swallows its writes: the handshake stops after the server did its part.
type stallAfterFirstWrite struct {
	net.Conn
	writes atomic.Int32
}

func (c *stallAfterFirstWrite) Write(p []byte) (int, error) {
	if c.writes.Add(1) == 1 {
		return c.Conn.Write(p)
	}
	return len(p), nil
}

// TestTLSStalledHandshakesTimeOutWithoutBlockingOthers: clients that stall
// mid-handshake (a partial ClientHello, or a ClientHello and then nothing)
// outnumber the workers, yet new clients complete their handshakes at once;
// the stalled ones are closed at the handshake timeout.
func TestTLSStalledHandshakesTimeOutWithoutBlockingOthers(t *testing.T) {
	const (
		// Long enough that fresh clients finish well inside it on a
		// loaded two-core machine under -race.
		timeout = 5 * time.Second
		fresh   = 20
	)
	// Half of each kind; by hand SCALESTACK_TLS_STALLED=1000,0.
	stalled, _ := envPair(t, "SCALESTACK_TLS_STALLED", 40, 0)
	f := newTLSFixture(t)
	forEachDriver(t, func(t *testing.T, newDriver reactor.NewDriverFunc) {
		checkLeaks(t)
		e := startEngine(t, 2, newDriver)
		pool := conn.NewHandshakePool(conn.HandshakePoolConfig{Workers: 2, MaxInFlight: stalled + 64})
		ln := tlsEchoServer(t, e, &conn.TLS{Config: f.serverCerts(t, false, nil).Config, Pool: pool, HandshakeTimeout: timeout}, nil)
		addr := ln.Addr().Address

		type stall struct {
			c      net.Conn
			opened time.Time
		}
		var stalls []stall
		for i := 0; i < stalled; i++ {
			raw, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer raw.Close()
			opened := time.Now()
			if i%2 == 0 {
				// A record header announcing 512 bytes, and 3 of them.
				raw.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01})
			} else {
				sc := &stallAfterFirstWrite{Conn: raw}
				go tls.Client(sc, f.clientConfig(tls.VersionTLS12)).Handshake() // ends when raw closes
			}
			stalls = append(stalls, stall{raw, opened})
		}
		// The stalled handshakes hold goroutines, not workers: new clients
		// get through well before the timeout frees anything.
		start := time.Now()
		var wg sync.WaitGroup
		for i := 0; i < fresh; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := tlsRoundTrip(addr, f.clientConfig(tls.VersionTLS13), []byte("hello"), start.Add(timeout)); err != nil {
					t.Errorf("fresh client during the stall: %v", err)
				}
			}()
		}
		wg.Wait()
		t.Logf("%d fresh clients done in %v with %d stalled handshakes", fresh, time.Since(start).Round(time.Millisecond), stalled)

		// Each stalled client is closed at the timeout, not before.
		for i, s := range stalls {
			s.c.SetReadDeadline(s.opened.Add(timeout + 3*time.Second))
			_, err := io.Copy(io.Discard, s.c)
			if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
				t.Fatalf("stalled client %d: not closed by the server: %v", i, err)
			}
			// The client notes the time after its dial returned, which
			// a loaded machine can delay past the server's accept.
			if held := time.Since(s.opened); held < timeout-500*time.Millisecond {
				t.Fatalf("stalled client %d closed after %v, before the %v timeout", i, held, timeout)
			}
		}
		if got := pool.Stats.TimedOut.Load(); got != int64(stalled) {
			t.Fatalf("%d handshakes timed out, want %d", got, stalled)
		}
		waitOpen(t, ln, 0)
	})
}

// TestTLSSilentClientsHoldNoGoroutine: a server's handshake takes a pool
// goroutine only once the client's first bytes arrive, so clients that
// connect and say nothing hold none (more of them than MaxInFlight allows
// do not delay a real client), and one that leaves without a byte fails
// without ever taking one.
func TestTLSSilentClientsHoldNoGoroutine(t *testing.T) {
	const silent = 40
	f := newTLSFixture(t)
	forEachDriver(t, func(t *testing.T, newDriver reactor.NewDriverFunc) {
		checkLeaks(t)
		e := startEngine(t, 1, newDriver)
		pool := conn.NewHandshakePool(conn.HandshakePoolConfig{Workers: 1, MaxInFlight: 4, Queue: 8})
		ln := tlsEchoServer(t, e, &conn.TLS{Config: f.serverCerts(t, false, nil).Config, Pool: pool, HandshakeTimeout: time.Minute}, nil)
		var quiet []net.Conn
		for i := 0; i < silent; i++ {
			quiet = append(quiet, dial(t, ln.Addr()))
		}
		waitOpen(t, ln, silent)
		if running, queued := pool.InFlight(); running != 0 || queued != 0 {
			t.Fatalf("%d silent clients hold %d handshake goroutines and %d queue places", silent, running, queued)
		}
		if err := tlsRoundTrip(ln.Addr().Address, f.clientConfig(tls.VersionTLS13), []byte("hello"), time.Now().Add(20*time.Second)); err != nil {
			t.Fatalf("a client beside %d silent ones: %v", silent, err)
		}
		for _, c := range quiet {
			c.Close()
		}
		waitOpen(t, ln, 0)
		if started, failed := pool.Stats.Started.Load(), pool.Stats.Failed.Load(); started != 1 || failed != silent {
			t.Fatalf("%d handshakes started, %d failed; want 1 started (the real client) and %d failed (the silent ones, gone)", started, failed, silent)
		}
	})
}

// TestTLSClientCertificates: a server with a CA file accepts a client
// certificate that chains to it and sees who it is, and refuses a client
// with no certificate or one from another CA.
func TestTLSClientCertificates(t *testing.T) {
	f := newTLSFixture(t)
	stranger := testutil.NewPKI(t, "stranger").Client("mallory", "mallory")
	forEachDriver(t, func(t *testing.T, newDriver reactor.NewDriverFunc) {
		checkLeaks(t)
		e := startEngine(t, 1, newDriver)
		peers := make(chan string, 8)
		closes := make(chan error, 8)
		ln := listen(t, e, conn.ListenConfig{
			Options: conn.Options{TLS: &conn.TLS{Config: f.serverCerts(t, true, nil).Config}},
			NewHandler: func(*conn.Conn) conn.Handler {
				return &funcHandler{
					onOpen: func(c *conn.Conn) {
						st, _ := c.TLSState()
						if len(st.PeerCertificates) > 0 {
							peers <- st.PeerCertificates[0].Subject.CommonName
						}
					},
					onData:  echoData,
					onClose: func(c *conn.Conn, err error) { closes <- err },
				}
			},
		})
		addr := ln.Addr().Address
		for _, v := range tlsVersions {
			cfg := f.clientConfig(v.v)
			cfg.Certificates = []tls.Certificate{f.client.Cert}
			if err := tlsRoundTrip(addr, cfg, []byte("with a certificate"), time.Now().Add(10*time.Second)); err != nil {
				t.Fatalf("%s, good client certificate: %v", v.name, err)
			}
			if cn := <-peers; cn != "alice" {
				t.Fatalf("%s: server saw client %q, want alice", v.name, cn)
			}
			if err := <-closes; err != nil {
				t.Fatalf("%s: the good client's close: %v", v.name, err)
			}
			for _, bad := range []struct {
				name  string
				certs []tls.Certificate
			}{{"none", nil}, {"other CA", []tls.Certificate{stranger.Cert}}} {
				cfg := f.clientConfig(v.v)
				cfg.Certificates = bad.certs
				err := tlsRoundTrip(addr, cfg, []byte("x"), time.Now().Add(10*time.Second))
				if err == nil {
					t.Fatalf("%s, client certificate %s: accepted", v.name, bad.name)
				}
				if serr := <-closes; serr == nil || !strings.Contains(serr.Error(), "TLS handshake") {
					t.Fatalf("%s, client certificate %s: server closed with %v, want a handshake error", v.name, bad.name, serr)
				}
				select {
				case cn := <-peers:
					t.Fatalf("%s, client certificate %s: handler opened for %q", v.name, bad.name, cn)
				default:
				}
			}
		}
		waitOpen(t, ln, 0)
	})
}

// TestTLSCertificateReload: after Reload, new handshakes get the new
// certificate while an established connection goes on; a reload from a
// broken file keeps the certificate in use.
func TestTLSCertificateReload(t *testing.T) {
	f := newTLSFixture(t)
	second := f.pki.Server("second", "127.0.0.1")
	checkLeaks(t)
	e := startEngine(t, 1, reactor.NewEpoll)
	// The files the server reads, overwritten in place as an operator would.
	dir := t.TempDir()
	certFile, keyFile := dir+"/cert.pem", dir+"/key.pem"
	copyFile(t, f.server.CertFile, certFile)
	copyFile(t, f.server.KeyFile, keyFile)
	certs, err := conn.NewServerTLSCerts(conn.TLSFiles{CertFile: certFile, KeyFile: keyFile}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln := tlsEchoServer(t, e, &conn.TLS{Config: certs.Config}, nil)
	addr := ln.Addr().Address
	serial := func(c *tls.Conn) string { return c.ConnectionState().PeerCertificates[0].SerialNumber.String() }
	// Session resumption would skip the certificate: every dial is fresh.
	dialFresh := func() *tls.Conn {
		c, err := tls.Dial("tcp", addr, f.clientConfig(tls.VersionTLS13))
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		return c
	}
	old := dialFresh()
	defer old.Close()
	if got, want := serial(old), f.server.Leaf.SerialNumber.String(); got != want {
		t.Fatalf("serial %s before reload, want %s", got, want)
	}
	copyFile(t, second.CertFile, certFile)
	copyFile(t, second.KeyFile, keyFile)
	if err := certs.Reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	fresh := dialFresh()
	defer fresh.Close()
	if got, want := serial(fresh), second.Leaf.SerialNumber.String(); got != want {
		t.Fatalf("serial %s after reload, want %s", got, want)
	}
	for _, c := range []*tls.Conn{old, fresh} {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("still here")); err != nil {
			t.Fatalf("write after reload: %v", err)
		}
		if got := readExactly(t, c, 10); string(got) != "still here" {
			t.Fatalf("echo after reload: %q", got)
		}
	}
	// A half-written key file fails the reload and changes nothing.
	if err := os.WriteFile(keyFile, []byte("-----BEGIN PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := certs.Reload(); err == nil {
		t.Fatalf("reload from a broken key file succeeded")
	}
	again := dialFresh()
	defer again.Close()
	if got, want := serial(again), second.Leaf.SerialNumber.String(); got != want {
		t.Fatalf("serial %s after a failed reload, want %s", got, want)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestTLSDialResumesSessions: a dialled connection is a TLS client that
// verifies the server, exchanges data, and resumes its session on the next
// dial.
func TestTLSDialResumesSessions(t *testing.T) {
	f := newTLSFixture(t)
	forEachDriver(t, func(t *testing.T, newDriver reactor.NewDriverFunc) {
		for _, ver := range tlsVersions {
			t.Run(ver.name, func(t *testing.T) {
				checkLeaks(t)
				gl, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{f.server.Cert}, MinVersion: ver.v, MaxVersion: ver.v})
				if err != nil {
					t.Fatal(err)
				}
				var served sync.WaitGroup
				defer func() { gl.Close(); served.Wait() }()
				served.Add(1)
				go func() {
					defer served.Done()
					for {
						c, err := gl.Accept()
						if err != nil {
							return
						}
						served.Add(1)
						go func() { defer served.Done(); defer c.Close(); io.Copy(c, c) }()
					}
				}()
				e := startEngine(t, 1, newDriver)
				certs, err := conn.NewClientTLSCerts(conn.TLSFiles{CAFile: f.pki.CAFile}, &tls.Config{ServerName: "localhost", MaxVersion: ver.v})
				if err != nil {
					t.Fatal(err)
				}
				ct := &conn.TLS{Config: certs.Config}
				addr, err := conn.ResolveAddr("tcp", gl.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				payload := bytes.Repeat([]byte("0123456789abcdef"), 40000)
				for i, wantResumed := range []bool{false, true} {
					type result struct {
						got     []byte
						resumed bool
						err     error
					}
					done := make(chan result, 1)
					var got []byte
					var resumed bool
					h := &funcHandler{
						onOpen: func(c *conn.Conn) {
							st, _ := c.TLSState()
							resumed = st.DidResume
							c.Write(payload)
						},
						onData: func(c *conn.Conn, data []byte) int {
							got = append(got, data...)
							if len(got) >= len(payload) {
								c.Close()
							}
							return len(data)
						},
						onClose: func(c *conn.Conn, err error) { done <- result{got, resumed, err} },
					}
					if err := e.Loops()[0].Exec(func(l *reactor.Loop) {
						if _, err := conn.Dial(l, addr, 5*time.Second, h, conn.Options{TLS: ct}); err != nil {
							done <- result{err: err}
						}
					}); err != nil {
						t.Fatal(err)
					}
					var r result
					select {
					case r = <-done:
					case <-time.After(20 * time.Second):
						t.Fatalf("dial %d: no close after 20 s", i)
					}
					if r.err != nil {
						t.Fatalf("dial %d: %v", i, r.err)
					}
					if !bytes.Equal(r.got, payload) {
						t.Fatalf("dial %d: %d bytes back, want the %d sent", i, len(r.got), len(payload))
					}
					if r.resumed != wantResumed {
						t.Fatalf("dial %d: resumed %v, want %v", i, r.resumed, wantResumed)
					}
				}
			})
		}
	})
}

// recordingConn keeps a copy of what it reads.
type recordingConn struct {
	net.Conn
	mu   sync.Mutex
	read []byte
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.read = append(c.read, p[:n]...)
	c.mu.Unlock()
	return n, err
}

// lastRecordType walks TLS records and returns the type of the last one.
func lastRecordType(b []byte) (byte, bool) {
	var typ byte
	for len(b) >= 5 {
		n := int(b[3])<<8 | int(b[4])
		if len(b) < 5+n {
			return 0, false
		}
		typ, b = b[0], b[5+n:]
	}
	return typ, len(b) == 0
}

// TestTLSCloseNotify: the client's close_notify reaches the handler as
// end of input, and the server ends its own stream with close_notify
// after the last data.
func TestTLSCloseNotify(t *testing.T) {
	f := newTLSFixture(t)
	forEachDriver(t, func(t *testing.T, newDriver reactor.NewDriverFunc) {
		checkLeaks(t)
		e := startEngine(t, 1, newDriver)
		ln := tlsEchoServer(t, e, &conn.TLS{Config: f.serverCerts(t, false, nil).Config}, nil)
		raw, err := net.Dial("tcp", ln.Addr().Address)
		if err != nil {
			t.Fatal(err)
		}
		rec := &recordingConn{Conn: raw}
		// TLS 1.2 leaves record types in the clear.
		c := tls.Client(rec, f.clientConfig(tls.VersionTLS12))
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte("last words")); err != nil {
			t.Fatal(err)
		}
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(c)
		if err != nil {
			t.Fatalf("read to the end: %v", err)
		}
		if string(got) != "last words" {
			t.Fatalf("got %q", got)
		}
		rec.mu.Lock()
		typ, whole := lastRecordType(rec.read)
		rec.mu.Unlock()
		if !whole || typ != 0x15 {
			t.Fatalf("the server's last record is type %#x (whole records: %v), want an alert (close_notify)", typ, whole)
		}
		waitOpen(t, ln, 0)
	})
}

// TestTLSRefusesWhatIsNotTLS: plain text, a truncated hello and an
// oversized record close the connection without opening the handler.
func TestTLSRefusesWhatIsNotTLS(t *testing.T) {
	f := newTLSFixture(t)
	forEachDriver(t, func(t *testing.T, newDriver reactor.NewDriverFunc) {
		checkLeaks(t)
		e := startEngine(t, 1, newDriver)
		var opened atomic.Int32
		ln := tlsEchoServer(t, e, &conn.TLS{Config: f.serverCerts(t, false, nil).Config}, func(*conn.Conn) { opened.Add(1) })
		for _, in := range []struct {
			name  string
			bytes []byte
			half  bool // then end the stream
		}{
			{"plain text", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), false},
			{"hello cut short", []byte{0x16, 0x03, 0x01, 0x00, 0x40, 0x01}, true},
			{"oversized record", []byte{0x16, 0x03, 0x03, 0xff, 0xff, 0x01, 0x02}, false},
		} {
			c := dial(t, ln.Addr())
			c.Write(in.bytes)
			if in.half {
				c.(*net.TCPConn).CloseWrite()
			}
			if _, err := io.Copy(io.Discard, c); err != nil && !strings.Contains(err.Error(), "reset") {
				t.Fatalf("%s: the server did not close: %v", in.name, err)
			}
		}
		waitOpen(t, ln, 0)
		if n := opened.Load(); n != 0 {
			t.Fatalf("the handler opened %d times", n)
		}
	})
}

func TestParseCertPool(t *testing.T) {
	f := newTLSFixture(t)
	ca, err := os.ReadFile(f.pki.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := os.ReadFile(f.server.CertFile)
	key, _ := os.ReadFile(f.server.KeyFile)
	for _, tc := range []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"one certificate", ca, true},
		{"two certificates", append(append([]byte{}, ca...), leaf...), true},
		{"openssl subject lines around", append(append([]byte("subject=CN = conn-test\nissuer=CN = conn-test\n"), ca...), "\n"...), true},
		{"empty", nil, false},
		{"not PEM", []byte("hello"), false},
		{"a key", key, false},
		{"certificate then key", append(append([]byte{}, ca...), key...), false},
		{"corrupt certificate", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), false},
	} {
		_, err := conn.ParseCertPool(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("%s: error %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// TestTLSSilentReaderGetsBackpressure: a TLS client that sends without
// reading makes the echo server stop consuming once its queued output
// passes the high-water mark, as on a plain connection; when the client
// reads, everything comes back.
func TestTLSSilentReaderGetsBackpressure(t *testing.T) {
	const (
		sendLimit = 32 << 20
		highWater = 1 << 20 // conn's default
		overshoot = 256 << 10
	)
	f := newTLSFixture(t)
	forEachDriver(t, func(t *testing.T, newDriver reactor.NewDriverFunc) {
		checkLeaks(t)
		e := startEngine(t, 1, newDriver)
		var received, maxQueued atomic.Int64
		ln := listen(t, e, conn.ListenConfig{
			Options: conn.Options{TLS: &conn.TLS{Config: f.serverCerts(t, false, nil).Config}},
			NewHandler: func(*conn.Conn) conn.Handler {
				return &funcHandler{onData: func(c *conn.Conn, data []byte) int {
					c.Write(data)
					received.Add(int64(len(data)))
					maxQueued.Store(max(maxQueued.Load(), int64(c.Buffered())))
					return len(data)
				}}
			},
		})
		c, err := tls.Dial("tcp", ln.Addr().Address, f.clientConfig(tls.VersionTLS13))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		chunk := bytes.Repeat([]byte("backpressure"), 64<<10/12)
		written := 0
		// Write until a write stalls and the server stopped consuming.
		for deadline := time.Now().Add(30 * time.Second); ; {
			c.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
			n, err := c.Write(chunk)
			written += n
			if err != nil {
				var ne net.Error
				if !errors.As(err, &ne) || !ne.Timeout() {
					t.Fatalf("write: %v", err)
				}
				before := received.Load()
				time.Sleep(300 * time.Millisecond)
				if received.Load() == before {
					break
				}
			}
			if written >= sendLimit {
				t.Fatalf("the server took all %d bytes from a client that reads nothing", written)
			}
			if time.Now().After(deadline) {
				t.Fatalf("the server kept consuming for 30 s")
			}
		}
		if q := maxQueued.Load(); q > highWater+overshoot {
			t.Fatalf("the server queued up to %d bytes, want at most %d", q, highWater+overshoot)
		}
		t.Logf("stalled after %d bytes; the server consumed %d and queued at most %d", written, received.Load(), maxQueued.Load())
		// A tls.Conn whose Write timed out is broken for writing, but what
		// was consumed must come back in full.
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		want := received.Load()
		n, err := io.CopyN(io.Discard, c, want)
		if err != nil {
			t.Fatalf("read back %d of %d bytes: %v", n, want, err)
		}
	})
}

// TestTLSDialCloseAndTimeoutMidHandshake: a dialled connection whose
// server never answers the ClientHello can be closed while it handshakes
// (OnClose without OnOpen, the handshake goroutine gone) and otherwise
// ends at the handshake timeout.
func TestTLSDialCloseAndTimeoutMidHandshake(t *testing.T) {
	f := newTLSFixture(t)
	forEachDriver(t, func(t *testing.T, newDriver reactor.NewDriverFunc) {
		checkLeaks(t)
		silent, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var accepted sync.WaitGroup
		defer func() { silent.Close(); accepted.Wait() }()
		accepted.Add(1)
		go func() {
			defer accepted.Done()
			var held []net.Conn
			defer func() {
				for _, c := range held {
					c.Close()
				}
			}()
			for {
				c, err := silent.Accept()
				if err != nil {
					return
				}
				held = append(held, c) // never answers
			}
		}()
		e := startEngine(t, 1, newDriver)
		addr, err := conn.ResolveAddr("tcp", silent.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		certs, err := conn.NewClientTLSCerts(conn.TLSFiles{CAFile: f.pki.CAFile}, &tls.Config{ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		pool := conn.NewHandshakePool(conn.HandshakePoolConfig{})
		for _, closeEarly := range []bool{true, false} {
			closed := make(chan error, 1)
			var opened atomic.Bool
			h := &funcHandler{
				onOpen:  func(*conn.Conn) { opened.Store(true) },
				onClose: func(c *conn.Conn, err error) { closed <- err },
			}
			var dialled *conn.Conn
			if err := e.Loops()[0].Exec(func(l *reactor.Loop) {
				dialled, err = conn.Dial(l, addr, time.Second, h, conn.Options{TLS: &conn.TLS{Config: certs.Config, Pool: pool, HandshakeTimeout: 500 * time.Millisecond}})
			}); err != nil || dialled == nil {
				t.Fatalf("dial: %v", err)
			}
			start := time.Now()
			if closeEarly {
				// Once the handshake is under way, close it.
				for deadline := time.Now().Add(5 * time.Second); pool.Stats.Started.Load() == 0; {
					if time.Now().After(deadline) {
						t.Fatal("the handshake never started")
					}
					time.Sleep(time.Millisecond)
				}
				e.Loops()[0].Exec(func(*reactor.Loop) { dialled.Close() })
			}
			var cerr error
			select {
			case cerr = <-closed:
			case <-time.After(10 * time.Second):
				t.Fatalf("close early %v: no OnClose after 10 s", closeEarly)
			}
			if opened.Load() {
				t.Fatalf("close early %v: OnOpen ran for a connection that never finished its handshake", closeEarly)
			}
			if !closeEarly {
				if !errors.Is(cerr, conn.ErrTLSHandshakeTimeout) {
					t.Fatalf("OnClose(%v), want the handshake timeout", cerr)
				}
				if took := time.Since(start); took < 400*time.Millisecond {
					t.Fatalf("timed out after %v, before the 500 ms timeout", took)
				}
			}
		}
		for deadline := time.Now().Add(5 * time.Second); ; {
			if running, _ := pool.InFlight(); running == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("handshake goroutines still running after their connections closed")
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// envPair reads "A,B" from the environment variable name, for running a
// test bigger by hand; the defaults are what CI runs.
func envPair(t *testing.T, name string, a, b int) (int, int) {
	v := os.Getenv(name)
	if v == "" {
		return a, b
	}
	x, y, _ := strings.Cut(v, ",")
	var err error
	if a, err = strconv.Atoi(x); err != nil || a <= 0 {
		t.Fatalf("%s=%q: want N or N,M", name, v)
	}
	if y != "" {
		if b, err = strconv.Atoi(y); err != nil || b < 0 {
			t.Fatalf("%s=%q: want N or N,M", name, v)
		}
	}
	return a, b
}
