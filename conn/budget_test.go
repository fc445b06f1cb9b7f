package conn_test

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/reactor"
)

// TestSetMaxInputChangesTheBoundWhileOpen lowers a connection's input bound
// when it opens (an untrusted peer) and, in one case, raises it again when
// the peer's first byte says it is trusted ('T'): the same held input
// closes the first connection and not the second.
func TestSetMaxInputChangesTheBoundWhileOpen(t *testing.T) {
	const low = 1024
	cases := []struct {
		name    string
		first   byte
		send    int
		wantErr error
	}{
		{"lowered bound, held input over it", 'U', 4 * low, conn.ErrInputTooLarge},
		{"lowered bound, held input under it", 'U', low / 2, nil},
		{"raised again during OnData, held input over the low bound", 'T', 16 * low, nil},
	}
	forEachDriver(t, func(t *testing.T, newDriver reactor.NewDriverFunc) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				checkLeaks(t)
				e := startEngine(t, 1, newDriver)
				closed := make(chan error, 1)
				ln := listen(t, e, conn.ListenConfig{
					NewHandler: func(*conn.Conn) conn.Handler {
						return &funcHandler{
							onOpen: func(c *conn.Conn) { c.SetMaxInput(low) },
							onData: func(c *conn.Conn, data []byte) int {
								if data[0] == 'T' {
									c.SetMaxInput(0) // back to the default (64 MiB)
								}
								return 0
							},
							onClose: func(c *conn.Conn, err error) { closed <- err },
						}
					},
				})
				c := dial(t, ln.Addr())
				msg := make([]byte, tc.send)
				msg[0] = tc.first
				if _, err := c.Write(msg); err != nil {
					t.Fatal(err)
				}
				expectClosedWith(t, closed, c, tc.wantErr, tc.send)
			})
		}
	})
}

// TestInputBudgetBoundsHeldInputInTotal attaches every connection to one
// 64 KiB budget. Two peers each leave 20 KiB unconsumed (a 32 KiB buffer
// each): together they fill the budget, so a third one's first held byte
// closes it with ErrInputBudget and only it. A connection that detaches
// (its first byte is 'D') gives its charge back though it still holds its
// input, and a closed one gives back what it held.
func TestInputBudgetBoundsHeldInputInTotal(t *testing.T) {
	const held = 20 << 10 // buffered in a 32 KiB buffer
	forEachDriver(t, func(t *testing.T, newDriver reactor.NewDriverFunc) {
		checkLeaks(t)
		e := startEngine(t, 1, newDriver)
		budget := conn.NewInputBudget(64 << 10)
		closed := make(chan error, 4)
		ln := listen(t, e, conn.ListenConfig{
			NewHandler: func(*conn.Conn) conn.Handler {
				return &funcHandler{
					onOpen: func(c *conn.Conn) { c.SetInputBudget(budget) },
					onData: func(c *conn.Conn, data []byte) int {
						if data[0] == 'D' {
							c.SetInputBudget(nil)
						}
						return 0
					},
					onClose: func(c *conn.Conn, err error) { closed <- err },
				}
			},
		})
		waitUsed := func(want int64) {
			t.Helper()
			deadline := time.Now().Add(5 * time.Second)
			for budget.Used() != want {
				if time.Now().After(deadline) {
					t.Fatalf("budget used %d, want %d", budget.Used(), want)
				}
				time.Sleep(time.Millisecond)
			}
		}
		send := func(first byte) net.Conn {
			t.Helper()
			c := dial(t, ln.Addr())
			msg := make([]byte, held)
			msg[0] = first
			if _, err := c.Write(msg); err != nil {
				t.Fatal(err)
			}
			return c
		}
		a := send('x')
		waitUsed(32 << 10)
		send('x')
		waitUsed(64 << 10)
		if p := budget.TakePeak(); p != 64<<10 {
			t.Fatalf("peak %d, want %d", p, 64<<10)
		}
		c := send('x')
		select {
		case err := <-closed:
			if !errors.Is(err, conn.ErrInputBudget) {
				t.Fatalf("third connection: OnClose(%v), want ErrInputBudget", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("third connection not closed")
		}
		expectEOFOrReset(t, c)
		waitUsed(64 << 10) // the refused one gave back what it had been charged
		a.Close()
		if err := <-closed; err != nil {
			t.Fatalf("first connection: OnClose(%v), want nil", err)
		}
		waitUsed(32 << 10)
		send('D') // holds its input but is no longer charged for it
		time.Sleep(100 * time.Millisecond)
		waitUsed(32 << 10)
		select {
		case err := <-closed:
			t.Fatalf("a connection closed with %v", err)
		default:
		}
	})
}
