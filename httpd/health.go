package httpd

import (
	"strconv"

	"github.com/scalestack/scalestack/httpwire"
)

// Health answers GET and HEAD with the server's state as JSON: 200 and
// "ok" while it serves, 503 and "draining" once Drain was called (a load
// balancer stops sending new connections), with the open connections and
// the requests served so far.
type Health struct{ Server *Server }

// Serve implements Handler.
func (h Health) Serve(w *Response, req *httpwire.Request) {
	if !req.IsMethod("GET") && !req.IsMethod("HEAD") {
		w.Header("Allow", "GET, HEAD")
		w.Error(405)
		return
	}
	status, state := 200, "ok"
	if h.Server.Draining() {
		status, state = 503, "draining"
	}
	b := append(w.st.scratch[:0], `{"status":"`...)
	b = append(b, state...)
	b = append(b, `","connections":`...)
	b = strconv.AppendInt(b, h.Server.Stats.Connections.Load(), 10)
	b = append(b, `,"requests":`...)
	b = strconv.AppendUint(b, h.Server.Stats.Requests.Load(), 10)
	b = append(b, "}\n"...)
	body := append([]byte(nil), b...) // scratch is reused for the head
	w.Header("Cache-Control", "no-store")
	w.Reply(status, "application/json", body)
}
