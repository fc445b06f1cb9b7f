package reactor

import (
	"fmt"
	"sync/atomic"
)

// cacheLine separates fields written by different threads so the producer and
// consumer do not invalidate each other's cache lines on every operation.
type cacheLinePad [64]byte

// SPSC is a bounded lock-free queue for exactly one producer goroutine and
// exactly one consumer goroutine. The producer fills slots with Push and makes
// them visible with Publish, so a burst costs one atomic store; the consumer
// drains with Pop and returns the slots with Release. Each side keeps a cached
// copy of the other side's index and re-reads the shared one only when the
// cache says full or empty.
type SPSC[T any] struct {
	_    cacheLinePad
	head atomic.Uint64 // next slot the consumer will read; written by the consumer
	_    cacheLinePad
	tail atomic.Uint64 // one past the last published slot; written by the producer
	_    cacheLinePad

	// producer-owned
	pushTail   uint64
	cachedHead uint64
	_          cacheLinePad

	// consumer-owned
	popHead    uint64
	cachedTail uint64
	_          cacheLinePad

	mask  uint64
	slots []T
}

// NewSPSC returns a queue holding up to capacity items; capacity must be a
// power of two.
func NewSPSC[T any](capacity int) *SPSC[T] {
	if capacity <= 0 || capacity&(capacity-1) != 0 {
		panic(fmt.Sprintf("reactor: SPSC capacity %d is not a positive power of two", capacity))
	}
	return &SPSC[T]{mask: uint64(capacity - 1), slots: make([]T, capacity)}
}

// Push appends v without publishing it; it reports false when the queue is
// full. Producer only.
func (q *SPSC[T]) Push(v T) bool {
	if q.pushTail-q.cachedHead > q.mask {
		q.cachedHead = q.head.Load()
		if q.pushTail-q.cachedHead > q.mask {
			return false
		}
	}
	q.slots[q.pushTail&q.mask] = v
	q.pushTail++
	return true
}

// Publish makes every pushed item visible to the consumer and reports whether
// there was anything new. Producer only.
func (q *SPSC[T]) Publish() bool {
	if q.tail.Load() == q.pushTail {
		return false
	}
	q.tail.Store(q.pushTail)
	return true
}

// Pop removes the oldest published item. Consumer only; call Release after a
// batch of Pops so the producer can reuse the slots.
func (q *SPSC[T]) Pop() (T, bool) {
	var zero T
	if q.popHead == q.cachedTail {
		q.cachedTail = q.tail.Load()
		if q.popHead == q.cachedTail {
			return zero, false
		}
	}
	i := q.popHead & q.mask
	v := q.slots[i]
	q.slots[i] = zero // drop references so the garbage collector can free them
	q.popHead++
	return v, true
}

// Release hands the slots consumed by Pop back to the producer. Consumer only.
func (q *SPSC[T]) Release() {
	if q.head.Load() != q.popHead {
		q.head.Store(q.popHead)
	}
}

// Pending reports whether published items are waiting. Consumer only.
func (q *SPSC[T]) Pending() bool {
	return q.tail.Load() != q.popHead
}

// Cap returns the queue's capacity.
func (q *SPSC[T]) Cap() int { return int(q.mask + 1) }
