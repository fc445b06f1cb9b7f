package pool

import (
	"time"

	"github.com/scalestack/scalestack/reactor"
)

// Waiter is one request for a backend: a client, the class of backend it
// needs, and (while queued) its deadline. A client embeds one and reuses
// it for every request, so waiting allocates nothing; it is kept small
// because an idle client carries it too. Only the LoopPool and its
// Scheduler write its unexported fields.
type Waiter struct {
	// Client receives the backend (or the refusal).
	Client Client
	// Class is the class of backend the request needs.
	Class Class
	// Tenant is the group the client belongs to (nil: none, served
	// before any tenant); it must not change while the waiter is queued.
	Tenant *Tenant
	// Timer is the waiter's deadline while it is queued (the pool sets
	// its Func and Arg then). While the waiter is not queued the client
	// may use it for its own purposes, setting Func and Arg each time
	// (a MySQL session times its login with it): a client needs one timer
	// less.
	Timer reactor.Timer

	lp       *LoopPool // set while queued
	queuedAt int64     // monoNow when it was queued
	// prev and next link the waiter into the FIFO scheduler's list.
	prev, next *Waiter
}

// Queued reports whether the waiter is in a wait queue.
func (w *Waiter) Queued() bool { return w.lp != nil }

// Deadline is when a queued waiter is refused with ErrQueueTimeout, as
// the queue timeout now stands (its tenant's, else the pool's); the
// waiter's timer was armed with the one in effect when it was queued.
// (Not stored: every idle client carries a Waiter.)
func (w *Waiter) Deadline() time.Time {
	if w.lp == nil {
		return time.Time{}
	}
	return epoch.Add(time.Duration(w.queuedAt) + w.lp.queueTimeout(w.Tenant))
}

// epoch is the origin of monoNow.
var epoch = time.Now()

// monoNow is the monotonic time since epoch, in nanoseconds: 8 bytes to
// keep where a time.Time takes 24.
func monoNow() int64 { return int64(time.Since(epoch)) }

// Scheduler orders the waiters of one loop: which gets the next backend
// that frees up. The LoopPool keeps the count, the deadlines and their
// timers; a scheduler only orders. It runs on its loop only.
//
// NewFIFO serves waiters in arrival order; NewFair is weighted fair
// queueing between tenants (Waiter.Tenant, see tenant.go).
type Scheduler interface {
	// Push adds a waiter.
	Push(w *Waiter)
	// Peek returns the waiter that should be served next, or nil: none
	// waits, or none may be served now (its tenant holds its
	// max-backends).
	Peek() *Waiter
	// Any returns a waiter, served or not, or nil when none waits (to
	// refuse them all).
	Any() *Waiter
	// Remove takes w out (served, timed out or gone).
	Remove(w *Waiter)
}

// fifo serves waiters in arrival order through the links in Waiter.
type fifo struct {
	head, tail *Waiter
}

// NewFIFO returns the first-come, first-served scheduler (the default).
func NewFIFO() Scheduler { return &fifo{} }

func (q *fifo) Push(w *Waiter) {
	w.prev, w.next = q.tail, nil
	if q.tail != nil {
		q.tail.next = w
	} else {
		q.head = w
	}
	q.tail = w
}

func (q *fifo) Peek() *Waiter { return q.head }

func (q *fifo) Any() *Waiter { return q.head }

func (q *fifo) Remove(w *Waiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		q.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		q.tail = w.prev
	}
	w.prev, w.next = nil, nil
}

// ClassFinder is what a Scheduler may add so that a freed backend goes to
// a waiter of its class rather than being converted for the next waiter
// (see LoopPool's hand-offs): FirstOfClass returns the first waiter of
// class c among the next limit the scheduler would serve, or nil.
type ClassFinder interface {
	FirstOfClass(c Class, limit int) *Waiter
}

func (q *fifo) FirstOfClass(c Class, limit int) *Waiter {
	for w := q.head; w != nil && limit > 0; w, limit = w.next, limit-1 {
		if w.Class == c {
			return w
		}
	}
	return nil
}
