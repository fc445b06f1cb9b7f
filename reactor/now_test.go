package reactor

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// armOnRecv schedules a timer from inside OnRecv, the way a connection arms
// its login deadline when the first bytes arrive.
type armOnRecv struct {
	l     *Loop
	timer *Timer
	d     time.Duration
}

func (h *armOnRecv) OnRecv([]byte)     { h.l.Schedule(h.timer, h.d) }
func (h *armOnRecv) OnRecvEnd(error)   {}
func (h *armOnRecv) OnWritable()       {}
func (h *armOnRecv) OnSent(int, error) {}

// TestTimerArmedAfterIdleSleep: a loop that slept for a while must not
// measure a deadline armed in an I/O callback from the time before its
// sleep (it would fire at once).
func TestTimerArmedAfterIdleSleep(t *testing.T) {
	checkLeaks(t)
	e := startEngine(t, Config{Loops: 1})
	l := e.Loop(0)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	fired := make(chan time.Time, 1)
	const delay = 100 * time.Millisecond
	h := &armOnRecv{l: l, d: delay, timer: &Timer{Func: func(any) { fired <- time.Now() }}}
	var handle Handle
	var regErr error
	if err := l.Exec(func(l *Loop) { handle, regErr = l.Driver().Register(fds[0], h) }); err != nil || regErr != nil {
		t.Fatalf("register: %v %v", err, regErr)
	}
	defer l.Exec(func(l *Loop) { _ = l.Driver().Close(handle) })
	time.Sleep(300 * time.Millisecond) // the loop sleeps with nothing to do
	sent := time.Now()
	if _, err := unix.Write(fds[1], []byte("x")); err != nil {
		t.Fatal(err)
	}
	select {
	case at := <-fired:
		if got := at.Sub(sent); got < delay-TimerTick {
			t.Fatalf("timer armed for %v after an idle sleep fired after %v", delay, got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("timer never fired")
	}
}
