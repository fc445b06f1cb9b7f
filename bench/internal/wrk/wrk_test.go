package wrk

import (
	"strings"
	"testing"
	"time"
)

// A summary as wrk 4.1 prints it with --latency.
const sample = `Running 10s test @ http://127.0.0.1:8080/small.txt
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.20ms  300.00us   9.00ms   90.00%
  Latency Distribution
     50%    1.10ms
     75%    1.30ms
     90%    1.50ms
     99%  812.00us
  523456 requests in 10.00s, 80.00MB read
  Non-2xx or 3xx responses: 12
Requests/sec:  52345.60
`

func TestParse(t *testing.T) {
	cases := []struct {
		name    string
		out     string
		want    Result
		wantErr bool
	}{
		{"summary", sample, Result{Requests: 523456, Seconds: 10, ReqPerSec: 52345.6, P50: 1100 * time.Microsecond,
			P99: 812 * time.Microsecond, Errors: "Non-2xx or 3xx responses: 12; "}, false},
		{"minutes", "  600 requests in 1.00m, 1MB read\n", Result{Requests: 600, Seconds: 60, ReqPerSec: 10}, false},
		{"socket errors", strings.Replace(sample, "  Non-2xx or 3xx responses: 12\n", "  Socket errors: connect 0, read 3, write 0, timeout 1\n", 1),
			Result{Requests: 523456, Seconds: 10, ReqPerSec: 52345.6, P50: 1100 * time.Microsecond, P99: 812 * time.Microsecond,
				Errors: "Socket errors: connect 0, read 3, write 0, timeout 1; "}, false},
		{"no count", "unable to connect to 127.0.0.1:8080 Connection refused\n", Result{}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.out)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, want error %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("Parse = %+v, want %+v", got, tc.want)
			}
		})
	}
}
