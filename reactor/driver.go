package reactor

import "time"

// Handle names a file descriptor registered with a Driver: a slot index in the
// low 32 bits and the slot's generation in the high 32 bits. Kernel event data
// carries handles, never Go pointers, and a stale generation makes a late
// event for a reused slot harmless.
type Handle uint64

// MakeHandle packs a slot index and generation.
func MakeHandle(slot, gen uint32) Handle { return Handle(uint64(gen)<<32 | uint64(slot)) }

// Slot returns the handle's slot index.
func (h Handle) Slot() uint32 { return uint32(h) }

// Gen returns the handle's generation.
func (h Handle) Gen() uint32 { return uint32(h >> 32) }

// IOHandler receives the events of one registered stream socket. Every call
// happens on the owning loop's goroutine.
type IOHandler interface {
	// OnRecv delivers received bytes. b belongs to the driver and is valid
	// only during the call: copy what must outlive it.
	OnRecv(b []byte)
	// OnRecvEnd reports that no more data will be delivered: err is nil for
	// an orderly end of stream from the peer.
	OnRecvEnd(err error)
	// OnWritable reports that a WaitWritable request is satisfied.
	OnWritable()
	// OnSent completes a Send that returned pending: n bytes went out, or
	// err says why not. The buffer passed to Send may be reused after it.
	OnSent(n int, err error)
}

// AcceptHandler receives the connections accepted on a listening socket.
type AcceptHandler interface {
	// OnAccept hands over a new non-blocking, close-on-exec socket.
	OnAccept(fd int)
	// OnAcceptError reports a failure that stopped accepting.
	OnAcceptError(err error)
}

// Driver performs a loop's I/O. Except for Wake, every method is called only
// on the loop's locked goroutine, including the constructor's work in Init.
//
// Receiving is push-style for both implementations: epoll reads into the
// loop's shared buffer when a socket turns readable, io_uring completes
// multishot receives into provided buffers; either way the handler sees bytes
// in OnRecv and nothing holds a buffer for an idle connection.
type Driver interface {
	// Name is "epoll" or "uring".
	Name() string
	// Init prepares the driver on the loop goroutine, before the first Poll.
	Init() error
	// Poll waits up to timeout (negative: no limit, zero: don't wait) for
	// events, submits queued work, and dispatches what completed.
	Poll(timeout time.Duration) (events int, err error)
	// Wake makes a concurrent or future Poll return. Safe from any goroutine.
	Wake() error
	// Shutdown releases the driver's own resources. Registered sockets must
	// have been closed first.
	Shutdown() error

	// Register adds a connected, non-blocking stream socket and starts
	// receiving. A blocking one would stall the whole loop.
	Register(fd int, h IOHandler) (Handle, error)
	// Listen adds a listening socket and starts accepting.
	Listen(fd int, h AcceptHandler) (Handle, error)
	// SetRecv pauses (false) or resumes (true) delivery of received data,
	// or of accepted connections for a listener.
	SetRecv(h Handle, on bool) error
	// Send writes b. It either completes at once (pending false, n bytes
	// written, possibly fewer than len(b)) or takes b until OnSent (pending
	// true); a second Send on the same handle must wait for OnSent.
	Send(h Handle, b []byte) (n int, pending bool, err error)
	// WaitWritable asks for one OnWritable once the socket can be written
	// (used for outbound connects and after short writes).
	WaitWritable(h Handle) error
	// Close stops every callback for h at once and closes its descriptor.
	Close(h Handle) error
	// Detach stops every callback for h and returns its descriptor open, so
	// that another loop can adopt the connection. Only for a quiet socket:
	// no Send pending and nothing expected to arrive. Datagram sockets
	// cannot be detached.
	Detach(h Handle) (fd int, err error)

	// ListenPacket adds a bound, non-blocking datagram socket and starts
	// receiving datagrams of up to maxSize bytes; a larger one is reported
	// to OnPacketTruncated and dropped, never delivered cut short. Close,
	// WaitWritable and SendPackets apply to its handle; SetRecv and Detach
	// do not (a datagram socket's backpressure is the kernel dropping what
	// its receive buffer cannot hold).
	ListenPacket(fd int, h PacketHandler, maxSize int) (Handle, error)
	// SendPackets sends datagrams, in a batch, to their addresses. Either
	// it completes at once (pending false): the first consumed datagrams
	// were handled, failed of them refused by the kernel (EMSGSIZE, an
	// unreachable network) and the rest sent; consumed < len(pkts) with no
	// error means the socket's buffer is full, and WaitWritable says when
	// to go on. Or it takes pkts, with their Data, until OnPacketsSent
	// (pending true); a second SendPackets on the handle must wait for it.
	SendPackets(h Handle, pkts []Packet) (consumed, failed int, pending bool, err error)
}

// PacketHandler receives the events of one registered datagram socket.
// Every call happens on the owning loop's goroutine; b and from belong to
// the driver and are valid only during the call.
type PacketHandler interface {
	// OnPacket delivers one whole datagram and its sender's address.
	OnPacket(b []byte, from *PacketAddr)
	// OnPacketTruncated reports a datagram of size bytes, more than the
	// socket's maxSize: it was dropped.
	OnPacketTruncated(size int, from *PacketAddr)
	// OnPacketError reports a failure that stopped receiving for good.
	OnPacketError(err error)
	// OnPacketsSent completes a SendPackets that returned pending, with
	// the same meaning of consumed and failed.
	OnPacketsSent(consumed, failed int)
	// OnWritable reports that a WaitWritable request is satisfied.
	OnWritable()
}

// NewDriverFunc builds one driver per loop. It runs on the loop goroutine.
type NewDriverFunc func() (Driver, error)
