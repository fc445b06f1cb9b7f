package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Zero-downtime upgrade: the running process listens on a Unix control
// socket (--upgrade-socket). A new process started with the same flag
// connects to it and receives duplicates of the listening sockets over
// SCM_RIGHTS, starts accepting on them, and says "ready"; the old process
// then stops accepting without closing the sockets (their backlogs carry
// on in the new process, so no connection attempt is refused), gives up the
// control socket, and drains. This is the fd hand-over Go servers use,
// done without a goroutine or net.Conn anywhere near the data path.

const upgradeDialTimeout = 2 * time.Second

// inheritListeners asks a running process for its listening sockets. It
// returns no descriptors (and no error) when nothing answers at path.
// finish must be called once the new listeners accept: it tells the old
// process to let go and waits until it has released the control socket.
func inheritListeners(path string) (fds []int, finish func() error, err error) {
	c, err := net.DialTimeout("unix", path, upgradeDialTimeout)
	if err != nil {
		return nil, nil, nil // no previous process: a cold start
	}
	uc := c.(*net.UnixConn)
	_ = uc.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	oob := make([]byte, unix.CmsgSpace(64*4))
	n, oobn, _, _, err := uc.ReadMsgUnix(buf, oob)
	if err != nil {
		uc.Close()
		return nil, nil, fmt.Errorf("upgrade: read sockets from %s: %w", path, err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		uc.Close()
		return nil, nil, fmt.Errorf("upgrade: no sockets in the message from %s (%v)", path, err)
	}
	fds, err = unix.ParseUnixRights(&msgs[0])
	if err != nil {
		uc.Close()
		return nil, nil, fmt.Errorf("upgrade: parse sockets: %w", err)
	}
	if string(buf[:n]) != "listeners\n" {
		uc.Close()
		closeAll(fds)
		return nil, nil, fmt.Errorf("upgrade: unexpected message %q from %s", buf[:n], path)
	}
	finish = func() error {
		defer uc.Close()
		if _, err := uc.Write([]byte("ready\n")); err != nil {
			return fmt.Errorf("upgrade: tell old process: %w", err)
		}
		line, err := bufio.NewReader(uc).ReadString('\n')
		if err != nil || line != "released\n" {
			return fmt.Errorf("upgrade: old process did not release %s: %q %v", path, line, err)
		}
		return nil
	}
	return fds, finish, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// upgradeServer hands the listening sockets to the next process.
type upgradeServer struct {
	ln   *net.UnixListener
	done chan struct{} // closed once a successor took over
}

// serveUpgrades listens at path. files returns the descriptors to hand
// over; handoff runs once the successor accepts on them and must stop this
// process accepting.
func serveUpgrades(path string, files func() ([]int, error), handoff func()) (*upgradeServer, error) {
	if st, err := os.Lstat(path); err == nil && st.Mode()&os.ModeSocket != 0 {
		_ = os.Remove(path)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("upgrade socket %s: %w", path, err)
	}
	// The successor re-creates the file; closing ours must not delete its.
	ln.SetUnlinkOnClose(false)
	s := &upgradeServer{ln: ln, done: make(chan struct{})}
	go s.serve(files, handoff)
	return s, nil
}

func (s *upgradeServer) serve(files func() ([]int, error), handoff func()) {
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			return // closed
		}
		if s.handOver(c, files, handoff) {
			close(s.done)
			return
		}
	}
}

func (s *upgradeServer) handOver(c *net.UnixConn, files func() ([]int, error), handoff func()) bool {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	fds, err := files()
	if err != nil {
		logger.Error("upgrade: duplicate listening sockets", "err", err)
		return false
	}
	_, _, err = c.WriteMsgUnix([]byte("listeners\n"), unix.UnixRights(fds...), nil)
	closeAll(fds) // the successor holds its own copies now
	if err != nil {
		logger.Error("upgrade: send listening sockets", "err", err)
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "ready\n" {
		logger.Error("upgrade: successor did not get ready", "err", err, "got", line)
		return false
	}
	handoff()
	_ = s.ln.Close()
	if _, err := c.Write([]byte("released\n")); err != nil {
		logger.Warn("upgrade: tell successor", "err", err)
	}
	logger.Info("upgrade: successor took over the listening sockets")
	return true
}

// Done is closed once a successor has taken over.
func (s *upgradeServer) Done() <-chan struct{} {
	if s == nil {
		return nil
	}
	return s.done
}

// Close stops serving upgrades.
func (s *upgradeServer) Close() error {
	if s == nil {
		return nil
	}
	err := s.ln.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
