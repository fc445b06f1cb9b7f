package mysqlproxy

import (
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/mysqlwire"
	"github.com/scalestack/scalestack/pool"
	"github.com/scalestack/scalestack/reactor"
)

// Config describes a proxy.
type Config struct {
	// Backend is the MySQL/MariaDB server (when Targets is empty).
	Backend conn.Addr
	// Targets, when set, replaces Backend with several servers, each of
	// which must be able to run any statement (a multi-primary cluster):
	// the BackendConns connections are split between the writable ones in
	// proportion to their weights. Read-only targets are recorded for
	// read/write splitting, which does not exist yet: they get no
	// connections.
	Targets []pool.Target
	// User and Password are the service account: every backend connection
	// logs in as it, and changes to a client's identity (COM_CHANGE_USER)
	// when a client of another identity needs it (see Identity).
	User     string
	Password []byte
	// Identity says which server account clients' statements run as: by
	// default (IdentityAccount) each client's own, or the one its
	// users-file line maps it to; IdentityService runs every client as
	// the service account.
	Identity IdentityMode
	// BackendConns is N, the exact number of backend connections (split
	// across the loops).
	BackendConns int
	// Users are the client accounts.
	Users Users
	// MaxClients refuses clients beyond this many logged-in ones with ERR
	// 1040 (0: 10000): as the first packet when they connect, or instead of
	// the login's OK when others logged in first. Clients that have not
	// logged in yet count against MaxPendingLogins instead, so that sockets
	// which never log in cannot lock real clients out.
	MaxClients int
	// MaxPendingLogins refuses, with ERR 1040 as their first packet,
	// clients beyond this many connected and not logged in yet, across
	// the loops (0: 1000).
	MaxPendingLogins int
	// QueueTimeout bounds how long a command waits for a backend
	// connection before the client gets ERR 9001 (0: 10 s).
	QueueTimeout time.Duration
	// ClientWriteTimeout cuts off a client whose output stays over the
	// connection's high-water mark (1 MiB) without any of it being sent for
	// this long (0: 30 s): a client that stops reading must not hold a
	// backend, paused behind it, for ever. The backend it held mid-response
	// is closed (its state is unknown) and reconnects.
	ClientWriteTimeout time.Duration
	// MySQL55 restricts capabilities to MySQL 5.5's and resets backends
	// with COM_CHANGE_USER instead of COM_RESET_CONNECTION.
	MySQL55 bool
	// DeferBegin answers a plain BEGIN (or START TRANSACTION) outside a
	// transaction itself and sends it to the server with the
	// transaction's first statement (txdefer.go); COMMIT or ROLLBACK of a
	// transaction that ran nothing needs no backend at all.
	DeferBegin bool
	// SerialReplay sends every operation that brings a backend to a
	// session's state alone and waits for its response, as before
	// batching (exchange.run); for comparisons and tests.
	SerialReplay bool
	// LoginTimeout bounds how long a client may take to log in (0: 10 s).
	LoginTimeout time.Duration
	// LoginInputBudget bounds, in bytes, the input that clients which have
	// not logged in yet may leave buffered in the proxy, all together
	// (0: DefaultLoginInputBudget). Each such client may hold at most one
	// incomplete login packet of up to 64 KiB; a client whose buffer would
	// take the total over this budget is disconnected.
	LoginInputBudget int64
	// BackendStallTimeout: a backend that has waited this long for the
	// server's answer, with nothing from the server meanwhile (a hung
	// server, or a statement that runs this long before its first row),
	// makes Ready fail (0: never).
	BackendStallTimeout time.Duration
	// ConnectTimeout bounds a backend connect plus handshake (0: 5 s).
	ConnectTimeout time.Duration
	// MaxStmtsPerBackend bounds the server-side prepared statements kept
	// on each backend connection (0: 256).
	MaxStmtsPerBackend int
	// PipelineDepth, when above 0, lets a plain SELECT (pipelineSafe)
	// that would wait for a backend be written at once to a busy backend
	// running such statements in the same state, behind at most
	// PipelineDepth-1 others (pipeline.go). 0: off.
	PipelineDepth int
	// PipelineMaxWait: a backend whose response being read has been
	// awaited this long takes no more riders, so short statements do not
	// queue behind a long one (0: 10 ms).
	PipelineMaxWait time.Duration
	// PipelineAllow is for tests only: statements it reports true for are
	// pipelined as if pipelineSafe said so (the tests prove with it that
	// the server refuses a misjudged write). Never set it in production.
	PipelineAllow func(sql []byte) bool
	// HealthInterval is how long a backend may sit idle before it is
	// checked with COM_PING (0: 2 s).
	HealthInterval time.Duration
	// ServerVersion is announced to clients before any backend is known;
	// once a backend has greeted, its version string is used (empty:
	// "5.5.5-10.11.0-scalestack").
	ServerVersion string
	// Tenants are the tenants' rules (see tenants.go); SetTenants
	// changes them live.
	Tenants Tenants
	// FIFO serves commands waiting for a backend in arrival order
	// instead of by weighted fair queueing between tenants (their
	// weights, min-backends and max-backends are then ignored).
	FIFO bool
	// TLS, when set, offers clients TLS: the greeting carries CLIENT_SSL,
	// and a client's SSLRequest upgrades its connection in place
	// (conn.StartTLSServer) before it sends its HandshakeResponse over TLS.
	// nil: no TLS towards clients (an SSLRequest gets ERR 1043).
	TLS *conn.TLS
	// RequireTLS refuses every login that does not come over TLS with the
	// ERR 1045 (28000) MariaDB sends for an account with REQUIRE SSL (the
	// users-file field require-tls does it per account).
	RequireTLS bool
	// BackendTLS, when set, logs backends in over TLS: after the server's
	// greeting the proxy sends SSLRequest and upgrades the connection
	// (conn.StartTLSClient) with BackendTLS(i) for Targets[i]. A server
	// that does not offer TLS is refused (its connection fails and
	// retries) unless BackendTLSOptional. A TLS connection cannot move
	// between loops, so every backend then stays on the loop that opened
	// it (pool.Config.Stationary).
	BackendTLS func(target int) *conn.TLS
	// BackendTLSOptional logs backends whose server does not offer TLS in
	// in the clear (--backend-tls=preferred).
	BackendTLSOptional bool
	// Logf receives operational messages (backend failures); nil
	// discards them.
	Logf func(format string, args ...any)
}

func (c *Config) withDefaults() (Config, error) {
	cfg := *c
	if cfg.BackendConns <= 0 {
		return cfg, errors.New("pool: BackendConns must be at least 1")
	}
	if cfg.User == "" {
		return cfg, errors.New("pool: backend user is empty")
	}
	if cfg.Users == nil {
		return cfg, errors.New("pool: no users")
	}
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = 10000
	}
	if cfg.MaxPendingLogins <= 0 {
		cfg.MaxPendingLogins = DefaultMaxPendingLogins
	}
	if cfg.QueueTimeout <= 0 {
		cfg.QueueTimeout = 10 * time.Second
	}
	if cfg.ClientWriteTimeout <= 0 {
		cfg.ClientWriteTimeout = 30 * time.Second
	}
	if cfg.LoginTimeout <= 0 {
		cfg.LoginTimeout = 10 * time.Second
	}
	if cfg.LoginInputBudget <= 0 {
		cfg.LoginInputBudget = DefaultLoginInputBudget
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	if len(cfg.Targets) == 0 {
		cfg.Targets = []pool.Target{{Addr: cfg.Backend, Weight: 1}}
	}
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = 2 * time.Second
	}
	if cfg.MaxStmtsPerBackend <= 0 {
		cfg.MaxStmtsPerBackend = 256
	}
	if cfg.PipelineMaxWait <= 0 {
		cfg.PipelineMaxWait = 10 * time.Millisecond
	}
	if cfg.ServerVersion == "" {
		cfg.ServerVersion = "5.5.5-10.11.0-scalestack"
		if cfg.MySQL55 {
			cfg.ServerVersion = "5.5.30-scalestack"
		}
	}
	return cfg, nil
}

// clientCaps is what the proxy offers clients: only capabilities it can
// honour on every backend. No SSL, compression or DEPRECATE_EOF; MariaDB's
// extensions are greetingCaps' (clientExtCaps).
// FOUND_ROWS is honoured by backends of their own class (classFoundRows),
// SESSION_TRACK with a report the proxy builds (clientSessionState).
const clientCaps = mysqlwire.ClientLongPassword | mysqlwire.ClientFoundRows | mysqlwire.ClientLongFlag | mysqlwire.ClientConnectWithDB |
	mysqlwire.ClientLocalFiles | mysqlwire.ClientProtocol41 | mysqlwire.ClientTransactions |
	mysqlwire.ClientSecureConnection | mysqlwire.ClientMultiStatements | mysqlwire.ClientMultiResults |
	mysqlwire.ClientPSMultiResults | mysqlwire.ClientPluginAuth | mysqlwire.ClientPluginAuthLenEncClientData |
	mysqlwire.ClientConnectAttrs | mysqlwire.ClientIgnoreSIGPIPE | mysqlwire.ClientSessionTrack

// backendCaps is what the proxy asks of backends: SESSION_TRACK, so that
// the server reports what each statement changed in its session (OK packets
// are rewritten for clients, which never see the tracking data), but not
// DEPRECATE_EOF, so that result sets can be relayed as they are. A server
// without SESSION_TRACK (and 5.5 mode) gets the scanner's allowlist instead.
const backendCaps = mysqlwire.ClientLongPassword | mysqlwire.ClientLongFlag | mysqlwire.ClientLocalFiles |
	mysqlwire.ClientProtocol41 | mysqlwire.ClientTransactions | mysqlwire.ClientSecureConnection |
	mysqlwire.ClientMultiStatements | mysqlwire.ClientMultiResults | mysqlwire.ClientPSMultiResults |
	mysqlwire.ClientPluginAuth | mysqlwire.ClientPluginAuthLenEncClientData | mysqlwire.ClientSessionTrack |
	clientExtCaps

// clientExtCaps are the MariaDB extended capabilities the proxy offers
// clients when every backend's server offers them: extended type metadata
// (a column's JSON, INET6, UUID... type name), which backends are logged in
// with and which relayColumnDef removes from (or adds, empty, to) column
// definitions for a client that negotiated otherwise than its backend.
// Not progress reports, bulk execution or metadata caching, which change
// the commands or responses the proxy follows.
const clientExtCaps = mysqlwire.MariaDBClientExtendedTypeInfo

// classFoundRows is the pool.Class flag of backends logged in with
// CLIENT_FOUND_ROWS. The flag changes what the server reports as affected
// rows for the whole connection and only a login sets it (COM_CHANGE_USER
// carries no capabilities), so clients that ask for it are served by
// backends of their own class within the N (see session.Granted).
const classFoundRows = 1 << 0

// classFor is the class of backend a client with capabilities caps needs.
func classFor(caps mysqlwire.Capabilities) pool.Class {
	var c pool.Class
	if caps&mysqlwire.ClientFoundRows != 0 {
		c.Flags |= classFoundRows
	}
	return c
}

// Proxy is a running MySQL connection-concentrating proxy. It is the
// pool.Protocol of its pool.
type Proxy struct {
	cfg   Config
	pool  *pool.Pool
	loops []*proxyLoop
	// backends are the MySQL sides of the pool's backends, by
	// pool.Backend.Index.
	backends []*backend
	ln       *conn.Listener
	stopping atomic.Bool
	// closed is closed by Close; a drain in progress stops waiting.
	closed    chan struct{}
	closeOnce sync.Once
	drainOnce sync.Once
	draining  atomic.Bool
	drained   chan struct{} // closed when Drain has finished
	version   atomic.Pointer[string]
	// trackLevels are, by Config.Targets index, how much session tracking
	// each target's server accepts (a trackLevel; only ever raised).
	trackLevels []atomic.Uint32
	// Settings that Reload changes while the loops run: the loops read
	// them with atomic loads.
	users        atomic.Pointer[Users]
	tenantRules  atomic.Pointer[Tenants]
	tenantTable  atomic.Pointer[tenantTable]
	tenantsMu    sync.Mutex // serialises rebuildTenants (reloads, never the loops)
	maxClients   atomic.Int64
	userStats    userStatsRegistry
	clientCaps   mysqlwire.Capabilities
	backendCaps  mysqlwire.Capabilities
	collation    uint8  // what backends are opened with
	defaultNames string // the SET NAMES fragment equal to collation
	// loginInput is shared by the connections of every loop whose client
	// has not logged in yet (see Config.LoginInputBudget).
	loginInput *conn.InputBudget
	memReturn  memoryReturn

	clientWriteTimeout atomic.Int64 // nanoseconds; read by the loops like queueTimeout

	// failedLogins and loginCloses log failed logins and clients gone
	// during login at most once a second each, with a count.
	failedLogins, loginCloses logThrottle

	// pendingLogins counts clients of every loop that have a session and
	// have not logged in yet (once per login, not per packet: one atomic
	// shared by the loops is fine); maxPendingLogins bounds it.
	pendingLogins    atomic.Int64
	maxPendingLogins atomic.Int64

	// unknownUser stands in for a login name no account has: random
	// hashes that no password matches (and a check that refuses it
	// anyway), so that the exchange looks like a wrong password.
	unknownUser *User

	// extCaps are the clientExtCaps every backend greeting so far offered
	// (see noteBackendCaps): what new clients are offered.
	extCaps atomic.Uint64
	// idents are the server accounts backends log in as (identity.go).
	idents *identities
}

// New validates cfg and returns a proxy that Start runs.
func New(cfg Config) (*Proxy, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &Proxy{cfg: c, clientCaps: clientCaps, backendCaps: backendCaps, collation: 45, closed: make(chan struct{}),
		loginInput: conn.NewInputBudget(c.LoginInputBudget), trackLevels: make([]atomic.Uint32, len(c.Targets))}
	if c.TLS != nil {
		p.clientCaps |= mysqlwire.ClientSSL
	}
	p.extCaps.Store(uint64(clientExtCaps))
	if c.MySQL55 {
		p.clientCaps &= mysqlwire.MySQL55Caps
		p.backendCaps &= mysqlwire.MySQL55Caps
		p.collation = 33
		p.extCaps.Store(0)
	}
	p.defaultNames = collationNames[uint16(p.collation)]
	p.idents = newIdentities(c.User, c.Password)
	p.unknownUser = &User{Name: "(unknown)", Native: make([]byte, 20), SHA2: make([]byte, 32)}
	if _, err := rand.Read(p.unknownUser.Native); err != nil {
		return nil, fmt.Errorf("pool: %w", err)
	}
	if _, err := rand.Read(p.unknownUser.SHA2); err != nil {
		return nil, fmt.Errorf("pool: %w", err)
	}
	sched := pool.NewFair
	if c.FIFO {
		sched = pool.NewFIFO
	}
	pl, err := pool.New(pool.Config{
		NewScheduler:   sched,
		Targets:        c.Targets,
		Conns:          c.BackendConns,
		ConnectTimeout: c.ConnectTimeout,
		HealthInterval: c.HealthInterval,
		QueueTimeout:   c.QueueTimeout,
		StallTimeout:   c.BackendStallTimeout,
		Stationary:     c.BackendTLS != nil,
		Logf:           c.Logf,
	}, p)
	if err != nil {
		return nil, err
	}
	p.pool = pl
	p.failedLogins = logThrottle{p: p, what: "failed logins"}
	p.loginCloses = logThrottle{p: p, what: "clients closed during login"}
	v := c.ServerVersion
	p.version.Store(&v)
	p.tenantRules.Store(&c.Tenants)
	p.SetUsers(c.Users)
	p.SetQueueTimeout(c.QueueTimeout)
	p.SetClientWriteTimeout(c.ClientWriteTimeout)
	p.SetMaxClients(c.MaxClients)
	p.SetMaxPendingLogins(c.MaxPendingLogins)
	return p, nil
}

// StartBackends opens the backend connections on e's loops. Call it from
// outside the loops, after e.Start, before clients are accepted through
// ListenConfig.
func (p *Proxy) StartBackends(e *reactor.Engine) error {
	if err := p.pool.Prepare(e); err != nil {
		return err
	}
	for i, lp := range p.pool.Loops() {
		p.loops = append(p.loops, newProxyLoop(p, lp, i))
	}
	p.userStats.setLoops(len(p.loops))
	return p.pool.Start(e)
}

// ListenConfig describes the client listener for addr: sessions, and the
// ER_CON_COUNT_ERROR refusal beyond MaxClients. StartBackends must run
// before the listener opens.
func (p *Proxy) ListenConfig(addr conn.Addr) conn.ListenConfig {
	return conn.ListenConfig{
		Addr: addr,
		// The client limit is enforced by newSession against a value that
		// Reload can change, not by the listener's fixed MaxConns.
		NewHandler: p.newSession,
	}
}

// Start opens the backends and listens on addr (StartBackends, then
// conn.Listen with ListenConfig).
func (p *Proxy) Start(e *reactor.Engine, addr conn.Addr) error {
	if err := p.StartBackends(e); err != nil {
		return err
	}
	ln, err := conn.Listen(e, p.ListenConfig(addr))
	if err != nil {
		return fmt.Errorf("pool: %w", err)
	}
	p.ln = ln
	return nil
}

// Ready reports an error while fewer than BackendConns backend
// connections are logged in, and once Drain has been called (so a load
// balancer stops sending clients).
func (p *Proxy) Ready() error {
	if p.draining.Load() {
		return errors.New("draining: the proxy is shutting down")
	}
	return p.pool.Ready()
}

// Addr returns the listening address.
func (p *Proxy) Addr() conn.Addr { return p.ln.Addr() }

// Close stops accepting clients (when Start opened the listener), keeps
// backends from reconnecting and ends a Drain's waiting; the engine's Stop
// closes what remains.
func (p *Proxy) Close() error {
	p.stopping.Store(true)
	p.pool.Stop()
	p.closeOnce.Do(func() {
		close(p.closed)
		p.failedLogins.stop()
		p.loginCloses.stop()
	})
	if p.ln != nil {
		return p.ln.Close()
	}
	return nil
}

func (p *Proxy) logf(format string, args ...any) {
	if p.cfg.Logf != nil {
		p.cfg.Logf(format, args...)
	}
}

func (p *Proxy) loopOf(l *reactor.Loop) *proxyLoop { return p.loops[l.ID()] }

// Stats sums every loop's counters, the pool's included.
func (p *Proxy) Stats() StatsSnapshot {
	var s StatsSnapshot
	for _, pl := range p.loops {
		pl.stats.addTo(&s)
	}
	s.StatsSnapshot = p.pool.Stats()
	s.PendingLogins = p.pendingLogins.Load()
	return s
}

// refusal answers a client over --max-clients (or --max-pending-logins)
// with ER_CON_COUNT_ERROR as its first packet, as MySQL does, then closes.
type refusal struct{}

func (p *Proxy) refuse(c *conn.Conn) conn.Handler {
	p.loopOf(c.Loop()).stats.ClientsRefused.Add(1)
	return refusal{}
}

// refusePending refuses a client over --max-pending-logins the same way:
// a client caught in a storm of strangers gets an error drivers know as
// "retry later", rather than a close that looks like a network fault, for
// the price of one small write.
func (p *Proxy) refusePending(c *conn.Conn) conn.Handler {
	p.loopOf(c.Loop()).stats.PendingLoginsRefused.Add(1)
	return refusal{}
}

func (refusal) OnOpen(c *conn.Conn) {
	pkt, _ := errTooManyConnections.appendERR(nil, 0)
	c.Write(pkt)
	c.Close()
}
func (refusal) OnData(c *conn.Conn, data []byte) int { return len(data) }
func (refusal) OnClose(*conn.Conn, error)            {}

// noteBackendCaps narrows the extended capabilities offered to clients to
// those of a backend's greeting: a server that lacks one (MySQL, MariaDB
// before 10.5) withdraws it for good. A client that negotiated it before is
// still served (relayColumnDef adds empty metadata).
func (p *Proxy) noteBackendCaps(c mysqlwire.Capabilities) {
	for {
		old := p.extCaps.Load()
		narrowed := old & (uint64(c) >> 32 << 32)
		if narrowed == old || p.extCaps.CompareAndSwap(old, narrowed) {
			return
		}
	}
}

// greetingCaps are the capabilities a client's greeting offers. MariaDB's
// extended ones travel only with CLIENT_MYSQL (bit 0) clear, as MariaDB's
// own greeting has it.
func (p *Proxy) greetingCaps() mysqlwire.Capabilities {
	caps := p.clientCaps
	if ext := mysqlwire.Capabilities(p.extCaps.Load()); ext != 0 {
		caps = caps&^mysqlwire.ClientMySQL | ext
	}
	return caps
}
