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
// # UDP
//
// ListenUDP serves datagrams with one SO_REUSEPORT socket per loop; each
// loop's PacketConn hands OnDatagram whole datagrams with the sender's
// address, and WriteTo copies a reply into a bounded output queue (4096
// datagrams and 4 MiB by default) that is sent in batches at the end of the
// loop's iteration. A full queue drops and counts, as UDP servers do, and a
// datagram over MaxDatagram is counted and dropped on receipt, never
// delivered cut short; UDPListener.Stats sums the loops' counts. See udp.go
// for why it lives here.
//
// # TLS
//
// Options.TLS runs a connection over TLS 1.2 or 1.3 with the standard
// library's crypto/tls, unmodified and uncopied: accepted connections as the
// server, dialled ones as the client. The handler sees plaintext through the
// same Conn as ever, so every module gets TLS without a second connection
// type; OnOpen follows the handshake, and a failed handshake goes straight
// to OnClose. TLSCerts builds configurations from PEM files (certificate,
// key, and a CA file that turns on client certificates for a server or
// replaces the system roots for a client) and reloads them: a handshake uses
// the configuration current when its connection opened, established
// connections keep what they negotiated, and a server's session ticket keys
// live in a base configuration that reloads do not replace, so resumption
// survives them. SNI and ALPN are crypto/tls's own (NextProtos in the
// template, ServerName and NegotiatedProtocol in Conn.TLSState).
//
// Protocols that negotiate TLS on a plain connection (MySQL's SSLRequest,
// STARTTLS) upgrade it in place with Conn.StartTLSServer or StartTLSClient,
// called on the loop once the plain request has been read or written. The
// handler stays open throughout and is told the handshake's outcome through
// the done callback instead of OnOpen: nil before the first decrypted byte
// reaches OnData, or the error (failure, timeout, a full queue, or the
// connection closing first), after which OnClose follows. Nothing the peer
// sent is lost at the switch: called from OnData, StartTLS takes the bytes
// OnData leaves unconsumed (a client that pipelines its ClientHello right
// behind the request) and feeds them to the handshake before anything the
// socket brings later; output written before the call goes out in the
// clear ahead of the first flight, output written after it waits for the
// handshake and is encrypted; a half-close asked for meanwhile waits too.
// From then on the connection is exactly a TLS connection (same pool,
// timeout and record layer).
//
// TLS lives in this package rather than beside it because it has to sit
// between the socket and the handler inside the Conn: its output must be
// ordered with the handler's, counted by the same watermarks, flushed in the
// same send, and its close_notify must go out before the socket's FIN. A
// separate package would need those internals exported.
//
// After the handshake, records are decrypted and encrypted on the loop that
// owns the connection, through tlsState, an in-memory net.Conn: received
// bytes are lent to crypto/tls for one call, and when they run out its Read
// gets errWouldBlock, a net.Error whose Timeout and Temporary are true.
// What crypto/tls does with that was checked in Go 1.26.8's
// src/crypto/tls/conn.go: readRecordOrCCS reads the record header and then
// the body through readFromUntil, and when either fails it records the
// error as permanent only "if e, ok := err.(net.Error); !ok ||
// !e.Temporary()" (a type assertion, not errors.As: the transport's error
// must itself be the net.Error); a temporary error is returned to the
// caller of Read and nothing is lost, since readFromUntil appends to
// c.rawInput with bytes.Buffer.ReadFrom, which keeps what it read before the
// error, and a partial post-handshake message stays in c.hand. So a partial
// record waits inside the tls.Conn until the next bytes arrive, and the
// next Read completes it. readFromUntil also pulls everything the transport
// offers (atLeastReader stops only once it has enough and the source is
// empty), so the lent bytes are never referenced after the call. A Read may
// write (an alert, the answer to a TLS 1.3 KeyUpdate); Write encrypts a
// record at a time and hands each to the transport, which appends it to the
// connection's output. Plaintext the handler writes is encrypted when the
// iteration's output is flushed, in one pass, so many small writes make few
// records. Backpressure is the plain connection's: plaintext not yet
// encrypted and records not yet sent both count towards the high-water
// mark, and a paused connection stops receiving; what one receive brought is
// still decrypted, into the connection's input buffer, which MaxInput
// bounds as for plain input. Renegotiation is refused by
// crypto/tls's defaults on both sides, so the record layer never runs a
// handshake. The uncontended mutexes crypto/tls takes inside Read and Write
// are the only locks on a TLS connection's data path. One cost cannot be
// avoided without changing crypto/tls: a tls.Conn keeps its own input and
// output buffers (a record's worth each, about 16 KiB) for as long as it
// lives, so an idle TLS connection is not free of buffers the way a plain
// one is.
//
// The handshake cannot run that way: within one call it reads several times,
// and any error, temporary or not, becomes the handshake's permanent result
// (handshakeContext stores it in c.handshakeErr). It therefore runs on a
// goroutine of a HandshakePool, over the same tlsState, whose Read and Write
// then go through a pipe (type handshake) to the loop, which keeps owning
// the socket:
//
//   - received bytes: the loop appends them to the pipe under its mutex and
//     signals the goroutine; past 32 KiB unread it stops receiving until the
//     goroutine has read half of it (posted back with Loop.Submit);
//   - the goroutine's flights: each Write is copied into a buffer and posted
//     to the loop with Loop.Submit, which queues it ahead of any plaintext;
//   - the result: posted with Loop.Submit after the last flight (Submit
//     keeps order); the loop then takes the bytes the handshake did not
//     read, switches the transport to the loop and calls OnOpen. From that
//     moment only the loop touches the tls.Conn; the Submit is what orders
//     the goroutine's last use before the loop's first.
//
// The pool bounds three things: MaxInFlight handshakes under way, each on
// its own goroutine (the bound on goroutines: a storm of connections never
// makes more); Workers of them computing at once (a handshake gives its slot
// up while it waits for the peer, so clients that stall mid-handshake, a TLS
// slowloris, hold parked goroutines, not workers, and new clients keep
// getting through; a freed slot goes first to a handshake resuming after
// its peer answered, so a storm completes handshakes in arrival order rather
// than all of them late together); and Queue connections waiting for a goroutine, which
// read nothing meanwhile (their bytes wait in the kernel). A connection
// beyond the queue is closed at once. TLS.HandshakeTimeout (default 10 s)
// runs from the moment the connection opened, queueing included: at that
// point the loop's timer closes the connection, which fails the goroutine's
// next read; the goroutine also stops on its own a second later, in case
// that loop is stuck. The pool keeps no goroutine while idle, and a
// server's handshake enters it only with the client's first bytes: a client
// that connects and sends nothing holds no goroutine and no queue place
// (only its connection, until the timeout), and the goroutine a real client
// gets finds its ClientHello already there instead of parking for it, one
// hand-off between threads fewer per handshake.
//
// This package's TLS must never run crypto/tls's record layer anywhere but
// on the owning loop, block a loop on a handshake, let a handshake outlive
// its deadline, read from a socket for a handshake that is only queued, or
// carry a modified copy of crypto/tls. kTLS, handing the record layer to the
// kernel, is not done: crypto/tls exports neither the traffic keys nor the
// sequence numbers, and the kernels here lack the tls module.
//
// This package never blocks a loop, never hands the kernel a Go pointer that
// the driver does not keep alive, and imports only the standard library,
// golang.org/x/sys and this module's reactor and buffer packages (crypto/tls
// and crypto/x509 among the former).
package conn
