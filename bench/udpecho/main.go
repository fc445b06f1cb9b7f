// Command udpecho measures UDP echo servers: scalestack echo --udp on epoll
// and on io_uring against a plain Go net.UDPConn server. Many senders each
// keep a window of small datagrams in flight; the figure that matters is
// replies per CPU-second of the server (its user+system time over the
// measured window), with loss reported, so that a server cannot look good
// by dropping. With -server-cpu-quota each server runs under a cgroup CPU
// cap, so that the server, not the generator, sets the rate on a small
// machine (as bench/echo does).
//
//	go run ./udpecho -scalestack ../bin/scalestack -server-cpu-quota 0.5
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scalestack/scalestack/bench/internal/runner"
)

type settings struct {
	scalestack  string
	contenders  []string
	senders     int
	window      int
	size        int
	loops       int
	warmup      time.Duration
	duration    time.Duration
	rounds      int
	quotaShare  float64
	quota       *runner.CPUQuota
	serverCPUs  string
	out         string
	readTimeout time.Duration
}

type result struct {
	contender  string
	msgs       float64 // replies per second in the window
	perCPU     float64 // replies per server CPU-second in the window
	serverCPU  float64 // server CPU seconds per second
	sent, lost int64   // over the whole run, after a drain
}

func main() {
	if len(os.Args) > 2 && os.Args[1] == "-serve-go" {
		procs, _ := strconv.Atoi(os.Args[3])
		if err := serveGo(os.Args[2], procs); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	var s settings
	var contenders string
	flag.StringVar(&s.scalestack, "scalestack", "bin/scalestack", "the scalestack binary")
	flag.StringVar(&contenders, "contenders", "epoll,uring,go", "servers to measure: epoll and uring (scalestack echo --udp --io ...), go (net.UDPConn, one socket read by -loops goroutines)")
	flag.IntVar(&s.senders, "senders", 64, "sending sockets, one goroutine each")
	flag.IntVar(&s.window, "window", 8, "datagrams each sender keeps in flight")
	flag.IntVar(&s.size, "size", 64, "datagram size in bytes")
	flag.IntVar(&s.loops, "loops", 1, "server loops (scalestack --loops) or GOMAXPROCS and reader goroutines (go)")
	flag.DurationVar(&s.warmup, "warmup", 2*time.Second, "traffic before the measured window")
	flag.DurationVar(&s.duration, "duration", 10*time.Second, "measured window")
	flag.IntVar(&s.rounds, "rounds", 3, "rounds; each runs every contender once, in a rotated order")
	flag.Float64Var(&s.quotaShare, "server-cpu-quota", 0, "cap each server at this share of one CPU with a cgroup (needs root; 0: no cap)")
	flag.StringVar(&s.serverCPUs, "server-cpus", "", "pin the server to these CPUs with taskset (empty: no pinning)")
	flag.StringVar(&s.out, "out", "", "write the markdown report here as well as to stdout")
	flag.DurationVar(&s.readTimeout, "read-timeout", 200*time.Millisecond, "a sender whose window got no reply this long counts it lost and sends a new one")
	flag.Parse()
	s.contenders = strings.Split(contenders, ",")
	if err := run(&s); err != nil {
		fmt.Fprintln(os.Stderr, "udpecho:", err)
		os.Exit(1)
	}
}

func run(s *settings) error {
	if s.quotaShare > 0 {
		q, err := runner.NewCPUQuota(s.quotaShare)
		if err != nil {
			return err
		}
		s.quota = q
		defer q.Remove()
	}
	load := runner.LoadAvg()
	var results []result
	for r := 0; r < s.rounds; r++ {
		for k := range s.contenders {
			c := s.contenders[(k+r)%len(s.contenders)]
			res, err := measure(s, c)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", r+1, c, err)
			}
			fmt.Fprintf(os.Stderr, "round %d %-5s %10.0f msgs/s %10.0f msgs/CPU-s  server CPU %.2f  lost %d of %d\n",
				r+1, c, res.msgs, res.perCPU, res.serverCPU, res.lost, res.sent)
			results = append(results, res)
		}
	}
	var w io.Writer = os.Stdout
	if s.out != "" {
		f, err := os.Create(s.out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = io.MultiWriter(os.Stdout, f)
	}
	report(w, s, results, load)
	return nil
}

func freeUDPAddr() (string, error) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.LocalAddr().String(), nil
}

func measure(s *settings, contender string) (result, error) {
	addr, err := freeUDPAddr()
	if err != nil {
		return result{}, err
	}
	var argv []string
	switch contender {
	case "epoll", "uring":
		argv = []string{s.scalestack, "echo", "--udp", "--io", contender, "--loops", strconv.Itoa(s.loops),
			"--listen", addr, "--udp-rcvbuf", "4194304", "--admin", ""}
	case "go":
		self, err := os.Executable()
		if err != nil {
			return result{}, err
		}
		argv = []string{self, "-serve-go", addr, strconv.Itoa(s.loops)}
	default:
		return result{}, fmt.Errorf("unknown contender %q", contender)
	}
	if s.quota != nil {
		argv = s.quota.Wrap(argv)
	}
	p, err := runner.Start(contender, s.serverCPUs, argv...)
	if err != nil {
		return result{}, err
	}
	defer p.Stop()
	if _, err := p.WaitLine("", 10*time.Second); err != nil {
		return result{}, fmt.Errorf("server did not start: %w; stderr: %s", err, p.Stderr())
	}
	res := result{contender: contender}
	g, err := startGenerator(s, addr)
	if err != nil {
		return result{}, err
	}
	time.Sleep(s.warmup)
	cpu0, err := runner.CPUSeconds(p.Pid())
	if err != nil {
		g.stop()
		return result{}, err
	}
	got0, t0 := g.received.Load(), time.Now()
	time.Sleep(s.duration)
	cpu1, err := runner.CPUSeconds(p.Pid())
	got1, t1 := g.received.Load(), time.Now()
	g.stop()
	if err != nil {
		return result{}, err
	}
	secs := t1.Sub(t0).Seconds()
	res.msgs = float64(got1-got0) / secs
	res.serverCPU = (cpu1 - cpu0) / secs
	if cpu1 > cpu0 {
		res.perCPU = float64(got1-got0) / (cpu1 - cpu0)
	}
	res.sent = g.sent.Load()
	res.lost = res.sent - g.received.Load()
	return res, nil
}

// generator runs the senders: each sends its window, then one datagram per
// reply; a window that gets no reply for readTimeout is counted lost and
// sent again, so a server that drops cannot stall the run.
type generator struct {
	sent, received atomic.Int64
	done           chan struct{}
	wg             sync.WaitGroup
	conns          []*net.UDPConn
}

func startGenerator(s *settings, addr string) (*generator, error) {
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	g := &generator{done: make(chan struct{})}
	for i := 0; i < s.senders; i++ {
		c, err := net.DialUDP("udp", nil, raddr)
		if err != nil {
			g.stop()
			return nil, err
		}
		_ = c.SetReadBuffer(1 << 20)
		g.conns = append(g.conns, c)
		g.wg.Add(1)
		go g.sender(s, c)
	}
	return g, nil
}

func (g *generator) sender(s *settings, c *net.UDPConn) {
	defer g.wg.Done()
	msg := make([]byte, s.size)
	in := make([]byte, s.size+64)
	send := func(n int) bool {
		for i := 0; i < n; i++ {
			if _, err := c.Write(msg); err != nil {
				return false
			}
			g.sent.Add(1)
		}
		return true
	}
	if !send(s.window) {
		return
	}
	for {
		select {
		case <-g.done:
			return
		default:
		}
		_ = c.SetReadDeadline(time.Now().Add(s.readTimeout))
		if _, err := c.Read(in); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if !send(s.window) {
					return
				}
				continue
			}
			return
		}
		g.received.Add(1)
		if !send(1) {
			return
		}
	}
}

// stop ends sending, lets replies in flight arrive (they count), then
// closes the sockets.
func (g *generator) stop() {
	close(g.done)
	g.wg.Wait()
	time.Sleep(300 * time.Millisecond) // replies still on their way
	in := make([]byte, 65536)
	for _, c := range g.conns {
		for {
			// What arrived is already queued: a short deadline per read
			// collects it without waiting on an empty socket.
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
			if _, err := c.Read(in); err != nil {
				break
			}
			g.received.Add(1)
		}
		c.Close()
	}
}

// serveGo is the reference: the usual Go UDP server, one socket read by
// procs goroutines with ReadFromUDPAddrPort and answered with
// WriteToUDPAddrPort (neither allocates).
func serveGo(addr string, procs int) error {
	if procs < 1 {
		procs = 1
	}
	runtime.GOMAXPROCS(procs)
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		return err
	}
	_ = c.SetReadBuffer(4 << 20)
	fmt.Printf("go-udp listening on %s\n", addr)
	var wg sync.WaitGroup
	for i := 0; i < procs; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 65536)
			for {
				n, from, err := c.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				_, _ = c.WriteToUDPAddrPort(buf[:n], from)
			}
		}()
	}
	wg.Wait()
	return nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func report(w io.Writer, s *settings, results []result, load string) {
	fmt.Fprintf(w, "# UDP echo: scalestack (epoll, io_uring) against Go's net.UDPConn\n\n")
	fmt.Fprintf(w, "Command: `%s`\n\n", strings.Join(os.Args, " "))
	fmt.Fprintf(w, "Host: %s; load average at start %s\n\n", runner.MachineFacts(), load)
	fmt.Fprintf(w, "%d senders × a window of %d datagrams of %d bytes; server loops/GOMAXPROCS %d; warm-up %v, window %v, %d rounds (medians below).",
		s.senders, s.window, s.size, s.loops, s.warmup, s.duration, s.rounds)
	if s.quota != nil {
		fmt.Fprintf(w, " Each server ran under a cgroup CPU quota of %.2f of one CPU.", s.quotaShare)
	}
	fmt.Fprintf(w, "\n\n| server | msgs/s | msgs per server CPU-second | × Go | server CPU | loss |\n|---|---:|---:|---:|---:|---:|\n")
	per := map[string][]result{}
	for _, r := range results {
		per[r.contender] = append(per[r.contender], r)
	}
	pick := func(rs []result, f func(result) float64) float64 {
		var v []float64
		for _, r := range rs {
			v = append(v, f(r))
		}
		return median(v)
	}
	goPerCPU := pick(per["go"], func(r result) float64 { return r.perCPU })
	for _, c := range s.contenders {
		rs := per[c]
		var sent, lost int64
		for _, r := range rs {
			sent += r.sent
			lost += r.lost
		}
		ratio := "–"
		if goPerCPU > 0 {
			ratio = fmt.Sprintf("%.2f", pick(rs, func(r result) float64 { return r.perCPU })/goPerCPU)
		}
		loss := 0.0
		if sent > 0 {
			loss = 100 * float64(lost) / float64(sent)
		}
		fmt.Fprintf(w, "| %s | %.0f | %.0f | %s | %.2f | %.3f %% (%d of %d) |\n", c,
			pick(rs, func(r result) float64 { return r.msgs }), pick(rs, func(r result) float64 { return r.perCPU }),
			ratio, pick(rs, func(r result) float64 { return r.serverCPU }), loss, lost, sent)
	}
}
