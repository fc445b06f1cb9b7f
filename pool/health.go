package pool

import "time"

// Backend health: each loop pings the backends that have sat idle for a
// health interval (the protocol's Server.Ping, answered within
// ConnectTimeout or the connection is dropped and reconnects with
// backoff), so a server that silently went away is noticed before a
// client's request is sent to it. When every backend connection is down
// and the last attempt to log one in failed, the backend is unavailable:
// requests are refused at once with ErrUnavailable instead of waiting
// QueueTimeout, and waiting ones are refused too. The first backend that
// logs in again ends that state.

// Available reports whether the pool believes the backend server can be
// reached (false once every connection is down and reconnecting fails).
func (p *Pool) Available() bool { return !p.unavailable.Load() }

// noteBackendFailure runs on a loop after a connect or login failed: with
// nothing logged in, the backend counts as unavailable and this loop's
// waiters are refused (other loops refuse theirs at their next health
// tick).
func (lp *LoopPool) noteBackendFailure() {
	p := lp.p
	if p.stopping.Load() || p.Connected() > 0 {
		return
	}
	if !p.unavailable.Swap(true) {
		p.logf("backend unavailable: no connection is logged in and reconnecting fails; requests are refused until one logs in")
	}
	lp.failWaiters()
}

// noteBackendUp ends the unavailable state.
func (lp *LoopPool) noteBackendUp() {
	if lp.p.unavailable.Swap(false) {
		lp.p.logf("backend available again")
	}
}

// failFast refuses w with ErrUnavailable when the backend is unavailable
// and reports whether it did.
func (lp *LoopPool) failFast(w *Waiter) bool {
	if !lp.p.unavailable.Load() {
		return false
	}
	lp.stats.FastFails.Add(1)
	w.Client.Refused(ErrUnavailable)
	return true
}

// failWaiters refuses every waiter with ErrUnavailable.
func (lp *LoopPool) failWaiters() {
	for {
		w := lp.sched.Any()
		if w == nil {
			return
		}
		lp.Leave(w)
		lp.failFast(w)
	}
}

// startHealth arms the loop's health timer (on the loop).
func (lp *LoopPool) startHealth() {
	lp.healthTimer.Func = healthTick
	lp.healthTimer.Arg = lp
	lp.loop.Schedule(&lp.healthTimer, lp.p.cfg.HealthInterval)
}

func healthTick(arg any) {
	lp := arg.(*LoopPool)
	if lp.p.stopping.Load() {
		return
	}
	lp.pingIdle()
	if lp.nWaiting > 0 && lp.p.unavailable.Load() {
		lp.failWaiters()
	}
	lp.loop.Schedule(&lp.healthTimer, lp.p.cfg.HealthInterval)
}

// pingIdle health-checks every backend idle for a health interval. A
// backend being checked is off the idle list, so no client can take it.
func (lp *LoopPool) pingIdle() {
	now := time.Now()
	for i := 0; i < len(lp.idle); {
		b := lp.idle[i]
		if now.Sub(b.idleSince) < lp.p.cfg.HealthInterval || b.c == nil {
			i++
			continue
		}
		copy(lp.idle[i:], lp.idle[i+1:])
		lp.idle[len(lp.idle)-1] = nil
		lp.idle = lp.idle[:len(lp.idle)-1]
		b.ping()
	}
	lp.setHints()
}

// Quit runs on the loop once no client is left: idle backends are closed
// now (after the protocol's goodbye), and any other (being reset,
// health-checked, moved here or logging in) when it next becomes free.
// Call Pool.Stop first so that none reconnects.
func (lp *LoopPool) Quit() {
	lp.quitting = true
	lp.loop.Cancel(&lp.healthTimer)
	lp.loop.Cancel(&lp.stealRetry)
	for n := len(lp.idle); n > 0; n = len(lp.idle) {
		b := lp.idle[n-1]
		lp.idle[n-1] = nil
		lp.idle = lp.idle[:n-1]
		b.quit()
	}
	lp.setHints()
}
