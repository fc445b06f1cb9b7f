package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/scalestack/scalestack/reactor"
)

// parseServerFlags parses the command line, then the --config file for
// whatever the command line left unset, and validates the result.
func parseServerFlags(c command, args []string, stderr io.Writer) (*engineFlags, module, error) {
	fs, ef, prepare := c.flags(stderr)
	if err := fs.Parse(args); err != nil {
		return nil, module{}, err
	}
	if fs.NArg() > 0 {
		return nil, module{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if ef.configFile != "" {
		if err := applyConfigFile(fs, ef.configFile); err != nil {
			return nil, module{}, err
		}
	}
	m, err := prepare()
	if err != nil {
		return nil, module{}, err
	}
	m.reloader = newReloader(c, args, fs, m)
	if _, err := parseCPUList(ef.cpus); err != nil {
		return nil, module{}, fmt.Errorf("--cpus: %w", err)
	}
	if _, err := driverByName(ef.io); err != nil {
		return nil, module{}, err
	}
	if _, err := parseLogLevel(ef.logLevel); err != nil {
		return nil, module{}, fmt.Errorf("--log-level: %w", err)
	}
	return ef, m, nil
}

// runServer starts the engine and serves the command's module.
func runServer(c command, args []string, stdout, stderr io.Writer) error {
	ef, m, err := parseServerFlags(c, args, stderr)
	if err != nil {
		return err
	}
	cfg, err := ef.config()
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
	if m.start != nil {
		if err := m.start(e); err != nil {
			return err
		}
	}
	if m.stop != nil {
		defer m.stop()
	}
	return ef.serve(e, m, stdout)
}

func runCheckConfig(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("command", "mysqlproxy", "the command whose settings the file holds (serve: a file of module sections)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: scalestack check-config [--command NAME] FILE\n\nValidates a TOML configuration file: every key must be one of the command's flags\n(see 'scalestack NAME --help'); mistakes are reported with their line.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("want exactly one FILE")
	}
	if *name == "serve" {
		sc, err := parseServeConfig([]string{"--config", fs.Arg(0)}, stderr)
		if err != nil {
			return err
		}
		mods, err := sc.prepareModules()
		if err != nil {
			return err
		}
		for _, m := range mods {
			if m.stop != nil {
				m.stop()
			}
		}
		fmt.Fprintf(stdout, "%s: ok (%d modules)\n", fs.Arg(0), len(mods))
		return nil
	}
	for _, c := range commands() {
		if c.name == *name && c.flags != nil {
			if _, _, err := parseServerFlags(c, []string{"--config", fs.Arg(0)}, stderr); err != nil {
				return err
			}
			if *name == "mysqlproxy" {
				if _, err := readTenants(fs.Arg(0), 0); err != nil {
					return err
				}
			}
			fmt.Fprintf(stdout, "%s: ok\n", fs.Arg(0))
			return nil
		}
	}
	return fmt.Errorf("no server command %q", *name)
}
