package ring_test

import (
	"bytes"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scalestack/scalestack/reactor"
)

// packetEcho sends every datagram back from the driver's own socket with
// SendPackets, using one preallocated Packet, as a steady-state server
// would.
type packetEcho struct {
	d       reactor.Driver
	h       reactor.Handle
	out     [1]reactor.Packet
	buf     []byte
	got     int
	sent    int
	pending bool
}

func (e *packetEcho) OnPacket(b []byte, from *reactor.PacketAddr) {
	e.got++
	if e.pending {
		return // the client sends one at a time: cannot happen
	}
	e.out[0] = reactor.Packet{Data: e.buf[:copy(e.buf, b)], Addr: *from}
	consumed, _, pending, err := e.d.SendPackets(e.h, e.out[:])
	if err == nil && !pending && consumed == 1 {
		e.sent++
	}
	e.pending = pending
}
func (e *packetEcho) OnPacketTruncated(int, *reactor.PacketAddr) {}
func (e *packetEcho) OnPacketError(error)                        {}
func (e *packetEcho) OnPacketsSent(consumed, failed int) {
	e.pending = false
	e.sent += consumed - failed
}
func (e *packetEcho) OnWritable() {}

// TestPacketEchoSteadyStateAllocs checks that receiving a datagram and
// sending one back through a driver allocates nothing once warm.
func TestPacketEchoSteadyStateAllocs(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d reactor.Driver) {
		srv, srvAddr, ok := udpSocket(t)
		if !ok {
			return
		}
		e := &packetEcho{d: d, buf: make([]byte, 2048)}
		h, err := d.ListenPacket(srv, e, 2048)
		if err != nil {
			t.Errorf("ListenPacket: %v", err)
			unix.Close(srv)
			return
		}
		e.h = h
		defer d.Close(h)
		cli, _, ok := udpSocket(t)
		if !ok {
			return
		}
		defer unix.Close(cli)
		if err := unix.Connect(cli, srvAddr); err != nil {
			t.Errorf("connect: %v", err)
			return
		}
		msg := bytes.Repeat([]byte{0xab}, 64)
		in := make([]byte, 128)
		roundTrip := func() bool {
			if _, err := unix.Write(cli, msg); err != nil {
				t.Errorf("write: %v", err)
				return false
			}
			deadline := time.Now().Add(5 * time.Second)
			for time.Now().Before(deadline) {
				if _, err := d.Poll(time.Millisecond); err != nil {
					t.Errorf("poll: %v", err)
					return false
				}
				n, err := unix.Read(cli, in)
				if err == nil {
					if !bytes.Equal(in[:n], msg) {
						t.Errorf("reply %x", in[:n])
						return false
					}
					return true
				}
			}
			t.Error("no reply in 5s")
			return false
		}
		for i := 0; i < 100; i++ {
			if !roundTrip() {
				return
			}
		}
		allocs := testing.AllocsPerRun(200, func() { roundTrip() })
		if allocs != 0 {
			t.Errorf("%.2f allocations per datagram echoed, want 0", allocs)
		}
	})
}

// udpSocket binds a non-blocking UDP socket to a loopback port. It runs on
// the loop goroutine, so it reports with t.Errorf, never t.Fatal.
func udpSocket(t *testing.T) (int, unix.Sockaddr, bool) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Errorf("socket: %v", err)
		return -1, nil, false
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Errorf("bind: %v", err)
		unix.Close(fd)
		return -1, nil, false
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Errorf("getsockname: %v", err)
		unix.Close(fd)
		return -1, nil, false
	}
	return fd, sa, true
}
