// Command scalestack runs Scale Stack's network modules: an echo server, a
// plain TCP proxy, an HTTP/1.1 server and the MySQL connection-concentrating proxy, each on the
// per-core reactor engine. Run `scalestack help` for the list and
// `scalestack COMMAND --help` for each command's flags.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// command is a subcommand: either a server (flags builds its flag set and
// a function that validates the parsed flags into a module) or a tool (run).
type command struct {
	name    string
	summary string
	flags   func(stderr io.Writer) (*flag.FlagSet, *engineFlags, func() (module, error))
	run     func(args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{name: "echo", summary: "echo every byte back to its sender", flags: echoFlags},
		{name: "tcpproxy", summary: "forward each connection 1:1 to a backend (like HAProxy in TCP mode)", flags: tcpProxyFlags},
		{name: "memcache", summary: "memcached proxy: keys spread over servers as twemproxy's ketama does, requests pipelined", flags: memcacheFlags},
		{name: "http", summary: "serve HTTP/1.1: static files and handlers mounted on path prefixes", flags: httpFlags},
		{name: "mysqlproxy", summary: "multiplex MySQL clients onto a fixed pool of backend connections", flags: mysqlProxyFlags},
		{name: "serve", summary: "run several modules in one process: one section of the --config file each", run: runServe},
		{name: "passwd", summary: "print a mysqlproxy users-file line for a password read on stdin", run: runPasswd},
		{name: "check-config", summary: "validate a configuration file and explain its mistakes with their lines", run: runCheckConfig},
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: scalestack COMMAND [flags]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'scalestack COMMAND --help' for a command's flags.\n")
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			var err error
			if c.flags != nil {
				err = runServer(c, args[1:], stdout, stderr)
			} else {
				err = c.run(args[1:], stdout, stderr)
			}
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			if err != nil {
				fmt.Fprintf(stderr, "scalestack %s: %v\n", c.name, err)
				return 1
			}
			return 0
		}
	}
	fmt.Fprintf(stderr, "scalestack: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}
