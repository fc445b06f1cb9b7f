package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// runSysbench with a scraper, against a stand-in sysbench that prints a recorded run slowly: the
// scrapes must all fall inside the measured window (after "Threads started!" plus the warm-up, before
// the window's end) and the run's histogram must be read. About 2.5 s.
func TestRunSysbenchScrapesOnlyTheWindow(t *testing.T) {
	dir := t.TempDir()
	recorded, err := filepath.Abs("testdata/histogram-run.log")
	if err != nil {
		t.Fatal(err)
	}
	// Warm-up 1 s, window 1 s, then the final statistics.
	fake := filepath.Join(dir, "sysbench")
	script := "#!/bin/sh\necho 'Threads started!'\nsleep 2.2\ngrep -v 'Threads started!' " + recorded + "\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var scrapedAt []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		scrapedAt = append(scrapedAt, time.Now())
		mu.Unlock()
		_, _ = w.Write([]byte("scalestack_loop_events_total{loop=\"0\"} 1\n"))
	}))
	defer srv.Close()
	scraper := newMetricsScraper(srv.Listener.Addr().(*net.TCPAddr).Port, filepath.Join(dir, "scrapes.log"))
	scraper.interval = 100 * time.Millisecond

	launched := time.Now()
	r, err := runSysbench(context.Background(), []string{fake}, "", 0, os.Getpid(), pointTiming{WarmupS: 1, MeasureS: 1},
		scraper, filepath.Join(dir, "sysbench.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !r.res.Complete || len(r.res.Histogram) == 0 {
		t.Errorf("complete %v, %d histogram rows; want the recorded run's", r.res.Complete, len(r.res.Histogram))
	}
	mu.Lock()
	defer mu.Unlock()
	// The window is 0.7 s long (1 s less the sample margin): about 8 scrapes at 100 ms.
	if r.scrapes.Scrapes != len(scrapedAt) || r.scrapes.Scrapes < 4 || r.scrapes.Scrapes > 9 || r.scrapes.Failures != 0 {
		t.Errorf("stats %+v, %d served; want 4 to 9 good scrapes, all counted", r.scrapes, len(scrapedAt))
	}
	for _, at := range scrapedAt {
		if since := at.Sub(launched); since < time.Second || since > 2*time.Second {
			t.Errorf("a scrape %s after launch, outside the window [1s, 2s)", since)
		}
	}
}
