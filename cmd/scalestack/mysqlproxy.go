package main

import (
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/pool"
)

func mysqlProxyFlags(stderr io.Writer) (*flag.FlagSet, *engineFlags, func() (module, error)) {
	fs := flag.NewFlagSet("mysqlproxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ef := &engineFlags{}
	ef.register(fs)
	ef.registerOps(fs, "")
	listen := fs.String("listen", "127.0.0.1:6033", "address clients connect to: host:port, or unix:/path")
	backend := fs.String("backend", "", "MySQL/MariaDB server: host:port, or unix:/path (required)")
	backendUser := fs.String("backend-user", "", "service account every backend connection logs in as (required)")
	backendPasswordFile := fs.String("backend-password-file", "", "file whose first line is the service account's password (empty: no password)")
	backendConns := fs.Int("backend-conns", 128, "exact number of backend connections, opened at start, split across the loops and kept at that number")
	usersFile := fs.String("users", "", "users file, one 'NAME:native=HEX:sha2=HEX' line per client account: hex SHA1(SHA1(password)) and hex SHA256(SHA256(password)), never the password (make lines with 'scalestack passwd NAME') (required)")
	maxClients := fs.Int("max-clients", 10000, "clients beyond this many get ERR 1040 (08004) 'Too many connections' as their first packet")
	queueTimeout := fs.Duration("queue-timeout", 10*time.Second, "how long a command waits for a free backend before the client gets ERR 9001 (HY000); the client stays connected")
	maxStmts := fs.Int("backend-max-stmts", 256, "prepared statements kept per backend connection; the least recently used is closed beyond it")
	mysql55 := fs.Bool("mysql55", false, "offer clients only MySQL 5.5 capabilities and reset backends with COM_CHANGE_USER instead of COM_RESET_CONNECTION")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: scalestack mysqlproxy --backend HOST:PORT --backend-user U --backend-password-file F --users FILE [flags]

Multiplexes many MySQL client connections onto exactly --backend-conns backend
connections. A client holds a backend only while one command runs, unless its
session state pins it (a transaction, autocommit=0, LOCK TABLES, GET_LOCK,
user variables, temporary tables, SQL_CALC_FOUND_ROWS, text PREPARE, an open
cursor, a SET the proxy cannot replay). The schema, character set and common
session variables are tracked and replayed instead; prepared statements get
proxy-side ids and are prepared lazily on whichever backend runs them.

Clients authenticate against the users file (mysql_native_password, or the
caching_sha2_password fast path); backends log in as the service account.
No TLS towards clients.

Errors the proxy sends itself:
  1040 08004  more than --max-clients clients
  1045 28000  unknown user or wrong password
  9001 HY000  waited --queue-timeout for a backend (the client stays connected)
  9004 08S01  the backend broke during the command

Flags:
`)
		fs.PrintDefaults()
	}
	return fs, ef, func() (module, error) {
		if *backend == "" || *backendUser == "" || *usersFile == "" {
			return module{}, fmt.Errorf("--backend, --backend-user and --users are required")
		}
		var password []byte
		if *backendPasswordFile != "" {
			pw, err := pool.ReadPasswordFile(*backendPasswordFile)
			if err != nil {
				return module{}, fmt.Errorf("--backend-password-file: %w", err)
			}
			password = pw
		}
		users, err := pool.LoadUsers(*usersFile)
		if err != nil {
			return module{}, fmt.Errorf("--users: %w", err)
		}
		laddr, err := conn.ParseAddr(*listen)
		if err != nil {
			return module{}, fmt.Errorf("--listen: %w", err)
		}
		baddr, err := conn.ParseAddr(*backend)
		if err != nil {
			return module{}, fmt.Errorf("--backend: %w", err)
		}
		p, err := pool.New(pool.Config{
			Backend:            baddr,
			User:               *backendUser,
			Password:           password,
			BackendConns:       *backendConns,
			Users:              users,
			MaxClients:         *maxClients,
			QueueTimeout:       *queueTimeout,
			MaxStmtsPerBackend: *maxStmts,
			MySQL55:            *mysql55,
			Logf: func(format string, args ...any) {
				logger.Warn(fmt.Sprintf(format, args...))
			},
		})
		if err != nil {
			return module{}, err
		}
		return module{
			name:       "mysqlproxy",
			listen:     p.ListenConfig(laddr),
			collectors: []prometheus.Collector{newPoolCollector(p)},
			ready:      p.Ready,
			status:     func() any { return p.Stats() },
			start:      p.StartBackends,
			stop:       func() { _ = p.Close() },
		}, nil
	}
}

// poolCollector exports the proxy's counters (pool.Stats) to Prometheus.
type poolCollector struct {
	p      *pool.Proxy
	gauges []*prometheus.Desc
	counts []*prometheus.Desc
	pins   *prometheus.Desc
}

var (
	poolGaugeNames = []string{"clients_connected", "queue_waiting", "backends_connected", "backends_idle", "pinned_sessions"}
	poolCountNames = []string{"clients_accepted_total", "clients_refused_total", "auth_failures_total", "questions_total",
		"local_answers_total", "queue_waits_total", "queue_timeouts_total", "queue_wait_seconds_total",
		"backend_connects_total", "backend_failures_total", "backend_unknown_state_total", "backend_resets_total",
		"backends_adopted_total", "state_replays_total", "prepare_cache_hits_total", "backend_prepares_total",
		"backend_stmt_evictions_total", "kills_total", "diagnostic_holds_total"}
)

func newPoolCollector(p *pool.Proxy) *poolCollector {
	c := &poolCollector{p: p}
	for _, n := range poolGaugeNames {
		c.gauges = append(c.gauges, prometheus.NewDesc("scalestack_mysqlproxy_"+n, "mysqlproxy "+n, nil, nil))
	}
	for _, n := range poolCountNames {
		c.counts = append(c.counts, prometheus.NewDesc("scalestack_mysqlproxy_"+n, "mysqlproxy "+n, nil, nil))
	}
	c.pins = prometheus.NewDesc("scalestack_mysqlproxy_pins_total", "times a session became pinned to its backend, by reason", []string{"reason"}, nil)
	return c
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.gauges {
		ch <- d
	}
	for _, d := range c.counts {
		ch <- d
	}
	ch <- c.pins
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.p.Stats()
	gauges := []int64{s.ClientsConnected, s.QueueWaiting, s.BackendsConnected, s.BackendsIdle, s.PinnedSessions}
	counts := []float64{float64(s.ClientsAccepted), float64(s.ClientsRefused), float64(s.AuthFailures), float64(s.Questions),
		float64(s.LocalAnswers), float64(s.QueueWaits), float64(s.QueueTimeouts), float64(s.QueueWaitNs) / 1e9,
		float64(s.BackendConnects), float64(s.BackendFailures), float64(s.BackendUnknownState), float64(s.BackendResets),
		float64(s.BackendsAdopted), float64(s.StateReplays), float64(s.PrepareCacheHits), float64(s.BackendPrepares),
		float64(s.BackendStmtEvictions), float64(s.Kills), float64(s.DiagnosticHolds)}
	for i, d := range c.gauges {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(gauges[i]))
	}
	for i, d := range c.counts {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, counts[i])
	}
	for r, n := range s.Pins {
		ch <- prometheus.MustNewConstMetric(c.pins, prometheus.CounterValue, float64(n), pool.PinReason(r).String())
	}
}
