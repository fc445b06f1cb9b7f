package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/scalestack/scalestack/pool/mysqlproxy"
)

// runPasswd prints the users-file line for an account, reading the password
// from standard input so it never appears in the process list or history.
func runPasswd(args []string, stdout, stderr io.Writer) error {
	return passwd(args, os.Stdin, stdout, stderr)
}

func passwd(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("passwd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: scalestack passwd [--admin] NAME < password

Reads a password (its first line) on standard input and prints the line to
add to the mysqlproxy users file:

  NAME:native=HEX(SHA1(SHA1(password))):sha2=HEX(SHA256(SHA256(password)))

Only these hashes are stored, never the password. An empty password gives
'NAME:native=:sha2=' (an account without a password).

--admin appends the field 'admin': the account may then run statements that
act on the whole server or the shared service account (SET PASSWORD, GRANT,
SET GLOBAL, FLUSH, SHUTDOWN...) and KILL other accounts' sessions.
`)
	}
	admin := fs.Bool("admin", false, "append the field 'admin' (server-wide statements, KILL of any session)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || fs.Arg(0) == "" || strings.ContainsAny(fs.Arg(0), ": \t") {
		fs.Usage()
		return fmt.Errorf("need exactly one user NAME (without ':' or spaces)")
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && err != io.EOF {
		return fmt.Errorf("read password: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	out := mysqlproxy.UserLine(fs.Arg(0), []byte(line))
	if *admin {
		out += ":admin"
	}
	fmt.Fprintln(stdout, out)
	return nil
}
