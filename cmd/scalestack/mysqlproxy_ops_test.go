package main

import (
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/scalestack/scalestack/internal/testutil"
	"github.com/scalestack/scalestack/pool/mysqlproxy"
)

// opsProxy is a mysqlproxy subprocess with its admin endpoint, in front of
// the shared test MariaDB.
type opsProxy struct {
	cmd       *exec.Cmd
	log       *os.File
	addr      string // client listener host:port
	admin     string // admin host:port
	usersFile string
	config    string
	env       testutil.Env
}

const (
	opsUser     = "alice"
	opsPassword = "secret"
)

// startOpsProxy runs `scalestack mysqlproxy` with the given extra settings
// written to a --config file (so reload tests can edit it).
func startOpsProxy(t *testing.T, settings map[string]string) *opsProxy {
	t.Helper()
	env := testutil.MySQL(t)
	dir := t.TempDir()
	op := &opsProxy{
		env:       env,
		addr:      "127.0.0.1:" + freePort(t),
		admin:     "127.0.0.1:" + freePort(t),
		usersFile: filepath.Join(dir, "users"),
		config:    filepath.Join(dir, "mysqlproxy.toml"),
	}
	writeFile(t, op.usersFile, mysqlproxy.UserLine(opsUser, []byte(opsPassword))+"\n")
	base := map[string]string{
		"listen":                fmt.Sprintf("%q", op.addr),
		"admin":                 fmt.Sprintf("%q", op.admin),
		"backend":               fmt.Sprintf("%q", env.Addr),
		"backend-user":          fmt.Sprintf("%q", env.User),
		"backend-password-file": fmt.Sprintf("%q", env.PasswordFile),
		"backend-identity":      `"service"`, // opsUser exists only at the proxy
		"users":                 fmt.Sprintf("%q", op.usersFile),
		"loops":                 "2",
		"shutdown-timeout":      `"2s"`,
	}
	for k, v := range settings {
		base[k] = v
	}
	op.writeConfig(t, base)
	op.cmd, op.log = startProcess(t, buildBinary(t), "mysqlproxy", "--config", op.config)
	t.Cleanup(func() {
		_ = op.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- op.cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = op.cmd.Process.Kill()
			<-done
			t.Errorf("proxy did not stop on SIGTERM")
		}
		if t.Failed() {
			b, _ := os.ReadFile(op.log.Name())
			t.Logf("proxy log:\n%s", b)
		}
	})
	op.waitReady(t, 10*time.Second)
	return op
}

func (op *opsProxy) writeConfig(t *testing.T, settings map[string]string) {
	t.Helper()
	var b strings.Builder
	for k, v := range settings {
		fmt.Fprintf(&b, "%s = %s\n", k, v)
	}
	writeFile(t, op.config, b.String())
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	// Write beside and rename, as an operator's tools do, so a reload never
	// reads half a file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func (op *opsProxy) waitReady(t *testing.T, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		code, body := httpGet(t, "http://"+op.admin+"/readyz")
		if code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d after %v: %s", code, limit, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (op *opsProxy) db(t *testing.T, user, password string) *sql.DB {
	t.Helper()
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = user, password, "tcp", op.addr, op.env.Database
	cfg.Timeout = 5 * time.Second
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// metrics is one parsed scrape.
type metrics map[string]*dto.MetricFamily

func (op *opsProxy) scrape(t *testing.T) metrics {
	t.Helper()
	m, err := op.tryScrape()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// tryScrape is scrape for goroutines other than the test's.
func (op *opsProxy) tryScrape() (metrics, error) {
	resp, err := http.Get("http://" + op.admin + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("scrape: %w", err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parse /metrics: %w", err)
	}
	return mf, nil
}

// value returns the sample of family name whose labels include want (a
// counter, gauge or untyped value; for a histogram its count). A labelled
// family is exported only once one of its series moved, so a missing one
// reads 0.
func (m metrics) value(name string, want ...string) float64 {
	f := m[name]
	if f == nil {
		return 0
	}
next:
	for _, s := range f.Metric {
		labels := map[string]string{}
		for _, l := range s.Label {
			labels[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(want); i += 2 {
			if labels[want[i]] != want[i+1] {
				continue next
			}
		}
		switch {
		case s.Counter != nil:
			return s.Counter.GetValue()
		case s.Gauge != nil:
			return s.Gauge.GetValue()
		case s.Histogram != nil:
			return float64(s.Histogram.GetSampleCount())
		}
	}
	return 0 // a labelled series not exported yet has not moved
}

// TestMetricsFollowTraffic runs traffic through a proxy with one backend
// connection and checks, from /metrics scraped while and after it runs,
// that the counters move as the traffic implies.
func TestMetricsFollowTraffic(t *testing.T) {
	op := startOpsProxy(t, map[string]string{"backend-conns": "1", "queue-timeout": `"10s"`, "health-interval": `"100ms"`,
		"per-user-metrics": "true"})
	before := op.scrape(t)

	const clients, perClient = 6, 15
	const sleepQuery = "SELECT SLEEP(0.002)"
	stopScraping := make(chan struct{})
	scraped := make(chan int)
	go func() {
		// Scrapes during traffic: counters must never go backwards.
		n, last := 0, 0.0
		for {
			select {
			case <-stopScraping:
				scraped <- n
				return
			default:
			}
			m, err := op.tryScrape()
			if err != nil {
				t.Error(err)
				continue
			}
			v := m.value("scalestack_mysqlproxy_commands_total", "command", "COM_QUERY")
			if v < last {
				t.Errorf("commands_total went back from %v to %v", last, v)
			}
			last = v
			n++
			time.Sleep(5 * time.Millisecond)
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db := op.db(t, opsUser, opsPassword)
			db.SetMaxOpenConns(1)
			for j := 0; j < perClient; j++ {
				if _, err := db.Exec(sleepQuery); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("query through the proxy: %v", err)
	}

	db := op.db(t, opsUser, opsPassword)
	db.SetMaxOpenConns(1)
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec("SELECT * FROM no_such_table_for_metrics")
	if mysqlErrNumber(err) != 1146 {
		t.Fatalf("query of a missing table: %v, want ERR 1146", err)
	}
	stmt, err := db.Prepare("SELECT ? + 1")
	if err != nil {
		t.Fatal(err)
	}
	var two int
	if err := stmt.QueryRow(1).Scan(&two); err != nil || two != 2 {
		t.Fatalf("prepared statement: %v %d", err, two)
	}
	close(stopScraping)
	if n := <-scraped; n == 0 {
		t.Fatal("no scrape completed while traffic ran")
	}
	// Let a health interval pass with the backend idle.
	time.Sleep(300 * time.Millisecond)
	after := op.scrape(t)
	for _, name := range []string{"scalestack_mysqlproxy_commands_total", "scalestack_mysqlproxy_command_duration_seconds",
		"scalestack_mysqlproxy_queue_wait_seconds", "scalestack_mysqlproxy_errors_total", "scalestack_mysqlproxy_pins_total",
		"scalestack_mysqlproxy_user_commands_total", "scalestack_mysqlproxy_backend_connections"} {
		if after[name] == nil {
			t.Errorf("no metric %s", name)
		}
	}
	delta := func(name string, labels ...string) float64 {
		return after.value(name, labels...) - before.value(name, labels...)
	}

	queries := float64(clients*perClient + 3) // + SELECT 1, the missing table, and the driver's own none
	if d := delta("scalestack_mysqlproxy_commands_total", "command", "COM_QUERY"); d < queries {
		t.Errorf("commands_total{COM_QUERY} moved by %v, want at least %v", d, queries)
	}
	if d := delta("scalestack_mysqlproxy_commands_total", "command", "COM_STMT_EXECUTE"); d != 1 {
		t.Errorf("commands_total{COM_STMT_EXECUTE} moved by %v, want 1", d)
	}
	if d := delta("scalestack_mysqlproxy_command_duration_seconds"); d < queries {
		t.Errorf("command_duration_seconds count moved by %v, want at least %v", d, queries)
	}
	// Sleeping queries take at least 2 ms each: the sum must show it.
	sumBefore := before["scalestack_mysqlproxy_command_duration_seconds"].Metric[0].Histogram.GetSampleSum()
	sumAfter := after["scalestack_mysqlproxy_command_duration_seconds"].Metric[0].Histogram.GetSampleSum()
	if s := sumAfter - sumBefore; s < float64(clients*perClient)*0.002 {
		t.Errorf("command_duration_seconds sum moved by %vs, want at least %vs", s, float64(clients*perClient)*0.002)
	}
	if d := delta("scalestack_mysqlproxy_queue_wait_seconds"); d < 1 {
		t.Errorf("queue_wait_seconds count moved by %v with %d clients on 1 backend", d, clients)
	}
	if d := delta("scalestack_mysqlproxy_queue_waits_total"); d < 1 {
		t.Errorf("queue_waits_total moved by %v", d)
	}
	if d := delta("scalestack_mysqlproxy_pins_total", "reason", "transaction"); d < 1 {
		t.Errorf("pins_total{transaction} moved by %v after a BEGIN", d)
	}
	if d := delta("scalestack_mysqlproxy_errors_total", "code", "1146"); d != 1 {
		t.Errorf("errors_total{1146} moved by %v, want 1", d)
	}
	minIn := queries * float64(4+1+len(sleepQuery)) // each COM_QUERY is at least a header, the byte and the text
	for _, name := range []string{"scalestack_mysqlproxy_client_received_bytes_total", "scalestack_mysqlproxy_backend_sent_bytes_total"} {
		if d := delta(name); d < minIn {
			t.Errorf("%s moved by %v, want at least %v", name, d, minIn)
		}
	}
	minOut := queries * 11 // an OK or a one-row result is at least this long
	for _, name := range []string{"scalestack_mysqlproxy_client_sent_bytes_total", "scalestack_mysqlproxy_backend_received_bytes_total"} {
		if d := delta(name); d < minOut {
			t.Errorf("%s moved by %v, want at least %v", name, d, minOut)
		}
	}
	if v := after.value("scalestack_mysqlproxy_backend_prepared_statements"); v != 1 {
		t.Errorf("backend_prepared_statements = %v, want 1", v)
	}
	if d := delta("scalestack_mysqlproxy_user_commands_total", "user", opsUser); d < queries {
		t.Errorf("user_commands_total{%s} moved by %v, want at least %v", opsUser, d, queries)
	}
	if v := after.value("scalestack_mysqlproxy_user_connections", "user", opsUser); v < 1 {
		t.Errorf("user_connections{%s} = %v with a connection open", opsUser, v)
	}
	if v := after.value("scalestack_mysqlproxy_backend_connections", "state", "idle"); v != 1 {
		t.Errorf("backend_connections{idle} = %v, want 1", v)
	}
	if v := after.value("scalestack_mysqlproxy_backend_up"); v != 1 {
		t.Errorf("backend_up = %v", v)
	}
	if d := delta("scalestack_mysqlproxy_backend_health_checks_total"); d < 1 {
		t.Errorf("backend_health_checks_total moved by %v with the backend idle past --health-interval", d)
	}
	if f := after["scalestack_loop_busy_seconds_total"]; f == nil || len(f.Metric) != 2 {
		t.Errorf("scalestack_loop_busy_seconds_total: %v", f)
	}
	for name, f := range after {
		if f.GetHelp() == "" || (strings.HasPrefix(name, "scalestack_mysqlproxy_") && strings.HasPrefix(f.GetHelp(), "mysqlproxy ")) {
			t.Errorf("%s has no real help text: %q", name, f.GetHelp())
		}
	}
}

func mysqlErrNumber(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}
