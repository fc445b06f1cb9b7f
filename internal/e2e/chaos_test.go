package e2e

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Chaos (a): killedClients clients start a large result and vanish in its
// middle, in waves of killWave at once (the test process holds one fd per
// client; the proxy is another process), while verifiers keep running
// queries whose every byte is checked. Afterwards the pool is back to N and
// fresh clients get correct answers.
const (
	killedClients = 10000
	killWave      = 500
	verifiers     = 16
)

func TestChaosClientsKilledMidResult(t *testing.T) {
	start := time.Now()
	const backends = 8
	p := startProxy(t, proxyOptions{backendConns: backends})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	var verifyErrs, killErrs errorCollector
	var verified atomic.Int64
	stopVerifiers := make(chan struct{})
	var vwg sync.WaitGroup
	for v := 0; v < verifiers; v++ {
		vwg.Add(1)
		go func(v int) {
			defer vwg.Done()
			c, err := dialRaw(p.addr, clientUser, clientPassword, rawOptions{db: dataSchema})
			if err != nil {
				verifyErrs.add("verifier %d: connect: %v", v, err)
				return
			}
			defer c.Close()
			rng := rand.New(rand.NewPCG(uint64(v), 7))
			for {
				select {
				case <-stopVerifiers:
					if err := c.expectQuiet(200 * time.Millisecond); err != nil {
						verifyErrs.add("verifier %d at the end: %v", v, err)
					}
					return
				default:
				}
				c.setDeadline(30 * time.Second)
				if err := checkedBigQuery(c, rng); err != nil {
					verifyErrs.add("verifier %d query %d: %v", v, verified.Load(), err)
					return
				}
				verified.Add(1)
			}
		}(v)
	}

	var killed atomic.Int64
	var modes [4]atomic.Int64
	for wave := 0; killed.Load() < killedClients && ctx.Err() == nil; wave++ {
		var wg sync.WaitGroup
		for i := 0; i < killWave; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				mode, err := killMidResult(p.addr, uint64(wave*killWave+i))
				if err != nil {
					kind := "other"
					var se *serverError
					var ne net.Error
					switch {
					case errors.As(err, &se):
						kind = fmt.Sprintf("ERR %d (%s) %s", se.Code, se.State, se.Message)
					case errors.As(err, &ne) && ne.Timeout():
						kind = "no answer within 30 s"
					}
					killErrs.addKind(kind, "wave %d client %d: %v", wave, i, err)
					return
				}
				modes[mode].Add(1)
				killed.Add(1)
			}(i)
		}
		wg.Wait()
		p.requireAlive(t)
		if killErrs.n() > 0 {
			break
		}
	}
	close(stopVerifiers)
	vwg.Wait()
	killErrs.check(t, "clients to be killed (login and start of their result)")
	verifyErrs.check(t, "verifiers running beside the killed clients")
	t.Logf("%d clients killed mid-result (%d after a few KB with FIN, %d with RST, %d right after sending the query, "+
		"%d reading nothing of a 4.4 MB result); %d verified queries beside them",
		killed.Load(), modes[0].Load(), modes[1].Load(), modes[2].Load(), modes[3].Load(), verified.Load())
	if killed.Load() < killedClients {
		t.Fatalf("only %d of %d clients ran", killed.Load(), killedClients)
	}

	// The pool must be N again, and fresh clients must see exact answers.
	p.waitBackendCount(t, backends, 30*time.Second)
	var after errorCollector
	var wg sync.WaitGroup
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := dialRaw(p.addr, clientUser, clientPassword, rawOptions{db: dataSchema})
			if err != nil {
				after.add("client %d: connect: %v", i, err)
				return
			}
			defer c.Close()
			c.setDeadline(30 * time.Second)
			rng := rand.New(rand.NewPCG(uint64(i), 99))
			for q := 0; q < 20; q++ {
				if err := checkedBigQuery(c, rng); err != nil {
					after.add("client %d query %d: %v", i, q, err)
					return
				}
			}
			if err := c.expectQuiet(100 * time.Millisecond); err != nil {
				after.add("client %d: %v", i, err)
			}
		}(i)
	}
	wg.Wait()
	after.check(t, "clients after the chaos")
	p.requireAlive(t)
	t.Logf("TestChaosClientsKilledMidResult took %v", time.Since(start).Round(time.Millisecond))
}

// checkedBigQuery reads a random slice of e2e_data.big with a tag, and
// checks every row: a byte of another session's result would show.
func checkedBigQuery(c *rawConn, rng *rand.Rand) error {
	from := 1 + rng.IntN(bigRows-200)
	n := rng.IntN(200)
	tag := rng.Uint64()
	q := fmt.Sprintf("SELECT %d AS tag, id, pad FROM big WHERE id BETWEEN %d AND %d ORDER BY id", tag, from, from+n-1)
	rs, err := c.query(q)
	if err != nil {
		return fmt.Errorf("%s: %w", q, err)
	}
	if len(rs) != 1 || len(rs[0].columns) != 3 || len(rs[0].rows) != n {
		return fmt.Errorf("%s: %d results, want 1 of %d rows", q, len(rs), n)
	}
	for i, row := range rs[0].rows {
		id := from + i
		if row[0] == nil || row[1] == nil || row[2] == nil || *row[0] != strconv.FormatUint(tag, 10) ||
			*row[1] != strconv.Itoa(id) || *row[2] != md5Hex(id) {
			return fmt.Errorf("%s: row %d is %v, want (%d, %d, md5)", q, i, derefAll(row), tag, id)
		}
	}
	return nil
}

func md5Hex(n int) string {
	h := md5.Sum([]byte(strconv.Itoa(n)))
	return hex.EncodeToString(h[:])
}

func derefAll(row []*string) []string {
	var out []string
	for _, v := range row {
		if v == nil {
			out = append(out, "NULL")
		} else {
			out = append(out, *v)
		}
	}
	return out
}

// killMidResult logs in with a small receive buffer, asks for a result far
// larger than the socket buffers, and goes away in one of four ways.
func killMidResult(addr string, k uint64) (mode int, err error) {
	c, err := dialRaw(addr, clientUser, clientPassword, rawOptions{db: dataSchema, rcvBuf: 4096})
	if err != nil {
		return 0, fmt.Errorf("connect: %w", err)
	}
	defer c.Close()
	c.setDeadline(30 * time.Second)
	mode = int(k % 4)
	q := fmt.Sprintf("SELECT id, pad, %d AS k FROM big WHERE id <= 3000", k) // ~150 KB
	if mode == 3 && k%40 != 3 {
		mode = 0
	}
	if mode == 3 {
		q = fmt.Sprintf("SELECT id, pad, %d AS k FROM big", k) // the whole table, ~4.4 MB
	}
	if err := c.writeCommand(comQuery, []byte(q)); err != nil {
		return mode, err
	}
	switch mode {
	case 0, 1:
		// Read whole packets until a few KB of the result have arrived, so
		// that an ERR instead of a result is reported as what it is.
		want := 2048 + int(k%8)*1024
		for got := 0; got < want; {
			p, err := c.readPacket()
			if err != nil {
				return mode, fmt.Errorf("after %d bytes of the result: %w", got, err)
			}
			if got == 0 && len(p) > 0 && p[0] == 0xff {
				return mode, fmt.Errorf("the query was answered with %w", parseErr(p))
			}
			got += 4 + len(p)
		}
		if mode == 1 {
			return mode, c.abort()
		}
		return mode, c.Close()
	case 2:
		return mode, c.abort()
	default: // wait until the server has started sending, read nothing, close
		if _, err := c.r.Peek(1); err != nil {
			return mode, err
		}
		return mode, c.Close()
	}
}

// TestMalformedClientPackets sends what no correct client sends; each case
// must get an ERR packet with the code and SQLSTATE a server sends, or a
// clean close, and the proxy must go on serving other clients.
func TestMalformedClientPackets(t *testing.T) {
	start := time.Now()
	p := startProxy(t, proxyOptions{backendConns: 2})
	bystander, err := dialRaw(p.addr, clientUser, clientPassword, rawOptions{db: dataSchema})
	if err != nil {
		t.Fatal(err)
	}
	defer bystander.Close()
	rng := rand.New(rand.NewPCG(1, 2))

	type outcome struct {
		code  uint16
		state string
	}
	cases := []struct {
		name string
		// send writes the bad bytes on a fresh connection (logged in unless greetingOnly).
		greetingOnly bool
		send         func(c *rawConn) error
		// accept lists the ERR answers a server gives; a clean close is always accepted.
		accept []outcome
		// mustClose: after the bytes the connection cannot continue (no ERR required).
		mustClose bool
		// silenceOK: the proxy may wait for the rest of the packet, as a
		// server does until net_read_timeout; other clients must not wait.
		silenceOK bool
	}{
		{
			name:         "garbage instead of the handshake response",
			greetingOnly: true,
			send: func(c *rawConn) error {
				c.seq = 1
				return c.writePacket([]byte("\x01\x02garbage that is no handshake response"))
			},
			accept: []outcome{{1043, "08S01"}},
		},
		{
			name: "garbage packet after login",
			send: func(c *rawConn) error {
				// One well-framed packet of noise with a wrong sequence id,
				// whose first byte is no command.
				junk := make([]byte, 4+296)
				for i := range junk {
					junk[i] = byte(rng.IntN(256))
				}
				junk[0], junk[1], junk[2], junk[3] = 40, 1, 0, 5
				junk[4] = byte(0x40 + rng.IntN(0xb0))
				_, err := c.c.Write(junk)
				return err
			},
			accept: []outcome{{1047, "08S01"}, {1156, "08S01"}},
		},
		{
			name: "length header claiming 16 MiB, then silence",
			send: func(c *rawConn) error {
				_, err := c.c.Write([]byte{0xff, 0xff, 0xff, 0x00, comQuery, 'S', 'E', 'L'})
				return err
			},
			silenceOK: true,
		},
		{
			name: "length header claiming 16 MiB, then close",
			send: func(c *rawConn) error {
				if _, err := c.c.Write([]byte{0xff, 0xff, 0xff, 0x00, comQuery, 'S', 'E', 'L'}); err != nil {
					return err
				}
				return c.c.(*net.TCPConn).CloseWrite()
			},
			mustClose: true,
		},
		{
			name:   "unknown command byte",
			send:   func(c *rawConn) error { return c.writeCommand(0x7e, []byte("xyz")) },
			accept: []outcome{{1047, "08S01"}},
		},
		{
			name: "truncated COM_STMT_EXECUTE",
			send: func(c *rawConn) error {
				id, params, err := c.prepare("SELECT ? + ?")
				if err != nil {
					return fmt.Errorf("prepare: %w", err)
				}
				if params != 2 {
					return fmt.Errorf("prepare: %d parameters, want 2", params)
				}
				// stmt id, flags, iteration count, and no null bitmap nor parameters.
				var b []byte
				b = binary.LittleEndian.AppendUint32(b, id)
				b = append(b, 0)
				b = binary.LittleEndian.AppendUint32(b, 1)
				return c.writeCommand(comStmtExecute, b)
			},
			// MariaDB answers 1210 HY000 "Incorrect arguments to mysqld_stmt_execute".
			accept: []outcome{{1210, "HY000"}, {1047, "08S01"}},
		},
		{
			name: "COM_STMT_EXECUTE shorter than a statement id",
			send: func(c *rawConn) error {
				return c.writeCommand(comStmtExecute, []byte{1, 0})
			},
			accept: []outcome{{1047, "08S01"}, {1243, "HY000"}, {1210, "HY000"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := dialRaw(p.addr, clientUser, clientPassword, rawOptions{db: dataSchema, noHandshake: tc.greetingOnly})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.setDeadline(10 * time.Second)
			if err := tc.send(c); err != nil {
				t.Fatalf("sending: %v", err)
			}
			if tc.silenceOK {
				c.setDeadline(time.Second)
			}
			got, closed, err := readOutcome(c)
			var ne net.Error
			switch {
			case tc.silenceOK && errors.As(err, &ne) && ne.Timeout():
				t.Logf("the proxy waits for the rest of the packet")
			case err != nil:
				t.Errorf("neither an ERR packet nor a clean close: %v", err)
			case closed:
				t.Logf("the proxy closed the connection")
			case tc.mustClose:
				t.Errorf("want the connection closed, got ERR %d (%s) %q and it stayed open", got.Code, got.State, got.Message)
			default:
				ok := false
				for _, a := range tc.accept {
					ok = ok || (a.code == got.Code && a.state == got.State)
				}
				if !ok {
					t.Errorf("got ERR %d (%s) %q, want one of %v or a clean close", got.Code, got.State, got.Message, tc.accept)
				} else {
					t.Logf("ERR %d (%s) %q", got.Code, got.State, got.Message)
				}
				// After the ERR the connection either goes on or ends
				// cleanly; anything else (a stray packet, silence) is wrong.
				c.setDeadline(5 * time.Second)
				if err := c.ping(); err != nil {
					if _, closed, oerr := readOutcome(c); !errors.Is(err, io.EOF) && !isReset(err) && !(closed && oerr == nil) {
						t.Errorf("COM_PING after the ERR: %v", err)
					} else {
						t.Logf("the proxy closed the connection after the ERR")
					}
				}
			}
			p.requireAlive(t)
			bystander.setDeadline(10 * time.Second)
			if v, err := bystander.scalar("SELECT 40 + 2"); err != nil || v != "42" {
				t.Fatalf("another client's query after the bad packets: %q, %v", v, err)
			}
			fresh, err := dialRaw(p.addr, clientUser, clientPassword, rawOptions{db: dataSchema})
			if err != nil {
				t.Fatalf("a new client after the bad packets: %v", err)
			}
			defer fresh.Close()
			fresh.setDeadline(10 * time.Second)
			if err := checkedBigQuery(fresh, rng); err != nil {
				t.Fatalf("a new client after the bad packets: %v", err)
			}
		})
	}
	t.Logf("TestMalformedClientPackets took %v", time.Since(start).Round(time.Millisecond))
}

// readOutcome reads what follows bad bytes: an ERR packet, or the end of the
// connection. Any other packet, or a connection left silent, is an error.
func readOutcome(c *rawConn) (e *serverError, closed bool, err error) {
	var hdr [4]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) || isReset(err) {
			return nil, true, nil
		}
		return nil, false, err
	}
	n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return nil, false, fmt.Errorf("truncated packet: %w", err)
	}
	if n == 0 || body[0] != 0xff {
		return nil, false, fmt.Errorf("a packet that is not ERR: %x", body[:min(n, 32)])
	}
	return parseErr(body), false, nil
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && !ne.Timeout()
}
