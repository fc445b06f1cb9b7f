package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/scalestack/scalestack/internal/testutil"
	"github.com/scalestack/scalestack/pool/mysqlproxy"
)

func TestServeConfig(t *testing.T) {
	root := t.TempDir()
	tests := []struct {
		name    string
		file    string
		args    []string
		wantErr string // substring; empty: success
		// want lists the sections in order as NAME=listen.
		want []string
		// loops, when set, is the loops the process must run.
		loops int
	}{
		{
			name: "one of each and named instances",
			file: "loops = 2\nadmin = \"127.0.0.1:0\"\n\n[http]\nlisten = \"127.0.0.1:1\"\nroot = \"" + root + "\"\n\n" +
				"[echo.b]\nlisten = \"127.0.0.1:3\"\n[echo.a]\nlisten = \"127.0.0.1:2\"\n[tcpproxy]\nlisten = \"127.0.0.1:4\"\nbackend = \"127.0.0.1:9\"\n",
			want: []string{"http=127.0.0.1:1", "echo.b=127.0.0.1:3", "echo.a=127.0.0.1:2", "tcpproxy=127.0.0.1:4"},
		},
		{name: "an empty section takes the defaults", file: "[echo]\n", want: []string{"echo=127.0.0.1:7000"}},
		{name: "process-wide key in a section", file: "[echo]\nlisten = \"127.0.0.1:1\"\nloops = 3\n", wantErr: `:3: "loops": a process-wide setting`},
		{name: "unknown kind", file: "[htp]\n", wantErr: `:1: [htp]: no such module (kinds: echo, tcpproxy, memcache, http, mysqlproxy) (did you mean [http]?)`},
		{name: "unknown key in a section, with its line", file: "[echo]\nlisten = \"127.0.0.1:1\"\n\n[tcpproxy]\nlisten = \"127.0.0.1:2\"\nbackend = \"127.0.0.1:9\"\nlisen = \"x\"\n", wantErr: `:7: unknown setting "lisen" (did you mean "listen"?)`},
		{name: "settings beside instances", file: "[echo]\nlisten = \"127.0.0.1:1\"\n[echo.x]\nlisten = \"127.0.0.1:2\"\n", wantErr: `:3: [echo] has settings of its own and named instances`},
		{name: "too deep", file: "[echo.a.b]\nlisten = \"127.0.0.1:2\"\n", wantErr: `[echo.a.b]: tables are not settings`},
		{name: "two modules on one address", file: "[echo.a]\nlisten = \"127.0.0.1:5\"\n[echo.b]\nlisten = \"127.0.0.1:5\"\n", wantErr: `:4: [echo.b] listens on 127.0.0.1:5, as [echo.a] does`},
		{name: "a module's own validation names its section", file: "[tcpproxy]\nlisten = \"127.0.0.1:5\"\n", wantErr: `:1: [tcpproxy]: --backend is required`},
		{name: "no modules", file: "loops = 1\n", wantErr: "no modules"},
		{name: "bad top-level value", file: "io = \"kqueue\"\n[echo]\n", wantErr: "kqueue"},
		{name: "command line overrides the top level", file: "loops = 5\n[echo]\n", args: []string{"--loops", "2"}, loops: 2, want: []string{"echo=127.0.0.1:7000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.file)
			sc, err := parseServeConfig(append(tt.args, "--config", path), io.Discard)
			var mods []module
			if err == nil {
				mods, err = sc.prepareModules()
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range mods {
				got = append(got, m.label()+"="+m.listen.Addr.Address)
				if m.stop != nil {
					m.stop()
				}
			}
			if tt.loops != 0 && sc.ef.loops != tt.loops {
				t.Errorf("loops = %d, want %d", sc.ef.loops, tt.loops)
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Fatalf("modules %q, want %q", got, tt.want)
			}
		})
	}
}

// servedProcess is a `scalestack serve` subprocess.
type servedProcess struct {
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	err  error // Wait's result once done is closed
}

// startServe runs `scalestack serve --config config` and waits until each
// of its modules printed its banner.
func startServe(t *testing.T, bin, config string, modules int) *servedProcess {
	t.Helper()
	cmd, logf := startProcess(t, bin, "serve", "--config", config)
	sp := &servedProcess{cmd: cmd, log: logf, done: make(chan struct{})}
	go func() {
		sp.err = cmd.Wait()
		close(sp.done)
	}()
	t.Cleanup(func() {
		select {
		case <-sp.done:
		default:
			_ = cmd.Process.Kill()
			<-sp.done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("log of serve %d:\n%s", cmd.Process.Pid, b)
		}
		logf.Close()
	})
	waitFor(t, 10*time.Second, "every module's banner", func() bool {
		b, _ := os.ReadFile(logf.Name())
		return strings.Count(string(b), " listening on ") == modules
	})
	return sp
}

// waitExit waits at most limit for the process to exit with status 0.
func (sp *servedProcess) waitExit(t *testing.T, limit time.Duration) {
	t.Helper()
	select {
	case <-sp.done:
	case <-time.After(limit):
		t.Fatalf("serve still running %v later", limit)
	}
	if sp.err != nil {
		t.Fatalf("serve exited: %v, want status 0", sp.err)
	}
}

// loadCounter counts a load generator's successes and failures.
type loadCounter struct {
	name     string
	ok, fail atomic.Int64
	firstErr atomic.Value
}

func (c *loadCounter) record(err error) {
	if err != nil {
		c.fail.Add(1)
		c.firstErr.CompareAndSwap(nil, err.Error())
		return
	}
	c.ok.Add(1)
}

func (c *loadCounter) check(t *testing.T) {
	t.Helper()
	if c.fail.Load() != 0 || c.ok.Load() == 0 {
		t.Errorf("%s: %d ok, %d failed (first: %v)", c.name, c.ok.Load(), c.fail.Load(), c.firstErr.Load())
	}
}

// runLoad calls once in a loop on its own goroutine until stop is closed.
func runLoad(wg *sync.WaitGroup, stop <-chan struct{}, c *loadCounter, once func() error) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			c.record(once())
		}
	}()
}

// echoOnce opens a connection, echoes a line and closes.
func echoOnce(network, addr string) func() error {
	return func() error {
		c, err := net.DialTimeout(network, addr, 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		return roundTripOn(c, []byte("ping\n"), time.Now().Add(2*time.Second))
	}
}

// httpOnce GETs url with client and checks the body.
func httpOnce(client *http.Client, url, want string) func() error {
	return func() error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK || string(b) != want {
			return fmt.Errorf("GET %s: %d %q", url, resp.StatusCode, b)
		}
		return nil
	}
}

func postReloadAt(t *testing.T, admin string, wantStatus int) reloadReport {
	t.Helper()
	return postReload(t, &opsProxy{admin: admin}, wantStatus)
}

// serveFile is a serve configuration: the top level, then the sections.
func serveFile(top string, sections ...string) string {
	return top + "\n\n" + strings.Join(sections, "\n\n") + "\n"
}

// TestServeReloadAndDrainHTTPAndEcho runs http and echo in one process
// under continuous load (keep-alive and fresh HTTP connections, fresh echo
// connections), reloads it with SIGHUP and POST /reload, and requires that
// not one request or exchange fail; it checks the reloads' reports (the log
// level applies, an http setting and a new section need a restart, a broken
// file changes nothing) and the labelled metrics. Then SIGTERM: accepting
// stops on both, an idle keep-alive connection is closed at once, a large
// download in progress finishes whole, an echo client keeps being served,
// and the process exits as soon as the last client leaves.
func TestServeReloadAndDrainHTTPAndEcho(t *testing.T) {
	bin := buildBinary(t)
	root := t.TempDir()
	big := bytes.Repeat([]byte("0123456789abcdef"), 2<<20) // 32 MiB
	writeFile(t, filepath.Join(root, "big.bin"), string(big))
	writeFile(t, filepath.Join(root, "index.html"), "home\n")
	httpAddr, echoAddr, admin := "127.0.0.1:"+freePort(t), "127.0.0.1:"+freePort(t), "127.0.0.1:"+freePort(t)
	config := filepath.Join(t.TempDir(), "serve.toml")
	write := func(logLevel string, extraHTTP string, extraSections ...string) {
		top := fmt.Sprintf("loops = 2\nadmin = %q\nshutdown-timeout = \"20s\"\nlog-level = %q", admin, logLevel)
		sections := append([]string{
			fmt.Sprintf("[http]\nlisten = %q\nroot = %q\n%s", httpAddr, root, extraHTTP),
			fmt.Sprintf("[echo]\nlisten = %q", echoAddr),
		}, extraSections...)
		writeFile(t, config, serveFile(top, sections...))
	}
	write("info", "")
	sp := startServe(t, bin, config, 2)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	keepAlive := &http.Client{Timeout: 5 * time.Second}
	fresh := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	defer keepAlive.CloseIdleConnections()
	loads := []*loadCounter{{name: "http keep-alive"}, {name: "http fresh connections"}, {name: "echo"}}
	runLoad(&wg, stop, loads[0], httpOnce(keepAlive, "http://"+httpAddr+"/index.html", "home\n"))
	runLoad(&wg, stop, loads[1], httpOnce(fresh, "http://"+httpAddr+"/", "home\n"))
	runLoad(&wg, stop, loads[2], echoOnce("tcp", echoAddr))
	stopLoad := func() {
		close(stop)
		wg.Wait()
	}
	defer func() {
		select {
		case <-stop:
		default:
			stopLoad()
		}
	}()

	time.Sleep(200 * time.Millisecond)
	before := []int64{loads[0].ok.Load(), loads[1].ok.Load(), loads[2].ok.Load()}
	for i := range 4 {
		write([]string{"debug", "info"}[i%2], "")
		if err := sp.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(150 * time.Millisecond)
	}
	waitFor(t, 5*time.Second, "four reloads logged", func() bool {
		b, _ := os.ReadFile(sp.log.Name())
		return strings.Count(string(b), "msg=reloaded") == 4
	})
	write("debug", `idle-timeout = "5s"`, fmt.Sprintf("[tcpproxy]\nlisten = \"127.0.0.1:%s\"\nbackend = %q", freePort(t), echoAddr))
	rep := postReloadAt(t, admin, http.StatusOK)
	if !contains(rep.Applied, "log-level") || len(rep.RestartRequired) != 2 ||
		!strings.HasPrefix(rep.RestartRequired[0], "http.idle-timeout (running with \"1m0s\", file says \"5s\")") ||
		rep.RestartRequired[1] != "[tcpproxy] (added)" {
		t.Errorf("reload report: %+v", rep)
	}
	writeFile(t, config, "loops = = 2\n[http]\n")
	if rep := postReloadAt(t, admin, http.StatusUnprocessableEntity); !strings.Contains(rep.Error, "serve.toml:1") || len(rep.Applied) != 0 {
		t.Errorf("broken file: %+v, want an error with its line and nothing applied", rep)
	}
	write("info", "")
	time.Sleep(200 * time.Millisecond)
	for i, l := range loads {
		if l.ok.Load() == before[i] {
			t.Errorf("%s made no progress during the reloads", l.name)
		}
	}
	stopLoad()
	for _, l := range loads {
		l.check(t)
	}

	// One registry, every module's series labelled with its name.
	m := (&opsProxy{admin: admin}).scrape(t)
	for _, mod := range []string{"http", "echo"} {
		if m.value("scalestack_client_connections_accepted_total", "module", mod) == 0 {
			t.Errorf("no accepted connections counted for module %q", mod)
		}
	}
	if m.value("scalestack_http_requests_total", "module", "http") == 0 {
		t.Errorf("scalestack_http_requests_total{module=\"http\"} missing")
	}
	code, body := httpGet(t, "http://"+admin+"/status")
	var st struct {
		Modules []struct{ Module, Kind string }
	}
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil || len(st.Modules) != 2 || st.Modules[0].Module != "http" || st.Modules[1].Kind != "echo" {
		t.Errorf("/status: %d %v %s", code, err, body)
	}

	// Drain.
	idle, err := net.Dial("tcp", httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	_ = idle.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := idle.Write([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if resp, err := http.ReadResponse(bufio.NewReader(idle), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("idle connection's request: %v", err)
	}
	busy, err := net.Dial("tcp", httpAddr)
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
	got := make([]byte, 1<<20)
	if _, err := io.ReadFull(resp.Body, got); err != nil {
		t.Fatal(err)
	}
	echoConn, err := net.Dial("tcp", echoAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer echoConn.Close()
	if err := roundTripOn(echoConn, []byte("before\n"), time.Now().Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	// The admin endpoint's shutdown waits up to 2 s for this test's
	// connections to it; without them the process exits as soon as its
	// modules have drained.
	http.DefaultClient.CloseIdleConnections()

	if err := sp.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	signalled := time.Now()
	if _, err := idle.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("idle keep-alive connection after SIGTERM: %v, want EOF", err)
	}
	if took := time.Since(signalled); took > 2*time.Second {
		t.Errorf("idle connection closed %v after SIGTERM, want at once", took)
	}
	for _, addr := range []string{httpAddr, echoAddr} {
		waitFor(t, 2*time.Second, addr+" refusing connections", func() bool {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return true
			}
			c.Close()
			return false
		})
	}
	if err := roundTripOn(echoConn, []byte("during the drain\n"), time.Now().Add(5*time.Second)); err != nil {
		t.Errorf("echo client after SIGTERM: %v", err)
	}
	for len(got) < len(big) {
		buf := make([]byte, 4<<20)
		n, err := io.ReadFull(resp.Body, buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !bytes.Equal(got, big) {
		t.Fatalf("download after SIGTERM: %d of %d bytes", len(got), len(big))
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after the download: %v, want EOF", err)
	}
	busy.Close() // the server's close waits for ours (or a linger timeout)
	// The http module has drained; the echo module still serves its client.
	time.Sleep(time.Second)
	if err := roundTripOn(echoConn, []byte("after http drained\n"), time.Now().Add(5*time.Second)); err != nil {
		t.Errorf("echo client after the http module drained: %v", err)
	}
	select {
	case <-sp.done:
		t.Fatal("serve exited while its echo client was still connected")
	default:
	}
	echoConn.Close()
	left := time.Now()
	sp.waitExit(t, 5*time.Second)
	t.Logf("exited %v after the last client left (shutdown timeout 20s)", time.Since(left).Round(time.Millisecond))
}

// TestServeUpgradeTwoModules hands an http and an echo module over to a
// successor whose file lists them in the other order, under clients that
// open a fresh connection for every exchange: not one may fail, and each
// module must get the sockets of its own address.
func TestServeUpgradeTwoModules(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "index.html"), "home\n")
	httpAddr, echoAddr := "127.0.0.1:"+freePort(t), "127.0.0.1:"+freePort(t)
	top := fmt.Sprintf("loops = 2\nshutdown-timeout = \"2s\"\nupgrade-socket = %q", filepath.Join(dir, "upgrade.sock"))
	httpSection := fmt.Sprintf("[http]\nlisten = %q\nroot = %q", httpAddr, dir)
	echoSection := fmt.Sprintf("[echo]\nlisten = %q", echoAddr)
	oldConfig, newConfig := filepath.Join(dir, "old.toml"), filepath.Join(dir, "new.toml")
	writeFile(t, oldConfig, serveFile(top, httpSection, echoSection))
	writeFile(t, newConfig, serveFile(top, echoSection, httpSection))
	old := startServe(t, bin, oldConfig, 2)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	fresh := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	loads := []*loadCounter{{name: "http"}, {name: "echo"}}
	runLoad(&wg, stop, loads[0], httpOnce(fresh, "http://"+httpAddr+"/", "home\n"))
	runLoad(&wg, stop, loads[1], echoOnce("tcp", echoAddr))
	time.Sleep(300 * time.Millisecond)
	successor := startServe(t, bin, newConfig, 2)
	old.waitExit(t, 10*time.Second)
	before := []int64{loads[0].ok.Load(), loads[1].ok.Load()}
	time.Sleep(300 * time.Millisecond) // the successor alone serves
	close(stop)
	wg.Wait()
	for i, l := range loads {
		l.check(t)
		if l.ok.Load() == before[i] {
			t.Errorf("%s: no exchange after the hand-over", l.name)
		}
	}
	b, _ := os.ReadFile(successor.log.Name())
	if !strings.Contains(string(b), "inherited listening sockets") || strings.Contains(string(b), "connections waiting there are dropped") {
		t.Errorf("successor's log:\n%s", b)
	}
	_ = successor.cmd.Process.Signal(syscall.SIGTERM)
	successor.waitExit(t, 5*time.Second)
}

// TestServeMySQLProxyAndHTTP runs mysqlproxy and http in one process in
// front of the test MariaDB, under continuous queries and requests: a
// reload that adds an account lets it log in, one with a broken users file
// fails naming the module and changes nothing, neither disturbs a query or
// a request. Then SIGTERM: both stop accepting, an idle HTTP connection is
// closed, a MySQL session in a transaction keeps being served until it
// commits and leaves, and the process exits.
func TestServeMySQLProxyAndHTTP(t *testing.T) {
	env := testutil.MySQL(t)
	bin := buildBinary(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "index.html"), "home\n")
	users := filepath.Join(dir, "users")
	writeFile(t, users, mysqlproxy.UserLine(opsUser, []byte(opsPassword))+"\n")
	mysqlAddr, httpAddr, admin := "127.0.0.1:"+freePort(t), "127.0.0.1:"+freePort(t), "127.0.0.1:"+freePort(t)
	config := filepath.Join(dir, "serve.toml")
	writeFile(t, config, serveFile(
		fmt.Sprintf("loops = 2\nadmin = %q\nshutdown-timeout = \"20s\"", admin),
		fmt.Sprintf("[mysqlproxy]\nlisten = %q\nbackend = %q\nbackend-user = %q\nbackend-password-file = %q\nusers = %q\nbackend-conns = 4\nbackend-identity = \"service\"",
			mysqlAddr, env.Addr, env.User, env.PasswordFile, users),
		fmt.Sprintf("[http]\nlisten = %q\nroot = %q", httpAddr, dir)))
	sp := startServe(t, bin, config, 2)
	op := &opsProxy{addr: mysqlAddr, admin: admin, env: env}
	op.waitReady(t, 10*time.Second)

	db := op.db(t, opsUser, opsPassword)
	db.SetMaxOpenConns(4)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	keepAlive := &http.Client{Timeout: 5 * time.Second}
	defer keepAlive.CloseIdleConnections()
	loads := []*loadCounter{{name: "mysql queries"}, {name: "mysql queries 2"}, {name: "http"}}
	query := func() error {
		var n int
		if err := db.QueryRow("SELECT 1 + 1").Scan(&n); err != nil {
			return err
		}
		if n != 2 {
			return fmt.Errorf("SELECT 1 + 1 = %d", n)
		}
		return nil
	}
	runLoad(&wg, stop, loads[0], query)
	runLoad(&wg, stop, loads[1], query)
	runLoad(&wg, stop, loads[2], httpOnce(keepAlive, "http://"+httpAddr+"/", "home\n"))
	time.Sleep(200 * time.Millisecond)

	writeFile(t, users, mysqlproxy.UserLine(opsUser, []byte(opsPassword))+"\n"+mysqlproxy.UserLine("bob", []byte("pw"))+"\n")
	if err := sp.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// Each login on a pool of its own, closed at once: the drain below
	// waits for every client to leave.
	pingAs := func(user, password string) error {
		db := op.db(t, user, password)
		defer db.Close()
		return db.Ping()
	}
	waitFor(t, 5*time.Second, "bob, added by SIGHUP, logging in", func() bool {
		return pingAs("bob", "pw") == nil
	})
	if rep := postReloadAt(t, admin, http.StatusOK); !contains(rep.Applied, "mysqlproxy.users") {
		t.Errorf("reload report: %+v, want mysqlproxy.users applied", rep)
	}
	writeFile(t, users, "not a users line\n")
	if rep := postReloadAt(t, admin, http.StatusUnprocessableEntity); !strings.Contains(rep.Error, "[mysqlproxy]: --users") {
		t.Errorf("broken users file: %+v, want an error naming [mysqlproxy] and --users", rep)
	}
	if err := pingAs("bob", "pw"); err != nil {
		t.Errorf("bob after a failed reload: %v", err)
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	for _, l := range loads {
		l.check(t)
	}
	m := op.scrape(t)
	if m.value("scalestack_mysqlproxy_questions_total", "module", "mysqlproxy") == 0 || m.value("scalestack_http_requests_total", "module", "http") == 0 {
		t.Errorf("module metrics missing: questions %v, http requests %v",
			m.value("scalestack_mysqlproxy_questions_total", "module", "mysqlproxy"), m.value("scalestack_http_requests_total", "module", "http"))
	}
	db.Close()

	// Drain.
	idle, err := net.Dial("tcp", httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	_ = idle.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := idle.Write([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if resp, err := http.ReadResponse(bufio.NewReader(idle), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("idle connection's request: %v", err)
	}
	ctx := context.Background()
	txDB := op.db(t, opsUser, opsPassword)
	sess, err := txDB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := sess.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if _, err := idle.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("idle keep-alive connection after SIGTERM: %v, want EOF", err)
	}
	for _, addr := range []string{httpAddr, mysqlAddr} {
		waitFor(t, 2*time.Second, addr+" refusing connections", func() bool {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return true
			}
			c.Close()
			return false
		})
	}
	time.Sleep(300 * time.Millisecond)
	var n int
	if err := tx.QueryRow("SELECT 40 + 2").Scan(&n); err != nil || n != 42 {
		t.Fatalf("query in a transaction during the drain: %d, %v", n, err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("commit during the drain: %v", err)
	}
	sess.Close()
	txDB.Close()
	left := time.Now()
	sp.waitExit(t, 10*time.Second)
	t.Logf("exited %v after the last client left (shutdown timeout 20s)", time.Since(left).Round(time.Millisecond))
}

// TestSampleServeConfig checks that dist/serve.toml passes check-config
// (its paths pointed at files that exist) with every section a module.
func TestSampleServeConfig(t *testing.T) {
	sample, err := os.ReadFile(filepath.Join("dist", "serve.toml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "users"), "app:native=:sha2=\n")
	writeFile(t, filepath.Join(dir, "backend-password"), "pw\n")
	text := strings.ReplaceAll(strings.ReplaceAll(string(sample), "/etc/scalestack/", dir+"/"), "/srv/www", dir)
	cfg := filepath.Join(dir, "serve.toml")
	writeFile(t, cfg, text)
	var out, errb bytes.Buffer
	if code := run([]string{"check-config", "--command", "serve", cfg}, &out, &errb); code != 0 || !strings.Contains(out.String(), "ok (4 modules)") {
		t.Fatalf("check-config on the sample: exit %d: %s%s", code, out.String(), errb.String())
	}
}

func TestParseHandover(t *testing.T) {
	fds := []int{10, 11, 12}
	tests := []struct {
		name, msg string
		want      string // sets as addr=fds; empty with wantErr
		wantErr   string
	}{
		{name: "one module's plain message", msg: "listeners\n", want: "=[10 11 12]"},
		{name: "labelled", msg: `listeners [{"addr":"tcp:127.0.0.1:1","fds":2},{"addr":"unix:/s","fds":1}]` + "\n", want: "tcp:127.0.0.1:1=[10 11] unix:/s=[12]"},
		{name: "labels name fewer sockets", msg: `listeners [{"addr":"a","fds":2}]` + "\n", wantErr: "labels name 2 sockets, the message carries 3"},
		{name: "labels name more sockets", msg: `listeners [{"addr":"a","fds":2},{"addr":"b","fds":2}]` + "\n", wantErr: "the message carries 3"},
		{name: "a label of no socket", msg: `listeners [{"addr":"a","fds":0}]` + "\n", wantErr: "the message carries 3"},
		{name: "not JSON", msg: "listeners {\n", wantErr: "listener labels"},
		{name: "something else", msg: "hello\n", wantErr: "unexpected message"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sets, err := parseHandover([]byte(tt.msg), fds)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range sets {
				got = append(got, fmt.Sprintf("%s=%v", s.addr, s.fds))
			}
			if strings.Join(got, " ") != tt.want {
				t.Fatalf("sets %q, want %q", got, tt.want)
			}
		})
	}
}
