package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/scalestack/scalestack/bench/loadgen"
)

// churnConfig describes a run that opens connections continuously: each of
// Workers goroutines connects, exchanges one Size-byte message, closes and
// starts over. It measures how fast a server accepts and serves new
// connections rather than how fast it moves bytes on established ones.
type churnConfig struct {
	Network, Addr string
	Workers       int
	Size          int
	Warmup        time.Duration
	Duration      time.Duration
	OnWindow      func(open bool)
	// TLS, when set, makes each cycle a TLS handshake too (a session
	// cache in it makes them resumptions).
	TLS *tls.Config
}

// churnResult counts the connections completed in the measured window.
type churnResult struct {
	Conns    uint64 // connect, echo and close cycles completed
	Elapsed  time.Duration
	Latency  loadgen.Histogram // of whole cycles
	Failures int
	FirstErr error
	TLS      string        // one handshake's version and cipher suite
	Resumed  uint64        // cycles in the window whose handshake resumed a session
	CPU      time.Duration // this process's CPU time over the window
}

// churn runs the connection churn. Sockets are closed with SO_LINGER 0 (a
// reset): a graceful close would leave every client port in TIME_WAIT and
// exhaust the loopback port range within seconds at these rates.
func churn(ctx context.Context, cfg churnConfig) (*churnResult, error) {
	if cfg.Workers <= 0 || cfg.Size <= 0 {
		return nil, errors.New("churn: workers and size must be positive")
	}
	if cfg.Duration <= 0 || cfg.Duration > 10*time.Minute {
		return nil, errors.New("churn: duration must be between 0 and 10 minutes")
	}
	if err := loadgen.CheckLoopback(cfg.Network, cfg.Addr); err != nil {
		return nil, err
	}
	var measuring, stopping atomic.Bool
	type worker struct {
		conns   uint64
		resumed uint64
		tls     string
		hist    loadgen.Histogram
		fails   int
		err     error
	}
	workers := make([]worker, cfg.Workers)
	var wg sync.WaitGroup
	for i := range workers {
		w := &workers[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := make([]byte, cfg.Size)
			for j := range msg {
				msg[j] = byte('a' + j%26)
			}
			reply := make([]byte, cfg.Size)
			var d net.Dialer
			for !stopping.Load() && ctx.Err() == nil {
				start := time.Now()
				st, err := cycle(&d, cfg.Network, cfg.Addr, msg, reply, cfg.TLS)
				if stopping.Load() {
					return
				}
				if err != nil {
					// A refused or reset connection under a storm is a
					// result, not a reason to stop the run.
					w.fails++
					if w.err == nil {
						w.err = err
					}
					continue
				}
				if measuring.Load() {
					w.conns++
					w.hist.Record(time.Since(start))
					if st != nil {
						if st.DidResume {
							w.resumed++
						}
						if w.tls == "" {
							w.tls = loadgen.DescribeTLS(*st)
						}
					}
				}
			}
		}()
	}
	wait := func(d time.Duration) {
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
	}
	wait(cfg.Warmup)
	if cfg.OnWindow != nil {
		cfg.OnWindow(true)
	}
	cpuBefore := selfCPU()
	measuring.Store(true)
	start := time.Now()
	wait(cfg.Duration)
	measuring.Store(false)
	elapsed := time.Since(start)
	cpu := selfCPU() - cpuBefore
	if cfg.OnWindow != nil {
		cfg.OnWindow(false)
	}
	stopping.Store(true)
	wg.Wait()
	res := &churnResult{Elapsed: elapsed, CPU: cpu}
	for i := range workers {
		w := &workers[i]
		res.Conns += w.conns
		res.Resumed += w.resumed
		if res.TLS == "" {
			res.TLS = w.tls
		}
		res.Latency.Merge(&w.hist)
		res.Failures += w.fails
		if res.FirstErr == nil {
			res.FirstErr = w.err
		}
	}
	return res, ctx.Err()
}

// cycle connects (with a TLS handshake when cfg is set), sends msg, reads
// the echo into reply and resets the connection. It returns the TLS state
// with cfg.
func cycle(d *net.Dialer, network, addr string, msg, reply []byte, cfg *tls.Config) (*tls.ConnectionState, error) {
	raw, err := d.Dial(network, addr)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	if tc, ok := raw.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	c := raw
	var st *tls.ConnectionState
	if cfg != nil {
		tc := tls.Client(raw, cfg)
		if err := tc.Handshake(); err != nil {
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		s := tc.ConnectionState()
		st, c = &s, tc
	}
	if _, err := c.Write(msg); err != nil {
		return nil, fmt.Errorf("write: %w", err)
	}
	if _, err := io.ReadFull(c, reply); err != nil {
		return nil, fmt.Errorf("read echo: %w", err)
	}
	return st, nil
}

// selfCPU is this process's user plus system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
