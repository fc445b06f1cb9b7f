// Command echoserver runs the echo servers Scale Stack's engine is compared
// with: a goroutine per connection on Go's net package ("go"), and gnet v2
// ("gnet"). Both listen on loopback only and echo every byte back, like
// `scalestack echo`. Benchmark use only.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"github.com/panjf2000/gnet/v2"
)

func main() {
	impl := flag.String("impl", "go", "server implementation: go (goroutine per connection) or gnet")
	listen := flag.String("listen", "127.0.0.1:7100", "loopback host:port, or unix:/path")
	loops := flag.Int("loops", 1, "gnet event loops; for go, GOMAXPROCS")
	flag.Parse()
	network, addr := "tcp", *listen
	if p, ok := strings.CutPrefix(*listen, "unix:"); ok {
		network, addr = "unix", p
		os.Remove(p)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var err error
	switch *impl {
	case "go":
		runtime.GOMAXPROCS(*loops)
		err = serveGo(ctx, network, addr)
	case "gnet":
		err = serveGnet(ctx, network, addr, *loops)
	default:
		err = fmt.Errorf("unknown -impl %q", *impl)
	}
	if err != nil {
		log.Fatal(err)
	}
}

func serveGo(ctx context.Context, network, addr string) error {
	ln, err := net.Listen(network, addr)
	if err != nil {
		return err
	}
	fmt.Printf("echo listening on %s\n", ln.Addr())
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go func() {
			defer c.Close()
			// 16 KiB like a typical hand-written echo loop; io.Copy would
			// allocate 32 KiB per connection.
			buf := make([]byte, 16<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return // io.EOF or a reset: either way the client is gone
				}
			}
		}()
	}
}

type gnetEcho struct {
	gnet.BuiltinEventEngine
	addr   string
	booted chan gnet.Engine
}

func (e *gnetEcho) OnBoot(eng gnet.Engine) gnet.Action {
	e.booted <- eng
	fmt.Printf("echo listening on %s\n", e.addr)
	return gnet.None
}

func (e *gnetEcho) OnTraffic(c gnet.Conn) gnet.Action {
	buf, _ := c.Next(-1)
	c.Write(buf)
	return gnet.None
}

func serveGnet(ctx context.Context, network, addr string, loops int) error {
	h := &gnetEcho{addr: addr, booted: make(chan gnet.Engine, 1)}
	proto := network + "://" + addr
	go func() {
		eng := <-h.booted
		<-ctx.Done()
		eng.Stop(context.Background())
	}()
	return gnet.Run(h, proto,
		gnet.WithMulticore(loops > 1),
		gnet.WithNumEventLoop(loops),
		gnet.WithReusePort(network == "tcp" && loops > 1),
		gnet.WithLockOSThread(true),
	)
}
