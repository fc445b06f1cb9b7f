package conn

import (
	"context"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scalestack/scalestack/buffer"
	"github.com/scalestack/scalestack/reactor"
)

// HandshakePoolConfig bounds the TLS handshakes of a process.
type HandshakePoolConfig struct {
	// Workers is how many handshakes may compute at once (default
	// GOMAXPROCS). A handshake gives its slot up whenever it waits for
	// the peer, so clients that stall cannot hold one.
	Workers int
	// MaxInFlight is how many handshakes may be under way at once, each
	// on its own goroutine, parked while it waits for the peer (default
	// 1024). This is the bound on the pool's goroutines.
	MaxInFlight int
	// Queue is how many more connections may wait for a goroutine
	// (default 16384). They read nothing while they wait. Beyond it a new
	// connection is closed at once with ErrTLSHandshakeBusy.
	Queue int
}

// Defaults for HandshakePoolConfig.
const (
	DefaultHandshakeMaxInFlight = 1024
	DefaultHandshakeQueue       = 16384
)

// HandshakePool runs TLS handshakes off the loops. It keeps no goroutine
// while idle: a goroutine is started for a handshake when fewer than
// MaxInFlight are running, and runs queued handshakes one after another
// until the queue is empty. It is safe for concurrent use.
type HandshakePool struct {
	cfg   HandshakePoolConfig
	slots workerSlots

	mu      sync.Mutex
	running int          // goroutines
	queue   []*handshake // FIFO from head; cancelled entries stay as tombstones
	head    int
	queued  int // live entries in queue

	Stats HandshakeStats
}

// HandshakeStats count what a pool did; read with atomic loads.
type HandshakeStats struct {
	Started   atomic.Int64 // handshakes a goroutine began
	Succeeded atomic.Int64
	Failed    atomic.Int64 // the handshake itself failed (the peer's doing, or its certificate)
	TimedOut  atomic.Int64 // closed by the loop at the handshake timeout
	Refused   atomic.Int64 // the queue was full
}

// NewHandshakePool makes a pool; zero fields take the defaults.
func NewHandshakePool(cfg HandshakePoolConfig) *HandshakePool {
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultHandshakeMaxInFlight
	}
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultHandshakeQueue
	}
	return &HandshakePool{cfg: cfg, slots: workerSlots{free: cfg.Workers}}
}

var (
	defaultPoolOnce sync.Once
	defaultPool     *HandshakePool
)

func defaultHandshakePool() *HandshakePool {
	defaultPoolOnce.Do(func() { defaultPool = NewHandshakePool(HandshakePoolConfig{}) })
	return defaultPool
}

// InFlight returns how many handshake goroutines are running and how many
// connections wait for one.
func (p *HandshakePool) InFlight() (running, queued int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running, p.queued
}

// submit hands h to a new goroutine when one may start (running true), or
// queues it; ok is false when the queue is full.
func (p *HandshakePool) submit(h *handshake) (running, ok bool) {
	p.mu.Lock()
	if p.running < p.cfg.MaxInFlight {
		p.running++
		p.mu.Unlock()
		go p.run(h, false)
		return true, true
	}
	if p.queued >= p.cfg.Queue {
		p.mu.Unlock()
		p.Stats.Refused.Add(1)
		return false, false
	}
	h.inQueue = true
	p.queue = append(p.queue, h)
	p.queued++
	p.mu.Unlock()
	return false, true
}

// next takes the oldest live queued handshake, or ends the goroutine's
// service (nil).
func (p *HandshakePool) next() *handshake {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.head < len(p.queue) {
		h := p.queue[p.head]
		p.queue[p.head] = nil
		p.head++
		if h.inQueue {
			h.inQueue = false
			p.queued--
			p.compact()
			return h
		}
	}
	p.queue, p.head = p.queue[:0], 0
	p.running--
	return nil
}

// unqueue drops a cancelled handshake that still waits; p.mu held.
func (p *HandshakePool) unqueue(h *handshake) {
	if h.inQueue {
		h.inQueue = false
		p.queued--
		p.compact()
	}
}

// compact drops tombstones once they outnumber live entries, so a flood
// of connections that give up while queued cannot grow the slice.
func (p *HandshakePool) compact() {
	if len(p.queue)-p.head <= 2*p.queued+64 {
		return
	}
	live := p.queue[:0]
	for _, h := range p.queue[p.head:] {
		if h != nil && h.inQueue {
			live = append(live, h)
		}
	}
	clear(p.queue[len(live):])
	p.queue, p.head = live, 0
}

func (p *HandshakePool) run(h *handshake, dequeued bool) {
	for h != nil {
		h.run(dequeued)
		h, dequeued = p.next(), true
	}
}

// workerSlots is a counting semaphore with two classes of waiters: a
// handshake resuming after its peer answered goes before one that has not
// started. With one queue, a storm would interleave every handshake's steps
// so that all of them finish late, together, past their deadlines; letting
// started ones finish first makes them complete in arrival order, and under
// overload only the latest arrivals time out.
type workerSlots struct {
	mu       sync.Mutex
	free     int
	resuming []chan struct{}
	starting []chan struct{}
}

func (w *workerSlots) acquire(resuming bool) {
	w.mu.Lock()
	if w.free > 0 {
		w.free--
		w.mu.Unlock()
		return
	}
	ch := make(chan struct{}, 1)
	if resuming {
		w.resuming = append(w.resuming, ch)
	} else {
		w.starting = append(w.starting, ch)
	}
	w.mu.Unlock()
	<-ch
}

func (w *workerSlots) release() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, q := range []*[]chan struct{}{&w.resuming, &w.starting} {
		if len(*q) > 0 {
			ch := (*q)[0]
			(*q)[0] = nil
			*q = (*q)[1:]
			ch <- struct{}{} // the slot passes straight to the waiter
			return
		}
	}
	w.free++
}

// handshakeInputCap is how much received handshake input may wait for the
// goroutine before the loop stops receiving (a ClientHello is a few hundred
// bytes; a client certificate chain a few KiB).
const handshakeInputCap = 32 << 10

// handshake is the pipe between a connection's loop, which owns the socket,
// and the goroutine running crypto/tls's blocking handshake over it.
type handshake struct {
	s        *tlsState
	loop     *reactor.Loop
	pool     *HandshakePool
	deadline time.Time

	inQueue bool // guarded by pool.mu

	mu     sync.Mutex
	in     []byte // received, not yet read by the handshake
	eof    bool   // the peer ended its stream
	closed bool   // the loop tore the connection down
	full   bool   // the loop stopped receiving: in reached handshakeInputCap
	wake   chan struct{}
}

func newHandshake(s *tlsState, pool *HandshakePool, deadline time.Time) *handshake {
	return &handshake{s: s, loop: s.c.loop, pool: pool, deadline: deadline, wake: make(chan struct{}, 1)}
}

func (h *handshake) signal() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// push (loop) adds received bytes; it reports whether the loop should stop
// receiving until the goroutine catches up.
func (h *handshake) push(b []byte) (full bool) {
	h.mu.Lock()
	h.in = append(h.in, b...)
	if len(h.in) >= handshakeInputCap {
		h.full = true
	}
	full = h.full
	h.mu.Unlock()
	h.signal()
	return full
}

// end (loop) records the peer's end of stream.
func (h *handshake) end() {
	h.mu.Lock()
	h.eof = true
	h.mu.Unlock()
	h.signal()
}

// cancel (loop) makes the goroutine's next read fail and drops the
// handshake from the queue if it still waits there.
func (h *handshake) cancel() {
	h.mu.Lock()
	h.closed = true
	h.in = nil
	h.mu.Unlock()
	h.signal()
	h.pool.mu.Lock()
	h.pool.unqueue(h)
	h.pool.mu.Unlock()
}

// takeRest (loop, after the goroutine finished) returns the input the
// handshake did not read.
func (h *handshake) takeRest() (rest []byte, eof bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	rest, eof = h.in, h.eof
	h.in = nil
	return rest, eof
}

// run performs the handshake on the pool's goroutine.
func (h *handshake) run(dequeued bool) {
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return
	}
	h.pool.Stats.Started.Add(1)
	if dequeued {
		// Receiving stayed off while the connection was queued.
		_ = h.loop.Submit(func(*reactor.Loop) { h.s.handshakeStarted() })
	}
	h.pool.slots.acquire(false)
	// No context: crypto/tls would watch it with an extra goroutine. The
	// deadline is enforced by read, and the loop's timer closes the pipe.
	err := h.s.tc.HandshakeContext(context.Background())
	h.pool.slots.release()
	h.mu.Lock()
	closed = h.closed
	h.mu.Unlock()
	if err != nil && !closed { // a closed pipe: the loop counted why
		h.pool.Stats.Failed.Add(1)
	} else if err == nil {
		h.pool.Stats.Succeeded.Add(1)
	}
	// Posted after every flight this goroutine wrote: Submit keeps order.
	_ = h.loop.Submit(func(*reactor.Loop) { h.s.handshakeDone(err) })
}

// read is the transport's Read during the handshake. It gives the worker
// slot up while it waits, so a peer that stalls costs a parked goroutine,
// not a worker.
func (h *handshake) read(p []byte) (int, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			return 0, net.ErrClosed
		}
		if len(h.in) > 0 {
			n := copy(p, h.in)
			rest := copy(h.in, h.in[n:])
			h.in = h.in[:rest]
			resume := h.full && rest < handshakeInputCap/2
			if resume {
				h.full = false
			}
			h.mu.Unlock()
			if resume {
				_ = h.loop.Submit(func(*reactor.Loop) { h.s.resumeHandshakeInput() })
			}
			return n, nil
		}
		if h.eof {
			h.mu.Unlock()
			return 0, io.EOF
		}
		h.mu.Unlock()

		// The loop's timer closes the pipe at the deadline; this later one
		// only frees the goroutine should that loop be stuck.
		wait := time.Until(h.deadline) + handshakeDeadlineSlack
		if wait <= 0 {
			return 0, errHandshakeDeadline
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		h.pool.slots.release()
		select {
		case <-h.wake:
			h.pool.slots.acquire(true)
		case <-timer.C:
			h.pool.slots.acquire(true)
			return 0, errHandshakeDeadline
		}
	}
}

const handshakeDeadlineSlack = time.Second

// errHandshakeDeadline ends a handshake whose deadline passed while it
// waited for the peer (the loop's timer normally closes it first).
var errHandshakeDeadline error = handshakeDeadline{}

type handshakeDeadline struct{}

func (handshakeDeadline) Error() string   { return ErrTLSHandshakeTimeout.Error() }
func (handshakeDeadline) Unwrap() error   { return ErrTLSHandshakeTimeout }
func (handshakeDeadline) Timeout() bool   { return true }
func (handshakeDeadline) Temporary() bool { return false }

// write is the transport's Write during the handshake: the flight goes to
// the loop, which owns the socket. It never blocks.
func (h *handshake) write(p []byte) (int, error) {
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return 0, net.ErrClosed
	}
	b := buffer.Append(buffer.Get(len(p)), p)
	if err := h.loop.Submit(func(*reactor.Loop) { h.s.handshakeOutput(b) }); err != nil {
		return 0, err
	}
	return len(p), nil
}
