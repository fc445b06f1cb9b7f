package httpproxy

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/httpwire"
	"github.com/scalestack/scalestack/pool"
	"github.com/scalestack/scalestack/reactor"
)

// Balance is how a request's upstream server is chosen.
type Balance uint8

const (
	// RoundRobin takes the servers in turn (each loop keeps its own turn).
	RoundRobin Balance = iota
	// LeastBusy takes the server with the fewest requests holding or
	// waiting for one of its connections.
	LeastBusy
)

// ParseBalance reads "round-robin" or "least-busy".
func ParseBalance(s string) (Balance, error) {
	switch s {
	case "round-robin":
		return RoundRobin, nil
	case "least-busy":
		return LeastBusy, nil
	}
	return 0, fmt.Errorf("balance %q: want round-robin or least-busy", s)
}

func (b Balance) String() string {
	if b == LeastBusy {
		return "least-busy"
	}
	return "round-robin"
}

// Config describes a proxy. Zero durations take the defaults.
type Config struct {
	// Upstreams are the servers (host:port or unix:/path); at least one.
	Upstreams []conn.Addr
	// Conns is the number of connections kept to each server (default 8).
	Conns int
	// Balance picks a server per request.
	Balance Balance
	// ConnectTimeout bounds a connect (and a health check's answer;
	// default 5 s).
	ConnectTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait from the request's head going
	// out to the response head coming back (504; default 60 s).
	ResponseHeaderTimeout time.Duration
	// IdleTimeout bounds the silence of an upstream in the middle of a
	// response body (the client connection is cut; default 60 s).
	IdleTimeout time.Duration
	// QueueTimeout bounds a request's wait for a free connection (504;
	// default 10 s).
	QueueTimeout time.Duration
	// HealthInterval: an idle connection is checked this often (default
	// 2 s). HealthPath, when set, is the path checked, and a status of 400
	// or more fails the check (also when a connection is made); when
	// unset, "HEAD /" is sent and any complete answer will do.
	HealthInterval time.Duration
	HealthPath     string
	// Limits bound a response head (MaxRequestLine the status line,
	// MaxHeaderBytes and MaxHeaders the fields).
	Limits httpwire.Limits
	// Proto is X-Forwarded-Proto's value (default "http").
	Proto string
	// Logf receives operational messages; nil discards them.
	Logf func(format string, args ...any)
}

// Proxy is an httpd.Handler (and BodyHandler) forwarding to upstreams.
type Proxy struct {
	cfg   Config
	ups   []*upstream
	loops []*loopState // by loop ID, each touched only by its loop
	// forwardedFor is "X-Forwarded-Proto: <Proto>\r\n", built once.
	forwardedProto []byte
}

// upstream is one server: its pool and counters.
type upstream struct {
	idx  int
	addr conn.Addr
	// hostField is "Host: addr\r\n", for requests without a Host and for
	// health checks.
	hostField []byte
	// checkRequest is the health check, built once.
	checkRequest []byte
	pool         *pool.Pool
	// busy counts requests holding or waiting for one of its connections,
	// for LeastBusy and the in-flight gauge.
	busy  atomic.Int64
	stats Stats
}

// Stats count one upstream server's traffic. Loops add to them with
// atomics; read them with Proxy.Upstreams.
type Stats struct {
	Requests      atomic.Uint64    // requests sent to it (retries included)
	Responses     [5]atomic.Uint64 // response heads relayed, by class: 1xx (unused), 2xx, 3xx, 4xx, 5xx
	BadGateway    atomic.Uint64    // answered 502 on its account: connection broke, malformed response
	Timeouts      atomic.Uint64    // answered 504: no response head in time, or no free connection
	Cut           atomic.Uint64    // client connections cut after the head was relayed (broken or silent upstream)
	Retries       atomic.Uint64    // safe requests sent again after their connection broke
	ResponseBytes atomic.Uint64    // response body bytes relayed
}

// UpstreamInfo is a snapshot of one server for /status and metrics.
type UpstreamInfo struct {
	Addr          string             `json:"addr"`
	Available     bool               `json:"available"`
	InFlight      int64              `json:"in_flight"`
	Connected     int64              `json:"connected"`
	Requests      uint64             `json:"requests"`
	Responses     [5]uint64          `json:"responses_by_class"`
	BadGateway    uint64             `json:"bad_gateway"`
	Timeouts      uint64             `json:"timeouts"`
	Cut           uint64             `json:"cut"`
	Retries       uint64             `json:"retries"`
	ResponseBytes uint64             `json:"response_bytes"`
	Pool          pool.StatsSnapshot `json:"-"`
}

type loopState struct {
	free []*exchange
	turn int // RoundRobin's next server
}

// New validates cfg.
func New(cfg Config) (*Proxy, error) {
	if len(cfg.Upstreams) == 0 {
		return nil, errors.New("httpproxy: no upstream servers")
	}
	if len(cfg.Upstreams) > 64 {
		return nil, errors.New("httpproxy: at most 64 upstream servers")
	}
	if cfg.Conns <= 0 {
		cfg.Conns = 8
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	if cfg.ResponseHeaderTimeout <= 0 {
		cfg.ResponseHeaderTimeout = 60 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 60 * time.Second
	}
	if cfg.QueueTimeout <= 0 {
		cfg.QueueTimeout = 10 * time.Second
	}
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = 2 * time.Second
	}
	if cfg.Proto == "" {
		cfg.Proto = "http"
	}
	if cfg.HealthPath != "" && (cfg.HealthPath[0] != '/' || !validTarget(cfg.HealthPath)) {
		return nil, fmt.Errorf("httpproxy: health path %q must start with / and hold only visible ASCII", cfg.HealthPath)
	}
	p := &Proxy{cfg: cfg}
	p.forwardedProto = httpwire.AppendField(nil, "X-Forwarded-Proto", cfg.Proto)
	checkPath := cfg.HealthPath
	if checkPath == "" {
		checkPath = "/"
	}
	for i, a := range cfg.Upstreams {
		up := &upstream{idx: i, addr: a}
		host := a.Address
		if a.Network == "unix" {
			host = "localhost"
		}
		up.hostField = httpwire.AppendField(nil, "Host", host)
		up.checkRequest = append([]byte("HEAD "+checkPath+" HTTP/1.1\r\n"), up.hostField...)
		up.checkRequest = append(up.checkRequest, "User-Agent: scalestack-health-check\r\n\r\n"...)
		pl, err := pool.New(pool.Config{
			Targets:        []pool.Target{{Addr: a}},
			Conns:          cfg.Conns,
			ConnectTimeout: cfg.ConnectTimeout,
			HealthInterval: cfg.HealthInterval,
			QueueTimeout:   cfg.QueueTimeout,
			Logf:           p.upstreamLogf(a),
		}, protocol{p: p, up: up})
		if err != nil {
			return nil, fmt.Errorf("httpproxy: upstream %s: %w", a.Address, err)
		}
		up.pool = pl
		p.ups = append(p.ups, up)
	}
	return p, nil
}

func validTarget(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

func (p *Proxy) upstreamLogf(a conn.Addr) func(string, ...any) {
	if p.cfg.Logf == nil {
		return nil
	}
	return func(format string, args ...any) {
		p.cfg.Logf("upstream "+a.Address+": "+format, args...)
	}
}

// Start opens every upstream's connections on e's loops (call it after
// e.Start, before requests arrive).
func (p *Proxy) Start(e *reactor.Engine) error {
	p.loops = make([]*loopState, len(e.Loops()))
	for i := range p.loops {
		p.loops[i] = &loopState{turn: i} // loops start their turns apart
	}
	for _, up := range p.ups {
		if err := up.pool.Start(e); err != nil {
			return fmt.Errorf("httpproxy: upstream %s: %w", up.addr.Address, err)
		}
	}
	return nil
}

// Stop keeps the connections from reconnecting; the engine's stop closes
// them.
func (p *Proxy) Stop() {
	for _, up := range p.ups {
		up.pool.Stop()
	}
}

// Ready fails while no upstream server is available.
func (p *Proxy) Ready() error {
	for _, up := range p.ups {
		if up.pool.Available() && up.pool.Connected() > 0 {
			return nil
		}
	}
	return errors.New("no upstream server has a connection")
}

// Upstreams returns a snapshot of every server.
func (p *Proxy) Upstreams() []UpstreamInfo {
	out := make([]UpstreamInfo, len(p.ups))
	for i, up := range p.ups {
		s := &up.stats
		out[i] = UpstreamInfo{
			Addr:          up.addr.Address,
			Available:     up.pool.Available(),
			InFlight:      up.busy.Load(),
			Connected:     up.pool.Connected(),
			Requests:      s.Requests.Load(),
			BadGateway:    s.BadGateway.Load(),
			Timeouts:      s.Timeouts.Load(),
			Cut:           s.Cut.Load(),
			Retries:       s.Retries.Load(),
			ResponseBytes: s.ResponseBytes.Load(),
			Pool:          up.pool.Stats(),
		}
		for c := range s.Responses {
			out[i].Responses[c] = s.Responses[c].Load()
		}
	}
	return out
}

// pick chooses an upstream not in tried (a bit per server) that the pool
// holds available, or returns nil.
func (p *Proxy) pick(ls *loopState, tried uint64) *upstream {
	n := len(p.ups)
	if n == 1 {
		if tried == 0 && p.ups[0].pool.Available() {
			return p.ups[0]
		}
		return nil
	}
	var best *upstream
	var bestBusy int64
	for k := 0; k < n; k++ {
		i := (ls.turn + k) % n
		up := p.ups[i]
		if tried&(1<<i) != 0 || !up.pool.Available() {
			continue
		}
		if p.cfg.Balance == RoundRobin {
			ls.turn = i + 1
			return up
		}
		if b := up.busy.Load(); best == nil || b < bestBusy {
			best, bestBusy = up, b
		}
	}
	if best != nil {
		ls.turn = best.idx + 1 // ties go round
	}
	return best
}

// protocol makes the Server of each of an upstream's connections.
type protocol struct {
	p  *Proxy
	up *upstream
}

func (pr protocol) NewServer(b *pool.Backend) pool.Server {
	s := &server{p: pr.p, up: pr.up, b: b}
	s.head.Headers = make([]httpwire.Header, 0, 16)
	return s
}
