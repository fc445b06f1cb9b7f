// Package loadgen drives echo-style request/response load against a server
// on loopback and measures throughput and latency; it can also open many
// connections and hold them idle, for memory figures. It is a benchmark
// tool only: it never talks to anything but 127.0.0.0/8 or a Unix socket,
// and every run is bounded by its Duration.
//
// A message is Size bytes and its reply is the same Size bytes back (an echo
// server). Each connection keeps InFlight messages outstanding: it writes
// that many, then for every complete reply it reads, records the reply's
// latency and writes one more. Replies are matched to send times in order,
// which is what an echo over a byte stream guarantees, and every echoed
// byte is checked against what was sent (each message carries its sequence
// number), so a server that returns wrong bytes fails the run.
//
// Two engines drive the connections: EngineNet, a goroutine per connection
// on Go's net package, and EngineEpoll, a few locked threads with an epoll
// instance each, which costs less CPU per message so that a server, not the
// generator, is what a run measures. Neither shares code with the servers
// the benchmarks compare.
package loadgen

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Config describes one load run.
type Config struct {
	Network  string        // "tcp" or "unix"
	Addr     string        // loopback host:port or socket path
	Conns    int           // concurrent connections
	InFlight int           // messages outstanding per connection (default 1)
	Size     int           // message size in bytes (default 64)
	Engine   string        // EngineNet or EngineEpoll (default EngineNet)
	Workers  int           // epoll engine: event-loop threads (default: one per CPU this process may run on)
	Warmup   time.Duration // traffic before measuring starts
	Duration time.Duration // measured time, after the warm-up (required)
	// OnWindow, when set, is called as the measured window opens (true)
	// and closes (false), so an observer can sample a server's CPU time
	// over exactly that window.
	OnWindow func(open bool)
	// TLS, when set, runs every connection over TLS with crypto/tls as the
	// client (handshakes done before the warm-up); the net engine only.
	TLS *tls.Config
	// Exchange, when set, replaces the echo: see Exchange.
	Exchange *Exchange
}

// Exchange is a request whose answer is fixed byte for byte, such as a
// MySQL COM_QUERY of SELECT 1 relayed by a proxy from a server that always
// answers it alike (cmd/queryload). Each message is Request and each
// answer must be exactly Reply; a run fails on the first byte that differs.
// Size is len(Request). The connections must be ready for the first
// Request when the run starts (logged in, for a protocol with a login:
// RunConns takes connections a caller prepared).
type Exchange struct {
	Request, Reply []byte
}

// Result is what a run measured, over the measured window only.
type Result struct {
	Msgs     uint64        // replies received
	Elapsed  time.Duration // measured window
	Latency  Histogram     // send-to-reply time of each counted message
	CPU      time.Duration // this process's user+system CPU time over the measured window
	Failures int           // connections that failed mid-run
	FirstErr error
	// TLS names the negotiated version, cipher suite and key exchange
	// group (one connection's) when Config.TLS was set.
	TLS string
}

// MsgsPerSec is the measured reply rate.
func (r *Result) MsgsPerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Msgs) / r.Elapsed.Seconds()
}

func (c *Config) check() error {
	if c.InFlight <= 0 {
		c.InFlight = 1
	}
	if c.Exchange != nil {
		if len(c.Exchange.Request) == 0 || len(c.Exchange.Reply) == 0 {
			return errors.New("loadgen: Exchange needs a request and a reply")
		}
		c.Size = len(c.Exchange.Request)
	}
	if c.Size <= 0 {
		c.Size = 64
	}
	switch c.Engine {
	case "":
		c.Engine = EngineNet
	case EngineNet, EngineEpoll:
	default:
		return fmt.Errorf("loadgen: unknown engine %q (want %s or %s)", c.Engine, EngineNet, EngineEpoll)
	}
	if c.Workers < 0 {
		return errors.New("loadgen: Workers must not be negative")
	}
	if c.Conns <= 0 {
		return errors.New("loadgen: Conns must be positive")
	}
	if c.TLS != nil && c.Engine != EngineNet {
		return errors.New("loadgen: TLS needs the net engine")
	}
	if c.Duration <= 0 || c.Duration > 10*time.Minute {
		return errors.New("loadgen: Duration must be between 0 and 10 minutes")
	}
	return CheckLoopback(c.Network, c.Addr)
}

// CheckLoopback refuses anything that is not a Unix socket or a literal
// loopback address: this tool must never load another machine.
func CheckLoopback(network, addr string) error {
	switch network {
	case "unix":
		return nil
	case "tcp", "tcp4":
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return fmt.Errorf("loadgen: address %q: %w", addr, err)
		}
		ip := net.ParseIP(host)
		if ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("loadgen: %q is not a loopback address", addr)
		}
		return nil
	}
	return fmt.Errorf("loadgen: unsupported network %q", network)
}

// Dial opens n connections, several at a time, and closes them all again if
// one fails.
func Dial(ctx context.Context, network, addr string, n int) ([]net.Conn, error) {
	if err := CheckLoopback(network, addr); err != nil {
		return nil, err
	}
	conns := make([]net.Conn, n)
	var d net.Dialer
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	sem := make(chan struct{}, 64) // keep the server's backlog from overflowing
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("loadgen: dial %s: %w", addr, err)
				}
				mu.Unlock()
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	if first != nil {
		CloseAll(conns)
		return nil, first
	}
	return conns, nil
}

// handshakeAll replaces each connection with a TLS client over it, after
// its handshake (several at a time, as Dial connects), and describes what
// was negotiated.
func handshakeAll(ctx context.Context, conns []net.Conn, cfg *tls.Config) (string, error) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	sem := make(chan struct{}, 64)
	for i, raw := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c := tls.Client(raw, cfg)
			if err := c.HandshakeContext(ctx); err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("loadgen: TLS handshake: %w", err)
				}
				mu.Unlock()
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	if first != nil {
		return "", first
	}
	return DescribeTLS(conns[0].(*tls.Conn).ConnectionState()), nil
}

// DescribeTLS names a connection's TLS version, cipher suite and key
// exchange group.
func DescribeTLS(st tls.ConnectionState) string {
	return tls.VersionName(st.Version) + " " + tls.CipherSuiteName(st.CipherSuite) + " " + st.CurveID.String()
}

// CloseAll closes every non-nil connection.
func CloseAll(conns []net.Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// Engines a Config may name. EngineNet drives every connection from its
// own goroutine through Go's net package; EngineEpoll drives them from a
// few goroutines, each on a locked OS thread with its own epoll instance, so
// that the generator costs less CPU per message than the servers it loads.
const (
	EngineNet   = "net"
	EngineEpoll = "epoll"
)

// Run opens cfg.Conns connections, drives them for cfg.Warmup plus
// cfg.Duration with cfg.Engine, and returns the measured window's figures.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	conns, err := Dial(ctx, cfg.Network, cfg.Addr, cfg.Conns)
	if err != nil {
		return nil, err
	}
	return RunConns(ctx, cfg, conns)
}

// RunConns is Run on connections the caller opened (cfg.Conns of them,
// to cfg.Addr) and prepared, such as clients logged in to a server before
// an Exchange starts. It closes them all before it returns.
func RunConns(ctx context.Context, cfg Config, conns []net.Conn) (*Result, error) {
	defer CloseAll(conns)
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if len(conns) != cfg.Conns {
		return nil, fmt.Errorf("loadgen: %d connections, Conns says %d", len(conns), cfg.Conns)
	}
	var (
		eng     engine
		err     error
		tlsDesc string
	)
	if cfg.TLS != nil {
		if tlsDesc, err = handshakeAll(ctx, conns, cfg.TLS); err != nil {
			return nil, err
		}
	}
	switch cfg.Engine {
	case EngineNet:
		eng = newNetEngine(conns, &cfg)
	case EngineEpoll:
		if eng, err = newEpollEngine(conns, &cfg); err != nil {
			return nil, err
		}
	}
	eng.start()
	sleep(ctx, cfg.Warmup)
	if cfg.OnWindow != nil {
		cfg.OnWindow(true)
	}
	cpuBefore := selfCPU()
	eng.measure(true)
	start := time.Now()
	sleep(ctx, cfg.Duration)
	eng.measure(false)
	elapsed := time.Since(start)
	cpu := selfCPU() - cpuBefore
	if cfg.OnWindow != nil {
		cfg.OnWindow(false)
	}
	res := &Result{Elapsed: elapsed, CPU: cpu, TLS: tlsDesc}
	eng.stop(res)
	if err := ctx.Err(); err != nil {
		return res, err
	}
	return res, nil
}

// engine is one way of driving the connections of a run.
type engine interface {
	start()
	measure(on bool)
	// stop ends the traffic, waits for every worker and adds their
	// counts, latencies and failures to res.
	stop(res *Result)
}

// selfCPU is this process's user plus system CPU time so far; zero if the
// kernel will not say.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// netEngine runs one goroutine per connection on Go's net package.
type netEngine struct {
	conns     []net.Conn
	workers   []worker
	measuring atomic.Bool
	stopping  atomic.Bool
	wg        sync.WaitGroup
}

func newNetEngine(conns []net.Conn, cfg *Config) *netEngine {
	e := &netEngine{conns: conns, workers: make([]worker, len(conns))}
	for i, c := range conns {
		e.workers[i] = worker{conn: c, cfg: cfg, measuring: &e.measuring, stopping: &e.stopping}
	}
	return e
}

func (e *netEngine) start() {
	for i := range e.workers {
		e.wg.Add(1)
		go func(w *worker) {
			defer e.wg.Done()
			w.run()
		}(&e.workers[i])
	}
}

func (e *netEngine) measure(on bool) { e.measuring.Store(on) }

func (e *netEngine) stop(res *Result) {
	e.stopping.Store(true)
	// Unblock reads and writes so every worker returns promptly.
	for _, c := range e.conns {
		c.SetDeadline(time.Now())
	}
	e.wg.Wait()
	for i := range e.workers {
		w := &e.workers[i]
		res.Msgs += w.msgs
		res.Latency.Merge(&w.hist)
		if w.err != nil {
			res.Failures++
			if res.FirstErr == nil {
				res.FirstErr = w.err
			}
		}
	}
}

// worker drives one connection for the net engine.
type worker struct {
	conn      net.Conn
	cfg       *Config
	measuring *atomic.Bool
	stopping  *atomic.Bool

	msgs uint64
	hist Histogram
	err  error
}

func (w *worker) run() {
	size, inFlight := w.cfg.Size, w.cfg.InFlight
	msg := make([]byte, size*inFlight)
	stream := newStream(w.cfg)
	// Send times of outstanding messages, oldest first, in a ring.
	sent := make([]time.Time, inFlight)
	head, outstanding := 0, 0
	send := func(n int) error {
		now := time.Now()
		for i := 0; i < n; i++ {
			sent[(head+outstanding)%inFlight] = now
			outstanding++
			stream.fill(msg[i*size : (i+1)*size])
		}
		_, err := w.conn.Write(msg[:n*size])
		return err
	}
	if err := send(inFlight); err != nil {
		w.fail(err)
		return
	}
	buf := make([]byte, max(size*inFlight, 4096))
	for {
		n, err := w.conn.Read(buf)
		if err != nil {
			w.fail(err)
			return
		}
		done, err := stream.check(buf[:n])
		if err != nil {
			w.fail(err)
			return
		}
		if done == 0 {
			continue
		}
		now := time.Now()
		measuring := w.measuring.Load()
		for i := 0; i < done; i++ {
			if measuring {
				w.hist.Record(now.Sub(sent[head]))
				w.msgs++
			}
			head = (head + 1) % inFlight
			outstanding--
		}
		if err := send(done); err != nil {
			w.fail(err)
			return
		}
	}
}

func (w *worker) fail(err error) {
	if w.stopping.Load() && !errors.Is(err, errCorrupt) {
		return // our own deadline ended the run
	}
	w.err = describe(err)
}

// describe gives a server's close a message that says so.
func describe(err error) error {
	if errors.Is(err, io.EOF) || strings.Contains(err.Error(), "reset") {
		return fmt.Errorf("loadgen: server closed the connection: %w", err)
	}
	return err
}

// Hold opens n connections, proves each one is served with a single
// exchange of one byte, and keeps them open until ctx ends or hold passes.
func Hold(ctx context.Context, network, addr string, n int, hold time.Duration) error {
	return HoldNotify(ctx, network, addr, n, hold, nil)
}

// HoldNotify is Hold that calls ready (when not nil) once every connection
// has been served, before the idle wait.
func HoldNotify(ctx context.Context, network, addr string, n int, hold time.Duration, ready func()) error {
	if hold <= 0 || hold > 30*time.Minute {
		return errors.New("loadgen: hold must be between 0 and 30 minutes")
	}
	conns, err := Dial(ctx, network, addr, n)
	if err != nil {
		return err
	}
	defer CloseAll(conns)
	var b [1]byte
	for i, c := range conns {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte{'.'}); err != nil {
			return fmt.Errorf("loadgen: connection %d: %w", i, err)
		}
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return fmt.Errorf("loadgen: connection %d: %w", i, err)
		}
		c.SetDeadline(time.Time{})
	}
	if ready != nil {
		ready()
	}
	sleep(ctx, hold)
	return nil
}
