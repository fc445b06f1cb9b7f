package testutil

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func ms(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }

func TestParseSysbenchCapturedOutput(t *testing.T) {
	// The files are real sysbench 1.0.20 output captured against scripts/mariadb.sh's server; the
	// expectations restate numbers printed in them.
	tests := []struct {
		file    string
		want    SysbenchResult
		wantErr string
	}{
		{
			file: "sysbench_read_only.txt",
			want: SysbenchResult{Reads: 37226, Writes: 0, Other: 5318, Queries: 42544, QPS: 14148.89,
				Transactions: 2659, TPS: 884.31, TotalTime: 3006500 * time.Microsecond, Events: 2659,
				LatencyMin: ms(0.66), LatencyAvg: ms(4.52), LatencyMax: ms(40.75), Percentile: 95,
				LatencyPercentile: ms(10.84)},
		},
		{
			file: "sysbench_read_write_deadlocks.txt",
			want: SysbenchResult{Reads: 15512, Writes: 2921, Other: 1666, Queries: 20099, QPS: 6592.81,
				Transactions: 558, TPS: 183.03, Errors: 550, TotalTime: 3047900 * time.Microsecond,
				Events: 558, LatencyMin: ms(4.34), LatencyAvg: ms(86.62), LatencyMax: ms(545.24),
				Percentile: 95, LatencyPercentile: ms(253.35)},
		},
		{
			file:    "sysbench_access_denied.txt",
			wantErr: "Access denied for user 'test_native'",
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseSysbench(string(data))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSysbench error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSysbench: %v", err)
			}
			if got != tt.want {
				t.Errorf("ParseSysbench =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestParseSysbenchVariants(t *testing.T) {
	const report = `SQL statistics:
    queries performed:
        read:                            10
        write:                           0
        other:                           0
        total:                           10
    transactions:                        10     (5.00 per sec.)
    queries:                             10     (5.00 per sec.)
    ignored errors:                      3      (1.50 per sec.)
    reconnects:                          2      (1.00 per sec.)

General statistics:
    total time:                          2.0000s
    total number of events:              10

Latency (ms):
         min:                                    1.00
         avg:                                    2.00
         max:                                    3.00
         99th percentile:                        2.50
         sum:                                   20.00
`
	tests := []struct {
		name    string
		input   string
		check   func(SysbenchResult) bool
		wantErr string
	}{
		{"reconnects and errors counted", report,
			func(r SysbenchResult) bool { return r.Reconnects == 2 && r.Errors == 3 }, ""},
		{"other percentile", report,
			func(r SysbenchResult) bool { return r.Percentile == 99 && r.LatencyPercentile == ms(2.5) }, ""},
		{"interim report lines ignored",
			"[ 1s ] thds: 4 tps: 1.00 qps: 9.99 (r/w/o: 1/0/0) lat (ms,95%): 9.39 err/s: 0.00 reconn/s: 0.00\n" + report,
			func(r SysbenchResult) bool { return r.QPS == 5 }, ""},
		{"empty output", "", nil, "no report"},
		{"report cut before total time", report[:strings.Index(report, "General")], nil, "no report"},
		{"count not a number", strings.Replace(report, "queries:                             10",
			"queries:                             ten", 1), nil, "count"},
		{"rate missing", strings.Replace(report, "10     (5.00 per sec.)\n    ignored",
			"10\n    ignored", 1), nil, "per-second"},
		{"negative latency", strings.Replace(report, "avg:                                    2.00",
			"avg: -2.00", 1), nil, "out of range"},
		{"NaN latency", strings.Replace(report, "max:                                    3.00",
			"max: NaN", 1), nil, "out of range"},
		{"percentile over 100", strings.Replace(report, "99th percentile", "101th percentile", 1),
			nil, "not 1-100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSysbench(tt.input)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSysbench error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSysbench: %v", err)
			}
			if !tt.check(got) {
				t.Errorf("ParseSysbench = %+v, fails the check", got)
			}
		})
	}
}

func TestSysbenchTimeLimit(t *testing.T) {
	tests := []struct {
		args    []string
		want    time.Duration
		wantErr bool
	}{
		{[]string{"oltp_read_only", "run"}, 10 * time.Second, false},
		{[]string{"--time=3", "oltp_read_only", "run"}, 3 * time.Second, false},
		{[]string{"--time=3", "--time=7"}, 7 * time.Second, false},
		{[]string{"--time=0"}, 0, true},
		{[]string{"--time=x"}, 0, true},
		{[]string{"--time=-1"}, 0, true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			got, err := sysbenchTimeLimit(tt.args)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("sysbenchTimeLimit = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func FuzzParseSysbench(f *testing.F) {
	for _, name := range []string{"sysbench_read_only.txt", "sysbench_read_write_deadlocks.txt",
		"sysbench_access_denied.txt"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(data))
	}
	f.Fuzz(func(t *testing.T, output string) {
		res, err := ParseSysbench(output)
		if err != nil {
			return
		}
		// Whatever it accepts must be a sane report.
		if res.Queries < 0 || res.Errors < 0 || res.Reconnects < 0 || res.TotalTime < 0 ||
			res.LatencyAvg < 0 || res.LatencyPercentile < 0 || res.QPS < 0 {
			t.Fatalf("ParseSysbench accepted negative totals: %+v", res)
		}
	})
}

func TestSysbenchCommand(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"oltp_read_only", "--threads=4", "run"}, "run"},
		{[]string{"--threads=4", "oltp_read_only", "prepare", "--time=3"}, "prepare"},
		{[]string{"--help"}, ""},
	}
	for _, tt := range tests {
		if got := sysbenchCommand(tt.args); got != tt.want {
			t.Errorf("sysbenchCommand(%q) = %q, want %q", tt.args, got, tt.want)
		}
	}
}
