package e2e

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestClientsThatNeverRead: as many clients as there are backends each
// start a result of about 50 MB and never read it. The proxy pauses the
// backends feeding them, so without a client write timeout they hold the
// whole pool until the server's net_write_timeout (which the proxy, having
// stopped reading those backends, does not even see). With
// --client-write-timeout 3s another client is served within 4 s of the
// stall and the pool is back to N.
func TestClientsThatNeverRead(t *testing.T) {
	for _, io := range []string{"epoll", "uring"} {
		t.Run(io, func(t *testing.T) { testClientsThatNeverRead(t, io) })
	}
}

func testClientsThatNeverRead(t *testing.T, io string) {
	const (
		n            = 4
		writeTimeout = 3 * time.Second
		// 100,000 rows of 4 + 512 bytes and their packet headers.
		bigQuery = "SELECT id, REPEAT(pad, 16) FROM big"
	)
	start := time.Now()
	p := startProxy(t, proxyOptions{backendConns: n, io: io,
		extraArgs: []string{"--client-write-timeout", writeTimeout.String()}})
	t.Logf("proxy up after %v", time.Since(start).Round(time.Millisecond))

	other, err := dialRaw(p.addr, clientUser, clientPassword, rawOptions{db: dataSchema})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	stallers := make([]*rawConn, n)
	for i := range stallers {
		c, err := dialRaw(p.addr, clientUser, clientPassword, rawOptions{db: dataSchema, rcvBuf: 4096})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		stallers[i] = c
	}
	for _, c := range stallers {
		if err := c.writeCommand(comQuery, []byte(bigQuery)); err != nil {
			t.Fatal(err)
		}
	}
	stalled := time.Now()
	// Each has its backend once its result starts to arrive.
	for i, c := range stallers {
		c.setDeadline(10 * time.Second)
		if _, err := c.r.Peek(1); err != nil {
			t.Fatalf("staller %d: no result started: %v", i, err)
		}
	}

	// All N backends are paused behind clients that do not read: this
	// query waits until the proxy cuts them off.
	other.setDeadline(15 * time.Second)
	got, err := other.scalar("SELECT 42")
	served := time.Since(stalled)
	if err != nil || got != "42" {
		t.Fatalf("the other client after %v: %q, %v; proxy log:\n%s", served.Round(time.Millisecond), got, err, p.logTail(20))
	}
	if limit := writeTimeout + time.Second; served > limit {
		t.Fatalf("the other client was served %v after the stall began, want within %v", served.Round(time.Millisecond), limit)
	}
	t.Logf("the other client was served %v after the stall began", served.Round(time.Millisecond))

	// Every stalled client is cut off with a reset (reading from them
	// now would make them readers again, so their sockets are watched
	// instead), and what they read afterwards ends in an error.
	deadline := stalled.Add(writeTimeout*9/8 + 2*time.Second)
	for i, c := range stallers {
		for !resetByPeer(t, c) {
			if time.Now().After(deadline) {
				t.Fatalf("staller %d still connected %v after the stall began", i, time.Since(stalled).Round(time.Millisecond))
			}
			time.Sleep(20 * time.Millisecond)
		}
		c.setDeadline(5 * time.Second)
		if _, err := c.readResults(); err == nil {
			t.Fatalf("staller %d read a whole 50 MB result after being cut off", i)
		}
	}

	// Their backends were closed (their state unknown) and reconnected.
	p.waitBackendCount(t, n, 5*time.Second)
	if got, err := other.scalar("SELECT 43"); err != nil || got != "43" {
		t.Fatalf("the other client afterwards: %q, %v", got, err)
	}
	p.requireAlive(t)
	t.Logf("%s took %v", t.Name(), time.Since(start).Round(time.Millisecond))
}

// resetByPeer reports whether c's socket was closed by a reset from the
// proxy (TCP state CLOSE), without reading from it.
func resetByPeer(t *testing.T, c *rawConn) bool {
	t.Helper()
	raw, err := c.c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var info *unix.TCPInfo
	var ierr error
	if err := raw.Control(func(fd uintptr) { info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) }); err != nil {
		t.Fatal(err)
	}
	if ierr != nil {
		t.Fatal(ierr)
	}
	return info.State == unix.BPF_TCP_CLOSE
}
