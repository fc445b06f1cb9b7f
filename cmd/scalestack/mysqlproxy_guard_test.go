package main

import (
	"net"
	"testing"
	"time"

	"github.com/scalestack/scalestack/mysqlwire"
)

// dialGreeted opens a client connection to the proxy and reads its first
// packet (the greeting, or the ERR of a refusal).
func dialGreeted(t *testing.T, addr string) (*rawSession, []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := &rawSession{c: c}
	p, _, err := r.read(5 * time.Second)
	if err != nil {
		t.Fatalf("first packet: %v", err)
	}
	return r, p
}

// expectTooManyConnections checks that p is ERR 1040 (08004).
func expectTooManyConnections(t *testing.T, p []byte) {
	t.Helper()
	e, err := mysqlwire.ParseERR(p)
	if err != nil || e.Code != mysqlwire.ErConCountError || string(e.SQLState) != "08004" {
		t.Fatalf("first packet %x (%v), want ERR 1040 (08004)", p, err)
	}
}

// TestMaxClientsRefusalsCounted fills --max-clients and checks that the
// refused clients show in both refusal counters. The listener's
// scalestack_client_connections_refused_total{reason="max_clients"} stayed
// 0 while the proxy refused clients itself.
func TestMaxClientsRefusalsCounted(t *testing.T) {
	op := startOpsProxy(t, map[string]string{"max-clients": "2"})
	for i := 0; i < 2; i++ {
		if _, p := dialGreeted(t, op.addr); mysqlwire.IsERR(p) {
			t.Fatalf("client %d refused under --max-clients: %x", i, p)
		}
	}
	const refused = 3
	for i := 0; i < refused; i++ {
		_, p := dialGreeted(t, op.addr)
		expectTooManyConnections(t, p)
	}
	m := op.scrape(t)
	if v := m.value("scalestack_client_connections_refused_total", "reason", "max_clients"); v != refused {
		t.Errorf(`scalestack_client_connections_refused_total{reason="max_clients"} = %v, want %d`, v, refused)
	}
	if v := m.value("scalestack_mysqlproxy_clients_refused_total"); v != refused {
		t.Errorf("scalestack_mysqlproxy_clients_refused_total = %v, want %d", v, refused)
	}
}
