// Package ring is Scale Stack's io_uring implementation of reactor.Driver,
// built on github.com/pawelgaczynski/giouring. It gives a loop the same
// observable behaviour as the epoll driver (reactor.NewEpoll) so that
// connections above the Driver interface work unchanged on either; it must
// never be used from any goroutine but its loop's (Wake excepted), never hand
// the kernel a Go pointer it does not keep alive, and never hand it a stack
// address.
//
// # io_uring features used, and why
//
//   - SINGLE_ISSUER + DEFER_TASKRUN (6.1) and COOP_TASKRUN (5.19): a loop is
//     the only submitter, so completions are run only when the loop asks for
//     them, in its own io_uring_enter, without inter-processor interrupts.
//     The kernel requires every enter to come from the thread that created
//     the ring; that is why the ring is created in Init, which the reactor
//     runs on the loop's locked goroutine. Setup falls back flag by flag
//     (EINVAL) on kernels that lack them. SUBMIT_ALL keeps a bad request
//     from holding back the rest of a batch.
//   - Multishot recv (6.0) with a provided-buffer ring (register_buf_ring,
//     5.19): one request per connection receives for as long as it is
//     wanted, into buffers the kernel picks, so an idle connection holds no
//     buffer. The ring and its buffers are one unix.Mmap mapping, off the Go
//     heap; a buffer goes back to the kernel as soon as OnRecv returns.
//     ENOBUFS and a missing CQE_F_MORE simply re-arm.
//   - Multishot recvmsg (6.0, like multishot recv, so no fallback is
//     needed) for datagram sockets, each with a provided-buffer ring of its
//     own (group 1 and up), since a buffer must hold the recvmsg header,
//     the sender's address and the largest datagram the socket takes (up
//     to 64 KiB, which the loop's 16 KiB buffers cannot). MSG_TRUNC makes
//     the header carry a datagram's real length, so one over the limit is
//     dropped and reported, never delivered short. Sends are one OP_SENDMSG
//     per datagram, a batch of up to 64 queued together and submitted by
//     the loop's next io_uring_enter, completing as one OnPacketsSent; the
//     headers live in the socket's packetRing and are kept, with the
//     caller's Packets, until the last completion. See packet.go.
//   - Multishot accept (5.19) for listeners; one-shot POLL_ADD for
//     WaitWritable; OP_SEND with MSG_NOSIGNAL for sends (short
//     sends complete and the caller sends the rest).
//   - OP_CLOSE for descriptors, queued after the cancels of their requests,
//     so a descriptor number is not released (and reused by an accept)
//     while an unsubmitted request still names it.
//   - IORING_REGISTER_SYNC_CANCEL (6.0) for Detach: the ring must have
//     stopped consuming a socket's input before another loop's ring arms
//     its own receive, which an asynchronous cancel cannot promise.
//   - A multishot poll on an eventfd for Wake, and EXT_ARG (5.11) so that
//     one io_uring_enter per iteration submits the batch and waits with a
//     timeout.
//
// # Features deliberately not used
//
//   - SQPOLL: a kernel thread spinning per ring costs a core on small
//     machines and measured slower for request/response traffic.
//   - send_zc: it pays only for large sends and needs a second
//     (notification) completion per send; giouring's PrepareSendZC and
//     PrepareSendto also pass the slice header's address instead of the
//     data's, so they are not used at all.
//   - Registered (fixed) files: they would need a per-loop file table and
//     direct descriptors, which the rest of the engine, handing plain
//     descriptors between loops, cannot use.
//   - A registered ring descriptor: giouring's UnregisterRingFd has an
//     inverted check and the registered index is not exposed, so the ring
//     would stay alive until its thread exits.
//   - Registered buffers: the network stack copies anyway.
//
// # Ownership rules
//
// user_data carries op | arm sequence | generation | slot (SetData64),
// never a pointer. A slot is reused only after the final completion of each
// of its requests, so a send's buffer stays referenced by the slot until the
// kernel is done with it even after Close, and a completion is always
// attributed to the owner that issued it; Close moves the generation on, so
// the old owner's late completions reach no handler. Received bytes passed
// to OnRecv belong to the driver and are valid only during the call. A
// buffer passed to Send belongs to the driver until OnSent; Send always
// completes through OnSent (pending true), and only one send per handle may
// be pending.
//
// Receiving paused with SetRecv(false) cancels the multishot request; bytes
// (or accepted sockets) completed before the cancel lands are kept in the
// slot and delivered, in order and before anything newer, after
// SetRecv(true). Nothing is delivered while paused. What is held is bounded
// by what completes before the next io_uring_enter, which carries the
// cancel; with DEFER_TASKRUN that is the batch being dispatched, since the
// cancel is submitted ahead of the deferred work that would complete more.
//
// # Building
//
// giouring pull-links syscall.munmap, which Go 1.23 and later reject, so
// every build and test of this package needs
//
//	GOFLAGS='-ldflags=-checklinkname=0'
package ring
