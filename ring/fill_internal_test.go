package ring

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fillSendBuffer writes to fd until the kernel takes no more, so that a
// following send cannot make progress while peer does not read (the driver
// sends without MSG_WAITALL: a partly accepted send completes). Data keeps
// moving from the send queue into the peer's receive buffer for a while
// after the first EAGAIN, so it writes again after short pauses until a
// pause frees nothing.
func fillSendBuffer(t testing.TB, fd, peer int) {
	t.Helper()
	_ = peer // the peer must simply never read
	chunk := make([]byte, 64<<10)
	for round := 0; round < 200; round++ {
		wrote := 0
		for {
			n, err := unix.Write(fd, chunk)
			if err == unix.EAGAIN {
				break
			}
			if err != nil {
				t.Fatalf("fill send buffer: %v", err)
			}
			wrote += n
		}
		if wrote == 0 && round > 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("send buffer never filled")
}

// FillSendBuffer lets the external tests use fillSendBuffer.
var FillSendBuffer = fillSendBuffer
