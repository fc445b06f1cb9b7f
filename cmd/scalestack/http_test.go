package main

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestHTTPSIGTERMDrain sends SIGTERM to `scalestack http` while one client
// sits idle on a keep-alive connection and another is in the middle of a
// large download: accepting stops, the idle one is closed at once, the
// download finishes whole, and the process exits by itself.
func TestHTTPSIGTERMDrain(t *testing.T) {
	bin := buildBinary(t)
	root := t.TempDir()
	big := bytes.Repeat([]byte("0123456789abcdef"), 2<<20) // 32 MiB: more than socket buffers hold
	if err := os.WriteFile(filepath.Join(root, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "index.html"), []byte("home\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	listen := "127.0.0.1:" + freePort(t)
	cmd, logf := startProcess(t, bin, "http", "--listen", listen, "--root", root, "--loops", "2", "--shutdown-timeout", "20s")
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("log:\n%s", b)
		}
		logf.Close()
	})

	idle, err := net.Dial("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	_ = idle.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := idle.Write([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if resp, err := http.ReadResponse(bufio.NewReader(idle), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("first request: %v", err)
	}

	busy, err := net.Dial("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_ = busy.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := busy.Write([]byte("GET /big.bin HTTP/1.1\r\nHost: a\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(busy)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Read a little, so the download is under way and far from done.
	got := make([]byte, 1<<20)
	if _, err := io.ReadFull(resp.Body, got); err != nil {
		t.Fatal(err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	signalled := time.Now()
	if _, err := idle.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("idle keep-alive connection after SIGTERM: %v, want EOF", err)
	}
	if took := time.Since(signalled); took > 2*time.Second {
		t.Errorf("idle connection closed %v after SIGTERM, want at once", took)
	}
	refusedBy := time.Now().Add(2 * time.Second)
	for {
		c, err := net.Dial("tcp", listen)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(refusedBy) {
			t.Fatal("still accepting 2s after SIGTERM")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Slowly, the rest of the download.
	for len(got) < len(big) {
		buf := make([]byte, 4<<20)
		n, err := io.ReadFull(resp.Body, buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !bytes.Equal(got, big) {
		t.Fatalf("download after SIGTERM: %d of %d bytes", len(got), len(big))
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after the download: %v, want EOF", err)
	}
	select {
	case <-exited:
		if exitErr != nil {
			t.Fatalf("exit: %v", exitErr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still running 10s after its last client left")
	}
}
