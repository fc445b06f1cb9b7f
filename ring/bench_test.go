package ring_test

import (
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/scalestack/scalestack/reactor"
)

// pinger sends a message, waits for all of it to come back, and sends it
// again while the shared round budget lasts.
type pinger struct {
	echoConn
	msg      []byte
	got      int
	rounds   *int
	inFlight bool // a request is out and its whole reply not yet back
}

func (p *pinger) start() {
	*p.rounds--
	p.inFlight = true
	p.out = append(p.out, p.msg...)
	p.flush()
}

func (p *pinger) OnRecv(b []byte) {
	p.got += len(b)
	if p.got < len(p.msg) {
		return
	}
	p.got -= len(p.msg)
	p.inFlight = false
	if *p.rounds > 0 {
		p.start()
	}
}

// BenchmarkPingPong measures request/response round trips over TCP loopback
// with both ends served by one driver on one locked thread, so the numbers
// compare the drivers and not the Go scheduler. One op is one round trip;
// with several pairs the round trips overlap and the driver batches them.
func BenchmarkPingPong(b *testing.B) {
	for _, drv := range drivers {
		for _, size := range []int{64, 4096} {
			for _, pairs := range []int{1, 64} {
				b.Run(fmt.Sprintf("%s/size=%d/pairs=%d", drv.name, size, pairs), func(b *testing.B) {
					pingPong(b, drv.new, size, pairs)
				})
			}
		}
	}
}

func pingPong(b *testing.B, newDriver reactor.NewDriverFunc, size, pairs int) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	d, err := newDriver()
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Init(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := d.Shutdown(); err != nil {
			b.Error(err)
		}
	}()
	pp := newPingPongSet(b, d, size, pairs)
	defer pp.close()
	b.ReportAllocs()
	b.ResetTimer()
	if err := pp.run(b.N); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
}

// pingPongSet is a number of client/server pairs over TCP loopback, all
// registered with one driver.
type pingPongSet struct {
	d       reactor.Driver
	rounds  int
	clients []*pinger
	servers []*echoConn
}

func newPingPongSet(tb testing.TB, d reactor.Driver, size, pairs int) *pingPongSet {
	pp := &pingPongSet{d: d}
	for range pairs {
		cfd, sfd := tcpPair(tb)
		s := &echoConn{d: d}
		hs, err := d.Register(sfd, s)
		if err != nil {
			tb.Fatal(err)
		}
		s.h = hs
		c := &pinger{echoConn: echoConn{d: d}, msg: make([]byte, size), rounds: &pp.rounds}
		hc, err := d.Register(cfd, c)
		if err != nil {
			tb.Fatal(err)
		}
		c.h = hc
		pp.clients = append(pp.clients, c)
		pp.servers = append(pp.servers, s)
	}
	return pp
}

// run performs n round trips spread over the pairs and returns when every
// reply is back.
func (pp *pingPongSet) run(n int) error {
	pp.rounds = n
	for _, c := range pp.clients {
		if pp.rounds > 0 {
			c.start()
		}
	}
	deadline := time.Now().Add(5 * time.Minute)
	for pp.rounds > 0 || pp.anyInFlight() {
		if _, err := pp.d.Poll(100 * time.Millisecond); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return errors.New("ping-pong stalled")
		}
		for _, c := range pp.clients {
			if c.err != nil || c.ended {
				return fmt.Errorf("client failed: %v (ended %v)", c.err, c.ended)
			}
		}
	}
	return nil
}

func (pp *pingPongSet) anyInFlight() bool {
	for _, c := range pp.clients {
		if c.inFlight {
			return true
		}
	}
	return false
}

func (pp *pingPongSet) close() {
	for _, c := range pp.clients {
		_ = c.close()
	}
	for _, s := range pp.servers {
		_ = s.close()
	}
	for range 10 {
		_, _ = pp.d.Poll(time.Millisecond)
	}
}

// TestSteadyStateAllocs checks that request/response traffic through a
// driver allocates nothing once warm: Poll, Send, completions and
// buffer recycling included.
func TestSteadyStateAllocs(t *testing.T) {
	for _, drv := range drivers {
		t.Run(drv.name, func(t *testing.T) {
			onLoop(t, drv.new, func(d reactor.Driver) {
				pp := newPingPongSet(t, d, 512, 4)
				defer pp.close()
				if err := pp.run(200); err != nil {
					t.Error(err)
					return
				}
				var runErr error
				allocs := testing.AllocsPerRun(50, func() {
					if err := pp.run(8); err != nil && runErr == nil {
						runErr = err
					}
				})
				if runErr != nil {
					t.Error(runErr)
				}
				if allocs != 0 {
					t.Errorf("%.1f allocations per 8 round trips, want 0", allocs)
				}
			})
		})
	}
}
