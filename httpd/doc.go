// Package httpd is Scale Stack's HTTP/1.1 server on the reactor engine: a
// conn.Handler per connection that parses requests with httpwire, routes
// each to the Handler mounted on the longest matching path prefix (the "URI
// server"), and writes the responses back in request order.
//
// # How a request flows
//
// The connection's loop receives bytes and conn presents every unconsumed
// byte to OnData. The server parses the next request head there (bounded by
// Limits; a refused head is answered with its status and the connection
// closes), picks the handler by path prefix, and calls Handler.Serve on the
// same loop. The handler answers at once (Reply, or WriteHeader + Write +
// End), hands the body to a BodySource that the server pulls from as the
// socket drains (a large file; a source fed from elsewhere, such as rows
// from a database, returns ErrBodyPending while it has nothing and calls
// Response.Pump once it has), or keeps the Response and ends it later
// from the same loop (a handler waiting for a backend). A request body is
// decoded as it arrives and given to a BodyHandler, or read and dropped.
// Pipelined requests wait in the input, unparsed, until the response ahead
// of them has ended, so responses leave in request order; while one is in
// progress, or while output is over the high-water mark, the connection
// stops reading, so neither a pipelining client nor one that never reads
// can make the server buffer without bound.
//
// # Handlers
//
// A Handler runs on the loop that owns the connection and must never block:
// no waiting on channels, locks held by other goroutines, network or slow
// disk I/O. Work that must wait posts itself to where it can be done and
// comes back to the loop (reactor Post/Submit) to end the Response. The
// request's byte slices alias the connection's input and are valid only
// during Serve (and a body's only during OnBody): copy what must outlive
// the call. A Response is used from its connection's loop only.
//
// A handler that relays bytes from elsewhere (the reverse proxy) keeps to
// the same bounds: Response.Watch tells it when output over the high-water
// mark has drained (OutputFull says when it is over) and when the
// connection is gone, and Response.HoldBody stops reading the request body
// while the handler cannot take more of it.
//
// # Timeouts and limits
//
// A request head must arrive within HeaderTimeout of its first byte (408
// and close), a body must keep moving (BodyTimeout between reads; 408 and
// close), a keep-alive connection may sit idle for IdleTimeout (closed
// without a word, as RFC 9112 section 9.8 allows), and a client that stops
// reading its response is cut off after SendTimeout without progress.
// MaxConns bounds the open connections; those beyond get 503 and a close.
//
// # Draining
//
// Drain stops new requests from starting on existing connections: idle
// keep-alive ones close at once, a response in progress finishes and its
// connection closes after it (it carries "Connection: close"), and a
// connection that has not sent its first request yet (accepted just before
// a hand-over) gets that one request answered, with "Connection: close",
// within the header timeout; the channel Drain
// returns closes when every connection is gone or the timeout passed.
//
// This package imports only the standard library, golang.org/x/sys and this
// module's reactor, buffer, conn and httpwire packages.
package httpd
