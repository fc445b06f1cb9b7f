// Package httpwire implements HTTP/1.1 message syntax (RFC 9112) for a
// server on the reactor: request heads, request bodies (Content-Length and
// chunked, decoded incrementally as bytes arrive), the keep-alive decision,
// and the pieces of a response (status line, fields, chunked framing).
//
// It is a top-level package beside mysqlwire for the same reason mysqlwire
// is: the codec is what every HTTP piece of Scale Stack shares (the server
// module and its handlers today; the reverse proxy, which parses responses
// and forwards requests, and the HTTP→SQL gateway next), and keeping it free
// of I/O makes it testable with byte slices alone and fuzzable.
//
// # Rules
//
//   - It performs no I/O, starts no goroutines, holds no global mutable
//     state, and imports only the standard library. Decoders work on the
//     bytes the caller already holds and answer "need more" (n == 0, nil
//     error) instead of waiting; the caller presents the unconsumed bytes
//     again, followed by new ones (conn's OnData contract).
//   - The hot path allocates nothing: ParseRequest, Request.Header,
//     BodyReader.Read and the Append* writers into a buffer with spare
//     capacity. A parsed Request's byte slices alias the input and are valid
//     only while the caller leaves that buffer alone. Tests assert this with
//     testing.AllocsPerRun.
//   - It never buffers or trusts a length from the wire: the request line,
//     the header section, the number of fields and the body are bounded by
//     Limits before anything is kept, and an input over a limit is refused
//     as soon as the bytes present prove it is (a request line without its
//     end that is already too long gets 414 at once, not after more input).
//   - It is strict where leniency lets two parsers disagree about where a
//     message ends (request smuggling): both Content-Length and
//     Transfer-Encoding, a repeated or malformed Content-Length, chunked not
//     final, Transfer-Encoding in HTTP/1.0, obs-fold, whitespace between a
//     field name and its colon, a bare CR or a bare LF, and control
//     characters are all refused with 400 (RFC 9112 sections 2.2, 3, 5.1,
//     5.2, 6.1, 6.3). A transfer coding other than chunked gets 501, a major
//     version other than 1 gets 505.
//
// Every error ParseRequest and BodyReader.Read return is an *Error carrying
// the status code a server must answer with; after any of them the framing
// of the connection is lost, so the server answers (AppendError) and closes.
//
// What it must never do: read from or write to a socket, block, log, keep a
// reference to the caller's buffer past the call that was given it (beyond
// the slices it returns into it), or accept an input that another
// conforming parser could frame differently.
package httpwire
