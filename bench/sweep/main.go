// Command sweep runs the sysbench sweep behind Scale Stack's headline graph: sysbench oltp_read_only
// and oltp_point_select at 1 to 8192 client threads, against MariaDB directly, through the Scale Stack
// MySQL proxy (epoll and io_uring) and through HAProxy in TCP mode, and writes CSV, a markdown summary
// and (through bench/plot) a PNG graph into bench/results/. With --metrics-cost it compares the proxy
// with metrics off against the same proxy whose /metrics it scrapes every second.
//
// It starts and stops everything it measures: a throwaway MariaDB (never the system service, never port
// 3306) and each target, fresh for every point. It must never leave a server running after it exits
// and never reach beyond 127.0.0.1. bench/run.sh installs its prerequisites and runs it.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config is the sweep's command line.
type config struct {
	Tests          []string
	Threads        []int
	TimeS          int
	WarmupS        int
	Reps           int
	Targets        []string
	Tables         int
	TableSize      int
	BackendConns   int
	ProxyLoops     int
	ProxyCPUs      string
	SysbenchCPUs   string
	MariaDBCPUs    string
	MaxConnections int
	OutDir         string
	WorkDir        string
	Name           string
	ProxyBin       string
	BaseBin        string
	ProxyExtra     []string
	PipelineDepth  int
	PlotBin        string
	MariaDBScript  string
	KeepDB         bool
	Quick          bool
	MetricsCost    bool
	ProfileScraped bool
	Command        string
	// IdleClients > 0 selects the idle-clients mode (idle.go) instead of the sysbench sweep.
	IdleClients  int
	IdleActive   int
	MysqlloadBin string
}

const (
	defaultTests   = "oltp_read_only,oltp_point_select"
	defaultThreads = "1,4,16,64,256,1024,2048,4096,8192"
	defaultTargets = "direct,proxy-epoll,proxy-uring,haproxy"
	quickThreads   = "16,256"

	// The --metrics-cost preset: the proxy with metrics off against the same proxy scraped every
	// second, interleaved in rounds. 256 threads keep the 2-core development host saturated (the proxy
	// multiplexes them onto 128 backend connections), where any CPU the scrapes take shows in QPS;
	// 28 points of 3 + 10 s take about 7 minutes there.
	metricsCostTests   = "oltp_point_select,oltp_read_only"
	metricsCostThreads = "256"
	metricsCostTargets = targetProxyEpoll + "," + targetProxyEpollScraped
	metricsCostReps    = 7
	metricsCostTimeS   = 10
	metricsCostWarmupS = 3
)

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("sweep", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tests := fs.String("tests", defaultTests, "comma-separated sysbench tests")
	threads := fs.String("threads", defaultThreads, "comma-separated client thread counts")
	fs.IntVar(&c.TimeS, "time", 15, "measured seconds per point (sysbench --time)")
	fs.IntVar(&c.WarmupS, "warmup", 5, "warm-up seconds per point before measuring (sysbench --warmup-time)")
	fs.IntVar(&c.Reps, "reps", 3, "repetitions (rounds) of every point")
	targets := fs.String("targets", defaultTargets, "comma-separated targets: "+strings.Join(knownTargets, ", "))
	fs.IntVar(&c.Tables, "tables", 1, "sysbench tables")
	fs.IntVar(&c.TableSize, "table-size", 100000, "rows per sysbench table")
	fs.IntVar(&c.BackendConns, "backend-conns", 128, "proxy's backend connections (--backend-conns)")
	fs.IntVar(&c.ProxyLoops, "proxy-loops", 0, "proxy's reactor loops (0: the proxy's default, one per usable CPU)")
	fs.StringVar(&c.ProxyCPUs, "proxy-cpus", "", "CPU list for the proxy and HAProxy, e.g. 0-3 (taskset, and the proxy's --cpus)")
	fs.StringVar(&c.SysbenchCPUs, "sysbench-cpus", "", "CPU list for sysbench (taskset)")
	fs.StringVar(&c.MariaDBCPUs, "mariadb-cpus", "", "CPU list for MariaDB (taskset)")
	fs.IntVar(&c.MaxConnections, "max-connections", 10000, "MariaDB max_connections (must exceed the largest thread count)")
	fs.StringVar(&c.OutDir, "out", "bench/results", "directory for the CSV, markdown and PNG")
	fs.StringVar(&c.WorkDir, "work", ".tmp/bench", "scratch directory: MariaDB data, configs, per-point logs")
	fs.StringVar(&c.Name, "name", "", "file name stem for the results (default sweep-DATE or sweep-quick-DATE)")
	fs.StringVar(&c.ProxyBin, "proxy-bin", "bin/scalestack", "the scalestack binary, for the proxy targets")
	fs.StringVar(&c.BaseBin, "base-bin", "", "another scalestack binary, for the "+targetProxyEpollBase+" target (for example one built from the commit before a change)")
	fs.IntVar(&c.PipelineDepth, "pipeline-depth", 8, "the --pipeline-depth of the "+targetProxyEpollPipelined+" target")
	proxyExtra := fs.String("proxy-extra", "", "extra flags for `scalestack mysqlproxy`, space-separated, e.g. \"--queue-timeout 60s\"")
	fs.StringVar(&c.PlotBin, "plot-bin", "", "the bench/plot binary that draws the PNG (empty: no graph)")
	fs.StringVar(&c.MariaDBScript, "mariadb-script", "auto", "scripts/mariadb.sh to start MariaDB with: auto (use it if present), none (built-in starter), or a path")
	fs.BoolVar(&c.KeepDB, "keep-db", false, "leave MariaDB's data directory behind")
	fs.BoolVar(&c.Quick, "quick", false, "smoke run: threads "+quickThreads+", 5 s per point, 2 s warm-up, 1 repetition (explicit flags still win)")
	fs.BoolVar(&c.ProfileScraped, "profile-scraped", false, "take a CPU profile of "+targetProxyEpollScraped+" over each measured window (its /debug/pprof/profile) into the work dir's logs; profiling costs CPU, so not for the acceptance numbers")
	fs.BoolVar(&c.MetricsCost, "metrics-cost", false, fmt.Sprintf("metrics cost: targets %s, tests %s, threads %s, %d reps, %d s per point after %d s warm-up (explicit flags and --quick win)",
		metricsCostTargets, metricsCostTests, metricsCostThreads, metricsCostReps, metricsCostTimeS, metricsCostWarmupS))
	fs.IntVar(&c.IdleClients, "idle-clients", 0, "idle-clients mode (issue #5): hold this many idle clients on each proxy target through bench/cmd/mysqlload and report the proxy's memory per client, then the latency of --idle-active of them (0: the sysbench sweep)")
	fs.IntVar(&c.IdleActive, "idle-active", defaultIdleActive, "idle-clients mode: how many of the clients run SELECT 1 back to back for --time seconds")
	fs.StringVar(&c.MysqlloadBin, "mysqlload", "", "the bench/cmd/mysqlload binary, for --idle-clients (bench/run.sh builds it)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if c.Quick {
		if !set["threads"] {
			*threads = quickThreads
		}
		if !set["time"] {
			c.TimeS = 5
		}
		if !set["warmup"] {
			c.WarmupS = 2
		}
		if !set["reps"] {
			c.Reps = 1
		}
	}
	if c.MetricsCost {
		// With --quick it picks only what to compare; --quick keeps its short points.
		if !set["tests"] {
			*tests = metricsCostTests
		}
		if !set["targets"] {
			*targets = metricsCostTargets
		}
		if !set["threads"] && !c.Quick {
			*threads = metricsCostThreads
		}
		if !set["reps"] && !c.Quick {
			c.Reps = metricsCostReps
		}
		if !set["time"] && !c.Quick {
			c.TimeS = metricsCostTimeS
		}
		if !set["warmup"] && !c.Quick {
			c.WarmupS = metricsCostWarmupS
		}
	}
	if c.IdleClients != 0 && !set["targets"] {
		*targets = idleTargets
	}
	c.ProxyExtra = strings.Fields(*proxyExtra)
	c.Tests = splitList(*tests)
	c.Targets = splitList(*targets)
	var err error
	if c.Threads, err = parseInts(*threads); err != nil {
		return c, fmt.Errorf("--threads: %w", err)
	}
	if c.IdleClients != 0 || set["idle-active"] {
		return c, c.validateIdle(set)
	}
	return c, c.validate()
}

func (c *config) validate() error {
	if len(c.Tests) == 0 || len(c.Threads) == 0 || len(c.Targets) == 0 {
		return errors.New("--tests, --threads and --targets must each name at least one item")
	}
	for _, t := range c.Targets {
		if !slices.Contains(knownTargets, t) {
			return fmt.Errorf("unknown target %q (known: %s)", t, strings.Join(knownTargets, ", "))
		}
	}
	if slices.Contains(c.Targets, targetProxyEpollBase) && c.BaseBin == "" {
		return fmt.Errorf("target %s needs --base-bin", targetProxyEpollBase)
	}
	for _, t := range c.Tests {
		if !strings.HasPrefix(t, "oltp_") && t != "select_random_points" && t != "select_random_ranges" {
			return fmt.Errorf("test %q is not a sysbench database test", t)
		}
	}
	if c.TimeS < 1 || c.WarmupS < 0 || c.Reps < 1 || c.Tables < 1 || c.TableSize < 1 || c.BackendConns < 1 {
		return errors.New("--time, --reps, --tables, --table-size and --backend-conns must be positive, --warmup not negative")
	}
	maxThreads := slices.Max(c.Threads)
	if c.MaxConnections < maxThreads+100 {
		return fmt.Errorf("--max-connections %d leaves no room for %d threads plus administration; raise it", c.MaxConnections, maxThreads)
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sweep:", err)
		os.Exit(2)
	}
	cfg.Command = os.Getenv("SWEEP_COMMAND")
	if cfg.Command == "" {
		cfg.Command = shellQuote(os.Args)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "sweep:", err)
		os.Exit(1)
	}
}

func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r == '-' || r == '_' || r == '.' || r == '/' || r == ',' || r == '=' || r == ':' ||
				(r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z'))
		}) < 0 {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}

// benchUser is the account sysbench logs in as, directly or through a target.
const (
	benchUser     = "sbbench"
	benchPassword = "sbbench-pw"
	benchDatabase = "sbtest"
)

func run(ctx context.Context, cfg config) error {
	started := time.Now()
	if err := checkTools(cfg); err != nil {
		return err
	}
	if err := raiseFileLimit(cfg); err != nil {
		return err
	}
	stamp := started.UTC().Format("20060102-1504")
	if cfg.Name == "" {
		cfg.Name = pick(cfg.MetricsCost, "metrics-cost-", "sweep-") + pick(cfg.Quick, "quick-", "") + stamp
		if cfg.IdleClients > 0 {
			cfg.Name = "idle-" + stamp
		}
	}
	workDir, err := filepath.Abs(filepath.Join(cfg.WorkDir, cfg.Name))
	if err != nil {
		return fmt.Errorf("work dir: %w", err)
	}
	logDir := filepath.Join(workDir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return fmt.Errorf("making %s: %w", logDir, err)
	}
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return fmt.Errorf("making %s: %w", cfg.OutDir, err)
	}

	script, err := resolveMariaDBScript(cfg.MariaDBScript)
	if err != nil {
		return err
	}
	logf("starting MariaDB (max_connections %d, %s)", cfg.MaxConnections, pick(script != "", "via "+script, "built-in starter"))
	db, err := startMariaDB(ctx, mariaDBOptions{
		// Beside the work dir rather than in it: `make clean` looks for scripts/mariadb.sh servers two
		// levels under .tmp/ and stops them before deleting.
		Dir: workDir + "-mariadb", Script: script, CPUs: cfg.MariaDBCPUs,
		MaxConnections: cfg.MaxConnections, Keep: cfg.KeepDB,
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := db.stop(); err != nil {
			logf("stopping MariaDB: %v", err)
		}
	}()
	if err := prepareDatabase(ctx, cfg, db, workDir); err != nil {
		return err
	}
	env := targetEnv{
		WorkDir: workDir, DBPort: db.Port, ProxyBin: cfg.ProxyBin, BaseBin: cfg.BaseBin, ProxyLoops: cfg.ProxyLoops,
		ProxyCPUs: cfg.ProxyCPUs, BackendConns: cfg.BackendConns, BackendUser: benchUser,
		PasswordFile: filepath.Join(workDir, "backend.password"), UsersFile: filepath.Join(workDir, "users"),
		MaxClients: slices.Max(cfg.Threads), ProxyExtra: cfg.ProxyExtra, PipelineDepth: cfg.PipelineDepth,
	}
	if slices.ContainsFunc(cfg.Targets, isProxyTarget) {
		if err := writeProxyCredentials(ctx, cfg.ProxyBin, env); err != nil {
			return err
		}
	}
	if slices.ContainsFunc(cfg.Targets, isTLSTarget) {
		env.TLSDir = filepath.Join(workDir, "tls")
		if err := writeTLSFiles(env.TLSDir); err != nil {
			return fmt.Errorf("making the TLS target's certificates: %w", err)
		}
	}
	if cfg.IdleClients > 0 {
		// Room above the measured clients, so the proxy's own limit never refuses one of them.
		env.ProxyMaxClients = cfg.IdleClients + 1000
		return runIdle(ctx, cfg, db, env, logDir, started)
	}

	csvPath := filepath.Join(cfg.OutDir, cfg.Name+".csv")
	csvFile, err := os.Create(csvPath)
	if err != nil {
		return fmt.Errorf("creating %s: %w", csvPath, err)
	}
	defer csvFile.Close()
	sink, err := newCSVSink(csvFile)
	if err != nil {
		return err
	}

	sess, err := db.openSession()
	if err != nil {
		return err
	}
	defer sess.close()
	idle, err := sess.status(ctx, "", "Threads_connected")
	if err != nil {
		return err
	}
	idleConns := idle[0]
	plan := planPoints(cfg)
	prog := newProgress(len(plan), cfg)
	var points []point
	var runErr error
	for i, pp := range plan {
		if ctx.Err() != nil {
			runErr = fmt.Errorf("interrupted after %d of %d points", i, len(plan))
			break
		}
		prog.begin(i, pp)
		p, err := runPoint(ctx, cfg, db.PID, sess, env, pp, idleConns, logDir)
		if err != nil {
			runErr = fmt.Errorf("%s, %d threads, %s, rep %d: %w", pp.Test, pp.Threads, pp.Target, pp.Rep, err)
			break
		}
		prog.end(p)
		points = append(points, p)
		if err := sink.add(p); err != nil {
			return err
		}
	}

	mdPath := filepath.Join(cfg.OutDir, cfg.Name+".md")
	pngName := cfg.Name + ".png"
	if cfg.PlotBin != "" && len(points) > 0 {
		out, err := exec.Command(cfg.PlotBin, "-in", csvPath, "-out", filepath.Join(cfg.OutDir, pngName),
			"-title", "sysbench, "+strconv.Itoa(cfg.TimeS)+" s per point, "+runtime.GOOS+" "+strconv.Itoa(runtime.NumCPU())+" CPUs").CombinedOutput()
		if err != nil {
			logf("plot failed: %v\n%s", err, out)
			pngName = ""
		}
	} else {
		pngName = ""
	}
	meta := reportMeta{
		Title:    "Sysbench sweep " + cfg.Name,
		Command:  cfg.Command,
		Started:  started,
		Finished: time.Now(),
		Host:     hostLines(db),
		Settings: settingLines(cfg),
		PNG:      pngName,
	}
	if runErr != nil {
		meta.Settings = append(meta.Settings, "INCOMPLETE: "+runErr.Error())
	}
	var md bytes.Buffer
	if err := writeMarkdown(&md, meta, points, cfg.Tests, cfg.Threads, cfg.Targets); err != nil {
		return err
	}
	if err := os.WriteFile(mdPath, md.Bytes(), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", mdPath, err)
	}
	logf("wrote %s, %s%s (took %s)", csvPath, mdPath, pick(pngName != "", ", "+filepath.Join(cfg.OutDir, pngName), ""), time.Since(started).Round(time.Second))
	return runErr
}

// pick returns a if cond, else b: for the wording of log and report lines.
func pick(cond bool, a, b string) string {
	if cond {
		return a
	}
	return b
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s sweep: %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func checkTools(cfg config) error {
	need := []string{"sysbench"}
	if cfg.IdleClients > 0 {
		need = nil // mysqlload replaces sysbench
		if !isExecutable(cfg.MysqlloadBin) {
			return fmt.Errorf("--mysqlload %q is not an executable file (bench/run.sh builds bench/cmd/mysqlload)", cfg.MysqlloadBin)
		}
	}
	if cfg.SysbenchCPUs != "" || cfg.ProxyCPUs != "" || cfg.MariaDBCPUs != "" {
		need = append(need, "taskset")
	}
	if slices.Contains(cfg.Targets, targetHAProxy) {
		need = append(need, "haproxy")
	}
	for _, n := range need {
		if _, err := firstCommand(n); err != nil {
			return err
		}
	}
	if slices.ContainsFunc(cfg.Targets, isProxyTarget) {
		bins := []string{cfg.ProxyBin}
		if slices.Contains(cfg.Targets, targetProxyEpollBase) {
			bins = append(bins, cfg.BaseBin)
		}
		for _, bin := range bins {
			out, err := exec.Command(bin, "mysqlproxy", "--help").CombinedOutput()
			if !strings.Contains(string(out), "backend-conns") {
				return fmt.Errorf("%s has no working mysqlproxy command (%v: %s); build it or leave the proxy targets out with --targets direct,haproxy",
					bin, err, strings.TrimSpace(lastLines(string(out), 3)))
			}
		}
	}
	return nil
}

// raiseFileLimit lifts the soft open-file limit to the hard one for this process and, because it is
// set explicitly, for the children it starts (sysbench does not raise its own), and fails early when
// the hard limit cannot hold the largest point: sysbench needs a socket per thread and HAProxy two.
func raiseFileLimit(cfg config) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("reading the open-file limit: %w", err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("raising the open-file limit to %d: %w", lim.Max, err)
	}
	need := neededFiles(cfg)
	if cfg.IdleClients > 0 && lim.Max < need {
		return fmt.Errorf("the hard open-file limit is %d but the proxy needs about %d for %d idle clients (ulimit -Hn, /etc/security/limits.conf); or lower --idle-clients",
			lim.Max, need, cfg.IdleClients)
	}
	if lim.Max < need {
		return fmt.Errorf("the hard open-file limit is %d but %d threads need about %d (ulimit -Hn, /etc/security/limits.conf); or lower --threads",
			lim.Max, slices.Max(cfg.Threads), need)
	}
	return nil
}

// neededFiles is the largest number of files one process of the sweep opens at its biggest point.
func neededFiles(cfg config) uint64 {
	if cfg.IdleClients > 0 {
		// The proxy holds every client; each mysqlload process holds at most loadProcessClients.
		return uint64(cfg.IdleClients+cfg.BackendConns) + 200
	}
	threads := uint64(slices.Max(cfg.Threads))
	need := threads + 100 // sysbench, and MariaDB directly
	if slices.Contains(cfg.Targets, targetHAProxy) {
		need = 2*threads + 600 // HAProxy: client and server side, plus its own margin
	}
	return need
}

func resolveMariaDBScript(s string) (string, error) {
	switch s {
	case "none", "":
		return "", nil
	case "auto":
		if isExecutable("scripts/mariadb.sh") {
			return filepath.Abs("scripts/mariadb.sh")
		}
		return "", nil
	default:
		if !isExecutable(s) {
			return "", fmt.Errorf("--mariadb-script %s is not an executable file", s)
		}
		return filepath.Abs(s)
	}
}

// prepareDatabase creates the benchmark account, loads the sysbench tables and reads them once so the
// first point does not measure a cold buffer pool.
func prepareDatabase(ctx context.Context, cfg config, db *mariaDB, workDir string) error {
	q := fmt.Sprintf("CREATE DATABASE IF NOT EXISTS %[1]s; DROP USER IF EXISTS '%[2]s'@'%%'; "+
		"CREATE USER '%[2]s'@'%%' IDENTIFIED VIA mysql_native_password USING PASSWORD('%[3]s'); "+
		"GRANT ALL PRIVILEGES ON %[1]s.* TO '%[2]s'@'%%'", benchDatabase, benchUser, benchPassword)
	if _, err := db.sql(ctx, q); err != nil {
		return err
	}
	if cfg.IdleClients > 0 {
		return nil // the idle clients run SELECT 1: no tables to load
	}
	login := dbLogin{Host: "127.0.0.1", Port: db.Port, User: benchUser, Password: benchPassword, Database: benchDatabase}
	for i := 1; i <= cfg.Tables; i++ {
		if _, err := db.sql(ctx, fmt.Sprintf("DROP TABLE IF EXISTS %s.sbtest%d", benchDatabase, i)); err != nil {
			return err
		}
	}
	logf("preparing %d table(s) of %d rows", cfg.Tables, cfg.TableSize)
	args := append(sysbenchConnArgs("oltp_read_only", login, cfg.Tables, cfg.TableSize), "--threads=1", "prepare")
	argv := withCPUs(cfg.SysbenchCPUs, append([]string{"sysbench"}, args...)...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	out, err := cmd.CombinedOutput()
	_ = os.WriteFile(filepath.Join(workDir, "logs", "prepare.log"), out, 0o644)
	if err != nil {
		return fmt.Errorf("sysbench prepare: %w\n%s", err, lastLines(string(out), 10))
	}
	for i := 1; i <= cfg.Tables; i++ {
		if _, err := db.sql(ctx, fmt.Sprintf("SELECT SUM(LENGTH(c)+LENGTH(pad)+k) FROM %s.sbtest%d", benchDatabase, i)); err != nil {
			return err
		}
	}
	return nil
}

// writeProxyCredentials writes the backend password file and a users file made by `scalestack passwd`,
// so the proxy authenticates sysbench's user itself and logs in to MariaDB as the same account.
func writeProxyCredentials(ctx context.Context, proxyBin string, env targetEnv) error {
	if err := os.WriteFile(env.PasswordFile, []byte(benchPassword+"\n"), 0o600); err != nil {
		return fmt.Errorf("writing backend password file: %w", err)
	}
	cmd := exec.CommandContext(ctx, proxyBin, "passwd", benchUser)
	cmd.Stdin = strings.NewReader(benchPassword + "\n")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	line, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("%s passwd %s: %w: %s", proxyBin, benchUser, err, stderr.String())
	}
	if err := os.WriteFile(env.UsersFile, line, 0o600); err != nil {
		return fmt.Errorf("writing users file: %w", err)
	}
	return nil
}

func hostLines(db *mariaDB) []string {
	var lines []string
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	lines = append(lines, fmt.Sprintf("Host: %d CPUs (%s), %s", runtime.NumCPU(), model, memTotal()))
	lines = append(lines, "MariaDB "+db.Version+", "+firstLineOf("sysbench", "--version"))
	if _, err := exec.LookPath("haproxy"); err == nil {
		lines = append(lines, firstLineOf("haproxy", "-v"))
	}
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil {
		lines = append(lines, fmt.Sprintf("Open-file limit per process: %d (hard %d)", lim.Cur, lim.Max))
	}
	return lines
}

func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "unknown memory"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			f := strings.Fields(v)
			if kb, err := strconv.ParseFloat(f[0], 64); err == nil {
				return fmt.Sprintf("%.0f GiB RAM", kb/1024/1024)
			}
		}
	}
	return "unknown memory"
}

func firstLineOf(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return name + ": version unknown"
	}
	l, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return l
}

func settingLines(cfg config) []string {
	cpus := func(s string) string {
		if s == "" {
			return "any"
		}
		return s
	}
	admin := `Proxy admin endpoint (metrics) off: --admin ""`
	if slices.ContainsFunc(cfg.Targets, isScrapedTarget) {
		admin = fmt.Sprintf(`Proxy admin endpoint (metrics) off (--admin "") except on %s: --admin 127.0.0.1:PORT, its /metrics scraped by the sweep every %s during the measured window (a failed scrape fails the point)`,
			targetProxyEpollScraped, scrapeInterval)
	}
	return []string{
		fmt.Sprintf("Tests %s; threads %s; targets %s", strings.Join(cfg.Tests, ", "), joinInts(cfg.Threads), strings.Join(cfg.Targets, ", ")),
		fmt.Sprintf("%d s measured after %d s warm-up per point, %d repetition(s); rounds alternate targets per thread count", cfg.TimeS, cfg.WarmupS, cfg.Reps),
		fmt.Sprintf("%d table(s) × %d rows; sysbench --rand-type=uniform --db-ps-mode=auto, errors not ignored", cfg.Tables, cfg.TableSize),
		fmt.Sprintf("Proxy: --backend-conns %d, --loops %s%s; CPUs: proxy/HAProxy %s, MariaDB %s, sysbench %s",
			cfg.BackendConns, pick(cfg.ProxyLoops > 0, strconv.Itoa(cfg.ProxyLoops), "default"),
			pick(len(cfg.ProxyExtra) > 0, ", extra flags: "+strings.Join(cfg.ProxyExtra, " "), ""),
			cpus(cfg.ProxyCPUs), cpus(cfg.MariaDBCPUs), cpus(cfg.SysbenchCPUs)),
		fmt.Sprintf("MariaDB: thread-per-connection, max_connections %d, max_prepared_stmt_count 1048576", cfg.MaxConnections),
		admin,
	}
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

// plannedPoint is one run to do.
type plannedPoint struct {
	Test    string
	Threads int
	Target  string
	Rep     int
}

// planPoints orders the runs so that, for each thread count, every target runs back to back and the
// rounds repeat: a ratio between targets then compares runs minutes apart, not a whole sweep apart.
// Each round rotates the target order so no target always runs first (after a heavier neighbour).
func planPoints(cfg config) []plannedPoint {
	var plan []plannedPoint
	for _, test := range cfg.Tests {
		for _, th := range cfg.Threads {
			for rep := 1; rep <= cfg.Reps; rep++ {
				n := len(cfg.Targets)
				for j := range n {
					plan = append(plan, plannedPoint{test, th, cfg.Targets[(j+rep-1)%n], rep})
				}
			}
		}
	}
	return plan
}

// progress prints which point runs and an ETA from the time the finished points took beyond their
// planned warm-up and measurement (connecting thousands of threads and tearing them down is not free).
type progress struct {
	total    int
	perPoint time.Duration
	started  time.Time
	extra    time.Duration // summed overhead of finished points
	done     int
	current  time.Time
}

func newProgress(total int, cfg config) *progress {
	return &progress{total: total, perPoint: time.Duration(cfg.TimeS+cfg.WarmupS) * time.Second, started: time.Now()}
}

func (p *progress) begin(i int, pp plannedPoint) {
	p.current = time.Now()
	overhead := 5 * time.Second
	if p.done > 0 {
		overhead = p.extra / time.Duration(p.done)
	}
	eta := time.Duration(p.total-i) * (p.perPoint + overhead)
	logf("[%d/%d] %s threads=%d target=%s rep=%d; elapsed %s, ETA %s",
		i+1, p.total, pp.Test, pp.Threads, pp.Target, pp.Rep, time.Since(p.started).Round(time.Second), eta.Round(time.Second))
}

func (p *progress) end(pt point) {
	took := time.Since(p.current)
	p.done++
	p.extra += max(0, took-p.perPoint)
	cpu := ""
	if !math.IsNaN(pt.TargetCPUPerKQ) {
		cpu = fmt.Sprintf(" mid-cpu=%.4fs/kq rss=%.1fMB", pt.TargetCPUPerKQ, float64(pt.TargetRSSKB)/1024)
	}
	if pt.Scrapes >= 0 {
		cpu += fmt.Sprintf(" scrapes=%d failed=%d max=%.1fms cpu/scrape=%.2fms", pt.Scrapes, pt.ScrapeFailures, pt.ScrapeMaxMS, pt.ScrapeCPUMS)
	}
	logf("      %s: qps=%.0f avg=%.2fms p95=%.2fms p99=%.2fms errors=%d reconnects=%d backend=%d%s (took %s)",
		pt.Status, pt.QPS, pt.LatAvgMS, pt.LatP95MS, pt.LatP99MS, pt.Errors, pt.Reconnects, pt.BackendConnsMax, cpu, took.Round(time.Second))
}
