// Package conn provides non-blocking TCP and Unix stream connections owned by
// one reactor loop: listeners, outbound connects with a timeout, reads into
// pooled buffers, writes that are coalesced per loop iteration and queued with
// backpressure, half-close and close.
//
// A Conn belongs to the loop that created or accepted it. Its Handler's
// callbacks run on that loop, and its methods may only be called there;
// to act on a connection from another loop, post a reactor.Task to its loop.
// Input is presented to OnData as one contiguous slice of every byte not yet
// consumed; an idle connection holds no buffer. Output written during an
// iteration is sent once at the end of it, straight out when the socket takes
// it, otherwise queued; past the high-water mark the connection's reading is
// paused (or the handler is told, to pause its peer) until the queue drains
// below the low-water mark, so a peer that stops reading cannot make memory
// grow without bound.
//
// Accepting on several loops: by default each loop has its own SO_REUSEPORT
// listening socket and the kernel spreads incoming connections over them by
// a hash of the 4-tuple; ListenConfig.Spread instead accepts everything on
// loop 0 and posts each descriptor to the loops in turn. Measured side by
// side (bench/results/echo.md, "Accepting: SO_REUSEPORT per loop vs one
// spreading acceptor"), spreading never cost less
// server CPU per connection (the cross-loop post, the wakeup of the
// receiving loop and the single acceptor doing every accept4), so
// SO_REUSEPORT stays the default: it never costs more and no loop depends
// on another to get its connections. Spread remains for what the hash cannot
// give: an exact round-robin when a few long-lived connections would
// otherwise land unevenly (the imbalance that made Seastar turn
// SO_REUSEPORT off), and Unix sockets, which have no port to share.
//
// This package never blocks a loop, never hands the kernel a Go pointer that
// the driver does not keep alive, and imports only the standard library,
// golang.org/x/sys and this module's reactor and buffer packages.
package conn
