package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

func TestProxyRoutesFlag(t *testing.T) {
	for _, tc := range []struct {
		name string
		sets []string
		want string
		err  string
	}{
		{name: "one", sets: []string{"/api=127.0.0.1:9000"}, want: "/api=127.0.0.1:9000"},
		{name: "url form", sets: []string{"/=http://127.0.0.1:9000/"}, want: "/=127.0.0.1:9000"},
		{name: "several upstreams", sets: []string{"/api=127.0.0.1:1,127.0.0.1:2"}, want: "/api=127.0.0.1:1,127.0.0.1:2"},
		{name: "repeated flag", sets: []string{"/a=127.0.0.1:1", "/b=127.0.0.1:2,unix:/run/b.sock"}, want: "/a=127.0.0.1:1,/b=127.0.0.1:2,unix:/run/b.sock"},
		{name: "config list joined", sets: []string{"/a=127.0.0.1:1,127.0.0.1:3,/b=127.0.0.1:2"}, want: "/a=127.0.0.1:1,127.0.0.1:3,/b=127.0.0.1:2"},
		{name: "no prefix", sets: []string{"127.0.0.1:1"}, err: "PREFIX=UPSTREAM"},
		{name: "no upstream", sets: []string{"/a="}, err: "PREFIX=UPSTREAM"},
		{name: "https", sets: []string{"/a=https://h:443"}, err: "only http://"},
		{name: "prefix twice", sets: []string{"/a=127.0.0.1:1", "/a=127.0.0.1:2"}, err: "proxied twice"},
		{name: "upstream twice", sets: []string{"/a=127.0.0.1:1,127.0.0.1:1"}, err: "listed twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r proxyRoutes
			var err error
			for _, s := range tc.sets {
				if err = r.Set(s); err != nil {
					break
				}
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || r.String() != tc.want {
				t.Fatalf("%q, %v; want %q", r.String(), err, tc.want)
			}
		})
	}
}

// TestServeHTTPProxy runs the http module from a serve configuration with
// two proxied prefixes (one with two upstream servers) beside static
// files, and checks the routing, the balancing and the per-upstream
// metrics.
func TestServeHTTPProxy(t *testing.T) {
	var ups []string
	for i := 0; i < 3; i++ {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "upstream %d %s xff=%s", i, r.URL.Path, r.Header.Get("X-Forwarded-For"))
		}))
		defer s.Close()
		ups = append(ups, s.Listener.Addr().String())
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "index.html"), "static\n")
	httpAddr, admin := "127.0.0.1:"+freePort(t), "127.0.0.1:"+freePort(t)
	config := filepath.Join(dir, "serve.toml")
	writeFile(t, config, serveFile(fmt.Sprintf("loops = 2\nadmin = %q", admin),
		fmt.Sprintf("[http]\nlisten = %q\nroot = %q\nproxy = [\"/api=%s\", \"/two=%s,%s\"]\nproxy-conns = 2\nproxy-balance = \"round-robin\"",
			httpAddr, dir, ups[0], ups[1], ups[2])))
	startServe(t, bin, config, 1)

	get := func(path string) string {
		t.Helper()
		resp, err := http.Get("http://" + httpAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := get("/index.html"); got != "static\n" {
		t.Fatalf("static: %q", got)
	}
	if got := get("/api/v1/x"); got != "upstream 0 /api/v1/x xff=127.0.0.1" {
		t.Fatalf("/api: %q", got)
	}
	seen := map[string]int{}
	for i := 0; i < 10; i++ {
		seen[strings.Fields(get("/two/y"))[1]]++
	}
	if seen["1"] != 5 || seen["2"] != 5 {
		t.Fatalf("/two over its two upstreams: %v, want 5 each", seen)
	}
	m := (&opsProxy{admin: admin}).scrape(t)
	if v := m.value("scalestack_http_proxy_requests_total", "route", "/api", "upstream", ups[0]); v != 1 {
		t.Errorf("requests to /api's upstream: %v", v)
	}
	if v := m.value("scalestack_http_proxy_responses_total", "route", "/two", "upstream", ups[1], "class", "2xx"); v != 5 {
		t.Errorf("2xx from /two's first upstream: %v", v)
	}
	if v := m.value("scalestack_http_proxy_upstream_available", "route", "/two", "upstream", ups[2]); v != 1 {
		t.Errorf("available: %v", v)
	}
	if code, body := httpGet(t, "http://"+admin+"/status"); code != 200 || !strings.Contains(strings.Join(strings.Fields(body), ""), `"proxy":{"/api":[{"addr":"`+ups[0]) {
		t.Errorf("/status: %d %s", code, body)
	}
}
