package httpd

import (
	"errors"
	"io"

	"github.com/scalestack/scalestack/buffer"
	"github.com/scalestack/scalestack/httpwire"
	"github.com/scalestack/scalestack/reactor"
)

// Handler serves the requests routed to it. Serve runs on the connection's
// loop and must not block; req and its slices are valid only during the
// call. Serve starts the response on w and ends it (End, Reply, Error), or
// hands w a BodySource (Stream), or keeps w and ends it later from the same
// loop; the next pipelined request waits until it has ended.
type Handler interface {
	Serve(w *Response, req *httpwire.Request)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(w *Response, req *httpwire.Request)

// Serve implements Handler.
func (f HandlerFunc) Serve(w *Response, req *httpwire.Request) { f(w, req) }

// BodyHandler is a Handler that wants the request body: OnBody receives it
// as it arrives (data valid only during the call), then once more with last
// set and no data. A handler without it has the body read and dropped;
// Expect: 100-continue is answered with 100 only for a BodyHandler.
type BodyHandler interface {
	Handler
	OnBody(w *Response, data []byte, last bool)
}

// BodySource produces a response body that the server pulls as the socket
// drains, so a large body never sits in memory whole. ReadBody fills dst
// (at most len(dst) bytes) and returns io.EOF once the body is complete;
// it runs on the loop and must not block. A source whose bytes arrive from
// elsewhere (rows from a database) returns ErrBodyPending when it has
// nothing now, and calls Response.Pump once it has. Close runs once, when
// the body is done or the connection closed.
type BodySource interface {
	ReadBody(dst []byte) (int, error)
	Close()
}

// ErrBodyPending is what ReadBody returns when the source has no bytes
// now but more will come: the server stops pulling until Response.Pump.
var ErrBodyPending = errors.New("httpd: response body pending")

// Response is the response to one request. Its methods run on the
// connection's loop only.
type Response struct {
	st        *connState
	mount     string
	head      bool // the request was HEAD: fields only
	http10    bool
	keepAlive bool

	started   bool
	ended     bool
	noBody    bool
	chunked   bool
	closeBody bool  // body delimited by closing the connection (HTTP/1.0, unknown length)
	remaining int64 // declared body bytes not yet written; -1 when not declared
	fields    []byte
	src       BodySource
	watcher   OutputWatcher
}

// OutputWatcher is told what happens to a response's connection while a
// handler that ends the response later (a proxy waiting for its upstream)
// still works on it: OutputDrained when output that was over the
// high-water mark has drained below the low one (see OutputFull), Gone
// when the connection closed (nothing written reaches the client any
// more). Both run on the connection's loop, never from inside a Write.
type OutputWatcher interface {
	OutputDrained(w *Response)
	Gone(w *Response)
}

func (w *Response) begin(req *httpwire.Request, mount string) {
	w.mount = mount
	w.head = req.IsMethod("HEAD")
	w.http10 = req.Minor == 0
	w.keepAlive = req.KeepAlive && !w.st.srv.draining.Load() && !w.st.closeAfter
	w.started, w.ended, w.noBody, w.chunked, w.closeBody = false, false, false, false, false
	w.remaining = -1
	w.fields = w.fields[:0]
	w.src = nil
	w.watcher = nil
	w.st.bodyHeld = false
}

// Watch registers ow for this request (nil unregisters it); it is dropped
// when the next request begins. A handler that keeps per-request state
// beside the Response finds it again here (Watcher), from OnBody say.
func (w *Response) Watch(ow OutputWatcher) { w.watcher = ow }

// Watcher is what Watch registered for this request, or nil.
func (w *Response) Watcher() OutputWatcher { return w.watcher }

// OutputFull reports whether the connection's output is over the
// high-water mark: a handler relaying bytes from elsewhere stops reading
// there until OutputDrained.
func (w *Response) OutputFull() bool { return w.st.outFull }

// HoldBody stops (true) or resumes (false) reading the request body, for a
// BodyHandler that cannot take more yet (a proxy whose upstream connection
// is not there yet, or is itself full): the client's bytes wait in the
// socket, so a client sending faster than the body is consumed buffers
// nothing here. The body timeout does not run while the body is held (the
// wait is the handler's, not the client's) and starts afresh when the hold
// ends. A hold ends with the request.
func (w *Response) HoldBody(hold bool) {
	st := w.st
	if st.bodyHeld == hold {
		return
	}
	st.bodyHeld = hold
	if !st.bodyActive || st.lingering || st.closed {
		return
	}
	if hold {
		if st.kind == timerBody {
			st.c.Loop().Cancel(&st.timer)
		}
		return
	}
	st.arm(timerBody, st.srv.cfg.BodyTimeout)
	st.resume()
}

// RemoteAddr is the client's address: "ip:port", "[ipv6]:port", or the
// socket path for a Unix socket.
func (w *Response) RemoteAddr() string { return w.st.c.RemoteAddr() }

// HeaderField adds a response field held as bytes, such as one relayed
// from another server's parsed response (httpwire validated it: neither
// part holds CR or LF).
func (w *Response) HeaderField(name, value []byte) {
	w.fields = append(w.fields, name...)
	w.fields = append(w.fields, ": "...)
	w.fields = append(w.fields, value...)
	w.fields = append(w.fields, "\r\n"...)
}

// Mount is the path prefix the handler was mounted on ("/" for the root).
func (w *Response) Mount() string { return w.mount }

// Below returns path with the mount prefix removed, always starting with
// '/': what a handler mounted on /static sees of /static/a.css is /a.css.
func (w *Response) Below(path []byte) []byte {
	if w.mount == "/" {
		return path
	}
	rest := path[len(w.mount):]
	if len(rest) == 0 {
		return rootPath
	}
	return rest
}

var rootPath = []byte("/")

// Loop is the connection's loop, for handlers that finish later.
func (w *Response) Loop() *reactor.Loop { return w.st.c.Loop() }

// Closed reports whether the connection is gone or going (a refused body,
// a timeout, the client left): nothing written reaches the client any more,
// so a late handler checks it and drops its work. A BodyHandler whose body
// is refused is not called again.
func (w *Response) Closed() bool { return w.st.closed || w.st.lingering }

// Started reports whether WriteHeader ran.
func (w *Response) Started() bool { return w.started }

// Header adds a response field before WriteHeader. Neither name nor value
// may hold CR or LF.
func (w *Response) Header(name, value string) {
	w.fields = httpwire.AppendField(w.fields, name, value)
}

// HeaderBytes is Header for a value held as bytes.
func (w *Response) HeaderBytes(name string, value []byte) {
	w.fields = httpwire.AppendFieldBytes(w.fields, name, value)
}

// WriteHeader sends the status line and fields. contentLength is the body
// size, or -1 when unknown: the body is then chunked (HTTP/1.1) or ends
// with the connection (HTTP/1.0). For HEAD, 204 and 304 no body follows
// whatever is written.
func (w *Response) WriteHeader(status int, contentLength int64) {
	if w.started {
		panic("httpd: WriteHeader called twice")
	}
	st := w.st
	w.started = true
	w.noBody = w.head || status == 204 || status == 304 || status < 200
	if st.srv.draining.Load() || st.closeAfter {
		w.keepAlive = false
	}
	if contentLength < 0 && !w.noBody {
		if w.http10 {
			w.closeBody = true
			w.keepAlive = false
		} else {
			w.chunked = true
		}
	}
	b := httpwire.AppendStatusLine(st.scratch[:0], status)
	b = append(b, "Server: scalestack\r\nDate: "...)
	b = append(b, st.ls.dateValue(st.c.Loop().Now())...)
	b = append(b, "\r\n"...)
	b = append(b, w.fields...)
	switch {
	case w.chunked:
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	case contentLength >= 0 && status != 304 && status != 204 && status >= 200:
		b = httpwire.AppendFieldInt(b, "Content-Length", contentLength)
	}
	if !w.keepAlive {
		b = append(b, "Connection: close\r\n"...)
	} else if w.http10 {
		b = append(b, "Connection: keep-alive\r\n"...)
	}
	b = append(b, "\r\n"...)
	st.scratch = b
	st.c.Write(b)
	if !w.noBody {
		w.remaining = contentLength
	} else {
		w.remaining = -1
	}
}

// errOverrun aborts a connection whose handler wrote past its declared
// Content-Length, or ended short of it: the framing would lie.
var errOverrun = errors.New("httpd: handler broke its declared Content-Length")

// Write sends body bytes (copied). Before WriteHeader it starts a 200
// response of unknown length.
func (w *Response) Write(p []byte) {
	if w.st.closed || w.ended {
		return
	}
	if !w.started {
		w.WriteHeader(200, -1)
	}
	if w.noBody || len(p) == 0 {
		return
	}
	c := w.st.c
	switch {
	case w.chunked:
		w.st.scratch = httpwire.AppendChunkHeader(w.st.scratch[:0], len(p))
		c.Write(w.st.scratch)
		c.Write(p)
		c.Write(crlf)
	case w.remaining >= 0:
		if int64(len(p)) > w.remaining {
			c.Abort(errOverrun)
			return
		}
		w.remaining -= int64(len(p))
		c.Write(p)
	default:
		c.Write(p)
	}
}

var (
	crlf         = []byte("\r\n")
	lastChunk    = []byte(httpwire.LastChunk)
	continueResp = []byte(httpwire.Continue)
	newline      = []byte("\n")
)

// Reserve returns n writable bytes of a declared-length body in the output
// queue, to fill in place (a file read straight into it), or nil when no
// body is to be sent (HEAD) or the connection closed.
func (w *Response) Reserve(n int) []byte {
	if w.st.closed || w.ended || w.noBody || w.chunked || w.remaining < int64(n) {
		return nil
	}
	w.remaining -= int64(n)
	return w.st.c.Reserve(n)
}

// Abort closes the connection at once, for a handler that cannot finish a
// response it started.
func (w *Response) Abort(err error) {
	if !w.st.closed {
		w.st.c.Abort(err)
	}
}

// End completes the response. Before WriteHeader it sends an empty 200.
func (w *Response) End() {
	if w.st.closed || w.ended {
		return
	}
	if !w.started {
		w.WriteHeader(200, 0)
	}
	if w.chunked && !w.noBody {
		w.st.c.Write(lastChunk)
	} else if w.remaining > 0 {
		w.st.c.Abort(errOverrun)
		return
	}
	if w.closeBody {
		w.keepAlive = false
	}
	w.ended = true
	w.st.responseEnded()
}

// Reply sends a whole response with a body in one call.
func (w *Response) Reply(status int, contentType string, body []byte) {
	if contentType != "" {
		w.Header("Content-Type", contentType)
	}
	w.WriteHeader(status, int64(len(body)))
	w.Write(body)
	w.End()
}

// Error sends a short plain-text response naming status.
func (w *Response) Error(status int) {
	text := httpwire.StatusText(status)
	w.Header("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status, int64(len(text)+1))
	if !w.noBody {
		w.st.c.Write([]byte(text))
		w.st.c.Write(newline)
		w.remaining = 0
	}
	w.End()
}

// Stream sends the body from src as the socket drains, then ends the
// response; WriteHeader must have run.
func (w *Response) Stream(src BodySource) {
	if !w.started {
		panic("httpd: Stream before WriteHeader")
	}
	if w.st.closed || w.ended {
		src.Close()
		return
	}
	if w.noBody {
		src.Close()
		w.End()
		return
	}
	w.src = src
	w.pump()
}

// Pump pulls from the response's BodySource again, after it returned
// ErrBodyPending (unless the client's output is over the high-water mark:
// the server pulls then once it drains).
func (w *Response) Pump() {
	if w.src != nil && !w.st.outFull && !w.st.closed {
		w.pump()
	}
}

// streamChunk is how much of a streamed body is read at a time.
const streamChunk = 64 << 10

// pump fills the output from the body source until the high-water mark.
func (w *Response) pump() {
	st := w.st
	for w.src != nil && !st.outFull && !st.closed {
		want := streamChunk
		if w.remaining >= 0 && int64(want) > w.remaining {
			want = int(w.remaining)
		}
		var n int
		var err error
		if want > 0 {
			b := buffer.Get(want)
			n, err = w.src.ReadBody(b.B[:want])
			b.B = b.B[:n]
			if n > 0 {
				if w.chunked {
					st.scratch = httpwire.AppendChunkHeader(st.scratch[:0], n)
					st.c.Write(st.scratch)
					st.c.WriteBuf(b)
					st.c.Write(crlf)
				} else {
					if w.remaining >= 0 {
						w.remaining -= int64(n)
					}
					st.c.WriteBuf(b)
				}
			} else {
				b.Release()
			}
		} else {
			err = io.EOF
		}
		if err == ErrBodyPending {
			if n > 0 {
				continue
			}
			return // the source calls Pump when it has more
		}
		if err != nil {
			src := w.src
			w.src = nil
			src.Close()
			if err != io.EOF {
				w.Abort(err)
				return
			}
			w.End()
			return
		}
		if n == 0 {
			// A source with nothing now and no EOF would spin the loop.
			w.Abort(errors.New("httpd: body source returned nothing"))
			return
		}
	}
}
