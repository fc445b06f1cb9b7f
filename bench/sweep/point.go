package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// connectLimit bounds how long sysbench may take to connect all its threads before the point is
// declared failed; thousands of threads behind a saturated listener need tens of seconds here.
const connectLimit = 5 * time.Minute

// sampleMargin is how much earlier than the nominal window end the last /proc sample is taken.
const sampleMargin = 300 * time.Millisecond

// sample is one reading of the processes whose cost the sweep reports.
type sample struct {
	at          time.Time
	targetCPU   int64 // clock ticks; -1 when there is no target process
	dbCPU       int64
	sysbenchCPU int64
	hostBusy    int64 // all CPUs, all processes
	dbVCSW      int64 // voluntary context switches of MariaDB's threads
}

func takeSample(targetPID, dbPID, sysbenchPID int) (sample, error) {
	s := sample{at: time.Now(), targetCPU: -1}
	var err error
	if targetPID > 0 {
		if s.targetCPU, err = cpuTicks(targetPID); err != nil {
			return s, err
		}
	}
	if s.dbCPU, err = cpuTicks(dbPID); err != nil {
		return s, err
	}
	if s.sysbenchCPU, err = cpuTicks(sysbenchPID); err != nil {
		return s, err
	}
	if s.hostBusy, err = hostBusyTicks(); err != nil {
		return s, err
	}
	// Last: with thousands of server threads this reads thousands of files, and the CPU readings
	// above should be as close together as they can.
	s.dbVCSW, err = voluntarySwitches(dbPID)
	return s, err
}

// otherCPUPercent is the share of the host's CPU capacity that processes other than sysbench, the
// target and MariaDB used between two samples: near 0 on a quiet host, and the first thing to check
// when a point looks out of line.
func otherCPUPercent(s0, s1 sample, ncpu int) float64 {
	ours := (s1.dbCPU - s0.dbCPU) + (s1.sysbenchCPU - s0.sysbenchCPU)
	if s0.targetCPU >= 0 {
		ours += s1.targetCPU - s0.targetCPU
	}
	capacity := s1.at.Sub(s0.at).Seconds() * clockTicksPerSecond * float64(ncpu)
	if capacity <= 0 {
		return math.NaN()
	}
	return max(0, float64(s1.hostBusy-s0.hostBusy-ours)) / capacity * 100
}

// runPoint measures one (test, threads, target, rep). An error means the harness itself could not go
// on; a point that merely failed (sysbench errors, a target that died) is returned with its status.
func runPoint(ctx context.Context, cfg config, dbPID int, sess *sqlSession, env targetEnv, pp plannedPoint, idleConns int64, logDir string) (point, error) {
	p := point{Test: pp.Test, Threads: pp.Threads, Target: pp.Target, Rep: pp.Rep, Start: time.Now(),
		TargetCPUPerKQ: math.NaN(), DBCPUPerKQ: math.NaN(), DBVCSWPerQ: math.NaN(), ClientCPUPerKQ: math.NaN(), TargetRSSKB: -1, QPS: math.NaN(),
		TPS: math.NaN(), LatAvgMS: math.NaN(), LatP95MS: math.NaN(), LatP99MS: math.NaN(), WindowS: math.NaN(), ConnectS: math.NaN(), SysbenchQPS: math.NaN(),
		OtherCPUPct: math.NaN(), Scrapes: -1, ScrapeMaxMS: math.NaN(), ScrapeCPUMS: math.NaN()}
	stem := fmt.Sprintf("%s-t%d-%s-r%d", pp.Test, pp.Threads, pp.Target, pp.Rep)

	if idle, err := waitDBIdle(ctx, sess, idleConns, 2*time.Minute); err != nil {
		return p, err
	} else if !idle {
		logf("warning: MariaDB still holds connections from before this point after 2m; counting from there")
	}
	// FLUSH STATUS lowers Max_used_connections to the connections open now; the session is one of them
	// and stays open, so the point's own peak is Max_used_connections less this count.
	before, err := sess.status(ctx, "FLUSH STATUS; ", "Threads_connected")
	if err != nil {
		return p, err
	}

	tg, err := startTarget(ctx, pp.Target, env, filepath.Join(logDir, stem+"-target.log"))
	if err != nil {
		p.Status = "failed: " + firstLine(err.Error())
		logf("%v", err)
		return p, nil
	}
	var stopOnce sync.Once
	stopTarget := func() {
		stopOnce.Do(func() {
			if err := tg.stop(); err != nil {
				logf("%v", err)
			}
		})
	}
	defer stopTarget()

	login := dbLogin{Host: "127.0.0.1", Port: tg.Port, User: benchUser, Password: benchPassword, Database: benchDatabase}
	timing := pointTiming{WarmupS: cfg.WarmupS, MeasureS: cfg.TimeS}
	args := sysbenchArgs(pp.Test, pp.Threads, timing, login, cfg.Tables, cfg.TableSize)
	sysbenchDir := ""
	if isTLSTarget(pp.Target) {
		// sysbench 1.0 hands libmariadb client-key.pem, client-cert.pem and cacert.pem from its
		// working directory.
		args = append(args[:len(args)-1:len(args)-1], "--mysql-ssl=on", args[len(args)-1])
		sysbenchDir = env.TLSDir
	}
	argv := withCPUs(cfg.SysbenchCPUs, append([]string{"sysbench"}, args...)...)
	var scraper *metricsScraper
	if tg.AdminPort > 0 {
		scraper = newMetricsScraper(tg.AdminPort, filepath.Join(logDir, stem+"-scrapes.log"))
		if cfg.ProfileScraped {
			scraper.profilePath = filepath.Join(logDir, stem+"-cpu.pprof")
		}
	}
	sr, runErr := runSysbench(ctx, argv, sysbenchDir, tg.PID, dbPID, timing, scraper, filepath.Join(logDir, stem+"-sysbench.log"))
	res, s0, s1 := sr.res, sr.s0, sr.s1
	p.ConnectS = sr.connectS
	if scraper != nil {
		p.Scrapes, p.ScrapeFailures = sr.scrapes.Scrapes, sr.scrapes.Failures
		if p.Scrapes > 0 {
			p.ScrapeMaxMS = sr.scrapes.MaxMS
		}
	}
	if ctx.Err() != nil {
		return p, ctx.Err()
	}
	if scraper != nil && runErr == nil {
		// While the proxy still runs, now idle: what one scrape costs it, free of the host's noise.
		if p.ScrapeCPUMS, err = scraper.idleCPUPerScrape(tg.PID, calibrationScrapes); err != nil {
			logf("measuring the CPU per scrape: %v", err)
		}
	}

	stopTarget()
	maxUsed, err := sess.status(ctx, "", "Max_used_connections")
	if err != nil {
		return p, err
	}
	p.BackendConnsMax = max(0, maxUsed[0]-before[0])
	p.Errors, p.Reconnects = res.Errors(), res.Reconnects
	switch {
	case len(res.Fatal) > 0:
		p.Status = "failed: " + res.Fatal[0]
	case runErr != nil:
		p.Status = "failed: " + firstLine(runErr.Error())
	case !res.Complete:
		p.Status = "failed: sysbench printed no final statistics"
	case scraper != nil && sr.scrapes.Failures > 0:
		p.Status = fmt.Sprintf("failed: %d of %d metrics scrapes failed, first: %s", sr.scrapes.Failures, sr.scrapes.Scrapes, sr.scrapes.FirstFailure)
	case scraper != nil && sr.scrapes.Scrapes == 0:
		p.Status = "failed: no metrics scrape happened during the measured window"
	default:
		p.Status = "ok"
	}
	if p.Status != "ok" {
		return p, nil
	}
	qps, tps, ok := res.windowQPS(cfg.WarmupS, cfg.WarmupS+cfg.TimeS)
	if !ok {
		p.Status = "failed: sysbench left over a third of the measured window's seconds unreported"
		return p, nil
	}
	p.QPS, p.TPS, p.LatAvgMS, p.LatP95MS = qps, tps, res.LatAvgMS, res.LatP95MS
	p.LatP99MS = histogramPercentile(res.Histogram, 99)
	p.SysbenchQPS = res.QPS
	if !s0.at.IsZero() && !s1.at.IsZero() {
		p.WindowS = s1.at.Sub(s0.at).Seconds()
		kq := qps * p.WindowS / 1000
		if kq > 0 {
			if s0.targetCPU >= 0 {
				p.TargetCPUPerKQ = float64(s1.targetCPU-s0.targetCPU) / clockTicksPerSecond / kq
				p.TargetRSSKB = sr.rssKB
			}
			p.DBCPUPerKQ = float64(s1.dbCPU-s0.dbCPU) / clockTicksPerSecond / kq
			p.ClientCPUPerKQ = float64(s1.sysbenchCPU-s0.sysbenchCPU) / clockTicksPerSecond / kq
			p.DBVCSWPerQ = float64(s1.dbVCSW-s0.dbVCSW) / (kq * 1000)
		}
		p.OtherCPUPct = otherCPUPercent(s0, s1, runtime.NumCPU())
	}
	return p, nil
}

// sysbenchRun is what one sysbench run yielded; a sample is zero when sysbench ended before it was due.
type sysbenchRun struct {
	res      sysbenchResult
	s0, s1   sample
	rssKB    int64   // the target's VmRSS at the end of the window; -1 if none
	connectS float64 // NaN when the threads never all started
	scrapes  scrapeStats
}

// runSysbench runs one sysbench, copying its output to logPath, and samples the target and the
// database at the start and the end of sysbench's measured window (after "Threads started!" plus the
// warm-up). A non-nil scraper scrapes the target's metrics from the window's start to its end. dir is
// sysbench's working directory ("": the sweep's).
func runSysbench(ctx context.Context, argv []string, dir string, targetPID, dbPID int, t pointTiming, scraper *metricsScraper, logPath string) (sysbenchRun, error) {
	r := sysbenchRun{rssKB: -1, connectS: math.NaN()}
	logFile, err := os.Create(logPath)
	if err != nil {
		return r, fmt.Errorf("creating sysbench log: %w", err)
	}
	defer logFile.Close()
	fmt.Fprintf(logFile, "# %s\n", strings.Join(argv, " "))
	pr, pw := io.Pipe()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = pw, pw
	launched := time.Now()
	if err := cmd.Start(); err != nil {
		return r, fmt.Errorf("starting sysbench: %w", err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); pw.Close(); close(exited) }()

	started := make(chan time.Time, 1)
	var parseErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logFile, line)
			if strings.Contains(line, "Threads started!") {
				select {
				case started <- time.Now():
				default:
				}
			}
			if err := parseSysbenchLine(&r.res, line); err != nil && parseErr == nil {
				parseErr = err
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()

	kill := func(why string) {
		_ = cmd.Process.Kill()
		fmt.Fprintf(logFile, "# killed: %s\n", why)
	}
	hardLimit := time.Duration(t.WarmupS+t.MeasureS)*time.Second + connectLimit + 2*time.Minute
	hard := time.NewTimer(hardLimit)
	defer hard.Stop()

	var startAt time.Time
	select {
	case startAt = <-started:
	case <-exited:
	case <-time.After(connectLimit):
		kill("threads did not all connect within " + connectLimit.String())
	case <-ctx.Done():
		kill("interrupted")
	}
	if !startAt.IsZero() {
		r.connectS = startAt.Sub(launched).Seconds()
		windowStart := startAt.Add(time.Duration(t.WarmupS) * time.Second)
		// sysbench's own clock starts a moment before we read "Threads started!", and it may exit the
		// instant its --time is up; the last sample is taken a little early so it never misses sysbench.
		windowEnd := windowStart.Add(time.Duration(t.MeasureS)*time.Second - sampleMargin)
		if waitUntil(ctx, windowStart, exited) {
			var err error
			if r.s0, err = takeSample(targetPID, dbPID, cmd.Process.Pid); err != nil {
				logf("sampling at window start: %v", err)
				r.s0 = sample{}
			}
			stopScraping, scrapingDone := func() {}, func() {}
			if scraper != nil {
				scrapeCtx, cancel := context.WithCancel(ctx)
				done := make(chan struct{})
				go func() { r.scrapes = scraper.run(scrapeCtx); close(done) }()
				profiled := make(chan struct{})
				if scraper.profilePath != "" {
					// A second less than the window, so the profile ends inside it; cut short with the
					// scraping if sysbench ends early.
					go func() {
						if err := scraper.profileCPU(scrapeCtx, max(1, t.MeasureS-1)); err != nil {
							logf("CPU profile: %v", err)
						}
						close(profiled)
					}()
				} else {
					close(profiled)
				}
				stopScraping, scrapingDone = cancel, func() { <-done; <-profiled }
			}
			windowDone := waitUntil(ctx, windowEnd, exited)
			// No scrape starts after the window; one still in flight may finish after the last sample,
			// which must not wait for it (sysbench ends moments after the window).
			stopScraping()
			if windowDone {
				if r.s1, err = takeSample(targetPID, dbPID, cmd.Process.Pid); err != nil {
					logf("sampling at window end: %v", err)
					r.s1 = sample{}
				}
				if targetPID > 0 {
					if r.rssKB, err = rssKB(targetPID); err != nil {
						r.rssKB = -1
					}
				}
			}
			scrapingDone()
		}
	}
	select {
	case <-exited:
	case <-hard.C:
		kill("ran past " + hardLimit.String())
		<-exited
	case <-ctx.Done():
		kill("interrupted")
		<-exited
	}
	wg.Wait()
	if parseErr != nil {
		return r, parseErr
	}
	if waitErr != nil {
		return r, fmt.Errorf("sysbench: %w", waitErr)
	}
	return r, nil
}

// waitUntil sleeps until t; false if the process exited or the context ended first.
func waitUntil(ctx context.Context, t time.Time, exited <-chan struct{}) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-exited:
		return false
	case <-ctx.Done():
		return false
	}
}

// waitDBIdle waits until the previous point's connections are gone from MariaDB (tearing down
// thousands of server threads takes a moment); false if that took longer than limit.
func waitDBIdle(ctx context.Context, sess *sqlSession, idle int64, limit time.Duration) (bool, error) {
	deadline := time.Now().Add(limit)
	for {
		v, err := sess.status(ctx, "", "Threads_connected")
		if err != nil {
			return false, err
		}
		if v[0] <= idle {
			return true, nil
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
