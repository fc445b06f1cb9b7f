package mysqlproxy

import (
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// DefaultLoginInputBudget is Config.LoginInputBudget's default: 16 MiB, room
// for 128 clients each holding an incomplete 64 KiB login packet (in a
// 128 KiB buffer) at the same time. Real clients send their handshake in
// one piece, which is consumed as it arrives and costs nothing here.
const DefaultLoginInputBudget = 16 << 20

// memoryReturnInterval is the least time between two returns of memory to
// the operating system after login storms.
const memoryReturnInterval = 5 * time.Second

// memoryReturn gives the memory of a storm of clients that never logged in
// back to the operating system once they are gone.
//
// Their input buffers go back to the buffer pools (sync.Pool), which keep
// them until two garbage collections have passed, and the Go runtime
// collects only when the program allocates: an idle proxy after a storm
// would hold tens of megabytes for minutes, and then return them to the
// operating system only slowly. So when the login budget, after having
// been at least a quarter full, is back under a sixteenth, a goroutine
// (never a loop: a collection stops the world briefly, and FreeOSMemory
// waits for it) runs one collection to move the pooled buffers to the
// pools' victim caches and debug.FreeOSMemory to free them and return the
// pages; at most once per memoryReturnInterval.
type memoryReturn struct {
	pending atomic.Bool
	last    atomic.Int64 // UnixNano of the last return
}

// loginInputReleased runs on a loop when a client that had not logged in
// leaves the login budget (logged in or gone). Not on the per-packet
// path: once per login.
func (p *Proxy) loginInputReleased() {
	b := p.loginInput
	if b.Used() > b.Limit()/16 {
		return
	}
	if b.TakePeak() < b.Limit()/4 {
		return
	}
	if !p.memReturn.pending.CompareAndSwap(false, true) {
		return
	}
	go p.returnMemory()
}

func (p *Proxy) returnMemory() {
	defer p.memReturn.pending.Store(false)
	if wait := time.Until(time.Unix(0, p.memReturn.last.Load()).Add(memoryReturnInterval)); wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-p.closed:
			return
		}
	}
	runtime.GC()
	debug.FreeOSMemory()
	p.memReturn.last.Store(time.Now().UnixNano())
}
