package pool

import (
	"strings"
	"testing"

	"github.com/scalestack/scalestack/conn"
)

func TestParseTargets(t *testing.T) {
	cases := []struct {
		list, ro string
		want     string // Target strings joined by "|"
		wantErr  string
	}{
		{"127.0.0.1:3306", "", "tcp:127.0.0.1:3306", ""},
		{"127.0.0.1:1=3, 127.0.0.2:2", "", "tcp:127.0.0.1:1=3|tcp:127.0.0.2:2", ""},
		{"127.0.0.1:1", "127.0.0.3:3=2", "tcp:127.0.0.1:1|tcp:127.0.0.3:3=2 (read-only, unused)", ""},
		{"unix:/run/mysqld.sock=2", "", "unix:/run/mysqld.sock=2", ""},
		{"127.0.0.1:1=0", "", "", "weight"},
		{"127.0.0.1:1=x", "", "", "weight"},
		{"127.0.0.1:1,127.0.0.1:1", "", "", "twice"},
		{"", "", "", ""},
	}
	for _, c := range cases {
		got, err := ParseTargets(c.list, c.ro)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("ParseTargets(%q, %q): %v, want an error about %q", c.list, c.ro, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseTargets(%q, %q): %v", c.list, c.ro, err)
			continue
		}
		var s []string
		for _, tg := range got {
			s = append(s, tg.String())
		}
		if strings.Join(s, "|") != c.want {
			t.Errorf("ParseTargets(%q, %q) = %q, want %q", c.list, c.ro, strings.Join(s, "|"), c.want)
		}
	}
}

func TestSplitConns(t *testing.T) {
	tcp := func(a string, w int, ro bool) Target {
		return Target{Addr: conn.Addr{Network: "tcp", Address: a}, Weight: w, ReadOnly: ro}
	}
	cases := []struct {
		n       int
		targets []Target
		want    []int // connections per target
	}{
		{4, []Target{tcp("a", 1, false)}, []int{4}},
		{4, []Target{tcp("a", 3, false), tcp("b", 1, false)}, []int{3, 1}},
		{5, []Target{tcp("a", 1, false), tcp("b", 1, false)}, []int{3, 2}},
		{10, []Target{tcp("a", 1, false), tcp("b", 1, false), tcp("c", 1, false)}, []int{4, 3, 3}},
		{8, []Target{tcp("a", 1, false), tcp("r", 5, true), tcp("b", 1, false)}, []int{4, 0, 4}},
		{1, []Target{tcp("a", 1, false), tcp("b", 2, false)}, []int{0, 1}},
	}
	for _, c := range cases {
		got := splitConns(c.n, c.targets)
		if len(got) != c.n {
			t.Fatalf("splitConns(%d): %d connections", c.n, len(got))
		}
		counts := make([]int, len(c.targets))
		for _, i := range got {
			counts[i]++
		}
		for i := range counts {
			if counts[i] != c.want[i] {
				t.Errorf("splitConns(%d, %v) per target %v, want %v", c.n, c.targets, counts, c.want)
				break
			}
		}
	}
}
