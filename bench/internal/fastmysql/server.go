// Package fastmysql is a MySQL server that knows one query: a fake
// backend for benchmarks of the proxy in which the backend must cost far
// less CPU per query than the proxy, so that on a small machine the proxy,
// not the database, sets the rate (bench/loops). MariaDB spends tens of
// microseconds on a SELECT 1; this spends one read and one write, shared by
// every command the read brought.
//
// It logs clients in with mysql_native_password (one account), answers
// COM_QUERY "SELECT 1" with a canned one-row result set, SET, USE, BEGIN,
// COMMIT and ROLLBACK with OK (it keeps no state: the proxy's state replay
// succeeds and changes nothing), COM_PING, COM_INIT_DB,
// COM_RESET_CONNECTION and COM_CHANGE_USER with OK, COM_SET_OPTION with
// EOF, closes on COM_QUIT, and answers anything else with the error a
// server would send (1064 for other statements, 1047 for other commands).
// A packet over 1 MiB gets ERR 1153 and a close; a wrong login ERR 1045.
//
// One locked OS thread runs an epoll loop over non-blocking sockets (the
// listener included): no goroutine wake-ups, no locks. Benchmark use only:
// it listens on loopback addresses and Unix sockets only. Its idea of the protocol is
// mysqlwire's; its tests hold it to go-sql-driver/mysql's.
package fastmysql

import (
	"bytes"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/scalestack/scalestack/mysqlwire"
)

// maxPacket bounds a client's packet: the proxy sends nothing near it.
const maxPacket = 1 << 20

// caps are what the server offers: those the proxy asks of a backend
// (without DEPRECATE_EOF or SESSION_TRACK, so it relays responses as they
// are) and CONNECT_WITH_DB for clients that name a schema.
const caps = mysqlwire.ClientLongPassword | mysqlwire.ClientLongFlag | mysqlwire.ClientConnectWithDB |
	mysqlwire.ClientProtocol41 | mysqlwire.ClientTransactions | mysqlwire.ClientSecureConnection |
	mysqlwire.ClientMultiStatements | mysqlwire.ClientMultiResults | mysqlwire.ClientPSMultiResults |
	mysqlwire.ClientPluginAuth | mysqlwire.ClientPluginAuthLenEncClientData

// Server is the loop and its connections; only the loop's thread touches
// them, except stopping and commands, which are atomics, and wakeFD, which
// wakeMu guards.
type Server struct {
	addr     string
	unixPath string // the socket file to remove at the end, for unix:/path
	user     string
	stored   []byte // SHA1(SHA1(password)); empty: no password
	epfd     int
	lfd      int
	wakeFD   int // eventfd that stop writes to end epoll_wait at once
	// wakeMu orders Stop's write to wakeFD before closeAll's close of it:
	// Stop may run on any goroutine, even after Serve has returned.
	wakeMu   sync.Mutex
	conns    map[int32]*client
	nextID   uint32
	rbuf     []byte
	wbuf     []byte // answers to what one read brought, written in one call
	stopping atomic.Bool
	commands atomic.Uint64

	selectOne, ok, eof []byte // canned answers, sequence ids from 1
}

// client is one connection's state.
type client struct {
	fd       int
	loggedIn bool
	nonce    []byte
	in       []byte // an incomplete packet carried to the next read
	pending  []byte // answers the kernel has not taken; EPOLLOUT is armed while non-empty
}

// Listen opens the listening socket on addr, an IPv4 loopback host:port
// (port 0 picks a free one) or unix:/path (a Unix socket, which costs
// both sides less per query than loopback TCP), and the epoll set; Serve
// then answers clients logging in as user with password (empty: none).
func Listen(addr, user, password string) (*Server, error) {
	s := &Server{user: user, conns: map[int32]*client{}, rbuf: make([]byte, 64<<10), lfd: -1, epfd: -1, wakeFD: -1}
	if password != "" {
		s.stored = mysqlwire.NativePasswordHash([]byte(password))
	}
	s.cannedAnswers()
	fail := func(what string, err error) (*Server, error) {
		s.closeAll()
		return nil, fmt.Errorf("fastmysql: %s: %w", what, err)
	}
	var sa unix.Sockaddr
	family := unix.AF_INET
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		if path == "" {
			return nil, fmt.Errorf("fastmysql: listen address %q: no path", addr)
		}
		family, sa = unix.AF_UNIX, &unix.SockaddrUnix{Name: path}
		s.unixPath = path
	} else {
		host, portText, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("fastmysql: listen address %q: %w", addr, err)
		}
		ip := net.ParseIP(host).To4()
		port, err := strconv.Atoi(portText)
		if ip == nil || !ip.IsLoopback() || err != nil || port < 0 || port > 65535 {
			return nil, fmt.Errorf("fastmysql: listen address %q: want an IPv4 loopback host:port or unix:/path", addr)
		}
		in4 := &unix.SockaddrInet4{Port: port}
		copy(in4.Addr[:], ip)
		sa = in4
	}
	var err error
	if s.lfd, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0); err != nil {
		return fail("socket", err)
	}
	if family == unix.AF_INET {
		if err := unix.SetsockoptInt(s.lfd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return fail("SO_REUSEADDR", err)
		}
	}
	if err := unix.Bind(s.lfd, sa); err != nil {
		s.unixPath = "" // not ours to remove
		return fail("bind "+addr, err)
	}
	if err := unix.Listen(s.lfd, 4096); err != nil {
		return fail("listen", err)
	}
	got, err := unix.Getsockname(s.lfd)
	if err != nil {
		return fail("getsockname", err)
	}
	if in4, ok := got.(*unix.SockaddrInet4); ok {
		s.addr = net.JoinHostPort(net.IP(in4.Addr[:]).String(), strconv.Itoa(in4.Port))
	} else {
		s.addr = addr
	}
	if s.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return fail("epoll_create1", err)
	}
	if s.wakeFD, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		return fail("eventfd", err)
	}
	for _, fd := range []int{s.lfd, s.wakeFD} {
		if err := unix.EpollCtl(s.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil {
			return fail("epoll_ctl", err)
		}
	}
	return s, nil
}

// cannedAnswers builds the fixed responses once: SELECT 1's result set
// (column count, one BIGINT column named "1", EOF, the row, EOF), OK and
// EOF, each starting at sequence id 1, as every command's answer does.
func (s *Server) cannedAnswers() {
	var rs []byte
	seq := uint8(1)
	rs, seq = mysqlwire.AppendPacket(rs, seq, mysqlwire.AppendLenEncInt(nil, 1))
	col := mysqlwire.AppendColumnDefinition(nil, mysqlwire.ColumnDefinition{
		Catalog: []byte("def"), Name: []byte("1"), CharacterSet: 63, ColumnLength: 1,
		Type: mysqlwire.TypeLongLong, Flags: mysqlwire.FlagNotNull | mysqlwire.FlagBinary | mysqlwire.FlagNum,
	})
	rs, seq = mysqlwire.AppendPacket(rs, seq, col)
	rs, seq = mysqlwire.AppendEOF(rs, seq, 0, mysqlwire.StatusAutocommit)
	rs, seq = mysqlwire.AppendPacket(rs, seq, mysqlwire.AppendTextRow(nil, [][]byte{[]byte("1")}))
	s.selectOne, _ = mysqlwire.AppendEOF(rs, seq, 0, mysqlwire.StatusAutocommit)
	s.ok, _ = mysqlwire.AppendOK(nil, 1, caps, mysqlwire.OK{Status: mysqlwire.StatusAutocommit})
	s.eof, _ = mysqlwire.AppendEOF(nil, 1, 0, mysqlwire.StatusAutocommit)
}

// Addr is the address the server listens on (host:port, or unix:/path).
func (s *Server) Addr() string { return s.addr }

// Commands is how many commands (after login) the server has answered.
func (s *Server) Commands() uint64 { return s.commands.Load() }

// Stop ends Serve; safe from any goroutine.
func (s *Server) Stop() {
	s.stopping.Store(true)
	var one [8]byte
	one[0] = 1
	s.wakeMu.Lock()
	defer s.wakeMu.Unlock()
	if s.wakeFD >= 0 {
		_, _ = unix.Write(s.wakeFD, one[:])
	}
}

// Serve runs the loop on the calling goroutine (locked to its thread)
// until Stop, then closes every connection and the listener.
func (s *Server) Serve() error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer s.closeAll()
	events := make([]unix.EpollEvent, 256)
	for !s.stopping.Load() {
		n, err := unix.EpollWait(s.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("epoll_wait: %w", err)
		}
		for _, ev := range events[:n] {
			switch int(ev.Fd) {
			case s.wakeFD:
				continue
			case s.lfd:
				s.accept()
				continue
			}
			c := s.conns[ev.Fd]
			if c == nil {
				continue
			}
			if ev.Events&unix.EPOLLOUT != 0 && !s.flush(c) {
				continue
			}
			if ev.Events&(unix.EPOLLIN|unix.EPOLLHUP|unix.EPOLLERR|unix.EPOLLRDHUP) != 0 {
				s.receive(c)
			}
		}
	}
	return nil
}

func (s *Server) accept() {
	for {
		fd, _, err := unix.Accept4(s.lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) && !errors.Is(err, unix.ECONNABORTED) {
				log.Printf("fastmysql: accept: %v", err)
			}
			return
		}
		if s.unixPath == "" {
			_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		}
		s.nextID++
		nonce, err := mysqlwire.NewScramble()
		if err != nil {
			log.Printf("fastmysql: nonce: %v", err)
			unix.Close(fd)
			continue
		}
		c := &client{fd: fd, nonce: nonce}
		if err := unix.EpollCtl(s.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}); err != nil {
			log.Printf("fastmysql: epoll_ctl: %v", err)
			unix.Close(fd)
			continue
		}
		s.conns[int32(fd)] = c
		greeting, _ := mysqlwire.AppendHandshake(nil, mysqlwire.Handshake{
			ServerVersion:  []byte("10.11.99-MariaDB-fastmysql"),
			ConnectionID:   s.nextID,
			AuthPluginData: nonce,
			Capabilities:   caps,
			CharacterSet:   45,
			Status:         mysqlwire.StatusAutocommit,
			AuthPluginName: []byte(mysqlwire.AuthNativePassword),
		})
		s.send(c, greeting)
	}
}

// receive reads what the connection has, answers every complete packet
// and writes the answers in one call.
func (s *Server) receive(c *client) {
	n, err := unix.Read(c.fd, s.rbuf)
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
		return
	}
	if err != nil || n == 0 {
		s.drop(c)
		return
	}
	data := s.rbuf[:n]
	if len(c.in) > 0 {
		c.in = append(c.in, data...)
		data = c.in
	}
	s.wbuf = s.wbuf[:0]
	open := true
	off := 0
	for open {
		p, ok, err := mysqlwire.ReadPacket(data[off:], maxPacket)
		if err != nil {
			s.wbuf, _ = mysqlwire.AppendERR(s.wbuf, 1, mysqlwire.ErNetPacketTooLarge, "08S01", "Got a packet bigger than 'max_allowed_packet' bytes")
			open = false
			break
		}
		if !ok {
			break
		}
		off += p.Size
		open = s.answer(c, p.Payload, p.Seq)
	}
	rest := data[off:]
	if !open {
		rest = nil
	}
	// Keep an incomplete packet; c.in may alias data, so copy down.
	c.in = append(c.in[:0], rest...)
	if len(s.wbuf) > 0 && !s.send(c, s.wbuf) {
		return
	}
	if !open {
		s.drop(c)
	}
}

// answer appends the response to one packet to s.wbuf and reports whether
// the connection stays open.
func (s *Server) answer(c *client, payload []byte, seq uint8) bool {
	if !c.loggedIn {
		return s.login(c, payload, seq)
	}
	s.commands.Add(1)
	cmd, _ := mysqlwire.CommandOf(payload)
	switch cmd {
	case mysqlwire.ComQuery:
		q := bytes.TrimRight(bytes.TrimSpace(payload[1:]), "; \t\r\n")
		switch {
		case bytes.EqualFold(q, []byte("SELECT 1")):
			s.wbuf = append(s.wbuf, s.selectOne...)
		case hasWordPrefix(q, "SET"), hasWordPrefix(q, "USE"), hasWordPrefix(q, "BEGIN"),
			hasWordPrefix(q, "COMMIT"), hasWordPrefix(q, "ROLLBACK"):
			s.wbuf = append(s.wbuf, s.ok...)
		default:
			s.wbuf, _ = mysqlwire.AppendERR(s.wbuf, 1, mysqlwire.ErParseError, "42000", "fastmysql answers only SELECT 1 (and SET, USE, BEGIN, COMMIT, ROLLBACK with OK)")
		}
	case mysqlwire.ComPing, mysqlwire.ComInitDB, mysqlwire.ComResetConnection, mysqlwire.ComChangeUser:
		s.wbuf = append(s.wbuf, s.ok...)
	case mysqlwire.ComSetOption:
		s.wbuf = append(s.wbuf, s.eof...)
	case mysqlwire.ComQuit:
		return false
	default:
		s.wbuf, _ = mysqlwire.AppendERR(s.wbuf, 1, mysqlwire.ErUnknownComError, "08S01", "Unknown command")
	}
	return true
}

// hasWordPrefix reports whether q starts with the keyword w (any case)
// followed by its end or white space.
func hasWordPrefix(q []byte, w string) bool {
	if len(q) < len(w) || !bytes.EqualFold(q[:len(w)], []byte(w)) {
		return false
	}
	return len(q) == len(w) || q[len(w)] == ' ' || q[len(w)] == '\t' || q[len(w)] == '\n' || q[len(w)] == '\r'
}

// login checks the handshake response: the account, the native scramble
// of its password for this connection's nonce. A failure gets ERR 1045 and
// a close, as on a server.
func (s *Server) login(c *client, payload []byte, seq uint8) bool {
	hr, err := mysqlwire.ParseHandshakeResponse(payload)
	if err != nil || hr.SSLRequest {
		s.wbuf, _ = mysqlwire.AppendERR(s.wbuf, seq+1, mysqlwire.ErHandshakeError, "08S01", "Bad handshake")
		return false
	}
	good := string(hr.Username) == s.user
	if good && len(hr.AuthPlugin) > 0 && string(hr.AuthPlugin) != mysqlwire.AuthNativePassword {
		good = false // a server would switch plugins; the proxy never needs it
	}
	if good {
		if len(s.stored) == 0 {
			good = len(hr.AuthResponse) == 0
		} else {
			_, err := mysqlwire.VerifyNativePassword(s.stored, c.nonce, hr.AuthResponse)
			good = err == nil
		}
	}
	if !good {
		s.wbuf, _ = mysqlwire.AppendERR(s.wbuf, seq+1, mysqlwire.ErAccessDenied, "28000", fmt.Sprintf("Access denied for user '%s'@'localhost' (using password: %s)", hr.Username, yesNo(len(hr.AuthResponse) > 0)))
		return false
	}
	c.loggedIn = true
	s.wbuf, _ = mysqlwire.AppendOK(s.wbuf, seq+1, caps, mysqlwire.OK{Status: mysqlwire.StatusAutocommit})
	return true
}

func yesNo(b bool) string {
	if b {
		return "YES"
	}
	return "NO"
}

// send writes b, keeping what the kernel does not take; it reports whether
// the connection is still open.
func (s *Server) send(c *client, b []byte) bool {
	if len(c.pending) > 0 {
		c.pending = append(c.pending, b...)
		return true
	}
	n, err := unix.Write(c.fd, b)
	if errors.Is(err, unix.EAGAIN) {
		n, err = 0, nil
	}
	if err != nil {
		s.drop(c)
		return false
	}
	if n < len(b) {
		c.pending = append(c.pending[:0], b[n:]...)
		return s.watchWritable(c, true)
	}
	return true
}

// flush writes pending answers once the socket takes them again.
func (s *Server) flush(c *client) bool {
	n, err := unix.Write(c.fd, c.pending)
	if errors.Is(err, unix.EAGAIN) {
		return true
	}
	if err != nil {
		s.drop(c)
		return false
	}
	c.pending = c.pending[:copy(c.pending, c.pending[n:])]
	if len(c.pending) == 0 {
		return s.watchWritable(c, false)
	}
	return true
}

func (s *Server) watchWritable(c *client, on bool) bool {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(c.fd)}
	if on {
		ev.Events |= unix.EPOLLOUT
	}
	if err := unix.EpollCtl(s.epfd, unix.EPOLL_CTL_MOD, c.fd, &ev); err != nil {
		s.drop(c)
		return false
	}
	return true
}

// drop closes a connection (closing the descriptor removes it from the
// epoll set).
func (s *Server) drop(c *client) {
	if _, ok := s.conns[int32(c.fd)]; !ok {
		return
	}
	delete(s.conns, int32(c.fd))
	unix.Close(c.fd)
}

func (s *Server) closeAll() {
	for _, c := range s.conns {
		s.drop(c)
	}
	s.wakeMu.Lock()
	defer s.wakeMu.Unlock()
	for _, fd := range []*int{&s.lfd, &s.wakeFD, &s.epfd} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
	if s.unixPath != "" {
		os.Remove(s.unixPath)
		s.unixPath = ""
	}
}
