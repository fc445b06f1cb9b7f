package runner

import "log"

// Interleave runs every contender once per round, rotating the order each
// round so none always goes first or last, and so that ratios between
// contenders are measured minutes apart rather than half an hour. A
// contender whose run fails is dropped from later rounds; its error is
// returned in broken. run gets the contender and the round number.
func Interleave[R any](names []string, rounds int, run func(name string, round int) (R, error)) (runs map[string][]R, broken map[string]string) {
	runs = map[string][]R{}
	broken = map[string]string{}
	order := append([]string{}, names...)
	for round := 0; round < rounds; round++ {
		for _, name := range order {
			if broken[name] != "" {
				continue
			}
			r, err := run(name, round)
			if err != nil {
				log.Printf("  %v", err)
				broken[name] = err.Error()
				continue
			}
			runs[name] = append(runs[name], r)
		}
		order = append(order[1:], order[0])
	}
	return runs, broken
}
