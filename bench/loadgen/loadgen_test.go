package loadgen

import (
	"context"
	"io"
	"net"
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

func TestRunMeasuresEchoTraffic(t *testing.T) {
	cases := []struct {
		name            string
		conns, inFlight int
		size            int
	}{
		{"one in flight", 8, 1, 64},
		{"pipelined", 8, 16, 64},
		{"large messages", 4, 2, 100 << 10},
	}
	addr := goEcho(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Run(context.Background(), Config{
				Network: "tcp", Addr: addr, Conns: tc.conns, InFlight: tc.inFlight, Size: tc.size,
				Warmup: 50 * time.Millisecond, Duration: 300 * time.Millisecond,
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
		})
	}
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
