package ring

import (
	"testing"

	"golang.org/x/sys/unix"
)

// fillSendBuffer writes to fd until the kernel takes no more, so that a
// following send cannot make progress while the peer does not read (the
// driver sends without MSG_WAITALL: a partly accepted send completes).
func fillSendBuffer(t testing.TB, fd int) {
	t.Helper()
	chunk := make([]byte, 64<<10)
	for i := 0; i < 4096; i++ {
		if _, err := unix.Write(fd, chunk); err != nil {
			if err == unix.EAGAIN {
				return
			}
			t.Fatalf("fill send buffer: %v", err)
		}
	}
	t.Fatal("send buffer never filled")
}

// FillSendBuffer lets the external tests use fillSendBuffer.
var FillSendBuffer = fillSendBuffer
