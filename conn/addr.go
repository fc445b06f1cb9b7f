package conn

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"golang.org/x/sys/unix"
)

// Addr is a resolved socket address. Resolving may block on DNS, so it is
// done once, off the loops (at start-up or reload), never on the data path.
type Addr struct {
	Network  string // "tcp" or "unix"
	Address  string // as given
	sockaddr unix.Sockaddr
}

func (a Addr) String() string { return a.Network + ":" + a.Address }

func (a Addr) family() int {
	switch a.sockaddr.(type) {
	case *unix.SockaddrInet6:
		return unix.AF_INET6
	case *unix.SockaddrUnix:
		return unix.AF_UNIX
	}
	return unix.AF_INET
}

// sockaddrForCall returns a private copy of the address for one bind or
// connect. x/sys marshals a Sockaddr into a buffer inside the struct on every
// call, so one Addr shared by loops that dial at the same moment (a proxy's
// backend) would race on that buffer. Only fields that never change after
// resolution are read here.
func (a Addr) sockaddrForCall() unix.Sockaddr {
	switch sa := a.sockaddr.(type) {
	case *unix.SockaddrInet4:
		return &unix.SockaddrInet4{Port: sa.Port, Addr: sa.Addr}
	case *unix.SockaddrInet6:
		return &unix.SockaddrInet6{Port: sa.Port, ZoneId: sa.ZoneId, Addr: sa.Addr}
	case *unix.SockaddrUnix:
		return &unix.SockaddrUnix{Name: sa.Name}
	}
	return a.sockaddr
}

// ResolveAddr turns "host:port" (network "tcp", "tcp4", "tcp6") or a path
// (network "unix") into an Addr. Blocking; never call it on a loop.
func ResolveAddr(network, address string) (Addr, error) {
	switch network {
	case "unix":
		if address == "" {
			return Addr{}, fmt.Errorf("conn: empty unix socket path")
		}
		return Addr{Network: "unix", Address: address, sockaddr: &unix.SockaddrUnix{Name: address}}, nil
	case "tcp", "tcp4", "tcp6":
	default:
		return Addr{}, fmt.Errorf("conn: unsupported network %q", network)
	}
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return Addr{}, fmt.Errorf("conn: address %q: %w", address, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return Addr{}, fmt.Errorf("conn: port in %q: %w", address, err)
	}
	var ip netip.Addr
	switch {
	case host == "":
		ip = netip.IPv4Unspecified()
		if network == "tcp6" {
			ip = netip.IPv6Unspecified()
		}
	default:
		ip, err = netip.ParseAddr(host)
		if err != nil {
			ips, lerr := net.DefaultResolver.LookupNetIP(context.Background(), ipNetwork(network), host)
			if lerr != nil || len(ips) == 0 {
				return Addr{}, fmt.Errorf("conn: resolve %q: %v", host, lerr)
			}
			ip = ips[0]
		}
	}
	ip = ip.Unmap()
	a := Addr{Network: "tcp", Address: address}
	if ip.Is4() {
		a.sockaddr = &unix.SockaddrInet4{Port: int(port), Addr: ip.As4()}
	} else {
		a.sockaddr = &unix.SockaddrInet6{Port: int(port), Addr: ip.As16()}
	}
	return a, nil
}

func ipNetwork(network string) string {
	switch network {
	case "tcp4":
		return "ip4"
	case "tcp6":
		return "ip6"
	}
	return "ip"
}

// ParseAddr accepts "unix:/path", "/path" (a Unix socket) or "host:port".
func ParseAddr(s string) (Addr, error) {
	switch {
	case len(s) > 5 && s[:5] == "unix:":
		return ResolveAddr("unix", s[5:])
	case len(s) > 0 && (s[0] == '/' || s[0] == '@'):
		return ResolveAddr("unix", s)
	}
	return ResolveAddr("tcp", s)
}

func sockaddrString(sa unix.Sockaddr) string {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)).String()
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port)).String()
	case *unix.SockaddrUnix:
		return a.Name
	}
	return "?"
}
