package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// proxyRSS is the proxy process's resident set size in bytes
// (/proc/PID/status VmRSS).
func (p *proxyProcess) rss(t testing.TB) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/status")
	if err != nil {
		t.Fatalf("proxy status: %v", err)
	}
	i := bytes.Index(b, []byte("VmRSS:"))
	if i < 0 {
		t.Fatalf("no VmRSS in the proxy's status")
	}
	f := bytes.Fields(b[i+len("VmRSS:"):])
	kb, err := strconv.ParseInt(string(f[0]), 10, 64)
	if err != nil || len(f) < 2 || string(f[1]) != "kB" {
		t.Fatalf("VmRSS %q: %v", f, err)
	}
	return kb << 10
}

// rssSampler polls the proxy's RSS and keeps the largest value seen.
type rssSampler struct {
	max  atomic.Int64
	stop chan struct{}
	done chan struct{}
}

func sampleRSS(t testing.TB, p *proxyProcess, every time.Duration) *rssSampler {
	s := &rssSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			if v := p.rss(t); v > s.max.Load() {
				s.max.Store(v)
			}
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) finish() int64 {
	close(s.stop)
	<-s.done
	return s.max.Load()
}

// TestPreLoginMemoryStorm is issue 13's item 3: 1,000 sockets that never
// log in each send 60 KiB of a handshake response that never completes and
// stall. Before the fix each of them made the proxy buffer its input (up to
// 64 MiB a socket: 16 took it from 12 MB to 1.54 GB). Now a handshake
// packet over 64 KiB is refused from its header, and what the others leave
// buffered is bounded per connection and in total (--login-input-mib): the
// proxy's RSS stays under 64 MiB, a real client still logs in within
// 100 ms, and the memory goes back once the sockets close.
//
// The storm runs twice. Having had 1,000 connections at once costs the Go
// runtime about 2 MiB it keeps for good (metadata of a larger heap, code
// pages of the paths the storm took), so the 10 % bound is checked against
// the RSS before the second storm, after the first one's memory came back;
// the first storm is checked against the cold start with 4 MiB of room for
// that one-time cost.
func TestPreLoginMemoryStorm(t *testing.T) {
	const rssLimit = 64 << 20
	p := startProxy(t, proxyOptions{backendConns: 2, loops: 2})
	login := func() time.Duration {
		t.Helper()
		start := time.Now()
		c, err := dialRaw(p.addr, clientUser, clientPassword, rawOptions{})
		took := time.Since(start)
		if err != nil {
			t.Fatalf("login: %v", err)
		}
		c.Close()
		return took
	}
	// The cold baseline is the idle proxy after one client has logged in
	// and out.
	login()
	time.Sleep(300 * time.Millisecond)
	cold := p.rss(t)
	after1 := stormOnce(t, p, login, rssLimit, true)
	t.Logf("storm 1: RSS %s before (cold), %s 5 s after the sockets closed", mib(cold), mib(after1))
	if after1 > cold+4<<20 {
		t.Errorf("RSS 5 s after the first storm is %s, more than 4 MiB over the cold %s: the storm's buffers were kept", mib(after1), mib(cold))
	}
	warm := p.rss(t)
	after2 := stormOnce(t, p, login, rssLimit, false)
	t.Logf("storm 2: RSS %s before, %s 5 s after the sockets closed", mib(warm), mib(after2))
	if float64(after2) > 1.1*float64(warm) {
		t.Errorf("RSS 5 s after the second storm is %s, more than 10%% over the %s before it", mib(after2), mib(warm))
	}
	login()
}

// stormOnce opens the 1,000 sockets, checks RSS and logins beside them,
// closes them and returns the RSS 5 s later. check also reads what each
// socket was answered.
func stormOnce(t *testing.T, p *proxyProcess, login func() time.Duration, rssLimit int64, check bool) int64 {
	t.Helper()
	const (
		sockets  = 1000
		sendEach = 60 << 10
		workers  = 20
	)
	// Three shapes of a handshake response that never completes: a
	// header that announces a split payload (a full 16 MiB-1 chunk), one
	// that announces 16 MiB-2 bytes, and one that announces 64 KiB (the
	// largest the proxy accepts before login); each followed by 60 KiB.
	shapes := []int{0xFFFFFF, 0xFFFFFE, 64 << 10}
	sampler := sampleRSS(t, p, 10*time.Millisecond)
	conns := make([]net.Conn, sockets)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	var wg sync.WaitGroup
	var dialErrs atomic.Int64
	var firstDialErr atomic.Value
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			payload := make([]byte, 4+sendEach)
			for i := w; i < sockets; i += workers {
				c, err := net.DialTimeout("tcp", p.addr, 5*time.Second)
				if err != nil {
					if dialErrs.Add(1) == 1 {
						firstDialErr.Store(err)
					}
					continue
				}
				conns[i] = c
				n := shapes[i%len(shapes)]
				payload[0], payload[1], payload[2], payload[3] = byte(n), byte(n>>8), byte(n>>16), 1
				// A refused socket may be closed under the write.
				_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				_, _ = c.Write(payload)
			}
		}(w)
	}
	wg.Wait()
	if n := dialErrs.Load(); n > 0 {
		sampler.finish()
		t.Fatalf("%d of %d sockets could not connect: %v", n, sockets, firstDialErr.Load())
	}
	// Let the proxy read what was sent, then log in beside the stalled
	// sockets.
	time.Sleep(500 * time.Millisecond)
	var slowest time.Duration
	for i := 0; i < 5; i++ {
		if d := login(); d > slowest {
			slowest = d
		}
	}
	p.requireAlive(t)
	peak := sampler.finish()
	t.Logf("peak RSS %s with %d sockets stalled; slowest of 5 logins beside them %v", mib(peak), sockets, slowest)
	if peak >= rssLimit {
		t.Errorf("proxy RSS reached %s during the storm, want under %s", mib(peak), mib(rssLimit))
	}
	if slowest > 100*time.Millisecond {
		t.Errorf("a login beside the storm took %v, want at most 100 ms", slowest)
	}
	if check {
		checkStormAnswers(t, conns, shapes)
	}
	for i, c := range conns {
		if c != nil {
			c.Close()
			conns[i] = nil
		}
	}
	time.Sleep(5 * time.Second)
	return p.rss(t)
}

// checkStormAnswers reads what the stalled sockets got after the greeting:
// an announced payload over 64 KiB gets ERR 1153 (08S01) with sequence id
// 2, as MariaDB answers a handshake packet over max_allowed_packet; one
// within 64 KiB is either still waited for (the proxy holds its 60 KiB) or
// closed because the login budget was full, and at most as many are held
// as the budget has room for (16 MiB of 128 KiB buffers).
func checkStormAnswers(t *testing.T, conns []net.Conn, shapes []int) {
	t.Helper()
	var held, budgetClosed, refused atomic.Int64
	errs := &errorCollector{}
	var wg sync.WaitGroup
	for w := 0; w < 20; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(conns); i += 20 {
				rc := &rawConn{c: conns[i], r: bufio.NewReader(conns[i])}
				_ = conns[i].SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := rc.readPacket(); err != nil {
					errs.addKind("greeting", "socket %d: greeting: %v", i, err)
					continue
				}
				rc.seq = 2
				if shapes[i%len(shapes)] <= 64<<10 {
					// Answered long ago if at all: a close is already
					// queued, and a held socket gets nothing.
					_ = conns[i].SetReadDeadline(time.Now().Add(20 * time.Millisecond))
				}
				pkt, err := rc.readPacket()
				if shapes[i%len(shapes)] > 64<<10 {
					e := &serverError{}
					if err == nil && len(pkt) > 0 && pkt[0] == 0xFF {
						e = parseErr(pkt)
					}
					if err != nil || e.Code != 1153 || e.State != "08S01" {
						errs.addKind("oversized", "socket %d (announces %d bytes): got %q, %v; want ERR 1153 (08S01) with sequence id 2", i, shapes[i%len(shapes)], pkt, err)
						continue
					}
					refused.Add(1)
					continue
				}
				var ne net.Error
				switch {
				case errors.As(err, &ne) && ne.Timeout():
					held.Add(1)
				case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET):
					budgetClosed.Add(1)
				default:
					errs.addKind("within limit", "socket %d: got %q, %v; want nothing or a close", i, pkt, err)
				}
			}
		}(w)
	}
	wg.Wait()
	errs.check(t, "storm answers")
	t.Logf("oversized announcements refused with ERR 1153: %d; 64 KiB ones held: %d, closed over the budget: %d",
		refused.Load(), held.Load(), budgetClosed.Load())
	if held.Load() == 0 || held.Load() > 16<<20/(128<<10) {
		t.Errorf("%d sockets held, want between 1 and %d (the budget's room)", held.Load(), 16<<20/(128<<10))
	}
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
