package ring

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/scalestack/scalestack/reactor"
)

type packetCount struct{ got, truncated, errs, sent int }

func (c *packetCount) OnPacket([]byte, *reactor.PacketAddr)       { c.got++ }
func (c *packetCount) OnPacketTruncated(int, *reactor.PacketAddr) { c.truncated++ }
func (c *packetCount) OnPacketError(error)                        { c.errs++ }
func (c *packetCount) OnPacketsSent(int, int)                     { c.sent++ }
func (c *packetCount) OnWritable()                                {}

// TestPacketRingsReleased opens, uses and closes datagram sockets one after
// another: each one's provided-buffer ring must be unregistered and unmapped
// once its last request completes, and its group id reused, or every UDP
// listener ever opened would keep megabytes mapped.
func TestPacketRingsReleased(t *testing.T) {
	onThread(t, func(d *Driver) {
		peer, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Errorf("socket: %v", err)
			return
		}
		defer unix.Close(peer)
		for i := 0; i < 50; i++ {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Errorf("socket: %v", err)
				return
			}
			if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
				t.Errorf("bind: %v", err)
				unix.Close(fd)
				return
			}
			sa, _ := unix.Getsockname(fd)
			var c packetCount
			h, err := d.ListenPacket(fd, &c, 1500)
			if err != nil {
				t.Errorf("ListenPacket: %v", err)
				unix.Close(fd)
				return
			}
			if err := unix.Sendto(peer, []byte("ping"), 0, sa); err != nil {
				t.Errorf("sendto: %v", err)
			}
			pollWhile(t, d, "datagram", func() bool { return c.got == 0 })
			if err := d.Close(h); err != nil {
				t.Errorf("close: %v", err)
			}
			pollWhile(t, d, "slot freed", func() bool { return len(d.free) == 0 || d.slots[h.Slot()].used })
		}
		if d.nextGroup != 1 || len(d.freeGroups) != 1 {
			t.Errorf("buffer groups: %d handed out, %d free; want 1 and 1", d.nextGroup, len(d.freeGroups))
		}
		for i := range d.slots {
			if d.slots[i].pr != nil {
				t.Errorf("slot %d still holds a packet ring", i)
			}
		}
	})
}
