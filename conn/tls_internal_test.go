package conn

import (
	"testing"
	"time"
)

// TestWorkerSlotsPreferResumingHandshakes: a freed slot goes to a
// handshake resuming after its peer answered before one waiting to start,
// whatever order they asked in.
func TestWorkerSlotsPreferResumingHandshakes(t *testing.T) {
	w := workerSlots{free: 1}
	w.acquire(false) // the only slot is busy
	got := make(chan string, 2)
	waitFor := func(n int) {
		for deadline := time.Now().Add(5 * time.Second); ; {
			w.mu.Lock()
			queued := len(w.resuming) + len(w.starting)
			w.mu.Unlock()
			if queued == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d waiters queued, want %d", queued, n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	go func() { w.acquire(false); got <- "starting"; w.release() }()
	waitFor(1)
	go func() { w.acquire(true); got <- "resuming"; w.release() }()
	waitFor(2)
	w.release()
	if first, second := <-got, <-got; first != "resuming" || second != "starting" {
		t.Fatalf("slots went to %s then %s, want resuming then starting", first, second)
	}
	// The second waiter releases after it reported; wait for that.
	for deadline := time.Now().Add(5 * time.Second); ; {
		w.mu.Lock()
		free := w.free
		w.mu.Unlock()
		if free == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d slots free at the end, want 1", free)
		}
		time.Sleep(time.Millisecond)
	}
}
