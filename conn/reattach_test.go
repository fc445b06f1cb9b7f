package conn_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/reactor"
)

// reattachTask runs on the destination loop of a move.
func reattachTask(l *reactor.Loop, arg any, _ uint64) {
	c := arg.(*conn.Conn)
	if err := c.Reattach(l); err != nil {
		panic(fmt.Sprintf("Reattach: %v", err))
	}
	c.Write(fmt.Appendf(nil, "moved to %d with %v;", l.ID(), c.Context))
}

// TestDetachAndReattachMovesTheSameConn: a connection detached from inside
// its own OnData (as a pooled backend is when the response that frees it
// arrives) and posted to another loop is taken up there by Reattach: the
// same Conn, its Context kept, serving on the new loop; it moves back and
// forth, and Reattach refuses a connection that was not detached.
func TestDetachAndReattachMovesTheSameConn(t *testing.T) {
	forEachDriver(t, func(t *testing.T, newDriver reactor.NewDriverFunc) {
		checkLeaks(t)
		e := startEngine(t, 2, newDriver)
		var first atomic.Pointer[conn.Conn]
		var same atomic.Bool
		same.Store(true)
		var notDetached atomic.Pointer[error]
		ln := listen(t, e, conn.ListenConfig{
			Spread: true, // accepted on loop 0 first
			NewHandler: func(*conn.Conn) conn.Handler {
				return &funcHandler{
					onOpen: func(c *conn.Conn) {
						if first.CompareAndSwap(nil, c) {
							c.Context = "ctx"
							err := c.Reattach(c.Loop())
							notDetached.Store(&err)
						} else if first.Load() != c {
							same.Store(false)
						}
					},
					onData: func(c *conn.Conn, data []byte) int {
						if string(data) != "move" {
							c.Write(fmt.Appendf(nil, "%s on %d;", data, c.Loop().ID()))
							return len(data)
						}
						src := c.Loop()
						if _, err := c.Detach(); err != nil {
							c.Write([]byte("detach failed;"))
							return len(data)
						}
						src.Post(e.Loop(1-src.ID()), reactor.Task{Fn: reattachTask, Arg: c})
						return len(data)
					},
				}
			},
		})
		c := dial(t, ln.Addr())
		expect := func(send, want string) {
			t.Helper()
			c.Write([]byte(send))
			if got := readExactly(t, c, len(want)); string(got) != want {
				t.Fatalf("sent %q, got %q, want %q", send, got, want)
			}
		}
		expect("ping", "ping on 0;")
		if err := notDetached.Load(); err == nil || *err == nil {
			t.Fatal("Reattach of a connection that was not detached did not fail")
		}
		expect("move", "moved to 1 with ctx;")
		expect("ping", "ping on 1;")
		expect("move", "moved to 0 with ctx;")
		expect("ping", "ping on 0;")
		if !same.Load() {
			t.Error("OnOpen after a move got another Conn")
		}
		c.Close()
	})
}
