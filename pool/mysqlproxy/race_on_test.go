//go:build race

package mysqlproxy

// raceEnabled: the race detector makes sync.Pool drop items on purpose, so
// pooled buffers are re-allocated and allocation counts mean nothing.
const raceEnabled = true
