package reactor

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"golang.org/x/sys/unix"
)

// PacketAddr is a datagram peer's address in the kernel's own form: Len
// bytes of a sockaddr_in or sockaddr_in6 in Raw. Drivers receive into it
// and send from it directly, so no datagram costs an address conversion
// or an allocation below the handler.
type PacketAddr struct {
	Raw [unix.SizeofSockaddrInet6]byte
	Len uint32
}

// ErrPacketSocket is returned by SetRecv and Detach for a datagram socket.
var ErrPacketSocket = errors.New("reactor: not supported for a datagram socket")

var errPacketRecv, errPacketDetach = ErrPacketSocket, ErrPacketSocket

// Packet is one datagram to send: Data to Addr.
type Packet struct {
	Data []byte
	Addr PacketAddr
}

// AddrPort decodes the address; the zero AddrPort for anything but IPv4
// and IPv6.
func (a *PacketAddr) AddrPort() netip.AddrPort {
	port := binary.BigEndian.Uint16(a.Raw[2:4])
	switch binary.NativeEndian.Uint16(a.Raw[0:2]) {
	case unix.AF_INET:
		if a.Len < unix.SizeofSockaddrInet4 {
			return netip.AddrPort{}
		}
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(a.Raw[4:8])), port)
	case unix.AF_INET6:
		if a.Len < unix.SizeofSockaddrInet6 {
			return netip.AddrPort{}
		}
		// A scope (link-local zone) would need a name lookup: left out. A
		// v4-mapped sender on a dual-stack socket reads as plain IPv4.
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(a.Raw[8:24])).Unmap(), port)
	}
	return netip.AddrPort{}
}

// SetAddrPort encodes ap for a socket of the given family (AF_INET or
// AF_INET6): an IPv4 address goes to an IPv6 socket in its v4-mapped form.
// It reports false when the address cannot be reached from such a socket.
func (a *PacketAddr) SetAddrPort(ap netip.AddrPort, family int) bool {
	*a = PacketAddr{}
	ip := ap.Addr()
	switch {
	case family == unix.AF_INET && (ip.Is4() || ip.Is4In6()):
		binary.NativeEndian.PutUint16(a.Raw[0:2], unix.AF_INET)
		binary.BigEndian.PutUint16(a.Raw[2:4], ap.Port())
		b := ip.Unmap().As4()
		copy(a.Raw[4:8], b[:])
		a.Len = unix.SizeofSockaddrInet4
	case family == unix.AF_INET6 && ip.IsValid():
		binary.NativeEndian.PutUint16(a.Raw[0:2], unix.AF_INET6)
		binary.BigEndian.PutUint16(a.Raw[2:4], ap.Port())
		b := ip.As16()
		copy(a.Raw[8:24], b[:])
		a.Len = unix.SizeofSockaddrInet6
	default:
		return false
	}
	return true
}
