package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/reactor"
)

// adminServer is the operator's HTTP endpoint: /metrics, /healthz, /readyz,
// /status and /debug/pprof. It runs on ordinary goroutines, off the loops,
// and reads the engine's plain counters only when scraped, so metrics cost
// the data path neither a lock nor an allocation.
type adminServer struct {
	srv       *http.Server
	ln        net.Listener
	closeOnce sync.Once
	closeErr  error
}

type adminConfig struct {
	addr     string
	registry *prometheus.Registry
	// ready returns nil when the service can take traffic.
	ready func() error
	// status returns a JSON-encodable snapshot.
	status func() any
	// reload applies a live reload and returns its JSON-encodable report
	// and whether it succeeded (nil: POST /reload answers 404).
	reload func() (any, bool)
}

func startAdmin(cfg adminConfig) (*adminServer, error) {
	// self are the addresses the endpoint answers on (the configured one
	// and the bound one), set once listening; a POST whose Origin is
	// anything else came from another site's page.
	var self []string
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(cfg.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if cfg.ready != nil {
			if err := cfg.ready(); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		var v any = struct{}{}
		if cfg.status != nil {
			v = cfg.status()
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(v)
	})
	mux.HandleFunc("/reload", func(w http.ResponseWriter, r *http.Request) {
		if cfg.reload == nil {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "use POST", http.StatusMethodNotAllowed)
			return
		}
		if why := crossOrigin(r, self); why != "" {
			http.Error(w, "cross-origin request refused: "+why, http.StatusForbidden)
			return
		}
		report, ok := cfg.reload()
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			w.WriteHeader(http.StatusUnprocessableEntity)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(report)
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return nil, fmt.Errorf("admin listener %s: %w", cfg.addr, err)
	}
	self = []string{cfg.addr, ln.Addr().String()}
	s := &adminServer{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln: ln}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("admin server stopped", "err", err)
		}
	}()
	return s, nil
}

func (s *adminServer) Addr() string { return s.ln.Addr().String() }

// crossOrigin says why a state-changing request must be refused because a
// browser sent it on behalf of another site's page (cross-site request
// forgery: the admin endpoint has no credentials, so a page the operator
// visits could otherwise POST to it), or returns "". Tools such as curl
// send neither header and are let through. A browser sends
// Sec-Fetch-Site: only "same-origin" (or "none", typed by the user) is
// accepted; "same-site" is refused too, since every port of a host is the
// same site. An Origin header must name the admin address itself, as
// configured or as bound, not merely the Host the request names (which a
// DNS-rebinding page controls).
func crossOrigin(r *http.Request, self []string) string {
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "", "same-origin", "none":
	default:
		return "Sec-Fetch-Site: " + site
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return ""
	}
	u, err := url.Parse(origin)
	if err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		for _, a := range self {
			if a != "" && u.Host == a {
				return ""
			}
		}
	}
	return "Origin " + strconv.Quote(origin) + " is not the admin address"
}

// Close stops the endpoint (at most 2 s for requests in progress); later
// calls return the first one's result.
func (s *adminServer) Close() error {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s.closeErr = s.srv.Shutdown(ctx)
	})
	return s.closeErr
}

// newRegistry returns a registry with the Go runtime and process collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// engineCollector exports the loops' counters.
type engineCollector struct {
	eng                             *reactor.Engine
	busy, events, iterations, tasks *prometheus.Desc
}

func newEngineCollector(e *reactor.Engine) *engineCollector {
	l := []string{"loop"}
	return &engineCollector{
		eng:        e,
		busy:       prometheus.NewDesc("scalestack_loop_busy_seconds_total", "Time each loop spent handling events rather than waiting for them; its rate is the loop's busy ratio.", l, nil),
		events:     prometheus.NewDesc("scalestack_loop_events_total", "I/O events each loop handled.", l, nil),
		iterations: prometheus.NewDesc("scalestack_loop_iterations_total", "Iterations of each loop.", l, nil),
		tasks:      prometheus.NewDesc("scalestack_loop_tasks_total", "Tasks each loop ran from mailboxes and control submissions.", l, nil),
	}
}

func (c *engineCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.busy
	ch <- c.events
	ch <- c.iterations
	ch <- c.tasks
}

func (c *engineCollector) Collect(ch chan<- prometheus.Metric) {
	for _, l := range c.eng.Loops() {
		id := strconv.Itoa(l.ID())
		ch <- prometheus.MustNewConstMetric(c.busy, prometheus.CounterValue, float64(l.Stats.BusyNanos.Load())/1e9, id)
		ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(l.Stats.Events.Load()), id)
		ch <- prometheus.MustNewConstMetric(c.iterations, prometheus.CounterValue, float64(l.Stats.Iterations.Load()), id)
		ch <- prometheus.MustNewConstMetric(c.tasks, prometheus.CounterValue, float64(l.Stats.Tasks.Load()), id)
	}
}

// listenerCollector exports a client listener's counters.
type listenerCollector struct {
	ln                               *conn.Listener
	current, accepted, refused, errs *prometheus.Desc
	// moduleRefusals are the module's own refusals by reason (see
	// module.refusals), added to the listener's.
	moduleRefusals func() map[string]uint64
}

func newListenerCollector(ln *conn.Listener, moduleRefusals func() map[string]uint64) *listenerCollector {
	return &listenerCollector{
		ln:             ln,
		moduleRefusals: moduleRefusals,
		current:        prometheus.NewDesc("scalestack_client_connections", "Client connections currently open.", nil, nil),
		accepted:       prometheus.NewDesc("scalestack_client_connections_accepted_total", "Client connections accepted.", nil, nil),
		refused:        prometheus.NewDesc("scalestack_client_connections_refused_total", "Client connections refused, by reason.", []string{"reason"}, nil),
		errs:           prometheus.NewDesc("scalestack_accept_errors_total", "accept(2) failures (out of descriptors and the like); each pauses accepting briefly.", nil, nil),
	}
}

func (c *listenerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.current
	ch <- c.accepted
	ch <- c.refused
	ch <- c.errs
}

func (c *listenerCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.current, prometheus.GaugeValue, float64(c.ln.OpenConns()))
	ch <- prometheus.MustNewConstMetric(c.accepted, prometheus.CounterValue, float64(c.ln.Stats.Accepted.Load()))
	// The listener refuses only over its own MaxConns; a module that
	// enforces its limit itself (the MySQL proxy's --max-clients, which
	// reload can change) counts its refusals, which belong in the same
	// series.
	refused := map[string]uint64{"max_clients": c.ln.Stats.Refused.Load()}
	if c.moduleRefusals != nil {
		for reason, n := range c.moduleRefusals() {
			refused[reason] += n
		}
	}
	for reason, n := range refused {
		ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(n), reason)
	}
	ch <- prometheus.MustNewConstMetric(c.errs, prometheus.CounterValue, float64(c.ln.Stats.AcceptErrors.Load()))
}

// loopStatus is the /status view of one loop.
type loopStatus struct {
	ID         int     `json:"id"`
	CPU        int     `json:"cpu"`
	Events     uint64  `json:"events"`
	Iterations uint64  `json:"iterations"`
	BusySecs   float64 `json:"busy_seconds"`
	Tracked    int     `json:"-"`
}

func engineStatus(e *reactor.Engine) []loopStatus {
	var out []loopStatus
	for _, l := range e.Loops() {
		out = append(out, loopStatus{
			ID: l.ID(), CPU: l.CPU(),
			Events:     l.Stats.Events.Load(),
			Iterations: l.Stats.Iterations.Load(),
			BusySecs:   float64(l.Stats.BusyNanos.Load()) / 1e9,
		})
	}
	return out
}
