// Package buffer pools the byte buffers that connections read into and write
// from, in power-of-four size classes, so that a busy engine recycles memory
// instead of allocating per packet and an idle connection holds none.
//
// Ownership is explicit: Get hands out a *Buf owned by the caller; the owner
// may pass it on (for example through a reactor mailbox to another loop),
// and exactly one owner eventually calls Release, after which nobody may
// touch it. Releasing twice panics. With Debug set (tests do), released
// memory is poisoned and checked when it is handed out again, so a write
// after Release panics at the next Get of that buffer.
//
// The pools are safe for concurrent use (sync.Pool keeps per-P caches, so the
// common path takes no lock). This package must never import anything beyond
// the standard library, and Get/Release must not allocate in steady state.
package buffer

import (
	"fmt"
	"sync"
)

// Size classes: 512 B, 2 KiB, 8 KiB, 32 KiB, 128 KiB, 512 KiB, 2 MiB,
// 8 MiB, 32 MiB. Requests above the largest class are allocated exactly and
// dropped on Release.
const (
	minClassShift = 9
	classStep     = 2 // each class is 4x the previous
	numClasses    = 9
)

// MaxPooled is the largest capacity kept in a pool.
const MaxPooled = 1 << (minClassShift + classStep*(numClasses-1))

// Debug enables poisoning of released buffers. Set it before any Get; tests
// turn it on, production leaves it off.
var Debug bool

const poison = 0xDB

type state uint8

const (
	stateFree state = iota
	stateOwned
)

// Buf is a pooled byte slice. B's length is the data in use and its capacity
// the class size; append within cap(B) never reallocates.
type Buf struct {
	B        []byte
	class    int8 // -1 when not pooled
	state    state
	poisoned bool // released with Debug on, so Get can check the poison
}

var pools [numClasses]sync.Pool

func classFor(n int) int {
	for c := 0; c < numClasses; c++ {
		if n <= 1<<(minClassShift+classStep*c) {
			return c
		}
	}
	return -1
}

// Get returns an empty buffer with capacity at least n.
func Get(n int) *Buf {
	c := classFor(n)
	if c < 0 {
		return &Buf{B: make([]byte, 0, n), class: -1, state: stateOwned}
	}
	if v := pools[c].Get(); v != nil {
		b := v.(*Buf)
		if b.state != stateFree {
			panic("buffer: pooled buffer is not free")
		}
		if b.poisoned {
			checkPoison(b)
			b.poisoned = false
		}
		b.state = stateOwned
		b.B = b.B[:0]
		return b
	}
	return &Buf{B: make([]byte, 0, 1<<(minClassShift+classStep*c)), class: int8(c), state: stateOwned}
}

// Release returns b to its pool. b must not be used afterwards.
func (b *Buf) Release() {
	if b.state != stateOwned {
		panic("buffer: Release of a buffer that is not owned (double release?)")
	}
	b.state = stateFree
	if b.class < 0 {
		b.B = nil
		return
	}
	if Debug {
		full := b.B[:cap(b.B)]
		for i := range full {
			full[i] = poison
		}
		b.poisoned = true
	}
	b.B = b.B[:0]
	pools[b.class].Put(b)
}

func checkPoison(b *Buf) {
	full := b.B[:cap(b.B)]
	for i, v := range full {
		if v != poison {
			panic(fmt.Sprintf("buffer: byte %d of a %d-byte buffer was written after Release", i, cap(full)))
		}
	}
}

// Grow returns a buffer holding b's data with room for n more bytes: b itself
// when it has the room, otherwise a larger buffer, releasing b.
func Grow(b *Buf, n int) *Buf {
	if b == nil {
		return Get(n)
	}
	if cap(b.B)-len(b.B) >= n {
		return b
	}
	nb := Get(len(b.B) + n)
	nb.B = append(nb.B, b.B...)
	b.Release()
	return nb
}

// Append appends p to b, growing it as needed, and returns the buffer that
// now holds the data (b may have been released).
func Append(b *Buf, p []byte) *Buf {
	b = Grow(b, len(p))
	b.B = append(b.B, p...)
	return b
}
