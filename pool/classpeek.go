package pool

import "time"

// ClassPeeker is what a Scheduler may add to let a freed backend go to a
// waiter of its own class instead of the one Peek names, sparing the
// protocol a conversion (MySQL: a COM_CHANGE_USER and the replay after
// it) when several classes share the N backends under saturation. The
// scheduler decides how far it lets the order bend; a scheduler without
// it serves Peek's waiter whatever its class.
type ClassPeeker interface {
	// PeekClass returns a queued waiter of class c that may be served
	// before Peek's waiter, or nil.
	PeekClass(c Class) *Waiter
}

// Bounds of the FIFO's bending: a waiter of the freed backend's class
// goes first only if it is among the first classPeekDepth waiters and the
// head has waited less than classPeekMaxWait, so the head waits at most
// that much longer than in plain arrival order (a backend frees up every
// few hundred microseconds under saturation), and a class whose backends
// are all busy elsewhere cannot be starved.
const (
	classPeekDepth   = 16
	classPeekMaxWait = 5 * time.Millisecond
)

// PeekClass implements ClassPeeker for the FIFO scheduler.
func (q *fifo) PeekClass(c Class) *Waiter {
	h := q.head
	if h == nil || monoNow()-h.queuedAt >= int64(classPeekMaxWait) {
		return nil
	}
	w := h
	for i := 0; w != nil && i < classPeekDepth; i++ {
		if w.Class == c {
			return w
		}
		w = w.next
	}
	return nil
}
