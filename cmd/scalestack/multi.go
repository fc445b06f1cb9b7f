package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/scalestack/scalestack/reactor"
)

// `scalestack serve --config FILE` runs several modules in one process, on
// one engine, with one admin endpoint and one metrics registry. The file is
// the TOML of the single-module commands, one section per module instance:
//
//	loops = 2                     # top level: the process-wide settings,
//	admin = "127.0.0.1:6070"      # the flags every command shares
//
//	[http]                        # a module: its command's flag names
//	listen = "127.0.0.1:8080"
//	root = "/srv/www"
//
//	[echo.internal]               # [KIND.NAME]: several instances of one
//	listen = "127.0.0.1:7000"     # kind, each with its own name
//
// A section takes exactly the keys of `scalestack KIND --help` except the
// shared ones, which belong to the top level because one engine, one admin
// endpoint and one shutdown serve every module.

// serveSection is one module instance of a serve configuration.
type serveSection struct {
	name  string   // "http", or "http.public" for [http.public]
	table []string // the TOML table: ["http"] or ["http", "public"]
	cmd   command
	fs    *flag.FlagSet
	// prepare validates the parsed flags into the module (see command).
	prepare func() (module, error)
}

// serveConfig is a parsed serve command line and configuration file.
type serveConfig struct {
	fs       *flag.FlagSet // the top level's flags
	ef       *engineFlags
	file     *configFile
	sections []serveSection
}

func serveFlags(stderr io.Writer) (*flag.FlagSet, *engineFlags) {
	fs, ef := newServerFlags("serve", stderr, "")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: scalestack serve --config FILE [flags]

Runs several modules in one process, on one engine, with one admin endpoint
and one metrics registry. FILE is TOML: the flags below at the top level,
then one section per module instance whose keys are that module's flag
names (see 'scalestack KIND --help'):

  loops = 2
  admin = "127.0.0.1:6070"

  [http]
  listen = "127.0.0.1:8080"
  root = "/srv/www"

  [mysqlproxy]
  listen = "127.0.0.1:6033"
  backend = "127.0.0.1:3306"
  ...

  [echo.a]                  # [KIND.NAME]: several modules of one kind
  listen = "127.0.0.1:7000"
  [echo.b]
  listen = "127.0.0.1:7001"

Kinds: %s. Flags on the command line override the top level.
SIGHUP or POST /reload re-reads the file and applies each module's live
settings (as its own command does); SIGTERM drains every module at once;
--upgrade-socket hands every listening socket to a successor.

Flags:
`, strings.Join(moduleKinds(), ", "))
		fs.PrintDefaults()
	}
	return fs, ef
}

// moduleKinds are the commands a section may name.
func moduleKinds() []string {
	var kinds []string
	for _, c := range commands() {
		if c.flags != nil {
			kinds = append(kinds, c.name)
		}
	}
	return kinds
}

func serverCommand(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name && c.flags != nil {
			return c, true
		}
	}
	return command{}, false
}

// parseServeConfig parses the command line and the file's every section
// into flag sets; it does not build the modules (see prepareModules).
func parseServeConfig(args []string, stderr io.Writer) (*serveConfig, error) {
	fs, ef := serveFlags(stderr)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if ef.configFile == "" {
		return nil, errors.New("--config FILE is required: it lists the modules to run")
	}
	cf, err := readConfigFile(ef.configFile)
	if err != nil {
		return nil, err
	}
	sc := &serveConfig{fs: fs, ef: ef, file: cf}
	top := map[string]any{}
	var tables []string
	for k, v := range cf.values {
		if _, ok := v.(map[string]any); ok {
			tables = append(tables, k)
		} else {
			top[k] = v
		}
	}
	var errs configErrors
	if err := cf.apply(fs, nil, top, nil); err != nil {
		errs = append(errs, err.(configErrors)...)
	}
	shared := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { shared[f.Name] = true })
	refuseShared := func(key string) string {
		if shared[key] {
			return "a process-wide setting: one engine, admin endpoint and shutdown serve every module, so set it at the top level, before the first [section]"
		}
		return ""
	}
	sort.Slice(tables, func(i, j int) bool { return keyLine(cf.text, nil, tables[i]) < keyLine(cf.text, nil, tables[j]) })
	for _, kind := range tables {
		c, ok := serverCommand(kind)
		if !ok {
			errs = append(errs, cf.errAt(nil, kind, fmt.Sprintf("[%s]: no such module (kinds: %s)%s", kind, strings.Join(moduleKinds(), ", "), suggestKind(kind))))
			continue
		}
		body := cf.values[kind].(map[string]any)
		var settings, instances []string
		for k, v := range body {
			if _, ok := v.(map[string]any); ok {
				instances = append(instances, k)
			} else {
				settings = append(settings, k)
			}
		}
		if len(settings) > 0 && len(instances) > 0 {
			sort.Strings(instances)
			errs = append(errs, cf.errAt([]string{kind}, instances[0], fmt.Sprintf("[%s] has settings of its own and named instances ([%s.%s]): put the settings in a named section too", kind, kind, instances[0])))
			continue
		}
		if len(instances) == 0 {
			sc.sections = append(sc.sections, serveSection{name: kind, table: []string{kind}, cmd: c})
		}
		sort.Slice(instances, func(i, j int) bool {
			return keyLine(cf.text, []string{kind}, instances[i]) < keyLine(cf.text, []string{kind}, instances[j])
		})
		for _, inst := range instances {
			sc.sections = append(sc.sections, serveSection{name: kind + "." + inst, table: []string{kind, inst}, cmd: c})
		}
	}
	for i := range sc.sections {
		s := &sc.sections[i]
		s.fs, _, s.prepare = s.cmd.flags(stderr)
		values := cf.values[s.table[0]].(map[string]any)
		if len(s.table) == 2 {
			values = values[s.table[1]].(map[string]any)
		}
		if err := cf.apply(s.fs, s.table, values, refuseShared); err != nil {
			errs = append(errs, err.(configErrors)...)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if len(sc.sections) == 0 {
		return nil, &configError{file: cf.path, msg: fmt.Sprintf("no modules: add a section per module to run, such as [http] (kinds: %s)", strings.Join(moduleKinds(), ", "))}
	}
	if _, err := parseCPUList(ef.cpus); err != nil {
		return nil, fmt.Errorf("--cpus: %w", err)
	}
	if _, err := driverByName(ef.io); err != nil {
		return nil, err
	}
	if _, err := parseLogLevel(ef.logLevel); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return sc, nil
}

func suggestKind(kind string) string {
	best, bestDist := "", 4
	for _, k := range moduleKinds() {
		if d := editDistance(kind, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean [%s]?)", best)
}

// prepareModules builds every section's module. Two stream modules may not
// listen on one address (nor two datagram ones).
func (sc *serveConfig) prepareModules() ([]module, error) {
	var mods []module
	stopAll := func() {
		for _, m := range mods {
			if m.stop != nil {
				m.stop()
			}
		}
	}
	listening := map[string]string{} // address → section
	for _, s := range sc.sections {
		m, err := s.prepare()
		if err != nil {
			stopAll()
			return nil, sc.file.errAt(nil, s.table[0], fmt.Sprintf("[%s]: %v", s.name, err))
		}
		m.instance = s.name
		mods = append(mods, m)
		addr := m.listen.Addr.String()
		if m.udp != nil {
			addr = "udp:" + m.udp.Addr.String()
		}
		if other, dup := listening[addr]; dup && !strings.HasSuffix(addr, ":0") {
			stopAll()
			return nil, sc.file.errAt(s.table, "listen", fmt.Sprintf("[%s] listens on %s, as [%s] does", s.name, strings.TrimPrefix(addr, "tcp:"), other))
		}
		listening[addr] = s.name
	}
	return mods, nil
}

// runServe runs the modules of a configuration file.
func runServe(args []string, stdout, stderr io.Writer) error {
	sc, err := parseServeConfig(args, stderr)
	if err != nil {
		return err
	}
	mods, err := sc.prepareModules()
	if err != nil {
		return err
	}
	defer func() {
		for i := len(mods) - 1; i >= 0; i-- {
			if mods[i].stop != nil {
				mods[i].stop()
			}
		}
	}()
	cfg, err := sc.ef.config()
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
	for i := range mods {
		if mods[i].start != nil {
			if err := mods[i].start(e); err != nil {
				return fmt.Errorf("[%s]: %w", mods[i].label(), err)
			}
		}
	}
	r := newServeReloader(args, sc, mods)
	return sc.ef.serveProcess(e, process{modules: mods, several: true, reload: r.reload}, stdout)
}

// serveReloader re-reads a serve configuration (SIGHUP, POST /reload): the
// command line and the file are parsed again, as at start; the top level's
// log-level and each module's live settings apply, every other change is
// reported as needing a restart (adding or removing a section included).
// A file that does not parse changes nothing. Each module's reload applies
// all of its settings or none: one module's invalid settings (a users file
// that does not load) leave that module as it was and fail the reload, while
// the other modules take their new settings; the report says which did.
type serveReloader struct {
	mu       sync.Mutex // one reload at a time
	args     []string
	inEffect map[string]string // the top level's flags
	modules  map[string]*reloadingModule
}

type reloadingModule struct {
	m        module
	inEffect map[string]string
}

func newServeReloader(args []string, sc *serveConfig, mods []module) *serveReloader {
	r := &serveReloader{args: append([]string(nil), args...), inEffect: flagValues(sc.fs), modules: map[string]*reloadingModule{}}
	for i, s := range sc.sections {
		r.modules[s.name] = &reloadingModule{m: mods[i], inEffect: flagValues(s.fs)}
	}
	return r
}

func (r *serveReloader) reload(trigger string) reloadReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := r.apply(trigger)
	if rep.Error != "" {
		logger.Error("reload failed", "trigger", trigger, "err", rep.Error, "applied", rep.Applied)
	} else {
		logger.Info("reloaded", "trigger", trigger, "applied", rep.Applied, "restart_required", rep.RestartRequired)
	}
	return rep
}

func (r *serveReloader) apply(trigger string) reloadReport {
	rep := reloadReport{Trigger: trigger, Applied: []string{}, RestartRequired: []string{}}
	sc, err := parseServeConfig(r.args, io.Discard)
	if err != nil {
		rep.Error = err.Error()
		return rep
	}
	lvl, _ := parseLogLevel(sc.ef.logLevel) // checked by parseServeConfig
	now := flagValues(sc.fs)
	var changed []string
	for name, v := range now {
		if v != r.inEffect[name] {
			changed = append(changed, name)
		}
	}
	sort.Strings(changed)
	for _, name := range changed {
		if name == "log-level" {
			rep.Applied = append(rep.Applied, name)
			r.inEffect[name] = now[name]
		} else {
			rep.RestartRequired = append(rep.RestartRequired, fmt.Sprintf("%s (running with %q, file says %q)", name, r.inEffect[name], now[name]))
		}
	}
	logLevel.Set(lvl)
	inFile := map[string]bool{}
	var failed []string
	for _, s := range sc.sections {
		inFile[s.name] = true
		rm, ok := r.modules[s.name]
		if !ok {
			rep.RestartRequired = append(rep.RestartRequired, fmt.Sprintf("[%s] (added)", s.name))
			continue
		}
		if err := reloadModule(rm.m, s.fs, rm.inEffect, s.name+".", nil, &rep); err != nil {
			failed = append(failed, fmt.Sprintf("[%s]: %v (its settings are unchanged)", s.name, err))
		}
	}
	var gone []string
	for name := range r.modules {
		if !inFile[name] {
			gone = append(gone, name)
		}
	}
	sort.Strings(gone)
	for _, name := range gone {
		rep.RestartRequired = append(rep.RestartRequired, fmt.Sprintf("[%s] (removed; it keeps running)", name))
	}
	rep.Error = strings.Join(failed, "; ")
	return rep
}
