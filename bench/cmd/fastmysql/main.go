// Command fastmysql runs bench/internal/fastmysql: a MySQL server that
// knows one query (SELECT 1) and costs one read and one write per batch of
// commands, the fake backend of bench/loops. It prints "listening ADDR"
// once it accepts, and on SIGTERM or SIGINT "commands N" (the commands it
// answered), then exits. Benchmark use only: loopback addresses only.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/scalestack/scalestack/bench/internal/fastmysql"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "IPv4 loopback host:port to listen on (port 0: any free one)")
	user := flag.String("user", "bench", "the account clients log in as")
	passwordFile := flag.String("password-file", "", "file whose first line is the account's password (default: $FASTMYSQL_PASSWORD, else none)")
	flag.Parse()
	password := os.Getenv("FASTMYSQL_PASSWORD")
	if *passwordFile != "" {
		b, err := os.ReadFile(*passwordFile)
		if err != nil {
			log.Fatalf("fastmysql: %v", err)
		}
		password, _, _ = strings.Cut(string(b), "\n")
		password = strings.TrimRight(password, "\r")
	}
	srv, err := fastmysql.Listen(*listen, *user, password)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening %s\n", srv.Addr())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	select {
	case <-sigs:
		srv.Stop()
		err = <-done
	case err = <-done:
	}
	fmt.Printf("commands %d\n", srv.Commands())
	if err != nil {
		log.Fatalf("fastmysql: %v", err)
	}
}
