package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// scrapeInterval is how often the sweep scrapes a scraped target's /metrics: once a second, far more
// often than a Prometheus server usually does (15 s to 1 min), so the measured cost is an upper bound.
const scrapeInterval = time.Second

// scrapeTimeout bounds one scrape; one that takes longer counts as failed.
const scrapeTimeout = 5 * time.Second

// metricMarker must appear in a good /metrics answer: every Scale Stack service exports metrics
// under this prefix, so a 200 without it is not the proxy's metrics.
var metricMarker = []byte("scalestack_")

// metricsScraper GETs one target's /metrics at a fixed interval, as a monitoring system would, and
// keeps a line per scrape in its log for when a point needs explaining.
type metricsScraper struct {
	url      string
	interval time.Duration
	client   *http.Client
	logPath  string
	// profilePath, when set, receives a CPU profile of the target taken over the measured window
	// through its /debug/pprof/profile, to see where the scrapes' CPU goes under load.
	profilePath string
}

// scrapeStats is what one window's scraping did.
type scrapeStats struct {
	Scrapes      int
	Failures     int
	FirstFailure string
	MaxMS        float64 // the slowest scrape, in milliseconds
	Bytes        int     // size of the last good answer
}

func newMetricsScraper(adminPort int, logPath string) *metricsScraper {
	return &metricsScraper{
		url:      "http://127.0.0.1:" + strconv.Itoa(adminPort) + "/metrics",
		interval: scrapeInterval,
		// Keep-alive, as Prometheus does: the cost measured is the scrape's, not a TCP handshake's.
		client:  &http.Client{Timeout: scrapeTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: 1}},
		logPath: logPath,
	}
}

// run scrapes at once and then every interval until ctx ends. A scrape already started when ctx ends
// finishes (within scrapeTimeout) and counts, so stopping never turns a good scrape into a failure.
func (s *metricsScraper) run(ctx context.Context) scrapeStats {
	var st scrapeStats
	var log io.Writer = io.Discard
	if s.logPath != "" {
		if f, err := os.Create(s.logPath); err == nil {
			defer f.Close()
			log = f
		}
	}
	defer s.client.CloseIdleConnections()
	tick := time.NewTicker(s.interval)
	defer tick.Stop()
	for {
		began := time.Now()
		n, err := s.scrapeOnce()
		ms := float64(time.Since(began).Microseconds()) / 1000
		st.Scrapes++
		st.MaxMS = max(st.MaxMS, ms)
		if err != nil {
			st.Failures++
			if st.FirstFailure == "" {
				st.FirstFailure = err.Error()
			}
			fmt.Fprintf(log, "%s %.1fms FAILED %v\n", began.UTC().Format("15:04:05.000"), ms, err)
		} else {
			st.Bytes = n
			fmt.Fprintf(log, "%s %.1fms ok %d bytes\n", began.UTC().Format("15:04:05.000"), ms, n)
		}
		select {
		case <-ctx.Done():
			return st
		case <-tick.C:
		}
	}
}

// profileCPU fetches a CPU profile of the target over the next seconds into profilePath.
func (s *metricsScraper) profileCPU(ctx context.Context, seconds int) error {
	url := strings.TrimSuffix(s.url, "/metrics") + "/debug/pprof/profile?seconds=" + strconv.Itoa(seconds)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("profile request: %w", err)
	}
	// Not s.client: its timeout is a scrape's, far shorter than the profile.
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(s.profilePath)
	if err != nil {
		return fmt.Errorf("creating profile: %w", err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", s.profilePath, err)
	}
	return f.Close()
}

// scrapeOnce does one GET and checks that the answer is the service's metrics; it returns the
// answer's size.
func (s *metricsScraper) scrapeOnce() (int, error) {
	resp, err := s.client.Get(s.url)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", s.url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", s.url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return len(body), fmt.Errorf("GET %s: %s", s.url, resp.Status)
	}
	if !bytes.Contains(body, metricMarker) {
		return len(body), fmt.Errorf("GET %s: %d bytes without any %s metric", s.url, len(body), metricMarker)
	}
	return len(body), nil
}

// calibrationScrapes is how many back-to-back scrapes measure the CPU per scrape: enough clock ticks
// (10 ms each) that one tick more or less is a small error.
const calibrationScrapes = 200

// calibrationIdle is how long the target is watched without scrapes, to subtract what it burns idle
// (health checks of its backends, timers) from what the scrapes cost.
const calibrationIdle = time.Second

// idleCPUPerScrape measures what one scrape costs the target in CPU-milliseconds: once its load has
// stopped, n scrapes back to back, less the CPU it used idle for as long. Unlike the QPS difference
// between the scraped and the unscraped target, this does not drown in the host's noise; it slightly
// understates the cost under load, where caches are colder.
func (s *metricsScraper) idleCPUPerScrape(pid, n int) (float64, error) {
	// Let the closing of the benchmark's client connections finish first.
	time.Sleep(500 * time.Millisecond)
	t0, err := cpuTicks(pid)
	if err != nil {
		return math.NaN(), err
	}
	idleFrom := time.Now()
	time.Sleep(calibrationIdle)
	t1, err := cpuTicks(pid)
	if err != nil {
		return math.NaN(), err
	}
	idlePerSecond := float64(t1-t0) / time.Since(idleFrom).Seconds()
	scrapesFrom := time.Now()
	for range n {
		if _, err := s.scrapeOnce(); err != nil {
			return math.NaN(), fmt.Errorf("calibration scrape: %w", err)
		}
	}
	t2, err := cpuTicks(pid)
	if err != nil {
		return math.NaN(), err
	}
	ticks := float64(t2-t1) - idlePerSecond*time.Since(scrapesFrom).Seconds()
	return max(0, ticks) / clockTicksPerSecond * 1000 / float64(n), nil
}
