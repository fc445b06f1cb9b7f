package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/httpd"
	"github.com/scalestack/scalestack/httpwire"
	"github.com/scalestack/scalestack/pool/httpproxy"
	"github.com/scalestack/scalestack/reactor"
)

func httpFlags(stderr io.Writer) (*flag.FlagSet, *engineFlags, func() (module, error)) {
	fs, ef := newServerFlags("http", stderr, "")
	listen := fs.String("listen", "127.0.0.1:8080", "address to listen on: host:port, or unix:/path")
	root := fs.String("root", "", "directory whose files are served at / (empty: no static files)")
	health := fs.String("health", "/healthz", "path of the health handler: JSON state, 503 once draining (empty: none)")
	spread := fs.Bool("spread", false, "accept on one loop and hand connections round-robin")
	maxConns := fs.Int("max-conns", 10000, "open client connections at most; more get 503 and a close (0: no bound)")
	headerTimeout := fs.Duration("header-timeout", 10*time.Second, "a request head must arrive within this of its first byte (else 408 and close)")
	bodyTimeout := fs.Duration("body-timeout", 10*time.Second, "longest wait between two reads of a request body (else 408 and close)")
	idleTimeout := fs.Duration("idle-timeout", 60*time.Second, "a connection waiting for its next request (or its first) is closed after this")
	sendTimeout := fs.Duration("send-timeout", 60*time.Second, "a client that reads none of its pending response for this long is cut off")
	fileCache := fs.Int("file-cache", 1024, "small files (up to 64 KiB) each loop keeps in memory with their metadata, so that serving one makes no system call (0: off)")
	fileCacheMiB := fs.Int("file-cache-mib", 16, "MiB of file content each loop keeps at most; the least recently used files go first")
	fileCacheValid := fs.Duration("file-cache-valid", time.Second, "a cached file is served this long without looking at it; then it is checked (same file, unchanged) or read again, so edits show within this; a file is cached only once unchanged for this long")
	d := httpwire.DefaultLimits
	maxLine := fs.Int("max-request-line", d.MaxRequestLine, "longest request line in bytes (414 beyond)")
	maxHeaderBytes := fs.Int("max-header-bytes", d.MaxHeaderBytes, "largest header section in bytes (431 beyond)")
	maxHeaders := fs.Int("max-headers", d.MaxHeaders, "most header fields in a request (431 beyond)")
	maxBody := fs.Int64("max-body", d.MaxBody, "largest request body in bytes (413 beyond)")
	var routes proxyRoutes
	fs.Var(&routes, "proxy", "reverse proxy: PREFIX=UPSTREAM[,UPSTREAM...] forwards the requests under PREFIX to the upstream HTTP servers (host:port or unix:/path); repeat the flag (or list several in the config file) for several prefixes")
	proxyConns := fs.Int("proxy-conns", 8, "keep-alive connections to each upstream server, shared by every client (M:N)")
	proxyBalance := fs.String("proxy-balance", "round-robin", "how a request's upstream server is chosen: round-robin or least-busy (fewest requests in flight)")
	proxyConnectTimeout := fs.Duration("proxy-connect-timeout", 5*time.Second, "an upstream connect (and a health check's answer) must finish within this")
	proxyResponseTimeout := fs.Duration("proxy-response-timeout", 60*time.Second, "the upstream's response head must arrive within this of the request going out (else 504)")
	proxyIdleTimeout := fs.Duration("proxy-idle-timeout", 60*time.Second, "an upstream silent this long in the middle of a response body has its client connection cut")
	proxyQueueTimeout := fs.Duration("proxy-queue-timeout", 10*time.Second, "a request waits at most this for a free upstream connection (else 504)")
	proxyHealthInterval := fs.Duration("proxy-health-interval", 2*time.Second, "idle upstream connections are checked this often (HEAD --proxy-health-path)")
	proxyHealthPath := fs.String("proxy-health-path", "", "path the health check asks for; a status of 400 or more then fails it, also before a new connection is used (empty: HEAD / and any complete answer will do)")
	sqlFlags := sqlGatewayFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: scalestack http [--root DIR] [flags]\n\n"+
			"Serves HTTP/1.1 on the reactor: the files under --root at /, a health handler at --health, and\n"+
			"reverse proxies to upstream HTTP servers at the prefixes of --proxy.\n"+
			"With --sql-path, an HTTP -> SQL gateway: POST {\"sql\": ..., \"params\": [...]} there with HTTP basic\n"+
			"credentials of a --sql-users account; the statement runs as a prepared statement through a MySQL\n"+
			"pool of --sql-backend-conns connections and its rows stream back as JSON. One statement per\n"+
			"request, in autocommit mode: transactions are refused (error 9005, 0A000).\n"+
			"On SIGTERM it stops accepting, closes idle keep-alive connections, lets responses in progress\n"+
			"finish for up to --shutdown-timeout, then exits.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	return fs, ef, func() (module, error) {
		addr, err := conn.ParseAddr(*listen)
		if err != nil {
			return module{}, fmt.Errorf("--listen: %w", err)
		}
		for name, v := range map[string]time.Duration{"header-timeout": *headerTimeout, "body-timeout": *bodyTimeout,
			"idle-timeout": *idleTimeout, "send-timeout": *sendTimeout} {
			if v <= 0 {
				return module{}, fmt.Errorf("--%s must be positive", name)
			}
		}
		if *fileCache < 0 || *fileCacheMiB < 0 || *fileCacheValid <= 0 {
			return module{}, errors.New("--file-cache and --file-cache-mib must not be negative, --file-cache-valid must be positive")
		}
		if *maxLine <= 0 || *maxHeaderBytes <= 0 || *maxHeaders <= 0 || *maxBody <= 0 || *maxConns < 0 {
			return module{}, errors.New("--max-request-line, --max-header-bytes, --max-headers and --max-body must be positive, --max-conns not negative")
		}
		router := httpd.NewRouter()
		srv := httpd.New(httpd.Config{
			Router:        router,
			Limits:        httpwire.Limits{MaxRequestLine: *maxLine, MaxHeaderBytes: *maxHeaderBytes, MaxHeaders: *maxHeaders, MaxBody: *maxBody},
			HeaderTimeout: *headerTimeout,
			BodyTimeout:   *bodyTimeout,
			IdleTimeout:   *idleTimeout,
			SendTimeout:   *sendTimeout,
			MaxConns:      *maxConns,
		})
		if *health != "" {
			if err := router.Handle(*health, httpd.Health{Server: srv}); err != nil {
				return module{}, fmt.Errorf("--health: %w", err)
			}
		}
		balance, err := httpproxy.ParseBalance(*proxyBalance)
		if err != nil {
			return module{}, fmt.Errorf("--proxy-balance: %w", err)
		}
		if *proxyConns <= 0 {
			return module{}, errors.New("--proxy-conns must be at least 1")
		}
		for name, v := range map[string]time.Duration{"proxy-connect-timeout": *proxyConnectTimeout, "proxy-response-timeout": *proxyResponseTimeout,
			"proxy-idle-timeout": *proxyIdleTimeout, "proxy-queue-timeout": *proxyQueueTimeout, "proxy-health-interval": *proxyHealthInterval} {
			if v <= 0 {
				return module{}, fmt.Errorf("--%s must be positive", name)
			}
		}
		var proxies []mountedProxy
		for _, rt := range routes {
			px, err := httpproxy.New(httpproxy.Config{
				Upstreams:             rt.upstreams,
				Conns:                 *proxyConns,
				Balance:               balance,
				ConnectTimeout:        *proxyConnectTimeout,
				ResponseHeaderTimeout: *proxyResponseTimeout,
				IdleTimeout:           *proxyIdleTimeout,
				QueueTimeout:          *proxyQueueTimeout,
				HealthInterval:        *proxyHealthInterval,
				HealthPath:            *proxyHealthPath,
				Logf: func(format string, args ...any) {
					logger.Warn(fmt.Sprintf("proxy %s: "+format, append([]any{rt.prefix}, args...)...))
				},
			})
			if err != nil {
				return module{}, fmt.Errorf("--proxy %s: %w", rt.prefix, err)
			}
			if err := router.Handle(rt.prefix, px); err != nil {
				return module{}, fmt.Errorf("--proxy: %w", err)
			}
			proxies = append(proxies, mountedProxy{prefix: rt.prefix, px: px})
		}
		gateway, err := sqlFlags()
		if err != nil {
			return module{}, err
		}
		if gateway != nil {
			if err := router.Handle(gateway.path, gateway); err != nil {
				return module{}, fmt.Errorf("--sql-path: %w", err)
			}
		}
		var static *httpd.Static
		if *root != "" {
			if static, err = httpd.NewStatic(*root); err != nil {
				return module{}, fmt.Errorf("--root: %w", err)
			}
			static.Cache = httpd.FileCacheConfig{Entries: *fileCache, Bytes: int64(*fileCacheMiB) << 20, Valid: *fileCacheValid}
			if err := router.Handle("/", static); err != nil {
				static.Close()
				return module{}, err
			}
		}
		return module{
			name:   "http",
			listen: srv.ListenConfig(addr, *spread),
			status: func() any {
				base := httpStatus(srv, proxies)()
				if gateway != nil {
					return map[string]any{"server": base, "sql_pending_bodies": gateway.pendingBodies.Load(),
						"sql": gateway.p.Stats()}
				}
				return base
			},
			collectors: httpCollectors(srv, static, proxies),
			start: func(e *reactor.Engine) error {
				if gateway != nil {
					if err := gateway.p.StartBackends(e); err != nil {
						return err
					}
					gateway.attach(e)
				}
				srv.Attach(e)
				for _, mp := range proxies {
					if err := mp.px.Start(e); err != nil {
						return err
					}
				}
				return nil
			},
			ready: func() error {
				var errs []error
				if gateway != nil {
					errs = append(errs, gateway.p.Ready())
				}
				if pr := proxiesReady(proxies); pr != nil {
					errs = append(errs, pr())
				}
				return errors.Join(errs...)
			},
			stop: func() {
				for _, mp := range proxies {
					mp.px.Stop()
				}
				if static != nil {
					_ = static.Close()
				}
				if gateway != nil {
					_ = gateway.p.Close()
				}
			},
			drain: srv.Drain,
		}, nil
	}
}

// httpCollector exports the HTTP server's counters, and the static
// handler's cache ones when it serves files.
type httpCollector struct {
	srv                                   *httpd.Server
	static                                *httpd.Static
	requests, refusals, timeouts, refused *prometheus.Desc
	fileCache                             *prometheus.Desc
}

func newHTTPCollector(srv *httpd.Server, static *httpd.Static) *httpCollector {
	return &httpCollector{
		srv:       srv,
		static:    static,
		fileCache: prometheus.NewDesc("scalestack_http_file_cache_total", "Static file cache outcomes: hit (served from memory; revalidated ones included), revalidation (checked against the file after --file-cache-valid and kept), miss (read from the file and cached), eviction (dropped for room or because the file changed).", []string{"result"}, nil),
		requests:  prometheus.NewDesc("scalestack_http_requests_total", "HTTP requests dispatched to a handler.", nil, nil),
		refusals:  prometheus.NewDesc("scalestack_http_refused_requests_total", "HTTP requests refused by the parser (400, 413, 414, 417, 431, 501, 505), each followed by a close.", nil, nil),
		timeouts:  prometheus.NewDesc("scalestack_http_timeouts_total", "HTTP connections cut off by a timeout (header, body, idle or send).", nil, nil),
		refused:   prometheus.NewDesc("scalestack_http_connections_refused_total", "HTTP connections over --max-conns, answered with 503.", nil, nil),
	}
}

func (c *httpCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.requests
	ch <- c.refusals
	ch <- c.timeouts
	ch <- c.refused
	if c.static != nil {
		ch <- c.fileCache
	}
}

func (c *httpCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.srv.Snapshot()
	ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(s.Requests))
	ch <- prometheus.MustNewConstMetric(c.refusals, prometheus.CounterValue, float64(s.Refusals))
	ch <- prometheus.MustNewConstMetric(c.timeouts, prometheus.CounterValue, float64(s.Timeouts))
	ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(s.Refused))
	if c.static != nil {
		fc := c.static.CacheStats()
		for _, o := range []struct {
			name string
			n    uint64
		}{{"hit", fc.Hits}, {"revalidation", fc.Revalidations}, {"miss", fc.Misses}, {"eviction", fc.Evictions}} {
			ch <- prometheus.MustNewConstMetric(c.fileCache, prometheus.CounterValue, float64(o.n), o.name)
		}
	}
}
