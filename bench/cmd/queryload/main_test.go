package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/scalestack/scalestack/bench/internal/fastmysql"
)

func startFake(t *testing.T, password string) string {
	return startFakeOn(t, "127.0.0.1:0", password)
}

func startFakeOn(t *testing.T, addr, password string) string {
	t.Helper()
	srv, err := fastmysql.Listen(addr, "bench", password)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return srv.Addr()
}

func TestRunDrivesQueries(t *testing.T) {
	for _, tc := range []struct{ engine, addr string }{
		{"epoll", "127.0.0.1:0"},
		{"net", "127.0.0.1:0"},
		{"epoll", "unix:" + t.TempDir() + "/fast.sock"},
	} {
		engine := tc.engine
		t.Run(engine+" "+tc.addr[:4], func(t *testing.T) {
			addr := startFakeOn(t, tc.addr, "pw")
			var windows []bool
			rep, err := run(context.Background(), config{
				addr: addr, user: "bench", password: "pw", db: "shop", query: "SELECT 1",
				conns: 8, workers: 1, loginWorkers: 3, engine: engine,
				warmup: 50 * time.Millisecond, duration: 300 * time.Millisecond, timeout: 10 * time.Second,
			}, func(open bool) { windows = append(windows, open) })
			if err != nil {
				t.Fatal(err)
			}
			if rep.Failures > 0 || rep.Msgs == 0 || rep.MsgsPerSec <= 0 || rep.ReplyBytes < 20 {
				t.Fatalf("report %+v", rep)
			}
			if len(windows) != 2 || !windows[0] || windows[1] {
				t.Fatalf("window callbacks %v", windows)
			}
		})
	}
}

func TestRunFailsBeforeLoad(t *testing.T) {
	addr := startFake(t, "pw")
	cases := []struct {
		name, password, query, want string
	}{
		{"wrong password", "nope", "SELECT 1", "1045"},
		{"a statement the server refuses", "pw", "SELECT 2", "1064"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := run(context.Background(), config{
				addr: addr, user: "bench", password: tc.password, query: tc.query,
				conns: 4, loginWorkers: 2, engine: "epoll", duration: time.Second, timeout: 10 * time.Second,
			}, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one mentioning %s", err, tc.want)
			}
		})
	}
	if _, err := run(context.Background(), config{addr: "10.0.0.1:3306", conns: 1, loginWorkers: 1, duration: time.Second}, nil); err == nil {
		t.Error("ran against a non-loopback address")
	}
}
