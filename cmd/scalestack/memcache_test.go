package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/internal/testutil"
	"github.com/scalestack/scalestack/memcachewire"
)

// Tests of `scalestack memcache` against real Debian memcached servers (and
// nutcracker and memccapable), which `make test` installs through
// `scripts/mariadb.sh deps --memcached`. Each test starts its own servers on
// free loopback ports; a missing tool fails the test rather than skipping it.

func needTool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p := filepath.Join("/usr/sbin", name); fileExists(p) {
		return p
	}
	t.Fatalf("%s is not installed: run scripts/mariadb.sh deps --memcached (Debian packages memcached, nutcracker, libmemcached-tools)", name)
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

type memcachedServer struct {
	t    *testing.T
	port int
	cmd  *exec.Cmd
}

func (s *memcachedServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// startMemcached runs a private memcached on port (0: a free one) until the
// test ends.
func startMemcached(t *testing.T, port int) *memcachedServer {
	t.Helper()
	bin := needTool(t, "memcached")
	if port == 0 {
		port = testutil.FreePort(t)
	}
	args := []string{"-p", strconv.Itoa(port), "-l", "127.0.0.1", "-U", "0", "-t", "1", "-m", "64"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root") // memcached refuses root without it
	}
	s := &memcachedServer{t: t, port: port, cmd: exec.Command(bin, args...)}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start memcached: %v", err)
	}
	t.Cleanup(s.kill)
	waitListening(t, s.addr())
	return s
}

func (s *memcachedServer) kill() {
	if s.cmd.ProcessState == nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
}

// stop sends SIGSTOP and waits until every thread of the server has
// stopped: the signal takes effect asynchronously, and a worker thread
// still running could answer a request sent right after kill(2) returns.
func (s *memcachedServer) stop() {
	t := s.t
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.cmd.Process.Signal(syscall.SIGCONT) })
	deadline := time.Now().Add(5 * time.Second)
	for {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", s.cmd.Process.Pid))
		stopped := 0
		for _, f := range tasks {
			b, err := os.ReadFile(f)
			if i := bytes.LastIndexByte(b, ')'); err == nil && i > 0 && i+2 < len(b) && (b[i+2] == 'T' || b[i+2] == 't') {
				stopped++
			}
		}
		if len(tasks) > 0 && stopped == len(tasks) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("memcached %d: %d of %d threads stopped after SIGSTOP", s.cmd.Process.Pid, stopped, len(tasks))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testMemcacheConfig(t *testing.T, servers string) mcConfig {
	t.Helper()
	list, err := parseMemcacheServers(servers)
	if err != nil {
		t.Fatal(err)
	}
	return mcConfig{
		servers: list, hash: hashFNV1a64, lim: memcachewire.Limits{}.WithDefaults(),
		connsPerServer: 1, failureLimit: 2, retryTimeout: 30 * time.Second, connectTimeout: time.Second,
		serverTimeout: 5 * time.Second, maxPipeline: 256, maxServerQueue: 4096,
	}
}

// startMemcacheProxy runs the proxy in this process on two loops.
func startMemcacheProxy(t *testing.T, cfg mcConfig) (string, *mcProxy) {
	t.Helper()
	e := startTestEngine(t, "epoll", 2)
	laddr, _ := conn.ParseAddr("127.0.0.1:0")
	m, err := memcacheModule(laddr, false, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.start(e.Engine); err != nil {
		t.Fatal(err)
	}
	ln, err := conn.Listen(e.Engine, m.listen)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().Address, m.collectors[0].(*mcCollector).p
}

func newMemcacheClient(t *testing.T, addrs ...string) *memcache.Client {
	c := memcache.New(addrs...)
	c.Timeout = 5 * time.Second
	t.Cleanup(func() { c.Close() })
	return c
}

func threeServers(t *testing.T) ([]*memcachedServer, string) {
	var list []string
	var srvs []*memcachedServer
	for range 3 {
		s := startMemcached(t, 0)
		srvs = append(srvs, s)
		list = append(list, s.addr())
	}
	return srvs, strings.Join(list, ",")
}

// TestMemcacheGoClient drives the proxy in front of three servers with
// gomemcache: every command, keys spread over all three, many clients at
// once.
func TestMemcacheGoClient(t *testing.T) {
	checkLeaks(t)
	srvs, list := threeServers(t)
	cfg := testMemcacheConfig(t, list)
	// md5 spreads these short sequential keys over all three servers;
	// twemproxy's fnv1a_64 (32-bit arithmetic, prime 0x1b3) happens to put
	// none of key-0..key-299 on one of them, as nutcracker itself would.
	cfg.hash = hashMD5
	addr, _ := startMemcacheProxy(t, cfg)
	mc := newMemcacheClient(t, addr)

	var keys []string
	for i := range 300 {
		k := fmt.Sprintf("key-%d", i)
		keys = append(keys, k)
		if err := mc.Set(&memcache.Item{Key: k, Value: []byte("value-" + k), Flags: uint32(i)}); err != nil {
			t.Fatalf("set %s: %v", k, err)
		}
	}
	got, err := mc.GetMulti(append(keys, "missing-1", "missing-2"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(keys) {
		t.Fatalf("GetMulti found %d of %d", len(got), len(keys))
	}
	for i, k := range keys {
		if it := got[k]; it == nil || string(it.Value) != "value-"+k || it.Flags != uint32(i) {
			t.Fatalf("GetMulti %s: %+v", k, it)
		}
	}
	// The keys really are spread over the three servers, once each.
	total := 0
	for _, s := range srvs {
		direct := newMemcacheClient(t, s.addr())
		m, err := direct.GetMulti(keys)
		if err != nil {
			t.Fatal(err)
		}
		if len(m) == 0 {
			t.Errorf("server %s holds none of the keys", s.addr())
		}
		total += len(m)
	}
	if total != len(keys) {
		t.Errorf("servers hold %d keys, want %d", total, len(keys))
	}

	if err := mc.Add(&memcache.Item{Key: "key-1", Value: []byte("x")}); err != memcache.ErrNotStored {
		t.Errorf("add existing: %v", err)
	}
	if err := mc.Replace(&memcache.Item{Key: "nope", Value: []byte("x")}); err != memcache.ErrNotStored {
		t.Errorf("replace missing: %v", err)
	}
	it, err := mc.Get("key-2")
	if err != nil {
		t.Fatal(err)
	}
	it.Value = []byte("cas-1")
	if err := mc.CompareAndSwap(it); err != nil {
		t.Errorf("cas: %v", err)
	}
	if err := mc.CompareAndSwap(it); err != memcache.ErrCASConflict {
		t.Errorf("stale cas: %v", err)
	}
	if err := mc.Delete("key-3"); err != nil {
		t.Errorf("delete: %v", err)
	}
	if _, err := mc.Get("key-3"); err != memcache.ErrCacheMiss {
		t.Errorf("get deleted: %v", err)
	}
	if err := mc.Set(&memcache.Item{Key: "n", Value: []byte("10")}); err != nil {
		t.Fatal(err)
	}
	if v, err := mc.Increment("n", 5); err != nil || v != 15 {
		t.Errorf("incr: %d %v", v, err)
	}
	if v, err := mc.Decrement("n", 20); err != nil || v != 0 {
		t.Errorf("decr: %d %v", v, err)
	}
	if err := mc.Touch("key-4", 100); err != nil {
		t.Errorf("touch: %v", err)
	}
	if err := mc.Append(&memcache.Item{Key: "key-5", Value: []byte("+a")}); err != nil {
		t.Errorf("append: %v", err)
	}
	if err := mc.Prepend(&memcache.Item{Key: "key-5", Value: []byte("p+")}); err != nil {
		t.Errorf("prepend: %v", err)
	}
	if it, err := mc.Get("key-5"); err != nil || string(it.Value) != "p+value-key-5+a" {
		t.Errorf("after append/prepend: %v %v", it, err)
	}

	// Many clients at once, pipelined by the proxy onto one connection per
	// server and loop: each sees its own values.
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := memcache.New(addr)
			c.Timeout = 5 * time.Second
			c.MaxIdleConns = 4
			defer c.Close()
			for i := range 150 {
				k := fmt.Sprintf("g%d-%d", g, i)
				if err := c.Set(&memcache.Item{Key: k, Value: []byte(k)}); err != nil {
					errs <- err
					return
				}
				if it, err := c.Get(k); err != nil || string(it.Value) != k {
					errs <- fmt.Errorf("get %s: %v %v", k, it, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	if err := mc.FlushAll(); err != nil {
		t.Fatal(err)
	}
	if got, err := mc.GetMulti(keys); err != nil || len(got) != 0 {
		t.Errorf("after flush_all: %d items, %v", len(got), err)
	}
}

// roundTrip writes script in one piece and reads until the reply ends with
// want's last line, or a second passes.
func roundTrip(t *testing.T, addr, script string, wantLen int) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, script); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	buf := make([]byte, 64<<10)
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	for wantLen <= 0 || out.Len() < wantLen {
		n, err := c.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return out.String()
}

// TestMemcachePipelineMatchesMemcached sends one pipelined script of text
// and meta commands (noreply, meta q, split multi-gets with duplicates and
// misses, errors, a value sent in pieces) to a single memcached and to the
// proxy in front of three: the replies must be byte for byte the same.
func TestMemcachePipelineMatchesMemcached(t *testing.T) {
	checkLeaks(t)
	_, list := threeServers(t)
	single := startMemcached(t, 0)
	addr, _ := startMemcacheProxy(t, testMemcacheConfig(t, list))

	var sb strings.Builder
	var keys []string
	for i := range 40 {
		k := fmt.Sprintf("k%02d", i)
		keys = append(keys, k)
		noreply := ""
		if i%3 == 0 {
			noreply = " noreply"
		}
		fmt.Fprintf(&sb, "set %s %d 0 %d%s\r\n%s\r\n", k, i, len(k)+2, noreply, "v-"+k)
	}
	fmt.Fprintf(&sb, "get %s k00 nothere %s\r\n", strings.Join(keys, " "), strings.Join(keys[:5], " "))
	sb.WriteString("mg k01 v f q\r\nmg nothere v q\r\nmn\r\n")
	sb.WriteString("ms k90 2 q\r\nhi\r\nms k91 2 MA q\r\nhi\r\nmd k90 q\r\nmd k90 q\r\nma k92 q\r\nmn\r\n")
	sb.WriteString("incr k05 1\r\nset n 0 0 1\r\n7\r\nincr n 3\r\ndecr n 100\r\ntouch k06 10\r\ntouch nope 10\r\n")
	sb.WriteString("delete k07\r\ndelete k07\r\ndelete k08 noreply\r\nget k07 k08\r\n")
	sb.WriteString("add k09 0 0 1\r\nx\r\nreplace zz 0 0 1\r\nx\r\nappend k10 0 0 2\r\n+a\r\nprepend k10 0 0 2\r\np+\r\nget k10\r\n")
	// (Malformed commands are compared one by one in memcachewire's table:
	// memcached 1.6.18 answers a run of them inside a long pipeline
	// differently from the same commands sent alone.)
	sb.WriteString("get " + strings.Repeat("x", 251) + "\r\n")
	sb.WriteString("gat 100 k11 k12 k13 k14\r\nverbosity 1\r\nverbosity 1 noreply\r\nflush_all\r\nget k11 k12 k13\r\nmn\r\n")
	script := sb.String()

	want := roundTrip(t, single.addr(), script, 0)
	if !strings.HasSuffix(want, "MN\r\n") {
		t.Fatalf("memcached's own reply is incomplete:\n%s", want)
	}
	got := roundTrip(t, addr, script, len(want))
	if got != want {
		t.Fatalf("proxy and memcached differ\nproxy:\n%s\nmemcached:\n%s", got, want)
	}
}

// TestMemcacheKetamaMatchesNutcracker places keys through nutcracker and
// through the proxy with the same weighted server list and hash, and reads
// each key straight from each memcached to see where it landed.
func TestMemcacheKetamaMatchesNutcracker(t *testing.T) {
	checkLeaks(t)
	nutcracker := needTool(t, "nutcracker")
	cases := []struct {
		hash string
		keys int
	}{
		{"fnv1a_64", 10000},
		{"md5", 3000},
	}
	for _, tc := range cases {
		t.Run(tc.hash, func(t *testing.T) {
			srvs, _ := threeServers(t)
			weights := []int{1, 2, 1}
			var list []string
			for i, s := range srvs {
				list = append(list, fmt.Sprintf("%s:%d", s.addr(), weights[i]))
			}
			keys := make([]string, tc.keys)
			for i := range keys {
				keys[i] = fmt.Sprintf("user:%d:profile", i)
				if i%10 == 0 {
					keys[i] = fmt.Sprintf("ключ-%d", i) // bytes over 0x7f: fnv's signed chars
				}
			}

			// nutcracker
			dir := t.TempDir()
			port := testutil.FreePort(t)
			conf := fmt.Sprintf("pool:\n  listen: 127.0.0.1:%d\n  hash: %s\n  distribution: ketama\n  auto_eject_hosts: false\n  servers:\n", port, tc.hash)
			for _, s := range list {
				conf += "   - " + s + "\n"
			}
			confPath := filepath.Join(dir, "nutcracker.yml")
			if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(nutcracker, "-c", confPath, "-s", strconv.Itoa(testutil.FreePort(t)), "-a", "127.0.0.1", "-o", filepath.Join(dir, "nutcracker.log"))
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			waitListening(t, fmt.Sprintf("127.0.0.1:%d", port))
			theirs := placeKeys(t, fmt.Sprintf("127.0.0.1:%d", port), srvs, keys)

			cfg := testMemcacheConfig(t, strings.Join(list, ","))
			cfg.hash = keyHashes[tc.hash]
			addr, _ := startMemcacheProxy(t, cfg)
			ours := placeKeys(t, addr, srvs, keys)

			counts := make([]int, len(srvs))
			for i, k := range keys {
				if theirs[i] != ours[i] {
					t.Fatalf("key %q: nutcracker put it on server %d, the proxy on %d", k, theirs[i], ours[i])
				}
				counts[ours[i]]++
			}
			t.Logf("%s: %d keys on the same servers as nutcracker; per server (weights 1,2,1): %v", tc.hash, len(keys), counts)
		})
	}
}

// placeKeys sets keys through addr, finds which server holds each, then
// flushes the servers.
func placeKeys(t *testing.T, addr string, srvs []*memcachedServer, keys []string) []int {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := memcache.New(addr)
			c.Timeout = 5 * time.Second
			defer c.Close()
			for i := w; i < len(keys); i += 8 {
				if err := c.Set(&memcache.Item{Key: keys[i], Value: []byte("v")}); err != nil {
					errs <- fmt.Errorf("set %q through %s: %v", keys[i], addr, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	where := make([]int, len(keys))
	for i := range where {
		where[i] = -1
	}
	index := map[string]int{}
	for i, k := range keys {
		index[k] = i
	}
	for s, srv := range srvs {
		c := memcache.New(srv.addr())
		for i := 0; i < len(keys); i += 500 {
			got, err := c.GetMulti(keys[i:min(i+500, len(keys))])
			if err != nil {
				t.Fatal(err)
			}
			for k := range got {
				if where[index[k]] != -1 {
					t.Fatalf("key %q on two servers", k)
				}
				where[index[k]] = s
			}
		}
		if err := c.FlushAll(); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	for i, w := range where {
		if w < 0 {
			t.Fatalf("key %q set through %s is on no server", keys[i], addr)
		}
	}
	return where
}

var memccapableResult = regexp.MustCompile(`(?m)^(ascii [a-z ]*[a-z])\s+(?:[^\[\n]*\n)?\[(pass|FAIL|skip)\]`)

func runMemccapable(t *testing.T, addr string) map[string]string {
	t.Helper()
	bin := needTool(t, "memccapable")
	host, port, _ := net.SplitHostPort(addr)
	out, _ := exec.Command(bin, "-a", "-t", "2", "-h", host, "-p", port).CombinedOutput()
	res := map[string]string{}
	for _, m := range memccapableResult.FindAllStringSubmatch(string(out), -1) {
		res[m[1]] = m[2]
	}
	if len(res) < 27 {
		t.Fatalf("memccapable against %s: %d results parsed from:\n%s", addr, len(res), out)
	}
	return res
}

// TestMemccapableMatchesMemcached runs libmemcached's conformance tool (its
// text-protocol tests) against a real memcached and against the proxy in
// front of three: the pass lists must be the same.
func TestMemccapableMatchesMemcached(t *testing.T) {
	checkLeaks(t)
	single := startMemcached(t, 0)
	_, list := threeServers(t)
	addr, _ := startMemcacheProxy(t, testMemcacheConfig(t, list))
	want := runMemccapable(t, single.addr())
	got := runMemccapable(t, addr)
	passed := 0
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: proxy %s, memcached %s", name, got[name], w)
		}
		if w == "pass" {
			passed++
		}
	}
	t.Logf("memccapable: %d of %d tests pass against both", passed, len(want))
}

// TestMemcacheServerKilledAndBack kills the server that owns a key: the
// key's requests get the documented SERVER_ERROR, keys on the other server
// still work, and once it is back (after the retry timeout) it is used
// again.
func TestMemcacheServerKilledAndBack(t *testing.T) {
	checkLeaks(t)
	a := startMemcached(t, 0)
	b := startMemcached(t, 0)
	cfg := testMemcacheConfig(t, a.addr()+","+b.addr())
	cfg.failureLimit = 1
	cfg.retryTimeout = 300 * time.Millisecond
	addr, p := startMemcacheProxy(t, cfg)
	var onA, onB string
	for i := 0; onA == "" || onB == ""; i++ {
		k := "key" + strconv.Itoa(i)
		if p.route([]byte(k)) == 0 {
			onA = k
		} else {
			onB = k
		}
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	ask := func(cmd string) string {
		t.Helper()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, cmd); err != nil {
			t.Fatal(err)
		}
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("%q: %v", cmd, err)
		}
		return line
	}
	for _, k := range []string{onA, onB} {
		if got := ask("set " + k + " 0 0 1\r\nx\r\n"); got != "STORED\r\n" {
			t.Fatalf("set %s: %q", k, got)
		}
	}
	b.kill()
	for range 3 {
		if got := ask("set " + onB + " 0 0 1\r\ny\r\n"); got != string(mcUnavailable) {
			t.Fatalf("set on the killed server: %q, want %q", got, mcUnavailable)
		}
	}
	if got := ask("set " + onA + " 0 0 1\r\nz\r\n"); got != "STORED\r\n" {
		t.Fatalf("set on the live server: %q", got)
	}
	if got := ask("get " + onA + " " + onB + "\r\n"); got != string(mcUnavailable) {
		t.Fatalf("get across both: %q", got)
	}
	var ejections uint64
	for l := range p.stats {
		ejections += p.stats[l][1].ejections.Load()
	}
	if ejections == 0 {
		t.Error("the killed server was never ejected")
	}

	startMemcached(t, b.port)
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := ask("set " + onB + " 0 0 1\r\nw\r\n")
		if got == "STORED\r\n" {
			break
		}
		if got != string(mcUnavailable) || time.Now().After(deadline) {
			t.Fatalf("after the server came back: %q", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := ask("get " + onB + "\r\n"); got != "VALUE "+onB+" 0 1\r\n" {
		t.Fatalf("get after return: %q", got)
	}
}

// TestMemcacheServerTimeout stops (SIGSTOP) a server that holds a key: the
// kernel still accepts its connections and takes the requests, but nothing
// answers. Requests waiting on it get the documented SERVER_ERROR within
// --server-timeout, the connection is reset, the next connection's timeout
// is the second failure that ejects the server, keys on the other server
// are served throughout, and once the server runs again it is used again.
func TestMemcacheServerTimeout(t *testing.T) {
	checkLeaks(t)
	a := startMemcached(t, 0)
	b := startMemcached(t, 0)
	const timeout = 300 * time.Millisecond
	cfg := testMemcacheConfig(t, a.addr()+","+b.addr())
	cfg.failureLimit = 2
	cfg.retryTimeout = 500 * time.Millisecond
	cfg.serverTimeout = timeout
	addr, p := startMemcacheProxy(t, cfg)
	var onA, onB string
	for i := 0; onA == "" || onB == ""; i++ {
		k := "key" + strconv.Itoa(i)
		if p.route([]byte(k)) == 0 {
			onA = k
		} else {
			onB = k
		}
	}
	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	}
	send := func(c net.Conn, cmd string) {
		t.Helper()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, cmd); err != nil {
			t.Fatal(err)
		}
	}
	read := func(r *bufio.Reader, what string) string {
		t.Helper()
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("%s: %v (no answer within 5 s)", what, err)
		}
		return line
	}
	stat := func(get func(*mcServerStats) uint64) uint64 {
		var n uint64
		for l := range p.stats {
			n += get(&p.stats[l][0])
		}
		return n
	}
	c1, r1 := dial()
	c2, r2 := dial()
	for _, k := range []string{onA, onB} {
		send(c1, "set "+k+" 0 0 1\r\nx\r\n")
		if got := read(r1, "set "+k); got != "STORED\r\n" {
			t.Fatalf("set %s: %q", k, got)
		}
	}

	a.stop()
	start := time.Now()
	// Three requests pending on the stopped server, the last a get split
	// across both servers.
	send(c1, "get "+onA+"\r\nset "+onA+" 0 0 1\r\ny\r\nget "+onB+" "+onA+"\r\n")
	// Meanwhile the other server's keys are served at once.
	send(c2, "get "+onB+"\r\n")
	if got := read(r2, "get on the running server"); got != "VALUE "+onB+" 0 1\r\n" {
		t.Fatalf("get on the running server while the other hangs: %q", got)
	}
	if d := time.Since(start); d >= timeout {
		t.Errorf("the running server's answer took %v, behind the stopped one's timeout", d)
	}
	for i := range 3 {
		if got := read(r1, "request to the stopped server"); got != string(mcTimedOut) {
			t.Fatalf("answer %d from the stopped server: %q, want %q", i+1, got, mcTimedOut)
		}
	}
	if d := time.Since(start); d < timeout || d > timeout+time.Second {
		t.Errorf("timed out after %v, want %v (+ a tick or two)", d, timeout)
	}
	if n := stat(func(s *mcServerStats) uint64 { return s.timeouts.Load() }); n != 1 {
		t.Errorf("timeouts_total %d, want 1", n)
	}
	if n := stat(func(s *mcServerStats) uint64 { return uint64(s.connected.Load()) }); n != 0 {
		t.Errorf("%d connections to the stopped server remain open; the timed-out one must be reset", n)
	}
	if n := stat(func(s *mcServerStats) uint64 { return uint64(s.pending.Load()) }); n != 0 {
		t.Errorf("%d requests still pending on the stopped server", n)
	}

	// A second connection (the kernel accepts it) times out too: the
	// second consecutive failure ejects the server.
	send(c1, "get "+onA+"\r\n")
	if got := read(r1, "second request to the stopped server"); got != string(mcTimedOut) {
		t.Fatalf("second request: %q, want %q", got, mcTimedOut)
	}
	if n := stat(func(s *mcServerStats) uint64 { return s.ejections.Load() }); n != 1 {
		t.Fatalf("ejections_total %d after two timeouts, want 1", n)
	}
	start = time.Now()
	send(c1, "get "+onA+"\r\n")
	if got := read(r1, "request to the ejected server"); got != string(mcUnavailable) {
		t.Fatalf("request to the ejected server: %q, want %q", got, mcUnavailable)
	}
	if d := time.Since(start); d >= timeout {
		t.Errorf("the ejected server's keys were answered after %v, not at once", d)
	}

	// Running again, it is used again after --server-retry-timeout.
	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		send(c1, "set "+onA+" 0 0 1\r\nz\r\n")
		got := read(r1, "set after the server runs again")
		if got == "STORED\r\n" {
			break
		}
		if got != string(mcUnavailable) || time.Now().After(deadline) {
			t.Fatalf("after the server runs again: %q", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	send(c1, "get "+onA+"\r\n")
	if got := read(r1, "get after return"); got != "VALUE "+onA+" 0 1\r\n" {
		t.Fatalf("get after return: %q", got)
	}
	if got := read(r1, "get after return"); got != "z\r\n" {
		t.Fatalf("value after return: %q, want the last value set", got)
	}
}
