package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// mariaDB is the throwaway server the sweep measures against. Every statement the driver itself runs
// goes through the command-line client over the unix socket as an administrator, so no driver
// dependency is needed and the driver's own connection never shows up on the TCP side.
type mariaDB struct {
	Port      int
	PID       int
	Version   string
	clientCmd []string // client binary and the arguments that log in as an administrator
	stop      func() error
}

// mariaDBOptions says how to start the server.
type mariaDBOptions struct {
	Dir            string // created; holds data, socket, logs
	Script         string // scripts/mariadb.sh to use, or "" for the built-in starter
	CPUs           string // taskset list, or ""
	MaxConnections int
	Keep           bool // leave data and server behind on stop (script mode: stop --keep)
}

// startMariaDB starts the server, either through the project's scripts/mariadb.sh or by itself.
func startMariaDB(ctx context.Context, o mariaDBOptions) (*mariaDB, error) {
	if o.Script != "" {
		return startMariaDBScript(ctx, o)
	}
	return startMariaDBBuiltin(ctx, o)
}

// withCPUs prefixes argv with taskset when a CPU list is given; taskset execs the command, so the pid
// the caller gets is the command's own.
func withCPUs(cpus string, argv ...string) []string {
	if cpus == "" {
		return argv
	}
	return append([]string{"taskset", "-c", cpus}, argv...)
}

func startMariaDBScript(ctx context.Context, o mariaDBOptions) (*mariaDB, error) {
	argv := withCPUs(o.CPUs, o.Script, "start", "--dir", o.Dir,
		"--max-connections", strconv.Itoa(o.MaxConnections), "--tuned-for-bench")
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, out.String())
	}
	env, err := readEnvFile(filepath.Join(o.Dir, "env"))
	if err != nil {
		return nil, err
	}
	_, portText, ok := strings.Cut(env["SCALESTACK_MYSQL_ADDR"], ":")
	port, perr := strconv.Atoi(portText)
	if !ok || perr != nil {
		return nil, fmt.Errorf("%s/env: bad SCALESTACK_MYSQL_ADDR %q", o.Dir, env["SCALESTACK_MYSQL_ADDR"])
	}
	pid, err := strconv.Atoi(env["SCALESTACK_MYSQL_PID"])
	if err != nil {
		return nil, fmt.Errorf("%s/env: bad SCALESTACK_MYSQL_PID: %w", o.Dir, err)
	}
	client, err := firstCommand("mariadb", "mysql")
	if err != nil {
		return nil, err
	}
	m := &mariaDB{
		Port:      port,
		PID:       pid,
		clientCmd: []string{client, "--defaults-file=" + filepath.Join(o.Dir, "root.cnf")},
	}
	m.stop = func() error {
		args := []string{"stop", "--dir", o.Dir}
		if o.Keep {
			args = append(args, "--keep")
		}
		if out, err := exec.Command(o.Script, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s %s: %w\n%s", o.Script, strings.Join(args, " "), err, out)
		}
		return nil
	}
	return m, m.finishStart(ctx)
}

// readEnvFile reads the `export K=V` lines scripts/mariadb.sh writes.
func readEnvFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading MariaDB env file: %w", err)
	}
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "export ")
		if !ok {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = strings.Trim(v, `"'`)
		}
	}
	return env, nil
}

func firstCommand(names ...string) (string, error) {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
		if p := "/usr/sbin/" + n; isExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("none of %v found (bench/run.sh installs them with apt-get)", names)
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// builtinCnf is the server configuration of the built-in starter. Thread-per-connection is what the
// reference graph measures; prepared statements are raised because sysbench prepares ~10 statements
// per connection and the default limit runs out near 2,300 read_only connections.
func builtinCnf(dir string, port, maxConns int, fileLimit uint64, asRoot bool) string {
	tableCache := 2000
	// Each connection is a socket and each cached table up to two files; stay under this process's file
	// limit rather than letting MariaDB silently cut max_connections at start-up.
	openFiles := uint64(maxConns) + 2*uint64(tableCache) + 500
	if fileLimit > 0 && openFiles > fileLimit {
		openFiles = fileLimit
	}
	var b strings.Builder
	b.WriteString("# Written by bench/sweep for a throwaway benchmark server.\n[mariadbd]\n")
	if asRoot {
		b.WriteString("user = root\n")
	}
	fmt.Fprintf(&b, "datadir = %s\nsocket = %s\npid-file = %s\nlog-error = %s\n",
		filepath.Join(dir, "data"), socketPath(dir), filepath.Join(dir, "mariadbd.pid"), filepath.Join(dir, "error.log"))
	fmt.Fprintf(&b, "port = %d\nbind-address = 127.0.0.1\nskip-name-resolve\n", port)
	fmt.Fprintf(&b, "max_connections = %d\nopen_files_limit = %d\ntable_open_cache = %d\n", maxConns, openFiles, tableCache)
	b.WriteString(`thread_handling = one-thread-per-connection
thread_cache_size = 1024
back_log = 4096
max_connect_errors = 1000000000
max_prepared_stmt_count = 1048576
innodb_buffer_pool_size = 1G
performance_schema = OFF
innodb_flush_log_at_trx_commit = 2
innodb_doublewrite = 0
skip-log-bin
`)
	return b.String()
}

// socketPath keeps the unix socket path under the 107-byte limit even for deep work directories.
func socketPath(dir string) string {
	p := filepath.Join(dir, "mariadbd.sock")
	if len(p) > 100 {
		h := 0
		for _, c := range dir {
			h = h*31 + int(c)
		}
		p = fmt.Sprintf("/tmp/scalestack-bench-%x.sock", uint32(h))
	}
	return p
}

func startMariaDBBuiltin(ctx context.Context, o mariaDBOptions) (*mariaDB, error) {
	server, err := firstCommand("mariadbd", "mysqld")
	if err != nil {
		return nil, err
	}
	installDB, err := firstCommand("mariadb-install-db", "mysql_install_db")
	if err != nil {
		return nil, err
	}
	client, err := firstCommand("mariadb", "mysql")
	if err != nil {
		return nil, err
	}
	if err := os.RemoveAll(o.Dir); err != nil {
		return nil, fmt.Errorf("clearing %s: %w", o.Dir, err)
	}
	if err := os.MkdirAll(filepath.Join(o.Dir, "data"), 0o755); err != nil {
		return nil, fmt.Errorf("making %s: %w", o.Dir, err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	var lim syscall.Rlimit
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	asRoot := os.Geteuid() == 0
	cnf := filepath.Join(o.Dir, "my.cnf")
	if err := os.WriteFile(cnf, []byte(builtinCnf(o.Dir, port, o.MaxConnections, lim.Max, asRoot)), 0o644); err != nil {
		return nil, fmt.Errorf("writing %s: %w", cnf, err)
	}
	initArgs := []string{"--defaults-file=" + cnf, "--skip-test-db", "--auth-root-authentication-method=socket"}
	if asRoot {
		initArgs = append(initArgs, "--user=root")
	}
	if out, err := exec.CommandContext(ctx, installDB, initArgs...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%s: %w\n%s", installDB, err, out)
	}
	argv := withCPUs(o.CPUs, server, "--defaults-file="+cnf)
	logf, err := os.Create(filepath.Join(o.Dir, "mariadbd.out"))
	if err != nil {
		return nil, fmt.Errorf("creating server log: %w", err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own session: a Ctrl-C meant for the sweep must not kill the server before the sweep stops it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", server, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logf.Close() }()

	user := "root"
	if !asRoot {
		user = os.Getenv("USER")
	}
	m := &mariaDB{
		Port:      port,
		PID:       cmd.Process.Pid,
		clientCmd: []string{client, "--no-defaults", "--socket=" + socketPath(o.Dir), "-u" + user},
	}
	m.stop = func() error {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if o.Keep {
			return nil
		}
		return os.RemoveAll(o.Dir)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		if _, err := m.sql(ctx, "SELECT 1"); err == nil {
			break
		}
		select {
		case err := <-exited:
			tail, _ := os.ReadFile(filepath.Join(o.Dir, "error.log"))
			return nil, fmt.Errorf("mariadbd exited during start-up (%v); error log:\n%s", err, lastLines(string(tail), 20))
		default:
		}
		if time.Now().After(deadline) {
			_ = m.stop()
			return nil, errors.New("mariadbd did not answer within 90s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Anonymous accounts would shadow the benchmark user on some host patterns.
	if _, err := m.sql(ctx, "DELETE FROM mysql.global_priv WHERE User=''; FLUSH PRIVILEGES"); err != nil {
		_ = m.stop()
		return nil, err
	}
	return m, m.finishStart(ctx)
}

// finishStart checks the settings the sweep depends on, so a server that silently lowered them (for
// example for lack of file descriptors) fails here and not at 8,192 threads half an hour later.
func (m *mariaDB) finishStart(ctx context.Context) error {
	out, err := m.sql(ctx, "SELECT VERSION(), @@max_connections, @@thread_handling, @@max_prepared_stmt_count, @@open_files_limit")
	if err != nil {
		return err
	}
	f := strings.Split(strings.TrimSpace(out), "\t")
	if len(f) != 5 {
		return fmt.Errorf("unexpected server settings row %q", out)
	}
	m.Version = f[0]
	fmt.Fprintf(os.Stderr, "sweep: MariaDB %s on 127.0.0.1:%d (pid %d): max_connections=%s thread_handling=%s max_prepared_stmt_count=%s open_files_limit=%s\n",
		f[0], m.Port, m.PID, f[1], f[2], f[3], f[4])
	return nil
}

// sql runs statements as the administrator and returns the tab-separated rows without headers.
func (m *mariaDB) sql(ctx context.Context, query string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	args := append(append([]string{}, m.clientCmd[1:]...), "--batch", "--skip-column-names", "--connect-timeout=10", "-e", query)
	cmd := exec.CommandContext(ctx, m.clientCmd[0], args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("mariadb client %q: %w: %s", query, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
