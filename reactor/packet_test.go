package reactor

import (
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

func TestPacketAddrRoundTrip(t *testing.T) {
	cases := []struct {
		in     string
		family int
		ok     bool
		want   string // what AddrPort reads back
	}{
		{"127.0.0.1:53", unix.AF_INET, true, "127.0.0.1:53"},
		{"[::ffff:10.0.0.1]:65535", unix.AF_INET, true, "10.0.0.1:65535"},
		{"[2001:db8::1]:443", unix.AF_INET, false, ""},
		{"[2001:db8::1]:443", unix.AF_INET6, true, "[2001:db8::1]:443"},
		// An IPv4 peer of a dual-stack socket travels v4-mapped and reads
		// back as plain IPv4.
		{"192.0.2.7:9", unix.AF_INET6, true, "192.0.2.7:9"},
		{"[::1]:1", unix.AF_INET6, true, "[::1]:1"},
	}
	for _, tc := range cases {
		var a PacketAddr
		ok := a.SetAddrPort(netip.MustParseAddrPort(tc.in), tc.family)
		if ok != tc.ok {
			t.Errorf("%s for family %d: ok %v, want %v", tc.in, tc.family, ok, tc.ok)
			continue
		}
		if !ok {
			continue
		}
		if got := a.AddrPort().String(); got != tc.want {
			t.Errorf("%s for family %d: read back %s, want %s", tc.in, tc.family, got, tc.want)
		}
	}
	var zero PacketAddr
	if zero.AddrPort().IsValid() {
		t.Error("an empty address decoded as valid")
	}
}
