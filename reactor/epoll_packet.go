package reactor

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Datagram sockets on epoll.
//
// A datagram socket is registered level-triggered for input: each readiness
// event reads up to maxPacketBatchesPerEvent batches with one recvmmsg(2)
// each, and a socket with more left is simply reported again by the next
// epoll_wait, so no readMore bookkeeping is needed; the cost that made
// stream sockets edge-triggered is paid per batch here, not per message.
// Sends go out with sendmmsg(2), a whole queue per system call. Both enter
// the kernel with RawSyscall6 and MSG_DONTWAIT, like the stream path's
// sendNoSignal: they never block, so the runtime's bookkeeping for
// blocking calls would buy nothing.
//
// The message headers, address buffers and receive buffers are the loop's,
// shared by all its datagram sockets, and are handed to the kernel only for
// the duration of one system call: it keeps no pointer, and epoll's event
// data still carries only slot and generation.

// packetArena bounds the loop's datagram receive buffers: a batch holds
// packetArena/maxSize datagrams (at least one, at most maxPacketBatch).
const (
	packetArena              = 1 << 20
	maxPacketBatch           = 64
	maxPacketBatchesPerEvent = 4
)

// packetIO is the loop's scratch for recvmmsg and sendmmsg.
type packetIO struct {
	hdrs  [maxPacketBatch]unix.Mmsghdr
	iovs  [maxPacketBatch]unix.Iovec
	addrs [maxPacketBatch]PacketAddr
	buf   []byte
}

func packetBatch(maxSize int) int {
	return min(maxPacketBatch, max(1, packetArena/maxSize))
}

func (d *epollDriver) ListenPacket(fd int, h PacketHandler, maxSize int) (Handle, error) {
	if maxSize <= 0 || maxSize > 1<<20 {
		return 0, fmt.Errorf("epoll: datagram size limit %d out of range", maxSize)
	}
	i := d.alloc(fd)
	s := &d.slots[i]
	s.pkt, s.maxPkt, s.recvOn = h, maxSize, true
	if err := d.ctl(unix.EPOLL_CTL_ADD, s, i, interestFor(s)); err != nil {
		d.release(i)
		return 0, err
	}
	return MakeHandle(i, s.gen), nil
}

func (d *epollDriver) dispatchPacket(slot, gen uint32, events uint32) {
	s := &d.slots[slot]
	if s.wantOut && events&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
		s.wantOut = false
		if err := d.ctl(unix.EPOLL_CTL_MOD, s, slot, interestFor(s)); err != nil {
			s.pkt.OnPacketError(err)
			return
		}
		s.pkt.OnWritable()
		if !d.alive(slot, gen) {
			return
		}
		s = &d.slots[slot]
	}
	if s.recvOn && events&(unix.EPOLLIN|unix.EPOLLERR) != 0 {
		d.recvPackets(slot, gen)
	}
}

// recvPackets reads up to maxPacketBatchesPerEvent batches. MSG_TRUNC makes
// the kernel report a datagram's real length, so one larger than the buffer
// is recognised and dropped instead of being delivered cut short.
func (d *epollDriver) recvPackets(slot, gen uint32) {
	p := &d.pktIO
	s := &d.slots[slot]
	size := s.maxPkt
	batch := packetBatch(size)
	if len(p.buf) < batch*size {
		p.buf = make([]byte, batch*size)
	}
	for round := 0; round < maxPacketBatchesPerEvent; round++ {
		for k := 0; k < batch; k++ {
			p.iovs[k] = unix.Iovec{Base: &p.buf[k*size]}
			p.iovs[k].SetLen(size)
			p.hdrs[k] = unix.Mmsghdr{}
			h := &p.hdrs[k].Hdr
			h.Name = &p.addrs[k].Raw[0]
			h.Namelen = uint32(len(p.addrs[k].Raw))
			h.Iov = &p.iovs[k]
			h.SetIovlen(1)
		}
		n, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&p.hdrs[0])), uintptr(batch), unix.MSG_DONTWAIT|unix.MSG_TRUNC, 0, 0)
		switch errno {
		case 0:
		case unix.EAGAIN, unix.EINTR:
			return
		case unix.ECONNREFUSED, unix.EHOSTUNREACH, unix.ENETUNREACH, unix.EHOSTDOWN, unix.ENETDOWN:
			// An ICMP error queued on the socket by an earlier send: it
			// concerns that send, not receiving.
			continue
		default:
			s.recvOn = false
			_ = d.ctl(unix.EPOLL_CTL_MOD, s, slot, interestFor(s))
			s.pkt.OnPacketError(fmt.Errorf("recvmmsg: %w", ErrnoErr(errno)))
			return
		}
		for k := 0; k < int(n); k++ {
			m := &p.hdrs[k]
			from := &p.addrs[k]
			from.Len = m.Hdr.Namelen
			if m.Hdr.Flags&unix.MSG_TRUNC != 0 || int(m.Len) > size {
				s.pkt.OnPacketTruncated(int(m.Len), from)
			} else {
				s.pkt.OnPacket(p.buf[k*size:k*size+int(m.Len):k*size+int(m.Len)], from)
			}
			if !d.alive(slot, gen) {
				return
			}
			s = &d.slots[slot]
			if !s.recvOn {
				return
			}
		}
		if int(n) < batch {
			return // drained at that moment; level triggering reports more
		}
	}
}

// SendPackets implements Driver with sendmmsg(2), at most maxPacketBatch
// datagrams per call. sendmmsg stops at the first datagram that fails and
// reports only the count before it; a failure on the first one is that
// datagram's own (EMSGSIZE, an unreachable network), so it is counted and
// skipped, and sending goes on with the next.
func (d *epollDriver) SendPackets(h Handle, pkts []Packet) (consumed, failed int, pending bool, err error) {
	s, err := d.lookup(h)
	if err != nil {
		return 0, 0, false, err
	}
	if s.pkt == nil {
		return 0, 0, false, fmt.Errorf("epoll: SendPackets on a stream socket")
	}
	p := &d.pktIO
	for consumed < len(pkts) {
		batch := min(len(pkts)-consumed, maxPacketBatch)
		for k := 0; k < batch; k++ {
			pk := &pkts[consumed+k]
			p.hdrs[k] = unix.Mmsghdr{}
			hd := &p.hdrs[k].Hdr
			hd.Name = &pk.Addr.Raw[0]
			hd.Namelen = pk.Addr.Len
			p.iovs[k] = unix.Iovec{}
			if len(pk.Data) > 0 {
				p.iovs[k].Base = &pk.Data[0]
				p.iovs[k].SetLen(len(pk.Data))
			}
			hd.Iov = &p.iovs[k]
			hd.SetIovlen(1)
		}
		n, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&p.hdrs[0])), uintptr(batch), unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, 0, 0)
		switch errno {
		case 0:
			consumed += int(n)
			if int(n) < batch {
				// The next datagram failed or would block: the next
				// call says which.
				continue
			}
		case unix.EINTR:
		case unix.EAGAIN:
			clear(p.iovs[:batch])
			return consumed, failed, false, nil
		default:
			consumed++
			failed++
		}
	}
	clear(p.iovs[:])
	return consumed, failed, false, nil
}
