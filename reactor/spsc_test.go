package reactor

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

func TestSPSCRejectsBadCapacity(t *testing.T) {
	checkLeaks(t)
	for _, capacity := range []int{-4, -1, 0, 3, 5, 6, 7, 12, 1000, 1023} {
		t.Run(fmt.Sprint(capacity), func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatalf("NewSPSC(%d) did not panic", capacity)
				}
			}()
			NewSPSC[int](capacity)
		})
	}
}

func TestSPSCFillAndDrain(t *testing.T) {
	checkLeaks(t)
	for _, capacity := range []int{1, 2, 4, 8} {
		t.Run(fmt.Sprint(capacity), func(t *testing.T) {
			q := NewSPSC[int](capacity)
			if q.Cap() != capacity {
				t.Fatalf("Cap() = %d, want %d", q.Cap(), capacity)
			}
			next, want := 0, 0
			// Several rounds so the indices wrap the ring a few times.
			for round := 0; round < 5; round++ {
				for i := 0; i < capacity; i++ {
					if !q.Push(next) {
						t.Fatalf("round %d: Push #%d refused below capacity", round, i)
					}
					next++
				}
				if q.Push(next) {
					t.Fatalf("round %d: Push accepted beyond capacity %d", round, capacity)
				}
				if !q.Publish() {
					t.Fatalf("round %d: Publish of new items reported nothing new", round)
				}
				if q.Publish() {
					t.Fatalf("round %d: second Publish reported new items", round)
				}
				if !q.Pending() {
					t.Fatalf("round %d: Pending false after Publish", round)
				}
				for i := 0; i < capacity; i++ {
					v, ok := q.Pop()
					if !ok || v != want {
						t.Fatalf("round %d: Pop = %d, %v; want %d, true", round, v, ok, want)
					}
					want++
				}
				if v, ok := q.Pop(); ok {
					t.Fatalf("round %d: Pop on empty queue returned %d", round, v)
				}
				if q.Pending() {
					t.Fatalf("round %d: Pending true on drained queue", round)
				}
				// Popped but unreleased slots still belong to the consumer.
				if q.Push(next) {
					t.Fatalf("round %d: Push reused slots before Release", round)
				}
				q.Release()
			}
		})
	}
}

func TestSPSCUnpublishedIsInvisible(t *testing.T) {
	checkLeaks(t)
	q := NewSPSC[string](4)
	q.Push("a")
	if q.Pending() {
		t.Fatal("Pending true before Publish")
	}
	if v, ok := q.Pop(); ok {
		t.Fatalf("Pop returned unpublished %q", v)
	}
	q.Publish()
	q.Push("b")
	if v, ok := q.Pop(); !ok || v != "a" {
		t.Fatalf("Pop = %q, %v; want \"a\", true", v, ok)
	}
	if v, ok := q.Pop(); ok {
		t.Fatalf("Pop returned unpublished %q", v)
	}
	q.Publish()
	if v, ok := q.Pop(); !ok || v != "b" {
		t.Fatalf("Pop = %q, %v; want \"b\", true", v, ok)
	}
}

func TestSPSCReleaseRefillsPartially(t *testing.T) {
	checkLeaks(t)
	q := NewSPSC[int](4)
	for i := 0; i < 4; i++ {
		q.Push(i)
	}
	q.Publish()
	q.Pop()
	q.Pop()
	if q.Push(4) {
		t.Fatal("Push succeeded before Release")
	}
	q.Release()
	for i := 4; i < 6; i++ {
		if !q.Push(i) {
			t.Fatalf("Push(%d) refused after two slots were released", i)
		}
	}
	if q.Push(6) {
		t.Fatal("Push succeeded beyond the two released slots")
	}
	q.Publish()
	for want := 2; want < 6; want++ {
		if v, ok := q.Pop(); !ok || v != want {
			t.Fatalf("Pop = %d, %v; want %d, true", v, ok, want)
		}
	}
}

func TestSPSCPopDropsReferences(t *testing.T) {
	checkLeaks(t)
	q := NewSPSC[*int](2)
	q.Push(new(int))
	q.Publish()
	q.Pop()
	for i, p := range q.slots {
		if p != nil {
			t.Fatalf("slot %d still references a popped item", i)
		}
	}
}

// TestSPSCConcurrent streams sequence numbers through the queue with the
// producer publishing random-sized batches and the consumer releasing at
// random points, and checks FIFO order with no loss or duplication across
// many wrap-arounds.
func TestSPSCConcurrent(t *testing.T) {
	checkLeaks(t)
	// Tiny queues hand over nearly item by item, so fewer items already
	// wrap them tens of thousands of times.
	for _, tc := range []struct {
		capacity int
		items    uint64
	}{{2, 100_000}, {4, 100_000}, {256, 200_000}} {
		for _, procs := range []int{1, 2, 4} {
			t.Run(fmt.Sprintf("cap=%d/procs=%d", tc.capacity, procs), func(t *testing.T) {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
				runSPSCStream(t, tc.capacity, tc.items)
			})
		}
	}
}

func runSPSCStream(t *testing.T, capacity int, items uint64) {
	q := NewSPSC[uint64](capacity)
	done := make(chan struct{})
	go func() {
		defer close(done)
		rng := rand.New(rand.NewPCG(1, uint64(capacity)))
		next := uint64(0)
		var full backoff
		for next < items {
			batch := 1 + rng.IntN(2*capacity)
			pushed := 0
			for ; batch > 0 && next < items; batch-- {
				if !q.Push(next) {
					break
				}
				next++
				pushed++
			}
			q.Publish()
			if pushed == 0 {
				full.wait()
			} else {
				full.reset()
				if rng.IntN(8) == 0 {
					runtime.Gosched()
				}
			}
		}
	}()
	rng := rand.New(rand.NewPCG(2, uint64(capacity)))
	want := uint64(0)
	var empty backoff
	for want < items {
		v, ok := q.Pop()
		if !ok {
			q.Release() // a consumer that holds slots while idle would deadlock the producer
			empty.wait()
			continue
		}
		empty.reset()
		if v != want {
			t.Fatalf("popped %d, want %d (lost or reordered)", v, want)
		}
		want++
		if rng.IntN(3) == 0 {
			q.Release()
		}
	}
	<-done
	q.Release()
	if v, ok := q.Pop(); ok {
		t.Fatalf("popped %d after the last item (duplicate)", v)
	}
}

// backoff yields while the other side is likely running and sleeps once it
// is likely descheduled, so that a busy machine does not turn a spin into
// whole time slices wasted.
type backoff int

func (b *backoff) wait() {
	*b++
	if *b < 64 {
		runtime.Gosched()
		return
	}
	time.Sleep(20 * time.Microsecond)
}

func (b *backoff) reset() { *b = 0 }

func BenchmarkSPSC(b *testing.B) {
	for _, batch := range []int{1, 16} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			q := NewSPSC[Task](1024)
			done := make(chan struct{})
			n := b.N
			b.ResetTimer()
			go func() {
				defer close(done)
				for i := 0; i < n; {
					pushed := 0
					for pushed < batch && i < n && q.Push(Task{N: uint64(i)}) {
						pushed++
						i++
					}
					q.Publish()
					if pushed == 0 {
						runtime.Gosched()
					}
				}
			}()
			for got := 0; got < n; {
				if _, ok := q.Pop(); ok {
					got++
					if got%batch == 0 {
						q.Release()
					}
					continue
				}
				q.Release()
				runtime.Gosched()
			}
			<-done
		})
	}
}
