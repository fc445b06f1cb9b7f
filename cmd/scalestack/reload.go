package main

import (
	"flag"
	"fmt"
	"io"
	"sort"
	"sync"
)

// reloader re-reads a running server's settings (SIGHUP or POST /reload):
// the command line is parsed again, then the --config file, exactly as at
// start, and the result is compared with the settings in effect. Settings
// the module can change live are applied; every other change is reported as
// needing a restart rather than silently ignored.
type reloader struct {
	mu   sync.Mutex // one reload at a time
	cmd  command
	args []string
	m    module
	// inEffect are the flag values the server runs with, by name.
	inEffect map[string]string
}

// reloadReport is what a reload did (logged, and the body of POST /reload).
type reloadReport struct {
	Trigger string `json:"trigger"`
	// Applied are the live settings whose value changed and now apply
	// (users is always re-read, so it is listed whenever the reload
	// succeeded).
	Applied []string `json:"applied"`
	// RestartRequired are settings whose new value differs but cannot be
	// applied while the process runs.
	RestartRequired []string `json:"restart_required"`
	// Error is set when nothing was applied.
	Error string `json:"error,omitempty"`
}

func newReloader(c command, args []string, fs *flag.FlagSet, m module) *reloader {
	return &reloader{cmd: c, args: append([]string(nil), args...), m: m, inEffect: flagValues(fs)}
}

func flagValues(fs *flag.FlagSet) map[string]string {
	v := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { v[f.Name] = f.Value.String() })
	return v
}

// reload applies what it can and reports the rest.
func (r *reloader) reload(trigger string) reloadReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := r.apply(trigger)
	if rep.Error != "" {
		logger.Error("reload failed; settings unchanged", "trigger", trigger, "err", rep.Error)
	} else {
		logger.Info("reloaded", "trigger", trigger, "applied", rep.Applied, "restart_required", rep.RestartRequired)
	}
	return rep
}

func (r *reloader) apply(trigger string) reloadReport {
	rep := reloadReport{Trigger: trigger, Applied: []string{}, RestartRequired: []string{}}
	fs, ef, _ := r.cmd.flags(io.Discard)
	if err := fs.Parse(r.args); err != nil {
		rep.Error = fmt.Sprintf("command line: %v", err)
		return rep
	}
	if ef.configFile != "" {
		if err := applyConfigFile(fs, ef.configFile); err != nil {
			rep.Error = err.Error()
			return rep
		}
	}
	lvl, err := parseLogLevel(ef.logLevel)
	if err != nil {
		rep.Error = fmt.Sprintf("--log-level: %v", err)
		return rep
	}
	if err := reloadModule(r.m, fs, r.inEffect, "", map[string]bool{"log-level": true}, &rep); err != nil {
		rep.Error = err.Error()
		return rep
	}
	logLevel.Set(lvl)
	return rep
}

// reloadModule applies a module's live settings from its freshly parsed
// flag set fs (the module's reload, which applies nothing unless all are
// valid), then reports each flag whose value differs from inEffect: as
// applied when it is live (a module's liveFlags, or named in alsoLive),
// else as needing a restart. Names in the report start with prefix.
func reloadModule(m module, fs *flag.FlagSet, inEffect map[string]string, prefix string, alsoLive map[string]bool, rep *reloadReport) error {
	if m.reload != nil {
		if err := m.reload(fs); err != nil {
			return err
		}
	}
	live := map[string]bool{}
	for n := range alsoLive {
		live[n] = true
	}
	for _, n := range m.liveFlags {
		live[n] = true
	}
	now := flagValues(fs)
	var changed []string
	for name, v := range now {
		if v != inEffect[name] {
			changed = append(changed, name)
		}
	}
	sort.Strings(changed)
	for _, name := range changed {
		if live[name] {
			rep.Applied = append(rep.Applied, prefix+name)
			inEffect[name] = now[name]
		} else {
			rep.RestartRequired = append(rep.RestartRequired, fmt.Sprintf("%s%s (running with %q, file says %q)", prefix, name, inEffect[name], now[name]))
		}
	}
	for _, always := range []string{"users", "tenants"} { // files re-read whether or not a flag changed
		if live[always] && !contains(rep.Applied, prefix+always) {
			rep.Applied = append(rep.Applied, prefix+always)
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
