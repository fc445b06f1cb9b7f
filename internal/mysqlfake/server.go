package mysqlfake

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"

	"github.com/scalestack/scalestack/mysqlwire"
)

// Flavor selects what the double pretends to be.
type Flavor int

const (
	// MariaDB is a MariaDB 10.11-like server (the default): CLIENT_PLUGIN_AUTH,
	// CONNECT_ATTRS, SESSION_TRACK, DEPRECATE_EOF and MariaDB's extended
	// capabilities.
	MariaDB Flavor = iota
	// MySQL55 is a MySQL 5.5-like server: capabilities up to
	// CLIENT_PLUGIN_AUTH only (no DEPRECATE_EOF, no session tracking, no
	// COM_RESET_CONNECTION) and mysql_native_password.
	MySQL55
)

// MariaDBCaps is what the double offers by default: MariaDB 10.11's
// capabilities less those it does not implement (SSL, compression,
// COM_MULTI, bulk execution).
const MariaDBCaps = mysqlwire.ClientFoundRows | mysqlwire.ClientLongFlag | mysqlwire.ClientConnectWithDB |
	mysqlwire.ClientNoSchema | mysqlwire.ClientODBC | mysqlwire.ClientLocalFiles | mysqlwire.ClientIgnoreSpace |
	mysqlwire.ClientProtocol41 | mysqlwire.ClientInteractive | mysqlwire.ClientIgnoreSIGPIPE |
	mysqlwire.ClientTransactions | mysqlwire.ClientReserved | mysqlwire.ClientSecureConnection |
	mysqlwire.ClientMultiStatements | mysqlwire.ClientMultiResults | mysqlwire.ClientPSMultiResults |
	mysqlwire.ClientPluginAuth | mysqlwire.ClientConnectAttrs | mysqlwire.ClientPluginAuthLenEncClientData |
	mysqlwire.ClientCanHandleExpiredPasswords | mysqlwire.ClientSessionTrack | mysqlwire.ClientDeprecateEOF |
	mysqlwire.MariaDBClientProgress | mysqlwire.MariaDBClientExtendedTypeInfo

// Account is a login the double accepts.
type Account struct {
	User, Password string
	// Plugin is the account's authentication plugin: "" or
	// mysql_native_password, or caching_sha2_password. A client that starts
	// with another plugin is switched to it (AuthSwitchRequest).
	Plugin string
	// FullAuth makes caching_sha2_password logins miss the server's cache:
	// the client must fetch the RSA public key and send the encrypted
	// password (only meaningful with Plugin caching_sha2_password).
	FullAuth bool
}

// Config describes a double. The zero value is a MariaDB-like server on a
// loopback port accepting root with an empty password.
type Config struct {
	Flavor Flavor
	// Version is the greeting's server version; empty: "5.5.5-10.11.6-MariaDB-fake"
	// for MariaDB, "5.5.62-fake" for MySQL55.
	Version string
	// Capabilities offered in the greeting; zero: the flavor's (MariaDBCaps,
	// or MySQL55Caps less CLIENT_SSL and CLIENT_COMPRESS).
	Capabilities mysqlwire.Capabilities
	// AuthPlugin is the plugin named in the greeting; empty:
	// mysql_native_password.
	AuthPlugin string
	// Accounts are the logins accepted; empty: root with no password.
	Accounts []Account
	// Schemas are the databases COM_INIT_DB, USE and a handshake's database
	// accept (information_schema always exists); others get ERR 1049.
	Schemas []string
	// MaxAllowedPacket bounds a request payload, split packets joined
	// (and the data sent for one parameter with COM_STMT_SEND_LONG_DATA);
	// larger gets ERR 1153 and a close, like the server. Zero: 64 MiB.
	MaxAllowedPacket int
	// MaxConns bounds concurrent connections (ERR 1040 beyond). Zero: 1000.
	MaxConns int
	// MaxPreparedStmts bounds the prepared statements of all connections
	// (ERR 1461 beyond). Zero: 16382, the server's default.
	MaxPreparedStmts int
	// LogLimit is how many commands the log keeps, per connection and for
	// the whole server (the oldest go first); LogPayload is how many bytes
	// of each payload an entry keeps. Zero: 4096 and 256.
	LogLimit, LogPayload int
	// Addr is the TCP address to listen on; empty: a free loopback port.
	// Reusing a closed double's Addr restarts "the server" in place.
	Addr string
	// Unix, when set, is a unix socket path the double also listens on.
	Unix string
	// Logf, when set, receives connection errors.
	Logf func(format string, args ...any)
}

// Stats are the double's counters.
type Stats struct {
	Accepted   int64 // connections accepted
	Refused    int64 // refused with ERR 1040 (too many connections)
	LoggedIn   int64 // successful logins (COM_CHANGE_USER included)
	AuthFailed int64 // logins refused
	Active     int64 // connections open now
	// Commands counts the commands received, by command byte.
	Commands map[mysqlwire.Command]int64
}

// Entry is one logged command.
type Entry struct {
	ConnID uint32
	Cmd    mysqlwire.Command
	// Len is the whole payload's length; Payload holds at most
	// Config.LogPayload bytes of it (command byte included).
	Len     int
	Payload []byte
	// Pipelined: the command had reached the double before the response
	// to the previous one was written (it came in the same read): the
	// client sent it without waiting for that response.
	Pipelined bool
}

// SQL returns the statement text of a COM_QUERY or COM_STMT_PREPARE entry
// (possibly cut at Config.LogPayload), or "".
func (e Entry) SQL() string {
	if (e.Cmd == mysqlwire.ComQuery || e.Cmd == mysqlwire.ComStmtPrepare) && len(e.Payload) > 0 {
		return string(e.Payload[1:])
	}
	return ""
}

// Server is a running double.
type Server struct {
	cfg       Config
	lns       []net.Listener
	addr      string
	wg        sync.WaitGroup
	closed    chan struct{}
	closeOnce sync.Once

	mu       sync.Mutex
	rules    []*rule
	fallback HandlerFunc
	conns    map[uint32]*Conn
	nextID   uint32
	stats    Stats
	log      ring
	stmts    int // prepared statements open, all connections
	rsaKey   *rsa.PrivateKey
	rsaPEM   []byte
}

// Start runs a double on a free loopback port (and Config.Unix) until the
// test ends.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// New runs a double until Close; Start is the form for tests.
func New(cfg Config) (*Server, error) {
	if cfg.Version == "" {
		cfg.Version = "5.5.5-10.11.6-MariaDB-fake"
		if cfg.Flavor == MySQL55 {
			cfg.Version = "5.5.62-fake"
		}
	}
	if cfg.Capabilities == 0 {
		cfg.Capabilities = MariaDBCaps
		if cfg.Flavor == MySQL55 {
			cfg.Capabilities = mysqlwire.MySQL55Caps &^ (mysqlwire.ClientSSL | mysqlwire.ClientCompress)
		}
	}
	if cfg.Flavor == MySQL55 {
		cfg.Capabilities &= mysqlwire.MySQL55Caps
	}
	if cfg.AuthPlugin == "" {
		cfg.AuthPlugin = mysqlwire.AuthNativePassword
	}
	if len(cfg.Accounts) == 0 {
		cfg.Accounts = []Account{{User: "root"}}
	}
	for _, a := range cfg.Accounts {
		if a.Plugin != "" && a.Plugin != mysqlwire.AuthNativePassword && a.Plugin != mysqlwire.AuthCachingSHA2 {
			return nil, fmt.Errorf("mysqlfake: account %q: unsupported plugin %q", a.User, a.Plugin)
		}
	}
	if cfg.MaxAllowedPacket <= 0 {
		cfg.MaxAllowedPacket = 64 << 20
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 1000
	}
	if cfg.MaxPreparedStmts <= 0 {
		cfg.MaxPreparedStmts = 16382
	}
	if cfg.LogLimit <= 0 {
		cfg.LogLimit = 4096
	}
	if cfg.LogPayload <= 0 {
		cfg.LogPayload = 256
	}
	s := &Server{cfg: cfg, closed: make(chan struct{}), conns: make(map[uint32]*Conn), nextID: 1,
		stats: Stats{Commands: make(map[mysqlwire.Command]int64)}, log: ring{limit: cfg.LogLimit}}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("mysqlfake: listen: %w", err)
	}
	s.lns = append(s.lns, ln)
	s.addr = ln.Addr().String()
	if cfg.Unix != "" {
		uln, err := net.Listen("unix", cfg.Unix)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("mysqlfake: listen on %s: %w", cfg.Unix, err)
		}
		s.lns = append(s.lns, uln)
	}
	for _, l := range s.lns {
		s.wg.Add(1)
		go s.accept(l)
	}
	return s, nil
}

// Addr is the double's TCP address (host:port).
func (s *Server) Addr() string { return s.addr }

// Close stops listening, cuts every connection (hanging handlers included)
// and waits for their goroutines.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.closed)
		for _, l := range s.lns {
			l.Close()
		}
		s.mu.Lock()
		for _, c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
		if s.cfg.Unix != "" {
			os.Remove(s.cfg.Unix)
		}
	})
}

func (s *Server) accept(l net.Listener) {
	defer s.wg.Done()
	for {
		nc, err := l.Accept()
		if err != nil {
			select {
			case <-s.closed:
			default:
				s.logf("accept: %v", err)
			}
			return
		}
		s.mu.Lock()
		select {
		case <-s.closed:
			s.mu.Unlock()
			nc.Close()
			return
		default:
		}
		s.stats.Accepted++
		id := s.nextID
		s.nextID++
		c := newConn(s, nc, id)
		if len(s.conns) >= s.cfg.MaxConns {
			s.stats.Refused++
			s.mu.Unlock()
			c.refuse()
			continue
		}
		s.conns[id] = c
		s.stats.Active++
		s.wg.Add(1)
		s.mu.Unlock()
		go c.serve()
	}
}

func (s *Server) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf("mysqlfake: "+format, args...)
	}
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Commands = make(map[mysqlwire.Command]int64, len(s.stats.Commands))
	for k, v := range s.stats.Commands {
		st.Commands[k] = v
	}
	return st
}

// Conns returns the open connections, oldest first.
func (s *Server) Conns() []*Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Conn, 0, len(s.conns))
	for id := uint32(1); id < s.nextID && len(out) < len(s.conns); id++ {
		if c := s.conns[id]; c != nil {
			out = append(out, c)
		}
	}
	return out
}

// LoggedInConns counts the open connections past their login.
func (s *Server) LoggedInConns() int {
	n := 0
	for _, c := range s.Conns() {
		if c.State().LoggedIn {
			n++
		}
	}
	return n
}

// Log returns the commands every connection sent, in arrival order (the
// last Config.LogLimit of them).
func (s *Server) Log() []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.entries()
}

// Queries returns the text of every logged COM_QUERY, in order.
func (s *Server) Queries() []string {
	var out []string
	for _, e := range s.Log() {
		if e.Cmd == mysqlwire.ComQuery {
			out = append(out, e.SQL())
		}
	}
	return out
}

// ResetLog forgets the server-wide log (connections keep their own).
func (s *Server) ResetLog() {
	s.mu.Lock()
	s.log = ring{limit: s.cfg.LogLimit}
	s.mu.Unlock()
}

// KillAll resets every open connection, as a crashing server would.
func (s *Server) KillAll() {
	for _, c := range s.Conns() {
		c.Kill()
	}
}

func (s *Server) record(e Entry) {
	s.mu.Lock()
	s.stats.Commands[e.Cmd]++
	s.log.add(e)
	s.mu.Unlock()
}

func (s *Server) forget(c *Conn) {
	s.mu.Lock()
	delete(s.conns, c.id)
	s.stats.Active--
	s.mu.Unlock()
}

func (s *Server) account(user string) (Account, bool) {
	for _, a := range s.cfg.Accounts {
		if a.User == user {
			return a, true
		}
	}
	return Account{}, false
}

func (s *Server) knownSchema(name string) bool {
	if name == "information_schema" {
		return true
	}
	for _, sc := range s.cfg.Schemas {
		if sc == name {
			return true
		}
	}
	return false
}

// reserveStmt counts a new prepared statement against MaxPreparedStmts.
func (s *Server) reserveStmt() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stmts >= s.cfg.MaxPreparedStmts {
		return false
	}
	s.stmts++
	return true
}

func (s *Server) releaseStmts(n int) {
	s.mu.Lock()
	s.stmts -= n
	s.mu.Unlock()
}

// PreparedStmts is the number of prepared statements open on all
// connections (what Prepared_stmt_count shows).
func (s *Server) PreparedStmts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stmts
}

// publicKey returns the RSA key pair for caching_sha2 full authentication,
// made on first use (it takes a while).
func (s *Server) publicKey() (*rsa.PrivateKey, []byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rsaKey == nil {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, nil, err
		}
		pem, err := mysqlwire.MarshalRSAPublicKeyPEM(&k.PublicKey)
		if err != nil {
			return nil, nil, err
		}
		s.rsaKey, s.rsaPEM = k, pem
	}
	return s.rsaKey, s.rsaPEM, nil
}

// ring keeps the last limit entries.
type ring struct {
	limit int
	buf   []Entry
	next  int
}

func (r *ring) add(e Entry) {
	if len(r.buf) < r.limit {
		r.buf = append(r.buf, e)
		return
	}
	r.buf[r.next] = e
	r.next = (r.next + 1) % r.limit
}

func (r *ring) entries() []Entry {
	out := make([]Entry, 0, len(r.buf))
	out = append(out, r.buf[r.next:]...)
	return append(out, r.buf[:r.next]...)
}

var errClosed = errors.New("mysqlfake: connection closed")
