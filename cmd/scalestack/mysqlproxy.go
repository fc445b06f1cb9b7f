package main

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/pool"
	"github.com/scalestack/scalestack/pool/mysqlproxy"
)

func mysqlProxyFlags(stderr io.Writer) (*flag.FlagSet, *engineFlags, func() (module, error)) {
	fs, ef := newServerFlags("mysqlproxy", stderr, "127.0.0.1:6070")
	listen := fs.String("listen", "127.0.0.1:6033", "address clients connect to: host:port, or unix:/path")
	backend := fs.String("backend", "", "MySQL/MariaDB server: host:port, or unix:/path (required); several servers that can each run any statement (a multi-primary cluster) as a comma-separated list, each with an optional =WEIGHT, share --backend-conns by weight")
	backendReadOnly := fs.String("backend-read-only", "", "replicas (same syntax as --backend), recorded for read/write splitting, which is not implemented yet: they get no connections")
	backendUser := fs.String("backend-user", "", "service account: every backend connection logs in as it, then changes (COM_CHANGE_USER) to the account of a client that needs it (required)")
	backendIdentity := fs.String("backend-identity", "account", "which server account clients' statements run as: 'account', each client's own (derived from its mysql_native_password login; the account must exist on the server with the same password for the proxy's host) or the one its users-file line maps it to with backend=; 'service', every client as --backend-user (for a database that one application uses, whose accounts exist only in the users file)")
	backendPasswordFile := fs.String("backend-password-file", "", "file whose first line is the service account's password (empty: no password); refused if group- or world-writable")
	backendConns := fs.Int("backend-conns", 128, "exact number of backend connections, opened at start, split across the loops and kept at that number")
	usersFile := fs.String("users", "", "users file, one 'NAME:native=HEX:sha2=HEX' line per client account: hex SHA1(SHA1(password)) and hex SHA256(SHA256(password)), never the password (make lines with 'scalestack passwd NAME'); refused if group- or world-writable (required)")
	maxClients := fs.Int("max-clients", 10000, "logged-in clients beyond this many get ERR 1040 (08004) 'Too many connections' (as their first packet, or instead of the login's OK when others logged in first); clients still logging in count against --max-pending-logins instead")
	maxPendingLogins := fs.Int("max-pending-logins", mysqlproxy.DefaultMaxPendingLogins, "clients connected and not logged in yet beyond this many get ERR 1040 (08004) 'Too many connections' as their first packet, so that sockets that never log in cannot lock real clients out of --max-clients")
	queueTimeout := fs.Duration("queue-timeout", 10*time.Second, "how long a command waits for a free backend before the client gets ERR 9001 (HY000); the client stays connected")
	clientWriteTimeout := fs.Duration("client-write-timeout", 30*time.Second, "a client whose unsent output stays over 1 MiB with none of it taken for this long (it stopped reading) is disconnected; the backend it held mid-result is closed and reconnects")
	maxStmts := fs.Int("backend-max-stmts", 256, "prepared statements kept per backend connection; the least recently used is closed beyond it")
	pipelineDepth := fs.Int("pipeline-depth", 0, "when no backend is free, write a plain SELECT (or EXECUTE of one) at once to a busy backend running such statements for sessions in the same state, up to this many commands in flight on it; those backends run in a read-only session (SET SESSION TRANSACTION READ ONLY) so a misjudged write fails with ERR 1792 (0: off)")
	loginTimeout := fs.Duration("login-timeout", 10*time.Second, "a client must finish its login (TLS handshake included) within this of connecting, else it is closed; unauthenticated sockets hold only a pending-login slot meanwhile (--max-pending-logins)")
	stallTimeout := fs.Duration("backend-stall-timeout", 10*time.Second, "a backend that has waited this long for the server's answer with nothing from it (a hung server, or a statement that runs this long before its first row) makes /readyz fail (0: off)")
	healthInterval := fs.Duration("health-interval", 2*time.Second, "a backend idle this long is checked with COM_PING; one that does not answer within the connect timeout is reconnected")
	loginInputMiB := fs.Int("login-input-mib", mysqlproxy.DefaultLoginInputBudget>>20, "MiB of input that clients which have not logged in yet may leave buffered, all together; each may hold one incomplete login packet of up to 64 KiB (a larger one gets ERR 1153), and one that would go over this is disconnected")
	perUserMetrics := fs.Bool("per-user-metrics", false, "export per-account series (user_connections, user_logins_total, user_commands_total, labelled with the users file's account names) on /metrics; off by default so that whoever reaches /metrics does not learn the account names")
	scheduler := fs.String("scheduler", "fair", "how commands waiting for a backend are served: fair (weighted fair queueing between tenants, FIFO within one; see the [tenants] tables of --config) or fifo (arrival order; the tenants' weights, min-backends and max-backends are ignored, their other limits hold)")
	deferBegin := fs.Bool("defer-begin", true, "answer a plain BEGIN/START TRANSACTION outside a transaction at the proxy and send it to the server in one write with the transaction's first statement (a COMMIT or ROLLBACK of an empty transaction needs no backend)")
	mysql55 := fs.Bool("mysql55", false, "offer clients only MySQL 5.5 capabilities and reset backends with COM_CHANGE_USER instead of COM_RESET_CONNECTION")
	var tlsf mysqlTLSFlags
	tlsf.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: scalestack mysqlproxy --backend HOST:PORT --backend-user U --backend-password-file F --users FILE [flags]

Multiplexes many MySQL client connections onto exactly --backend-conns backend
connections. A client holds a backend only while one command runs, unless its
session state pins it (a transaction, autocommit=0, LOCK TABLES, GET_LOCK,
user variables, temporary tables, SQL_CALC_FOUND_ROWS, text PREPARE, an open
cursor, a SET the proxy cannot replay). The schema, character set and common
session variables are tracked and replayed instead; prepared statements get
proxy-side ids and are prepared lazily on whichever backend runs them.

Clients authenticate against the users file (mysql_native_password; with
--backend-identity service also caching_sha2_password: its fast path, and its
full authentication over TLS). Backends log in as --backend-user and change
(COM_CHANGE_USER) to the server account a client runs as: by default its own,
with the server's grants (the proxy derives SHA1(password) from the client's
login: the account must exist on the server with the same
mysql_native_password password), or the one its users-file line names with
backend= (and backend-password-file=). An account the server refuses gets its
ERROR 1045 at the first command and is disconnected.

TLS: with --tls-cert and --tls-key the greeting offers TLS and a client's
SSLRequest upgrades its connection; --require-tls (or the users-file field
require-tls) refuses logins without it. --backend-tls logs the backends in
over TLS.

Errors the proxy sends itself:
  1040 08004  more than --max-clients clients logged in, or more than
              --max-pending-logins clients not logged in yet
  1045 28000  unknown user or wrong password; a login without TLS for an
              account that requires it (as MariaDB's REQUIRE SSL); and, at the
              first command, an account the server refuses (its own error,
              relayed)
  1153 08S01  a packet over 64 MiB, or over 64 KiB before login (the
              connection is closed)
  9001 HY000  waited --queue-timeout for a backend (the client stays connected)
  9003 HY000  the backend server cannot be reached (every connection is down
              and reconnecting fails); sent at once instead of waiting
  9004 08S01  the backend broke during the command
  1053 08S01  shutting down (see below)
  1203 42000  a login beyond its tenant's max-clients (the connection is closed)
  1226 42000  a command beyond its tenant's max-qps (the client stays connected)
  9006 HY000  a command that would wait beside its tenant's max-queued ones
  9007 42000  a statement that would raise or lift its tenant's
              max-statement-time (a statement that runs longer gets the
              server's own 1969 70100)

Tenants: an account's tenant is its users-file field tenant=NAME, or its
own name. Commands waiting for a backend are served by weighted fair
queueing between tenants (--scheduler). [tenants.NAME] tables in the
--config file set weight, min-backends, max-backends, max-clients,
max-queued, queue-timeout, max-qps and max-statement-time; keys right under
[tenants] are the defaults (see cmd/scalestack/dist/mysqlproxy.toml).

A client that stops reading a result is disconnected once its unsent output
has stayed over 1 MiB for --client-write-timeout with none of it taken; the
backend it held is closed (its state is unknown) and reconnects.

Live reload (SIGHUP or POST /reload on --admin): the --config file and the
users file are read again; users, the [tenants] tables, --log-level,
--max-clients, --max-pending-logins, --queue-timeout, --client-write-timeout
and the TLS files (--tls-cert, --tls-key, --tls-ca, --backend-tls-ca; for
new handshakes) take effect without dropping a client. Other changed
settings are reported as needing a restart. POST /reload is refused (403) when a browser sends it
for a page of another origin than the admin address.

Shutdown (SIGTERM, SIGINT, or a new process taking over --upgrade-socket):
accepting stops at once, and sessions are served as usual for
--shutdown-timeout or until every client has left. Then each session is
closed at its next idle point with ERR 1053 "Server shutdown in progress":
an idle one at once (an open transaction is rolled back), one running a
statement as soon as its result has been sent; a statement still running 1s
after the timeout is cut off. Backend connections are closed with COM_QUIT
once no session uses them, and the process exits.

Flags:
`)
		fs.PrintDefaults()
	}
	return fs, ef, func() (module, error) {
		if *backend == "" || *backendUser == "" || *usersFile == "" {
			return module{}, fmt.Errorf("--backend, --backend-user and --users are required")
		}
		if *loginTimeout <= 0 {
			return module{}, fmt.Errorf("--login-timeout: want a positive duration, got %v", *loginTimeout)
		}
		if *maxPendingLogins <= 0 {
			return module{}, fmt.Errorf("--max-pending-logins: want a positive number, got %d", *maxPendingLogins)
		}
		if *loginInputMiB <= 0 {
			return module{}, fmt.Errorf("--login-input-mib: want a positive number of MiB, got %d", *loginInputMiB)
		}
		identity, err := mysqlproxy.ParseIdentityMode(*backendIdentity)
		if err != nil {
			return module{}, fmt.Errorf("--backend-identity: %w", err)
		}
		var password []byte
		if *backendPasswordFile != "" {
			pw, err := mysqlproxy.ReadPasswordFile(*backendPasswordFile)
			if err != nil {
				return module{}, fmt.Errorf("--backend-password-file: %w", err)
			}
			password = pw
		}
		users, err := loadProxyUsers(*usersFile)
		if err != nil {
			return module{}, fmt.Errorf("--users: %w", err)
		}
		if *scheduler != "fair" && *scheduler != "fifo" {
			return module{}, fmt.Errorf("--scheduler: want fair or fifo, got %q", *scheduler)
		}
		tenants, err := readTenants(ef.configFile, *backendConns)
		if err != nil {
			return module{}, err
		}
		laddr, err := conn.ParseAddr(*listen)
		if err != nil {
			return module{}, fmt.Errorf("--listen: %w", err)
		}
		targets, err := pool.ParseTargets(*backend, *backendReadOnly)
		if err != nil {
			return module{}, fmt.Errorf("--backend: %w", err)
		}
		tlsSetup, err := tlsf.build(targets)
		if err != nil {
			return module{}, err
		}
		for _, t := range targets {
			if t.ReadOnly {
				logger.Warn("read-only backend recorded but unused: read/write splitting is not implemented", "backend", t.Addr.String())
			}
		}
		p, err := mysqlproxy.New(mysqlproxy.Config{
			Targets:             targets,
			User:                *backendUser,
			Password:            password,
			Identity:            identity,
			BackendConns:        *backendConns,
			Users:               users,
			MaxClients:          *maxClients,
			MaxPendingLogins:    *maxPendingLogins,
			QueueTimeout:        *queueTimeout,
			ClientWriteTimeout:  *clientWriteTimeout,
			MaxStmtsPerBackend:  *maxStmts,
			PipelineDepth:       *pipelineDepth,
			HealthInterval:      *healthInterval,
			BackendStallTimeout: *stallTimeout,
			LoginTimeout:        *loginTimeout,
			LoginInputBudget:    int64(*loginInputMiB) << 20,
			MySQL55:             *mysql55,
			DeferBegin:          *deferBegin,
			Tenants:             tenants,
			FIFO:                *scheduler == "fifo",
			TLS:                 tlsSetup.front,
			RequireTLS:          tlsf.requireTLS,
			BackendTLS:          tlsSetup.backendTLS(),
			BackendTLSOptional:  tlsSetup.optional,
			Logf: func(format string, args ...any) {
				logger.Warn(fmt.Sprintf(format, args...))
			},
		})
		if err != nil {
			return module{}, err
		}
		collectors := []prometheus.Collector{newPoolCollector(p, *perUserMetrics)}
		liveFlags := []string{"users", "tenants", "max-clients", "max-pending-logins", "queue-timeout", "client-write-timeout"}
		if tlsSetup.pool != nil {
			collectors = append(collectors, newHandshakeCollector(tlsSetup.pool))
			liveFlags = append(liveFlags, tlsSetup.liveFlags()...)
		}
		return module{
			name:       "mysqlproxy",
			listen:     p.ListenConfig(laddr),
			collectors: collectors,
			ready:      p.Ready,
			refusals: func() map[string]uint64 {
				s := p.Stats()
				return map[string]uint64{"max_clients": s.ClientsRefused, "max_pending_logins": s.PendingLoginsRefused}
			},
			status: func() any {
				return map[string]any{"stats": p.Stats(), "backends": targetStrings(p.Targets()),
					"scheduler": *scheduler, "tenants": tenantsStatus(p, *perUserMetrics)}
			},
			start:     p.StartBackends,
			stop:      func() { _ = p.Close() },
			drain:     p.Drain,
			liveFlags: liveFlags,
			reload: func(fs *flag.FlagSet) error {
				// The certificates first: a bad file changes nothing.
				if tlsSetup.pool != nil {
					if err := tlsSetup.reload(fs); err != nil {
						return err
					}
				}
				return reloadMySQLProxy(p, fs)
			},
		}, nil
	}
}

// reloadMySQLProxy applies the settings that can change while the proxy
// runs, from a freshly parsed flag set. Nothing is applied unless all of
// them are valid.
func reloadMySQLProxy(p *mysqlproxy.Proxy, fs *flag.FlagSet) error {
	usersFile := fs.Lookup("users").Value.String()
	users, err := loadProxyUsers(usersFile)
	if err != nil {
		return fmt.Errorf("--users: %w", err)
	}
	maxClients, err := strconv.Atoi(fs.Lookup("max-clients").Value.String())
	if err != nil || maxClients <= 0 {
		return fmt.Errorf("--max-clients: want a positive number, got %q", fs.Lookup("max-clients").Value.String())
	}
	maxPendingLogins, err := strconv.Atoi(fs.Lookup("max-pending-logins").Value.String())
	if err != nil || maxPendingLogins <= 0 {
		return fmt.Errorf("--max-pending-logins: want a positive number, got %q", fs.Lookup("max-pending-logins").Value.String())
	}
	queueTimeout, err := time.ParseDuration(fs.Lookup("queue-timeout").Value.String())
	if err != nil || queueTimeout <= 0 {
		return fmt.Errorf("--queue-timeout: want a positive duration, got %q", fs.Lookup("queue-timeout").Value.String())
	}
	clientWriteTimeout, err := time.ParseDuration(fs.Lookup("client-write-timeout").Value.String())
	if err != nil || clientWriteTimeout <= 0 {
		return fmt.Errorf("--client-write-timeout: want a positive duration, got %q", fs.Lookup("client-write-timeout").Value.String())
	}
	backendConns, _ := strconv.Atoi(fs.Lookup("backend-conns").Value.String())
	tenants, err := readTenants(fs.Lookup("config").Value.String(), backendConns)
	if err != nil {
		return err
	}
	p.SetUsers(users)
	p.SetTenants(tenants)
	p.SetMaxClients(maxClients)
	p.SetMaxPendingLogins(maxPendingLogins)
	p.SetQueueTimeout(queueTimeout)
	p.SetClientWriteTimeout(clientWriteTimeout)
	return nil
}

// poolCollector exports the proxy's counters (mysqlproxy.Stats and pool.Stats, summed over the
// loops at scrape time) to Prometheus. Everything here runs on the scrape
// goroutine; the loops only ever do atomic adds.
type poolCollector struct {
	p *mysqlproxy.Proxy
	// perUser exports the per-account series (--per-user-metrics): their
	// labels are account names, which not everyone who can reach /metrics
	// should learn.
	perUser bool
	scalars []poolScalar
	descs   map[string]*prometheus.Desc
}

type poolScalar struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(s *mysqlproxy.StatsSnapshot) float64
}

const poolPrefix = "scalestack_mysqlproxy_"

var poolScalarDefs = []struct {
	name, help string
	kind       prometheus.ValueType
	value      func(s *mysqlproxy.StatsSnapshot) float64
}{
	{"clients_connected", "Client sessions open, logging in or logged in.", prometheus.GaugeValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.ClientsConnected) }},
	{"clients_accepted_total", "Client connections that were sent a greeting.", prometheus.CounterValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.ClientsAccepted) }},
	{"tls_clients_total", "Client connections upgraded to TLS (an SSLRequest, then a finished handshake).", prometheus.CounterValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.ClientsTLS) }},
	{"tls_clients_connected", "Client sessions on TLS now.", prometheus.GaugeValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.TLSClientsConnected) }},
	{"clients_refused_total", "Client connections refused with ERR 1040 because --max-clients were logged in.", prometheus.CounterValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.ClientsRefused) }},
	{"pending_logins_refused_total", "Client connections refused with ERR 1040 because --max-pending-logins clients were connected and not logged in yet.", prometheus.CounterValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.PendingLoginsRefused) }},
	{"clients_logging_in", "Clients connected and not logged in yet (bounded by --max-pending-logins).", prometheus.GaugeValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.PendingLogins) }},
	{"auth_failures_total", "Logins refused with ERR 1045 (unknown user or wrong password).", prometheus.CounterValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.AuthFailures) }},
	{"questions_total", "Client commands sent to a backend.", prometheus.CounterValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.Questions) }},
	{"local_answers_total", "Client commands the proxy answered itself (COM_PING, SELECT CONNECTION_ID(), cached PREPARE, ...).", prometheus.CounterValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.LocalAnswers) }},
	{"queue_waiting", "Commands waiting for a free backend connection now.", prometheus.GaugeValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.QueueWaiting) }},
	{"queue_waits_total", "Commands that found no free backend connection and had to wait.", prometheus.CounterValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.QueueWaits) }},
	{"queue_timeouts_total", "Waits that ended in ERR 9001 after --queue-timeout.", prometheus.CounterValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.QueueTimeouts) }},
	{"client_write_timeouts_total", "Clients disconnected because their output stayed over the high-water mark without progress for --client-write-timeout (they stopped reading).", prometheus.CounterValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.ClientWriteTimeouts) }},
	{"backend_unavailable_errors_total", "Commands answered ERR 9003 at once because no backend connection could be logged in.", prometheus.CounterValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.FastFails) }},
	{"backends_connected", "Backend connections logged in (at most --backend-conns).", prometheus.GaugeValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.BackendsConnected) }},
	{"backend_connects_total", "Successful backend logins, first ones and reconnects.", prometheus.CounterValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.BackendConnects) }},
	{"backend_reconnects_total", "Backend logins of a connection that had been logged in before and was lost.", prometheus.CounterValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.BackendReconnects) }},
	{"backend_reopens_total", "Idle backend connections closed and logged in again with other capability flags (CLIENT_FOUND_ROWS) for a client that needed them.", prometheus.CounterValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.BackendReopens) }},
	{"backend_failures_total", "Backend connects or logins that failed (each is retried with exponential backoff and jitter).", prometheus.CounterValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.BackendFailures) }},
	{"backend_health_checks_total", "COM_PING health checks sent to backends idle for --health-interval.", prometheus.CounterValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.HealthChecks) }},
	{"backend_health_check_failures_total", "Health checks that failed or timed out; the connection was dropped and reconnects.", prometheus.CounterValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.HealthCheckFailures) }},
	{"backend_unknown_state_total", "Backend connections closed because their session state could no longer be known.", prometheus.CounterValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.BackendUnknownState) }},
	{"backend_resets_total", "COM_RESET_CONNECTION (or COM_CHANGE_USER in 5.5 mode) sent after a pinned client left.", prometheus.CounterValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.BackendResets) }},
	{"backends_adopted_total", "Backend connections moved to another loop that had waiting commands.", prometheus.CounterValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.BackendsAdopted) }},
	{"identity_switches_total", "COM_CHANGE_USER sent to log a backend in as the account of the session about to use it (none was idle as that account).", prometheus.CounterValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.IdentitySwitches) }},
	{"state_replays_total", "COM_INIT_DB, SET or COM_SET_OPTION sent to bring a backend to a session's state.", prometheus.CounterValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.StateReplays) }},
	{"diagnostic_holds_total", "Backends kept by a session after warnings or an error so SHOW WARNINGS sees them.", prometheus.CounterValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.DiagnosticHolds) }},
	{"pipelined_commands_total", "Commands written to a busy backend behind others' (--pipeline-depth).", prometheus.CounterValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.Pipelined) }},
	{"pinned_sessions", "Sessions holding a backend connection between commands (see pins_total for why).", prometheus.GaugeValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.PinnedSessions) }},
	{"prepare_cache_hits_total", "COM_STMT_PREPARE answered from the loop's cache without a backend.", prometheus.CounterValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.PrepareCacheHits) }},
	{"backend_prepares_total", "COM_STMT_PREPARE sent to a backend (by a client or lazily before an EXECUTE).", prometheus.CounterValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.BackendPrepares) }},
	{"backend_stmt_evictions_total", "Prepared statements closed on a backend to stay under --backend-max-stmts.", prometheus.CounterValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.BackendStmtEvictions) }},
	{"backend_prepared_statements", "Server-side prepared statements open on all backend connections together.", prometheus.GaugeValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.BackendStmtsOpen) }},
	{"kills_total", "Sessions closed by KILL or COM_PROCESS_KILL.", prometheus.CounterValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.Kills) }},
	{"client_received_bytes_total", "Bytes read from clients.", prometheus.CounterValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.ClientBytesIn) }},
	{"client_sent_bytes_total", "Bytes written to clients.", prometheus.CounterValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.ClientBytesOut) }},
	{"backend_received_bytes_total", "Bytes read from backend connections.", prometheus.CounterValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.BackendBytesIn) }},
	{"backend_sent_bytes_total", "Bytes written to backend connections (commands, state replays, logins, health checks).", prometheus.CounterValue, func(s *mysqlproxy.StatsSnapshot) float64 { return float64(s.BackendBytesOut) }},
}

// Descriptors of the labelled series and histograms, by short name.
var poolVectorDefs = []struct {
	name, help string
	labels     []string
}{
	{"commands_total", "Client commands by type (all of them, whether a backend or the proxy answered).", []string{"command"}},
	{"command_duration_seconds", "Time from a command's arrival to the end of its response, queue wait included, for commands that went to (or waited for) a backend.", nil},
	{"queue_wait_seconds", "How long commands that found no free backend connection waited for one (timeouts included).", nil},
	{"pipeline_depth", "Commands in flight on a backend when a command was pipelined onto it, that one included (--pipeline-depth).", nil},
	{"errors_total", "ERR packets sent to clients, the proxy's own and the server's, by error code (codes outside a fixed table are counted as \"other\").", []string{"code"}},
	{"pins_total", "Times a session became pinned to its backend connection, by reason.", []string{"reason"}},
	{"backend_connections", "Backend connections logged in, by state: idle, busy (serving a command, held for diagnostics or being health-checked) or pinned (held by a pinned session).", []string{"state"}},
	{"backend_conns_configured", "The configured number of backend connections (--backend-conns).", nil},
	{"backend_up", "1 while the backend server is reachable; 0 once every connection is down and reconnecting fails.", nil},
	{"user_connections", "Sessions logged in, per account of the users file (with --per-user-metrics).", []string{"user"}},
	{"user_logins_total", "Successful logins (and COM_CHANGE_USER), per account of the users file (with --per-user-metrics).", []string{"user"}},
	{"user_commands_total", "Commands sent, per account of the users file (with --per-user-metrics).", []string{"user"}},
	// Per tenant: tenants named in the configuration or by a users-file
	// tenant field; those an account implies by its own name only with
	// --per-user-metrics (their label is the account's name).
	{"tenant_clients", "Sessions logged in, per tenant.", []string{"tenant"}},
	{"tenant_commands_total", "Commands admitted (sent to a backend or queued for one), per tenant.", []string{"tenant"}},
	{"tenant_queue_wait_seconds", "How long the tenant's commands that found no free backend waited for one (refusals included).", []string{"tenant"}},
	{"tenant_backend_seconds_total", "Time the tenant's sessions held backend connections (their share of the N), per tenant.", []string{"tenant"}},
	{"tenant_backends_held", "Backend connections the tenant's sessions hold now.", []string{"tenant"}},
	{"tenant_queued", "The tenant's commands waiting for a backend connection now.", []string{"tenant"}},
	{"tenant_refused_total", "The tenant's commands and logins refused, by reason: queue_timeout (ERR 9001), max_queued (9006), max_qps (1226), max_clients (1203).", []string{"tenant", "reason"}},
	{"tenant_weight", "The tenant's weight in the fair scheduler.", []string{"tenant"}},
}

// perUserSeries are the poolVectorDefs exported only with --per-user-metrics.
var perUserSeries = map[string]bool{"user_connections": true, "user_logins_total": true, "user_commands_total": true}

func newPoolCollector(p *mysqlproxy.Proxy, perUser bool) *poolCollector {
	c := &poolCollector{p: p, perUser: perUser, descs: map[string]*prometheus.Desc{}}
	for _, d := range poolScalarDefs {
		c.scalars = append(c.scalars, poolScalar{prometheus.NewDesc(poolPrefix+d.name, d.help, nil, nil), d.kind, d.value})
	}
	for _, d := range poolVectorDefs {
		c.descs[d.name] = prometheus.NewDesc(poolPrefix+d.name, d.help, d.labels, nil)
	}
	return c
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, s := range c.scalars {
		ch <- s.desc
	}
	for _, d := range poolVectorDefs {
		if perUserSeries[d.name] && !c.perUser {
			continue
		}
		ch <- c.descs[d.name]
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.p.Stats()
	for _, sc := range c.scalars {
		ch <- prometheus.MustNewConstMetric(sc.desc, sc.kind, sc.value(&s))
	}
	for slot, n := range s.Commands {
		if n > 0 {
			ch <- prometheus.MustNewConstMetric(c.descs["commands_total"], prometheus.CounterValue, float64(n), mysqlproxy.CommandSlotName(slot))
		}
	}
	ch <- constHistogram(c.descs["command_duration_seconds"], &s.Latency)
	ch <- constHistogram(c.descs["queue_wait_seconds"], &s.QueueWait)
	ch <- depthHistogram(c.descs["pipeline_depth"], &s)
	for slot, n := range s.Errors {
		ch <- prometheus.MustNewConstMetric(c.descs["errors_total"], prometheus.CounterValue, float64(n), mysqlproxy.ErrorSlotName(slot))
	}
	for r, n := range s.Pins {
		ch <- prometheus.MustNewConstMetric(c.descs["pins_total"], prometheus.CounterValue, float64(n), mysqlproxy.PinReason(r).String())
	}
	// The gauges are read from different loops at slightly different
	// moments; clamp so the states never go negative.
	busy := max(s.BackendsConnected-s.BackendsIdle, 0)
	pinned := min(s.PinnedSessions, busy)
	backendConns := c.descs["backend_connections"]
	ch <- prometheus.MustNewConstMetric(backendConns, prometheus.GaugeValue, float64(s.BackendsIdle), "idle")
	ch <- prometheus.MustNewConstMetric(backendConns, prometheus.GaugeValue, float64(busy-pinned), "busy")
	ch <- prometheus.MustNewConstMetric(backendConns, prometheus.GaugeValue, float64(pinned), "pinned")
	ch <- prometheus.MustNewConstMetric(c.descs["backend_conns_configured"], prometheus.GaugeValue, float64(c.p.BackendConns()))
	up := 0.0
	if c.p.Available() {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(c.descs["backend_up"], prometheus.GaugeValue, up)
	for _, t := range c.p.TenantStats() {
		if !t.Named && !c.perUser {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.descs["tenant_clients"], prometheus.GaugeValue, float64(t.Clients), t.Name)
		ch <- prometheus.MustNewConstMetric(c.descs["tenant_commands_total"], prometheus.CounterValue, float64(t.Commands), t.Name)
		ch <- constHistogram(c.descs["tenant_queue_wait_seconds"], &t.QueueWait, t.Name)
		ch <- prometheus.MustNewConstMetric(c.descs["tenant_backend_seconds_total"], prometheus.CounterValue, float64(t.BackendNs)/1e9, t.Name)
		ch <- prometheus.MustNewConstMetric(c.descs["tenant_backends_held"], prometheus.GaugeValue, float64(max(t.Held, 0)), t.Name)
		ch <- prometheus.MustNewConstMetric(c.descs["tenant_queued"], prometheus.GaugeValue, float64(max(t.Queued, 0)), t.Name)
		for r, n := range t.Refused {
			ch <- prometheus.MustNewConstMetric(c.descs["tenant_refused_total"], prometheus.CounterValue, float64(n), t.Name, pool.Refusal(r).String())
		}
		ch <- prometheus.MustNewConstMetric(c.descs["tenant_weight"], prometheus.GaugeValue, float64(t.Rules.Weight), t.Name)
	}
	if !c.perUser {
		return
	}
	for _, u := range c.p.UserStats() {
		ch <- prometheus.MustNewConstMetric(c.descs["user_connections"], prometheus.GaugeValue, float64(u.Connections), u.User)
		ch <- prometheus.MustNewConstMetric(c.descs["user_logins_total"], prometheus.CounterValue, float64(u.Logins), u.User)
		ch <- prometheus.MustNewConstMetric(c.descs["user_commands_total"], prometheus.CounterValue, float64(u.Commands), u.User)
	}
}

// depthHistogram turns the pipeline depth counts into Prometheus's
// cumulative form.
func depthHistogram(d *prometheus.Desc, s *mysqlproxy.StatsSnapshot) prometheus.Metric {
	buckets := make(map[float64]uint64, len(mysqlproxy.PipelineDepthBuckets))
	var cum uint64
	for i, le := range mysqlproxy.PipelineDepthBuckets {
		cum += s.PipelineDepth[i]
		buckets[float64(le)] = cum
	}
	cum += s.PipelineDepth[len(mysqlproxy.PipelineDepthBuckets)]
	return prometheus.MustNewConstHistogram(d, cum, float64(s.PipelineDepthSum), buckets)
}

// constHistogram turns per-bucket counts into Prometheus's cumulative form.
func constHistogram(d *prometheus.Desc, h *pool.HistogramSnapshot, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(pool.LatencyBuckets))
	var cum uint64
	for i, le := range pool.LatencyBuckets {
		cum += h.Counts[i]
		buckets[le] = cum
	}
	return prometheus.MustNewConstHistogram(d, h.Count(), float64(h.SumNs)/1e9, buckets, labels...)
}

func targetStrings(ts []pool.Target) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.String()
	}
	return out
}

// loadProxyUsers loads the users file (every field is honoured: backend=
// and backend-password-file= map a client to a server account, see
// --backend-identity).
func loadProxyUsers(path string) (mysqlproxy.Users, error) {
	return mysqlproxy.LoadUsers(path)
}
