package testutil

import (
	"net"
	"testing"
)

func TestOwnTCPLocalPortsSeesOwnSocketsOnly(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	clientPort := c.LocalAddr().(*net.TCPAddr).Port
	listenPort := ln.Addr().(*net.TCPAddr).Port

	ports, err := OwnTCPLocalPorts()
	if err != nil {
		t.Fatal(err)
	}
	if !ports[clientPort] || !ports[listenPort] {
		t.Fatalf("ports %v lack the client's %d or the listener's %d", ports, clientPort, listenPort)
	}

	c.Close()
	ports, err = OwnTCPLocalPorts()
	if err != nil {
		t.Fatal(err)
	}
	if ports[clientPort] {
		t.Fatalf("closed client port %d still reported", clientPort)
	}
}
