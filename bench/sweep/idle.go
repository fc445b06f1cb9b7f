package main

// The idle-clients mode (issue #5): how much memory the proxy spends per connected client, and how a
// few active clients fare while thousands sit idle. sysbench cannot hold thousands of idle clients on
// a small machine (a thread each), so bench/cmd/mysqlload does it: several processes share the
// clients, the first of them also runs the active ones.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/scalestack/scalestack/bench/internal/runner"
)

const (
	defaultIdleActive = 100
	idleTargets       = targetProxyEpoll + "," + targetProxyUring
	// loadProcessClients is the most clients one mysqlload process holds: a process may open at most
	// 20,000 files on the development host, and the Go runtime and driver need some of their own.
	loadProcessClients = 9000
	// idleSettle is how long every client has sat idle when the proxy's memory is read.
	idleSettle = 2 * time.Second
	// activeSettle is the active process's -settle: the idle reading happens inside it, with a margin
	// so that reading /proc on a busy host never overlaps the active phase.
	activeSettle = idleSettle + 3*time.Second
	// loadConnectTimeout is mysqlload's -timeout for connecting its share.
	loadConnectTimeout = 3 * time.Minute
	// baselineSettle lets the proxy finish opening its backend connections before the baseline RSS.
	baselineSettle = time.Second
)

// validateIdle checks the idle-clients mode's flags; set holds the flags given explicitly.
func (c *config) validateIdle(set map[string]bool) error {
	if c.IdleClients < 1 {
		return fmt.Errorf("--idle-active needs --idle-clients N with N ≥ 1 (got %d)", c.IdleClients)
	}
	if c.Quick || c.MetricsCost {
		return errors.New("--idle-clients is a mode of its own: leave out --quick and --metrics-cost")
	}
	for _, f := range []string{"tests", "threads", "warmup", "tables", "table-size", "profile-scraped", "sysbench-cpus"} {
		if set[f] {
			return fmt.Errorf("--%s is for the sysbench sweep; --idle-clients runs no sysbench", f)
		}
	}
	if len(c.Targets) == 0 {
		return errors.New("--targets must name at least one target")
	}
	for _, t := range c.Targets {
		switch t {
		case targetProxyEpoll, targetProxyUring:
		case targetDirect, targetHAProxy:
			return fmt.Errorf("target %s makes no sense with --idle-clients: it measures the proxy's memory per client, and %s would hold one MariaDB connection (a server thread) per client; use %s",
				t, t, idleTargets)
		default:
			return fmt.Errorf("target %q is not for --idle-clients (use %s)", t, idleTargets)
		}
	}
	shares := splitClients(c.IdleClients)
	switch {
	case c.IdleActive < 0:
		return fmt.Errorf("--idle-active %d: must not be negative", c.IdleActive)
	case c.IdleActive > shares[0]:
		return fmt.Errorf("--idle-active %d: the first mysqlload process holds %d of the %d clients and runs the active ones; lower --idle-active",
			c.IdleActive, shares[0], c.IdleClients)
	case c.TimeS < 1 || c.TimeS > 600:
		return fmt.Errorf("--time %d: the active phase must last 1 to 600 s", c.TimeS)
	case c.Reps < 1 || c.BackendConns < 1:
		return errors.New("--reps and --backend-conns must be positive")
	case c.MaxConnections < c.BackendConns+100:
		return fmt.Errorf("--max-connections %d leaves no room for %d backend connections plus administration; raise it",
			c.MaxConnections, c.BackendConns)
	}
	return nil
}

// splitClients divides n clients over as few mysqlload processes as keep each at or under
// loadProcessClients, as evenly as possible, larger shares first.
func splitClients(n int) []int {
	procs := max(1, (n+loadProcessClients-1)/loadProcessClients)
	shares := make([]int, procs)
	for i := range shares {
		shares[i] = n / procs
		if i < n%procs {
			shares[i]++
		}
	}
	return shares
}

// mysqlloadReport is the part of mysqlload's JSON line the report uses.
type mysqlloadReport struct {
	Conns      int     `json:"conns"`
	Active     int     `json:"active"`
	ConnectS   float64 `json:"connect_s"`
	Statements uint64  `json:"statements"`
	PerSec     float64 `json:"statements_per_sec"`
	P50Micros  float64 `json:"p50_us"`
	P99Micros  float64 `json:"p99_us"`
	P999Micros float64 `json:"p999_us"`
	MaxMicros  float64 `json:"max_us"`
	Errors     uint64  `json:"errors"`
	FirstError string  `json:"first_error"`
}

// idleRun is one repetition on one target.
type idleRun struct {
	Target  string
	Rep     int
	Clients int
	Status  string // "ok", or "failed: why"
	// RSS of the proxy: listening with its backends open and no client; with every client connected
	// and idle; at the end of the active phase. KiB, from VmRSS.
	RSSBeforeKB, RSSIdleKB, RSSAfterKB int64
	FDs                                int     // the proxy's open descriptors with every client connected
	ConnectS                           float64 // first mysqlload started until all reported holding
	Load                               mysqlloadReport
}

// perClientKB is the proxy's growth from no client to every client idle, divided by the clients.
func (r idleRun) perClientKB() float64 {
	if r.Status != "ok" || r.Clients == 0 {
		return math.NaN()
	}
	return float64(r.RSSIdleKB-r.RSSBeforeKB) / float64(r.Clients)
}

// planIdleRuns orders the runs like planPoints: each round runs every target, rotating which is first.
func planIdleRuns(targets []string, reps int) []plannedPoint {
	var plan []plannedPoint
	for rep := 1; rep <= reps; rep++ {
		for j := range targets {
			plan = append(plan, plannedPoint{Target: targets[(j+rep-1)%len(targets)], Rep: rep})
		}
	}
	return plan
}

// runIdle measures every planned run and writes the markdown report, also when some runs failed.
func runIdle(ctx context.Context, cfg config, db *mariaDB, env targetEnv, logDir string, started time.Time) error {
	plan := planIdleRuns(cfg.Targets, cfg.Reps)
	shares := splitClients(cfg.IdleClients)
	var runs []idleRun
	var runErr error
	failed := 0
	for i, pp := range plan {
		if ctx.Err() != nil {
			runErr = fmt.Errorf("interrupted after %d of %d runs", i, len(plan))
			break
		}
		logf("[%d/%d] idle clients=%d (mysqlload processes %s) active=%d target=%s rep=%d; elapsed %s",
			i+1, len(plan), cfg.IdleClients, joinInts(shares), cfg.IdleActive, pp.Target, pp.Rep, time.Since(started).Round(time.Second))
		t0 := time.Now()
		r := runIdleOnce(ctx, cfg, env, pp, shares, logDir)
		runs = append(runs, r)
		if r.Status != "ok" {
			failed++
			logf("      %s (took %s)", r.Status, time.Since(t0).Round(time.Second))
			continue
		}
		logf("      ok: rss before=%d KiB idle=%d KiB (%.2f KiB/client) after=%d KiB fds=%d connect=%.1fs; active: %.0f stmt/s p50=%.0fµs p99=%.0fµs p99.9=%.0fµs max=%.0fµs errors=%d (took %s)",
			r.RSSBeforeKB, r.RSSIdleKB, r.perClientKB(), r.RSSAfterKB, r.FDs, r.ConnectS, r.Load.PerSec,
			r.Load.P50Micros, r.Load.P99Micros, r.Load.P999Micros, r.Load.MaxMicros, r.Load.Errors, time.Since(t0).Round(time.Second))
	}
	if runErr == nil && failed > 0 {
		runErr = fmt.Errorf("%d of %d runs failed (see the report and %s)", failed, len(plan), logDir)
	}
	meta := reportMeta{
		Title:    "Idle clients " + cfg.Name,
		Command:  cfg.Command,
		Started:  started,
		Finished: time.Now(),
		Host:     idleHostLines(hostLines(db)),
		Settings: idleSettingLines(cfg, shares),
	}
	if runErr != nil {
		meta.Settings = append(meta.Settings, "INCOMPLETE: "+runErr.Error())
	}
	var md bytes.Buffer
	writeIdleMarkdown(&md, meta, runs, cfg.Targets)
	mdPath := filepath.Join(cfg.OutDir, cfg.Name+".md")
	if err := os.WriteFile(mdPath, md.Bytes(), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", mdPath, err)
	}
	logf("wrote %s (took %s)", mdPath, time.Since(started).Round(time.Second))
	return runErr
}

// runIdleOnce starts the proxy fresh, connects every client, reads the proxy's memory with all of
// them idle, lets the active ones run and stops everything. A failure is the run's status.
func runIdleOnce(ctx context.Context, cfg config, env targetEnv, pp plannedPoint, shares []int, logDir string) idleRun {
	r := idleRun{Target: pp.Target, Rep: pp.Rep, Clients: cfg.IdleClients, Status: "ok"}
	if err := measureIdle(ctx, cfg, env, pp, shares, logDir, &r); err != nil {
		r.Status = "failed: " + firstLine(err.Error())
		logf("      %s rep %d: %v", pp.Target, pp.Rep, err)
	}
	return r
}

func measureIdle(ctx context.Context, cfg config, env targetEnv, pp plannedPoint, shares []int, logDir string, r *idleRun) error {
	stem := filepath.Join(logDir, fmt.Sprintf("idle-%s-rep%d", pp.Target, pp.Rep))
	target, err := startTarget(ctx, pp.Target, env, stem+"-target.log")
	if err != nil {
		return err
	}
	defer func() {
		if err := target.stop(); err != nil {
			logf("stopping %s: %v", pp.Target, err)
		}
	}()
	if !sleepCtx(ctx, baselineSettle) {
		return ctx.Err()
	}
	if r.RSSBeforeKB, err = rssKB(target.PID); err != nil {
		return err
	}

	addr := "127.0.0.1:" + strconv.Itoa(target.Port)
	activeDuration := time.Duration(cfg.TimeS) * time.Second
	// The holders must outlast the active process whatever its connect time; they are stopped as soon
	// as it reports, and this bound only ends them should the sweep itself die.
	holderSettle := loadConnectTimeout + activeSettle + activeDuration + 2*time.Minute
	connectStart := time.Now()
	var procs []*loadProcess
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	// Holders first, the active process last: its settle then starts only when every other client is
	// connected, so the idle reading and the active phase both see all of them.
	for i := 1; i < len(shares); i++ {
		p, err := startLoadProcess(ctx, cfg.MysqlloadBin, loadArgs(addr, shares[i], 0, holderSettle, 0), fmt.Sprintf("%s-load%d", stem, i+1))
		if err != nil {
			return err
		}
		procs = append(procs, p)
	}
	for _, p := range procs {
		if _, err := p.waitLine(ctx, "holding ", loadConnectTimeout+30*time.Second); err != nil {
			return err
		}
	}
	active, err := startLoadProcess(ctx, cfg.MysqlloadBin, loadArgs(addr, shares[0], cfg.IdleActive, activeSettle, activeDuration), stem+"-load1")
	if err != nil {
		return err
	}
	procs = append(procs, active)
	if _, err := active.waitLine(ctx, "holding ", loadConnectTimeout+30*time.Second); err != nil {
		return err
	}
	r.ConnectS = time.Since(connectStart).Seconds()

	if !sleepCtx(ctx, idleSettle) {
		return ctx.Err()
	}
	if r.RSSIdleKB, err = rssKB(target.PID); err != nil {
		return err
	}
	if r.FDs, err = runner.OpenFDs(target.PID); err != nil {
		return fmt.Errorf("counting open files of pid %d: %w", target.PID, err)
	}
	line, err := active.waitLine(ctx, "{", activeSettle+activeDuration+2*time.Minute)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(line), &r.Load); err != nil {
		return fmt.Errorf("mysqlload's report %q: %w", line, err)
	}
	if r.RSSAfterKB, err = rssKB(target.PID); err != nil {
		return err
	}
	// A holder that quit early would have left the active phase with fewer idle clients than claimed.
	for _, p := range procs[:len(procs)-1] {
		if p.hasExited() {
			return fmt.Errorf("mysqlload %s exited before the active phase ended: %s", p.name, p.errTail())
		}
	}
	return nil
}

// loadArgs is one mysqlload process's command line; it logs in as the account sysbench uses.
func loadArgs(addr string, conns, active int, settle, duration time.Duration) []string {
	return []string{"-addr", addr, "-user", benchUser, "-db", benchDatabase, "-query", "SELECT 1",
		"-conns", strconv.Itoa(conns), "-active", strconv.Itoa(active),
		"-settle", settle.String(), "-duration", duration.String(), "-timeout", loadConnectTimeout.String()}
}

// loadProcess is one running mysqlload, its stdout delivered line by line.
type loadProcess struct {
	name    string
	cmd     *exec.Cmd
	lines   chan string // closed after stdout ended
	exited  chan struct{}
	errPath string
}

// startLoadProcess starts mysqlload with the benchmark password in its environment (not on its command
// line); stdout goes to logStem.out as well as to the caller, stderr to logStem.err.
func startLoadProcess(ctx context.Context, bin string, args []string, logStem string) (*loadProcess, error) {
	p := &loadProcess{name: filepath.Base(logStem), lines: make(chan string, 16), exited: make(chan struct{}), errPath: logStem + ".err"}
	errFile, err := os.Create(p.errPath)
	if err != nil {
		return nil, fmt.Errorf("creating mysqlload log: %w", err)
	}
	outFile, err := os.Create(logStem + ".out")
	if err != nil {
		errFile.Close()
		return nil, fmt.Errorf("creating mysqlload log: %w", err)
	}
	p.cmd = exec.CommandContext(ctx, bin, args...)
	p.cmd.Env = append(os.Environ(), "MYSQLLOAD_PASSWORD="+benchPassword)
	p.cmd.Stderr = errFile
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := p.cmd.StdoutPipe()
	if err == nil {
		err = p.cmd.Start()
	}
	if err != nil {
		errFile.Close()
		outFile.Close()
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	fmt.Fprintf(outFile, "# %s %s\n", bin, strings.Join(args, " "))
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			fmt.Fprintln(outFile, sc.Text())
			p.lines <- sc.Text()
		}
		close(p.lines)
		_ = p.cmd.Wait()
		errFile.Close()
		outFile.Close()
		close(p.exited)
	}()
	return p, nil
}

// waitLine returns the first line starting with prefix, failing when the process ends first or limit
// passes.
func (p *loadProcess) waitLine(ctx context.Context, prefix string, limit time.Duration) (string, error) {
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				<-p.exited
				return "", fmt.Errorf("mysqlload %s exited before printing %q: %s", p.name, strings.TrimSpace(prefix), p.errTail())
			}
			if strings.HasPrefix(line, prefix) {
				return line, nil
			}
		case <-timer.C:
			return "", fmt.Errorf("mysqlload %s printed no %q within %s", p.name, strings.TrimSpace(prefix), limit)
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

func (p *loadProcess) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

func (p *loadProcess) errTail() string {
	b, _ := os.ReadFile(p.errPath)
	if s := strings.TrimSpace(lastLines(string(b), 3)); s != "" {
		return s
	}
	return "no error output"
}

// stop ends the process (a holder sleeps long on purpose) and waits for it. It signals the process
// group, so anything the process started, which would hold its stdout open, ends too.
func (p *loadProcess) stop() {
	if !p.hasExited() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	}
	go func() {
		for range p.lines { // the reader must not block on an unread line
		}
	}()
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// idleHostLines drops what the sweep's host lines say about tools this mode does not run and adds
// the toolchain that built the proxy and mysqlload (bench/run.sh builds them with this sweep).
func idleHostLines(lines []string) []string {
	var out []string
	for _, l := range lines {
		if !strings.HasPrefix(l, "HAProxy") {
			out = append(out, strings.TrimSuffix(l, ", "+firstLineOf("sysbench", "--version")))
		}
	}
	return append(out, runtime.Version()+" (the sweep; bench/run.sh builds the proxy and mysqlload with the same toolchain)")
}

func idleSettingLines(cfg config, shares []int) []string {
	return []string{
		fmt.Sprintf("%s idle clients (go-sql-driver/mysql through bench/cmd/mysqlload, user %s, each proven with SELECT 1) held by %d mysqlload process(es) of %s clients; targets %s",
			mdNum(float64(cfg.IdleClients), 0, true), benchUser, len(shares), joinInts(shares), strings.Join(cfg.Targets, ", ")),
		fmt.Sprintf("Active phase: %d of the clients run SELECT 1 back to back for %d s while the rest stay connected and idle; %d repetition(s), the proxy started fresh for each",
			cfg.IdleActive, cfg.TimeS, cfg.Reps),
		fmt.Sprintf("Proxy: --backend-conns %d, --loops %s, --max-clients %d, admin endpoint (metrics) off%s; CPUs: proxy %s, MariaDB %s",
			cfg.BackendConns, pick(cfg.ProxyLoops > 0, strconv.Itoa(cfg.ProxyLoops), "default"), cfg.IdleClients+1000,
			pick(len(cfg.ProxyExtra) > 0, ", extra flags: "+strings.Join(cfg.ProxyExtra, " "), ""),
			pick(cfg.ProxyCPUs != "", cfg.ProxyCPUs, "any"), pick(cfg.MariaDBCPUs != "", cfg.MariaDBCPUs, "any")),
		"mysqlload runs unpinned beside the proxy and MariaDB: on a small host the active clients' latencies include the load generator's own share of the CPUs",
	}
}

// idlePerClientLimitKB is issue #5's acceptance: the proxy's RSS with 16,000 idle clients at most
// 2 KiB per client.
const idlePerClientLimitKB = 2.0

// idleSummary is one target's medians over its successful runs.
type idleSummary struct {
	Runs, OK                                 int
	RSSBeforeKB, RSSIdleKB, PerClientKB      float64
	RSSAfterKB, FDs, ConnectS                float64
	PerSec, P50Micros, P99Micros, P999Micros float64
	MaxMicros                                float64
	Errors                                   uint64 // summed over every run
	Failures                                 []string
}

func summarizeIdle(runs []idleRun, target string) idleSummary {
	var s idleSummary
	cols := make([][]float64, 11)
	for _, r := range runs {
		if r.Target != target {
			continue
		}
		s.Runs++
		s.Errors += r.Load.Errors
		if r.Status != "ok" {
			s.Failures = append(s.Failures, fmt.Sprintf("rep %d: %s", r.Rep, r.Status))
			continue
		}
		s.OK++
		for i, v := range []float64{float64(r.RSSBeforeKB), float64(r.RSSIdleKB), r.perClientKB(), float64(r.RSSAfterKB),
			float64(r.FDs), r.ConnectS, r.Load.PerSec, r.Load.P50Micros, r.Load.P99Micros, r.Load.P999Micros, r.Load.MaxMicros} {
			cols[i] = append(cols[i], v)
		}
	}
	for i, dst := range []*float64{&s.RSSBeforeKB, &s.RSSIdleKB, &s.PerClientKB, &s.RSSAfterKB, &s.FDs, &s.ConnectS,
		&s.PerSec, &s.P50Micros, &s.P99Micros, &s.P999Micros, &s.MaxMicros} {
		*dst = median(cols[i])
	}
	return s
}

// writeIdleMarkdown writes the idle-clients report: the verdict against issue #5, medians per target,
// then every run.
func writeIdleMarkdown(w io.Writer, meta reportMeta, runs []idleRun, targets []string) {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", meta.Title)
	fmt.Fprintf(&b, "Command:\n\n```\n%s\n```\n\n", meta.Command)
	fmt.Fprintf(&b, "Started %s, finished %s (%s).\n\n", meta.Started.UTC().Format(time.RFC3339),
		meta.Finished.UTC().Format(time.RFC3339), meta.Finished.Sub(meta.Started).Round(time.Second))
	for _, l := range slices.Concat(meta.Host, meta.Settings) {
		fmt.Fprintf(&b, "- %s\n", l)
	}
	b.WriteString("\nMemory per client is (the proxy's VmRSS with every client connected and idle − its VmRSS " +
		"before any client connected) ÷ the number of clients. Both are read from /proc/PID/status: the first once " +
		"the proxy listens and has had 1 s to open its backend connections, the second " +
		strconv.Itoa(int(idleSettle/time.Second)) + " s after the last mysqlload process reported holding all its clients. It charges all of the proxy's growth " +
		"(sessions, buffers, Go heap and runtime) to the clients; socket buffers in the kernel are not in VmRSS. " +
		"`fds` is the proxy's open descriptors at that moment, `connect s` the time from starting the first mysqlload " +
		"process until every one held its clients. The active clients' statements/s and latencies (µs, from the " +
		"client's side) come from mysqlload; `rss after` is VmRSS at the end of the active phase. " +
		"Values are medians over the repetitions that succeeded (`ok/runs`); errors are summed.\n")

	fmt.Fprintf(&b, "\n## Issue #5: RSS per idle client ≤ %.0f KiB\n\n", idlePerClientLimitKB)
	clients := 0
	if len(runs) > 0 {
		clients = runs[0].Clients
	}
	for _, t := range targets {
		s := summarizeIdle(runs, t)
		verdict := "no successful run"
		if s.OK > 0 {
			verdict = pick(s.PerClientKB <= idlePerClientLimitKB, "meets the target", "misses the target")
		}
		fmt.Fprintf(&b, "- %s: %s KiB per client with %s idle clients: %s\n", t, mdNum(s.PerClientKB, 2, false),
			mdNum(float64(clients), 0, true), verdict)
	}

	b.WriteString("\n## Medians\n\n")
	b.WriteString("| target | ok/runs | rss before KiB | rss idle KiB | KiB/client | fds | connect s | stmt/s | p50 µs | p99 µs | p99.9 µs | max µs | errors | rss after KiB |\n")
	b.WriteString("|:---|:---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	var failures []string
	for _, t := range targets {
		s := summarizeIdle(runs, t)
		fmt.Fprintf(&b, "| %s | %d/%d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d | %s |\n", t, s.OK, s.Runs,
			mdNum(s.RSSBeforeKB, 0, true), mdNum(s.RSSIdleKB, 0, true), mdNum(s.PerClientKB, 2, false), mdNum(s.FDs, 0, true),
			mdNum(s.ConnectS, 1, false), mdNum(s.PerSec, 0, true), mdNum(s.P50Micros, 0, true), mdNum(s.P99Micros, 0, true),
			mdNum(s.P999Micros, 0, true), mdNum(s.MaxMicros, 0, true), s.Errors, mdNum(s.RSSAfterKB, 0, true))
		for _, f := range s.Failures {
			failures = append(failures, t+" "+f)
		}
	}
	if len(failures) > 0 {
		b.WriteString("\nFailed runs:\n\n")
		for _, f := range failures {
			fmt.Fprintf(&b, "- %s\n", f)
		}
	}

	b.WriteString("\n## Every run\n\n")
	b.WriteString("| target | rep | status | rss before KiB | rss idle KiB | KiB/client | fds | connect s | stmt/s | p50 µs | p99 µs | p99.9 µs | max µs | errors | rss after KiB |\n")
	b.WriteString("|:---|---:|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range runs {
		if r.Status != "ok" {
			// What a failed run measured before it failed would read as a result; leave it out.
			fmt.Fprintf(&b, "| %s | %d | %s |%s\n", r.Target, r.Rep, strings.ReplaceAll(r.Status, "|", "/"), strings.Repeat(" – |", 12))
			continue
		}
		kb := func(v int64) string { return mdNum(float64(v), 0, true) }
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %.1f | %s | %s | %s | %s | %s | %d | %s |\n", r.Target, r.Rep, r.Status,
			kb(r.RSSBeforeKB), kb(r.RSSIdleKB), mdNum(r.perClientKB(), 2, false), kb(int64(r.FDs)), r.ConnectS, mdNum(r.Load.PerSec, 0, true),
			mdNum(r.Load.P50Micros, 0, true), mdNum(r.Load.P99Micros, 0, true), mdNum(r.Load.P999Micros, 0, true),
			mdNum(r.Load.MaxMicros, 0, true), r.Load.Errors, kb(r.RSSAfterKB))
		if r.Load.FirstError != "" {
			fmt.Fprintf(&b, "| | | first error: %s | | | | | | | | | | | | |\n", strings.ReplaceAll(r.Load.FirstError, "|", "/"))
		}
	}
	_, _ = io.WriteString(w, b.String())
}
