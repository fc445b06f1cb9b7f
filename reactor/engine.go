package reactor

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// Config describes an engine.
type Config struct {
	// Loops is the number of reactors; zero means one per CPU the process
	// may run on.
	Loops int
	// CPUs, when set, pins loop i to CPUs[i % len(CPUs)].
	CPUs []int
	// NewDriver builds each loop's driver; nil means epoll.
	NewDriver NewDriverFunc
	// QueueCapacity is the size of each cross-loop queue (a power of two);
	// zero means 1024.
	QueueCapacity int
	// OnError receives errors loops cannot return to anyone (a failed
	// epoll_wait, say); nil discards them.
	OnError func(error)
}

func (c *Config) driverName() string {
	if c.NewDriver == nil {
		return "epoll"
	}
	return "configured"
}

// Engine owns a fixed set of loops.
type Engine struct {
	cfg      Config
	loops    []*Loop
	quiesced sync.WaitGroup
	stopOnce sync.Once
	started  bool
}

// AvailableCPUs returns the CPUs in the process's affinity mask.
func AvailableCPUs() []int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return []int{0}
	}
	var cpus []int
	for i := 0; i < len(set)*64; i++ {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	return cpus
}

// New creates the engine's loops and their mailboxes; Start runs them.
func New(cfg Config) (*Engine, error) {
	if cfg.Loops <= 0 {
		cfg.Loops = len(AvailableCPUs())
	}
	if cfg.NewDriver == nil {
		cfg.NewDriver = NewEpoll
	}
	if cfg.QueueCapacity == 0 {
		cfg.QueueCapacity = 1024
	}
	if cfg.QueueCapacity < 0 || cfg.QueueCapacity&(cfg.QueueCapacity-1) != 0 {
		return nil, fmt.Errorf("reactor: queue capacity %d is not a power of two", cfg.QueueCapacity)
	}
	for _, c := range cfg.CPUs {
		if c < 0 || c >= len(unix.CPUSet{})*64 {
			return nil, fmt.Errorf("reactor: cpu %d out of range", c)
		}
	}
	e := &Engine{cfg: cfg}
	n := cfg.Loops
	for i := 0; i < n; i++ {
		cpu := -1
		if len(cfg.CPUs) > 0 {
			cpu = cfg.CPUs[i%len(cfg.CPUs)]
		}
		e.loops = append(e.loops, &Loop{
			id: i, cpu: cpu, eng: e,
			inbox:    make([]*SPSC[Task], n),
			outbox:   make([]*SPSC[Task], n),
			overflow: make([][]Task, n),
			finished: make(chan struct{}),
		})
	}
	for src := 0; src < n; src++ {
		for dst := 0; dst < n; dst++ {
			if src == dst {
				continue
			}
			q := NewSPSC[Task](cfg.QueueCapacity)
			e.loops[src].outbox[dst] = q
			e.loops[dst].inbox[src] = q
		}
	}
	return e, nil
}

// Start runs every loop and returns once each has its driver ready, or the
// first error (after stopping the loops that did start).
func (e *Engine) Start() error {
	if e.started {
		return errors.New("reactor: engine already started")
	}
	e.started = true
	e.quiesced.Add(len(e.loops))
	ready := make(chan error, len(e.loops))
	for _, l := range e.loops {
		go l.run(ready)
	}
	var first error
	failed := 0
	for range e.loops {
		if err := <-ready; err != nil {
			failed++
			if first == nil {
				first = err
			}
		}
	}
	if first != nil {
		// Loops that failed never reach the barrier; count them out so the
		// others can finish.
		for i := 0; i < failed; i++ {
			e.quiesced.Done()
		}
		e.Stop()
		return first
	}
	return nil
}

// Loops returns the engine's loops.
func (e *Engine) Loops() []*Loop { return e.loops }

// Loop returns loop i.
func (e *Engine) Loop(i int) *Loop { return e.loops[i] }

// Stop asks every loop to close what it tracks and exit, and waits for them.
// It must not be called from a loop goroutine.
func (e *Engine) Stop() {
	if !e.started {
		return
	}
	e.stopOnce.Do(func() {
		for _, l := range e.loops {
			l.stopReq.Store(true)
			l.ctlMu.Lock()
			l.wake()
			l.ctlMu.Unlock()
		}
	})
	for _, l := range e.loops {
		<-l.finished
	}
}

func (e *Engine) reportError(err error) {
	if e.cfg.OnError != nil {
		e.cfg.OnError(err)
	}
}
