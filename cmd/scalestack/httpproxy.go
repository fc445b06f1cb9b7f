package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/httpd"
	"github.com/scalestack/scalestack/pool/httpproxy"
)

// proxyRoute is one --proxy: a path prefix and its upstream servers.
type proxyRoute struct {
	prefix    string
	upstreams []conn.Addr
}

// proxyRoutes is the value of --proxy. Each Set adds routes: a
// configuration file's list arrives as one comma-joined value, so an item
// starting with '/' begins a new route and any other item is one more
// upstream of the route before it ("/api=a:80,b:80,/img=c:80").
type proxyRoutes []proxyRoute

func (r *proxyRoutes) String() string {
	if r == nil {
		return ""
	}
	var parts []string
	for _, rt := range *r {
		ups := make([]string, len(rt.upstreams))
		for i, a := range rt.upstreams {
			ups[i] = a.Address
			if a.Network == "unix" {
				ups[i] = "unix:" + a.Address
			}
		}
		parts = append(parts, rt.prefix+"="+strings.Join(ups, ","))
	}
	return strings.Join(parts, ",")
}

func (r *proxyRoutes) Set(v string) error {
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if strings.HasPrefix(item, "/") {
			prefix, up, ok := strings.Cut(item, "=")
			if !ok || up == "" {
				return fmt.Errorf("%q: want PREFIX=UPSTREAM[,UPSTREAM...]", item)
			}
			for _, rt := range *r {
				if rt.prefix == prefix {
					return fmt.Errorf("prefix %s is proxied twice", prefix)
				}
			}
			*r = append(*r, proxyRoute{prefix: prefix})
			item = up
		} else if len(*r) == 0 {
			return fmt.Errorf("%q: want PREFIX=UPSTREAM[,UPSTREAM...], the prefix starting with /", item)
		}
		if strings.HasPrefix(item, "http://") {
			item = strings.TrimSuffix(strings.TrimPrefix(item, "http://"), "/")
		} else if strings.Contains(item, "://") {
			return fmt.Errorf("upstream %q: only http:// upstreams are proxied", item)
		}
		a, err := conn.ParseAddr(item)
		if err != nil {
			return fmt.Errorf("upstream %q: %w", item, err)
		}
		rt := &(*r)[len(*r)-1]
		for _, o := range rt.upstreams {
			if o.String() == a.String() {
				return fmt.Errorf("upstream %s is listed twice for %s", item, rt.prefix)
			}
		}
		rt.upstreams = append(rt.upstreams, a)
	}
	return nil
}

// mountedProxy is a proxy handler and the prefix it serves.
type mountedProxy struct {
	prefix string
	px     *httpproxy.Proxy
}

// httpStatus is the http module's /status: the server's counters, and each
// proxy's upstreams.
func httpStatus(srv *httpd.Server, proxies []mountedProxy) func() any {
	if len(proxies) == 0 {
		return func() any { return srv.Snapshot() }
	}
	return func() any {
		px := map[string][]httpproxy.UpstreamInfo{}
		for _, mp := range proxies {
			px[mp.prefix] = mp.px.Upstreams()
		}
		return struct {
			httpd.StatsSnapshot
			Proxy map[string][]httpproxy.UpstreamInfo `json:"proxy"`
		}{srv.Snapshot(), px}
	}
}

// proxiesReady fails while some proxied prefix has no upstream server with
// a connection.
func proxiesReady(proxies []mountedProxy) func() error {
	if len(proxies) == 0 {
		return nil
	}
	return func() error {
		var errs []error
		for _, mp := range proxies {
			if err := mp.px.Ready(); err != nil {
				errs = append(errs, fmt.Errorf("proxy %s: %w", mp.prefix, err))
			}
		}
		return errors.Join(errs...)
	}
}

func httpCollectors(srv *httpd.Server, static *httpd.Static, proxies []mountedProxy) []prometheus.Collector {
	cs := []prometheus.Collector{newHTTPCollector(srv, static)}
	if len(proxies) > 0 {
		cs = append(cs, newProxyCollector(proxies))
	}
	return cs
}

// proxyCollector exports each upstream server's counters, labelled with
// the prefix it serves and its address.
type proxyCollector struct {
	proxies                                                   []mountedProxy
	requests, responses, errs, inFlight, available, connected *prometheus.Desc
	bytes, healthChecks, healthFailures, connectFailures      *prometheus.Desc
}

func newProxyCollector(proxies []mountedProxy) *proxyCollector {
	l := []string{"route", "upstream"}
	return &proxyCollector{
		proxies:         proxies,
		requests:        prometheus.NewDesc("scalestack_http_proxy_requests_total", "Requests sent to the upstream server (retries included).", l, nil),
		responses:       prometheus.NewDesc("scalestack_http_proxy_responses_total", "Upstream response heads relayed, by status class.", append(l, "class"), nil),
		errs:            prometheus.NewDesc("scalestack_http_proxy_errors_total", "Requests the proxy failed on the upstream's account: bad_gateway (502: connection broke, malformed response), timeout (504: no response head in time, or no free connection), cut (client connection closed mid-response), retry (a safe request sent again after its connection broke).", append(l, "kind"), nil),
		inFlight:        prometheus.NewDesc("scalestack_http_proxy_in_flight", "Requests holding or waiting for one of the upstream's connections.", l, nil),
		available:       prometheus.NewDesc("scalestack_http_proxy_upstream_available", "1 while the upstream server is used; 0 while it is ejected (every connection down and reconnecting fails).", l, nil),
		connected:       prometheus.NewDesc("scalestack_http_proxy_upstream_connections", "Open keep-alive connections to the upstream server.", l, nil),
		bytes:           prometheus.NewDesc("scalestack_http_proxy_response_bytes_total", "Response body bytes relayed from the upstream server.", l, nil),
		healthChecks:    prometheus.NewDesc("scalestack_http_proxy_health_checks_total", "Health checks of idle upstream connections.", l, nil),
		healthFailures:  prometheus.NewDesc("scalestack_http_proxy_health_check_failures_total", "Health checks that failed or timed out.", l, nil),
		connectFailures: prometheus.NewDesc("scalestack_http_proxy_connect_failures_total", "Upstream connects (or first health checks) that failed.", l, nil),
	}
}

func (c *proxyCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.requests, c.responses, c.errs, c.inFlight, c.available, c.connected, c.bytes, c.healthChecks, c.healthFailures, c.connectFailures} {
		ch <- d
	}
}

func (c *proxyCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	for _, mp := range c.proxies {
		for _, u := range mp.px.Upstreams() {
			counter(c.requests, u.Requests, mp.prefix, u.Addr)
			for i, n := range u.Responses[1:] {
				counter(c.responses, n, mp.prefix, u.Addr, strconv.Itoa(i+2)+"xx")
			}
			counter(c.errs, u.BadGateway, mp.prefix, u.Addr, "bad_gateway")
			counter(c.errs, u.Timeouts, mp.prefix, u.Addr, "timeout")
			counter(c.errs, u.Cut, mp.prefix, u.Addr, "cut")
			counter(c.errs, u.Retries, mp.prefix, u.Addr, "retry")
			gauge(c.inFlight, u.InFlight, mp.prefix, u.Addr)
			avail := int64(0)
			if u.Available {
				avail = 1
			}
			gauge(c.available, avail, mp.prefix, u.Addr)
			gauge(c.connected, u.Connected, mp.prefix, u.Addr)
			counter(c.bytes, u.ResponseBytes, mp.prefix, u.Addr)
			counter(c.healthChecks, u.Pool.HealthChecks, mp.prefix, u.Addr)
			counter(c.healthFailures, u.Pool.HealthCheckFailures, mp.prefix, u.Addr)
			counter(c.connectFailures, u.Pool.BackendFailures, mp.prefix, u.Addr)
		}
	}
}
