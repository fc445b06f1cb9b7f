//go:build race

package mysqlproxytest

// raceEnabled: the race detector makes sync.Pool drop items on purpose, so
// pooled buffers are re-allocated and allocation counts mean nothing.
const raceEnabled = true
