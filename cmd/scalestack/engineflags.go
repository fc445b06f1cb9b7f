package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/reactor"
)

// engineFlags are the flags every module shares.
type engineFlags struct {
	loops    int
	cpus     string
	io       string
	admin    string
	logLevel string
}

func (f *engineFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.loops, "loops", 0, "number of reactor loops (0: one per CPU the process may use, or per --cpus entry)")
	fs.StringVar(&f.cpus, "cpus", "", "pin loop i to the i-th CPU of this list, e.g. 0-7 or 0,2,4,6 (empty: no pinning)")
	fs.StringVar(&f.io, "io", "epoll", "I/O driver: epoll or uring")
}

// registerOps adds --admin (default def; empty disables it) and --log-level.
func (f *engineFlags) registerOps(fs *flag.FlagSet, def string) {
	fs.StringVar(&f.admin, "admin", def, "admin HTTP listener for /metrics, /healthz, /readyz, /status and /debug/pprof (empty: off)")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
}

// startOps applies the log level and starts the admin endpoint when asked,
// exporting the engine's and the listener's counters.
func (f *engineFlags) startOps(e *reactor.Engine, ln *conn.Listener, extra ...prometheus.Collector) (*adminServer, error) {
	lvl, err := parseLogLevel(f.logLevel)
	if err != nil {
		return nil, err
	}
	logLevel.Set(lvl)
	if f.admin == "" {
		return nil, nil
	}
	reg := newRegistry()
	reg.MustRegister(newEngineCollector(e), newListenerCollector(ln))
	for _, c := range extra {
		reg.MustRegister(c)
	}
	return startAdmin(adminConfig{addr: f.admin, registry: reg, status: func() any {
		return map[string]any{"loops": engineStatus(e), "client_connections": ln.OpenConns()}
	}})
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

// waitForSignal blocks until SIGINT or SIGTERM.
func waitForSignal() os.Signal {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(ch)
	return <-ch
}
