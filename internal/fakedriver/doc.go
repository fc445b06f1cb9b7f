// Package fakedriver is reserved for an in-memory reactor.Driver for tests
// (issue 14, item 4). It holds no code yet: this comment is the design
// note, written when the MySQL test double (internal/mysqlfake) came first.
//
// # Goal
//
// Run the reactor, conn and pool stacks with sockets that are pipes the test
// controls: deliver received bytes in chosen chunks (one byte at a time, a
// packet split across its header), end a stream with EOF or ECONNRESET,
// make a Send short or pending and complete it later, fail Register or
// Send, and count the syscall equivalents (receives, sends, epoll_ctl-like
// SetRecv calls) so tests can assert "PauseRead+ResumeRead cost two
// epoll_ctl" without strace. Under testing/synctest, so that timers (query
// and client-write timeouts, health intervals, backoff) fire without sleeps.
//
// # What stands in the way (found while reading reactor and conn)
//
//  1. File descriptors. reactor.Driver takes fds: conn.Dial and conn.Listen
//     create real sockets with unix.Socket/Connect/Listen (conn/conn.go,
//     conn/listener.go) and only then call Driver.Register or Listen. An
//     in-memory driver needs conn to ask the driver for a socket instead: a
//     small optional interface (say SocketMaker, with Dial(addr) (fd,
//     inProgress, err) and Listen(addr, backlog) (fd, err))
//     that conn uses when the loop's driver implements it (epoll and io_uring
//     do not, so production paths stay as they are). The fake hands out
//     fds from a private range (say from 1<<30 up) that it never passes to
//     the kernel; Detach returns them for cross-loop adoption, so a fake
//     "fd" must be adoptable by another loop's fake driver of the same
//     Network (a shared, mutex-guarded table; the fake is test code).
//
//  2. Time. Loop.Now and the timer wheel use time.Now, which synctest
//     fakes inside a bubble; but a loop blocks in Poll, and a goroutine
//     blocked in epoll_wait is not "durably blocked" for synctest. The fake
//     Poll(timeout) must therefore wait on a channel with time.After
//     (durably blocking, so the bubble's clock jumps to the next timer) and
//     Wake must send on that channel.
//
//  3. runtime.LockOSThread in Loop.run is allowed inside a synctest bubble,
//     but the reactor's engine Start/Stop must be called from within the
//     bubble (synctest.Test's function) so every loop goroutine belongs to it.
//
// # Shape
//
//	net := fakedriver.NewNetwork()              // shared by all loops of an engine
//	eng, _ := reactor.New(reactor.Config{Loops: 2, NewDriver: net.NewDriver})
//	peer := net.Accept("127.0.0.1:3306")         // the test's end of the next dial there
//	peer.Deliver(b, fakedriver.Chunks(1))        // OnRecv in 1-byte pieces
//	peer.SendLimit(100)                          // the next Sends write at most 100 bytes
//	peer.HoldSends()                             // Sends return pending until ReleaseSends
//	peer.Reset()                                 // OnRecvEnd(ECONNRESET)
//	net.Counts()                                 // Registers, Sends, Recvs, SetRecvs, ...
//
// A peer end can also be bridged to a net.Conn (a goroutine copying both
// ways), which puts internal/mysqlfake behind the fake driver: pool's unit
// tests then need neither a database nor real sockets, and a test that
// today sleeps on a timer runs inside synctest.Test.
package fakedriver
