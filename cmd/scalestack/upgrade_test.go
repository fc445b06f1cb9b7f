package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// buildBinary compiles the scalestack command once per test binary run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "scalestack")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "GOFLAGS=-ldflags=-checklinkname=0 -buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startProcess runs bin with args and waits until it prints its banner.
func startProcess(t *testing.T, bin string, args ...string) (*exec.Cmd, *os.File) {
	t.Helper()
	logf, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(logf.Name())
		if strings.Contains(string(b), "listening on") {
			return cmd, logf
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	b, _ := os.ReadFile(logf.Name())
	t.Fatalf("%s did not start:\n%s", bin, b)
	return nil, nil
}

// TestUpgradeHandsOverWithoutRefusing starts an echo server, keeps a client
// connecting and exchanging continuously, starts a second process on the
// same upgrade socket, and checks that the first one exits and that not a
// single connection attempt or exchange failed.
func TestUpgradeHandsOverWithoutRefusing(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	ctl := filepath.Join(dir, "upgrade.sock")
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			listen := "127.0.0.1:" + freePort(t)
			dialNet, dialAddr := "tcp", listen
			if network == "unix" {
				dialAddr = filepath.Join(dir, "echo.sock")
				listen = "unix:" + dialAddr
				dialNet = "unix"
			}
			args := []string{"echo", "--loops", "2", "--listen", listen, "--upgrade-socket", ctl, "--shutdown-timeout", "1s"}
			old, oldLog := startProcess(t, bin, args...)
			oldDone := make(chan error, 1)
			go func() { oldDone <- old.Wait() }()

			var ok, failed atomic.Int64
			var firstErr atomic.Value
			stop := make(chan struct{})
			clientDone := make(chan struct{})
			go func() {
				defer close(clientDone)
				msg := []byte("ping")
				got := make([]byte, len(msg))
				for {
					select {
					case <-stop:
						return
					default:
					}
					c, err := net.DialTimeout(dialNet, dialAddr, 2*time.Second)
					if err == nil {
						_ = c.SetDeadline(time.Now().Add(2 * time.Second))
						_, err = c.Write(msg)
						if err == nil {
							_, err = io.ReadFull(c, got)
						}
						c.Close()
					}
					if err != nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err)
						continue
					}
					ok.Add(1)
				}
			}()
			time.Sleep(300 * time.Millisecond)
			successor, newLog := startProcess(t, bin, args...)
			defer func() { _ = successor.Process.Kill(); _ = successor.Wait() }()
			select {
			case err := <-oldDone:
				if err != nil {
					b, _ := os.ReadFile(oldLog.Name())
					t.Fatalf("old process: %v\n%s", err, b)
				}
			case <-time.After(10 * time.Second):
				b, _ := os.ReadFile(oldLog.Name())
				t.Fatalf("old process did not exit after the hand-over:\n%s", b)
			}
			before := ok.Load()
			time.Sleep(300 * time.Millisecond) // the successor alone serves
			close(stop)
			<-clientDone
			if failed.Load() != 0 {
				b, _ := os.ReadFile(newLog.Name())
				t.Fatalf("%d of %d exchanges failed during the upgrade (first: %v)\nsuccessor log:\n%s", failed.Load(), ok.Load()+failed.Load(), firstErr.Load(), b)
			}
			if ok.Load() == before || before == 0 {
				t.Fatalf("exchanges before/after the hand-over: %d/%d; want progress on both sides", before, ok.Load()-before)
			}
			t.Logf("%d exchanges, none failed", ok.Load())
			_ = successor.Process.Signal(os.Interrupt)
		})
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}
