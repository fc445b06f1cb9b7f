package conn

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/scalestack/scalestack/reactor"
	"golang.org/x/sys/unix"
)

// ListenConfig describes a listener.
type ListenConfig struct {
	// Addr is where to listen (see ParseAddr).
	Addr Addr
	// Backlog for listen(2); zero means 4096.
	Backlog int
	// Spread uses one accepting socket on loop 0 that hands connections to
	// the loops in turn, instead of one SO_REUSEPORT socket per loop. Unix
	// sockets always spread (they have no port to share).
	Spread bool
	// NewHandler makes the handler of each accepted connection; it runs on
	// the connection's loop.
	NewHandler func(c *Conn) Handler
	// Options apply to every accepted connection.
	Options Options
	// AcceptPause is how long accepting stops after the process runs out
	// of descriptors (default 50 ms).
	AcceptPause time.Duration
	// MaxConns refuses connections beyond this many open at once across
	// the listener (0: no limit of our own). Refused sockets go to Refuse.
	MaxConns int
	// Refuse, when set, receives connections over MaxConns instead of the
	// listener closing them at once (a MySQL proxy answers them with
	// ER_CON_COUNT_ERROR first).
	Refuse func(c *Conn) Handler
	// Inherited, when set, holds already listening sockets handed over by
	// a previous process (see Listener.Files); they are used instead of
	// new ones, one per loop or a single one when spreading. Ownership of
	// the descriptors passes to the listener.
	Inherited []int
}

// Listener accepts connections on an engine's loops.
type Listener struct {
	cfg     ListenConfig
	eng     *reactor.Engine
	addr    Addr
	parts   []*acceptor
	mu      sync.Mutex
	closed  bool
	next    int  // round-robin cursor, used by the spreading acceptor's loop only
	spread  bool // fixed before the first socket is registered
	open    counter
	Stats   ListenerStats
	unlinks string
}

// ListenerStats count what the listener did; read with atomic loads.
type ListenerStats = stats

type acceptor struct {
	ln     *Listener
	loop   *reactor.Loop
	fd     int
	handle reactor.Handle
	token  int
	timer  reactor.Timer
	closed bool
}

// Listen opens the listener and starts accepting on every loop (or on loop
// 0 when spreading). Call it from outside the loops, after Engine.Start.
func Listen(e *reactor.Engine, cfg ListenConfig) (*Listener, error) {
	if cfg.NewHandler == nil {
		return nil, errors.New("conn: ListenConfig.NewHandler is nil")
	}
	if cfg.Backlog <= 0 {
		cfg.Backlog = 4096
	}
	if cfg.AcceptPause <= 0 {
		cfg.AcceptPause = 50 * time.Millisecond
	}
	ln := &Listener{cfg: cfg, eng: e, addr: cfg.Addr}
	spread := cfg.Spread || cfg.Addr.Network == "unix" || len(e.Loops()) == 1
	if cfg.Addr.Network == "unix" && len(cfg.Inherited) == 0 {
		// A stale socket file from a crashed run would make bind fail.
		if st, err := os.Lstat(cfg.Addr.Address); err == nil && st.Mode()&os.ModeSocket != 0 {
			_ = os.Remove(cfg.Addr.Address)
		}
		ln.unlinks = cfg.Addr.Address
	}
	loops := e.Loops()
	if len(cfg.Inherited) > 0 {
		spread = len(cfg.Inherited) == 1
		if !spread && len(cfg.Inherited) != len(loops) {
			return nil, fmt.Errorf("conn: %d inherited listening sockets for %d loops", len(cfg.Inherited), len(loops))
		}
		if cfg.Addr.Network == "unix" {
			ln.unlinks = cfg.Addr.Address
		}
	}
	// Set before any acceptor is registered: loops read it while Listen is
	// still registering the others.
	ln.spread = spread
	if spread {
		loops = loops[:1]
	}
	ln.spread = spread && len(e.Loops()) > 1
	if !spread && len(cfg.Inherited) == 0 {
		if err := checkPortFree(cfg.Addr); err != nil {
			return nil, err
		}
	}
	var fds []int
	for i := range loops {
		var fd int
		var err error
		if len(cfg.Inherited) > 0 {
			fd = cfg.Inherited[i]
			err = unix.SetNonblock(fd, true)
		} else {
			fd, err = listenSocket(cfg.Addr, cfg.Backlog, !spread)
		}
		if err != nil {
			for _, f := range fds {
				unix.Close(f)
			}
			return nil, err
		}
		fds = append(fds, fd)
		if cfg.Addr.Network != "unix" {
			// Resolve port 0 to the real port so every loop's socket (and
			// the caller) share it.
			if sa, err := unix.Getsockname(fd); err == nil {
				ln.addr.sockaddr = sa
				ln.addr.Address = sockaddrString(sa)
				cfg.Addr = ln.addr
			}
		}
	}
	for i, l := range loops {
		a := &acceptor{ln: ln, loop: l, fd: fds[i]}
		a.timer.Func = resumeAccept
		a.timer.Arg = a
		var regErr error
		if err := l.Exec(func(l *reactor.Loop) {
			h, err := l.Driver().Listen(a.fd, a)
			if err != nil {
				regErr = err
				return
			}
			a.handle = h
			a.token = l.Track(a)
		}); err != nil {
			regErr = err
		}
		if regErr != nil {
			unix.Close(a.fd)
			for _, f := range fds[i+1:] {
				unix.Close(f)
			}
			ln.Close()
			return nil, fmt.Errorf("conn: listen on %s: %w", cfg.Addr, regErr)
		}
		ln.parts = append(ln.parts, a)
	}
	return ln, nil
}

// checkPortFree refuses to start when another socket already listens on a
// fixed port: SO_REUSEPORT would otherwise let a second server share the
// port silently and take half of the connections (a hand-over between
// processes goes through Inherited instead).
func checkPortFree(addr Addr) error {
	if port := sockaddrPort(addr.sockaddr); port == 0 {
		return nil
	}
	fd, err := listenSocket(addr, 1, false)
	if err != nil {
		return err
	}
	unix.Close(fd)
	return nil
}

func sockaddrPort(sa unix.Sockaddr) int {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return a.Port
	case *unix.SockaddrInet6:
		return a.Port
	}
	return 0
}

func listenSocket(addr Addr, backlog int, reusePort bool) (int, error) {
	fd, err := unix.Socket(addr.family(), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("conn: socket for %s: %w", addr, err)
	}
	if addr.Network != "unix" {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		if reusePort {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
				unix.Close(fd)
				return -1, fmt.Errorf("conn: SO_REUSEPORT on %s: %w", addr, err)
			}
		}
	}
	if err := unix.Bind(fd, addr.sockaddrForCall()); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("conn: bind %s: %w", addr, err)
	}
	if err := unix.Listen(fd, backlog); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("conn: listen %s: %w", addr, err)
	}
	return fd, nil
}

// Addr returns the bound address (with the real port when 0 was asked).
func (ln *Listener) Addr() Addr { return ln.addr }

// Close stops accepting; connections already accepted stay open.
func (ln *Listener) Close() error { return ln.close(true) }

// Handoff stops accepting like Close but leaves a Unix socket's file in
// place: the sockets live on in the process that took them over with Files,
// and connections waiting in their backlogs are accepted there.
func (ln *Listener) Handoff() error { return ln.close(false) }

// Files duplicates the listening sockets for handing to another process
// (over SCM_RIGHTS) during a zero-downtime upgrade. The caller owns the
// returned descriptors.
func (ln *Listener) Files() ([]int, error) {
	var fds []int
	for _, a := range ln.parts {
		fd, err := unix.FcntlInt(uintptr(a.fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			for _, f := range fds {
				unix.Close(f)
			}
			return nil, fmt.Errorf("conn: dup listening socket: %w", err)
		}
		fds = append(fds, fd)
	}
	return fds, nil
}

func (ln *Listener) close(unlink bool) error {
	ln.mu.Lock()
	if ln.closed {
		ln.mu.Unlock()
		return nil
	}
	ln.closed = true
	ln.mu.Unlock()
	for _, a := range ln.parts {
		a := a
		if err := a.loop.Exec(func(*reactor.Loop) { a.closeNow() }); err != nil {
			// The loop has stopped and closed it already.
			continue
		}
	}
	if unlink && ln.unlinks != "" {
		_ = os.Remove(ln.unlinks)
	}
	return nil
}

// OpenConns returns the number of accepted connections still open.
func (ln *Listener) OpenConns() int64 { return ln.open.n.Load() }

func (a *acceptor) closeNow() {
	if a.closed {
		return
	}
	a.closed = true
	a.loop.Cancel(&a.timer)
	a.loop.Untrack(a.token)
	_ = a.loop.Driver().Close(a.handle)
}

// ForceClose implements reactor.Tracked.
func (a *acceptor) ForceClose() { a.closeNow() }

// OnAccept implements reactor.AcceptHandler.
func (a *acceptor) OnAccept(fd int) {
	ln := a.ln
	loops := ln.eng.Loops()
	if ln.spread {
		// Spreading acceptor: hand the descriptor to the next loop.
		dst := loops[ln.next%len(loops)]
		ln.next++
		if dst != a.loop {
			a.loop.Post(dst, reactor.Task{Fn: adoptTask, Arg: ln, N: uint64(fd)})
			return
		}
	}
	ln.adopt(a.loop, fd)
}

func adoptTask(l *reactor.Loop, arg any, n uint64) {
	arg.(*Listener).adopt(l, int(n))
}

func (ln *Listener) adopt(l *reactor.Loop, fd int) {
	ln.Stats.Accepted.Add(1)
	c := newConn(l, fd, ln.addr.Network, nil, ln.cfg.Options)
	if ln.cfg.Options.TLS != nil {
		c.tls = newTLSState(c, ln.cfg.Options.TLS, true)
	}
	if sa, err := unix.Getpeername(fd); err == nil {
		c.peer = sockaddrString(sa)
	}
	refused := ln.cfg.MaxConns > 0 && ln.open.n.Load() >= int64(ln.cfg.MaxConns)
	if refused {
		ln.Stats.Refused.Add(1)
		if ln.cfg.Refuse == nil {
			unix.Close(fd)
			return
		}
		c.handler = ln.cfg.Refuse(c)
	} else {
		c.handler = ln.cfg.NewHandler(c)
		ln.open.n.Add(1)
		c.counted = ln
	}
	if err := c.register(); err != nil {
		unix.Close(fd)
		if !refused {
			ln.open.n.Add(-1)
		}
		return
	}
	c.open()
}

// OnAcceptError implements reactor.AcceptHandler: out of descriptors or a
// similar condition pauses accepting briefly instead of spinning.
func (a *acceptor) OnAcceptError(err error) {
	a.ln.Stats.AcceptErrors.Add(1)
	if a.closed {
		return
	}
	_ = a.loop.Driver().SetRecv(a.handle, false)
	a.loop.Schedule(&a.timer, a.ln.cfg.AcceptPause)
}

func resumeAccept(arg any) {
	a := arg.(*acceptor)
	if !a.closed {
		_ = a.loop.Driver().SetRecv(a.handle, true)
	}
}
