package pool

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/scalestack/scalestack/conn"
)

// Target is one backend server of Config.Targets.
type Target struct {
	Addr conn.Addr
	// Weight is the target's share of the connections (0: 1).
	Weight int
	// ReadOnly marks a replica. Recorded only: without read/write
	// splitting a replica would be sent writes, so it gets no
	// connections.
	ReadOnly bool
}

func (t Target) String() string {
	s := t.Addr.String()
	if t.Weight > 1 {
		s += "=" + strconv.Itoa(t.Weight)
	}
	if t.ReadOnly {
		s += " (read-only, unused)"
	}
	return s
}

// ParseTargets parses a comma-separated list of ADDR[=WEIGHT] (ADDR as for
// conn.ParseAddr: host:port or unix:/path), marking the addresses listed in
// readOnly (same syntax, weights allowed) as read-only.
func ParseTargets(list, readOnly string) ([]Target, error) {
	var out []Target
	for _, spec := range []struct {
		text string
		ro   bool
	}{{list, false}, {readOnly, true}} {
		if strings.TrimSpace(spec.text) == "" {
			continue
		}
		for _, item := range strings.Split(spec.text, ",") {
			item = strings.TrimSpace(item)
			addr, weight := item, 1
			if i := strings.LastIndexByte(item, '='); i >= 0 {
				w, err := strconv.Atoi(item[i+1:])
				if err != nil || w < 1 || w > 1000 {
					return nil, fmt.Errorf("backend %q: weight must be a whole number from 1 to 1000", item)
				}
				addr, weight = item[:i], w
			}
			a, err := conn.ParseAddr(addr)
			if err != nil {
				return nil, fmt.Errorf("backend %q: %w", item, err)
			}
			for _, t := range out {
				if t.Addr.String() == a.String() {
					return nil, fmt.Errorf("backend %s is listed twice", a)
				}
			}
			out = append(out, Target{Addr: a, Weight: weight, ReadOnly: spec.ro})
		}
	}
	return out, nil
}

// splitConns assigns n connections to the writable targets in proportion
// to their weights (largest remainder, so the counts add up to n), and
// returns each connection's target index. A target whose share rounds to
// zero gets none.
func splitConns(n int, targets []Target) []int {
	total := 0
	for _, t := range targets {
		if !t.ReadOnly {
			total += t.Weight
		}
	}
	counts := make([]int, len(targets))
	rems := make([]int, len(targets))
	given := 0
	for i, t := range targets {
		if t.ReadOnly {
			rems[i] = -1
			continue
		}
		counts[i] = n * t.Weight / total
		rems[i] = n * t.Weight % total
		given += counts[i]
	}
	// The shortfall is less than the number of writable targets, so each
	// gets at most one more, largest remainder first.
	for ; given < n; given++ {
		best := -1
		for i, r := range rems {
			if r >= 0 && (best < 0 || r > rems[best]) {
				best = i
			}
		}
		counts[best]++
		rems[best] = -1
	}
	// Interleave so that every target's connections spread over the loops
	// (connection i goes to loop i % loops).
	out := make([]int, 0, n)
	for len(out) < n {
		for i := range counts {
			if counts[i] > 0 {
				out = append(out, i)
				counts[i]--
			}
		}
	}
	return out
}

// Targets returns the configured backend servers.
func (p *Pool) Targets() []Target { return append([]Target(nil), p.cfg.Targets...) }
