package ring

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scalestack/scalestack/reactor"
)

// Available reports whether this driver can run here: it sets up a ring the
// way Init does and receives a byte through a multishot recv on a socket
// pair, which exercises everything a kernel older than 6.0, a disabled
// io_uring or a seccomp filter would refuse. The error says what failed.
func Available() error {
	// The ring is single-issuer: create and drive it from one thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	d := &Driver{eventfd: -1}
	if err := d.Init(); err != nil {
		return fmt.Errorf("io_uring unavailable: %w", err)
	}
	err := probeRecv(d)
	if e := d.Shutdown(); err == nil && e != nil {
		err = e
	}
	if err != nil {
		return fmt.Errorf("io_uring unavailable: %w", err)
	}
	return nil
}

type probeHandler struct {
	got   bool
	ended error
}

func (p *probeHandler) OnRecv(b []byte)       { p.got = p.got || len(b) > 0 }
func (p *probeHandler) OnRecvEnd(err error)   { p.ended = fmt.Errorf("receive ended early: %w", err) }
func (p *probeHandler) OnWritable()           {}
func (p *probeHandler) OnSent(n int, _ error) {}

var _ reactor.IOHandler = (*probeHandler)(nil)

func probeRecv(d *Driver) error {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socketpair: %w", err)
	}
	defer unix.Close(fds[1])
	var p probeHandler
	h, err := d.Register(fds[0], &p)
	if err != nil {
		unix.Close(fds[0])
		return err
	}
	defer d.Close(h)
	if _, err := unix.Write(fds[1], []byte{1}); err != nil {
		return fmt.Errorf("probe write: %w", err)
	}
	deadline := time.Now().Add(time.Second)
	for !p.got && p.ended == nil && time.Now().Before(deadline) {
		if _, err := d.Poll(10 * time.Millisecond); err != nil {
			return err
		}
	}
	switch {
	case p.ended != nil:
		return p.ended
	case !p.got:
		return errors.New("multishot recv with provided buffers delivered nothing (needs Linux 6.0)")
	}
	return nil
}
