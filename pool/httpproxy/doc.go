// Package httpproxy is the HTTP reverse proxy of Scale Stack: an httpd
// handler, mounted on a path prefix, that forwards each request to one of
// several upstream HTTP/1.1 servers over keep-alive connections from the
// concentrator (package pool), and relays the response.
//
// # M:N
//
// Each upstream server has its own pool of exactly Config.Conns
// connections, split across the loops. A request holds one of them for
// exactly one exchange (request out, response back), then gives it back,
// so any number of client connections share the fixed N per server. A
// response ends where httpwire's response framing says (Content-Length,
// chunked, none for HEAD/1xx/204/304, else at close); a connection is given
// back only if the server keeps it open, the body had a length, the whole
// request was sent and the server sent nothing beyond the response;
// otherwise it is closed and the pool reconnects it, at once when nothing
// failed (pool.ErrRecycle: a server closing after its keep-alive requests,
// as nginx does after keepalive_requests, costs a connect, not a backoff).
//
// # Choosing a server
//
// Round robin (each loop keeps its own turn) or least busy (fewest
// requests holding or waiting for one of its connections, an atomic count
// per server), skipping servers the pool holds unavailable: every
// connection down and the last connect failed. That is the ejection: the
// pool keeps retrying the server's connections with backoff (50 ms
// doubling to 10 s) and the first that connects (and passes the health
// check, when Config.HealthPath is set) brings the server back. Idle
// connections are checked every Config.HealthInterval with
// "HEAD HealthPath" ("/" when unset): a connection whose server does not
// answer within ConnectTimeout, answers with a status of 400 or more (only
// when HealthPath is set) or closes is dropped and reconnects.
//
// # Requests and responses
//
// The request head is rebuilt for the upstream: same method, path and
// query, HTTP/1.1; hop-by-hop fields (Connection and the fields it names,
// Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade,
// and Expect, which the server module answered already) are dropped;
// X-Forwarded-For gets the client's address appended and
// X-Forwarded-Proto is set; Host is kept (the upstream's address for an
// HTTP/1.0 request without one). A request body is forwarded as it
// arrives: with its Content-Length, or re-chunked. Until a connection is
// granted, and while the upstream connection's output is over its
// high-water mark, the client's body is not read (httpd.Response.HoldBody):
// it waits in the client's socket, not in the proxy. The response head loses its
// hop-by-hop fields, Date and Server (the module sends its own), and its
// body streams to the client as it arrives: when the client's output is
// over its high-water mark the upstream connection stops being read until
// it drains, so a large response never sits in memory whole.
//
// # Errors and timeouts
//
// 502 Bad Gateway (with a plain-text body saying which case) when no
// server is available, a connection breaks before the response head
// arrived, or the head is malformed; a request without a body using a
// safe method (GET, HEAD, OPTIONS) whose connection breaks before any
// response byte is retried once first, since a keep-alive connection the
// server closed as the request went out is expected now and then. 504
// Gateway Timeout when the head does not arrive within
// ResponseHeaderTimeout, or no connection frees up within QueueTimeout.
// After the head was relayed a failure can only cut the client's
// connection; so does an upstream silent for IdleTimeout in the middle of
// a body. Connect timeouts are the pool's (ConnectTimeout).
//
// Everything per request runs on the client connection's loop, which the
// pool moves the granted connection to; exchanges are recycled per loop,
// so a proxied request allocates nothing in steady state.
package httpproxy
