package pool

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/scalestack/scalestack/mysqlwire"
)

// Backend health: each loop pings the backends that have sat idle for a
// health interval (COM_PING, answered within ConnectTimeout or the
// connection is dropped and reconnects with backoff), so a server that
// silently went away is noticed before a client's command is sent to it.
// When every backend connection is down and the last attempt to log one in
// failed, the backend is unavailable: commands fail at once with ERR 9003
// instead of waiting QueueTimeout, and waiting ones are failed too. The
// first backend that logs in again ends that state.

// pingPayload is the health check, shared so a check allocates nothing.
var pingPayload = []byte{byte(mysqlwire.ComPing)}

var errHealthTimeout = errors.New("pool: backend did not answer a health check in time")

// healthState is shared by the loops; atomics only.
type healthState struct {
	// unavailable: no backend is logged in and the last login attempt
	// failed.
	unavailable atomic.Bool
}

// Available reports whether the proxy believes the backend server can be
// reached (false once every connection is down and reconnecting fails).
func (p *Proxy) Available() bool { return !p.health.unavailable.Load() }

func (p *Proxy) backendsConnected() int64 {
	var n int64
	for _, sh := range p.shards {
		n += sh.stats.BackendsConnected.Load()
	}
	return n
}

// noteBackendFailure runs on a loop after a connect or login failed: with
// nothing logged in, the backend counts as unavailable and this loop's
// waiters are answered (other loops answer theirs at their next health
// tick).
func (sh *shard) noteBackendFailure() {
	if sh.p.stopping.Load() || sh.p.backendsConnected() > 0 {
		return
	}
	if !sh.p.health.unavailable.Swap(true) {
		sh.p.logf("backend unavailable: no connection is logged in and reconnecting fails; commands fail with ERR %d until one logs in",
			ErBackendUnavailable)
	}
	sh.failWaiters()
}

// noteBackendUp ends the unavailable state.
func (sh *shard) noteBackendUp() {
	if sh.p.health.unavailable.Swap(false) {
		sh.p.logf("backend available again")
	}
}

// failFast answers s's command with ERR 9003 when the backend is
// unavailable and reports whether it did.
func (sh *shard) failFast(s *session) bool {
	if !sh.p.health.unavailable.Load() {
		return false
	}
	sh.stats.FastFails.Add(1)
	s.writeERR(errBackendUnavailable)
	s.finishCommand()
	return true
}

// failWaiters answers every waiting command with ERR 9003.
func (sh *shard) failWaiters() {
	for sh.waitHead != nil {
		s := sh.waitHead
		sh.dequeue(s)
		sh.failFast(s)
	}
}

// startHealth arms the loop's health timer (on the loop).
func (sh *shard) startHealth() {
	sh.healthTimer.Func = healthTick
	sh.healthTimer.Arg = sh
	sh.loop.Schedule(&sh.healthTimer, sh.p.cfg.HealthInterval)
}

func healthTick(arg any) {
	sh := arg.(*shard)
	if sh.p.stopping.Load() {
		return
	}
	sh.pingIdle()
	if sh.nWaiting > 0 && sh.p.health.unavailable.Load() {
		sh.failWaiters()
	}
	sh.loop.Schedule(&sh.healthTimer, sh.p.cfg.HealthInterval)
}

// pingIdle sends COM_PING on every backend idle for a health interval. A
// backend being checked is off the idle list, so no session can take it.
func (sh *shard) pingIdle() {
	now := time.Now()
	for i := 0; i < len(sh.idle); {
		b := sh.idle[i]
		if now.Sub(b.idleSince) < sh.p.cfg.HealthInterval || b.c == nil {
			i++
			continue
		}
		copy(sh.idle[i:], sh.idle[i+1:])
		sh.idle[len(sh.idle)-1] = nil
		sh.idle = sh.idle[:len(sh.idle)-1]
		b.ping()
	}
	sh.setHints()
}

func (b *backend) ping() {
	b.sh.stats.HealthChecks.Add(1)
	b.send(stepPing, pingPayload)
	b.sh.loop.Schedule(&b.timer, b.p.cfg.ConnectTimeout)
}

// onPingPacket handles the answer to a health check: OK puts the backend
// back, anything else drops the connection (it reconnects).
func (b *backend) onPingPacket(payload []byte) {
	prog, err := b.tracker.Feed(payload)
	if err == nil && prog != mysqlwire.Complete {
		err = errBackendProtocol
	}
	if err == nil {
		if code, _, failed := b.tracker.Err(); failed {
			err = fmt.Errorf("pool: health check answered ERR %d", code)
		}
	}
	if err != nil {
		b.sh.stats.HealthCheckFailures.Add(1)
		b.c.Abort(err)
		return
	}
	b.sh.loop.Cancel(&b.timer)
	b.step = stepNone
	b.sh.release(b)
}

// pingTimedOut drops a backend that did not answer its health check.
func (b *backend) pingTimedOut() {
	b.sh.stats.HealthCheckFailures.Add(1)
	if b.c != nil {
		b.c.Abort(errHealthTimeout)
	}
}
