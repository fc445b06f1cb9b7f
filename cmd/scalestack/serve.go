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
	// collectors are extra metrics for the admin endpoint.
	collectors []prometheus.Collector
	// ready reports whether the module can take traffic (/readyz).
	ready func() error
	// status adds module details to /status.
	status func() any
	// start runs after the engine started and before the listener opens
	// (a proxy opens its backend connections); stop runs at exit.
	start func(e *reactor.Engine) error
	stop  func()
	// drain asks the module to finish in-flight work and close its clients
	// (called after accepting stopped); nil leaves clients to close on their
	// own until the shutdown timeout.
	drain func()
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
	var upg *upgradeServer
	if f.upgradeSocket != "" {
		upg, err = serveUpgrades(f.upgradeSocket, ln.Files, func() { _ = ln.Handoff() })
		if err != nil {
			ln.Close()
			return err
		}
		defer upg.Close()
	}
	admin, err := f.startOps(e, ln, m)
	if err != nil {
		ln.Close()
		return err
	}
	if admin != nil {
		defer admin.Close()
		logger.Info("admin endpoint", "addr", admin.Addr())
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
		m.drain()
	}
	deadline := time.Now().Add(f.shutdownTimeout)
	for ln.OpenConns() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := ln.OpenConns(); n > 0 {
		logger.Warn("shutdown timeout: closing remaining clients", "clients", n)
	}
	return nil
}
