package main

import (
	"flag"
	"fmt"
	"io"
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
}

// serve runs a module on a started engine until SIGINT/SIGTERM or until a
// successor process takes over its listening sockets, then stops accepting
// and drains for at most --shutdown-timeout.
func (f *engineFlags) serve(e *reactor.Engine, m module, stdout io.Writer) error {
	if m.udp != nil {
		return f.serveUDP(e, m, stdout)
	}
	var finish func() error
	if f.upgradeSocket != "" {
		fds, fin, err := inheritListeners(f.upgradeSocket)
		if err != nil {
			return err
		}
		if fds != nil {
			m.listen.Inherited = fds
			finish = fin
			logger.Info("upgrade: inherited listening sockets", "count", len(fds))
		}
	}
	ln, err := conn.Listen(e, m.listen)
	if err != nil {
		if m.listen.Inherited != nil {
			closeAll(m.listen.Inherited)
		}
		return err
	}
	if finish != nil {
		if err := finish(); err != nil {
			ln.Close()
			return err
		}
	}
	// The admin endpoint starts before upgrades are served: a successor
	// binds the same address once this process has handed over, and the
	// hand-over gives the address up first (see handoff below).
	admin, err := f.startOps(e, ln, m)
	if err != nil {
		ln.Close()
		return err
	}
	if admin != nil {
		defer admin.Close()
		logger.Info("admin endpoint", "addr", admin.Addr())
	}
	var upg *upgradeServer
	if f.upgradeSocket != "" {
		handoff := func() {
			_ = ln.Handoff()
			if admin != nil {
				// Before the successor is told to go on, which it does by
				// starting its own admin endpoint on this address.
				_ = admin.Close()
			}
		}
		upg, err = serveUpgrades(f.upgradeSocket, ln.Files, handoff)
		if err != nil {
			ln.Close()
			return err
		}
		defer upg.Close()
	}
	fmt.Fprintf(stdout, "%s listening on %s (%d loops, %s)\n", m.name, ln.Addr().Address, len(e.Loops()), f.io)

	stop, hangup := signalChan(), hangupChan()
wait:
	for {
		select {
		case <-hangup:
			if m.reloader != nil {
				m.reloader.reload("SIGHUP")
			}
		case sig := <-stop:
			logger.Info("stopping", "signal", sig.String())
			_ = ln.Close()
			break wait
		case <-upg.Done():
			// Handoff already stopped accepting.
			break wait
		}
	}
	if m.drain != nil {
		logger.Info("draining", "timeout", f.shutdownTimeout.String())
		started := time.Now()
		select {
		case <-m.drain(f.shutdownTimeout):
			logger.Info("drained", "took", time.Since(started).Round(time.Millisecond).String())
		case <-time.After(f.shutdownTimeout + drainOverrun):
			logger.Warn("drain did not finish in time")
		}
	} else {
		deadline := time.Now().Add(f.shutdownTimeout)
		for ln.OpenConns() > 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if n := ln.OpenConns(); n > 0 {
		logger.Warn("shutdown timeout: closing remaining clients", "clients", n)
	}
	return nil
}

// drainOverrun is how much longer than --shutdown-timeout serve waits for
// a module's drain, which may cut off statements still running at the
// timeout only a little later (mysqlproxy.DrainHardCut) and then closes its
// backend connections.
const drainOverrun = 3 * time.Second
