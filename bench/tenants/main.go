// Command tenants measures the MySQL proxy's tenants (issue 17): weighted
// fair queueing between tenants against plain FIFO, on a real MariaDB
// (scripts/mariadb.sh start; source its env file first).
//
//   - noisy: N=8 backends; tenant A has 64 clients running SELECT SLEEP(0.02)
//     back to back (alone it would hold every backend), tenant B sends SELECT
//     1 open-loop at a fixed rate (-b-rate, 200/s). B's latency (from the
//     moment each query was due, so a late send counts) alone, beside A with
//     equal weights (--scheduler fair) and beside A with --scheduler fifo.
//   - weights: A weight 3 and B weight 1, both 64 clients of SELECT
//     SLEEP(0.02): the split of backend-seconds (from /status), 1 and 2 loops.
//   - min: tenant C with min-backends=2 beside A saturating: the latency of
//     C's SELECT 1, one every 20 ms.
//   - cost: one tenant and no rules, 64 clients of SELECT 1 back to back:
//     QPS and proxy CPU per query with --scheduler fair and fifo, rounds
//     interleaved, medians.
//
// Usage (from the bench module; hold the machine's bench lock):
//
//	cd bench && flock /work/notes/bench.lock go run ./tenants -out results/tenants-DATE
//
// It writes OUT.md and OUT.png (B's latency over time, fair against FIFO).
// Everything listens and connects on loopback only.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"image/color"
	"io"
	"log"
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
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/scalestack/scalestack/bench/internal/runner"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

var (
	bin      = flag.String("scalestack", "", "scalestack binary (empty: build ../cmd/scalestack)")
	out      = flag.String("out", "results/tenants", "result files prefix (.md, .png)")
	measure  = flag.Duration("time", 10*time.Second, "measured time per run")
	warmup   = flag.Duration("warmup", 2*time.Second, "time before measuring")
	rounds   = flag.Int("rounds", 3, "rounds of the cost comparison")
	bRate    = flag.Int("b-rate", 200, "tenant B's SELECT 1 per second in the noisy run")
	backends = flag.Int("n", 8, "backend connections")
	only     = flag.String("only", "noisy,weights,min,cost", "which measurements to run")
	profile  = flag.String("profile", "", "with cost: write a CPU profile of each run's proxy to PROFILE-NAME-ROUND.pprof")
)

type env struct {
	addr, user, pwFile string
	dir                string
	users              string
}

const password = "bench-secret"

func main() {
	flag.Parse()
	log.SetFlags(log.Ltime)
	e := env{addr: os.Getenv("SCALESTACK_MYSQL_ADDR"), user: os.Getenv("SCALESTACK_MYSQL_USER"),
		pwFile: os.Getenv("SCALESTACK_MYSQL_PASSWORD_FILE")}
	if e.addr == "" || e.user == "" || e.pwFile == "" {
		log.Fatal("source a MariaDB env file first (scripts/mariadb.sh start; set -a; source .tmp/mariadb/env)")
	}
	dir, err := os.MkdirTemp("", "tenants-bench-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	e.dir = dir
	if *bin == "" {
		*bin = filepath.Join(dir, "scalestack")
		if err := runner.Build("..", *bin, "./cmd/scalestack"); err != nil {
			log.Fatal(err)
		}
	}
	var users []string
	for _, name := range []string{"A", "B", "C"} {
		cmd := exec.Command(*bin, "passwd", name)
		cmd.Stdin = strings.NewReader(password + "\n")
		line, err := cmd.Output()
		if err != nil {
			log.Fatalf("passwd: %v", err)
		}
		users = append(users, strings.TrimSpace(string(line)))
	}
	e.users = filepath.Join(dir, "users")
	if err := os.WriteFile(e.users, []byte(strings.Join(users, "\n")+"\n"), 0o600); err != nil {
		log.Fatal(err)
	}
	var md strings.Builder
	fmt.Fprintf(&md, "# Tenants: weighted fair queueing against FIFO (issue 17)\n\n")
	fmt.Fprintf(&md, "Command: `cd bench && flock /work/notes/bench.lock go run ./tenants %s`\n\n", strings.Join(os.Args[1:], " "))
	fmt.Fprintf(&md, "Host: %s. Load average at start: %s. MariaDB: the throwaway one of scripts/mariadb.sh on the same host. Clients: go-sql-driver in this process, same host.\n\n", runner.MachineFacts(), runner.LoadAvg())

	for _, name := range []string{"noisy", "weights", "min", "cost"} {
		if !strings.Contains(","+*only+",", ","+name+",") {
			continue
		}
		map[string]func(env, *strings.Builder){"noisy": noisy, "weights": weights, "min": minBackends, "cost": cost}[name](e, &md)
	}
	fmt.Fprintf(&md, "\nLoad average at the end: %s.\n", runner.LoadAvg())
	if err := os.WriteFile(*out+".md", []byte(md.String()), 0o644); err != nil {
		log.Fatal(err)
	}
	log.Printf("wrote %s.md and %s.png", *out, *out)
}

// proxy is one running scalestack mysqlproxy.
type proxy struct {
	p           *runner.Proc
	addr, admin string
}

func startProxy(e env, loops int, scheduler, tenants string) *proxy {
	cfg := filepath.Join(e.dir, "proxy.toml")
	if err := os.WriteFile(cfg, []byte(tenants), 0o600); err != nil {
		log.Fatal(err)
	}
	addr, admin := freeAddr(), freeAddr()
	p, err := runner.Start("proxy", "", *bin, "mysqlproxy", "--listen", addr, "--admin", admin,
		"--backend", e.addr, "--backend-user", e.user, "--backend-password-file", e.pwFile,
		"--backend-conns", strconv.Itoa(*backends), "--users", e.users, "--loops", strconv.Itoa(loops),
		"--scheduler", scheduler, "--config", cfg, "--queue-timeout", "60s", "--log-level", "warn",
		// The bench's accounts exist only in its users file: every client
		// runs as the service account (what is measured is the scheduler).
		"--backend-identity", "service")
	if err != nil {
		log.Fatal(err)
	}
	if err := runner.WaitDial("tcp", addr, 20*time.Second); err != nil {
		log.Fatalf("proxy: %v; %s", err, p.Stderr())
	}
	for i := 0; i < 200; i++ { // until /readyz: every backend logged in
		if r, err := http.Get("http://" + admin + "/readyz"); err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &proxy{p: p, addr: addr, admin: admin}
}

func (p *proxy) stop() { p.p.Stop() }

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (p *proxy) db(user string, conns int) *sql.DB {
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr = user, password, "tcp", p.addr
	c.Timeout, c.ReadTimeout = 10*time.Second, 120*time.Second
	db, err := sql.Open("mysql", c.FormatDSN())
	if err != nil {
		log.Fatal(err)
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	return db
}

// backendSeconds reads each tenant's backend_seconds_total from /status.
func (p *proxy) backendSeconds() map[string]float64 {
	r, err := http.Get("http://" + p.admin + "/status")
	if err != nil {
		log.Fatal(err)
	}
	defer r.Body.Close()
	var raw any
	if err := json.NewDecoder(r.Body).Decode(&raw); err != nil {
		log.Fatal(err)
	}
	out := map[string]float64{}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if ts, ok := x["tenants"].([]any); ok {
				for _, t := range ts {
					if m, ok := t.(map[string]any); ok {
						name, _ := m["name"].(string)
						s, _ := m["backend_seconds_total"].(float64)
						out[name] = s
					}
				}
			}
			for _, y := range x {
				walk(y)
			}
		case []any:
			for _, y := range x {
				walk(y)
			}
		}
	}
	walk(raw)
	return out
}

// queueWaits reads tenant's queue-wait histogram from /metrics: the
// cumulative count at each bound (seconds) and the total.
func (p *proxy) queueWaits(tenant string) (map[float64]uint64, uint64) {
	r, err := http.Get("http://" + p.admin + "/metrics")
	if err != nil {
		log.Fatal(err)
	}
	defer r.Body.Close()
	body, _ := io.ReadAll(r.Body)
	buckets := map[float64]uint64{}
	var total uint64
	prefix := "scalestack_mysqlproxy_tenant_queue_wait_seconds_"
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, prefix) || !strings.Contains(line, `tenant="`+tenant+`"`) {
			continue
		}
		f := strings.Fields(line)
		n, _ := strconv.ParseFloat(f[len(f)-1], 64)
		switch {
		case strings.HasPrefix(line, prefix+"count"):
			total = uint64(n)
		case strings.HasPrefix(line, prefix+"bucket"):
			i := strings.Index(line, `le="`)
			le, err := strconv.ParseFloat(line[i+4:i+4+strings.IndexByte(line[i+4:], '"')], 64)
			if err == nil {
				buckets[le] = uint64(n)
			}
		}
	}
	return buckets, total
}

// gauge reads one series from /metrics (prefix: its name and labels, and
// the space before the value).
func (p *proxy) gauge(prefix string) float64 {
	r, err := http.Get("http://" + p.admin + "/metrics")
	if err != nil {
		return 0
	}
	defer r.Body.Close()
	body, _ := io.ReadAll(r.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, prefix) {
			v, _ := strconv.ParseFloat(strings.TrimSpace(line[len(prefix):]), 64)
			return v
		}
	}
	return 0
}

// closedLoop runs query back to back on clients connections until ctx
// ends and returns how many completed.
func closedLoop(ctx context.Context, db *sql.DB, clients int, query string, wg *sync.WaitGroup) *atomic.Int64 {
	var n atomic.Int64
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				var x int
				if err := db.QueryRowContext(context.Background(), query).Scan(&x); err != nil {
					log.Printf("%s: %v", query, err)
					return
				}
				n.Add(1)
			}
		}()
	}
	return &n
}

type sample struct {
	at      time.Duration // since the start of the measurement
	latency time.Duration
}

// openLoop sends SELECT 1 at rate per second for d, each on its own
// goroutine, and returns the latencies measured from when each was due.
func openLoop(db *sql.DB, rate int, d time.Duration) []sample {
	var mu sync.Mutex
	var out []sample
	var wg sync.WaitGroup
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	for i := 0; ; i++ {
		due := start.Add(time.Duration(i) * interval)
		if due.Sub(start) >= d {
			break
		}
		time.Sleep(time.Until(due))
		wg.Add(1)
		go func() {
			defer wg.Done()
			var x int
			if err := db.QueryRow("SELECT 1").Scan(&x); err != nil {
				log.Printf("B: %v", err)
				return
			}
			lat := time.Since(due)
			mu.Lock()
			out = append(out, sample{at: due.Sub(start), latency: lat})
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func percentile(s []sample, p float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	l := make([]time.Duration, len(s))
	for i, x := range s {
		l[i] = x.latency
	}
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	i := int(p * float64(len(l)-1))
	return l[i]
}

func ratios(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(parts, ", ")
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/1e6) }

func noisy(e env, md *strings.Builder) {
	log.Printf("noisy neighbour")
	equal := "[tenants.A]\nweight = 1\n[tenants.B]\nweight = 1\n"
	type run struct {
		name, scheduler string
		withA           bool
		samples         []sample
		aQPS            float64
	}
	runs := []*run{{name: "B alone", scheduler: "fair"}, {name: "A+B, fair, equal weights", scheduler: "fair", withA: true},
		{name: "A+B, FIFO (--scheduler fifo)", scheduler: "fifo", withA: true}}
	for _, r := range runs {
		p := startProxy(e, 1, r.scheduler, equal)
		// B gets enough connections that its open loop never waits for
		// one of its own (even at FIFO's latency): what is measured is the
		// proxy's queue, not database/sql's.
		a, b := p.db("A", 64), p.db("B", 512)
		var wg sync.WaitGroup
		ctx, cancel := context.WithCancel(context.Background())
		var aDone *atomic.Int64
		if r.withA {
			aDone = closedLoop(ctx, a, 64, "SELECT SLEEP(0.02)", &wg)
		}
		time.Sleep(*warmup)
		var a0 int64
		if aDone != nil {
			a0 = aDone.Load()
		}
		r.samples = openLoop(b, *bRate, *measure)
		if aDone != nil {
			r.aQPS = float64(aDone.Load()-a0) / measure.Seconds()
		}
		cancel()
		wg.Wait()
		a.Close()
		b.Close()
		p.stop()
		log.Printf("  %s: B p50 %s ms p99 %s ms (%d queries)", r.name, ms(percentile(r.samples, .5)), ms(percentile(r.samples, .99)), len(r.samples))
	}
	alone := percentile(runs[0].samples, .99)
	fmt.Fprintf(md, "## Noisy neighbour\n\nN=%d, 1 loop. Tenant A: 64 clients of `SELECT SLEEP(0.02)` back to back. Tenant B: `SELECT 1` open-loop at %d/s for %v (latency from when each query was due). Equal weights.\n\n", *backends, *bRate, *measure)
	fmt.Fprintf(md, "| run | B queries | B p50 ms | B p90 ms | B p99 ms | B max ms | A statements/s |\n|---|---|---|---|---|---|---|\n")
	for _, r := range runs {
		fmt.Fprintf(md, "| %s | %d | %s | %s | %s | %s | %.0f |\n", r.name, len(r.samples), ms(percentile(r.samples, .5)), ms(percentile(r.samples, .9)),
			ms(percentile(r.samples, .99)), ms(percentile(r.samples, 1)), r.aQPS)
	}
	bound := 20*time.Millisecond + 2*alone
	fair := percentile(runs[1].samples, .99)
	verdict := "met"
	if fair > bound {
		verdict = "NOT met"
	}
	fmt.Fprintf(md, "\nTarget: B's p99 with equal weights within one A statement (20 ms) plus twice B's p99 alone = %s ms; measured %s ms: **%s**. With FIFO B waits behind A's queue: p99 %s ms.\n\n", ms(bound), ms(fair), verdict, ms(percentile(runs[2].samples, .99)))
	if err := drawNoisy(runs[1].samples, runs[2].samples, runs[0].samples); err != nil {
		log.Printf("plot: %v", err)
	} else {
		fmt.Fprintf(md, "![B's latency over time](%s.png)\n\n", filepath.Base(*out))
	}
}

func drawNoisy(fair, fifo, alone []sample) error {
	pl := plot.New()
	pl.Title.Text = fmt.Sprintf("Tenant B (SELECT 1 at %d/s) beside tenant A (64 x SELECT SLEEP(0.02)), N=%d", *bRate, *backends)
	pl.X.Label.Text = "seconds"
	pl.Y.Label.Text = "B latency (ms, log scale)"
	pl.Y.Scale = plot.LogScale{}
	pl.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	pl.Add(plotter.NewGrid())
	add := func(s []sample, name string, c color.RGBA) error {
		xy := make(plotter.XYs, len(s))
		for i, x := range s {
			xy[i] = plotter.XY{X: x.at.Seconds(), Y: max(float64(x.latency)/1e6, 0.01)}
		}
		sc, err := plotter.NewScatter(xy)
		if err != nil {
			return err
		}
		sc.GlyphStyle.Color = c
		sc.GlyphStyle.Radius = vg.Points(1.2)
		pl.Add(sc)
		pl.Legend.Add(name, sc)
		return nil
	}
	if err := add(fifo, "FIFO (--scheduler fifo)", color.RGBA{R: 200, A: 255}); err != nil {
		return err
	}
	if err := add(fair, "fair, equal weights", color.RGBA{B: 200, A: 255}); err != nil {
		return err
	}
	if err := add(alone, "B alone", color.RGBA{G: 150, A: 255}); err != nil {
		return err
	}
	pl.Legend.Top = true
	return pl.Save(10*vg.Inch, 5*vg.Inch, *out+".png")
}

func weights(e env, md *strings.Builder) {
	log.Printf("weights 3:1")
	fmt.Fprintf(md, "## Weights 3:1 under saturation\n\nN=%d. Tenant A weight 3, tenant B weight 1, each 64 clients of `SELECT SLEEP(0.02)` back to back; backend-seconds from /status over %v after %v.\n\n", *backends, *measure, *warmup)
	fmt.Fprintf(md, "| loops | A backend-s | B backend-s | A:B | within ±10%% of 3:1 |\n|---|---|---|---|---|\n")
	for _, loops := range []int{1, 2} {
		p := startProxy(e, loops, "fair", "[tenants.A]\nweight = 3\n[tenants.B]\nweight = 1\n")
		a, b := p.db("A", 64), p.db("B", 64)
		var wg sync.WaitGroup
		ctx, cancel := context.WithCancel(context.Background())
		closedLoop(ctx, a, 64, "SELECT SLEEP(0.02)", &wg)
		closedLoop(ctx, b, 64, "SELECT SLEEP(0.02)", &wg)
		time.Sleep(*warmup)
		before := p.backendSeconds()
		time.Sleep(*measure)
		after := p.backendSeconds()
		cancel()
		wg.Wait()
		a.Close()
		b.Close()
		p.stop()
		as, bs := after["A"]-before["A"], after["B"]-before["B"]
		ratio := as / bs
		ok := "yes"
		if ratio < 2.7 || ratio > 3.3 {
			ok = "NO"
		}
		log.Printf("  %d loops: %.2f:1", loops, ratio)
		fmt.Fprintf(md, "| %d | %.2f | %.2f | %.2f:1 | %s |\n", loops, as, bs, ratio, ok)
	}
	fmt.Fprintln(md)
}

func minBackends(e env, md *strings.Builder) {
	log.Printf("min-backends")
	p := startProxy(e, 1, "fair", "[tenants.A]\nweight = 1\n[tenants.C]\nmin-backends = 2\n")
	a, c := p.db("A", 64), p.db("C", 1)
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	closedLoop(ctx, a, 64, "SELECT SLEEP(0.02)", &wg)
	time.Sleep(*warmup)
	b0, t0 := p.queueWaits("C")
	var s []sample
	for start := time.Now(); time.Since(start) < *measure; time.Sleep(20 * time.Millisecond) {
		t0 := time.Now()
		var x int
		if err := c.QueryRow("SELECT 1").Scan(&x); err != nil {
			log.Fatalf("C: %v", err)
		}
		s = append(s, sample{latency: time.Since(t0)})
	}
	b1, t1 := p.queueWaits("C")
	cancel()
	wg.Wait()
	a.Close()
	c.Close()
	p.stop()
	waits := t1 - t0
	within := b1[0.05] - b0[0.05]
	worst := percentile(s, 1)
	verdict := "met"
	if worst > 50*time.Millisecond {
		verdict = "NOT met"
	}
	waitVerdict := "met"
	if within < waits {
		waitVerdict = "NOT met"
	}
	log.Printf("  C: p99 %s ms max %s ms; %d of %d queue waits within 50 ms", ms(percentile(s, .99)), ms(worst), within, waits)
	fmt.Fprintf(md, "## min-backends\n\nN=%d. Tenant C (min-backends = 2) runs `SELECT 1` every 20 ms for %v while tenant A (64 clients of `SELECT SLEEP(0.02)`) saturates the backends. Latency is the client's (queue wait, the statement, and this host's CPU contention); the queue waits are the proxy's own histogram (scalestack_mysqlproxy_tenant_queue_wait_seconds), which is what min-backends bounds.\n\n| C queries | p50 ms | p99 ms | max ms | target: max under 50 ms | C's queue waits | of them within 50 ms | target: all |\n|---|---|---|---|---|---|---|---|\n| %d | %s | %s | %s | **%s** | %d | %d | **%s** |\n\n",
		*backends, *measure, len(s), ms(percentile(s, .5)), ms(percentile(s, .99)), ms(worst), verdict, waits, within, waitVerdict)
}

func cost(e env, md *strings.Builder) {
	log.Printf("cost")
	names := []string{"fair", "fifo"}
	type res struct {
		qps, cpuUs    float64
		idle, samples int64
	}
	runs, broken := runner.Interleave(names, *rounds, func(name string, round int) (res, error) {
		p := startProxy(e, 1, name, "")
		db := p.db("A", 64)
		var wg sync.WaitGroup
		ctx, cancel := context.WithCancel(context.Background())
		n := closedLoop(ctx, db, 64, "SELECT 1", &wg)
		time.Sleep(*warmup)
		n0 := n.Load()
		c0, _ := runner.CPUSeconds(p.p.Pid())
		if *profile != "" {
			go func() {
				r, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", p.admin, int(measure.Seconds())-1))
				if err != nil {
					log.Printf("profile: %v", err)
					return
				}
				defer r.Body.Close()
				b, _ := io.ReadAll(r.Body)
				_ = os.WriteFile(fmt.Sprintf("%s-%s-%d.pprof", *profile, name, round), b, 0o644)
			}()
		}
		stopSampling := make(chan struct{})
		var idleWhileWaiting, samples atomic.Int64
		go func() { // backends idle while commands wait would be a scheduling fault
			for {
				select {
				case <-stopSampling:
					return
				case <-time.After(20 * time.Millisecond):
				}
				waiting, idle := p.gauge("scalestack_mysqlproxy_queue_waiting "), p.gauge(`scalestack_mysqlproxy_backend_connections{state="idle"} `)
				samples.Add(1)
				if waiting > 0 && idle > 0 {
					idleWhileWaiting.Add(1)
				}
			}
		}()
		time.Sleep(*measure)
		close(stopSampling)
		log.Printf("  %s: %d of %d samples had backends idle while commands waited", name, idleWhileWaiting.Load(), samples.Load())
		n1 := n.Load()
		c1, _ := runner.CPUSeconds(p.p.Pid())
		cancel()
		wg.Wait()
		db.Close()
		p.stop()
		q := float64(n1-n0) / measure.Seconds()
		r := res{qps: q, cpuUs: (c1 - c0) * 1e6 / float64(n1-n0), idle: idleWhileWaiting.Load(), samples: samples.Load()}
		log.Printf("  %s round %d: %.0f QPS, %.1f µs proxy CPU per query", name, round, r.qps, r.cpuUs)
		return r, nil
	})
	fmt.Fprintf(md, "## Cost: one tenant, no rules\n\nN=%d, 1 loop, 64 clients of `SELECT 1` back to back, %d rounds interleaved (%v each after %v), medians. The last column samples /metrics every 20 ms: backends idle while commands waited would be a scheduling fault, not noise.\n\n| scheduler | QPS | proxy CPU µs/query | samples with idle backends and waiting commands |\n|---|---|---|---|\n", *backends, *rounds, *measure, *warmup)
	med := map[string]res{}
	for _, name := range names {
		var q, c []float64
		var idle, samples int64
		for _, r := range runs[name] {
			q = append(q, r.qps)
			c = append(c, r.cpuUs)
			idle += r.idle
			samples += r.samples
		}
		med[name] = res{qps: runner.Median(q), cpuUs: runner.Median(c)}
		fmt.Fprintf(md, "| %s | %.0f | %.1f | %d of %d |\n", name, med[name].qps, med[name].cpuUs, idle, samples)
	}
	for name, why := range broken {
		fmt.Fprintf(md, "\n%s failed: %s\n", name, why)
	}
	// Ratios of the two runs of each round (side by side, minutes apart
	// at most), then their median: less exposed to this shared host's
	// load drifting between rounds than a ratio of medians.
	var qr, cr []float64
	fairRuns, fifoRuns := runs["fair"], runs["fifo"]
	for i := 0; i < len(fairRuns) && i < len(fifoRuns); i++ {
		qr = append(qr, fairRuns[i].qps/fifoRuns[i].qps)
		cr = append(cr, fairRuns[i].cpuUs/fifoRuns[i].cpuUs)
	}
	if len(qr) > 0 {
		fmt.Fprintf(md, "\nfair/fifo, median of the per-round ratios: QPS %.3f (rounds: %s), proxy CPU per query %.3f (rounds: %s).\n",
			runner.Median(qr), ratios(qr), runner.Median(cr), ratios(cr))
	}
}
