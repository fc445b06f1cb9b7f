// Package reactor runs Scale Stack's event loops: a fixed set of goroutines,
// each locked to its own OS thread and optionally pinned to a CPU, that own
// every connection and timer registered with them.
//
// A Loop drives one Driver (epoll here, io_uring in package ring), a hashed
// timer wheel, and its ends of the cross-loop mailboxes. Work crosses loops
// only through lock-free single-producer single-consumer queues, one per
// ordered pair of loops, published in batches once per loop iteration; a
// sleeping loop is woken through its driver's eventfd using the
// sleep-flag/recheck protocol, so no wakeup is ever lost and an awake loop is
// never signalled. Goroutines that are not loops (control code, tests) reach a
// loop through Loop.Submit, a mutex-guarded inbox that is not on the data path.
//
// Contract: everything a loop owns (its driver, timers, connections, the
// producer side of its outgoing queues and the consumer side of its incoming
// ones) is touched only from that loop's goroutine; callbacks run there and
// must never block — no channel operations, no mutexes that other goroutines
// hold for long, no blocking system calls. The kernel is handed slot indices
// with a generation, never Go pointers. This package imports only the standard
// library and golang.org/x/sys.
//
// Datagram sockets (ListenPacket, SendPackets, PacketHandler) are owned by a
// loop like stream ones, but deliver whole datagrams with the sender's
// address in kernel form (PacketAddr), never one cut short: a datagram over
// the socket's size limit is reported to OnPacketTruncated instead. The
// epoll driver batches with recvmmsg(2) and sendmmsg(2), up to 64 datagrams
// per call, from buffers the loop shares (at most 1 MiB) and lends the kernel
// for the call only; see epoll_packet.go.
package reactor
