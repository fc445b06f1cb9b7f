package reactor

import (
	"fmt"
	"testing"
	"time"
)

// fakeClock drives a timerWheel with explicit times.
type fakeClock struct {
	w   timerWheel
	now time.Time
}

func newFakeClock() *fakeClock {
	c := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	c.w.init(c.now)
	return c
}

// step moves the clock forward by d in increments of inc, advancing the
// wheel at each, the way a loop that wakes often would.
func (c *fakeClock) step(d, inc time.Duration) {
	for end := c.now.Add(d); c.now.Before(end); {
		c.now = c.now.Add(inc)
		if c.now.After(end) {
			c.now = end
		}
		c.w.advance(c.now)
	}
}

// firing records when each timer fired, by the clock's time.
type firing struct {
	clock *fakeClock
	at    map[*Timer]time.Time
	order []*Timer
}

func newFiring(c *fakeClock) *firing { return &firing{clock: c, at: map[*Timer]time.Time{}} }

func (f *firing) timer() *Timer {
	t := &Timer{}
	t.Func = func(arg any) {
		tm := arg.(*Timer)
		if _, dup := f.at[tm]; dup {
			panic("timer fired twice")
		}
		f.at[tm] = f.clock.now
		f.order = append(f.order, tm)
	}
	t.Arg = t
	return t
}

func TestTimerFiresNotBeforeDeadline(t *testing.T) {
	checkLeaks(t)
	tests := []struct {
		offset time.Duration // clock position (past the wheel's base) when scheduling
		d      time.Duration
	}{
		{0, 0},
		{0, time.Millisecond},
		{0, TimerTick},
		{0, TimerTick + 1},
		{15 * time.Millisecond, TimerTick},
		{19 * time.Millisecond, time.Millisecond},
		{TimerTick - time.Nanosecond, 3 * TimerTick},
		{3 * time.Millisecond, 250 * time.Millisecond},
		{7 * time.Millisecond, 10*time.Second + 3*time.Millisecond}, // beyond one wheel turn
		{5 * time.Millisecond, 25 * time.Second},                    // more than two turns
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("at+%v/after%v", tc.offset, tc.d), func(t *testing.T) {
			c := newFakeClock()
			f := newFiring(c)
			c.step(tc.offset, time.Millisecond)
			tm := f.timer()
			c.w.schedule(tm, c.now, tc.d)
			if !tm.Armed() {
				t.Fatal("timer not armed after schedule")
			}
			deadline := c.now.Add(tc.d)
			c.step(tc.d+5*TimerTick, time.Millisecond)
			fired, ok := f.at[tm]
			if !ok {
				t.Fatalf("timer did not fire within %v of its %v deadline", 5*TimerTick, tc.d)
			}
			if fired.Before(deadline) {
				t.Errorf("fired %v before its deadline", deadline.Sub(fired))
			}
			if late := fired.Sub(deadline); late > 2*TimerTick {
				t.Errorf("fired %v after its deadline; want at most %v", late, 2*TimerTick)
			}
			if tm.Armed() {
				t.Error("timer still armed after firing")
			}
			if c.w.count != 0 {
				t.Errorf("wheel count %d after the only timer fired", c.w.count)
			}
		})
	}
}

func TestTimerOrder(t *testing.T) {
	checkLeaks(t)
	c := newFakeClock()
	f := newFiring(c)
	delays := []time.Duration{70, 10, 5000, 30, 20, 10240, 10250, 60, 40, 20480}
	timers := make(map[*Timer]time.Duration)
	for _, ms := range delays {
		tm := f.timer()
		timers[tm] = ms * time.Millisecond
		c.w.schedule(tm, c.now, ms*time.Millisecond)
	}
	// Coarse steps: several ticks pass between advances, as when a loop
	// sleeps through them.
	c.step(21*time.Second, 37*time.Millisecond)
	if len(f.order) != len(delays) {
		t.Fatalf("%d of %d timers fired", len(f.order), len(delays))
	}
	for i := 1; i < len(f.order); i++ {
		if timers[f.order[i]] < timers[f.order[i-1]] {
			t.Errorf("timer due after %v fired before one due after %v", timers[f.order[i-1]], timers[f.order[i]])
		}
	}
}

func TestTimerCancel(t *testing.T) {
	checkLeaks(t)
	c := newFakeClock()
	f := newFiring(c)
	// Neighbours in the same slot check that unlinking from the head, the
	// middle and the tail of a slot's list leaves the others intact.
	var same []*Timer
	for i := 0; i < 5; i++ {
		tm := f.timer()
		c.w.schedule(tm, c.now, 50*time.Millisecond)
		same = append(same, tm)
	}
	cancelled := map[*Timer]bool{same[0]: true, same[2]: true, same[4]: true}
	for tm := range cancelled {
		c.w.cancel(tm)
		if tm.Armed() {
			t.Fatal("timer armed after cancel")
		}
		c.w.cancel(tm) // a second cancel is a no-op
	}
	if c.w.count != 2 {
		t.Fatalf("wheel count %d after cancelling 3 of 5", c.w.count)
	}
	c.step(time.Second, time.Millisecond)
	for i, tm := range same {
		_, fired := f.at[tm]
		if fired == cancelled[tm] {
			t.Errorf("timer %d: fired=%v, cancelled=%v", i, fired, cancelled[tm])
		}
	}
	if c.w.untilNext(c.now) != -1 {
		t.Error("untilNext not -1 after every timer fired or was cancelled")
	}
}

func TestTimerRescheduleMovesIt(t *testing.T) {
	checkLeaks(t)
	c := newFakeClock()
	f := newFiring(c)
	tm := f.timer()
	c.w.schedule(tm, c.now, 30*time.Millisecond)
	c.w.schedule(tm, c.now, 300*time.Millisecond)
	if c.w.count != 1 {
		t.Fatalf("re-arming an armed timer left count %d", c.w.count)
	}
	start := c.now
	c.step(time.Second, time.Millisecond)
	if got := f.at[tm].Sub(start); got < 300*time.Millisecond || got > 320*time.Millisecond {
		t.Errorf("re-armed timer fired after %v, want about 300ms", got)
	}
}

func TestTimerRearmInsideCallback(t *testing.T) {
	checkLeaks(t)
	c := newFakeClock()
	var fires []time.Time
	tm := &Timer{}
	tm.Func = func(any) {
		fires = append(fires, c.now)
		if len(fires) < 5 {
			c.w.schedule(tm, c.now, 20*time.Millisecond)
		}
	}
	// A second timer re-armed into the very slot being processed must not
	// run again in the same pass.
	var zeroFires int
	zero := &Timer{}
	zero.Func = func(any) {
		zeroFires++
		if zeroFires == 1 {
			c.w.schedule(zero, c.now, 0)
		}
	}
	c.w.schedule(tm, c.now, 20*time.Millisecond)
	c.w.schedule(zero, c.now, 20*time.Millisecond)
	c.now = c.now.Add(20 * time.Millisecond)
	c.w.advance(c.now)
	if zeroFires != 1 {
		t.Fatalf("timer re-armed with 0 delay fired %d times in one advance", zeroFires)
	}
	c.step(time.Second, time.Millisecond)
	if zeroFires != 2 {
		t.Errorf("re-armed zero-delay timer fired %d times in total, want 2", zeroFires)
	}
	if len(fires) != 5 {
		t.Fatalf("self-re-arming timer fired %d times, want 5", len(fires))
	}
	for i := 1; i < len(fires); i++ {
		if gap := fires[i].Sub(fires[i-1]); gap < 20*time.Millisecond || gap > 40*time.Millisecond {
			t.Errorf("gap %d = %v, want 20ms to 40ms", i, gap)
		}
	}
}

func TestTimerManyInOneSlot(t *testing.T) {
	checkLeaks(t)
	c := newFakeClock()
	f := newFiring(c)
	const n = 10_000
	timers := make([]*Timer, n)
	for i := range timers {
		timers[i] = f.timer()
		// Same slot, alternating between this turn and the next two, so
		// the pass must skip entries that are not yet due.
		d := 100*time.Millisecond + time.Duration(i%3)*wheelSlots*TimerTick
		c.w.schedule(timers[i], c.now, d)
	}
	c.step(200*time.Millisecond, time.Millisecond)
	if want := (n + 2) / 3; len(f.order) != want {
		t.Fatalf("%d fired after the first turn, want %d", len(f.order), want)
	}
	c.step(21*time.Second, 10*time.Millisecond)
	if len(f.order) != n {
		t.Fatalf("%d of %d fired", len(f.order), n)
	}
	if c.w.count != 0 {
		t.Errorf("wheel count %d with nothing armed", c.w.count)
	}
}

func TestTimerUntilNext(t *testing.T) {
	checkLeaks(t)
	tests := []struct {
		name   string
		offset time.Duration // clock position when asking
		delays []time.Duration
		want   time.Duration
	}{
		{"empty", 0, nil, -1},
		{"one tick", 0, []time.Duration{TimerTick}, TimerTick},
		{"skips empty slots", 0, []time.Duration{500 * time.Millisecond}, 500 * time.Millisecond},
		{"earliest wins", 0, []time.Duration{2 * time.Second, 40 * time.Millisecond, time.Second}, 40 * time.Millisecond},
		{"mid-tick", 4 * time.Millisecond, []time.Duration{96 * time.Millisecond}, 96 * time.Millisecond},
		// A timer more than a turn away sits in a slot the wheel reaches
		// sooner; waking early then is harmless, sleeping past it is not.
		{"beyond a turn", 0, []time.Duration{15 * time.Second}, 15*time.Second - wheelSlots*TimerTick},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newFakeClock()
			f := newFiring(c)
			c.now = c.now.Add(tc.offset)
			c.w.advance(c.now)
			for _, d := range tc.delays {
				c.w.schedule(f.timer(), c.now, d)
			}
			if got := c.w.untilNext(c.now); got != tc.want {
				t.Errorf("untilNext = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestTimerUntilNextNeverOversleeps sleeps exactly as long as untilNext
// says, over and over, and checks that no timer fires late.
func TestTimerUntilNextNeverOversleeps(t *testing.T) {
	checkLeaks(t)
	c := newFakeClock()
	f := newFiring(c)
	deadlines := map[*Timer]time.Time{}
	for _, d := range []time.Duration{35, 36, 900, 4000, 12000, 12005, 30000} {
		tm := f.timer()
		c.w.schedule(tm, c.now, d*time.Millisecond)
		deadlines[tm] = c.now.Add(d * time.Millisecond)
	}
	for wakes := 0; len(f.order) < len(deadlines); wakes++ {
		if wakes > 200 {
			t.Fatalf("%d wakeups for %d timers: untilNext is not skipping empty slots", wakes, len(deadlines))
		}
		d := c.w.untilNext(c.now)
		if d < 0 {
			t.Fatalf("untilNext = -1 with %d timers unfired", len(deadlines)-len(f.order))
		}
		c.now = c.now.Add(d)
		c.w.advance(c.now)
	}
	for tm, deadline := range deadlines {
		if late := f.at[tm].Sub(deadline); late < 0 || late > 2*TimerTick {
			t.Errorf("timer due at %v fired %v after it", deadline.Sub(c.w.base), late)
		}
	}
}
