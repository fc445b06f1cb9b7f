package ring

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/pawelgaczynski/giouring"
	"golang.org/x/sys/unix"

	"github.com/scalestack/scalestack/reactor"
)

// onThread runs fn with an initialised driver on a locked goroutine.
func onThread(t *testing.T, fn func(d *Driver)) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		d := &Driver{eventfd: -1}
		if err := d.Init(); err != nil {
			t.Errorf("init: %v", err)
			return
		}
		defer func() {
			if err := d.Shutdown(); err != nil {
				t.Errorf("shutdown: %v", err)
			}
		}()
		fn(d)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("driver goroutine did not finish in 30s")
	}
}

func pollWhile(t *testing.T, d *Driver, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for cond() {
		if time.Now().After(deadline) {
			t.Errorf("%s: timed out", what)
			return
		}
		if _, err := d.Poll(2 * time.Millisecond); err != nil {
			t.Errorf("%s: poll: %v", what, err)
			return
		}
	}
}

type counting struct{ recv, ends, writable, sent int }

func (c *counting) OnRecv([]byte)       { c.recv++ }
func (c *counting) OnRecvEnd(error)     { c.ends++ }
func (c *counting) OnWritable()         { c.writable++ }
func (c *counting) OnSent(int, error)   { c.sent++ }
func (c *counting) total() int          { return c.recv + c.ends + c.writable + c.sent }
func (c *counting) OnAccept(fd int)     { c.recv++; unix.Close(fd) }
func (c *counting) OnAcceptError(error) { c.ends++ }

// pair returns two connected non-blocking stream sockets: one for the driver,
// and the peer, the test's end, which is closed when the test ends.
func pair(t *testing.T) (fd, peer int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	t.Cleanup(func() { unix.Close(fds[1]) })
	return fds[0], fds[1]
}

// TestUserDataRoundTrip checks the user_data packing at its field limits.
func TestUserDataRoundTrip(t *testing.T) {
	cases := []struct {
		op   op
		seq  uint8
		gen  uint32
		slot uint32
	}{
		{opRecv, 0, 0, 0},
		{opCancel, 15, ^uint32(0), slotMask},
		{opSend, 16, 1, 1}, // the sequence wraps at four bits
		{opAccept, 7, 0x80000001, 0x123456},
	}
	for _, c := range cases {
		ud := userData(c.op, c.seq, c.gen, c.slot)
		o, gen, slot := splitUserData(ud)
		if o != c.op || gen != c.gen || slot != c.slot {
			t.Errorf("userData(%d, %d, %#x, %#x) split to (%d, %#x, %#x)", c.op, c.seq, c.gen, c.slot, o, gen, slot)
		}
		if seq := uint8(ud>>seqShift) & seqMask; seq != c.seq&seqMask {
			t.Errorf("sequence %d came back as %d", c.seq&seqMask, seq)
		}
	}
}

// TestStaleCompletionAfterReuse closes a handle, lets its slot be reused by
// a new socket, and then feeds the driver completions carrying the old
// generation, as a late CQE would: the new owner must see nothing and keep
// its state.
func TestStaleCompletionAfterReuse(t *testing.T) {
	onThread(t, func(d *Driver) {
		a, _ := pair(t) // the peer stays quiet
		old := &counting{}
		ha, ok := registerOrReport(t, d, a, old)
		if !ok {
			return
		}
		closeOrReport(t, d, ha)
		pollWhile(t, d, "slot freed", func() bool { return len(d.free) == 0 })

		b, bPeer := pair(t)
		cur := &counting{}
		hb, ok := registerOrReport(t, d, b, cur)
		if !ok {
			return
		}
		if hb.Slot() != ha.Slot() || hb.Gen() == ha.Gen() {
			t.Fatalf("slot not reused with a new generation: old %#x new %#x", uint64(ha), uint64(hb))
		}
		if _, err := d.Poll(0); err != nil {
			t.Errorf("poll: %v", err)
		}
		before := d.slots[hb.Slot()]
		inflight := d.inflight

		dup, err := unix.Dup(bPeer)
		if err != nil {
			t.Fatalf("dup: %v", err)
		}
		stale := []struct {
			o     op
			res   int32
			flags uint32
		}{
			{opRecv, 5, giouring.CQEFMore},
			{opRecv, 0, 0},
			{opRecv, -int32(unix.ECONNRESET), 0},
			{opSend, 100, 0},
			{opPoll, int32(unix.POLLOUT), 0},
			{opAccept, int32(dup), giouring.CQEFMore},
		}
		for _, c := range stale {
			d.complete(userData(c.o, 1, ha.Gen(), ha.Slot()), c.res, c.flags)
		}
		if cur.total() != 0 || old.total() != 0 {
			t.Errorf("stale completions reached handlers: new owner %+v, old owner %+v", *cur, *old)
		}
		after := d.slots[hb.Slot()]
		if after.recvArmed != before.recvArmed || after.ended != before.ended || after.gen != before.gen || d.inflight != inflight {
			t.Errorf("stale completions changed the new owner's state: %+v -> %+v, inflight %d -> %d", before, after, inflight, d.inflight)
		}
		if _, err := unix.FcntlInt(uintptr(dup), unix.F_GETFD, 0); err != unix.EBADF {
			t.Errorf("descriptor of a stale accept completion left open (fcntl: %v)", err)
		}

		// The new owner still works.
		if _, err := unix.Write(bPeer, []byte("hi")); err != nil {
			t.Errorf("write: %v", err)
		}
		pollWhile(t, d, "data for the new owner", func() bool { return cur.recv == 0 })
		closeOrReport(t, d, hb)
	})
}

// TestCloseKeepsSendBuffer closes a handle whose send the peer never drains:
// the slot must keep the buffer referenced, and not be reused, until the
// cancelled send's completion arrives.
func TestCloseKeepsSendBuffer(t *testing.T) {
	onThread(t, func(d *Driver) {
		a, peer := pair(t)
		c := &counting{}
		h, ok := registerOrReport(t, d, a, c)
		if !ok {
			return
		}
		fillSendBuffer(t, a, peer)
		buf := make([]byte, 16<<20)
		if _, pending, err := d.Send(h, buf); err != nil || !pending {
			t.Errorf("send: pending %v, %v", pending, err)
		}
		if _, _, err := d.Send(h, buf); err == nil {
			t.Error("a second Send while one is pending succeeded")
		}
		for range 5 {
			if _, err := d.Poll(time.Millisecond); err != nil {
				t.Errorf("poll: %v", err)
			}
		}
		closeOrReport(t, d, h)
		s := &d.slots[h.Slot()]
		if !s.sendArmed || len(s.sendBuf) != len(buf) || len(d.free) != 0 {
			t.Errorf("after Close the pending send's buffer is not held: armed %v, len %d, free %v", s.sendArmed, len(s.sendBuf), d.free)
		}
		pollWhile(t, d, "cancelled send completes", func() bool { return len(d.free) == 0 })
		if s := &d.slots[h.Slot()]; s.sendBuf != nil || s.used {
			t.Errorf("freed slot still holds state: %+v", *s)
		}
		if c.total() != 0 {
			t.Errorf("callbacks after Close: %+v", *c)
		}
	})
}

// TestPauseHoldsBatchedInput pauses inside the first OnRecv while more
// completions of the same batch are pending: they must be held, not
// delivered, and come out in order on resume.
func TestPauseHoldsBatchedInput(t *testing.T) {
	onThread(t, func(d *Driver) {
		a, peer := pair(t)
		r := &pauseOnFirst{d: d}
		h, ok := registerOrReport(t, d, a, r)
		if !ok {
			return
		}
		r.h = h
		if _, err := d.Poll(0); err != nil { // arm the receive
			t.Errorf("poll: %v", err)
		}
		// Several buffers' worth arrives before the driver looks, so one
		// batch carries several completions for the socket.
		sent := make([]byte, 6*bufSize+123)
		for i := range sent {
			sent[i] = byte(i % 253)
		}
		for rest := sent; len(rest) > 0; {
			n, err := unix.Write(peer, rest)
			if err != nil {
				t.Errorf("write: %v", err)
				return
			}
			rest = rest[n:]
		}
		pollWhile(t, d, "first delivery", func() bool { return r.calls == 0 })
		if len(d.slots[h.Slot()].held) == 0 {
			t.Error("nothing was held: the batch did not carry completions past the pause")
		}
		for range 5 {
			if _, err := d.Poll(time.Millisecond); err != nil {
				t.Errorf("poll: %v", err)
			}
		}
		if r.calls != 1 {
			t.Errorf("%d deliveries, want exactly 1 before resuming", r.calls)
		}
		if err := d.SetRecv(h, true); err != nil {
			t.Errorf("resume: %v", err)
		}
		pollWhile(t, d, "held input delivered", func() bool { return len(r.got) < len(sent) })
		if string(r.got) != string(sent) {
			t.Errorf("got %d bytes that differ from the %d sent", len(r.got), len(sent))
		}
		closeOrReport(t, d, h)
	})
}

type pauseOnFirst struct {
	d     *Driver
	h     reactor.Handle
	got   []byte
	calls int
}

func (p *pauseOnFirst) OnRecv(b []byte) {
	p.calls++
	p.got = append(p.got, b...)
	if p.calls == 1 {
		_ = p.d.SetRecv(p.h, false)
	}
}
func (p *pauseOnFirst) OnRecvEnd(error)   {}
func (p *pauseOnFirst) OnWritable()       {}
func (p *pauseOnFirst) OnSent(int, error) {}

// TestSetupFallsBack puts a flag set the kernel rejects (TASKRUN_FLAG
// without COOP_TASKRUN or DEFER_TASKRUN is EINVAL) first in line: Init must
// move on to the next set and work.
func TestSetupFallsBack(t *testing.T) {
	saved := setupAttempts
	defer func() { setupAttempts = saved }()
	setupAttempts = append([]uint32{giouring.SetupTaskrunFlag}, saved[1:]...)
	onThread(t, func(d *Driver) {
		if d.flags != saved[1] {
			t.Errorf("setup flags %#x, want the second attempt %#x", d.flags, saved[1])
		}
		a, peer := pair(t)
		c := &counting{}
		h, ok := registerOrReport(t, d, a, c)
		if !ok {
			return
		}
		if _, err := unix.Write(peer, []byte("x")); err != nil {
			t.Errorf("write: %v", err)
		}
		pollWhile(t, d, "data on the fallback ring", func() bool { return c.recv == 0 })
		closeOrReport(t, d, h)
	})
}

// TestEverySetupWorks runs traffic, a pause and a pending send on a ring
// made with each fallback flag set in turn, so the paths older kernels take
// (completions posted asynchronously, without DEFER_TASKRUN) are exercised
// here too.
func TestEverySetupWorks(t *testing.T) {
	saved := setupAttempts
	defer func() { setupAttempts = saved }()
	for _, flags := range saved {
		t.Run(fmt.Sprintf("flags=%#x", flags), func(t *testing.T) {
			setupAttempts = []uint32{flags}
			onThread(t, func(d *Driver) {
				if d.flags != flags {
					t.Fatalf("setup flags %#x, want %#x", d.flags, flags)
				}
				a, peer := pair(t)
				r := &pauseOnFirst{d: d}
				h, ok := registerOrReport(t, d, a, r)
				if !ok {
					return
				}
				r.h = h
				sent := make([]byte, 5*bufSize)
				for i := range sent {
					sent[i] = byte(i % 251)
				}
				if _, err := unix.Write(peer, sent); err != nil {
					t.Errorf("write: %v", err)
				}
				pollWhile(t, d, "first delivery", func() bool { return r.calls == 0 })
				for range 3 {
					if _, err := d.Poll(time.Millisecond); err != nil {
						t.Errorf("poll: %v", err)
					}
				}
				if err := d.SetRecv(h, true); err != nil {
					t.Errorf("resume: %v", err)
				}
				pollWhile(t, d, "all input", func() bool { return len(r.got) < len(sent) })
				if string(r.got) != string(sent) {
					t.Errorf("got %d bytes that differ from the %d sent", len(r.got), len(sent))
				}
				if _, pending, err := d.Send(h, []byte("reply")); err != nil || !pending {
					t.Errorf("send: pending %v, %v", pending, err)
				}
				reply := make([]byte, 5)
				pollWhile(t, d, "reply", func() bool {
					n, _ := unix.Read(peer, reply)
					return n != 5
				})
				closeOrReport(t, d, h)
			})
		})
	}
}
