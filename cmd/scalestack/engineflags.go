package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/scalestack/scalestack/reactor"
)

// engineFlags are the flags every module shares.
type engineFlags struct {
	loops    int
	cpus     string
	io       string
	admin    string
	logLevel string

	configFile      string
	upgradeSocket   string
	shutdownTimeout time.Duration
}

func (f *engineFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.loops, "loops", 0, "number of reactor loops (0: one per CPU the process may use, or per --cpus entry)")
	fs.StringVar(&f.cpus, "cpus", "", "pin loop i to the i-th CPU of this list, e.g. 0-7 or 0,2,4,6 (empty: no pinning)")
	fs.StringVar(&f.io, "io", "epoll", "I/O driver: epoll or uring")
}

// newServerFlags starts a server command's flag set with the engine and
// operations flags every module shares.
func newServerFlags(name string, stderr io.Writer, adminDefault string) (*flag.FlagSet, *engineFlags) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	ef := &engineFlags{}
	ef.register(fs)
	ef.registerOps(fs, adminDefault)
	return fs, ef
}

// registerOps adds --admin (default def; empty disables it) and --log-level.
func (f *engineFlags) registerOps(fs *flag.FlagSet, def string) {
	fs.StringVar(&f.admin, "admin", def, "admin HTTP listener for /metrics, /healthz, /readyz, /status, POST /reload (refused with 403 from a browser page of another origin) and /debug/pprof (empty: off)")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&f.configFile, "config", "", "TOML configuration file whose keys are these flags' names; flags on the command line override it")
	fs.StringVar(&f.upgradeSocket, "upgrade-socket", "", "Unix control socket for zero-downtime upgrades: a new process started with the same path takes over the listening sockets of the running one, which then drains and exits")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGTERM/SIGINT or hand-over, how long clients are still served after accepting stopped; then they are closed (mysqlproxy: idle sessions get ERR 1053 at once, a statement still running gets up to 1s more, see its --help)")
}

// startOps applies the log level and starts the admin endpoint when asked,
// exporting the engine's counters and each module's: its listener's and its
// own collectors, labelled module="NAME" when the process runs several.
func (f *engineFlags) startOps(e *reactor.Engine, running []*serving, p process) (*adminServer, error) {
	lvl, err := parseLogLevel(f.logLevel)
	if err != nil {
		return nil, err
	}
	logLevel.Set(lvl)
	if f.admin == "" {
		return nil, nil
	}
	reg := newRegistry()
	reg.MustRegister(newEngineCollector(e))
	for _, s := range running {
		var r prometheus.Registerer = reg
		if p.several {
			r = prometheus.WrapRegistererWith(prometheus.Labels{"module": s.m.label()}, reg)
		}
		if s.udp != nil {
			r.MustRegister(newUDPCollector(s.udp))
		} else {
			r.MustRegister(newListenerCollector(s.ln, s.m.refusals))
		}
		for _, c := range s.m.collectors {
			if err := r.Register(c); err != nil {
				return nil, fmt.Errorf("metrics of %s: %w", s.m.label(), err)
			}
		}
	}
	var reload func() (any, bool)
	if p.reload != nil {
		reload = func() (any, bool) {
			r := p.reload("POST /reload")
			return r, r.Error == ""
		}
	}
	return startAdmin(adminConfig{addr: f.admin, registry: reg, ready: readiness(running, p.several), reload: reload, status: func() any {
		if !p.several {
			return moduleStatus(e, running[0], true)
		}
		mods := make([]map[string]any, len(running))
		for i, s := range running {
			mods[i] = moduleStatus(e, s, false)
		}
		return map[string]any{"loops": engineStatus(e), "modules": mods}
	}})
}

// moduleStatus is a module's part of /status; withLoops adds the engine's
// loops (a process of one module shows them beside it).
func moduleStatus(e *reactor.Engine, s *serving, withLoops bool) map[string]any {
	st := map[string]any{"module": s.m.label()}
	if withLoops {
		st["loops"] = engineStatus(e)
	}
	if s.udp != nil {
		st["udp"] = s.udp.Stats()
	} else {
		st["client_connections"] = s.ln.OpenConns()
	}
	if s.m.instance != "" {
		st["kind"] = s.m.name
	}
	if s.m.status != nil {
		st["details"] = s.m.status()
	}
	return st
}

// readiness is ready while every module is (nil when none says).
func readiness(running []*serving, several bool) func() error {
	var checks []*serving
	for _, s := range running {
		if s.m.ready != nil {
			checks = append(checks, s)
		}
	}
	if len(checks) == 0 {
		return nil
	}
	return func() error {
		var errs []error
		for _, s := range checks {
			if err := s.m.ready(); err != nil {
				errs = append(errs, moduleErr(s.m, several, err))
			}
		}
		return errors.Join(errs...)
	}
}

// parseCPUList parses "0-3,8,10-11".
func parseCPUList(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var cpus []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("bad CPU %q in list %q", lo, s)
		}
		b := a
		if isRange {
			b, err = strconv.Atoi(hi)
			if err != nil || b < a {
				return nil, fmt.Errorf("bad CPU range %q in list %q", part, s)
			}
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

func (f *engineFlags) config() (reactor.Config, error) {
	cpus, err := parseCPUList(f.cpus)
	if err != nil {
		return reactor.Config{}, err
	}
	loops := f.loops
	if loops <= 0 && len(cpus) > 0 {
		loops = len(cpus)
	}
	if loops <= 0 {
		loops = len(reactor.AvailableCPUs())
	}
	drv, err := driverByName(f.io)
	if err != nil {
		return reactor.Config{}, err
	}
	// Loops block only in epoll_wait/io_uring_enter; keep spare Ps so a
	// loop returning from the kernel and the garbage collector never wait
	// for one, and fix the value so the runtime stops re-deriving it.
	runtime.GOMAXPROCS(loops + 2)
	return reactor.Config{Loops: loops, CPUs: cpus, NewDriver: drv, OnError: func(err error) {
		fmt.Fprintf(os.Stderr, "scalestack: %v\n", err)
	}}, nil
}

// hangupChan delivers SIGHUP (live reload).
func hangupChan() <-chan os.Signal {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	return ch
}

// signalChan delivers SIGINT and SIGTERM.
func signalChan() <-chan os.Signal {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	return ch
}
