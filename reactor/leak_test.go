package reactor

import (
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the package run if any goroutine outlives the tests; the
// per-test checkLeaks below pins a leak to the test that caused it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// openFDs counts this process's open descriptors.
func openFDs(t testing.TB) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("read /proc/self/fd: %v", err)
	}
	// ReadDir's own descriptor is listed too, but it is closed again by the
	// time the count is compared, and it is there in every sample alike.
	return len(entries)
}

// checkLeaks records the goroutines and descriptors present now and, when
// the test ends, fails it if there are more. Both checks retry briefly: a
// loop goroutine is still returning for a moment after Stop has seen it
// finish.
func checkLeaks(t *testing.T) {
	t.Helper()
	before := openFDs(t)
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		deadline := time.Now().Add(2 * time.Second)
		after := openFDs(t)
		for after > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
			after = openFDs(t)
		}
		if after > before {
			t.Errorf("descriptor leak: %d open before the test, %d after", before, after)
		}
		if err := goleak.Find(ignore); err != nil {
			t.Errorf("goroutine leak: %v", err)
		}
	})
}
