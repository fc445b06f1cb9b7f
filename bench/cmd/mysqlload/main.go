// Command mysqlload opens many MySQL client connections to a loopback
// server (the Scale Stack proxy, or MariaDB directly) and keeps a chosen
// number of them busy, for what sysbench cannot do on a small machine:
// thousands of mostly idle clients. It connects every client (mysql_native
// password through go-sql-driver/mysql, the ecosystem's standard client),
// prints "holding N" once all are connected and have each run one
// statement, then waits -settle (an observer reads the server's memory
// then, with every client idle), runs the active clients for -duration,
// and prints one JSON line: statements per second and the latency
// distribution of the active clients' statements. Several processes can
// share a larger client count when one may not open enough descriptors.
// Benchmark use only; it connects to loopback addresses only.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/bits"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/scalestack/scalestack/bench/loadgen"
)

// Report is the JSON line mysqlload prints at the end.
type Report struct {
	Conns      int     `json:"conns"`
	Active     int     `json:"active"`
	ConnectSec float64 `json:"connect_s"` // time to connect every client
	Statements uint64  `json:"statements"`
	Seconds    float64 `json:"seconds"`
	PerSec     float64 `json:"statements_per_sec"`
	P50Micros  float64 `json:"p50_us"`
	P99Micros  float64 `json:"p99_us"`
	P999Micros float64 `json:"p999_us"`
	MaxMicros  float64 `json:"max_us"`
	Errors     uint64  `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	// Buckets is the latency histogram: statements per power-of-two
	// bucket of microseconds (key: the bucket's upper bound).
	Buckets map[string]uint64 `json:"buckets_us"`
}

type config struct {
	addr, user, password, db, query string
	conns, active, connectWorkers   int
	settle, duration, timeout       time.Duration
}

func main() {
	var c config
	flag.StringVar(&c.addr, "addr", "127.0.0.1:6033", "server: loopback host:port")
	flag.StringVar(&c.user, "user", "test_native", "client user")
	flag.StringVar(&c.password, "password", "", "client password (or $MYSQLLOAD_PASSWORD)")
	flag.StringVar(&c.db, "db", "", "default database (empty: none)")
	flag.StringVar(&c.query, "query", "SELECT 1", "statement the active clients run in a loop")
	flag.IntVar(&c.conns, "conns", 1000, "client connections this process opens and holds")
	flag.IntVar(&c.active, "active", 10, "how many of them run statements back to back during -duration (the rest stay idle)")
	flag.IntVar(&c.connectWorkers, "connect-workers", 64, "connections opened in parallel")
	flag.DurationVar(&c.settle, "settle", 2*time.Second, "all clients idle between \"holding\" and the active phase")
	flag.DurationVar(&c.duration, "duration", 10*time.Second, "active phase (at most 10m)")
	flag.DurationVar(&c.timeout, "timeout", 3*time.Minute, "limit for connecting every client")
	flag.Parse()
	if c.password == "" {
		c.password = os.Getenv("MYSQLLOAD_PASSWORD")
	}
	if err := check(c); err != nil {
		log.Fatalf("mysqlload: %v", err)
	}
	rep, err := run(c)
	if err != nil {
		log.Fatalf("mysqlload: %v", err)
	}
	if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil {
		log.Fatal(err)
	}
}

func check(c config) error {
	host, _, err := net.SplitHostPort(c.addr)
	if err != nil {
		return fmt.Errorf("-addr %q: %w", c.addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr %q: only loopback addresses are allowed", c.addr)
	}
	switch {
	case c.conns < 1 || c.active < 0 || c.active > c.conns:
		return fmt.Errorf("want 1 <= -conns and 0 <= -active <= -conns (got %d and %d)", c.conns, c.active)
	case c.duration > 10*time.Minute:
		return fmt.Errorf("-duration %v: at most 10m", c.duration)
	case c.connectWorkers < 1:
		return fmt.Errorf("-connect-workers must be positive")
	}
	return nil
}

func run(c config) (Report, error) {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = c.user, c.password, "tcp", c.addr, c.db
	cfg.Timeout = 30 * time.Second
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return Report{}, err
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	db.SetMaxIdleConns(c.conns) // every held client stays open
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)

	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	start := time.Now()
	conns, err := connectAll(ctx, db, c)
	if err != nil {
		return Report{}, err
	}
	defer func() {
		for _, cn := range conns {
			cn.Close()
		}
	}()
	connectTime := time.Since(start)
	fmt.Printf("holding %d\n", len(conns))
	time.Sleep(c.settle)

	stats := activePhase(conns[:c.active], c.query, c.duration)
	rep := Report{
		Conns: len(conns), Active: c.active, ConnectSec: connectTime.Seconds(),
		Statements: stats.hist.Count(), Seconds: stats.elapsed.Seconds(),
		P50Micros:  micros(stats.hist.Quantile(0.50)),
		P99Micros:  micros(stats.hist.Quantile(0.99)),
		P999Micros: micros(stats.hist.Quantile(0.999)),
		MaxMicros:  micros(stats.max),
		Errors:     stats.errors.Load(),
		Buckets:    stats.pow2.labelled(),
	}
	if rep.Seconds > 0 {
		rep.PerSec = float64(rep.Statements) / rep.Seconds
	}
	if e := stats.firstErr.Load(); e != nil {
		rep.FirstError = e.(error).Error()
	}
	return rep, nil
}

// connectAll opens c.conns clients, each proven with one statement so a
// client the server accepted but cannot serve counts as a failure here.
func connectAll(ctx context.Context, db *sql.DB, c config) ([]*sql.Conn, error) {
	conns := make([]*sql.Conn, c.conns)
	next := atomic.Int64{}
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range c.connectWorkers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= c.conns || firstErr.Load() != nil {
					return
				}
				cn, err := db.Conn(ctx)
				if err == nil {
					var one int
					if err = cn.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
						cn.Close()
					}
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, fmt.Errorf("client %d of %d: %w", i+1, c.conns, err))
					return
				}
				conns[i] = cn
			}
		})
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		for _, cn := range conns {
			if cn != nil {
				cn.Close()
			}
		}
		return nil, e.(error)
	}
	return conns, nil
}

type phaseStats struct {
	hist     loadgen.Histogram
	pow2     pow2Counts
	max      time.Duration
	elapsed  time.Duration
	errors   atomic.Uint64
	firstErr atomic.Value
}

// activePhase runs query back to back on each active client until the
// duration is over.
func activePhase(active []*sql.Conn, query string, d time.Duration) *phaseStats {
	st := &phaseStats{}
	if len(active) == 0 || d <= 0 {
		return st
	}
	ctx, cancel := context.WithTimeout(context.Background(), d+time.Minute)
	defer cancel()
	deadline := time.Now().Add(d)
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for _, cn := range active {
		wg.Go(func() {
			var h loadgen.Histogram
			var pow2 pow2Counts
			var max time.Duration
			var sink any
			for time.Now().Before(deadline) {
				t0 := time.Now()
				err := cn.QueryRowContext(ctx, query).Scan(&sink)
				took := time.Since(t0)
				if err != nil {
					if st.errors.Add(1) == 1 {
						st.firstErr.Store(err)
					}
					time.Sleep(10 * time.Millisecond) // not a busy loop on a broken client
					continue
				}
				h.Record(took)
				pow2.record(took)
				max = maxDuration(max, took)
			}
			mu.Lock()
			st.hist.Merge(&h)
			st.pow2.merge(&pow2)
			st.max = maxDuration(st.max, max)
			mu.Unlock()
		})
	}
	wg.Wait()
	st.elapsed = time.Since(start)
	return st
}

func maxDuration(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// pow2Counts counts statements by the power of two of microseconds at or
// above their latency: index e holds those in (2^(e-1), 2^e] µs.
type pow2Counts [64]uint64

func (c *pow2Counts) record(d time.Duration) {
	us := d.Microseconds()
	if us <= 1 {
		c[0]++
		return
	}
	c[bits.Len64(uint64(us-1))]++
}

func (c *pow2Counts) merge(o *pow2Counts) {
	for i, n := range o {
		c[i] += n
	}
}

// labelled keys the non-empty buckets by their bound ("≤64", "≤128", ...).
func (c *pow2Counts) labelled() map[string]uint64 {
	out := map[string]uint64{}
	for e, n := range c {
		if n > 0 {
			out[fmt.Sprintf("≤%d", uint64(1)<<e)] = n
		}
	}
	return out
}
