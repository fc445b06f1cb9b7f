package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A scraper run against a stand-in admin endpoint: good answers count as scrapes, anything that is
// not the service's metrics counts as a failure with its reason. Each case runs for about 0.1 s.
func TestMetricsScraper(t *testing.T) {
	const good = "# HELP scalestack_client_connections Client connections currently open.\nscalestack_client_connections 3\n"
	tests := []struct {
		name         string
		handler      http.HandlerFunc
		wantFailures bool
		wantReason   string
	}{
		{"metrics", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(good)) }, false, ""},
		{"server error", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) }, true, "500"},
		{"not our metrics", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("go_goroutines 7\n")) }, true, "without any scalestack_ metric"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var served atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/metrics" || r.Method != http.MethodGet {
					http.NotFound(w, r)
					return
				}
				served.Add(1)
				tc.handler(w, r)
			}))
			defer srv.Close()
			logPath := filepath.Join(t.TempDir(), "scrapes.log")
			s := newMetricsScraper(srv.Listener.Addr().(*net.TCPAddr).Port, logPath)
			s.interval = 20 * time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), 110*time.Millisecond)
			defer cancel()
			st := s.run(ctx)

			if st.Scrapes < 3 || int64(st.Scrapes) != served.Load() {
				t.Errorf("%d scrapes counted, %d served; want the same, at least 3 in 110 ms at 20 ms", st.Scrapes, served.Load())
			}
			if tc.wantFailures {
				if st.Failures != st.Scrapes || !strings.Contains(st.FirstFailure, tc.wantReason) {
					t.Errorf("failures %d of %d, first %q; want all failed mentioning %q", st.Failures, st.Scrapes, st.FirstFailure, tc.wantReason)
				}
			} else if st.Failures != 0 || st.Bytes != len(good) {
				t.Errorf("failures %d (%s), last answer %d bytes; want none and %d", st.Failures, st.FirstFailure, st.Bytes, len(good))
			}
			if st.MaxMS <= 0 {
				t.Errorf("slowest scrape %v ms; want a positive duration", st.MaxMS)
			}
			b, err := os.ReadFile(logPath)
			if err != nil {
				t.Fatal(err)
			}
			if lines := strings.Count(string(b), "\n"); lines != st.Scrapes {
				t.Errorf("log has %d lines for %d scrapes:\n%s", lines, st.Scrapes, b)
			}
		})
	}
}

// Nothing listening: every scrape fails, and quickly (a refused connection, not a timeout).
func TestMetricsScraperNoEndpoint(t *testing.T) {
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	s := newMetricsScraper(port, "")
	s.interval = 20 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Millisecond)
	defer cancel()
	st := s.run(ctx)
	if st.Scrapes == 0 || st.Failures != st.Scrapes || !strings.Contains(st.FirstFailure, "GET http://127.0.0.1:") {
		t.Errorf("stats %+v; want every scrape failed with the URL in the reason", st)
	}
}

// The CPU per scrape is measured on the process serving the scrapes (here the test itself): it must
// be positive for a real endpoint, and a failing endpoint must be an error, not a number. About 3 s.
func TestIdleCPUPerScrape(t *testing.T) {
	body := strings.Repeat("scalestack_loop_events_total{loop=\"0\"} 12345\n", 500)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	s := newMetricsScraper(srv.Listener.Addr().(*net.TCPAddr).Port, "")
	ms, err := s.idleCPUPerScrape(os.Getpid(), 300)
	if err != nil {
		t.Fatal(err)
	}
	// Serving and reading 24 KB costs well under 50 ms of CPU, and 300 of them more than one tick.
	if !(ms > 0) || ms > 50 {
		t.Errorf("CPU per scrape %v ms; want a small positive number", ms)
	}

	broken := httptest.NewServer(http.NotFoundHandler())
	defer broken.Close()
	s = newMetricsScraper(broken.Listener.Addr().(*net.TCPAddr).Port, "")
	if ms, err := s.idleCPUPerScrape(os.Getpid(), 10); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("failing endpoint gave %v ms, err %v; want a 404 error", ms, err)
	}
}

func TestProfileCPU(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/debug/pprof/profile" || r.URL.Query().Get("seconds") != "4" {
			http.Error(w, "unexpected "+r.URL.String(), http.StatusBadRequest)
			return
		}
		_, _ = w.Write([]byte("profile bytes"))
	}))
	defer srv.Close()
	dir := t.TempDir()
	s := newMetricsScraper(srv.Listener.Addr().(*net.TCPAddr).Port, "")
	s.profilePath = filepath.Join(dir, "cpu.pprof")
	if err := s.profileCPU(context.Background(), 4); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(s.profilePath); err != nil || string(b) != "profile bytes" {
		t.Errorf("profile file %q, %v", b, err)
	}
	if err := s.profileCPU(context.Background(), 5); err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("a refused profile gave %v; want the status", err)
	}
}
