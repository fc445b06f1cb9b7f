package conn_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/reactor"
)

// upgradeRequest is the plain-text request that precedes the handshake in
// these tests, as MySQL's SSLRequest or SMTP's STARTTLS do.
const upgradeRequest = "STARTTLS"

// upgradeEvent is what an upgrading handler saw, in order.
type upgradeEvent struct {
	kind string // "done", "close", "plain" (input before the upgrade), "data-early" (input before done)
	err  error
	n    int
}

// upgradeServer is a handler that reads upgradeRequest in the clear,
// switches to TLS with StartTLSServer and then echoes.
type upgradeServer struct {
	tls         *conn.TLS
	answerFirst string // written in the clear before StartTLS
	writeEarly  string // written right after StartTLS, before the handshake ended
	closeAtOnce bool   // Close right after StartTLS
	events      chan upgradeEvent

	upgraded, done bool
	leftover       int // bytes after the request in the OnData that upgraded
	calls          int // OnData calls before the upgrade
}

func (h *upgradeServer) OnOpen(*conn.Conn) {}

func (h *upgradeServer) OnData(c *conn.Conn, data []byte) int {
	if !h.upgraded {
		h.calls++
		if len(data) < len(upgradeRequest) {
			return 0 // the request is still arriving
		}
		if string(data[:len(upgradeRequest)]) != upgradeRequest {
			c.Abort(errors.New("no upgrade request"))
			return len(data)
		}
		h.upgraded = true
		h.leftover = len(data) - len(upgradeRequest)
		if h.answerFirst != "" {
			c.Write([]byte(h.answerFirst))
		}
		if err := c.StartTLSServer(h.tls, func(err error) {
			h.done = err == nil
			if err == nil {
				if _, ok := c.TLSState(); !ok {
					err = errors.New("done(nil) without TLS state")
				}
			}
			h.events <- upgradeEvent{kind: "done", err: err}
		}); err != nil {
			h.events <- upgradeEvent{kind: "start", err: err}
			c.Abort(err)
			return len(data)
		}
		if h.writeEarly != "" {
			c.Write([]byte(h.writeEarly))
		}
		if h.closeAtOnce {
			// Output for after the handshake, which Close ends: it must
			// not keep the connection open until the timeout.
			c.Write([]byte("never sent"))
			c.Close()
		}
		return len(upgradeRequest)
	}
	if !h.done {
		h.events <- upgradeEvent{kind: "data-early", n: len(data)}
	}
	c.Write(data)
	return len(data)
}

func (h *upgradeServer) OnClose(_ *conn.Conn, err error) {
	h.events <- upgradeEvent{kind: "close", err: err}
}

// prefixConn writes prefix in front of the first Write, in the same
// system call: a client that pipelines its ClientHello behind its
// upgrade request.
type prefixConn struct {
	net.Conn
	prefix []byte
	once   sync.Once
}

func (c *prefixConn) Write(p []byte) (int, error) {
	var pre []byte
	c.once.Do(func() { pre = c.prefix })
	if len(pre) == 0 {
		return c.Conn.Write(p)
	}
	if _, err := c.Conn.Write(append(append([]byte{}, pre...), p...)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// nextEvent returns the next upgrade event or fails the test.
func nextEvent(t *testing.T, events <-chan upgradeEvent, within time.Duration) upgradeEvent {
	t.Helper()
	select {
	case ev := <-events:
		return ev
	case <-time.After(within):
		t.Fatalf("no handler event within %v", within)
		return upgradeEvent{}
	}
}

// TestStartTLSServer upgrades plain connections to TLS as the server: a
// client that pipelines its ClientHello right behind the upgrade request
// (in the same segment, or after a request that arrived in pieces), and one
// that waits for the server's plain answer first. The handler's done comes
// before any decrypted input, output written before StartTLS goes out in
// the clear and output written during the handshake encrypted, and the
// connection then echoes exactly.
func TestStartTLSServer(t *testing.T) {
	f := newTLSFixture(t)
	cases := []struct {
		name        string
		split       bool   // the request arrives in two pieces, the ClientHello with the second
		answerFirst string // the server answers in the clear; the client waits for it
		writeEarly  string
	}{
		{name: "hello pipelined in the same segment"},
		{name: "hello pipelined after a request in pieces", split: true},
		{name: "hello after the server's plain answer", answerFirst: "GO AHEAD", writeEarly: "encrypted welcome"},
	}
	forEachDriver(t, func(t *testing.T, newDriver reactor.NewDriverFunc) {
		for _, ver := range tlsVersions {
			for _, tc := range cases {
				t.Run(ver.name+"/"+tc.name, func(t *testing.T) {
					checkLeaks(t)
					e := startEngine(t, 1, newDriver)
					pool := conn.NewHandshakePool(conn.HandshakePoolConfig{})
					tlsCfg := &conn.TLS{Config: f.serverCerts(t, false, nil).Config, Pool: pool}
					handlers := make(chan *upgradeServer, 1)
					events := make(chan upgradeEvent, 16)
					ln := listen(t, e, conn.ListenConfig{NewHandler: func(*conn.Conn) conn.Handler {
						h := &upgradeServer{tls: tlsCfg, answerFirst: tc.answerFirst, writeEarly: tc.writeEarly, events: events}
						handlers <- h
						return h
					}})
					raw := dial(t, ln.Addr())
					var transport net.Conn = raw
					switch {
					case tc.answerFirst != "":
						raw.Write([]byte(upgradeRequest))
						if got := readExactly(t, raw, len(tc.answerFirst)); string(got) != tc.answerFirst {
							t.Fatalf("plain answer %q, want %q", got, tc.answerFirst)
						}
					case tc.split:
						raw.Write([]byte(upgradeRequest[:3]))
						time.Sleep(50 * time.Millisecond) // let the server see the piece alone
						transport = &prefixConn{Conn: raw, prefix: []byte(upgradeRequest[3:])}
					default:
						transport = &prefixConn{Conn: raw, prefix: []byte(upgradeRequest)}
					}
					client := tls.Client(transport, f.clientConfig(ver.v))
					if err := client.Handshake(); err != nil {
						t.Fatalf("handshake: %v", err)
					}
					if ev := nextEvent(t, events, 10*time.Second); ev.kind != "done" || ev.err != nil {
						t.Fatalf("first event %s(%v), want done(nil)", ev.kind, ev.err)
					}
					h := <-handlers
					if tc.answerFirst == "" && h.leftover == 0 {
						t.Fatalf("the ClientHello did not come in the same read as the request: nothing pipelined was tested")
					}
					if tc.split && h.calls < 2 {
						t.Logf("the request's pieces arrived together; the buffered-input path was not taken")
					}
					if tc.writeEarly != "" {
						if got := readExactly(t, client, len(tc.writeEarly)); string(got) != tc.writeEarly {
							t.Fatalf("early write %q, want %q", got, tc.writeEarly)
						}
					}
					payload := make([]byte, 100<<10)
					rng := rand.New(rand.NewPCG(3, 4))
					for i := range payload {
						payload[i] = byte(rng.Uint32())
					}
					go client.Write(payload)
					if got := readExactly(t, client, len(payload)); !bytes.Equal(got, payload) {
						t.Fatalf("echo differs")
					}
					if st := client.ConnectionState(); st.Version != ver.v {
						t.Fatalf("version %x, want %x", st.Version, ver.v)
					}
					client.Close()
					if ev := nextEvent(t, events, 10*time.Second); ev.kind != "close" {
						t.Fatalf("event %s(%v) after the echo, want close", ev.kind, ev.err)
					}
					if s := pool.Stats.Succeeded.Load(); s != 1 {
						t.Fatalf("%d handshakes succeeded, want 1", s)
					}
				})
			}
		}
	})
}

// TestStartTLSServerFailures: an upgraded connection whose handshake does
// not finish tells the handler through done, with the cause, and then
// closes (OnClose after done, no input delivered); misuse is refused at
// the call.
func TestStartTLSServerFailures(t *testing.T) {
	f := newTLSFixture(t)
	const timeout = 400 * time.Millisecond
	cases := []struct {
		name        string
		client      func(t *testing.T, c net.Conn) // after the request
		closeAtOnce bool
		wantDone    error  // errors.Is, when set
		wantText    string // in done's error, when set
		minDelay    time.Duration
	}{
		{name: "not TLS after the request", client: func(t *testing.T, c net.Conn) {
			c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		}, wantText: "TLS handshake"},
		{name: "client refuses the certificate", client: func(t *testing.T, c net.Conn) {
			cfg := f.clientConfig(tls.VersionTLS13)
			cfg.RootCAs = nil // the system's roots do not know the test CA
			if err := tls.Client(c, cfg).Handshake(); err == nil {
				t.Errorf("the client accepted a certificate from an unknown CA")
			}
		}, wantText: "bad certificate"},
		{name: "peer gone mid-handshake", client: func(t *testing.T, c net.Conn) {
			c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01})
			c.(*net.TCPConn).CloseWrite()
		}, wantText: "TLS handshake"},
		{name: "request and then silence", client: func(t *testing.T, c net.Conn) {},
			wantDone: conn.ErrTLSHandshakeTimeout, minDelay: timeout - 50*time.Millisecond},
		{name: "handler closes during the handshake", client: func(t *testing.T, c net.Conn) {},
			closeAtOnce: true, wantDone: conn.ErrAborted},
	}
	forEachDriver(t, func(t *testing.T, newDriver reactor.NewDriverFunc) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				checkLeaks(t)
				e := startEngine(t, 1, newDriver)
				pool := conn.NewHandshakePool(conn.HandshakePoolConfig{})
				// Only the silent client is meant to meet the timeout; the
				// others get one a handshake under -race on a loaded
				// machine cannot reach.
				hsTimeout := 20 * time.Second
				if tc.minDelay > 0 {
					hsTimeout = timeout
				}
				tlsCfg := &conn.TLS{Config: f.serverCerts(t, false, nil).Config, Pool: pool, HandshakeTimeout: hsTimeout}
				events := make(chan upgradeEvent, 16)
				ln := listen(t, e, conn.ListenConfig{NewHandler: func(*conn.Conn) conn.Handler {
					return &upgradeServer{tls: tlsCfg, closeAtOnce: tc.closeAtOnce, events: events}
				}})
				c := dial(t, ln.Addr())
				start := time.Now()
				c.Write([]byte(upgradeRequest))
				clientDone := make(chan struct{})
				go func() { defer close(clientDone); tc.client(t, c) }()
				ev := nextEvent(t, events, 30*time.Second)
				took := time.Since(start)
				if ev.kind != "done" || ev.err == nil {
					t.Fatalf("first event %s(%v), want done with an error", ev.kind, ev.err)
				}
				if tc.wantDone != nil && !errors.Is(ev.err, tc.wantDone) {
					t.Fatalf("done(%v), want %v", ev.err, tc.wantDone)
				}
				if tc.wantText != "" && !strings.Contains(ev.err.Error(), tc.wantText) {
					t.Fatalf("done(%v), want an error mentioning %q", ev.err, tc.wantText)
				}
				if took < tc.minDelay {
					t.Fatalf("done after %v, before the %v timeout", took, timeout)
				}
				closed := nextEvent(t, events, 5*time.Second)
				if closed.kind != "close" {
					t.Fatalf("event %s(%v) after done, want close", closed.kind, closed.err)
				}
				if tc.closeAtOnce {
					if closed.err != nil {
						t.Fatalf("OnClose(%v) after the handler's own Close, want nil", closed.err)
					}
				} else if closed.err == nil || closed.err.Error() != ev.err.Error() {
					t.Fatalf("OnClose(%v), want done's error %v", closed.err, ev.err)
				}
				<-clientDone
				// What the handshake sent before it failed may be unread.
				if _, err := io.Copy(io.Discard, c); err != nil && !strings.Contains(err.Error(), "reset") {
					t.Fatalf("the server did not close the connection: %v", err)
				}
				select {
				case ev := <-events:
					t.Fatalf("unexpected event %s(%v)", ev.kind, ev.err)
				default:
				}
				waitOpen(t, ln, 0)
			})
		}
	})
}

// TestStartTLSRefusesMisuse: a second StartTLS, one on a connection that
// runs TLS from the start, and one after CloseWrite return an error and
// change nothing.
func TestStartTLSRefusesMisuse(t *testing.T) {
	f := newTLSFixture(t)
	e := startEngine(t, 1, reactor.NewEpoll)
	certs := f.serverCerts(t, false, nil)
	tlsCfg := &conn.TLS{Config: certs.Config}
	results := make(chan error, 8)
	ln := listen(t, e, conn.ListenConfig{NewHandler: func(*conn.Conn) conn.Handler {
		return &funcHandler{onData: func(c *conn.Conn, data []byte) int {
			switch string(data) {
			case "twice":
				results <- c.StartTLSServer(tlsCfg, nil)
				results <- c.StartTLSServer(tlsCfg, nil)
			case "half-closed":
				c.CloseWrite()
				results <- c.StartTLSServer(tlsCfg, nil)
			case "nil":
				results <- c.StartTLSServer(nil, nil)
			}
			return len(data)
		}}
	}})
	tlsLn := tlsEchoServer(t, e, tlsCfg, func(c *conn.Conn) { results <- c.StartTLSServer(tlsCfg, nil) })
	get := func() error {
		t.Helper()
		select {
		case err := <-results:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("no result")
			return nil
		}
	}
	dial(t, ln.Addr()).Write([]byte("twice"))
	if err := get(); err != nil {
		t.Fatalf("first StartTLS: %v", err)
	}
	if err := get(); !errors.Is(err, conn.ErrTLSActive) {
		t.Fatalf("second StartTLS: %v, want ErrTLSActive", err)
	}
	dial(t, ln.Addr()).Write([]byte("half-closed"))
	if err := get(); !errors.Is(err, conn.ErrTLSNotOpen) {
		t.Fatalf("StartTLS after CloseWrite: %v, want ErrTLSNotOpen", err)
	}
	dial(t, ln.Addr()).Write([]byte("nil"))
	if err := get(); err == nil {
		t.Fatalf("StartTLS with no configuration succeeded")
	}
	c, err := tls.Dial("tcp", tlsLn.Addr().Address, f.clientConfig(tls.VersionTLS13))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := get(); !errors.Is(err, conn.ErrTLSActive) {
		t.Fatalf("StartTLS on a TLS connection: %v, want ErrTLSActive", err)
	}
}

// upgradeClient dials a server that greets in the clear, sends the upgrade
// request, switches to TLS with StartTLSClient at once (the request must
// still go out first, in the clear), then sends payload and collects the
// echo.
type upgradeClient struct {
	tls     *conn.TLS
	payload []byte
	greeted bool
	got     []byte
	done    chan error // StartTLS's done
	echoed  chan []byte
	closed  chan error
}

func (h *upgradeClient) OnOpen(*conn.Conn) {}

func (h *upgradeClient) OnData(c *conn.Conn, data []byte) int {
	if !h.greeted {
		if len(data) < len("HELLO") {
			return 0
		}
		h.greeted = true
		c.Write([]byte(upgradeRequest))
		if err := c.StartTLSClient(h.tls, func(err error) {
			if err == nil {
				if st, ok := c.TLSState(); !ok || len(st.PeerCertificates) == 0 {
					err = fmt.Errorf("TLS state without the server's certificate (ok %v) after done(nil)", ok)
				}
			}
			h.done <- err
			if err == nil {
				c.Write(h.payload)
			}
		}); err != nil {
			h.done <- err
			c.Abort(err)
		}
		return len("HELLO")
	}
	h.got = append(h.got, data...)
	if len(h.got) >= len(h.payload) {
		h.echoed <- h.got
		c.Close()
	}
	return len(data)
}

func (h *upgradeClient) OnClose(_ *conn.Conn, err error) { h.closed <- err }

// TestStartTLSClient upgrades a dialled plain connection as the client
// against a crypto/tls server that greets in the clear, reads the upgrade
// request and then handshakes; a server with a certificate the client does
// not trust fails done and closes.
func TestStartTLSClient(t *testing.T) {
	f := newTLSFixture(t)
	other := newTLSFixture(t) // a CA the client does not trust
	forEachDriver(t, func(t *testing.T, newDriver reactor.NewDriverFunc) {
		for _, tc := range []struct {
			name    string
			fixture *tlsFixture
			ok      bool
		}{{"trusted", f, true}, {"untrusted certificate", other, false}} {
			t.Run(tc.name, func(t *testing.T) {
				checkLeaks(t)
				srvCfg := &tls.Config{Certificates: []tls.Certificate{tc.fixture.server.Cert}}
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				served := make(chan error, 1)
				go func() {
					raw, err := ln.Accept()
					ln.Close()
					if err != nil {
						served <- err
						return
					}
					defer raw.Close()
					raw.SetDeadline(time.Now().Add(10 * time.Second))
					raw.Write([]byte("HELLO"))
					req := make([]byte, len(upgradeRequest))
					if _, err := io.ReadFull(raw, req); err != nil || string(req) != upgradeRequest {
						served <- fmt.Errorf("upgrade request %q, %v", req, err)
						return
					}
					s := tls.Server(raw, srvCfg)
					if err := s.Handshake(); err != nil {
						served <- fmt.Errorf("server handshake: %w", err)
						return
					}
					_, err = io.Copy(s, s)
					served <- err
				}()
				e := startEngine(t, 1, newDriver)
				certs, err := conn.NewClientTLSCerts(conn.TLSFiles{CAFile: f.pki.CAFile}, &tls.Config{ServerName: "127.0.0.1"})
				if err != nil {
					t.Fatal(err)
				}
				addr, err := conn.ResolveAddr("tcp", ln.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				payload := bytes.Repeat([]byte("0123456789abcdef"), 5000)
				h := &upgradeClient{tls: &conn.TLS{Config: certs.Config, Pool: conn.NewHandshakePool(conn.HandshakePoolConfig{})},
					payload: payload, done: make(chan error, 1), echoed: make(chan []byte, 1), closed: make(chan error, 1)}
				if err := e.Loops()[0].Exec(func(l *reactor.Loop) {
					_, err = conn.Dial(l, addr, 5*time.Second, h, conn.Options{})
				}); err != nil {
					t.Fatal(err)
				}
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				var doneErr error
				select {
				case doneErr = <-h.done:
				case <-time.After(10 * time.Second):
					t.Fatal("no done")
				}
				if !tc.ok {
					if doneErr == nil || !strings.Contains(doneErr.Error(), "certificate") {
						t.Fatalf("done(%v), want a certificate error", doneErr)
					}
					if cerr := <-h.closed; cerr == nil || cerr.Error() != doneErr.Error() {
						t.Fatalf("OnClose(%v), want done's error", cerr)
					}
					<-served
					return
				}
				if doneErr != nil {
					t.Fatalf("done(%v)", doneErr)
				}
				select {
				case got := <-h.echoed:
					if !bytes.Equal(got[:len(payload)], payload) || len(got) != len(payload) {
						t.Fatalf("echo differs (%d bytes, want %d)", len(got), len(payload))
					}
				case <-time.After(10 * time.Second):
					t.Fatal("no echo")
				}
				if cerr := <-h.closed; cerr != nil {
					t.Fatalf("OnClose(%v)", cerr)
				}
				if err := <-served; err != nil {
					t.Fatalf("server: %v", err)
				}
			})
		}
	})
}
