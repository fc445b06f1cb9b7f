package main

import (
	"flag"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/reactor"
)

// module is what a subcommand plugs into serve.
type module struct {
	name string
	// listen describes the client listener; serve fills in Inherited.
	listen conn.ListenConfig
	// udp, when set, makes the module a datagram one: serve opens it
	// with conn.ListenUDP instead of listen.
	udp *conn.UDPConfig
	// collectors are extra metrics for the admin endpoint.
	collectors []prometheus.Collector
	// refusals, when set, returns the clients the module refused itself,
	// by reason (a metric label such as "max_clients"), for
	// scalestack_client_connections_refused_total.
	refusals func() map[string]uint64
	// ready reports whether the module can take traffic (/readyz).
	ready func() error
	// status adds module details to /status.
	status func() any
	// start runs after the engine started and before the listener opens
	// (a proxy opens its backend connections); stop runs at exit.
	start func(e *reactor.Engine) error
	stop  func()
	// drain asks the module to finish in-flight work and close its clients
	// within the shutdown timeout (it is called after accepting stopped);
	// the channel it returns is closed once that is done. nil leaves
	// clients to close on their own until the shutdown timeout.
	drain func(timeout time.Duration) <-chan struct{}
	// liveFlags are the module's flags that reload applies while it runs
	// (--log-level is handled for every module); reload applies them from
	// a freshly parsed flag set. Both nil: only the log level reloads.
	liveFlags []string
	reload    func(fs *flag.FlagSet) error
	// reloader is set by runServer (it knows the command line).
	reloader *reloader
	// instance is the name a serve configuration gives the module (its
	// section: "http", or "http.public" for [http.public]); empty when the
	// module runs alone as its own subcommand.
	instance string
}

// label is how logs, metrics and /status name the module.
func (m *module) label() string {
	if m.instance != "" {
		return m.instance
	}
	return m.name
}

// process is what one scalestack process serves on its engine: the module
// of a subcommand, or the modules of a serve configuration.
type process struct {
	modules []module
	// several is set for serve: metrics carry a module label, /status
	// lists the modules, and an upgrade hand-over names each listener's
	// address. A subcommand's process keeps the forms it always had.
	several bool
	// reload re-reads the settings (SIGHUP, POST /reload); nil: none.
	reload func(trigger string) reloadReport
}

// serving is a module with its open listener while the process runs.
type serving struct {
	m   *module
	ln  *conn.Listener    // a stream module's
	udp *conn.UDPListener // a datagram module's
}

// close stops the listener; inherited sockets are only handed off, since
// the process that passed them may still serve on them (and on the socket
// file of a Unix address).
func (s *serving) close() {
	switch {
	case s.udp != nil:
		_ = s.udp.Close()
	case s.m.listen.Inherited != nil:
		_ = s.ln.Handoff()
	default:
		_ = s.ln.Close()
	}
}

// serve runs one module, as its subcommand does.
func (f *engineFlags) serve(e *reactor.Engine, m module, stdout io.Writer) error {
	p := process{modules: []module{m}}
	if m.reloader != nil {
		p.reload = m.reloader.reload
	}
	return f.serveProcess(e, p, stdout)
}

// serveProcess runs a process's modules on a started engine until
// SIGINT/SIGTERM or until a successor process takes over its listening
// sockets, then stops accepting and drains every module at once for at
// most --shutdown-timeout.
func (f *engineFlags) serveProcess(e *reactor.Engine, p process, stdout io.Writer) error {
	var finish func() error
	var inherited []inheritedSet
	if f.upgradeSocket != "" {
		for i := range p.modules {
			if p.modules[i].udp != nil {
				if !p.several {
					return fmt.Errorf("--upgrade-socket: not supported with --udp (there is no listening socket to hand over mid-stream)")
				}
				return fmt.Errorf("--upgrade-socket: not supported with a UDP module ([%s]: there is no listening socket to hand over mid-stream)", p.modules[i].label())
			}
		}
		sets, fin, err := inheritListeners(f.upgradeSocket)
		if err != nil {
			return err
		}
		if sets != nil {
			inherited, finish = sets, fin
			logger.Info("upgrade: inherited listening sockets", "listeners", len(sets))
		}
	}
	running, err := listenAll(e, p.modules, inherited)
	if err != nil {
		return err
	}
	closeListeners := func() {
		for _, s := range running {
			s.close()
		}
	}
	if finish != nil {
		if err := finish(); err != nil {
			closeListeners()
			return err
		}
	}
	if f.upgradeSocket != "" {
		// Too many sockets for one hand-over are refused now rather than
		// when an upgrade is attempted.
		_, fds, err := handover(running, p.several)()
		if err != nil {
			closeListeners()
			return fmt.Errorf("--upgrade-socket: %w", err)
		}
		closeAll(fds)
	}
	// The admin endpoint starts before upgrades are served: a successor
	// binds the same address once this process has handed over, and the
	// hand-over gives the address up first (see handoff below).
	admin, err := f.startOps(e, running, p)
	if err != nil {
		closeListeners()
		return err
	}
	if admin != nil {
		defer admin.Close()
		logger.Info("admin endpoint", "addr", admin.Addr())
	}
	var upg *upgradeServer
	if f.upgradeSocket != "" {
		handoff := func() {
			for _, s := range running {
				if s.ln != nil {
					_ = s.ln.Handoff()
				}
			}
			if admin != nil {
				// Before the successor is told to go on, which it does by
				// starting its own admin endpoint on this address.
				_ = admin.Close()
			}
		}
		upg, err = serveUpgrades(f.upgradeSocket, handover(running, p.several), handoff)
		if err != nil {
			closeListeners()
			return err
		}
		defer upg.Close()
	}
	for _, s := range running {
		if s.udp != nil {
			fmt.Fprintf(stdout, "%s listening on udp %s (%d loops, %s)\n", s.m.label(), s.udp.Addr().Address, len(e.Loops()), f.io)
		} else {
			fmt.Fprintf(stdout, "%s listening on %s (%d loops, %s)\n", s.m.label(), s.ln.Addr().Address, len(e.Loops()), f.io)
		}
	}

	stop, hangup := signalChan(), hangupChan()
wait:
	for {
		select {
		case <-hangup:
			if p.reload != nil {
				p.reload("SIGHUP")
			}
		case sig := <-stop:
			logger.Info("stopping", "signal", sig.String())
			for _, s := range running {
				if s.ln != nil {
					_ = s.ln.Close()
				}
			}
			break wait
		case <-upg.Done():
			// Handoff already stopped accepting.
			break wait
		}
	}
	f.drainAll(running, p.several)
	for _, s := range running {
		if s.udp == nil {
			continue
		}
		// A datagram module has no clients to drain: replies still queued
		// are dropped, as UDP allows.
		_ = s.udp.Close()
		st := s.udp.Stats()
		logger.Info("udp stopped", "module", s.m.label(), "received", st.Received, "sent", st.Sent,
			"truncated", st.Truncated, "queue_drops", st.QueueDrops, "send_errors", st.SendErrors)
	}
	return nil
}

// listenAll opens every module's listener, on the sockets a predecessor
// handed over for its address where there are some. Sockets of an address
// no module listens on any more are closed. On failure it closes what it
// opened and every inherited socket.
func listenAll(e *reactor.Engine, modules []module, inherited []inheritedSet) ([]*serving, error) {
	used := make([]bool, len(inherited))
	streams := 0
	for i := range modules {
		if modules[i].udp == nil {
			streams++
		}
	}
	running := make([]*serving, 0, len(modules))
	fail := func(err error) ([]*serving, error) {
		for _, s := range running {
			s.close()
		}
		for i, set := range inherited {
			if !used[i] {
				closeAll(set.fds)
			}
		}
		return nil, err
	}
	for i := range modules {
		m := &modules[i]
		s := &serving{m: m}
		if m.udp != nil {
			ln, err := conn.ListenUDP(e, *m.udp)
			if err != nil {
				return fail(moduleErr(m, len(modules) > 1, err))
			}
			s.udp = ln
			running = append(running, s)
			continue
		}
		for j, set := range inherited {
			// An unlabelled set comes from a process of one module: it is
			// this module's when this process runs one stream module too.
			if !used[j] && (set.addr == m.listen.Addr.String() || set.addr == "" && len(inherited) == 1 && streams == 1) {
				m.listen.Inherited = set.fds
				used[j] = true
				break
			}
		}
		ln, err := conn.Listen(e, m.listen)
		if err != nil {
			if m.listen.Inherited != nil {
				closeAll(m.listen.Inherited)
			}
			return fail(moduleErr(m, len(modules) > 1, err))
		}
		s.ln = ln
		running = append(running, s)
	}
	for i, set := range inherited {
		if !used[i] {
			logger.Warn("upgrade: the previous process listened where this one does not; connections waiting there are dropped", "addr", set.addr, "sockets", len(set.fds))
			closeAll(set.fds)
		}
	}
	return running, nil
}

func moduleErr(m *module, several bool, err error) error {
	if several {
		return fmt.Errorf("[%s]: %w", m.label(), err)
	}
	return err
}

// handover returns what an upgrade hands to the successor: duplicates of
// every stream listener's sockets, labelled with their addresses when the
// process runs several modules.
func handover(running []*serving, several bool) handoverFiles {
	return func() ([]byte, []int, error) {
		var fds []int
		var labels []handedListener
		for _, s := range running {
			if s.ln == nil {
				continue
			}
			part, err := s.ln.Files()
			if err != nil {
				closeAll(fds)
				return nil, nil, err
			}
			fds = append(fds, part...)
			labels = append(labels, handedListener{Addr: s.ln.Addr().String(), FDs: len(part)})
		}
		if len(fds) > maxHandoverFDs {
			closeAll(fds)
			return nil, nil, fmt.Errorf("%d listening sockets, more than the %d one hand-over carries (use fewer --loops, or --spread)", len(fds), maxHandoverFDs)
		}
		if !several {
			labels = nil
		}
		msg, err := handoverMessage(labels)
		if err != nil {
			closeAll(fds)
			return nil, nil, err
		}
		return msg, fds, nil
	}
}

// drainAll drains every stream module at once: the module's drain, or, for
// one without, waiting for its clients to leave; either for at most
// --shutdown-timeout.
func (f *engineFlags) drainAll(running []*serving, several bool) {
	logger.Info("draining", "timeout", f.shutdownTimeout.String())
	started := time.Now()
	deadline := started.Add(f.shutdownTimeout)
	var wg sync.WaitGroup
	for _, s := range running {
		if s.ln == nil {
			continue
		}
		var attrs []any
		if several {
			attrs = []any{"module", s.m.label()}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s.m.drain != nil {
				select {
				case <-s.m.drain(f.shutdownTimeout):
					logger.Info("drained", append(attrs, "took", time.Since(started).Round(time.Millisecond).String())...)
				case <-time.After(f.shutdownTimeout + drainOverrun):
					logger.Warn("drain did not finish in time", attrs...)
				}
			} else {
				for s.ln.OpenConns() > 0 && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
				}
			}
			if n := s.ln.OpenConns(); n > 0 {
				logger.Warn("shutdown timeout: closing remaining clients", append(attrs, "clients", n)...)
			}
		}()
	}
	wg.Wait()
}

// drainOverrun is how much longer than --shutdown-timeout serve waits for
// a module's drain, which may cut off statements still running at the
// timeout only a little later (mysqlproxy.DrainHardCut) and then closes its
// backend connections.
const drainOverrun = 3 * time.Second
