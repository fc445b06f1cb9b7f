package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
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

// A process that runs one module sends "listeners\n" with its sockets, as
// it always has. One that runs several (serve) says which sockets belong to
// which address: "listeners [{"addr":"tcp:127.0.0.1:8080","fds":2},...]\n",
// the descriptors in the same order, so that the successor gives each
// module the sockets of its own address even when its configuration lists
// them in another order or no longer has some of them.

// maxHandoverFDs is the most descriptors one SCM_RIGHTS message carries
// (the kernel's SCM_MAX_FD).
const maxHandoverFDs = 253

// handedListener is one listener's part of a labelled hand-over message.
type handedListener struct {
	Addr string `json:"addr"` // conn.Addr.String() of the listener
	FDs  int    `json:"fds"`
}

// inheritedSet is the listening sockets of one listener of the predecessor.
type inheritedSet struct {
	// addr is the listener's address (conn.Addr.String()), or "" when the
	// predecessor ran one module and did not say.
	addr string
	fds  []int
}

// inheritListeners asks a running process for its listening sockets. It
// returns no sets (and no error) when nothing answers at path. finish must
// be called once the new listeners accept: it tells the old process to let
// go and waits until it has released the control socket.
func inheritListeners(path string) (sets []inheritedSet, finish func() error, err error) {
	c, err := net.DialTimeout("unix", path, upgradeDialTimeout)
	if err != nil {
		return nil, nil, nil // no previous process: a cold start
	}
	uc := c.(*net.UnixConn)
	_ = uc.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(maxHandoverFDs*4))
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
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil {
		uc.Close()
		return nil, nil, fmt.Errorf("upgrade: parse sockets: %w", err)
	}
	sets, err = parseHandover(buf[:n], fds)
	if err != nil {
		uc.Close()
		closeAll(fds)
		return nil, nil, fmt.Errorf("upgrade: message from %s: %w", path, err)
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
	return sets, finish, nil
}

// handoverMessage is the message that goes with fds: plain when labels is
// nil (one module), else naming each listener's address and count.
func handoverMessage(labels []handedListener) ([]byte, error) {
	if labels == nil {
		return []byte("listeners\n"), nil
	}
	b, err := json.Marshal(labels)
	if err != nil {
		return nil, err
	}
	return append(append([]byte("listeners "), b...), '\n'), nil
}

// parseHandover splits fds by the message's labels.
func parseHandover(msg []byte, fds []int) ([]inheritedSet, error) {
	if string(msg) == "listeners\n" {
		return []inheritedSet{{fds: fds}}, nil
	}
	rest, ok := strings.CutPrefix(string(msg), "listeners ")
	if !ok || !strings.HasSuffix(rest, "\n") {
		return nil, fmt.Errorf("unexpected message %q", msg)
	}
	var labels []handedListener
	if err := json.Unmarshal([]byte(rest), &labels); err != nil {
		return nil, fmt.Errorf("listener labels: %w", err)
	}
	sets := make([]inheritedSet, 0, len(labels))
	i := 0
	for _, l := range labels {
		if l.FDs <= 0 || l.FDs > len(fds)-i {
			return nil, fmt.Errorf("labels name %d sockets or more, the message carries %d", i+max(l.FDs, 1), len(fds))
		}
		sets = append(sets, inheritedSet{addr: l.Addr, fds: fds[i : i+l.FDs]})
		i += l.FDs
	}
	if i != len(fds) {
		return nil, fmt.Errorf("labels name %d sockets, the message carries %d", i, len(fds))
	}
	return sets, nil
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

// handoverFiles returns the message and the descriptors to hand over (the
// caller owns them; see handoverMessage).
type handoverFiles func() (msg []byte, fds []int, err error)

// serveUpgrades listens at path. files returns what to hand over; handoff
// runs once the successor accepts on them and must stop this process
// accepting.
func serveUpgrades(path string, files handoverFiles, handoff func()) (*upgradeServer, error) {
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

func (s *upgradeServer) serve(files handoverFiles, handoff func()) {
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

func (s *upgradeServer) handOver(c *net.UnixConn, files handoverFiles, handoff func()) bool {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	msg, fds, err := files()
	if err != nil {
		logger.Error("upgrade: duplicate listening sockets", "err", err)
		return false
	}
	_, _, err = c.WriteMsgUnix(msg, unix.UnixRights(fds...), nil)
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
