// Command queryload drives MySQL query load at a loopback server (the
// Scale Stack proxy, or bench/internal/fastmysql directly) for as little
// CPU per query as a client can spend, so that on a small machine the
// server, not the generator, sets the rate (bench/loops).
//
// It opens -conns client connections and logs each in with
// mysql_native_password (mysqlwire's client-side builders and parsers,
// not a driver: go-sql-driver/mysql through database/sql costs several
// times more per query). It then runs -query once on every connection and
// requires the same response bytes from all (a server whose answer to a
// fixed statement is fixed, as SELECT 1 through the proxy is, down to the
// sequence ids), and hands the connections to bench/loadgen as an
// Exchange: each connection sends the COM_QUERY, waits for exactly those
// bytes (any other byte fails the run) and sends it again. The epoll
// engine costs one write and one read per query.
//
// Like echoload it prints "window open" and "window closed" as the
// measured window starts and ends, then one JSON line (echoload's fields:
// msgs are queries). Benchmark use only: loopback addresses and Unix
// sockets only.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/scalestack/scalestack/bench/loadgen"
	"github.com/scalestack/scalestack/mysqlwire"
)

// Report is the JSON line queryload prints: echoload's, so that
// bench/internal/runner.RunLoad reads it.
type Report struct {
	Msgs       uint64  `json:"msgs"`
	Seconds    float64 `json:"seconds"`
	MsgsPerSec float64 `json:"msgs_per_sec"`
	P50Micros  float64 `json:"p50_us"`
	P99Micros  float64 `json:"p99_us"`
	Failures   int     `json:"failures"`
	// GeneratorCPUSeconds is queryload's own CPU time over the window.
	GeneratorCPUSeconds float64 `json:"generator_cpu_s"`
	Engine              string  `json:"engine"`
	LoginSeconds        float64 `json:"login_s"`
	ReplyBytes          int     `json:"reply_bytes"`
	FirstError          string  `json:"first_error,omitempty"`
}

type config struct {
	addr, user, password, db, query string
	conns, workers, loginWorkers    int
	engine                          string
	warmup, duration, timeout       time.Duration
}

func main() {
	var c config
	flag.StringVar(&c.addr, "addr", "127.0.0.1:6033", "server: loopback host:port, or unix:/path")
	flag.StringVar(&c.user, "user", "bench", "client account")
	flag.StringVar(&c.password, "password", "", "its password (default: $QUERYLOAD_PASSWORD)")
	flag.StringVar(&c.db, "db", "", "default schema named at login (empty: none)")
	flag.StringVar(&c.query, "query", "SELECT 1", "the statement every connection runs, back to back; its response must be the same bytes every time")
	flag.IntVar(&c.conns, "conns", 256, "client connections, each with one query in flight")
	flag.StringVar(&c.engine, "engine", loadgen.EngineEpoll, "epoll (a few locked threads with an epoll instance each; one write and one read per query) or net (a goroutine per connection)")
	flag.IntVar(&c.workers, "workers", 0, "epoll engine threads (0: one per CPU this process may run on)")
	flag.IntVar(&c.loginWorkers, "login-workers", 64, "connections logging in at once")
	flag.DurationVar(&c.warmup, "warmup", time.Second, "traffic before the measured window")
	flag.DurationVar(&c.duration, "duration", 5*time.Second, "measured window (at most 10m)")
	flag.DurationVar(&c.timeout, "login-timeout", time.Minute, "limit for connecting and logging in every client")
	flag.Parse()
	if c.password == "" {
		c.password = os.Getenv("QUERYLOAD_PASSWORD")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, c, func(open bool) {
		if open {
			fmt.Println("window open")
		} else {
			fmt.Println("window closed")
		}
	})
	if err != nil {
		log.Fatalf("queryload: %v", err)
	}
	if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, c config, onWindow func(bool)) (Report, error) {
	if c.conns < 1 || c.loginWorkers < 1 {
		return Report{}, errors.New("-conns and -login-workers must be positive")
	}
	network, addr := "tcp", c.addr
	if path, ok := strings.CutPrefix(c.addr, "unix:"); ok {
		network, addr = "unix", path
	}
	if err := loadgen.CheckLoopback(network, addr); err != nil {
		return Report{}, err
	}
	start := time.Now()
	loginCtx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	conns, err := loadgen.Dial(loginCtx, network, addr, c.conns)
	if err != nil {
		return Report{}, err
	}
	var req []byte
	req, _ = mysqlwire.AppendCommand(req, 0, mysqlwire.ComQuery, []byte(c.query))
	reply, err := prepareAll(loginCtx, conns, c, req)
	if err != nil {
		loadgen.CloseAll(conns)
		return Report{}, err
	}
	loginTime := time.Since(start)
	res, err := loadgen.RunConns(ctx, loadgen.Config{
		Network: network, Addr: addr, Conns: c.conns, Engine: c.engine, Workers: c.workers,
		Warmup: c.warmup, Duration: c.duration, OnWindow: onWindow,
		Exchange: &loadgen.Exchange{Request: req, Reply: reply},
	}, conns)
	if err != nil {
		return Report{}, err
	}
	rep := Report{
		Msgs: res.Msgs, Seconds: res.Elapsed.Seconds(), MsgsPerSec: res.MsgsPerSec(),
		P50Micros: float64(res.Latency.Quantile(0.50)) / 1e3,
		P99Micros: float64(res.Latency.Quantile(0.99)) / 1e3,
		Failures:  res.Failures, GeneratorCPUSeconds: res.CPU.Seconds(), Engine: c.engine,
		LoginSeconds: loginTime.Seconds(), ReplyBytes: len(reply),
	}
	if res.FirstErr != nil {
		rep.FirstError = res.FirstErr.Error()
	}
	return rep, nil
}

// prepareAll logs every connection in and runs the query once on each; it
// returns the response, which must be the same bytes on every connection.
func prepareAll(ctx context.Context, conns []net.Conn, c config, req []byte) ([]byte, error) {
	deadline, _ := ctx.Deadline()
	var (
		next    atomic.Int64
		mu      sync.Mutex
		first   error
		replies = make([][]byte, len(conns))
		wg      sync.WaitGroup
	)
	for range min(c.loginWorkers, len(conns)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(conns) || ctx.Err() != nil {
					return
				}
				cn := conns[i]
				cn.SetDeadline(deadline)
				err := login(cn, c.user, c.password, c.db)
				if err == nil {
					replies[i], err = exchange(cn, req)
				}
				cn.SetDeadline(time.Time{})
				if err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("client %d of %d: %w", i+1, len(conns), err)
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("logging in %d clients: %w", len(conns), err)
	}
	for i, r := range replies {
		if string(r) != string(replies[0]) {
			return nil, fmt.Errorf("client %d got a %d-byte response to %q, client 1 a %d-byte one: a fixed exchange needs the same bytes every time", i+1, len(r), req[5:], len(replies[0]))
		}
	}
	return replies[0], nil
}

// clientCaps are what the generator asks for, less what the server does
// not offer: protocol 4.1 with plugin auth, no DEPRECATE_EOF (the proxy
// offers none), no session tracking, nothing that changes a response.
const clientCaps = mysqlwire.ClientLongPassword | mysqlwire.ClientLongFlag | mysqlwire.ClientProtocol41 |
	mysqlwire.ClientTransactions | mysqlwire.ClientSecureConnection | mysqlwire.ClientMultiResults |
	mysqlwire.ClientPluginAuth | mysqlwire.ClientPluginAuthLenEncClientData

// maxSetupPacket bounds what login and the first exchange read.
const maxSetupPacket = 1 << 20

// login runs the mysql_native_password login on a fresh connection,
// following an auth switch to that plugin if the server asks for one.
func login(c net.Conn, user, password, db string) error {
	greeting, _, err := readPacket(c)
	if err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	if mysqlwire.IsERR(greeting) {
		e, _ := mysqlwire.ParseERR(greeting)
		return fmt.Errorf("server refused the connection: %d %s", e.Code, e.Message)
	}
	h, err := mysqlwire.ParseHandshake(greeting)
	if err != nil {
		return err
	}
	caps := h.Capabilities & clientCaps
	if db != "" {
		caps |= h.Capabilities & mysqlwire.ClientConnectWithDB
	}
	if caps&mysqlwire.ClientProtocol41 == 0 || caps&mysqlwire.ClientPluginAuth == 0 {
		return fmt.Errorf("server capabilities %#x lack protocol 4.1 or plugin auth", uint64(h.Capabilities))
	}
	hr := mysqlwire.HandshakeResponse{
		Capabilities: caps, MaxPacketSize: 1 << 24, CharacterSet: 45, Username: []byte(user),
		AuthResponse: mysqlwire.NativePasswordScramble([]byte(password), h.AuthPluginData),
		AuthPlugin:   []byte(mysqlwire.AuthNativePassword),
	}
	if db != "" {
		hr.Database = []byte(db)
	}
	pkt, _ := mysqlwire.AppendHandshakeResponse(nil, 1, hr)
	if _, err := c.Write(pkt); err != nil {
		return err
	}
	for range 3 { // the answer, or an auth switch and then the answer
		p, seq, err := readPacket(c)
		if err != nil {
			return fmt.Errorf("login: %w", err)
		}
		switch {
		case mysqlwire.IsOK(p):
			return nil
		case mysqlwire.IsERR(p):
			e, _ := mysqlwire.ParseERR(p)
			return fmt.Errorf("login as %q refused: %d %s", user, e.Code, e.Message)
		case mysqlwire.IsAuthSwitchRequest(p):
			sw, err := mysqlwire.ParseAuthSwitchRequest(p)
			if err != nil {
				return err
			}
			if string(sw.PluginName) != mysqlwire.AuthNativePassword {
				return fmt.Errorf("server switches to auth plugin %q; queryload speaks only %s", sw.PluginName, mysqlwire.AuthNativePassword)
			}
			pkt, _ := mysqlwire.AppendAuthSwitchResponse(nil, seq+1, mysqlwire.NativePasswordScramble([]byte(password), sw.PluginData))
			if _, err := c.Write(pkt); err != nil {
				return err
			}
		default:
			return fmt.Errorf("login: unexpected packet 0x%02x", p[0])
		}
	}
	return errors.New("login: no answer after the auth switch")
}

// exchange sends one command and returns its whole response as it came
// on the wire (headers included), tracked packet by packet to its end.
func exchange(c net.Conn, req []byte) ([]byte, error) {
	if _, err := c.Write(req); err != nil {
		return nil, err
	}
	var tr mysqlwire.ResponseTracker
	if _, err := tr.Start(mysqlwire.Command(req[4]), clientCaps); err != nil {
		return nil, err
	}
	var raw []byte
	for {
		p, seq, err := readPacket(c)
		if err != nil {
			return nil, fmt.Errorf("response: %w", err)
		}
		raw, _ = mysqlwire.AppendPacket(raw, seq, p)
		prog, err := tr.Feed(p)
		if err != nil {
			return nil, fmt.Errorf("response: %w", err)
		}
		if prog == mysqlwire.Complete {
			if code, _, failed := tr.Err(); failed {
				e, _ := mysqlwire.ParseERR(p)
				return nil, fmt.Errorf("%q failed: %d %s", req[5:], code, e.Message)
			}
			return raw, nil
		}
		if prog != mysqlwire.NeedMore {
			return nil, fmt.Errorf("response: unexpected progress %v", prog)
		}
	}
}

// readPacket reads one packet (header, then payload) and nothing beyond
// it, so no byte of what follows is left in a buffer of ours.
func readPacket(c net.Conn) ([]byte, uint8, error) {
	var h [mysqlwire.HeaderSize]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		return nil, 0, err
	}
	n, seq, _ := mysqlwire.PeekHeader(h[:])
	if n > maxSetupPacket {
		return nil, 0, fmt.Errorf("a %d-byte packet (limit %d)", n, maxSetupPacket)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(c, p); err != nil {
		return nil, 0, err
	}
	if n == 0 {
		return nil, 0, errors.New("an empty packet")
	}
	return p, seq, nil
}
