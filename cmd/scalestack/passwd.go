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
		fmt.Fprintf(stderr, `Usage: scalestack passwd [--admin] [--require-tls] [--tenant T] [--backend B [--backend-password-file F]] NAME < password

Reads a password (its first line) on standard input and prints the line to
add to the mysqlproxy users file:

  NAME:native=HEX(SHA1(SHA1(password))):sha2=HEX(SHA256(SHA256(password)))[:FIELD...]

Only these hashes are stored, never the password. An empty password gives
'NAME:native=:sha2=' (an account without a password). The other fields:

  admin                        statements that act on the whole server or the
                               shared service account (SET PASSWORD, GRANT,
                               SET GLOBAL, FLUSH, SHUTDOWN...) and KILL of
                               other accounts' sessions
  require-tls                  the account logs in only over TLS
  tenant=T                     the tenant whose rules and share it runs under
                               (without it the account is its own tenant)
  backend=B                    the server account its backend connections
                               log in as, instead of NAME
  backend-password-file=F      that account's password (first line of F;
                               relative to the users file's folder)

Flags:
`)
		fs.PrintDefaults()
	}
	admin := fs.Bool("admin", false, "append the field 'admin' (server-wide statements, KILL of any session)")
	requireTLS := fs.Bool("require-tls", false, "append the field 'require-tls' (log in only over TLS)")
	tenant := fs.String("tenant", "", "append 'tenant=`T`'")
	backend := fs.String("backend", "", "append 'backend=`B`' (the server account to log in as)")
	backendPasswordFile := fs.String("backend-password-file", "", "append 'backend-password-file=`F`'")
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
	if *requireTLS {
		out += ":require-tls"
	}
	for _, f := range []struct{ key, val string }{
		{"tenant", *tenant}, {"backend", *backend}, {"backend-password-file", *backendPasswordFile},
	} {
		if f.val != "" {
			out += ":" + f.key + "=" + f.val
		}
	}
	// The line must load: a bad tenant name or a ':' in a path is
	// reported here, not when the proxy next starts.
	if _, err := mysqlproxy.ParseUsers(strings.NewReader(out)); err != nil {
		return fmt.Errorf("the line would not load: %w", err)
	}
	fmt.Fprintln(stdout, out)
	return nil
}
