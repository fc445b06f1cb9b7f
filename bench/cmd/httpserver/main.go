// Command httpserver is the Go net/http contender of bench/http: a minimal
// server that answers every request with the same small body ("fixed"), or
// serves a directory with http.FileServer ("file"). Loopback only;
// benchmark use only.
package main

import (
	"flag"
	"log"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:7200", "loopback host:port")
	mode := flag.String("mode", "fixed", "fixed (one small body for every request) or file (http.FileServer over -root)")
	root := flag.String("root", ".", "directory for -mode file")
	body := flag.String("body", "hello world", "the body for -mode fixed")
	procs := flag.Int("procs", 1, "GOMAXPROCS")
	flag.Parse()
	runtime.GOMAXPROCS(*procs)
	var h http.Handler
	switch *mode {
	case "fixed":
		b := []byte(*body)
		n := strconv.Itoa(len(b))
		h = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", n)
			_, _ = w.Write(b)
		})
	case "file":
		h = http.FileServer(http.Dir(*root))
	default:
		log.Fatalf("unknown -mode %q", *mode)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	os.Stdout.WriteString("listening on " + ln.Addr().String() + "\n")
	log.Fatal(http.Serve(ln, h))
}
