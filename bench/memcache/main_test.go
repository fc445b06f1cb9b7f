package main

import (
	"strings"
	"testing"
)

const memcaslapOut = `servers: 127.0.0.1:24999
threads count: 1
concurrency: 64
run time: 3s
windows size: 10k
set proportion: set_prop=0.10
get proportion: get_prop=0.90
cmd_get: 951872
cmd_set: 105848
get_misses: 12
written_bytes: 77275506
read_bytes: 137208873
object_bytes: 13548544

Run time: 3.0s Ops: 1057720 TPS: 352531 Net_rate: 68.2M/s
`

func TestParseMemcaslap(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		ops     float64
		seconds float64
		misses  float64
		err     string
	}{
		{name: "totals", out: memcaslapOut, ops: 1057720, seconds: 3, misses: 12},
		{name: "error responses fail the run", out: "<9 SERVER_ERROR proxy: memcached server unavailable\n" + memcaslapOut,
			err: `1 unexpected responses, the first "<9 SERVER_ERROR proxy: memcached server unavailable"`},
		{name: "no totals", out: "servers: 127.0.0.1:1\n", err: "printed no totals"},
		{name: "no operations", out: "Run time: 3.0s Ops: 0 TPS: 0 Net_rate: 0M/s\n", err: "ran 3.0 s, 0 ops"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := parseMemcaslap(tc.out)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Ops != tc.ops || r.Seconds != tc.seconds || r.GetMisses != tc.misses {
				t.Fatalf("got %+v, want %v ops in %v s, %v misses", r, tc.ops, tc.seconds, tc.misses)
			}
		})
	}
}

func TestParseLoads(t *testing.T) {
	ls, err := parseLoads(defaultLoads)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 3 || ls[0].name != "plain" || strings.Join(ls[2].args, " ") != "-T 1 -c 64 -X 64 -d 16" {
		t.Fatalf("parsed %+v", ls)
	}
	for _, bad := range []string{"", "plain", "=-c 1", "plain=  "} {
		if _, err := parseLoads(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
