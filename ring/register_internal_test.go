package ring

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/scalestack/scalestack/reactor"
)

// registerOrReport registers fd with d under handler. Driver tests run on a
// loop goroutine that is not the test's own, where t.Fatal must not be
// called, so a failure is reported with t.Errorf, fd is closed, and ok is
// false: the caller then returns.
func registerOrReport(t testing.TB, d reactor.Driver, fd int, handler reactor.IOHandler) (h reactor.Handle, ok bool) {
	t.Helper()
	h, err := d.Register(fd, handler)
	if err != nil {
		t.Errorf("register fd %d: %v", fd, err)
		unix.Close(fd)
		return 0, false
	}
	return h, true
}

// closeOrReport closes h and reports a failure without stopping the test,
// for the same reason as registerOrReport.
func closeOrReport(t testing.TB, d reactor.Driver, h reactor.Handle) {
	t.Helper()
	if err := d.Close(h); err != nil {
		t.Errorf("close handle %#x: %v", uint64(h), err)
	}
}

// These let the external tests use the helpers above.
var (
	RegisterOrReport = registerOrReport
	CloseOrReport    = closeOrReport
)
