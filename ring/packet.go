package ring

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"github.com/pawelgaczynski/giouring"
	"golang.org/x/sys/unix"

	"github.com/scalestack/scalestack/reactor"
)

// Datagram sockets on io_uring.
//
// Receiving is one multishot recvmsg per socket (Linux 6.0, the same release
// as the multishot recv the stream path already requires, so there is no
// kernel where this driver runs without it) selecting from a provided-buffer
// ring of the socket's own: each buffer holds an io_uring_recvmsg_out
// header, the sender's address and the datagram, and must fit the largest
// datagram the socket accepts, which the loop's shared 16 KiB buffers would
// not. The kernel reports a datagram's real length (MSG_TRUNC), so one
// larger than the buffer is counted and dropped, never delivered cut short.
//
// Sending is one sendmsg request per datagram, a whole batch queued at once
// and submitted with the loop's next io_uring_enter; the headers live in the
// socket's packetRing (Go heap, which does not move, referenced by the slot
// until the last completion) and point at the caller's Packets, which the
// slot keeps referenced too.

// packetRingBytes bounds one datagram socket's provided buffers.
const (
	packetRingBytes    = 4 << 20
	maxPacketRingCount = 256
	minPacketRingCount = 16
	maxPacketBatch     = 64
	recvmsgOutSize     = int(unsafe.Sizeof(giouring.RecvmsgOut{}))
	packetNameSize     = int(unsafe.Sizeof(reactor.PacketAddr{}.Raw))
)

type packetRing struct {
	mem        []byte
	bufs       []byte
	br         *giouring.BufAndRing
	bgid       uint16
	count      int
	bufSize    int
	maxSize    int // the socket's datagram limit; bufSize rounds up past it
	registered bool

	// msg is the multishot recvmsg's template: only the name length
	// matters, telling the kernel how much room each buffer keeps for the
	// sender's address.
	msg  syscall.Msghdr
	from reactor.PacketAddr

	sendHdrs   [maxPacketBatch]syscall.Msghdr
	sendIovs   [maxPacketBatch]syscall.Iovec
	sendPkts   []reactor.Packet
	sendLeft   int
	sendCount  int
	sendFailed int
}

// ListenPacket implements reactor.Driver.
func (d *Driver) ListenPacket(fd int, h reactor.PacketHandler, maxSize int) (reactor.Handle, error) {
	if maxSize <= 0 || maxSize > 1<<20 {
		return 0, fmt.Errorf("ring: datagram size limit %d out of range", maxSize)
	}
	pr, err := d.newPacketRing(maxSize)
	if err != nil {
		return 0, err
	}
	i, err := d.alloc(fd)
	if err != nil {
		d.freePacketRing(pr)
		return 0, err
	}
	s := &d.slots[i]
	s.pkt, s.pr, s.recvOn = h, pr, true
	if err := d.armRecvMsg(i); err != nil {
		s.closing = true
		d.maybeFree(i)
		return 0, err
	}
	return reactor.MakeHandle(i, s.gen), nil
}

func (d *Driver) newPacketRing(maxSize int) (*packetRing, error) {
	bgid, err := d.allocGroup()
	if err != nil {
		return nil, err
	}
	pr := &packetRing{bgid: bgid, maxSize: maxSize}
	pr.bufSize = (recvmsgOutSize + packetNameSize + maxSize + 63) &^ 63
	pr.count = maxPacketRingCount
	for pr.count > minPacketRingCount && pr.count*pr.bufSize > packetRingBytes {
		pr.count /= 2
	}
	page := os.Getpagesize()
	ringBytes := (pr.count*int(unsafe.Sizeof(giouring.BufAndRing{})) + page - 1) &^ (page - 1)
	mem, err := unix.Mmap(-1, 0, ringBytes+pr.count*pr.bufSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		d.freeGroups = append(d.freeGroups, bgid)
		return nil, fmt.Errorf("mmap datagram buffers: %w", err)
	}
	pr.mem, pr.bufs = mem, mem[ringBytes:]
	pr.br = (*giouring.BufAndRing)(unsafe.Pointer(&mem[0]))
	pr.br.BufRingInit()
	reg := giouring.BufReg{
		RingAddr:    uint64(uintptr(unsafe.Pointer(&mem[0]))),
		RingEntries: uint32(pr.count),
		Bgid:        bgid,
	}
	if _, err := d.ring.RegisterBufferRing(&reg, 0); err != nil {
		d.freePacketRing(pr)
		return nil, fmt.Errorf("register datagram buffer ring: %w", err)
	}
	pr.registered = true
	for bid := 0; bid < pr.count; bid++ {
		pr.br.BufRingAdd(pr.bufAddr(uint16(bid)), uint32(pr.bufSize), uint16(bid), giouring.BufRingMask(uint32(pr.count)), bid)
	}
	pr.br.BufRingAdvance(pr.count)
	pr.msg.Namelen = uint32(packetNameSize)
	return pr, nil
}

func (d *Driver) allocGroup() (uint16, error) {
	if n := len(d.freeGroups); n > 0 {
		g := d.freeGroups[n-1]
		d.freeGroups = d.freeGroups[:n-1]
		return g, nil
	}
	if d.nextGroup == 0xffff {
		return 0, errors.New("ring: out of buffer group ids")
	}
	d.nextGroup++ // group 0 is the loop's own (bufGroup)
	return d.nextGroup, nil
}

// freePacketRing runs once the kernel holds no request of the socket, so
// no buffer can still be written.
func (d *Driver) freePacketRing(pr *packetRing) {
	if pr.registered && d.ring != nil {
		_, _ = d.ring.UnregisterBufferRing(int(pr.bgid))
		pr.registered = false
	}
	if pr.mem != nil {
		_ = unix.Munmap(pr.mem)
		pr.mem, pr.bufs, pr.br = nil, nil, nil
	}
	d.freeGroups = append(d.freeGroups, pr.bgid)
}

func (pr *packetRing) bufAddr(bid uint16) uintptr {
	return uintptr(unsafe.Pointer(&pr.bufs[int(bid)*pr.bufSize]))
}

func (pr *packetRing) recycle(bid uint16) {
	pr.br.BufRingAdd(pr.bufAddr(bid), uint32(pr.bufSize), bid, giouring.BufRingMask(uint32(pr.count)), 0)
	pr.br.BufRingAdvance(1)
}

func (d *Driver) armRecvMsg(i uint32) error {
	if d.stopping {
		return nil
	}
	sqe, err := d.getSQE()
	if err != nil {
		return err
	}
	s := &d.slots[i]
	s.recvSeq++
	// MSG_TRUNC: the header's payload length is the datagram's real one.
	sqe.PrepareRecvMsgMultishot(s.fd, &s.pr.msg, unix.MSG_TRUNC)
	sqe.Flags |= giouring.SqeBufferSelect
	sqe.BufIG = s.pr.bgid
	sqe.SetData64(userData(opRecvMsg, s.recvSeq, s.gen, i))
	s.recvArmed, s.cancelled = true, false
	d.inflight++
	return nil
}

func (d *Driver) completeRecvMsg(i, gen uint32, live bool, res int32, flags uint32) {
	s := &d.slots[i]
	pr := s.pr
	final := flags&giouring.CQEFMore == 0
	hasBuf := flags&giouring.CQEFBuffer != 0
	bid := uint16(flags >> giouring.CQEBufferShift)
	if live && res > 0 && hasBuf {
		d.deliverPacket(s.pkt, pr, bid, int(res))
	}
	// The slot keeps its buffers until this point even if the handler
	// closed it: recvArmed is cleared only now.
	if hasBuf {
		pr.recycle(bid)
	}
	s = &d.slots[i]
	if final {
		s.recvArmed, s.cancelled = false, false
		d.inflight--
	}
	if !d.alive(i, gen) {
		d.maybeFree(i)
		return
	}
	if res < 0 {
		switch errno := unix.Errno(-res); errno {
		case unix.ENOBUFS, unix.ECANCELED, unix.EINTR, unix.EAGAIN,
			unix.ECONNREFUSED, unix.EHOSTUNREACH, unix.ENETUNREACH, unix.EHOSTDOWN, unix.ENETDOWN:
			// Out of buffers (they are back by now), or an ICMP error
			// about an earlier send: receiving goes on.
		default:
			s.ended = true
			s.pkt.OnPacketError(fmt.Errorf("recvmsg: %w", reactor.ErrnoErr(errno)))
			return
		}
	}
	if !s.recvArmed && !s.ended {
		if err := d.armRecvMsg(i); err != nil {
			s.ended = true
			s.pkt.OnPacketError(err)
		}
	}
}

func (d *Driver) deliverPacket(h reactor.PacketHandler, pr *packetRing, bid uint16, res int) {
	off := int(bid) * pr.bufSize
	buf := pr.bufs[off : off+res : off+res]
	if res < recvmsgOutSize+packetNameSize {
		return // cannot happen: the kernel always writes the header and name room
	}
	out := (*giouring.RecvmsgOut)(unsafe.Pointer(&buf[0]))
	pr.from = reactor.PacketAddr{Len: min(out.Namelen, uint32(packetNameSize))}
	copy(pr.from.Raw[:], buf[recvmsgOutSize:recvmsgOutSize+packetNameSize])
	payload := buf[recvmsgOutSize+packetNameSize:]
	if out.Flags&unix.MSG_TRUNC != 0 || int(out.PayloadLen) > len(payload) || int(out.PayloadLen) > pr.maxSize {
		h.OnPacketTruncated(int(out.PayloadLen), &pr.from)
		return
	}
	h.OnPacket(payload[:out.PayloadLen], &pr.from)
}

// SendPackets implements reactor.Driver: one sendmsg per datagram, up to
// maxPacketBatch of them, all completing together in OnPacketsSent.
func (d *Driver) SendPackets(h reactor.Handle, pkts []reactor.Packet) (int, int, bool, error) {
	s, err := d.lookup(h)
	if err != nil {
		return 0, 0, false, err
	}
	if s.pkt == nil {
		return 0, 0, false, errors.New("ring: SendPackets on a stream socket")
	}
	if s.sendArmed {
		return 0, 0, false, errors.New("ring: SendPackets while a previous batch is pending")
	}
	if len(pkts) == 0 {
		return 0, 0, false, nil
	}
	pr := s.pr
	n := min(len(pkts), maxPacketBatch)
	pr.sendPkts = pkts[:n]
	pr.sendCount, pr.sendLeft, pr.sendFailed = n, 0, 0
	s.sendArmed = true
	for k := 0; k < n; k++ {
		sqe, err := d.getSQE()
		if err != nil {
			// The ones queued complete normally; the rest count as failed.
			pr.sendFailed += n - k
			if k == 0 {
				s.sendArmed, pr.sendPkts = false, nil
				return n, n, false, nil
			}
			break
		}
		pk := &pkts[k]
		hd := &pr.sendHdrs[k]
		*hd = syscall.Msghdr{Name: &pk.Addr.Raw[0], Namelen: pk.Addr.Len}
		pr.sendIovs[k] = syscall.Iovec{}
		if len(pk.Data) > 0 {
			pr.sendIovs[k].Base = &pk.Data[0]
			pr.sendIovs[k].SetLen(len(pk.Data))
		}
		hd.Iov = &pr.sendIovs[k]
		hd.Iovlen = 1
		sqe.PrepareSendMsg(s.fd, hd, unix.MSG_NOSIGNAL)
		sqe.SetData64(userData(opSendMsg, 0, h.Gen(), h.Slot()))
		pr.sendLeft++
		d.inflight++
	}
	return 0, 0, true, nil
}

func (d *Driver) completeSendMsg(i uint32, live bool, res int32) {
	s := &d.slots[i]
	pr := s.pr
	d.inflight--
	pr.sendLeft--
	if res < 0 {
		pr.sendFailed++
	}
	if pr.sendLeft > 0 {
		return
	}
	s.sendArmed, pr.sendPkts = false, nil
	if !live {
		d.maybeFree(i)
		return
	}
	s.pkt.OnPacketsSent(pr.sendCount, pr.sendFailed)
}

// cancelAll cancels every request with the given user_data (a datagram
// batch's sends share one).
func (d *Driver) cancelAll(target uint64) error {
	sqe, err := d.getSQE()
	if err != nil {
		return err
	}
	sqe.PrepareCancel64(target, int(giouring.AsyncCancelAll))
	sqe.Flags |= giouring.SqeCQESkipSuccess
	sqe.SetData64(userData(opCancel, 0, 0, 0))
	return nil
}
