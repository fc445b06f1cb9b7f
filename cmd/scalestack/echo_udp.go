package main

import (
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/scalestack/scalestack/conn"
)

// udpEcho sends every datagram back to its sender.
func udpEcho(pc *conn.PacketConn, from netip.AddrPort, data []byte) { pc.WriteTo(data, from) }

// udpCollector exports a UDP listener's datagram counts.
type udpCollector struct {
	ln   *conn.UDPListener
	desc *prometheus.Desc
}

func newUDPCollector(ln *conn.UDPListener) *udpCollector {
	return &udpCollector{ln: ln, desc: prometheus.NewDesc("scalestack_udp_datagrams_total",
		"UDP datagrams by outcome: received, sent, truncated (over the size limit, dropped), queue_drop (output queue full), send_error, recv_error.",
		[]string{"outcome"}, nil)}
}

func (c *udpCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *udpCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.ln.Stats()
	for _, v := range []struct {
		name string
		n    uint64
	}{{"received", s.Received}, {"sent", s.Sent}, {"truncated", s.Truncated}, {"queue_drop", s.QueueDrops}, {"send_error", s.SendErrors}, {"recv_error", s.RecvErrors}} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(v.n), v.name)
	}
}
