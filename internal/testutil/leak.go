package testutil

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// leakWindow is how long a leak check waits for goroutines to exit and descriptors to close: both can
// lag behind the code that asked for it (a reactor thread finishing its last epoll_wait, a deferred
// close on another goroutine), and a check that does not wait reports leaks that are not there.
var leakWindow = 3 * time.Second

// VerifyNoLeaks runs a package's tests and then fails the run if goroutines or file descriptors that
// did not exist before the tests are still there. Use it as the whole body of TestMain:
//
//	func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }
func VerifyNoLeaks(m *testing.M, opts ...goleak.Option) {
	warmRuntimeDescriptors()
	before := openFDs()
	code := m.Run()
	if code == 0 {
		if err := findGoroutineLeaks(opts); err != nil {
			fmt.Fprintf(os.Stderr, "testutil.VerifyNoLeaks: goroutines leaked by the tests: %v\n", err)
			code = 1
		}
		if leaked := findFDLeaks(before); len(leaked) > 0 {
			fmt.Fprintf(os.Stderr, "testutil.VerifyNoLeaks: file descriptors leaked by the tests: %s\n",
				strings.Join(leaked, ", "))
			code = 1
		}
	}
	os.Exit(code)
}

// CheckLeaks fails t if, when t finishes, goroutines or file descriptors exist that did not exist when
// CheckLeaks was called. Call it first in the test: cleanups run last-registered first, so the check
// then runs after every cleanup the test registers later (closing listeners, stopping reactors).
//
// It compares whole-process state, so it cannot be used in tests that call t.Parallel or run while
// parallel tests of the same package are running; VerifyNoLeaks covers those at package level.
func CheckLeaks(t testing.TB, opts ...goleak.Option) {
	t.Helper()
	warmRuntimeDescriptors()
	before := openFDs()
	opts = append([]goleak.Option{goleak.IgnoreCurrent()}, opts...)
	t.Cleanup(func() {
		if err := findGoroutineLeaks(opts); err != nil {
			t.Errorf("goroutines leaked: %v", err)
		}
		if leaked := findFDLeaks(before); len(leaked) > 0 {
			t.Errorf("file descriptors leaked: %s", strings.Join(leaked, ", "))
		}
	})
}

// findGoroutineLeaks retries goleak.Find for the whole leak window; goleak's own retries stop after
// about half a second.
func findGoroutineLeaks(opts []goleak.Option) error {
	deadline := time.Now().Add(leakWindow)
	for {
		err := goleak.Find(opts...)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var warmOnce sync.Once

// warmRuntimeDescriptors makes the Go runtime open the descriptors it keeps for the life of the
// process (the network poller's epoll instance and its wake-up eventfd) before a baseline is taken;
// otherwise the first test to touch the network would be blamed for them.
func warmRuntimeDescriptors() {
	warmOnce.Do(func() {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err == nil {
			_ = ln.Close()
		}
	})
}

// openFDs maps each open descriptor of this process to what it refers to, as /proc/self/fd shows it.
func openFDs() map[int]string {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		// Without /proc there is nothing to compare; an empty set makes the check a no-op rather
		// than a false alarm.
		return map[int]string{}
	}
	fds := make(map[int]string, len(entries))
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil {
			// The descriptor ReadDir itself used is closed by now, and so may be others.
			continue
		}
		fds[fd] = target
	}
	return fds
}

// newFDs lists descriptors in now that are absent from before or refer to something else.
func newFDs(before, now map[int]string) []string {
	var leaked []string
	for fd, target := range now {
		if old, ok := before[fd]; ok && old == target {
			continue
		}
		leaked = append(leaked, fmt.Sprintf("fd %d -> %s", fd, target))
	}
	sort.Strings(leaked)
	return leaked
}

// findFDLeaks polls until no new descriptor is open or the leak window ends.
func findFDLeaks(before map[int]string) []string {
	deadline := time.Now().Add(leakWindow)
	for {
		leaked := newFDs(before, openFDs())
		if len(leaked) == 0 || time.Now().After(deadline) {
			return leaked
		}
		time.Sleep(20 * time.Millisecond)
	}
}
