package pool

import (
	"sync/atomic"
	"time"
)

type atomic32 = atomic.Int32

// Stats are one loop's counters of the pool. Each field is written only by
// its loop (plain atomic adds, no sharing between loops) and may be read
// from any goroutine; Pool.Stats sums them.
type Stats struct {
	QueueWaiting  atomic.Int64  // gauge: requests waiting for a backend
	QueueWaits    atomic.Uint64 // requests that had to wait
	QueueTimeouts atomic.Uint64 // waits that ended in ErrQueueTimeout
	QueueWaitNs   atomic.Uint64 // total time spent waiting
	// QueueWait is how long requests that had to wait waited (timeouts
	// included).
	QueueWait Histogram

	BackendsConnected   atomic.Int64  // gauge: logged-in backend connections on this loop
	BackendsIdle        atomic.Int64  // gauge: of those, idle
	BackendConnects     atomic.Uint64 // successful logins
	BackendFailures     atomic.Uint64 // connects or logins that failed
	BackendUnknownState atomic.Uint64 // closed because their state was unknown (Backend.Abandon)
	BackendResets       atomic.Uint64 // resets after a pinning client left (LoopPool.Reset)
	BackendsAdopted     atomic.Uint64 // backends that moved here from another loop
	BackendBytesIn      atomic.Uint64 // bytes read from backends
	BackendReconnects   atomic.Uint64 // logins of a backend that had been logged in before
	BackendReopens      atomic.Uint64 // backends closed and logged in again as another class (Backend.Reopen)
	HealthChecks        atomic.Uint64 // pings of idle backends
	HealthCheckFailures atomic.Uint64 // health checks that failed or timed out
	FastFails           atomic.Uint64 // requests refused with ErrUnavailable
}

// StatsSnapshot is a sum of Stats at one moment.
type StatsSnapshot struct {
	QueueWaiting, BackendsConnected, BackendsIdle                                         int64
	QueueWaits, QueueTimeouts, QueueWaitNs                                                uint64
	QueueWait                                                                             HistogramSnapshot
	BackendConnects, BackendFailures, BackendUnknownState, BackendResets                  uint64
	BackendsAdopted, BackendBytesIn, BackendReconnects, HealthChecks, HealthCheckFailures uint64
	FastFails, BackendReopens                                                             uint64
}

func (s *Stats) addTo(o *StatsSnapshot) {
	o.QueueWaiting += s.QueueWaiting.Load()
	o.BackendsConnected += s.BackendsConnected.Load()
	o.BackendsIdle += s.BackendsIdle.Load()
	o.QueueWaits += s.QueueWaits.Load()
	o.QueueTimeouts += s.QueueTimeouts.Load()
	o.QueueWaitNs += s.QueueWaitNs.Load()
	s.QueueWait.AddTo(&o.QueueWait)
	o.BackendConnects += s.BackendConnects.Load()
	o.BackendFailures += s.BackendFailures.Load()
	o.BackendUnknownState += s.BackendUnknownState.Load()
	o.BackendResets += s.BackendResets.Load()
	o.BackendsAdopted += s.BackendsAdopted.Load()
	o.BackendBytesIn += s.BackendBytesIn.Load()
	o.BackendReconnects += s.BackendReconnects.Load()
	o.HealthChecks += s.HealthChecks.Load()
	o.HealthCheckFailures += s.HealthCheckFailures.Load()
	o.FastFails += s.FastFails.Load()
	o.BackendReopens += s.BackendReopens.Load()
}

// LatencyBuckets are the upper bounds, in seconds, of the latency and queue
// wait histograms; fixed so that observing is an index search and one
// atomic add.
var LatencyBuckets = [...]float64{
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

var latencyBoundsNs = func() (b [len(LatencyBuckets)]int64) {
	for i, s := range LatencyBuckets {
		b[i] = int64(s * 1e9)
	}
	return b
}()

// Histogram counts durations in LatencyBuckets (the last slot is +Inf).
// Counts are per bucket, not cumulative; exporters accumulate them.
type Histogram struct {
	Counts [len(LatencyBuckets) + 1]atomic.Uint64
	SumNs  atomic.Uint64
}

// Observe records one duration.
func (h *Histogram) Observe(d time.Duration) {
	ns := int64(d)
	i := 0
	for i < len(latencyBoundsNs) && ns > latencyBoundsNs[i] {
		i++
	}
	h.Counts[i].Add(1)
	if ns > 0 {
		h.SumNs.Add(uint64(ns))
	}
}

// HistogramSnapshot is a Histogram read at one moment.
type HistogramSnapshot struct {
	Counts [len(LatencyBuckets) + 1]uint64
	SumNs  uint64
}

// Count is the number of observations.
func (h *HistogramSnapshot) Count() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// AddTo adds h's counts to o.
func (h *Histogram) AddTo(o *HistogramSnapshot) {
	for i := range h.Counts {
		o.Counts[i] += h.Counts[i].Load()
	}
	o.SumNs += h.SumNs.Load()
}
