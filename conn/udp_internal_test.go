package conn

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/scalestack/scalestack/reactor"
	"golang.org/x/sys/unix"
)

// TestUDPQueueArenaWraps drives the output queue's byte ring with random
// pushes and pops, as a loop whose sends complete in batches would, and
// checks after every step that each queued datagram still holds its own
// bytes (a wrap that overwrote a queued or in-flight one would show), that
// the bytes queued never exceed the arena, and that a push into an empty
// queue fails only when it is larger than the arena.
func TestUDPQueueArenaWraps(t *testing.T) {
	for _, sizes := range []struct{ arena, queue, maxLen int }{{100, 8, 40}, {1000, 64, 300}, {64, 4, 64}} {
		pc := &PacketConn{family: unix.AF_INET, q: make([]reactor.Packet, sizes.queue), offs: make([]int, sizes.queue), arena: make([]byte, sizes.arena)}
		to := netip.MustParseAddrPort("127.0.0.1:9")
		rng := rand.New(rand.NewPCG(uint64(sizes.arena), 7))
		var want [][]byte // the model: queued datagrams in order
		wraps, drops := 0, 0
		for step := 0; step < 200000; step++ {
			if rng.IntN(3) > 0 {
				data := bytes.Repeat([]byte{byte(step)}, rng.IntN(sizes.maxLen+1))
				empty := pc.qLen == 0
				tail := pc.aTail
				if pc.enqueue(data, to) {
					want = append(want, data)
					if pc.qLen > 1 && len(data) > 0 && &pc.arena[0] == &pc.q[(pc.qHead+pc.qLen-1)%len(pc.q)].Data[:1][0] && tail != 0 {
						wraps++
					}
				} else {
					drops++
					if empty && len(data) <= sizes.arena {
						t.Fatalf("step %d: %d bytes refused by an empty queue", step, len(data))
					}
				}
			} else if pc.qLen > 0 {
				k := 1 + rng.IntN(pc.qLen)
				pc.dequeue(k, 0)
				want = want[k:]
			}
			if pc.qLen != len(want) {
				t.Fatalf("step %d: %d queued, model has %d", step, pc.qLen, len(want))
			}
			total := 0
			for i, w := range want {
				got := pc.q[(pc.qHead+i)%len(pc.q)].Data
				if !bytes.Equal(got, w) {
					t.Fatalf("step %d: datagram %d of %d overwritten", step, i, len(want))
				}
				total += len(w)
			}
			if total > sizes.arena {
				t.Fatalf("step %d: %d bytes queued in a %d-byte arena", step, total, sizes.arena)
			}
		}
		if wraps == 0 || drops == 0 {
			t.Errorf("%+v: the run never wrapped (%d) or never filled (%d)", sizes, wraps, drops)
		}
	}
}

// TestUDPQueueNoAllocs: decoding a sender, queueing a reply and dequeuing
// it allocate nothing.
func TestUDPQueueNoAllocs(t *testing.T) {
	pc := &PacketConn{family: unix.AF_INET6, q: make([]reactor.Packet, 8), offs: make([]int, 8), arena: make([]byte, 4096)}
	data := make([]byte, 64)
	var from reactor.PacketAddr
	from.SetAddrPort(netip.MustParseAddrPort("[2001:db8::1]:5353"), unix.AF_INET6)
	allocs := testing.AllocsPerRun(1000, func() {
		if !pc.enqueue(data, from.AddrPort()) {
			t.Fatal("queue refused")
		}
		pc.dequeue(1, 0)
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per datagram queued", allocs)
	}
}
