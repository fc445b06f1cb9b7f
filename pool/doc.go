// Package pool is Scale Stack's connection concentrator: many clients share
// exactly N backend connections, each of which serves one client at a time
// for as long as that client holds it. It knows nothing of any wire
// protocol: a Protocol supplies, for each backend, a Server that logs a
// fresh connection in, reads what the backend sends, resets, pings and
// says goodbye. The MySQL proxy (package pool/mysqlproxy) is one such
// protocol; it is the only part of the tree under pool that imports
// mysqlwire.
//
// # Backends
//
// The N backend connections (Config.Conns) are created by Start, split
// across the reactor loops and kept at N: a broken one reconnects with
// exponential backoff (50 ms doubling to 10 s) and jitter; none is ever
// added. Config.Targets lists the servers; the N connections are split
// between the writable ones by weight (read-only ones are recorded, not
// used). A backend is logged in by its Server (Server.Open, then
// Backend.LoggedIn within Config.ConnectTimeout); Pool.Ready fails while
// fewer than N are logged in (one atomic count, Pool.Connected, that moves
// between loops leave alone) or while one has waited Config.StallTimeout
// for the server's answer with nothing from it (the Server marks a request
// with Backend.Awaiting and its end with Backend.Answered; any data read
// restarts the wait).
//
// # Loops, waiters and hand-offs
//
// Each loop owns a LoopPool (not a "shard": nothing is partitioned by key,
// and backends move between loops): its backends, a list of idle ones,
// the backends clients keep for a while (Keep: a waiter reclaims them,
// oldest first, before it would wait), and the requests waiting for one.
// A request is a Waiter: the Client to answer, the Class of backend it
// needs (the account a backend is logged in as and capability flags: the
// MySQL proxy's CLIENT_FOUND_ROWS) and, while queued, a deadline (Config.QueueTimeout,
// changed live by SetQueueTimeout), after which the client is refused with
// ErrQueueTimeout. The waiters are ordered by a Scheduler (FIFO; weighted
// fair queueing between accounts plugs in there).
//
// LoopPool.Acquire grants an idle backend at once (Client.Granted runs
// inside Acquire) or queues the waiter. LoopPool.Release gives a backend
// back; if requests wait, it is handed to the first of them at the end of
// the loop's iteration (the LoopPool is a reactor.Flusher queued with
// Loop.Defer), never from the stack of the client that released it, so one
// client's exchange never starts inside another's. LoopPool.Reset gives
// back a backend whose state the next client must not see: the Server
// resets it (Server.Reset, Backend.ResetDone) before it is released.
//
// A loop with waiters and no idle backend asks a loop whose (atomic) idle
// hint is positive for one; a loop releasing a backend with no local
// waiters hands it to a loop whose waiting hint is positive, and one with
// waiters gives a freed backend to a more backlogged loop, and every other
// one to any loop with waiters, so a loop that reuses what it frees cannot
// starve the others. Backends move by conn.Conn.Detach and conn.Adopt through the
// loops' mailboxes (reactor Post), so a backend is only ever touched by the
// loop that owns it and the data path takes no lock.
//
// # Health, unavailability and shutdown
//
// Idle backends are pinged (Server.Ping) every Config.HealthInterval; one
// that does not answer (Backend.Pinged) within Config.ConnectTimeout is
// dropped and reconnects. When every backend is down and the last login
// failed, the pool is unavailable: requests are refused at once with
// ErrUnavailable instead of waiting out their deadline, and waiting ones
// too; the first backend that logs in again ends that state.
//
// Stop keeps backends from reconnecting; LoopPool.Quit, run on each loop
// once the protocol has no client left, closes idle backends with the
// protocol's goodbye (Server.Quit) and every other one as soon as it is
// free, never under a client.
//
// # Seams for what comes next
//
// Acquire by class: Waiter.Class and Backend.SetClass (see Class).
// Acquire takes an idle backend of the waiter's class, else any idle one,
// which the protocol converts; one it cannot convert on the live
// connection (a flag fixed at login) it reopens with Backend.Reopen: the
// connection is closed with the protocol's goodbye and a new one dialled
// in the same slot (never more than N), logged in as the new class and
// granted to the same client (Stats.BackendReopens). A backend freed while
// waiters of several classes wait goes to the first of its own class among
// the next 16 (a Scheduler that implements ClassFinder; FIFO does), the
// first waiter being passed over at most 4 times in a row, so that a mixed
// load does not convert a backend at every hand-off.
// Pipelining: see the comment beside Class in protocol.go for the shape
// of more than one exchange in flight per backend. A protocol that writes
// a batch of operations in one go and consumes their responses in order
// needs nothing more from the pool than one exchange does.
//
// Counters (Stats, per loop, summed by Pool.Stats) are plain atomics that
// only their loop writes: queue waits and their histogram, backends
// connected, idle, adopted, reconnected, reopened as another class, reset,
// abandoned, health checks.
//
// This package must never block a loop, take a lock on the data path or
// allocate per request in steady state; it imports only the standard
// library and this module's reactor, conn and buffer packages.
package pool
