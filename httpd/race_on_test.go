//go:build race

package httpd_test

// raceEnabled: the race detector makes sync.Pool drop items on purpose, so
// pooled buffers are re-allocated and allocation counts mean less.
const raceEnabled = true
