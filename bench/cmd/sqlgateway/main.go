// Command sqlgateway measures the cost of a point select through the HTTP
// -> SQL gateway (`scalestack http --sql-path`) against go-sql-driver
// straight to the server, side by side in one run: rounds alternate
// between the two, each for -seconds with -conns concurrent clients, and
// the CPU time that the gateway process, the MariaDB server and this
// client spent is read from /proc and getrusage around each round.
//
// Phases: "driver" is database/sql's QueryRow with an argument (as most Go
// programs run queries: go-sql-driver prepares, executes and closes the
// statement, three round trips); "driver-stmt" reuses one *sql.Stmt (one
// round trip, like the gateway, which keeps the statement prepared on each
// backend); "http" POSTs {"sql", "params"} with keep-alive connections.
//
// It reads the server from the SCALESTACK_MYSQL_* variables of
// scripts/mariadb.sh's env file and runs -bin itself. Benchmark use only.
package main

import (
	"bytes"
	"context"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/scalestack/scalestack/pool/mysqlproxy"
)

func main() {
	bin := flag.String("bin", "bin/scalestack", "scalestack binary")
	conns := flag.Int("conns", 8, "concurrent clients")
	seconds := flag.Float64("seconds", 4, "length of each round")
	rounds := flag.Int("rounds", 3, "rounds of each phase")
	backendConns := flag.Int("backend-conns", 4, "the gateway's --sql-backend-conns")
	flag.Parse()
	env := func(k string) string { return os.Getenv("SCALESTACK_MYSQL_" + k) }
	addr, db := env("ADDR"), env("DATABASE")
	mysqldPID, _ := strconv.Atoi(env("PID"))
	if addr == "" || mysqldPID == 0 {
		log.Fatal("source the env file of scripts/mariadb.sh first")
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = env("TEST_USER"), env("TEST_PASSWORD"), "tcp", addr, db
	direct, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		log.Fatal(err)
	}
	direct.SetMaxIdleConns(*conns)
	for _, q := range []string{"DROP TABLE IF EXISTS bench_point",
		"CREATE TABLE bench_point (id INT PRIMARY KEY, v VARCHAR(64) NOT NULL)",
		"INSERT INTO bench_point SELECT seq, CONCAT('value-', seq) FROM seq_1_to_10000"} {
		if _, err := direct.Exec(q); err != nil {
			log.Fatalf("%s: %v", q, err)
		}
	}
	defer direct.Exec("DROP TABLE IF EXISTS bench_point")

	dir, _ := os.MkdirTemp("", "sqlgateway")
	defer os.RemoveAll(dir)
	users := filepath.Join(dir, "users")
	// The bench's account exists only in this users file: it is mapped to
	// the service account (the go-sql-driver side logs in as that too).
	if err := os.WriteFile(users, []byte(mysqlproxy.UserLine("bench", []byte("pw"))+":backend="+env("USER")+"\n"), 0o600); err != nil {
		log.Fatal(err)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	listen := l.Addr().String()
	l.Close()
	gw := exec.Command(*bin, "http", "--loops", "1", "--listen", listen, "--sql-path", "/v1/query",
		"--sql-backend", addr, "--sql-backend-user", env("USER"), "--sql-backend-password-file", env("PASSWORD_FILE"),
		"--sql-backend-conns", strconv.Itoa(*backendConns), "--sql-users", users, "--sql-schema", db)
	gw.Stderr = os.Stderr
	if err := gw.Start(); err != nil {
		log.Fatal(err)
	}
	defer gw.Process.Kill()
	url := "http://" + listen + "/v1/query"
	tr := &http.Transport{MaxIdleConnsPerHost: *conns}
	client := &http.Client{Transport: tr}
	httpQuery := func(id int) error {
		body := fmt.Appendf(nil, `{"sql":"SELECT v FROM bench_point WHERE id = ?","params":[%d]}`, id)
		req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
		req.SetBasicAuth("bench", "pw")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != 200 || !bytes.Contains(b, fmt.Appendf(nil, `"value-%d"`, id)) {
			return fmt.Errorf("status %d: %s", resp.StatusCode, b)
		}
		return nil
	}
	for deadline := time.Now().Add(10 * time.Second); httpQuery(1) != nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			log.Fatalf("gateway does not answer: %v", httpQuery(1))
		}
	}
	stmt, err := direct.Prepare("SELECT v FROM bench_point WHERE id = ?")
	if err != nil {
		log.Fatal(err)
	}
	phases := map[string]func(int) error{
		"http": httpQuery,
		"driver": func(id int) error {
			var v string
			return direct.QueryRowContext(context.Background(), "SELECT v FROM bench_point WHERE id = ?", id).Scan(&v)
		},
		"driver-stmt": func(id int) error {
			var v string
			return stmt.QueryRow(id).Scan(&v)
		},
	}
	order := []string{"driver", "driver-stmt", "http"}
	type sample struct{ qps, gwUs, dbUs, clientUs float64 }
	results := map[string][]sample{}
	for r := 0; r < *rounds; r++ {
		for _, name := range order {
			fn := phases[name]
			var n, fails atomic.Int64
			gw0, db0, cl0 := procCPU(gw.Process.Pid), procCPU(mysqldPID), selfCPU()
			start := time.Now()
			stop := start.Add(time.Duration(*seconds * float64(time.Second)))
			var wg sync.WaitGroup
			for range *conns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for time.Now().Before(stop) {
						if err := fn(1 + rand.IntN(10000)); err != nil {
							if fails.Add(1) == 1 {
								log.Printf("%s: %v", name, err)
							}
							continue
						}
						n.Add(1)
					}
				}()
			}
			wg.Wait()
			el := time.Since(start).Seconds()
			q := float64(n.Load())
			s := sample{qps: q / el, gwUs: (procCPU(gw.Process.Pid) - gw0) / q * 1e6,
				dbUs: (procCPU(mysqldPID) - db0) / q * 1e6, clientUs: (selfCPU() - cl0) / q * 1e6}
			if name != "http" {
				s.gwUs = 0
			}
			results[name] = append(results[name], s)
			fmt.Fprintf(os.Stderr, "round %d %-11s %8.0f q/s  gateway %6.1f µs/q  mariadb %6.1f µs/q  client %6.1f µs/q  failures %d\n",
				r+1, name, s.qps, s.gwUs, s.dbUs, s.clientUs, fails.Load())
		}
	}
	med := func(xs []sample, f func(sample) float64) float64 {
		v := make([]float64, len(xs))
		for i, x := range xs {
			v[i] = f(x)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	fmt.Printf("| phase | queries/s | gateway CPU µs/query | MariaDB CPU µs/query | client CPU µs/query |\n|---|---|---|---|---|\n")
	for _, name := range order {
		xs := results[name]
		fmt.Printf("| %s | %.0f | %.1f | %.1f | %.1f |\n", name, med(xs, func(s sample) float64 { return s.qps }),
			med(xs, func(s sample) float64 { return s.gwUs }), med(xs, func(s sample) float64 { return s.dbUs }),
			med(xs, func(s sample) float64 { return s.clientUs }))
	}
}

// procCPU is a process's user+system CPU seconds from /proc (clock ticks
// of 1/100 s).
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		log.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}

func selfCPU() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
