package httpproxy

import (
	"errors"

	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/httpwire"
	"github.com/scalestack/scalestack/pool"
)

type checkKind uint8

const (
	checkNone  checkKind = iota
	checkLogin           // a health check before the connection joins the pool
	checkPing            // a health check of an idle connection
)

var (
	errUnsolicited  = errors.New("httpproxy: upstream sent bytes nobody asked for")
	errUnhealthy    = errors.New("httpproxy: health check failed")
	errCheckClosing = errors.New("httpproxy: health check answered with Connection: close")
)

// server is the pool's Server for one upstream connection: it runs the
// health checks itself and hands the bytes of an exchange's response to
// the exchange that holds the connection.
type server struct {
	p  *Proxy
	up *upstream
	b  *pool.Backend
	x  *exchange // the exchange holding the connection, if any

	check checkKind
	// The response being read: its head (aliasing the connection's
	// input until it is relayed) and body framing.
	head    httpwire.ResponseHead
	body    httpwire.BodyReader
	gotHead bool
}

// Open implements pool.Server: a fresh connection is usable at once, or
// after a health check when a health path is set.
func (s *server) Open() {
	s.x, s.gotHead = nil, false
	if s.p.cfg.HealthPath == "" {
		s.b.LoggedIn()
		return
	}
	s.startCheck(checkLogin)
}

// Ping implements pool.Server.
func (s *server) Ping() { s.startCheck(checkPing) }

func (s *server) startCheck(k checkKind) {
	s.check, s.gotHead = k, false
	s.b.Conn().Write(s.up.checkRequest)
}

// Reset implements pool.Server; the proxy never keeps a connection in a
// state that needs one.
func (s *server) Reset() { s.b.ResetDone() }

// Quit implements pool.Server: HTTP has no goodbye.
func (s *server) Quit() {}

// Down implements pool.Server.
func (s *server) Down(error) { s.check, s.gotHead = checkNone, false }

// Data implements pool.Server.
func (s *server) Data(data []byte) int {
	if x := s.x; x != nil {
		return x.relay(s, data)
	}
	if s.check != checkNone {
		return s.checkData(data)
	}
	s.b.Abandon(errUnsolicited)
	return len(data)
}

// checkData reads a health check's answer.
func (s *server) checkData(data []byte) int {
	lim := s.p.cfg.Limits
	consumed := 0
	for {
		n, err := httpwire.ParseResponseHead(data[consumed:], &s.head, lim)
		if err != nil {
			s.b.Abort(err)
			return len(data)
		}
		if n == 0 {
			return consumed
		}
		consumed += n
		if s.head.Status >= 200 {
			break
		}
	}
	// The answer to HEAD has no body: anything after it is unsolicited.
	switch {
	case consumed < len(data):
		s.b.Abandon(errUnsolicited)
		return len(data)
	case s.p.cfg.HealthPath != "" && s.head.Status >= 400:
		s.b.Abort(errUnhealthy)
		return len(data)
	case !s.head.KeepAlive:
		if s.check == checkPing {
			s.b.Abort(pool.ErrRecycle) // healthy, but done: a fresh one at once
		} else {
			s.b.Abort(errCheckClosing)
		}
		return len(data)
	}
	k := s.check
	s.check = checkNone
	if k == checkLogin {
		s.b.LoggedIn()
	} else {
		s.b.Pinged()
	}
	return consumed
}

// OnHighWater implements conn.WatermarkHandler: the upstream takes the
// request body slower than the client sends it.
func (s *server) OnHighWater(*conn.Conn) {
	if x := s.x; x != nil {
		x.upstreamFull(true)
	}
}

// OnLowWater implements conn.WatermarkHandler.
func (s *server) OnLowWater(*conn.Conn) {
	if x := s.x; x != nil {
		x.upstreamFull(false)
	}
}
