// Command echoload drives echo load at a loopback server, prints "window
// open" and "window closed" as the measured window starts and ends (for an
// observer sampling the server), then one JSON line of results. With -churn
// it opens connections continuously instead (connect, one echo, reset), to
// measure accepting; with -hold it opens connections and keeps them idle
// (for memory figures; run several processes to pass the per-process
// descriptor limit). Benchmark use only.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/scalestack/scalestack/bench/loadgen"
)

// Report is the JSON line echoload prints after a load run.
type Report struct {
	Msgs       uint64  `json:"msgs"`
	Seconds    float64 `json:"seconds"`
	MsgsPerSec float64 `json:"msgs_per_sec"`
	P50Micros  float64 `json:"p50_us"`
	P99Micros  float64 `json:"p99_us"`
	Failures   int     `json:"failures"`
	// GeneratorCPUSeconds is echoload's own user+system CPU time over the
	// measured window: near Seconds means the generator, not the server,
	// was the limit.
	GeneratorCPUSeconds float64 `json:"generator_cpu_s"`
	Engine              string  `json:"engine,omitempty"`
	FirstError          string  `json:"first_error,omitempty"`
	// TLS is the negotiated version and cipher suite with -tls; Resumed
	// counts the -churn handshakes in the window that resumed a session.
	TLS     string `json:"tls,omitempty"`
	Resumed uint64 `json:"resumed,omitempty"`
}

func main() {
	addr := flag.String("addr", "127.0.0.1:7000", "server: loopback host:port, or unix:/path")
	conns := flag.Int("conns", 1000, "concurrent connections")
	inFlight := flag.Int("inflight", 1, "messages outstanding per connection")
	size := flag.Int("size", 64, "message size in bytes")
	engine := flag.String("engine", loadgen.EngineEpoll, "how to drive the connections: epoll (a few locked threads, each with its own epoll instance; cheap per message) or net (Go net, one goroutine per connection)")
	workers := flag.Int("workers", 0, "epoll engine: event-loop threads (0: one per CPU this process may run on)")
	warmup := flag.Duration("warmup", time.Second, "traffic before measuring")
	duration := flag.Duration("duration", 5*time.Second, "measured time (at most 10m)")
	churnMode := flag.Bool("churn", false, "instead of steady load: -conns workers each connect, echo one message, reset the connection and start over; msgs counts connections completed")
	hold := flag.Duration("hold", 0, "instead of load: open -conns connections, exchange one byte on each, print \"holding N\", and keep them idle this long (or until SIGTERM)")
	tlsVersion := flag.String("tls", "", "speak TLS to the server with crypto/tls, this version only: 1.2 or 1.3 (the server's certificate is not verified; -engine net only)")
	tlsResume := flag.Bool("tls-resume", false, "with -tls and -churn: resume sessions (a session cache shared by the workers) instead of a full handshake per connection")
	flag.Parse()
	tlsCfg, err := clientTLS(*tlsVersion, *tlsResume)
	if err != nil {
		log.Fatal(err)
	}
	if tlsCfg != nil && !*churnMode {
		*engine = loadgen.EngineNet
	}

	network, address := "tcp", *addr
	if p, ok := strings.CutPrefix(*addr, "unix:"); ok {
		network, address = "unix", p
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	if *hold > 0 {
		// Print once every connection is served, then wait.
		ready := make(chan struct{})
		errc := make(chan error, 1)
		go func() {
			errc <- loadgen.HoldNotify(ctx, network, address, *conns, *hold, func() { close(ready) })
		}()
		select {
		case <-ready:
			fmt.Printf("holding %d\n", *conns)
		case err := <-errc:
			log.Fatal(err)
		}
		if err := <-errc; err != nil {
			log.Fatal(err)
		}
		return
	}

	onWindow := func(open bool) {
		if open {
			fmt.Println("window open")
		} else {
			fmt.Println("window closed")
		}
	}
	if *churnMode {
		res, err := churn(ctx, churnConfig{Network: network, Addr: address, Workers: *conns, Size: *size,
			Warmup: *warmup, Duration: *duration, OnWindow: onWindow, TLS: tlsCfg})
		if err != nil {
			log.Fatal(err)
		}
		r := Report{
			Msgs:       res.Conns,
			Seconds:    res.Elapsed.Seconds(),
			MsgsPerSec: float64(res.Conns) / res.Elapsed.Seconds(),
			P50Micros:  float64(res.Latency.Quantile(0.50)) / 1e3,
			P99Micros:  float64(res.Latency.Quantile(0.99)) / 1e3,
			Failures:   res.Failures,
			TLS:        res.TLS,
			Resumed:    res.Resumed,

			GeneratorCPUSeconds: res.CPU.Seconds(),
		}
		if res.FirstErr != nil {
			r.FirstError = res.FirstErr.Error()
		}
		if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
			log.Fatal(err)
		}
		return
	}

	res, err := loadgen.Run(ctx, loadgen.Config{
		Network: network, Addr: address, Conns: *conns, InFlight: *inFlight, Size: *size,
		Engine: *engine, Workers: *workers,
		Warmup: *warmup, Duration: *duration,
		OnWindow: onWindow, TLS: tlsCfg,
	})
	if err != nil {
		log.Fatal(err)
	}
	r := Report{
		Msgs:       res.Msgs,
		Seconds:    res.Elapsed.Seconds(),
		MsgsPerSec: res.MsgsPerSec(),
		P50Micros:  float64(res.Latency.Quantile(0.50)) / 1e3,
		P99Micros:  float64(res.Latency.Quantile(0.99)) / 1e3,
		Failures:   res.Failures,

		GeneratorCPUSeconds: res.CPU.Seconds(),
		Engine:              *engine,
		TLS:                 res.TLS,
	}
	if res.FirstErr != nil {
		r.FirstError = res.FirstErr.Error()
	}
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		log.Fatal(err)
	}
}

// clientTLS is the generator's TLS configuration for -tls and -tls-resume
// (nil without -tls). The server's certificate is not verified: the load
// is on loopback against a server this benchmark started, and verifying a
// chain would add client CPU that has nothing to do with the server.
func clientTLS(version string, resume bool) (*tls.Config, error) {
	var v uint16
	switch version {
	case "":
		if resume {
			return nil, errors.New("-tls-resume needs -tls")
		}
		return nil, nil
	case "1.2":
		v = tls.VersionTLS12
	case "1.3":
		v = tls.VersionTLS13
	default:
		return nil, fmt.Errorf("-tls %q: want 1.2 or 1.3", version)
	}
	// X25519 only: the key exchange every server here supports (OpenSSL
	// 3.0 has no ML-KEM), so that Go servers, which would otherwise
	// choose the costlier hybrid X25519MLKEM768 that Go's client offers
	// first, do the same work as the others.
	cfg := &tls.Config{InsecureSkipVerify: true, MinVersion: v, MaxVersion: v, CurvePreferences: []tls.CurveID{tls.X25519}}
	if resume {
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(0)
	}
	return cfg, nil
}
