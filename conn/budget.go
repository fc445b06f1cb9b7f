package conn

import (
	"errors"
	"fmt"
	"sync/atomic"
)

// ErrInputBudget is reported to OnClose when a connection's input buffer
// would take its InputBudget over the limit.
var ErrInputBudget = errors.New("conn: shared input budget exhausted")

// InputBudget bounds the input that a group of connections, on any loops,
// may hold in their buffers in total: a server uses it for connections it
// does not trust yet (a MySQL proxy's clients before they log in), whose
// per-connection bound times their number would still be too much memory.
//
// A connection attached with SetInputBudget is charged the capacity of its
// input buffer (the memory it holds, not the bytes in it) whenever that
// changes, and gives the charge back when it detaches or closes. A
// connection whose buffer would take the total over the limit is closed
// with ErrInputBudget; the others are not disturbed. Input a handler
// consumes as it arrives is never buffered and costs nothing.
//
// The counters are atomics, so connections of several loops may share one
// budget without touching each other's state; they change only when an
// attached connection's buffer grows, shrinks or goes away, never on the
// path of a connection that is not attached.
type InputBudget struct {
	limit int64
	used  atomic.Int64
	peak  atomic.Int64
}

// NewInputBudget returns a budget of limit bytes (at least 1).
func NewInputBudget(limit int64) *InputBudget {
	if limit < 1 {
		limit = 1
	}
	return &InputBudget{limit: limit}
}

// Limit returns the budget's size in bytes.
func (b *InputBudget) Limit() int64 { return b.limit }

// Used returns the bytes charged now.
func (b *InputBudget) Used() int64 { return b.used.Load() }

// TakePeak returns the largest charge seen since the previous call and
// starts a new measure from the current one.
func (b *InputBudget) TakePeak() int64 {
	return b.peak.Swap(b.used.Load())
}

func (b *InputBudget) charge(delta int64) (total int64) {
	total = b.used.Add(delta)
	if delta > 0 {
		for {
			p := b.peak.Load()
			if total <= p || b.peak.CompareAndSwap(p, total) {
				break
			}
		}
	}
	return total
}

// SetInputBudget attaches the connection to b, or detaches it when b is nil
// (giving back its charge). Loop goroutine only. What the connection
// already holds is charged at once, and it is closed with ErrInputBudget if
// that does not fit.
func (c *Conn) SetInputBudget(b *InputBudget) {
	if c.budget == b {
		return
	}
	c.releaseBudget()
	c.budget = b
	c.chargeInput()
}

// SetMaxInput changes the bound on unconsumed input (Options.MaxInput) of
// an open connection; n <= 0 restores the default. A server lowers it while
// a peer is untrusted and raises it afterwards. Input already held beyond a
// lowered bound closes the connection with ErrInputTooLarge at once, or,
// when called from OnData, once OnData has returned what it did not
// consume. Loop goroutine only.
func (c *Conn) SetMaxInput(n int) {
	c.opts.MaxInput = Options{MaxInput: n}.withDefaults().MaxInput
	if !c.inRecv {
		c.checkInput()
	}
}

// chargeInput brings the connection's charge to the capacity of its input
// buffer; called after the buffer may have changed.
func (c *Conn) chargeInput() {
	b := c.budget
	if b == nil {
		return
	}
	held := int64(0)
	if c.in != nil {
		held = int64(cap(c.in.B))
	}
	delta := held - c.charged
	if delta == 0 {
		return
	}
	c.charged = held
	if b.charge(delta) > b.limit && delta > 0 && c.state != stateClosed {
		c.fail(fmt.Errorf("conn %s: %w (%d bytes held, %d allowed in total)", c.peer, ErrInputBudget, held, b.limit))
	}
}

// releaseBudget gives the connection's charge back.
func (c *Conn) releaseBudget() {
	if c.budget != nil && c.charged != 0 {
		c.budget.charge(-c.charged)
	}
	c.charged = 0
}
