package httpd

import (
	"fmt"
	"sort"
	"strings"

	"github.com/scalestack/scalestack/httpwire"
)

// Router maps path prefixes to handlers: a request goes to the handler of
// the longest prefix that matches whole segments of its path ("/static"
// takes /static and /static/a.css, not /statically). Routes are set up
// before the server starts and only read afterwards, from every loop.
type Router struct {
	routes []route // longest prefix first
}

type route struct {
	prefix string
	h      Handler
}

// NewRouter returns a router with no routes: every request gets 404.
func NewRouter() *Router { return &Router{} }

// Handle mounts h on prefix, which must start with '/'; a trailing '/' is
// ignored ("/static/" is "/static"), and "/" takes every path no longer
// prefix matches.
func (r *Router) Handle(prefix string, h Handler) error {
	if !strings.HasPrefix(prefix, "/") {
		return fmt.Errorf("httpd: route %q does not start with /", prefix)
	}
	if len(prefix) > 1 {
		prefix = strings.TrimRight(prefix, "/")
		if prefix == "" {
			prefix = "/"
		}
	}
	for _, rt := range r.routes {
		if rt.prefix == prefix {
			return fmt.Errorf("httpd: route %q mounted twice", prefix)
		}
	}
	r.routes = append(r.routes, route{prefix: prefix, h: h})
	sort.SliceStable(r.routes, func(i, j int) bool { return len(r.routes[i].prefix) > len(r.routes[j].prefix) })
	return nil
}

func (r *Router) match(path []byte) (Handler, string) {
	for _, rt := range r.routes {
		if rt.prefix == "/" {
			return rt.h, rt.prefix
		}
		if n := len(rt.prefix); len(path) >= n && string(path[:n]) == rt.prefix && (len(path) == n || path[n] == '/') {
			return rt.h, rt.prefix
		}
	}
	return notFound, "/"
}

var notFound = HandlerFunc(func(w *Response, _ *httpwire.Request) { w.Error(404) })
