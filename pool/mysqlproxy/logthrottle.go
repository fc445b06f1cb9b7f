package mysqlproxy

import (
	"sync"
	"time"
)

// logThrottle turns a stream of like events (failed logins, clients gone
// during login) into at most one log line per second with a count and the
// last event's details, so that a storm of strangers cannot flood the log.
// The first event after a quiet second is logged at once; the ones that
// follow within the second are logged together when it ends (by a timer,
// so a burst's tail is not held until the next event).
//
// It takes a mutex: events happen once per login at most, never per
// packet, and any loop may report one.
type logThrottle struct {
	// what names the events in the line: "%d <what> in the last second,
	// last: <detail>".
	what string
	p    *Proxy

	mu       sync.Mutex
	count    int
	last     string
	lastLine time.Time
	timer    *time.Timer // set while a line for counted events is due
	stopped  bool
}

// note records one event; detail describes it (for the line, when it is
// the last of its second).
func (t *logThrottle) note(detail string) {
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return
	}
	t.count++
	t.last = detail
	if t.timer != nil {
		t.mu.Unlock()
		return
	}
	if wait := time.Second - time.Since(t.lastLine); wait > 0 {
		t.timer = time.AfterFunc(wait, t.flushTimer)
		t.mu.Unlock()
		return
	}
	n, last := t.take()
	t.mu.Unlock()
	t.emit(n, last)
}

func (t *logThrottle) flushTimer() {
	t.mu.Lock()
	t.timer = nil
	if t.stopped {
		t.mu.Unlock()
		return
	}
	n, last := t.take()
	t.mu.Unlock()
	t.emit(n, last)
}

// take returns the events counted so far and starts a new second; t.mu is
// held.
func (t *logThrottle) take() (int, string) {
	n, last := t.count, t.last
	t.count, t.last = 0, ""
	t.lastLine = time.Now()
	return n, last
}

func (t *logThrottle) emit(n int, last string) {
	if n > 0 {
		t.p.logf("%d %s in the last second, last: %s", n, t.what, last)
	}
}

// stop logs what is still counted and ignores later events (Close).
func (t *logThrottle) stop() {
	t.mu.Lock()
	if t.timer != nil {
		t.timer.Stop()
		t.timer = nil
	}
	t.stopped = true
	n, last := t.take()
	t.mu.Unlock()
	t.emit(n, last)
}
