package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scalestack/scalestack/conn"
	"golang.org/x/sys/unix"
)

// unusedTCPAddr returns a loopback address nothing listens on.
func unusedTCPAddr(t *testing.T) conn.Addr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	address := ln.Addr().String()
	ln.Close()
	a, err := conn.ResolveAddr("tcp", address)
	if err != nil {
		t.Fatalf("resolve: %v", err)
	}
	return a
}

// staleUnixAddr returns a Unix socket path whose file exists but has no
// listener, which refuses connections like a closed TCP port.
func staleUnixAddr(t *testing.T) conn.Addr {
	t.Helper()
	a := testAddr(t, "unix")
	ln, err := net.Listen("unix", a.Address)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	return a
}

func TestProxyClosesClientWhenBackendRefuses(t *testing.T) {
	backends := []struct {
		name    string
		network string
		addr    func(t *testing.T) conn.Addr
	}{
		{"tcp closed port", "tcp", unusedTCPAddr},
		{"unix missing path", "unix", func(t *testing.T) conn.Addr { return testAddr(t, "unix") }},
		{"unix stale socket", "unix", staleUnixAddr},
	}
	for _, drv := range engineDrivers {
		for _, b := range backends {
			t.Run(drv+"/"+b.name, func(t *testing.T) {
				checkLeaks(t)
				e := startTestEngine(t, drv, 2)
				ln, err := startTCPProxy(e.Engine, testAddr(t, b.network), b.addr(t), false)
				if err != nil {
					t.Fatalf("start tcpproxy: %v", err)
				}
				closeListener(t, ln)
				for i := 0; i < 10; i++ {
					c := dialTest(t, ln.Addr())
					c.Write([]byte("hello"))
					if took := expectClosedBy(t, c, 2*time.Second); took > time.Second {
						t.Errorf("client closed only after %v", took)
					}
					c.Close()
				}
				waitOpenConns(t, 5*time.Second, ln)
			})
		}
	}
}

// fullBacklogListener returns a TCP listener that never accepts and whose
// accept queue is full, so the kernel drops further SYNs and a connect to it
// hangs until the connector gives up. It stays on loopback.
func fullBacklogListener(t *testing.T) conn.Addr {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("bind: %v", err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatalf("listen: %v", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatalf("getsockname: %v", err)
	}
	address := fmt.Sprintf("127.0.0.1:%d", sa.(*unix.SockaddrInet4).Port)
	for i := 0; ; i++ {
		if i == 16 {
			t.Fatalf("the accept queue of %s never filled", address)
		}
		c, err := net.DialTimeout("tcp", address, 200*time.Millisecond)
		if err != nil {
			break // this one hung: the queue is full
		}
		t.Cleanup(func() { c.Close() })
	}
	a, err := conn.ResolveAddr("tcp", address)
	if err != nil {
		t.Fatalf("resolve: %v", err)
	}
	return a
}

func TestProxyConnectTimeoutClosesClient(t *testing.T) {
	const timeout = 300 * time.Millisecond
	for _, drv := range engineDrivers {
		t.Run(drv, func(t *testing.T) {
			checkLeaks(t)
			backend := fullBacklogListener(t)
			e := startTestEngine(t, drv, 2)
			ln := startObservedProxy(t, e, "tcp", backend, timeout, make(chan *conn.Conn))
			c := dialTest(t, ln.Addr())
			defer c.Close()
			took := expectClosedBy(t, c, 5*time.Second)
			if took < timeout-50*time.Millisecond {
				t.Fatalf("client closed after %v, before the %v connect timeout: the backend did not hang", took, timeout)
			}
			if took > timeout+time.Second {
				t.Fatalf("client closed after %v, long after the %v connect timeout", took, timeout)
			}
			waitOpenConns(t, 5*time.Second, ln)
		})
	}
}

const emfileChildEnv = "SCALESTACK_TEST_EMFILE_CHILD"

// cpuTicks returns a process's user plus system time in clock ticks.
func cpuTicks(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("read stat: %v", err)
	}
	// Fields after the command name, which may contain spaces.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	return utime + stime
}

// TestAcceptPastEMFILEDoesNotSpin runs the echo module in a child process
// whose descriptor limit leaves room for only a few connections, queues
// more, and checks that the child neither spins on the failing accept nor
// stops accepting once descriptors free up.
func TestAcceptPastEMFILEDoesNotSpin(t *testing.T) {
	if spec := os.Getenv(emfileChildEnv); spec != "" {
		runEMFILEChild(t, spec)
		return
	}
	for _, drv := range engineDrivers {
		for _, network := range engineNetworks {
			t.Run(drv+"/"+network, func(t *testing.T) {
				checkLeaks(t)
				testEMFILE(t, drv, network)
			})
		}
	}
}

func testEMFILE(t *testing.T, driver, network string) {
	const room = 4 // connections the child has descriptors for
	var listenAt string
	if network == "unix" {
		listenAt = "unix:" + testAddr(t, "unix").Address
	} else {
		listenAt = "127.0.0.1:0"
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestAcceptPastEMFILEDoesNotSpin$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%s,%d", emfileChildEnv, driver, listenAt, room))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	exited := make(chan error, 1)
	defer func() {
		stdin.Close()
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("child: %v", err)
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Errorf("child did not exit")
		}
	}()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	expect := func(prefix string) string {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("child exited before printing %q", prefix)
				}
				if rest, found := strings.CutPrefix(l, prefix); found {
					return rest
				}
			case <-timeout:
				t.Fatalf("child did not print %q", prefix)
			}
		}
	}
	acceptErrors := func() int {
		t.Helper()
		fmt.Fprintln(stdin, "stats")
		n, err := strconv.Atoi(expect("ACCEPT-ERRORS "))
		if err != nil {
			t.Fatalf("child stats: %v", err)
		}
		return n
	}
	addr, err := conn.ParseAddr(expect("LISTENING "))
	if err != nil {
		t.Fatalf("child address: %v", err)
	}

	var fitting []net.Conn
	for i := 0; i < room; i++ {
		c := dialTest(t, addr)
		defer c.Close()
		if err := exchangeOn(c, "fits"); err != nil {
			t.Fatalf("client %d within the limit: %v", i, err)
		}
		fitting = append(fitting, c)
	}
	// These complete in the kernel's backlog but the child cannot accept
	// them.
	var waiting []net.Conn
	for i := 0; i < 8; i++ {
		c := dialTest(t, addr)
		defer c.Close()
		waiting = append(waiting, c)
	}
	time.Sleep(100 * time.Millisecond)
	errs0, ticks0 := acceptErrors(), cpuTicks(t, cmd.Process.Pid)
	time.Sleep(time.Second)
	errs1, ticks1 := acceptErrors(), cpuTicks(t, cmd.Process.Pid)
	if errs1 == 0 {
		t.Fatalf("the child never ran out of descriptors; the test proves nothing")
	}
	// The listener pauses 50 ms after each failure: about 20 retries a
	// second, not thousands.
	if errs1-errs0 > 60 {
		t.Errorf("%d accept errors in one second: accepting spins", errs1-errs0)
	}
	if ticks := ticks1 - ticks0; ticks > 30 { // clock ticks are 10 ms
		t.Errorf("child used %d ms of CPU in one idle second at EMFILE", ticks*10)
	}
	t.Logf("at EMFILE: %d accept errors and %d ms CPU in one second", errs1-errs0, (ticks1-ticks0)*10)

	for _, c := range fitting {
		c.Close()
	}
	for i, c := range waiting[:room] {
		if err := exchangeOn(c, "accepted later"); err != nil {
			t.Fatalf("queued client %d after descriptors were freed: %v", i, err)
		}
	}
}

// exchangeOn sends msg and expects it echoed within a few seconds.
func exchangeOn(c net.Conn, msg string) error {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return fmt.Errorf("echoed %q, sent %q", buf, msg)
	}
	return nil
}

// runEMFILEChild is the child side: an echo server whose descriptor limit
// admits only room more connections. It reports its listener's accept
// errors on request and exits when stdin closes.
func runEMFILEChild(t *testing.T, spec string) {
	parts := strings.Split(spec, ",")
	if len(parts) != 3 {
		t.Fatalf("bad child spec %q", spec)
	}
	room, _ := strconv.Atoi(parts[2])
	addr, err := conn.ParseAddr(parts[1])
	if err != nil {
		t.Fatalf("child address: %v", err)
	}
	count := func() int {
		entries, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatalf("child: %v", err)
		}
		return len(entries) - 1 // ReadDir's own descriptor
	}
	// The limit must be in place before the listener starts accepting:
	// io_uring captures RLIMIT_NOFILE when it prepares its (multishot)
	// accept, so lowering it afterwards has no effect there. A first engine
	// and listener measure how many descriptors they need.
	base := count()
	probe := startTestEngine(t, parts[0], 1)
	probeLn, err := startEcho(probe.Engine, addr, false)
	if err != nil {
		t.Fatalf("child listen: %v", err)
	}
	used := count() - base
	probeLn.Close()
	probe.Stop()
	for deadline := time.Now().Add(2 * time.Second); count() > base; {
		if time.Now().After(deadline) {
			t.Fatalf("child: the probe engine left %d descriptors open", count()-base)
		}
		time.Sleep(10 * time.Millisecond)
	}
	limit := uint64(base + used + room)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: limit, Max: limit}); err != nil {
		t.Fatalf("child setrlimit: %v", err)
	}
	e := startTestEngine(t, parts[0], 1)
	ln, err := startEcho(e.Engine, addr, false)
	if err != nil {
		t.Fatalf("child listen: %v", err)
	}
	defer ln.Close()
	fmt.Printf("LISTENING %s\n", listenAddrString(ln.Addr()))
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		fmt.Printf("ACCEPT-ERRORS %d\n", ln.Stats.AcceptErrors.Load())
	}
}

// listenAddrString renders a listener's address for ParseAddr.
func listenAddrString(a conn.Addr) string {
	if a.Network == "unix" {
		return "unix:" + filepath.Clean(a.Address)
	}
	return a.Address
}
