package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/reactor"
	"go.uber.org/goleak"
)

// engineDrivers are the I/O drivers every engine test runs on. A driver
// joins the matrix with one line here once driverByName knows it.
var engineDrivers = []string{
	"epoll",
	"uring",
}

// engineNetworks are the transports every engine test runs on.
var engineNetworks = []string{"tcp", "unix"}

// forEachEngineCase runs fn as a subtest for every driver × network pair.
func forEachEngineCase(t *testing.T, fn func(t *testing.T, driver, network string)) {
	t.Helper()
	for _, drv := range engineDrivers {
		for _, network := range engineNetworks {
			t.Run(drv+"/"+network, func(t *testing.T) { fn(t, drv, network) })
		}
	}
}

var netpollerOnce sync.Once

// warmNetpoller makes the Go runtime open its own poller descriptors before
// a test counts descriptors, so they are not mistaken for a leak.
func warmNetpoller(t *testing.T) {
	netpollerOnce.Do(func() {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("warm up netpoller: %v", err)
		}
		ln.Close()
	})
}

// openFDs lists this process's open descriptors.
func openFDs(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("list descriptors: %v", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		target, _ := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		names = append(names, e.Name()+"->"+target)
	}
	return names
}

// waitFDs waits until no more than want descriptors are open and fails the
// test (with the list) if that does not happen within limit.
func waitFDs(t *testing.T, want int, limit time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		fds := openFDs(t)
		// ReadDir holds one descriptor of its own while listing.
		if len(fds)-1 <= want {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: %d descriptors open, want at most %d: %v", what, len(fds)-1, want, fds)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkLeaks fails the test if, once its cleanups have run, it left
// goroutines or descriptors behind. Call it first so that its cleanup runs
// last, after the engine has stopped.
func checkLeaks(t *testing.T) {
	t.Helper()
	warmNetpoller(t)
	before := len(openFDs(t)) - 1
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		waitFDs(t, before, 5*time.Second, "descriptor leak")
		goleak.VerifyNone(t, ignore)
	})
}

// testEngine is a started engine whose errors fail the test.
type testEngine struct {
	*reactor.Engine
	mu   sync.Mutex
	errs []error
}

// startTestEngine starts an engine of loops loops on the named driver and
// stops it when the test ends.
func startTestEngine(t *testing.T, driver string, loops int) *testEngine {
	t.Helper()
	newDriver, err := driverByName(driver)
	if err != nil {
		t.Fatalf("driver %q: %v", driver, err)
	}
	te := &testEngine{}
	e, err := reactor.New(reactor.Config{Loops: loops, NewDriver: newDriver, OnError: func(err error) {
		te.mu.Lock()
		te.errs = append(te.errs, err)
		te.mu.Unlock()
	}})
	if err != nil {
		t.Fatalf("reactor.New: %v", err)
	}
	if err := e.Start(); err != nil {
		t.Fatalf("engine start: %v", err)
	}
	te.Engine = e
	t.Cleanup(func() {
		e.Stop()
		te.mu.Lock()
		defer te.mu.Unlock()
		for _, err := range te.errs {
			t.Errorf("engine reported: %v", err)
		}
	})
	return te
}

// testAddr returns a fresh listening address on loopback for network.
func testAddr(t *testing.T, network string) conn.Addr {
	t.Helper()
	var a conn.Addr
	var err error
	switch network {
	case "tcp":
		a, err = conn.ResolveAddr("tcp", "127.0.0.1:0")
	case "unix":
		// t.TempDir paths can exceed the 108-byte sun_path limit.
		dir, derr := os.MkdirTemp("", "ss")
		if derr != nil {
			t.Fatalf("temp dir: %v", derr)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		a, err = conn.ResolveAddr("unix", filepath.Join(dir, "s"))
	default:
		t.Fatalf("unknown network %q", network)
	}
	if err != nil {
		t.Fatalf("resolve: %v", err)
	}
	return a
}

// closeListener closes ln when the test ends.
func closeListener(t *testing.T, ln *conn.Listener) {
	t.Cleanup(func() {
		if err := ln.Close(); err != nil {
			t.Errorf("close listener: %v", err)
		}
	})
}

// dialTest connects a plain Go client to a listener's address.
func dialTest(t *testing.T, a conn.Addr) net.Conn {
	t.Helper()
	c, err := net.DialTimeout(a.Network, a.Address, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", a, err)
	}
	return c
}

// skewedSizes draws n payload sizes between 1 B and 1 MiB: most small, a
// tenth medium and one in fifty large, with the first large one exactly
// 1 MiB so the extreme is always exercised.
func skewedSizes(rng *rand.Rand, n int) []int {
	sizes := make([]int, n)
	logUniform := func(lo, hi int) int {
		// Uniform in log space between lo and hi, both inclusive.
		f := float64(lo) * math.Pow(float64(hi)/float64(lo), rng.Float64())
		return min(max(int(f), lo), hi)
	}
	for i := range sizes {
		switch {
		case i == 0:
			sizes[i] = 1 << 20
		case i%50 == 0:
			sizes[i] = logUniform(256<<10, 1<<20)
		case i%10 == 0:
			sizes[i] = logUniform(4<<10, 64<<10)
		default:
			sizes[i] = logUniform(1, 4<<10)
		}
	}
	rng.Shuffle(n, func(i, j int) { sizes[i], sizes[j] = sizes[j], sizes[i] })
	return sizes
}

// echoRoundTrip sends payload on a fresh connection while reading it back
// concurrently (the server applies backpressure to a client that does not
// read), and checks the bytes.
func echoRoundTrip(a conn.Addr, payload []byte, deadline time.Time) error {
	c, err := net.DialTimeout(a.Network, a.Address, time.Until(deadline))
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	return roundTripOn(c, payload, deadline)
}

// roundTripOn is echoRoundTrip's exchange on a connection already open.
func roundTripOn(c net.Conn, payload []byte, deadline time.Time) error {
	if err := c.SetDeadline(deadline); err != nil {
		return fmt.Errorf("set deadline: %w", err)
	}
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		werr <- err
	}()
	got := make([]byte, len(payload))
	_, rerr := io.ReadFull(c, got)
	if err := <-werr; err != nil {
		return fmt.Errorf("write %d bytes: %w", len(payload), err)
	}
	if rerr != nil {
		return fmt.Errorf("read back %d bytes: %w", len(payload), rerr)
	}
	if !bytes.Equal(got, payload) {
		return fmt.Errorf("echoed %d bytes differ from those sent", len(payload))
	}
	return nil
}

// closeWriter is implemented by TCP and Unix stream connections.
type closeWriter interface{ CloseWrite() error }

// expectClosedBy reads from c until the peer closes it, failing if that does
// not happen before limit or if any data arrives.
func expectClosedBy(t *testing.T, c net.Conn, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(start.Add(limit))
	var buf [64]byte
	n, err := c.Read(buf[:])
	elapsed := time.Since(start)
	if n > 0 {
		t.Fatalf("read %d unexpected bytes %q", n, buf[:n])
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v", limit)
	}
	if err == nil {
		t.Fatalf("read returned no data and no error")
	}
	return elapsed
}
