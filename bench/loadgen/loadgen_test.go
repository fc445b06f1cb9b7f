package loadgen

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// goEcho serves an echo on loopback until the test ends.
func goEcho(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// serveEcho serves every accepted connection with handle until the test
// ends, and closes the accepted connections when it does.
func serveEcho(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var accepted []net.Conn
	t.Cleanup(func() {
		ln.Close()
		// Close the server's side too, so that a generator that leaks its
		// sockets shows up in the leak check instead of hanging the test.
		mu.Lock()
		for _, c := range accepted {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted = append(accepted, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// corruptingEcho echoes faithfully, except that the byte at stream offset
// at is changed.
func corruptingEcho(at int) func(net.Conn) {
	return func(c net.Conn) {
		buf := make([]byte, 4096)
		pos := 0
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			if at >= pos && at < pos+n {
				buf[at-pos] ^= 0x20
			}
			pos += n
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
	}
}

// swappingEcho echoes the first two messages of size bytes in the wrong
// order and everything after faithfully: every byte is one that was sent.
func swappingEcho(size int) func(net.Conn) {
	return func(c net.Conn) {
		two := make([]byte, 2*size)
		if _, err := io.ReadFull(c, two); err != nil {
			return
		}
		swapped := append(append([]byte{}, two[size:]...), two[:size]...)
		if _, err := c.Write(swapped); err != nil {
			return
		}
		io.Copy(c, c)
	}
}

// closingEcho echoes n bytes, then closes the connection.
func closingEcho(n int64) func(net.Conn) {
	return func(c net.Conn) { io.CopyN(c, c, n) }
}

// checkNoLeaks fails the test if it ends with more goroutines, sockets or
// epoll instances than it had when this was called (given a moment to wind
// down). Call it after anything with a cleanup of its own, such as the
// test's server, so that cleanup has run when the count is taken. Other
// descriptors (the runtime's cgroup files, pipes of the test harness) come
// and go on their own and are not counted.
func checkNoLeaks(t *testing.T) {
	t.Helper()
	goroutines, fds := runtime.NumGoroutine(), ownDescriptors(t)
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for {
			g, f := runtime.NumGoroutine(), ownDescriptors(t)
			if g <= goroutines && len(f) <= len(fds) {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("leaked: %d goroutines (was %d), descriptors %v (was %v)", g, goroutines, f, fds)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// ownDescriptors lists this process's open sockets and epoll instances.
func ownDescriptors(t *testing.T) []string {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("list descriptors: %v", err)
	}
	var out []string
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // the directory's own descriptor, closed by now
		}
		if strings.HasPrefix(target, "socket:") || target == "anon_inode:[eventpoll]" {
			out = append(out, e.Name()+"->"+target)
		}
	}
	return out
}

func TestRunMeasuresEchoTraffic(t *testing.T) {
	cases := []struct {
		name            string
		engine          string
		workers         int
		conns, inFlight int
		size            int
	}{
		{"net one in flight", EngineNet, 0, 8, 1, 64},
		{"net pipelined", EngineNet, 0, 8, 16, 64},
		{"net large messages", EngineNet, 0, 4, 2, 100 << 10},
		{"epoll one in flight", EngineEpoll, 1, 8, 1, 64},
		{"epoll pipelined", EngineEpoll, 2, 8, 16, 64},
		{"epoll large messages (short writes)", EngineEpoll, 1, 4, 2, 100 << 10},
		{"epoll messages without sequence numbers", EngineEpoll, 1, 4, 3, 5},
		{"epoll more workers than connections", EngineEpoll, 8, 3, 1, 64},
		{"epoll default workers", EngineEpoll, 0, 16, 1, 64},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := serveEcho(t, func(c net.Conn) { io.Copy(c, c) })
			checkNoLeaks(t)
			var windows []bool
			res, err := Run(context.Background(), Config{
				Network: "tcp", Addr: addr, Conns: tc.conns, InFlight: tc.inFlight, Size: tc.size,
				Engine: tc.engine, Workers: tc.workers,
				Warmup: 50 * time.Millisecond, Duration: 300 * time.Millisecond,
				OnWindow: func(open bool) { windows = append(windows, open) },
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Failures > 0 {
				t.Fatalf("%d connections failed: %v", res.Failures, res.FirstErr)
			}
			if res.Msgs == 0 || res.Latency.Count() != res.Msgs {
				t.Fatalf("%d messages, %d latencies", res.Msgs, res.Latency.Count())
			}
			p50, p99 := res.Latency.Quantile(0.5), res.Latency.Quantile(0.99)
			if p50 <= 0 || p99 < p50 || p99 > 5*time.Second {
				t.Fatalf("implausible latencies p50 %v p99 %v", p50, p99)
			}
			if res.Elapsed < 300*time.Millisecond || res.CPU <= 0 {
				t.Fatalf("window %v, generator CPU %v", res.Elapsed, res.CPU)
			}
			if len(windows) != 2 || !windows[0] || windows[1] {
				t.Fatalf("window callbacks %v, want [true false]", windows)
			}
		})
	}
}

// TestRunFailsOnWrongEchoes checks that a server that answers with wrong
// bytes, or closes, fails the run instead of being counted.
func TestRunFailsOnWrongEchoes(t *testing.T) {
	const size = 64
	cases := []struct {
		name    string
		server  func(net.Conn)
		want    error  // errors.Is target, when not nil
		wantMsg string // else a substring of the first error
	}{
		{"corrupt first message", corruptingEcho(3), errCorrupt, ""},
		{"corrupt sequence number", corruptingEcho(size + 1), errCorrupt, ""},
		{"corrupt later message", corruptingEcho(10*size + 17), errCorrupt, ""},
		{"messages swapped", swappingEcho(size), errCorrupt, ""},
		{"server closes", closingEcho(10 * size), nil, "server closed the connection"},
	}
	for _, engine := range []string{EngineNet, EngineEpoll} {
		for _, tc := range cases {
			t.Run(engine+"/"+tc.name, func(t *testing.T) {
				addr := serveEcho(t, tc.server)
				checkNoLeaks(t)
				res, err := Run(context.Background(), Config{
					Network: "tcp", Addr: addr, Conns: 4, InFlight: 2, Size: size, Engine: engine,
					Warmup: 50 * time.Millisecond, Duration: 200 * time.Millisecond,
				})
				if err != nil {
					t.Fatal(err)
				}
				if res.Failures != 4 || res.FirstErr == nil {
					t.Fatalf("%d of 4 connections failed (%v); want all", res.Failures, res.FirstErr)
				}
				if tc.want != nil && !errors.Is(res.FirstErr, tc.want) {
					t.Fatalf("error %v, want %v", res.FirstErr, tc.want)
				}
				if tc.wantMsg != "" && !strings.Contains(res.FirstErr.Error(), tc.wantMsg) {
					t.Fatalf("error %v, want one mentioning %q", res.FirstErr, tc.wantMsg)
				}
			})
		}
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	addr := serveEcho(t, func(c net.Conn) { io.Copy(c, c) })
	cases := []struct {
		name    string
		cfg     Config
		wantMsg string
	}{
		{"unknown engine", Config{Network: "tcp", Addr: addr, Conns: 1, Duration: time.Second, Engine: "select"}, "unknown engine"},
		{"negative workers", Config{Network: "tcp", Addr: addr, Conns: 1, Duration: time.Second, Engine: EngineEpoll, Workers: -1}, "Workers"},
		{"no connections", Config{Network: "tcp", Addr: addr, Duration: time.Second, Engine: EngineEpoll}, "Conns"},
		{"nobody listening", Config{Network: "tcp", Addr: "127.0.0.1:1", Conns: 2, Duration: time.Second, Engine: EngineEpoll}, "dial"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkNoLeaks(t)
			_, err := Run(context.Background(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("err %v, want one mentioning %q", err, tc.wantMsg)
			}
		})
	}
}

func TestEchoStream(t *testing.T) {
	cases := []struct {
		name    string
		size    int
		chunks  []int // how the echoed stream of 3 messages is cut
		corrupt int   // stream offset to change, or -1
		want    int   // messages completed before any error
	}{
		{"whole", 64, []int{192}, -1, 3},
		{"byte by byte", 20, repeat(1, 60), -1, 3},
		{"split inside the sequence number", 64, []int{3, 100, 89}, -1, 3},
		{"tiny messages", 4, []int{5, 7}, -1, 3},
		{"bad sequence byte", 64, []int{192}, 64 + 2, 1},
		{"bad pattern byte", 64, []int{192}, 128 + 40, 2},
		{"bad byte of tiny message", 4, []int{12}, 9, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var send, recv echoStream
			send.init(tc.size)
			recv.init(tc.size)
			stream := make([]byte, 3*tc.size)
			for i := range 3 {
				send.fill(stream[i*tc.size : (i+1)*tc.size])
			}
			if tc.corrupt >= 0 {
				stream[tc.corrupt] ^= 1
			}
			done := 0
			var err error
			for _, n := range tc.chunks {
				var d int
				d, err = recv.check(stream[:n])
				done += d
				stream = stream[n:]
				if err != nil {
					break
				}
			}
			if done != tc.want {
				t.Errorf("%d messages completed, want %d", done, tc.want)
			}
			if (tc.corrupt >= 0) != errors.Is(err, errCorrupt) {
				t.Errorf("err %v with corruption at %d", err, tc.corrupt)
			}
		})
	}
}

func repeat(v, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestRefusesNonLoopbackTargets(t *testing.T) {
	for _, addr := range []string{"10.0.0.1:80", "example.com:80", "0.0.0.0:80"} {
		_, err := Run(context.Background(), Config{Network: "tcp", Addr: addr, Conns: 1, Duration: time.Second})
		if err == nil {
			t.Errorf("Run accepted %s", addr)
		}
	}
}

func TestHoldKeepsServedConnectionsOpen(t *testing.T) {
	addr := goEcho(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Hold(ctx, "tcp", addr, 50, time.Minute) }()
	time.Sleep(300 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Hold returned early: %v", err)
	default:
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Hold did not return after cancel")
	}
}

// answering serves a fixed exchange: for every len(req) bytes received it
// writes reply, cut into pieces of at most chunk bytes, each its own write;
// from the wrongAt-th answer on (counting from 0; never when negative) the
// last byte of the reply is changed.
func answering(req, reply []byte, chunk, wrongAt int) func(net.Conn) {
	return func(c net.Conn) {
		in := make([]byte, len(req))
		for k := 0; ; k++ {
			if _, err := io.ReadFull(c, in); err != nil {
				return
			}
			out := append([]byte{}, reply...)
			if wrongAt >= 0 && k >= wrongAt {
				out[len(out)-1] ^= 1
			}
			for len(out) > 0 {
				n := min(chunk, len(out))
				if _, err := c.Write(out[:n]); err != nil {
					return
				}
				out = out[n:]
			}
		}
	}
}

func TestRunConnsDrivesAFixedExchange(t *testing.T) {
	req := []byte("\x09\x00\x00\x00\x03SELECT 1")
	reply := []byte(strings.Repeat("answer-", 9))
	cases := []struct {
		name     string
		engine   string
		inFlight int
		chunk    int // the server writes the reply in pieces of this size
		wrongAt  int // first wrong answer, or -1
	}{
		{"net", EngineNet, 1, 1000, -1},
		{"epoll", EngineEpoll, 1, 1000, -1},
		{"epoll pipelined, reply in pieces", EngineEpoll, 4, 5, -1},
		{"net wrong first reply", EngineNet, 1, 1000, 0},
		{"epoll wrong later reply", EngineEpoll, 1, 7, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := serveEcho(t, answering(req, reply, tc.chunk, tc.wrongAt))
			checkNoLeaks(t)
			const conns = 4
			cs, err := Dial(context.Background(), "tcp", addr, conns)
			if err != nil {
				t.Fatal(err)
			}
			res, err := RunConns(context.Background(), Config{
				Network: "tcp", Addr: addr, Conns: conns, InFlight: tc.inFlight, Engine: tc.engine, Workers: 1,
				Exchange: &Exchange{Request: req, Reply: reply},
				Warmup:   50 * time.Millisecond, Duration: 200 * time.Millisecond,
			}, cs)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wrongAt >= 0 {
				if res.Failures != conns || !errors.Is(res.FirstErr, errCorrupt) {
					t.Fatalf("%d of %d connections failed (%v); want all, with a wrong answer", res.Failures, conns, res.FirstErr)
				}
				return
			}
			if res.Failures > 0 {
				t.Fatalf("%d connections failed: %v", res.Failures, res.FirstErr)
			}
			if res.Msgs == 0 || res.Latency.Count() != res.Msgs {
				t.Fatalf("%d replies, %d latencies", res.Msgs, res.Latency.Count())
			}
		})
	}
}

func TestExchangeStream(t *testing.T) {
	reply := []byte("0123456789")
	cases := []struct {
		name    string
		chunks  []int // how 3 replies are cut
		corrupt int   // stream offset to change, or -1
		want    int   // replies completed before any error
	}{
		{"whole", []int{30}, -1, 3},
		{"byte by byte", repeat(1, 30), -1, 3},
		{"across replies", []int{7, 6, 17}, -1, 3},
		{"bad byte in the second", []int{30}, 14, 1},
		{"bad last byte", []int{29, 1}, 29, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &exchangeStream{request: []byte("q"), reply: reply}
			stream := bytes.Repeat(reply, 3)
			if tc.corrupt >= 0 {
				stream[tc.corrupt] ^= 1
			}
			done := 0
			var err error
			for _, n := range tc.chunks {
				var d int
				d, err = s.check(stream[:n])
				done += d
				stream = stream[n:]
				if err != nil {
					break
				}
			}
			if done != tc.want {
				t.Errorf("%d replies completed, want %d", done, tc.want)
			}
			if (tc.corrupt >= 0) != errors.Is(err, errCorrupt) {
				t.Errorf("err %v with corruption at %d", err, tc.corrupt)
			}
		})
	}
}

func TestRunRejectsAnEmptyExchange(t *testing.T) {
	addr := serveEcho(t, func(c net.Conn) { io.Copy(c, c) })
	_, err := Run(context.Background(), Config{Network: "tcp", Addr: addr, Conns: 1, Duration: time.Second,
		Exchange: &Exchange{Request: []byte("q")}})
	if err == nil || !strings.Contains(err.Error(), "Exchange") {
		t.Fatalf("err %v, want one about the Exchange", err)
	}
}
