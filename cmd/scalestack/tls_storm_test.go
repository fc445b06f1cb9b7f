package main

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/internal/testutil"
)

// The handshake storm and the stalled-handshake tests run `scalestack
// echo` as a separate process and the clients here, so that neither side's
// descriptors count against the other's limit (20,000 per process on the
// CI host): 10,000 clients need 10,000 descriptors on each side. The
// defaults keep make test short; the sizes are run by hand:
//
//	SCALESTACK_TLS_STORM_CLIENTS=10000 go test -count=1 -run TestTLSHandshakeStormBinary ./cmd/scalestack/
//	SCALESTACK_TLS_STALLED_CLIENTS=1000 go test -count=1 -run TestTLSStalledHandshakesBinary ./cmd/scalestack/
const (
	stormClientsEnv   = "SCALESTACK_TLS_STORM_CLIENTS"
	stalledClientsEnv = "SCALESTACK_TLS_STALLED_CLIENTS"
)

func envCount(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// tlsServerProcess is `scalestack echo` with TLS, run as a subprocess
// with its admin endpoint on.
type tlsServerProcess struct {
	addr, admin string
	http        *http.Client
}

func startTLSEchoProcess(t *testing.T, bin string, server testutil.Issued, args ...string) *tlsServerProcess {
	t.Helper()
	p := &tlsServerProcess{
		addr:  "127.0.0.1:" + freePort(t),
		admin: "127.0.0.1:" + freePort(t),
		http:  &http.Client{Timeout: 10 * time.Second},
	}
	cmd, logf := startProcess(t, bin, append([]string{"echo", "--listen", p.addr, "--admin", p.admin,
		"--tls-cert", server.CertFile, "--tls-key", server.KeyFile, "--log-level", "warn"}, args...)...)
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		waitOrKill(cmd, 10*time.Second)
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("echo log (tail):\n%s", b)
		}
	})
	return p
}

func waitOrKill(cmd *exec.Cmd, within time.Duration) {
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(within):
		_ = cmd.Process.Kill()
		<-exited
	}
}

func (p *tlsServerProcess) get(path string) (string, error) {
	resp, err := p.http.Get("http://" + p.admin + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: HTTP %d", path, resp.StatusCode)
	}
	return string(b), err
}

// goroutines returns the server's goroutines in all and those running
// handshakes (stacks through conn.(*HandshakePool).run), from its goroutine
// profile.
func (p *tlsServerProcess) goroutines() (total, handshakers int, err error) {
	body, err := p.get("/debug/pprof/goroutine?debug=1")
	if err != nil {
		return 0, 0, err
	}
	// "goroutine profile: total N", then one block per distinct stack
	// starting "K @ 0x...", its frames on lines starting with "#".
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	block := 0
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "goroutine profile: total "):
			total, err = strconv.Atoi(strings.TrimPrefix(line, "goroutine profile: total "))
			if err != nil {
				return 0, 0, fmt.Errorf("goroutine profile: %q", line)
			}
		case strings.Contains(line, " @ 0x"):
			block, _ = strconv.Atoi(line[:strings.IndexByte(line, ' ')])
		case strings.HasPrefix(line, "#") && strings.Contains(line, "conn.(*HandshakePool).run+"):
			handshakers += block
			block = 0 // count each stack once
		}
	}
	if total == 0 {
		return 0, 0, fmt.Errorf("no total in the goroutine profile")
	}
	return total, handshakers, nil
}

// metric returns the value of the first /metrics sample whose line starts
// with prefix.
func (p *tlsServerProcess) metric(prefix string) (float64, error) {
	body, err := p.get("/metrics")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, prefix+" ") {
			return strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, prefix)), 64)
		}
	}
	return 0, fmt.Errorf("no %s in /metrics", prefix)
}

// tlsStormRoundTrip handshakes with addr and echoes msg.
func tlsStormRoundTrip(addr string, cfg *tls.Config, msg []byte, deadline time.Time) error {
	raw, err := net.DialTimeout("tcp", addr, time.Until(deadline))
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	c := tls.Client(raw, cfg)
	defer c.Close()
	return roundTripOn(c, msg, deadline)
}

// TestTLSHandshakeStormBinary opens a storm of TLS clients at once against
// `scalestack echo` with --tls-max-handshakes 16: every client completes,
// the server's handshake goroutines (counted in its goroutine profile, not
// taken from the pool's own gauge) never exceed 16 nor its goroutines in
// all the idle count plus 16 and a few for the admin endpoint, its queue is
// used, and an established TLS connection is echoed throughout.
func TestTLSHandshakeStormBinary(t *testing.T) {
	const maxHandshakes = 16
	clients := envCount(t, stormClientsEnv, 400)
	bin := buildBinary(t)
	pki := testutil.NewPKI(t, "storm")
	server := pki.Server("server", "127.0.0.1")
	cfg := &tls.Config{RootCAs: pki.Pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13}
	for _, drv := range engineDrivers {
		t.Run(drv, func(t *testing.T) {
			p := startTLSEchoProcess(t, bin, server, "--io", drv, "--loops", "2",
				"--tls-max-handshakes", strconv.Itoa(maxHandshakes), "--tls-handshake-workers", "2",
				"--tls-handshake-timeout", "3m")

			established, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", p.addr, cfg)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer established.Close()
			if err := roundTripOn(established, []byte("hello"), time.Now().Add(10*time.Second)); err != nil {
				t.Fatalf("established connection: %v", err)
			}
			// The admin endpoint's own goroutines come and go with its
			// connections: its client keeps one alive, measured here.
			idle, _, err := p.goroutines()
			if err != nil {
				t.Fatal(err)
			}

			stormOver := make(chan struct{})
			type pingResult struct {
				n         int
				latencies []time.Duration
				err       error
			}
			pinged := make(chan pingResult, 1)
			go func() {
				var r pingResult
				for {
					select {
					case <-stormOver:
						pinged <- r
						return
					case <-time.After(5 * time.Millisecond):
					}
					start := time.Now()
					if r.err = roundTripOn(established, []byte("ping"), start.Add(30*time.Second)); r.err != nil {
						pinged <- r
						return
					}
					r.n++
					r.latencies = append(r.latencies, time.Since(start))
				}
			}()

			var maxTotal, maxHandshakers, maxQueued, samples atomic.Int64
			var sampleErr atomic.Value
			sampling, sampled := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(sampled)
				for {
					select {
					case <-sampling:
						return
					case <-time.After(20 * time.Millisecond):
					}
					total, hs, err := p.goroutines()
					if err == nil {
						var q float64
						if q, err = p.metric("scalestack_tls_handshakes_queued"); err == nil {
							maxQueued.Store(max(maxQueued.Load(), int64(q)))
						}
					}
					if err != nil {
						sampleErr.Store(err)
						continue
					}
					samples.Add(1)
					maxTotal.Store(max(maxTotal.Load(), int64(total)))
					maxHandshakers.Store(max(maxHandshakers.Load(), int64(hs)))
				}
			}()

			start := time.Now()
			deadline := start.Add(4 * time.Minute)
			var wg sync.WaitGroup
			var failed atomic.Int64
			release := make(chan struct{})
			for i := 0; i < clients; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-release // all at once
					if err := tlsStormRoundTrip(p.addr, cfg, []byte("storm"), deadline); err != nil {
						if failed.Add(1) <= 5 {
							t.Errorf("storm client: %v", err)
						}
					}
				}()
			}
			close(release)
			wg.Wait()
			took := time.Since(start)
			close(sampling)
			<-sampled
			close(stormOver)
			r := <-pinged
			ok, err := p.metric(`scalestack_tls_handshakes_total{outcome="ok"}`)
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(r.latencies)
			pct := func(q float64) time.Duration {
				if len(r.latencies) == 0 {
					return 0
				}
				return r.latencies[int(q*float64(len(r.latencies)-1))].Round(100 * time.Microsecond)
			}
			t.Logf("%s: %d clients at once, all handshakes done in %v (%.0f/s); goroutines idle %d, at most %d, handshake goroutines at most %d, queue at most %d (%d samples); established connection: %d echoes, latency p50 %v, p99 %v, max %v",
				drv, clients, took.Round(time.Millisecond), float64(clients)/took.Seconds(), idle, maxTotal.Load(), maxHandshakers.Load(), maxQueued.Load(), samples.Load(),
				r.n, pct(0.5), pct(0.99), pct(1))
			if n := failed.Load(); n > 0 {
				t.Fatalf("%d of %d storm clients failed", n, clients)
			}
			if r.err != nil {
				t.Fatalf("established connection during the storm: %v", r.err)
			}
			if hs := maxHandshakers.Load(); hs > maxHandshakes || hs == 0 {
				t.Fatalf("up to %d handshake goroutines, want between 1 and %d", hs, maxHandshakes)
			}
			// The admin endpoint may serve a second connection meanwhile
			// (the metrics and the profile): a few goroutines of slack.
			if limit := int64(idle + maxHandshakes + 6); maxTotal.Load() > limit {
				t.Fatalf("up to %d goroutines, want at most %d (%d idle + %d handshakes + 6)", maxTotal.Load(), limit, idle, maxHandshakes)
			}
			if samples.Load() == 0 || maxQueued.Load() == 0 {
				t.Fatalf("no sample of the server (%d taken, last error %v) saw a connection wait in the handshake queue: the bound was not tested", samples.Load(), sampleErr.Load())
			}
			if r.n < 3 {
				t.Fatalf("the established connection was echoed only %d times in %v", r.n, took)
			}
			if want := float64(clients + 1); ok != want {
				t.Fatalf("%v handshakes succeeded, want %v", ok, want)
			}
		})
	}
}

// stallingConn passes the first write (a ClientHello) through and then
// swallows the rest: a client that stops after the server's first flight.
type stallingConn struct {
	net.Conn
	writes atomic.Int32
}

func (c *stallingConn) Write(p []byte) (int, error) {
	if c.writes.Add(1) == 1 {
		return c.Conn.Write(p)
	}
	return len(p), nil
}

// TestTLSStalledHandshakesBinary: clients that stall mid-handshake (half
// after a partial record, half after a whole ClientHello) against
// `scalestack echo` with its default handshake limits hold no worker: new
// clients complete their handshakes while every stalled one is still
// open, and each stalled one is closed at --tls-handshake-timeout, not
// before.
func TestTLSStalledHandshakesBinary(t *testing.T) {
	const timeout = 4 * time.Second
	stalled := envCount(t, stalledClientsEnv, 60)
	const fresh = 20
	bin := buildBinary(t)
	pki := testutil.NewPKI(t, "stalled")
	server := pki.Server("server", "127.0.0.1")
	cfg := &tls.Config{RootCAs: pki.Pool, ServerName: "127.0.0.1"}
	// Each stalled handshake holds a parked goroutine until the timeout:
	// with more of them than --tls-max-handshakes allows, fresh clients
	// would queue behind them. The default (1024) covers the issue's
	// 1,000; a bigger run raises it.
	args := []string{"--loops", "2", "--tls-handshake-timeout", timeout.String()}
	if stalled+fresh > conn.DefaultHandshakeMaxInFlight {
		args = append(args, "--tls-max-handshakes", strconv.Itoa(stalled+fresh+64))
	}
	for _, drv := range engineDrivers {
		t.Run(drv, func(t *testing.T) {
			p := startTLSEchoProcess(t, bin, server, append([]string{"--io", drv}, args...)...)
			type stall struct {
				c      net.Conn
				opened time.Time
			}
			stalls := make([]stall, 0, stalled)
			defer func() {
				for _, s := range stalls {
					s.c.Close()
				}
			}()
			var handshakes sync.WaitGroup
			defer handshakes.Wait()
			for i := 0; i < stalled; i++ {
				raw, err := net.DialTimeout("tcp", p.addr, 5*time.Second)
				if err != nil {
					t.Fatalf("dial stalled client %d: %v", i, err)
				}
				stalls = append(stalls, stall{raw, time.Now()})
				if i%2 == 0 {
					// A record header announcing 512 bytes, and 3 of them.
					raw.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01})
				} else {
					handshakes.Add(1)
					go func() {
						defer handshakes.Done()
						_ = tls.Client(&stallingConn{Conn: raw}, cfg).Handshake() // ends when raw closes
					}()
				}
			}
			stalledAt := time.Now()

			// New clients get through well inside the timeout, while no
			// stalled handshake has been freed yet.
			var wg sync.WaitGroup
			var failed atomic.Int64
			for i := 0; i < fresh; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := tlsStormRoundTrip(p.addr, cfg, []byte("hello"), stalls[0].opened.Add(timeout)); err != nil {
						if failed.Add(1) <= 3 {
							t.Errorf("fresh client during the stall: %v", err)
						}
					}
				}()
			}
			wg.Wait()
			freshTook := time.Since(stalledAt)
			if failed.Load() > 0 {
				t.Fatalf("%d of %d fresh clients failed with %d handshakes stalled", failed.Load(), fresh, stalled)
			}
			timedOutEarly, err := p.metric(`scalestack_tls_handshakes_total{outcome="timeout"}`)
			if err != nil {
				t.Fatal(err)
			}
			if timedOutEarly != 0 {
				t.Fatalf("%v stalled handshakes were already closed when the fresh clients finished (%v after the stall began, timeout %v): the test did not overlap them", timedOutEarly, freshTook, timeout)
			}

			var earliest, latest time.Duration
			for i, s := range stalls {
				s.c.SetReadDeadline(s.opened.Add(timeout + 5*time.Second))
				_, err := io.Copy(io.Discard, s.c)
				if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
					t.Fatalf("stalled client %d not closed by the server: %v", i, err)
				}
				held := time.Since(s.opened)
				if i == 0 || held < earliest {
					earliest = held
				}
				latest = max(latest, held)
				// The client notes the time after its dial returned, which
				// a loaded machine can delay past the server's accept.
				if held < timeout-500*time.Millisecond {
					t.Fatalf("stalled client %d closed after %v, before the %v timeout", i, held, timeout)
				}
			}
			timedOut, err := p.metric(`scalestack_tls_handshakes_total{outcome="timeout"}`)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d stalled handshakes; %d fresh clients done %v after the stall began; stalled ones closed %v to %v after they opened (timeout %v); %v counted as timeouts",
				drv, stalled, fresh, freshTook.Round(time.Millisecond), earliest.Round(time.Millisecond), latest.Round(time.Millisecond), timeout, timedOut)
			if timedOut != float64(stalled) {
				t.Fatalf("%v handshakes timed out, want %d", timedOut, stalled)
			}
		})
	}
}
