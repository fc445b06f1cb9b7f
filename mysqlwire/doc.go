// Package mysqlwire implements the MySQL/MariaDB client/server protocol for
// both sides of a connection: framing, length-encoded values, the v10
// handshake and its response, authentication scrambles, OK/ERR/EOF packets,
// command requests, binary protocol values and, most importantly for a
// proxy, ResponseTracker, which follows a server's response to one command
// packet by packet and says when it is complete and in what state it left
// the session.
//
// The package is written for a reactor-based proxy that owns its buffers:
//
//   - It performs no I/O and starts no goroutines. Decoders work on bytes
//     the caller already holds and report "need more" (ok == false with a
//     nil error) instead of blocking. Encoders append to a caller-supplied
//     slice and return it, in the style of strconv.AppendInt.
//   - The hot path allocates nothing: ReadPacket, PeekHeader, CommandOf,
//     IsResultSetTerminator, ParseOK/ParseERR, RewriteStatementID and
//     ResponseTracker.Feed return slices that alias the input and use
//     predeclared sentinel errors. Decoded byte slices are valid only while
//     the caller leaves the underlying buffer alone.
//   - It never trusts a length read from the wire: every length is checked
//     against the bytes actually present (ErrTruncated) and against the
//     caller's limit (ErrPacketTooLarge) before anything is sliced or
//     allocated, so a hostile peer cannot make it panic, loop or allocate
//     without bound.
//   - It holds no locks and uses no reflection; values are safe to use from
//     one goroutine at a time.
//
// Sequence ids: every Append* function that writes a whole packet takes the
// sequence id to use and returns the next one, so a caller that synthesizes
// or renumbers packets threads the id through.
//
// Capabilities carry MariaDB's extended capability bits in their upper 32
// bits; they appear on the wire only while CLIENT_MYSQL (bit 0) is clear.
// MySQL55Caps masks a capability set down to what a MySQL 5.5 server offers.
package mysqlwire
