package reactor

import "time"

// TimerTick is the wheel's resolution. Timeouts in this engine guard idle
// clients, connects, handshakes and queue deadlines, all measured in
// seconds, so a coarse tick keeps wakeups rare.
const TimerTick = 10 * time.Millisecond

const wheelSlots = 1024 // a power of two; one turn covers about 10 s

// Timer is an intrusive wheel entry. Owners embed it (or keep it by value in a
// struct that lives as long as they do), set Func and Arg once, and arm it with
// Loop.Schedule. Arming, re-arming and cancelling cost O(1) and never
// allocate; an armed timer costs nothing until its slot comes round, so a
// connection that sits idle does no work per tick. Func runs on the loop;
// pass a top-level function and a pointer Arg so that nothing allocates.
type Timer struct {
	Func func(arg any)
	Arg  any

	when       int64 // tick number at which it fires
	prev, next *Timer
	armed      bool
}

// Armed reports whether the timer is scheduled.
func (t *Timer) Armed() bool { return t.armed }

type timerWheel struct {
	slots [wheelSlots]*Timer
	tick  int64 // last processed tick
	count int
	base  time.Time
	// nextTick is a lower bound on the tick of the first non-empty slot;
	// stale once it is not ahead of tick. It spares a busy loop a scan of
	// the wheel on every iteration.
	nextTick int64
}

func (w *timerWheel) init(now time.Time) {
	w.base = now
	w.tick = 0
}

func (w *timerWheel) tickAt(now time.Time) int64 {
	return int64(now.Sub(w.base) / TimerTick)
}

func (w *timerWheel) schedule(t *Timer, now time.Time, d time.Duration) {
	if t.armed {
		w.cancel(t)
	}
	// Round the deadline itself up to a tick boundary: rounding only d and
	// adding it to the current (truncated) tick would fire up to a tick
	// early when now falls mid-tick.
	cur := w.tickAt(now)
	t.when = int64((now.Sub(w.base) + d + TimerTick - 1) / TimerTick)
	if t.when <= cur {
		t.when = cur + 1
	}
	if t.when <= w.tick {
		t.when = w.tick + 1
	}
	if t.when < w.nextTick {
		w.nextTick = t.when
	}
	slot := &w.slots[t.when&(wheelSlots-1)]
	t.prev = nil
	t.next = *slot
	if *slot != nil {
		(*slot).prev = t
	}
	*slot = t
	t.armed = true
	w.count++
}

func (w *timerWheel) cancel(t *Timer) {
	if !t.armed {
		return
	}
	if t.prev != nil {
		t.prev.next = t.next
	} else {
		w.slots[t.when&(wheelSlots-1)] = t.next
	}
	if t.next != nil {
		t.next.prev = t.prev
	}
	t.prev, t.next = nil, nil
	t.armed = false
	w.count--
}

// advance fires every timer due at now; a callback may re-arm its own timer
// or others.
func (w *timerWheel) advance(now time.Time) int {
	target := w.tickAt(now)
	fired := 0
	for w.tick < target && w.count > 0 {
		w.tick++
		slot := &w.slots[w.tick&(wheelSlots-1)]
		// Detach due timers first so callbacks that re-arm into this very
		// slot are not visited again in this pass.
		var due *Timer
		for t := *slot; t != nil; {
			next := t.next
			if t.when <= w.tick {
				w.cancel(t)
				t.next = due
				due = t
			}
			t = next
		}
		for due != nil {
			t := due
			due = t.next
			t.next = nil
			fired++
			t.Func(t.Arg)
		}
	}
	if w.count == 0 {
		w.tick = target
	}
	return fired
}

// untilNext returns how long the loop may sleep before the wheel needs
// attention, or -1 when no timer is armed.
func (w *timerWheel) untilNext(now time.Time) time.Duration {
	if w.count == 0 {
		return -1
	}
	// Sleep until the first non-empty slot rather than tick by tick, so a
	// loop whose timers are all far away stays asleep.
	if w.nextTick <= w.tick {
		ahead := int64(1)
		for ; ahead < wheelSlots; ahead++ {
			if w.slots[(w.tick+ahead)&(wheelSlots-1)] != nil {
				break
			}
		}
		w.nextTick = w.tick + ahead
	}
	next := w.base.Add(time.Duration(w.nextTick) * TimerTick)
	d := next.Sub(now)
	if d < 0 {
		return 0
	}
	return d
}
