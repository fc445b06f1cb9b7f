package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/pool"
	"github.com/scalestack/scalestack/reactor"
)

func runMySQLProxy(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mysqlproxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var ef engineFlags
	ef.register(fs)
	listen := fs.String("listen", "127.0.0.1:6033", "address clients connect to: host:port, or unix:/path")
	backend := fs.String("backend", "", "MySQL/MariaDB server: host:port, or unix:/path (required)")
	backendUser := fs.String("backend-user", "", "service account every backend connection logs in as (required)")
	backendPasswordFile := fs.String("backend-password-file", "", "file whose first line is the service account's password")
	backendConns := fs.Int("backend-conns", 128, "exact number of backend connections, split across the loops")
	usersFile := fs.String("users", "", "users file: one 'NAME:native=HEX:sha2=HEX' line per client account (see 'scalestack passwd') (required)")
	maxClients := fs.Int("max-clients", 10000, "clients beyond this many get ERR 1040 'Too many connections'")
	queueTimeout := fs.Duration("queue-timeout", 10*time.Second, "how long a command waits for a free backend before ERR 9001")
	statsEvery := fs.Duration("stats-every", 0, "print the proxy's counters to stderr at this interval (0: never)")
	mysql55 := fs.Bool("mysql55", false, "offer only MySQL 5.5 capabilities and reset backends with COM_CHANGE_USER")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: scalestack mysqlproxy --backend HOST:PORT --backend-user U --backend-password-file F --users FILE [flags]

Multiplexes many MySQL client connections onto exactly --backend-conns backend
connections. A client holds a backend only while one command runs, unless its
session state pins it (transactions, locks, user variables, temporary tables,
...). Schema, character set and common session variables are tracked and
replayed instead.

Clients authenticate against the users file (mysql_native_password, or the
caching_sha2_password fast path); the backends use the service account.

Errors the proxy sends: 1040 (too many clients), 1045 (access denied),
9001 HY000 (timed out waiting for a backend; the client stays connected),
9004 08S01 (backend lost during a query).

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *backend == "" || *backendUser == "" || *usersFile == "" {
		fs.Usage()
		return fmt.Errorf("--backend, --backend-user and --users are required")
	}
	var password []byte
	if *backendPasswordFile != "" {
		pw, err := pool.ReadPasswordFile(*backendPasswordFile)
		if err != nil {
			return err
		}
		password = pw
	}
	users, err := pool.LoadUsers(*usersFile)
	if err != nil {
		return err
	}
	laddr, err := conn.ParseAddr(*listen)
	if err != nil {
		return err
	}
	baddr, err := conn.ParseAddr(*backend)
	if err != nil {
		return err
	}
	cfg, err := ef.config()
	if err != nil {
		return err
	}
	p, err := pool.New(pool.Config{
		Backend:      baddr,
		User:         *backendUser,
		Password:     password,
		BackendConns: *backendConns,
		Users:        users,
		MaxClients:   *maxClients,
		QueueTimeout: *queueTimeout,
		MySQL55:      *mysql55,
		Logf: func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, "scalestack mysqlproxy: "+format+"\n", args...)
		},
	})
	if err != nil {
		return err
	}
	e, err := reactor.New(cfg)
	if err != nil {
		return err
	}
	if err := e.Start(); err != nil {
		return err
	}
	defer e.Stop()
	if err := p.Start(e, laddr); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "mysqlproxy listening on %s -> %s (%d backend connections, %d loops, %s)\n",
		p.Addr().Address, baddr.Address, *backendConns, len(e.Loops()), ef.io)
	if *statsEvery > 0 {
		go func() {
			for range time.Tick(*statsEvery) {
				fmt.Fprintf(stderr, "scalestack mysqlproxy: stats %+v\n", p.Stats())
			}
		}()
	}
	waitForSignal()
	return p.Close()
}
