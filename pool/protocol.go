package pool

import "errors"

// Protocol is what a wire protocol supplies to the pool: for each of the N
// backend connection slots, a Server that logs a fresh connection in,
// reads what the backend sends, resets, pings and says goodbye. The pool
// never looks at a byte itself.
type Protocol interface {
	// NewServer returns the protocol's side of backend b. It is called
	// once per slot, from Pool.Start, and lives as long as the pool: b
	// reconnects under it.
	NewServer(b *Backend) Server
}

// Server is the protocol's side of one backend connection. Every method
// runs on the loop that owns the backend at the time.
//
// The server tells the pool what happened through the Backend:
// LoggedIn (the login finished), Pinged (a health check answered),
// ResetDone (a reset finished), Abandon (its state can no longer be
// trusted: the connection is closed and reconnects). The exchange the
// protocol runs for a client ends with the client calling
// LoopPool.Release, LoopPool.Reset or LoopPool.Keep.
type Server interface {
	// Open: a connection to the backend is established (Backend.Conn);
	// the login starts. It must end in Backend.LoggedIn within
	// Config.ConnectTimeout, or the connection is aborted.
	Open()
	// Data is conn.Handler.OnData for the backend's connection: it
	// returns how much of data it consumed.
	Data(data []byte) int
	// Ping starts a health check of an idle backend; the server calls
	// Backend.Pinged when it is answered, or aborts the backend. The pool
	// aborts it after Config.ConnectTimeout without an answer.
	Ping()
	// Reset returns the backend to a clean state after a client that
	// pinned it left (the pool counts it in Stats.BackendResets); the
	// server calls Backend.ResetDone when done, or aborts the backend.
	Reset()
	// Quit writes the protocol's goodbye; the pool closes the connection
	// right after.
	Quit()
	// Down: the connection is gone (the owner, if any, has been told
	// through Client.Lost). Whatever the server knew of the connection's
	// state is void.
	Down(err error)
}

// Client is what holds a backend between LoopPool.Acquire and
// LoopPool.Release: a protocol's client session. Its methods run on the
// client's loop.
type Client interface {
	// Granted gives the client the backend it waited for (or found idle:
	// then Granted runs inside Acquire).
	Granted(b *Backend)
	// Refused ends a wait without a backend: ErrQueueTimeout or
	// ErrUnavailable.
	Refused(err error)
	// Revoked takes back a backend the client kept (LoopPool.Keep) for a
	// waiter that needs it; the client no longer holds it.
	Revoked(b *Backend)
	// Lost tells the client the backend it held broke; it no longer holds
	// it.
	Lost(b *Backend, err error)
}

// Errors a wait ends with (Client.Refused).
var (
	// ErrQueueTimeout: the waiter's deadline passed (Config.QueueTimeout).
	ErrQueueTimeout = errors.New("pool: timed out waiting for a backend connection")
	// ErrUnavailable: every backend is down and the last login failed.
	ErrUnavailable = errors.New("pool: no backend connection is available")
)

// Class names what a backend must be to serve a waiter: the account it is
// logged in as (the protocol's number for it; 0 is the service account)
// and protocol capability flags (for MySQL, say, CLIENT_FOUND_ROWS).
// Acquire prefers an idle backend of the waiter's class (else it takes the
// one idle longest). A protocol that
// logs backends in under several identities or flags sets a backend's
// with Backend.SetClass (or Backend.Reopen) and, when it is handed a
// backend of another class, converts it as the first step of its exchange
// (an account: COM_CHANGE_USER), or, for what only a new login changes
// (MySQL's CLIENT_FOUND_ROWS), reopens it with Backend.Reopen.
// Two numbers rather than a name: every idle client carries one.
type Class struct {
	Account uint32
	Flags   uint32
}

// Pipelining. Today a backend has one owner and one exchange in flight:
// the pool hands it to the next waiter only once the owner releases it.
// The shape for more than one exchange in flight per backend (a protocol
// whose responses come back in order, such as memcached's or MySQL's with
// a pipelined batch of sync operations): the protocol's Server keeps a
// FIFO of the exchanges it has written, routes each response to the head,
// and releases the backend once the FIFO is empty; LoopPool.Release then
// works as now. The MySQL proxy shares a backend between clients that
// way without the pool's help (pool/mysqlproxy pipeline.go): the owner
// the pool granted it to lets go of it when its own exchange ends, other
// clients' exchanges ride behind it, and the protocol releases it once
// the last is done; the pool sees one hold, charged to the owner's
// tenant. Nothing in the pool assumes more than that every grant is
// released once.
