package reactor

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// startEngine starts an engine and stops it when the test ends.
func startEngine(t *testing.T, cfg Config) *Engine {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := e.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { stopWithin(t, e, 5*time.Second) })
	return e
}

// stopWithin fails the test if Stop takes longer than limit.
func stopWithin(t *testing.T, e *Engine, limit time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() { e.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(limit):
		t.Fatalf("Stop did not return within %v", limit)
	}
}

// loopThreads returns the OS thread id of every loop; a loop goroutine is
// locked to its thread, so the id identifies the loop from inside a call.
func loopThreads(t *testing.T, e *Engine) []int {
	t.Helper()
	tids := make([]int, len(e.Loops()))
	for i, l := range e.Loops() {
		if err := l.Exec(func(*Loop) { tids[i] = unix.Gettid() }); err != nil {
			t.Fatalf("Exec on loop %d: %v", i, err)
		}
	}
	return tids
}

func TestEngineStartStop(t *testing.T) {
	checkLeaks(t)
	for loops := 1; loops <= 4; loops++ {
		t.Run(fmt.Sprint(loops), func(t *testing.T) {
			e := startEngine(t, Config{Loops: loops})
			if got := len(e.Loops()); got != loops {
				t.Fatalf("%d loops, want %d", got, loops)
			}
			tids := loopThreads(t, e)
			seen := map[int]int{}
			for i, tid := range tids {
				if prev, dup := seen[tid]; dup {
					t.Errorf("loops %d and %d share thread %d", prev, i, tid)
				}
				seen[tid] = i
				l := e.Loop(i)
				var id int
				var drv string
				if err := l.Exec(func(l *Loop) { id, drv = l.ID(), l.Driver().Name() }); err != nil {
					t.Fatal(err)
				}
				if id != i || l.ID() != i {
					t.Errorf("loop %d reports ID %d inside, %d outside", i, id, l.ID())
				}
				if drv != "epoll" {
					t.Errorf("loop %d driver %q, want epoll", i, drv)
				}
				if l.Engine() != e || l.CPU() != -1 {
					t.Errorf("loop %d: Engine()=%p CPU()=%d", i, l.Engine(), l.CPU())
				}
			}
			stopWithin(t, e, 5*time.Second)
			for i, l := range e.Loops() {
				if err := l.Submit(func(*Loop) {}); !errors.Is(err, ErrStopped) {
					t.Errorf("Submit to stopped loop %d: %v, want ErrStopped", i, err)
				}
				if err := l.Exec(func(*Loop) {}); !errors.Is(err, ErrStopped) {
					t.Errorf("Exec on stopped loop %d: %v, want ErrStopped", i, err)
				}
			}
			if err := e.Start(); err == nil {
				t.Error("second Start succeeded")
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	checkLeaks(t)
	for _, cfg := range []Config{
		{Loops: 1, QueueCapacity: 3},
		{Loops: 1, QueueCapacity: -2},
		{Loops: 1, CPUs: []int{-1}},
		{Loops: 1, CPUs: []int{1 << 20}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

func TestStopWithoutStart(t *testing.T) {
	checkLeaks(t)
	e, err := New(Config{Loops: 2})
	if err != nil {
		t.Fatal(err)
	}
	stopWithin(t, e, time.Second)
}

// TestSubmitRunsOnLoop submits from several goroutines at once and checks
// that every function runs on its loop's thread, once, with no two calls
// on one loop overlapping.
func TestSubmitRunsOnLoop(t *testing.T) {
	checkLeaks(t)
	const loops, submitters, perSubmitter = 3, 4, 500
	e := startEngine(t, Config{Loops: loops})
	tids := loopThreads(t, e)
	type loopState struct {
		inside atomic.Int32
		runs   int // touched only on the loop: the race detector checks that
	}
	states := make([]loopState, loops)
	var wrongThread, overlapped atomic.Int32
	var wg sync.WaitGroup
	for s := 0; s < submitters; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < perSubmitter; k++ {
				i := (s + k) % loops
				err := e.Loop(i).Submit(func(l *Loop) {
					st := &states[l.ID()]
					if st.inside.Add(1) != 1 {
						overlapped.Add(1)
					}
					if unix.Gettid() != tids[i] || l.ID() != i {
						wrongThread.Add(1)
					}
					st.runs++
					st.inside.Add(-1)
				})
				if err != nil {
					t.Errorf("Submit: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	total := 0
	for i := range states {
		var runs int
		if err := e.Loop(i).Exec(func(*Loop) { runs = states[i].runs }); err != nil {
			t.Fatal(err)
		}
		total += runs
	}
	if total != submitters*perSubmitter {
		t.Errorf("%d functions ran, want %d", total, submitters*perSubmitter)
	}
	if n := wrongThread.Load(); n > 0 {
		t.Errorf("%d functions ran on the wrong loop thread", n)
	}
	if n := overlapped.Load(); n > 0 {
		t.Errorf("%d functions overlapped another on the same loop", n)
	}
}

// pairReceiver checks, on its loop, that the tasks from each source arrive
// in order, each once.
type pairReceiver struct {
	next     []uint64 // next expected sequence number per source; loop only
	errs     []string // loop only
	received atomic.Uint64
}

const seqBits = 32

func receiveInOrder(l *Loop, arg any, n uint64) {
	r := arg.(*pairReceiver)
	src, seq := n>>seqBits, n&(1<<seqBits-1)
	if seq != r.next[src] && len(r.errs) < 10 {
		r.errs = append(r.errs, fmt.Sprintf("loop %d got #%d from loop %d, want #%d", l.ID(), seq, src, r.next[src]))
	}
	r.next[src] = seq + 1
	r.received.Add(1)
}

// TestPostEveryPair has every loop post bursts to every loop, itself
// included, and checks per-pair FIFO delivery with no loss or duplication,
// with roomy queues and with queues so small that nearly every post
// overflows.
func TestPostEveryPair(t *testing.T) {
	checkLeaks(t)
	tests := []struct {
		loops, capacity, bursts, burst int
	}{
		{2, 1024, 5, 1000},
		{4, 1024, 3, 1000},
		{2, 2, 2, 2000},
		{4, 2, 2, 2000},
		{3, 4, 10, 300},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("loops=%d/cap=%d/%dx%d", tc.loops, tc.capacity, tc.bursts, tc.burst), func(t *testing.T) {
			e := startEngine(t, Config{Loops: tc.loops, QueueCapacity: tc.capacity})
			receivers := make([]*pairReceiver, tc.loops)
			for i := range receivers {
				receivers[i] = &pairReceiver{next: make([]uint64, tc.loops)}
			}
			start := time.Now()
			for b := 0; b < tc.bursts; b++ {
				for src := 0; src < tc.loops; src++ {
					err := e.Loop(src).Submit(func(l *Loop) {
						for dst, r := range receivers {
							for k := 0; k < tc.burst; k++ {
								seq := uint64(b*tc.burst + k)
								l.Post(e.Loop(dst), Task{Fn: receiveInOrder, Arg: r, N: uint64(src)<<seqBits | seq})
							}
						}
					})
					if err != nil {
						t.Fatal(err)
					}
				}
			}
			want := uint64(tc.loops * tc.bursts * tc.burst)
			deadline := time.Now().Add(20 * time.Second)
			for i, r := range receivers {
				for r.received.Load() < want && time.Now().Before(deadline) {
					time.Sleep(time.Millisecond)
				}
				if got := r.received.Load(); got != want {
					t.Fatalf("loop %d received %d tasks, want %d", i, got, want)
				}
			}
			t.Logf("delivered %d tasks in %v", want*uint64(tc.loops), time.Since(start))
			// Give stragglers (duplicates) a moment to show up, then read
			// each receiver's state on its own loop.
			time.Sleep(20 * time.Millisecond)
			for i, r := range receivers {
				var errs []string
				var next []uint64
				if err := e.Loop(i).Exec(func(*Loop) {
					errs = append(errs, r.errs...)
					next = append(next, r.next...)
				}); err != nil {
					t.Fatal(err)
				}
				for _, msg := range errs {
					t.Error(msg)
				}
				for src, n := range next {
					if n != uint64(tc.bursts*tc.burst) {
						t.Errorf("loop %d: last task from loop %d was #%d, want #%d", i, src, n-1, tc.bursts*tc.burst-1)
					}
				}
				if got := r.received.Load(); got != want {
					t.Errorf("loop %d received %d tasks, want %d (duplicates)", i, got, want)
				}
			}
		})
	}
}

// wakeProbe is a task argument that records when the task ran.
type wakeProbe struct{ ran chan time.Time }

func recordRun(_ *Loop, arg any, _ uint64) {
	select {
	case arg.(*wakeProbe).ran <- time.Now():
	default: // the test reads every probe; a full channel would be its bug
	}
}

// TestIdleLoopWakes hands work to idle loops, from outside through Submit
// and from another loop through Post, after random pauses so that the
// hand-off lands at every point of the sleep protocol, and requires every
// item to run promptly.
func TestIdleLoopWakes(t *testing.T) {
	checkLeaks(t)
	const rounds = 400
	const limit = 200 * time.Millisecond
	e := startEngine(t, Config{Loops: 2})
	probe := &wakeProbe{ran: make(chan time.Time, 1)}
	rng := rand.New(rand.NewPCG(7, 7))
	var worst time.Duration
	for i := 0; i < rounds; i++ {
		switch rng.IntN(4) {
		case 0: // back to back: the loop is likely still awake
		case 1:
			time.Sleep(time.Duration(rng.IntN(50)) * time.Microsecond)
		case 2:
			time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
		case 3:
			for spin := rng.IntN(20000); spin > 0; spin-- { // stays on-CPU, unlike Sleep
			}
		}
		sent := time.Now()
		var err error
		if i%2 == 0 {
			err = e.Loop(1).Submit(func(l *Loop) { recordRun(l, probe, 0) })
		} else {
			// Loop 0 is woken by Submit, then must wake loop 1 via Post.
			err = e.Loop(0).Submit(func(l *Loop) { l.Post(e.Loop(1), Task{Fn: recordRun, Arg: probe}) })
		}
		if err != nil {
			t.Fatal(err)
		}
		select {
		case ran := <-probe.ran:
			if d := ran.Sub(sent); d > worst {
				worst = d
			}
		case <-time.After(limit):
			t.Fatalf("round %d: an item handed to an idle loop did not run within %v", i, limit)
		}
	}
	t.Logf("worst hand-off latency %v over %d rounds", worst, rounds)
}

// TestIdleLoopSleeps checks that a loop with nothing to do blocks instead
// of spinning.
func TestIdleLoopSleeps(t *testing.T) {
	checkLeaks(t)
	e := startEngine(t, Config{Loops: 2})
	loopThreads(t, e) // one round trip so both loops are past start-up
	time.Sleep(20 * time.Millisecond)
	before := []uint64{e.Loop(0).Stats.Iterations.Load(), e.Loop(1).Stats.Iterations.Load()}
	time.Sleep(100 * time.Millisecond)
	for i, b := range before {
		if d := e.Loop(i).Stats.Iterations.Load() - b; d > 2 {
			t.Errorf("idle loop %d ran %d iterations in 100ms", i, d)
		}
	}
}

func TestTimersFireOnLoop(t *testing.T) {
	checkLeaks(t)
	e := startEngine(t, Config{Loops: 2})
	tids := loopThreads(t, e)
	type result struct {
		tid int
		at  time.Time
	}
	fired := make(chan result, 16)
	fire := func(any) {
		select {
		case fired <- result{unix.Gettid(), time.Now()}:
		default:
		}
	}
	delays := []time.Duration{0, 5 * time.Millisecond, 30 * time.Millisecond, 120 * time.Millisecond}
	for i, d := range delays {
		l := e.Loop(i % 2)
		tm := &Timer{Func: fire}
		var armedAt time.Time
		if err := l.Exec(func(l *Loop) { l.Schedule(tm, d); armedAt = time.Now() }); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-fired:
			if r.tid != tids[i%2] {
				t.Errorf("timer armed on loop %d fired on thread %d, want %d", i%2, r.tid, tids[i%2])
			}
			// armedAt is taken after Schedule, so a slack of one tick covers
			// the loop's cached clock lagging behind it. The upper bound is
			// loose: precision is the fake-clock tests' business, this one
			// checks that the loop sleeps no longer than its timers allow.
			if got := r.at.Sub(armedAt); got < d-TimerTick || got > d+500*time.Millisecond {
				t.Errorf("timer for %v fired after %v", d, got)
			}
		case <-time.After(d + time.Second):
			t.Fatalf("timer for %v did not fire", d)
		}
	}

	// A cancelled timer stays quiet.
	tm := &Timer{Func: fire}
	if err := e.Loop(0).Exec(func(l *Loop) {
		l.Schedule(tm, 20*time.Millisecond)
		l.Cancel(tm)
		l.Cancel(tm)
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-fired:
		t.Error("cancelled timer fired")
	case <-time.After(60 * time.Millisecond):
	}
}

// relay is a task that keeps itself alive by hopping to the next loop.
func relay(l *Loop, arg any, n uint64) {
	loops := l.Engine().Loops()
	l.Post(loops[(l.ID()+1)%len(loops)], Task{Fn: relay, Arg: arg, N: n + 1})
}

type rearming struct {
	l     *Loop
	timer Timer
}

func rearm(arg any) {
	r := arg.(*rearming)
	r.l.Schedule(&r.timer, time.Millisecond)
}

type closer struct {
	tid    int // the loop thread it must be closed on
	closes atomic.Int32
	wrong  atomic.Int32
}

func (c *closer) ForceClose() {
	c.closes.Add(1)
	if unix.Gettid() != c.tid {
		c.wrong.Add(1)
	}
}

// TestStopUnderLoad stops an engine whose loops have timers armed, tasks
// circulating between them and tracked resources, and checks that Stop
// returns, that every tracked resource is force-closed once on its loop,
// and that untracked ones are left alone.
func TestStopUnderLoad(t *testing.T) {
	checkLeaks(t)
	for loops := 1; loops <= 4; loops++ {
		t.Run(fmt.Sprint(loops), func(t *testing.T) {
			e, err := New(Config{Loops: loops, QueueCapacity: 4})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Start(); err != nil {
				t.Fatal(err)
			}
			tids := loopThreads(t, e)
			var kept, dropped []*closer
			for i, l := range e.Loops() {
				err := l.Exec(func(l *Loop) {
					r := &rearming{l: l}
					r.timer = Timer{Func: rearm, Arg: r}
					l.Schedule(&r.timer, time.Millisecond)
					far := &Timer{Func: func(any) {}}
					l.Schedule(far, time.Hour)
					for k := 0; k < 50; k++ {
						l.Post(l, Task{Fn: relay})
					}
					for k := 0; k < 3; k++ {
						c := &closer{tid: tids[i]}
						kept = append(kept, c)
						l.Track(c)
						d := &closer{tid: tids[i]}
						dropped = append(dropped, d)
						l.Untrack(l.Track(d))
					}
					if n := l.TrackedCount(); n != 3 {
						t.Errorf("loop %d tracks %d, want 3", l.ID(), n)
					}
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(30 * time.Millisecond)
			stopWithin(t, e, 5*time.Second)
			for _, c := range kept {
				if n := c.closes.Load(); n != 1 {
					t.Errorf("tracked resource closed %d times, want 1", n)
				}
				if c.wrong.Load() != 0 {
					t.Error("tracked resource closed off its loop thread")
				}
			}
			for _, c := range dropped {
				if n := c.closes.Load(); n != 0 {
					t.Errorf("untracked resource closed %d times", n)
				}
			}
		})
	}
}

func TestLoopPinning(t *testing.T) {
	checkLeaks(t)
	cpus := AvailableCPUs()
	if len(cpus) == 0 {
		t.Fatal("AvailableCPUs returned nothing")
	}
	e := startEngine(t, Config{Loops: len(cpus) + 1, CPUs: cpus})
	for i, l := range e.Loops() {
		want := cpus[i%len(cpus)]
		if l.CPU() != want {
			t.Errorf("loop %d CPU() = %d, want %d", i, l.CPU(), want)
		}
		var set unix.CPUSet
		var err error
		if xerr := l.Exec(func(*Loop) { err = unix.SchedGetaffinity(0, &set) }); xerr != nil {
			t.Fatal(xerr)
		}
		if err != nil {
			t.Fatalf("sched_getaffinity on loop %d: %v", i, err)
		}
		if set.Count() != 1 || !set.IsSet(want) {
			t.Errorf("loop %d affinity has %d CPUs (cpu %d set: %v), want exactly cpu %d", i, set.Count(), want, set.IsSet(want), want)
		}
	}
	// The test goroutine's own thread must keep its full mask.
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	if set.Count() != len(cpus) {
		t.Errorf("a non-loop thread has %d CPUs in its mask, want %d", set.Count(), len(cpus))
	}
}

var errNoDriver = errors.New("test: no driver for you")

// failingDriver wraps epoll and fails Init.
type failingDriver struct{ Driver }

func (failingDriver) Init() error { return errNoDriver }

func TestStartFailure(t *testing.T) {
	checkLeaks(t)
	tests := []struct {
		name  string
		loops int
		fail  func(call int) (Driver, error, bool) // reports whether it decided
	}{
		{"constructor fails everywhere", 3, func(int) (Driver, error, bool) { return nil, errNoDriver, true }},
		{"constructor fails on one loop", 3, func(call int) (Driver, error, bool) {
			if call == 1 {
				return nil, errNoDriver, true
			}
			return nil, nil, false
		}},
		{"init fails on one loop", 4, func(call int) (Driver, error, bool) {
			if call == 2 {
				d, _ := NewEpoll()
				return failingDriver{d}, nil, true
			}
			return nil, nil, false
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			e, err := New(Config{Loops: tc.loops, NewDriver: func() (Driver, error) {
				if d, err, ok := tc.fail(int(calls.Add(1)) - 1); ok {
					return d, err
				}
				return NewEpoll()
			}})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- e.Start() }()
			select {
			case err = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Start did not return")
			}
			if !errors.Is(err, errNoDriver) {
				t.Fatalf("Start = %v, want an error wrapping %v", err, errNoDriver)
			}
			for i, l := range e.Loops() {
				if err := l.Submit(func(*Loop) {}); !errors.Is(err, ErrStopped) {
					t.Errorf("Submit to loop %d after failed Start: %v", i, err)
				}
			}
			stopWithin(t, e, time.Second)
		})
	}
}

// TestPostOverflowKeepsFlowing pushes one-way bursts through two-slot
// queues, where nothing else wakes the producer, so it relies on the
// consumer waking it when slots free up: a producer left to retry on a timer
// would move two tasks per tick and miss the deadline by far.
func TestPostOverflowKeepsFlowing(t *testing.T) {
	checkLeaks(t)
	const burst = 5000
	const limit = 4 * time.Second // a producer retrying each TimerTick needs 25s per pair
	tests := []struct {
		name  string
		loops int
		pairs [][2]int // source, destination
	}{
		{"one way", 2, [][2]int{{0, 1}}},
		{"fan out", 4, [][2]int{{0, 1}, {0, 2}, {0, 3}}},
		{"fan in", 4, [][2]int{{1, 0}, {2, 0}, {3, 0}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := startEngine(t, Config{Loops: tc.loops, QueueCapacity: 2})
			receivers := make([]*pairReceiver, tc.loops)
			for i := range receivers {
				receivers[i] = &pairReceiver{next: make([]uint64, tc.loops)}
			}
			want := make([]uint64, tc.loops)
			start := time.Now()
			for _, p := range tc.pairs {
				src, dst := p[0], p[1]
				want[dst] += burst
				if err := e.Loop(src).Submit(func(l *Loop) {
					for k := uint64(0); k < burst; k++ {
						l.Post(e.Loop(dst), Task{Fn: receiveInOrder, Arg: receivers[dst], N: uint64(src)<<seqBits | k})
					}
				}); err != nil {
					t.Fatal(err)
				}
			}
			for i, r := range receivers {
				for r.received.Load() < want[i] && time.Since(start) < limit {
					time.Sleep(time.Millisecond)
				}
				if got := r.received.Load(); got != want[i] {
					t.Fatalf("loop %d received %d of %d tasks in %v", i, got, want[i], limit)
				}
			}
			t.Logf("delivered in %v", time.Since(start))
			for i, r := range receivers {
				var errs []string
				if err := e.Loop(i).Exec(func(*Loop) { errs = append(errs, r.errs...) }); err != nil {
					t.Fatal(err)
				}
				for _, msg := range errs {
					t.Error(msg)
				}
			}
		})
	}
}

// TestStartPinFailure asks for a CPU the process cannot run on: Start must
// fail, and the loop that failed must refuse work instead of queueing it
// where nothing will ever run it.
func TestStartPinFailure(t *testing.T) {
	checkLeaks(t)
	allowed := map[int]bool{}
	for _, c := range AvailableCPUs() {
		allowed[c] = true
	}
	missing := -1
	for c := len(unix.CPUSet{})*64 - 1; c >= 0; c-- {
		if !allowed[c] {
			missing = c
			break
		}
	}
	if missing < 0 {
		t.Fatal("every possible CPU is in the affinity mask; cannot provoke a pin failure")
	}
	e, err := New(Config{Loops: 2, CPUs: []int{AvailableCPUs()[0], missing}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err == nil {
		t.Fatalf("Start pinned a loop to cpu %d, which is not in the affinity mask", missing)
	}
	for i, l := range e.Loops() {
		if err := l.Submit(func(*Loop) {}); !errors.Is(err, ErrStopped) {
			t.Errorf("Submit to loop %d after failed Start: %v, want ErrStopped", i, err)
		}
	}
	stopWithin(t, e, time.Second)
}

type flushRecorder struct {
	tid     int
	flushes atomic.Int32
	order   []string // loop only
	then    func()
}

func (f *flushRecorder) Flush() {
	if unix.Gettid() != f.tid {
		f.order = append(f.order, "flush on the wrong thread")
	}
	f.order = append(f.order, "flush")
	f.flushes.Add(1)
	if f.then != nil {
		next := f.then
		f.then = nil
		next()
	}
}

// TestDeferFlushesAfterBatch checks that a deferred Flusher runs once, on
// the loop, after the work that deferred it and without the loop needing
// another wakeup, and that a Flush may defer another.
func TestDeferFlushesAfterBatch(t *testing.T) {
	checkLeaks(t)
	e := startEngine(t, Config{Loops: 1})
	tids := loopThreads(t, e)
	f := &flushRecorder{tid: tids[0]}
	g := &flushRecorder{tid: tids[0]}
	if err := e.Loop(0).Exec(func(l *Loop) {
		l.Defer(f)
		f.then = func() { l.Defer(g) }
		f.order = append(f.order, "work")
	}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	for g.flushes.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	var order []string
	if err := e.Loop(0).Exec(func(*Loop) { order = append(order, f.order...) }); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(order); got != "[work flush]" {
		t.Errorf("order %s, want [work flush]", got)
	}
	if f.flushes.Load() != 1 || g.flushes.Load() != 1 {
		t.Errorf("flushes: %d and %d, want 1 each", f.flushes.Load(), g.flushes.Load())
	}
}

func TestLoopStatsCount(t *testing.T) {
	checkLeaks(t)
	e := startEngine(t, Config{Loops: 2})
	const n = 100
	for i := 0; i < n; i++ {
		if err := e.Loop(1).Exec(func(l *Loop) { l.Post(e.Loop(0), Task{Fn: func(*Loop, any, uint64) {}}) }); err != nil {
			t.Fatal(err)
		}
	}
	// Let both loops fall asleep so the next round trip has to wake them
	// (an event), then one more so the counts of that one are stored.
	time.Sleep(20 * time.Millisecond)
	loopThreads(t, e)
	loopThreads(t, e)
	for i := 0; i < 2; i++ {
		s := &e.Loop(i).Stats
		if got := s.Tasks.Load(); got < n {
			t.Errorf("loop %d counted %d tasks, want at least %d", i, got, n)
		}
		if s.Iterations.Load() == 0 || s.BusyNanos.Load() == 0 || s.Events.Load() == 0 {
			t.Errorf("loop %d: iterations %d, busy %dns, events %d", i, s.Iterations.Load(), s.BusyNanos.Load(), s.Events.Load())
		}
	}
}

// handOff is a tracked resource whose ForceClose hands new resources to its
// own loop and to another one, as a listener that accepted a connection in
// its last moments would.
type handOff struct {
	closer
	own, other    *Loop
	local, remote *closer
}

func trackCloser(l *Loop, arg any, _ uint64) { l.Track(arg.(*closer)) }

func (h *handOff) ForceClose() {
	h.closer.ForceClose()
	h.own.Post(h.own, Task{Fn: trackCloser, Arg: h.local})
	h.own.Post(h.other, Task{Fn: trackCloser, Arg: h.remote})
}

// TestStopClosesWhatShutdownTracks checks that resources tracked by work
// that shutdown itself triggers, on the same loop or another, are
// force-closed too rather than left open.
func TestStopClosesWhatShutdownTracks(t *testing.T) {
	checkLeaks(t)
	e := startEngine(t, Config{Loops: 2})
	tids := loopThreads(t, e)
	h := &handOff{
		closer: closer{tid: tids[0]},
		own:    e.Loop(0),
		other:  e.Loop(1),
		local:  &closer{tid: tids[0]},
		remote: &closer{tid: tids[1]},
	}
	if err := e.Loop(0).Exec(func(l *Loop) { l.Track(h) }); err != nil {
		t.Fatal(err)
	}
	stopWithin(t, e, 5*time.Second)
	for name, c := range map[string]*closer{"tracked": &h.closer, "tracked on its loop during shutdown": h.local, "handed to another loop during shutdown": h.remote} {
		if n := c.closes.Load(); n != 1 {
			t.Errorf("resource %s: closed %d times, want 1", name, n)
		}
		if c.wrong.Load() != 0 {
			t.Errorf("resource %s: closed off its loop thread", name)
		}
	}
}

// spin re-posts itself to its own loop until its flag is cleared, keeping the
// loop busy without ever letting it sleep.
func spin(l *Loop, arg any, _ uint64) {
	if arg.(*atomic.Bool).Load() {
		l.Post(l, Task{Fn: spin, Arg: arg})
	}
}

// TestBusyLoopYields checks that a loop that never runs out of work still
// passes through the Go scheduler every yieldEvery (otherwise sysmon
// force-preempts it and polls every 20 µs on its CPU), and that an idle
// loop does not yield on its own.
func TestBusyLoopYields(t *testing.T) {
	checkLeaks(t)
	e := startEngine(t, Config{Loops: 1})
	l := e.Loop(0)
	loopThreads(t, e)
	idleBefore := l.Stats.Yields.Load()
	time.Sleep(10 * yieldEvery)
	if got := l.Stats.Yields.Load() - idleBefore; got > 1 {
		t.Errorf("idle loop yielded %d times in %v", got, 10*yieldEvery)
	}

	var running atomic.Bool
	running.Store(true)
	before := l.Stats.Yields.Load()
	if err := l.Exec(func(l *Loop) { l.Post(l, Task{Fn: spin, Arg: &running}) }); err != nil {
		t.Fatal(err)
	}
	const busy = 20 * yieldEvery
	time.Sleep(busy)
	running.Store(false)
	loopThreads(t, e) // the loop still answers
	// At least a quarter of the ideal count, for a loaded test machine.
	if got, want := l.Stats.Yields.Load()-before, uint64(busy/yieldEvery/4); got < want {
		t.Errorf("busy loop yielded %d times in %v, want at least %d", got, busy, want)
	}
}
