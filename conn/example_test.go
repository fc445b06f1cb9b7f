package conn_test

import (
	"bufio"
	"bytes"
	"fmt"
	"log"
	"net"

	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/reactor"
)

// upperLines is a module of one's own: it answers every complete line with
// the same line in upper case. One value serves every connection because it
// keeps no state; a stateful module would return a fresh handler per
// connection from NewHandler.
type upperLines struct{}

func (upperLines) OnOpen(*conn.Conn) {}

// OnData consumes whole lines only: a partial line stays unconsumed and is
// presented again, joined with what arrives next.
func (upperLines) OnData(c *conn.Conn, data []byte) int {
	consumed := 0
	for {
		end := bytes.IndexByte(data[consumed:], '\n')
		if end < 0 {
			return consumed
		}
		line := data[consumed : consumed+end+1]
		// Reserve writes straight into the output queue: no copy, and the
		// lines of one batch leave in one send.
		out := c.Reserve(len(line))
		for i, b := range line {
			if 'a' <= b && b <= 'z' {
				b -= 'a' - 'A'
			}
			out[i] = b
		}
		consumed += end + 1
	}
}

func (upperLines) OnClose(*conn.Conn, error) {}

// A line-based upper-casing server on two reactor loops, and one client
// exchange with it.
func Example_lineServer() {
	e, err := reactor.New(reactor.Config{Loops: 2})
	if err != nil {
		log.Fatal(err)
	}
	if err := e.Start(); err != nil {
		log.Fatal(err)
	}
	defer e.Stop()

	addr, err := conn.ResolveAddr("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	ln, err := conn.Listen(e, conn.ListenConfig{
		Addr:       addr,
		NewHandler: func(*conn.Conn) conn.Handler { return upperLines{} },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()

	client, err := net.Dial("tcp", ln.Addr().Address)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	fmt.Fprint(client, "hello, ")            // half a line: nothing comes back yet
	fmt.Fprint(client, "reactor\nbye now\n") // completes it, and one more
	replies := bufio.NewReader(client)
	for range 2 {
		line, err := replies.ReadString('\n')
		if err != nil {
			log.Fatal(err)
		}
		fmt.Print(line)
	}
	// Output:
	// HELLO, REACTOR
	// BYE NOW
}
