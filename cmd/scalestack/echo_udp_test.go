package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scalestack/scalestack/internal/testutil"
)

// freeUDPPort finds a UDP port nobody uses on the loopback address.
func freeUDPPort(t *testing.T) string {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return fmt.Sprint(c.LocalAddr().(*net.UDPAddr).Port)
}

// TestEchoUDPBinary runs `scalestack echo --udp` on each driver and talks
// to it with Go's net.UDPConn: many senders, sizes from 1 byte to 9 KB,
// every reply compared with what was sent; then a datagram over
// --udp-max-datagram gets no reply while one at the limit does, and
// SIGTERM stops the process cleanly with its counts in the log.
func TestEchoUDPBinary(t *testing.T) {
	bin := buildBinary(t)
	for _, drv := range engineDrivers {
		t.Run(drv, func(t *testing.T) {
			addr := "127.0.0.1:" + freeUDPPort(t)
			cmd, logf := startProcess(t, bin, "echo", "--udp", "--io", drv, "--loops", "2", "--listen", addr,
				"--udp-max-datagram", "9000", "--udp-rcvbuf", "4194304")
			exited := false
			t.Cleanup(func() {
				if !exited {
					_ = cmd.Process.Kill()
					_ = cmd.Wait()
				}
				if t.Failed() {
					b, _ := os.ReadFile(logf.Name())
					t.Logf("echo log:\n%s", b)
				}
			})
			if b, _ := os.ReadFile(logf.Name()); !strings.Contains(string(b), "listening on udp "+addr) {
				t.Fatalf("banner: %s", b)
			}
			raddr, _ := net.ResolveUDPAddr("udp", addr)
			const senders, each = 16, 200
			var wg sync.WaitGroup
			for s := 0; s < senders; s++ {
				wg.Add(1)
				go func(id int) {
					defer wg.Done()
					c, err := net.DialUDP("udp", nil, raddr)
					if err != nil {
						t.Error(err)
						return
					}
					defer c.Close()
					rng := rand.New(rand.NewPCG(uint64(id), 1))
					in := make([]byte, 10000)
					lost := 0
					for i := 0; i < each; i++ {
						msg := make([]byte, 8+rng.IntN(8992))
						binary.BigEndian.PutUint32(msg, uint32(id))
						binary.BigEndian.PutUint32(msg[4:], uint32(i))
						for k := 8; k < len(msg); k++ {
							msg[k] = byte(rng.Uint32())
						}
						if _, err := c.Write(msg); err != nil {
							t.Errorf("write: %v", err)
							return
						}
						c.SetReadDeadline(time.Now().Add(2 * time.Second))
						n, err := c.Read(in)
						if err != nil {
							lost++ // one at a time: the next exchange goes on
							continue
						}
						if !bytes.Equal(in[:n], msg) {
							t.Errorf("sender %d datagram %d: reply of %d bytes differs from the %d sent", id, i, n, len(msg))
							return
						}
					}
					if lost > each/20 {
						t.Errorf("sender %d: %d of %d datagrams lost on loopback", id, lost, each)
					}
				}(s)
			}
			wg.Wait()

			c, err := net.DialUDP("udp", nil, raddr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write(make([]byte, 9001)) // over the limit: dropped, not echoed cut short
			c.Write(bytes.Repeat([]byte{7}, 9000))
			in := make([]byte, 10000)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := c.Read(in); err != nil || n != 9000 || in[0] != 7 {
				t.Fatalf("after an oversized datagram: %d bytes, %v; want the 9000-byte one", n, err)
			}
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if n, err := c.Read(in); err == nil {
				t.Fatalf("an extra reply of %d bytes", n)
			}

			_ = cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				exited = true
				if err != nil {
					t.Fatalf("exit: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no exit within 10s of SIGTERM")
			}
			b, _ := os.ReadFile(logf.Name())
			if !strings.Contains(string(b), "truncated=1") {
				t.Errorf("the stop log does not count the oversized datagram:\n%s", b)
			}
		})
	}
}

// TestEchoUDPFlagErrors: combinations --udp cannot serve are refused.
func TestEchoUDPFlagErrors(t *testing.T) {
	srv := testutil.NewPKI(t, "udp-flags").Server("server", "127.0.0.1")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--udp", "--listen", "unix:/tmp/x.sock"}, "must be host:port"},
		{[]string{"--udp", "--spread"}, "--spread"},
		{[]string{"--udp", "--udp-max-datagram", "70000"}, "--udp-max-datagram"},
		{[]string{"--udp", "--udp-queue", "0"}, "--udp-queue"},
		{[]string{"--udp", "--tls-cert", srv.CertFile, "--tls-key", srv.KeyFile}, "DTLS"},
	} {
		fs, _, prepare := echoFlags(&bytes.Buffer{})
		if err := fs.Parse(tc.args); err != nil {
			t.Fatalf("%v: parse: %v", tc.args, err)
		}
		if _, err := prepare(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one about %q", tc.args, err, tc.want)
		}
	}
}
