package httpd

import (
	"sync/atomic"
	"time"

	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/httpwire"
	"github.com/scalestack/scalestack/reactor"
)

// Config describes a server. Zero fields take the defaults.
type Config struct {
	// Router maps path prefixes to handlers (required).
	Router *Router
	// Limits bound request heads and bodies (httpwire.DefaultLimits).
	Limits httpwire.Limits
	// HeaderTimeout bounds the time from a request's first byte to the end
	// of its head (default 10 s); BodyTimeout the wait between two reads of
	// a request body (default 10 s); IdleTimeout how long a connection may
	// wait for its next request (default 60 s; also for the first, so a
	// connection that never speaks is closed); SendTimeout how long output
	// may stay over the high-water mark without draining (default 60 s).
	HeaderTimeout time.Duration
	BodyTimeout   time.Duration
	IdleTimeout   time.Duration
	SendTimeout   time.Duration
	// MaxConns bounds open connections (0: no bound of the server's own).
	MaxConns int
	// HighWater is the queued output past which the server stops reading
	// and stops filling streamed bodies (default 256 KiB).
	HighWater int
}

func (c Config) withDefaults() Config {
	c.Limits = withLimitDefaults(c.Limits)
	if c.HeaderTimeout <= 0 {
		c.HeaderTimeout = 10 * time.Second
	}
	if c.BodyTimeout <= 0 {
		c.BodyTimeout = 10 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 60 * time.Second
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = 60 * time.Second
	}
	if c.HighWater <= 0 {
		c.HighWater = 256 << 10
	}
	return c
}

func withLimitDefaults(l httpwire.Limits) httpwire.Limits {
	d := httpwire.DefaultLimits
	if l.MaxRequestLine <= 0 {
		l.MaxRequestLine = d.MaxRequestLine
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if l.MaxHeaders <= 0 {
		l.MaxHeaders = d.MaxHeaders
	}
	if l.MaxBody <= 0 {
		l.MaxBody = d.MaxBody
	}
	return l
}

// Stats are the server's counters; read them with atomic loads.
type Stats struct {
	Connections atomic.Int64  // open now
	Accepted    atomic.Uint64 // connections served since start
	Refused     atomic.Uint64 // over MaxConns (503)
	Requests    atomic.Uint64 // requests dispatched to a handler
	Refusals    atomic.Uint64 // requests refused by the parser (4xx/5xx, then close)
	Timeouts    atomic.Uint64 // connections cut off by a timeout
}

// Server serves HTTP/1.1 on an engine's loops.
type Server struct {
	cfg      Config
	eng      *reactor.Engine
	loops    []*loopState // by loop ID; each touched only by its loop
	draining atomic.Bool
	Stats    Stats
}

// loopState is what one loop keeps for the server: its connections (for
// Drain) and the Date value, formatted once per second.
type loopState struct {
	conns    map[*connState]struct{}
	date     []byte
	dateUnix int64
}

// New makes a server; Attach gives it its engine before it listens.
func New(cfg Config) *Server {
	cfg = cfg.withDefaults()
	if cfg.Router == nil {
		cfg.Router = NewRouter()
	}
	return &Server{cfg: cfg}
}

// Attach binds the server to the started engine whose loops will run its
// connections; call it once, before the listener opens.
func (s *Server) Attach(e *reactor.Engine) {
	s.eng = e
	s.loops = make([]*loopState, len(e.Loops()))
	for i := range s.loops {
		s.loops[i] = &loopState{conns: make(map[*connState]struct{})}
	}
}

// ListenConfig returns the listener configuration that serves addr with s.
func (s *Server) ListenConfig(addr conn.Addr, spread bool) conn.ListenConfig {
	return conn.ListenConfig{
		Addr:       addr,
		Spread:     spread,
		NewHandler: s.newConn,
		MaxConns:   s.cfg.MaxConns,
		Refuse:     s.refuse,
		Options: conn.Options{
			HighWater: s.cfg.HighWater,
			// Unconsumed input is at most one request head plus what a
			// client pipelined behind it before reading stopped.
			MaxInput: s.cfg.Limits.MaxRequestLine + s.cfg.Limits.MaxHeaderBytes + 256<<10,
		},
	}
}

// Draining reports whether Drain was called.
func (s *Server) Draining() bool { return s.draining.Load() }

// Drain closes idle connections at once and every other one after the
// response in progress; the channel closes once all are gone, or after
// timeout (the caller then stops the engine, which closes the rest).
func (s *Server) Drain(timeout time.Duration) <-chan struct{} {
	s.draining.Store(true)
	for i, l := range s.eng.Loops() {
		ls := s.loops[i]
		// A stopped loop has closed its connections already.
		_ = l.Submit(func(*reactor.Loop) {
			for st := range ls.conns {
				st.drain()
			}
		})
	}
	done := make(chan struct{})
	deadline := time.Now().Add(timeout)
	go func() {
		defer close(done)
		for s.Stats.Connections.Load() > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return done
}

// dateValue returns the Date field's value for now.
func (ls *loopState) dateValue(now time.Time) []byte {
	if sec := now.Unix(); sec != ls.dateUnix || ls.date == nil {
		ls.dateUnix = sec
		ls.date = httpwire.AppendHTTPDate(ls.date[:0], now)
	}
	return ls.date
}

// refuse answers a connection over MaxConns with 503 and closes it.
func (s *Server) refuse(*conn.Conn) conn.Handler {
	s.Stats.Refused.Add(1)
	return refuser{}
}

type refuser struct{}

var busyResponse = httpwire.AppendError(nil, 503, nil)

func (refuser) OnOpen(c *conn.Conn) {
	c.Write(busyResponse)
	c.Close()
}
func (refuser) OnData(_ *conn.Conn, data []byte) int { return len(data) }
func (refuser) OnClose(*conn.Conn, error)            {}

// StatsSnapshot is a copy of Stats for /status.
type StatsSnapshot struct {
	Connections int64  `json:"connections"`
	Accepted    uint64 `json:"accepted"`
	Refused     uint64 `json:"refused"`
	Requests    uint64 `json:"requests"`
	Refusals    uint64 `json:"refusals"`
	Timeouts    uint64 `json:"timeouts"`
	Draining    bool   `json:"draining"`
}

// Snapshot reads the counters.
func (s *Server) Snapshot() StatsSnapshot {
	return StatsSnapshot{
		Connections: s.Stats.Connections.Load(),
		Accepted:    s.Stats.Accepted.Load(),
		Refused:     s.Stats.Refused.Load(),
		Requests:    s.Stats.Requests.Load(),
		Refusals:    s.Stats.Refusals.Load(),
		Timeouts:    s.Stats.Timeouts.Load(),
		Draining:    s.draining.Load(),
	}
}
