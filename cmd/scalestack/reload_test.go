package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scalestack/scalestack/internal/testutil"
	"github.com/scalestack/scalestack/pool/mysqlproxy"
)

// opsDatabase holds the sysbench table of the reload test, apart from the
// databases other packages' tests use at the same time.
const opsDatabase = "scalestack_ops"

func prepareOpsDatabase(t *testing.T, env testutil.Env) {
	t.Helper()
	root, err := sql.Open("mysql", env.RootDSN(""))
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	stmts := []string{"CREATE DATABASE IF NOT EXISTS " + opsDatabase}
	for _, host := range []string{"%", "localhost"} {
		stmts = append(stmts, fmt.Sprintf("GRANT ALL PRIVILEGES ON %s.* TO '%s'@'%s'", opsDatabase, env.User, host))
	}
	for _, s := range stmts {
		if _, err := root.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	conn := testutil.SysbenchConnArgs(env.Addr, env.RootUser, env.RootPassword, opsDatabase)
	table := []string{"--tables=1", "--table-size=1000"}
	testutil.Sysbench(t, append(append([]string{"oltp_point_select"}, append(conn, table...)...), "cleanup")...)
	testutil.Sysbench(t, append(append([]string{"oltp_point_select"}, append(conn, table...)...), "prepare")...)
}

// TestReloadUnderLoad runs sysbench with 256 threads through a proxy
// subprocess for 10 s while the users file and the log level are changed
// and reloaded ten times with SIGHUP, and requires zero errors; then it
// checks what the reloads did: the newest users file decides who may log
// in, sessions opened before stay, --max-clients applies to new clients,
// and a setting that needs a restart is reported by POST /reload.
func TestReloadUnderLoad(t *testing.T) {
	env := testutil.MySQL(t)
	prepareOpsDatabase(t, env)
	settings := map[string]string{"backend-conns": "8", "log-level": `"info"`}
	op := startOpsProxy(t, settings)
	full := func(k, v string) map[string]string {
		m := map[string]string{
			"listen": fmt.Sprintf("%q", op.addr), "admin": fmt.Sprintf("%q", op.admin), "backend": fmt.Sprintf("%q", env.Addr),
			"backend-user": fmt.Sprintf("%q", env.User), "backend-password-file": fmt.Sprintf("%q", env.PasswordFile),
			"users": fmt.Sprintf("%q", op.usersFile), "loops": "2", "shutdown-timeout": `"2s"`, "backend-identity": `"service"`,
		}
		for k, v := range settings {
			m[k] = v
		}
		if k != "" {
			m[k] = v
		}
		return m
	}
	early := op.db(t, opsUser, opsPassword)
	early.SetMaxOpenConns(1)
	if err := early.Ping(); err != nil {
		t.Fatal(err)
	}

	type sbResult struct {
		res testutil.SysbenchResult
		out string
		err error
	}
	done := make(chan sbResult, 1)
	go func() {
		args := append([]string{"oltp_point_select"}, testutil.SysbenchConnArgs(op.addr, opsUser, opsPassword, opsDatabase)...)
		args = append(args, "--tables=1", "--table-size=1000", "--threads=256", "--time=10", "--mysql-ignore-errors=all", "run")
		res, out, err := testutil.RunSysbench(context.Background(), args...)
		done <- sbResult{res, out, err}
	}()

	const reloads = 10
	lastUser := ""
	for i := 0; i < reloads; i++ {
		time.Sleep(800 * time.Millisecond)
		lastUser = fmt.Sprintf("bob%d", i)
		writeFile(t, op.usersFile, mysqlproxy.UserLine(opsUser, []byte(opsPassword))+"\n"+mysqlproxy.UserLine(lastUser, []byte("pw"))+"\n")
		level := []string{`"debug"`, `"info"`}[i%2]
		op.writeConfig(t, full("log-level", level))
		if err := op.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	sb := <-done
	if sb.err != nil {
		t.Fatalf("sysbench: %v\n%s", sb.err, sb.out)
	}
	if sb.res.Errors != 0 || sb.res.Reconnects != 0 || sb.res.Queries == 0 {
		t.Fatalf("sysbench through reloads: %d queries, %d errors, %d reconnects\n%s",
			sb.res.Queries, sb.res.Errors, sb.res.Reconnects, sb.out)
	}
	t.Logf("sysbench: %.0f queries/s, %d errors, with %d reloads", sb.res.QPS, sb.res.Errors, reloads)

	// The log level alternated debug/info and ended on info, so every
	// reload's "reloaded" line was written.
	waitFor(t, 5*time.Second, "ten reloads logged", func() bool {
		b, _ := os.ReadFile(op.log.Name())
		return strings.Count(string(b), "msg=reloaded") == reloads
	})
	if err := early.Ping(); err != nil {
		t.Fatalf("a session opened before the reloads: %v", err)
	}
	if err := op.db(t, lastUser, "pw").Ping(); err != nil {
		t.Fatalf("user %s from the last users file: %v", lastUser, err)
	}
	if err := op.db(t, "bob0", "pw").Ping(); mysqlErrNumber(err) != 1045 {
		t.Fatalf("user bob0, removed by a reload: %v, want ERR 1045", err)
	}

	// --max-clients applies to new clients; a setting that needs a restart
	// is reported, not ignored.
	op.writeConfig(t, full("max-clients", "1"))
	rep := postReload(t, op, http.StatusOK)
	if !contains(rep.Applied, "max-clients") {
		t.Fatalf("max-clients not applied: %+v", rep)
	}
	if err := op.db(t, opsUser, opsPassword).Ping(); mysqlErrNumber(err) != 1040 {
		t.Fatalf("second client with max-clients=1: %v, want ERR 1040", err)
	}
	if err := early.Ping(); err != nil {
		t.Fatalf("the client already connected when max-clients dropped: %v", err)
	}
	m := full("max-clients", "100")
	m["backend-conns"] = "9"
	op.writeConfig(t, m)
	rep = postReload(t, op, http.StatusOK)
	if len(rep.RestartRequired) != 1 || !strings.HasPrefix(rep.RestartRequired[0], "backend-conns") {
		t.Fatalf("changed backend-conns not reported as needing a restart: %+v", rep)
	}
	if err := op.db(t, opsUser, opsPassword).Ping(); err != nil {
		t.Fatalf("client after max-clients went back up: %v", err)
	}
	// A broken users file changes nothing and says why.
	writeFile(t, op.usersFile, "this is not a users line\n")
	rep = postReload(t, op, http.StatusUnprocessableEntity)
	if !strings.Contains(rep.Error, "users") {
		t.Fatalf("broken users file: %+v", rep)
	}
	if err := op.db(t, lastUser, "pw").Ping(); err != nil {
		t.Fatalf("user %s after a failed reload: %v", lastUser, err)
	}
}

func postReload(t *testing.T, op *opsProxy, wantStatus int) reloadReport {
	t.Helper()
	resp, err := http.Post("http://"+op.admin+"/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rep reloadReport
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		t.Fatalf("POST /reload: %v", err)
	}
	if resp.StatusCode != wantStatus {
		t.Fatalf("POST /reload: status %d, want %d: %+v", resp.StatusCode, wantStatus, rep)
	}
	return rep
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
