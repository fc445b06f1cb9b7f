package conn_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/reactor"
)

// listenUDP starts a UDP listener on a loopback port, closed at the end.
func listenUDP(t *testing.T, e *reactor.Engine, cfg conn.UDPConfig) *conn.UDPListener {
	t.Helper()
	if cfg.Addr.Network == "" {
		cfg.Addr = loopbackAddr(t)
	}
	ln, err := conn.ListenUDP(e, cfg)
	if err != nil {
		t.Fatalf("ListenUDP: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func udpEcho(pc *conn.PacketConn, from netip.AddrPort, data []byte) { pc.WriteTo(data, from) }

func dialUDP(t *testing.T, ln *conn.UDPListener) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(ln.Addr().Address)))
	if err != nil {
		t.Fatalf("dial udp: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitStats polls the listener's counters until cond holds or 5 s pass.
func waitStats(t *testing.T, ln *conn.UDPListener, what string, cond func(conn.UDPStats) bool) conn.UDPStats {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := ln.Stats()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: stats %+v", what, s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestUDPEchoManySenders echoes 64 senders × 1,000 datagrams of 64 bytes
// and checks every reply's bytes. Loopback may still drop under load, so
// the test asserts the accounting on both sides and only a bound on loss.
func TestUDPEchoManySenders(t *testing.T) {
	const senders, perSender, size, window = 64, 1000, 64, 16
	forEachDriver(t, func(t *testing.T, nd reactor.NewDriverFunc) {
		checkLeaks(t)
		e := startEngine(t, 2, nd)
		// 64 senders × a window of 16 overflow the default socket buffer
		// of about 270 small datagrams; the kernel caps this at rmem_max.
		ln := listenUDP(t, e, conn.UDPConfig{OnDatagram: udpEcho, RecvBuffer: 4 << 20})
		var replies, lost atomic.Int64
		var wg sync.WaitGroup
		for s := 0; s < senders; s++ {
			c := dialUDP(t, ln)
			wg.Add(1)
			go func(id int) {
				defer wg.Done()
				msg := make([]byte, size)
				in := make([]byte, 2*size)
				outstanding := 0
				for seq := 0; seq < perSender || outstanding > 0; {
					for outstanding < window && seq < perSender {
						binary.BigEndian.PutUint32(msg[0:], uint32(id))
						binary.BigEndian.PutUint32(msg[4:], uint32(seq))
						for k := 8; k < size; k++ {
							msg[k] = byte(id + seq + k)
						}
						if _, err := c.Write(msg); err != nil {
							t.Errorf("sender %d: write: %v", id, err)
							return
						}
						seq++
						outstanding++
					}
					c.SetReadDeadline(time.Now().Add(time.Second))
					n, err := c.Read(in)
					if err != nil {
						if ne, ok := err.(net.Error); ok && ne.Timeout() {
							lost.Add(int64(outstanding)) // gone: the window starts again
							outstanding = 0
							continue
						}
						t.Errorf("sender %d: read: %v", id, err)
						return
					}
					r := in[:n]
					gotSeq := int(binary.BigEndian.Uint32(r[4:]))
					ok := n == size && int(binary.BigEndian.Uint32(r)) == id && gotSeq < seq
					for k := 8; ok && k < size; k++ {
						ok = r[k] == byte(id+gotSeq+k)
					}
					if !ok {
						t.Errorf("sender %d: reply %x is not a datagram it sent", id, r)
						return
					}
					replies.Add(1)
					outstanding--
				}
			}(s)
		}
		wg.Wait()
		total := int64(senders * perSender)
		if replies.Load()+lost.Load() != total {
			t.Fatalf("replies %d + lost %d != sent %d", replies.Load(), lost.Load(), total)
		}
		// Every datagram the server received produced exactly one WriteTo.
		st := waitStats(t, ln, "server accounting", func(s conn.UDPStats) bool {
			return s.Received == s.Sent+s.QueueDrops+s.SendErrors && s.Sent >= uint64(replies.Load())
		})
		t.Logf("%s: %d/%d replies, %d lost; server %+v", e.Loops()[0].Driver().Name(), replies.Load(), total, lost.Load(), st)
		if st.Truncated != 0 || st.SendErrors != 0 || st.RecvErrors != 0 {
			t.Errorf("unexpected errors: %+v", st)
		}
		if lost.Load() > total/10 {
			t.Errorf("lost %d of %d datagrams on loopback", lost.Load(), total)
		}
	})
}

// TestUDPLargeDatagrams echoes datagrams up to the largest IPv4 payload.
func TestUDPLargeDatagrams(t *testing.T) {
	forEachDriver(t, func(t *testing.T, nd reactor.NewDriverFunc) {
		checkLeaks(t)
		e := startEngine(t, 1, nd)
		ln := listenUDP(t, e, conn.UDPConfig{OnDatagram: udpEcho})
		c := dialUDP(t, ln)
		in := make([]byte, 70000)
		for _, size := range []int{0, 1, 1472, 9000, 16384, 16385, 32768, 65507} {
			msg := bytes.Repeat([]byte{byte(size), byte(size >> 8), 0x5a}, size/3+1)[:size]
			if _, err := c.Write(msg); err != nil {
				t.Fatalf("write %d bytes: %v", size, err)
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := c.Read(in)
			if err != nil {
				t.Fatalf("read reply to %d bytes: %v", size, err)
			}
			if !bytes.Equal(in[:n], msg) {
				t.Fatalf("reply to %d bytes: got %d bytes, not the same", size, n)
			}
		}
		if st := ln.Stats(); st.Truncated != 0 || st.Received != 8 {
			t.Errorf("stats %+v", st)
		}
	})
}

// TestUDPTruncated: a datagram larger than MaxDatagram is counted and
// dropped, never delivered cut short; the ones around it are delivered.
func TestUDPTruncated(t *testing.T) {
	forEachDriver(t, func(t *testing.T, nd reactor.NewDriverFunc) {
		checkLeaks(t)
		e := startEngine(t, 1, nd)
		var mu sync.Mutex
		var sizes []int
		ln := listenUDP(t, e, conn.UDPConfig{MaxDatagram: 1024, OnDatagram: func(pc *conn.PacketConn, from netip.AddrPort, data []byte) {
			mu.Lock()
			sizes = append(sizes, len(data))
			mu.Unlock()
			pc.WriteTo(data, from)
		}})
		c := dialUDP(t, ln)
		for _, size := range []int{1024, 1025, 4000, 65000, 10} {
			if _, err := c.Write(make([]byte, size)); err != nil {
				t.Fatal(err)
			}
		}
		in := make([]byte, 70000)
		for _, want := range []int{1024, 10} {
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := c.Read(in)
			if err != nil || n != want {
				t.Fatalf("reply: %d bytes, %v; want %d", n, err, want)
			}
		}
		st := waitStats(t, ln, "truncated count", func(s conn.UDPStats) bool { return s.Truncated == 3 })
		mu.Lock()
		defer mu.Unlock()
		if len(sizes) != 2 || sizes[0] != 1024 || sizes[1] != 10 {
			t.Errorf("delivered sizes %v, want [1024 10]; stats %+v", sizes, st)
		}
	})
}

// TestUDPQueueFull: WriteTo beyond the output queue's bounds drops and
// counts; what fits is sent.
func TestUDPQueueFull(t *testing.T) {
	cases := []struct {
		name            string
		datagrams, size int
		writes          int
		wantSent        int
	}{
		{"datagram bound", 4, 1 << 20, 10, 4},
		{"byte bound", 100, 200, 10, 3}, // 64-byte replies: three fit in 200 bytes
		// More than one batch (64): every datagram fits and is sent in order.
		{"many batches", 4096, 1 << 20, 1000, 1000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			forEachDriver(t, func(t *testing.T, nd reactor.NewDriverFunc) {
				checkLeaks(t)
				e := startEngine(t, 1, nd)
				ln := listenUDP(t, e, conn.UDPConfig{QueueDatagrams: tc.datagrams, QueueBytes: tc.size,
					OnDatagram: func(pc *conn.PacketConn, from netip.AddrPort, data []byte) {
						for i := 0; i < tc.writes; i++ {
							reply := make([]byte, 64)
							binary.BigEndian.PutUint16(reply, uint16(i))
							pc.WriteTo(reply, from)
						}
					}})
				c := dialUDP(t, ln)
				c.SetReadBuffer(4 << 20)
				if _, err := c.Write([]byte("go")); err != nil {
					t.Fatal(err)
				}
				// The first wantSent replies arrive, each once; UDP does not
				// promise their order (io_uring may complete a batch's
				// sendmsgs out of order when the send buffer fills).
				in := make([]byte, 100)
				seen := make(map[uint16]bool)
				for i := 0; i < tc.wantSent; i++ {
					c.SetReadDeadline(time.Now().Add(5 * time.Second))
					n, err := c.Read(in)
					num := binary.BigEndian.Uint16(in)
					if err != nil || n != 64 || int(num) >= tc.wantSent || seen[num] {
						t.Fatalf("reply %d: %d bytes (number %d), %v", i, n, num, err)
					}
					seen[num] = true
				}
				st := waitStats(t, ln, "queue drops", func(s conn.UDPStats) bool {
					return s.Sent == uint64(tc.wantSent) && s.QueueDrops == uint64(tc.writes-tc.wantSent)
				})
				c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
				if n, err := c.Read(in); err == nil {
					t.Errorf("an extra reply of %d bytes; stats %+v", n, st)
				}
			})
		})
	}
}

// TestUDPCloseWhileTraffic closes the listener while senders keep sending:
// nothing crashes or leaks, replies stop, and the engine goes on serving.
func TestUDPCloseWhileTraffic(t *testing.T) {
	forEachDriver(t, func(t *testing.T, nd reactor.NewDriverFunc) {
		checkLeaks(t)
		e := startEngine(t, 2, nd)
		ln, err := conn.ListenUDP(e, conn.UDPConfig{Addr: mustResolve(t, "127.0.0.1:0"), OnDatagram: udpEcho})
		if err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var replies atomic.Int64
		for s := 0; s < 8; s++ {
			c := dialUDP(t, ln)
			wg.Add(2)
			go func() {
				defer wg.Done()
				msg := make([]byte, 64)
				for {
					select {
					case <-stop:
						return
					default:
					}
					c.Write(msg) // errors (ICMP port unreachable after the close) are expected
				}
			}()
			go func() {
				defer wg.Done()
				in := make([]byte, 100)
				for {
					c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
					if _, err := c.Read(in); err == nil {
						replies.Add(1)
						continue
					}
					select {
					case <-stop:
						return
					default:
					}
				}
			}()
		}
		waitStats(t, ln, "traffic", func(s conn.UDPStats) bool { return s.Sent > 1000 })
		if err := ln.Close(); err != nil {
			t.Fatal(err)
		}
		before := ln.Stats()
		time.Sleep(100 * time.Millisecond)
		if after := ln.Stats(); after != before {
			t.Errorf("counters moved after Close: %+v then %+v", before, after)
		}
		close(stop)
		wg.Wait()
		if replies.Load() == 0 {
			t.Error("no replies before the close")
		}
		// The engine still serves a new listener.
		ln2 := listenUDP(t, e, conn.UDPConfig{OnDatagram: udpEcho})
		c := dialUDP(t, ln2)
		c.Write([]byte("again"))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		in := make([]byte, 10)
		if n, err := c.Read(in); err != nil || string(in[:n]) != "again" {
			t.Fatalf("new listener: %q, %v", in[:n], err)
		}
	})
}

// TestUDPListenCloseReleases opens and closes listeners that saw traffic,
// repeatedly: every descriptor must be given back (checkLeaks). The io_uring
// driver's own buffer rings are checked in package ring.
func TestUDPListenCloseReleases(t *testing.T) {
	forEachDriver(t, func(t *testing.T, nd reactor.NewDriverFunc) {
		checkLeaks(t)
		e := startEngine(t, 2, nd)
		for i := 0; i < 50; i++ {
			ln, err := conn.ListenUDP(e, conn.UDPConfig{Addr: mustResolve(t, "127.0.0.1:0"), OnDatagram: udpEcho})
			if err != nil {
				t.Fatal(err)
			}
			c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(ln.Addr().Address)))
			if err != nil {
				t.Fatal(err)
			}
			c.Write([]byte("x"))
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Read(make([]byte, 4)); err != nil {
				t.Fatal(err)
			}
			c.Close()
			ln.Close()
		}
	})
}

// TestUDPEchoIPv6 echoes over IPv6 and, on a dual-stack wildcard socket,
// to an IPv4 sender, whose address travels v4-mapped.
func TestUDPEchoIPv6(t *testing.T) {
	for _, tc := range []struct{ listen, dialHost string }{
		{"[::1]:0", "::1"},
		{"[::]:0", "127.0.0.1"},
	} {
		t.Run(tc.listen, func(t *testing.T) {
			forEachDriver(t, func(t *testing.T, nd reactor.NewDriverFunc) {
				checkLeaks(t)
				e := startEngine(t, 1, nd)
				var mu sync.Mutex
				var from netip.AddrPort
				ln := listenUDP(t, e, conn.UDPConfig{Addr: mustResolve(t, tc.listen), OnDatagram: func(pc *conn.PacketConn, f netip.AddrPort, data []byte) {
					mu.Lock()
					from = f
					mu.Unlock()
					pc.WriteTo(data, f)
				}})
				port := netip.MustParseAddrPort(ln.Addr().Address).Port()
				c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(tc.dialHost), port)))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.Write([]byte("v6?"))
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				in := make([]byte, 8)
				if n, err := c.Read(in); err != nil || string(in[:n]) != "v6?" {
					t.Fatalf("%s from %s: %q, %v", tc.listen, tc.dialHost, in[:n], err)
				}
				mu.Lock()
				defer mu.Unlock()
				if want := c.LocalAddr().(*net.UDPAddr).AddrPort(); from != want {
					t.Errorf("sender seen as %s, want %s", from, want)
				}
			})
		})
	}
}

// TestUDPListenErrors: a Unix address and a taken port are refused.
func TestUDPListenErrors(t *testing.T) {
	e := startEngine(t, 2, reactor.NewEpoll)
	if _, err := conn.ListenUDP(e, conn.UDPConfig{Addr: conn.Addr{Network: "unix", Address: "/tmp/x"}, OnDatagram: udpEcho}); err == nil {
		t.Error("a Unix address was accepted")
	}
	taken, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	_, err = conn.ListenUDP(e, conn.UDPConfig{Addr: mustResolve(t, taken.LocalAddr().String()), OnDatagram: udpEcho})
	if !errors.Is(err, os.ErrExist) && err == nil {
		t.Error("a taken port was shared")
	}
}

func mustResolve(t *testing.T, s string) conn.Addr {
	t.Helper()
	a, err := conn.ResolveAddr("tcp", s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
