package main

import (
	"context"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// echoServer serves a goroutine-per-connection echo on loopback and counts
// the connections it accepted.
func echoServer(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String(), &accepted
}

func TestChurn(t *testing.T) {
	addr, accepted := echoServer(t)
	tests := []struct {
		name    string
		cfg     churnConfig
		wantErr string
	}{
		{name: "serves", cfg: churnConfig{Network: "tcp", Addr: addr, Workers: 4, Size: 64, Warmup: 20 * time.Millisecond, Duration: 200 * time.Millisecond}},
		{name: "not loopback", cfg: churnConfig{Network: "tcp", Addr: "10.1.2.3:80", Workers: 1, Size: 1, Duration: time.Second}, wantErr: "loopback"},
		{name: "no workers", cfg: churnConfig{Network: "tcp", Addr: addr, Size: 1, Duration: time.Second}, wantErr: "positive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var windows []bool
			tc.cfg.OnWindow = func(open bool) { windows = append(windows, open) }
			before := accepted.Load()
			res, err := churn(context.Background(), tc.cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Conns == 0 || res.Failures != 0 {
				t.Fatalf("%d connections, %d failures (%v)", res.Conns, res.Failures, res.FirstErr)
			}
			// Every counted cycle was a connection of its own.
			if got := accepted.Load() - before; got < int64(res.Conns) {
				t.Errorf("server accepted %d connections, churn counted %d", got, res.Conns)
			}
			if res.Latency.Count() != res.Conns {
				t.Errorf("%d latencies for %d connections", res.Latency.Count(), res.Conns)
			}
			if len(windows) != 2 || !windows[0] || windows[1] {
				t.Errorf("window callbacks %v, want [true false]", windows)
			}
		})
	}
}

// TestChurnCountsFailures checks that a server that closes without
// answering shows up as failures, not as served connections.
func TestChurnCountsFailures(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	res, err := churn(context.Background(), churnConfig{Network: "tcp", Addr: ln.Addr().String(), Workers: 2, Size: 8, Duration: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Conns != 0 || res.Failures == 0 || res.FirstErr == nil {
		t.Fatalf("%d connections, %d failures (%v); want none served and failures", res.Conns, res.Failures, res.FirstErr)
	}
}

// TestChurnTLS: with a TLS configuration every cycle handshakes; with a
// session cache the handshakes after the first resume.
func TestChurnTLS(t *testing.T) {
	addr := tlsEchoServerForChurn(t)
	for _, resume := range []bool{false, true} {
		cfg, err := clientTLS("1.3", resume)
		if err != nil {
			t.Fatal(err)
		}
		res, err := churn(context.Background(), churnConfig{Network: "tcp", Addr: addr, Workers: 2, Size: 16,
			Warmup: 50 * time.Millisecond, Duration: 300 * time.Millisecond, TLS: cfg})
		if err != nil {
			t.Fatal(err)
		}
		if res.Conns == 0 || res.Failures != 0 {
			t.Fatalf("resume %v: %d cycles, %d failures (%v)", resume, res.Conns, res.Failures, res.FirstErr)
		}
		if !strings.HasPrefix(res.TLS, "TLS 1.3 ") || !strings.HasSuffix(res.TLS, "X25519") {
			t.Fatalf("resume %v: TLS %q, want TLS 1.3 with X25519", resume, res.TLS)
		}
		if resume && res.Resumed == 0 || !resume && res.Resumed != 0 {
			t.Fatalf("resume %v: %d of %d handshakes resumed", resume, res.Resumed, res.Conns)
		}
	}
	if _, err := clientTLS("", true); err == nil {
		t.Fatal("-tls-resume without -tls accepted")
	}
	if _, err := clientTLS("1.1", false); err == nil {
		t.Fatal("-tls 1.1 accepted")
	}
}
