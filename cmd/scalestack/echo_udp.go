package main

import (
	"fmt"
	"io"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/reactor"
)

// udpEcho sends every datagram back to its sender.
func udpEcho(pc *conn.PacketConn, from netip.AddrPort, data []byte) { pc.WriteTo(data, from) }

// serveUDP runs a datagram module (echo --udp) until SIGINT/SIGTERM: one
// SO_REUSEPORT socket per loop, no accepting and so no hand-over or drain;
// queued replies still unsent at the stop are dropped, as UDP allows.
func (f *engineFlags) serveUDP(e *reactor.Engine, m module, stdout io.Writer) error {
	if f.upgradeSocket != "" {
		return fmt.Errorf("--upgrade-socket: not supported with --udp (there is no listening socket to hand over mid-stream)")
	}
	lvl, err := parseLogLevel(f.logLevel)
	if err != nil {
		return err
	}
	logLevel.Set(lvl)
	ln, err := conn.ListenUDP(e, *m.udp)
	if err != nil {
		return err
	}
	defer ln.Close()
	if f.admin != "" {
		reg := newRegistry()
		reg.MustRegister(newEngineCollector(e), newUDPCollector(ln))
		admin, err := startAdmin(adminConfig{addr: f.admin, registry: reg, status: func() any {
			return map[string]any{"module": m.name, "loops": engineStatus(e), "udp": ln.Stats()}
		}})
		if err != nil {
			return err
		}
		defer admin.Close()
		logger.Info("admin endpoint", "addr", admin.Addr())
	}
	fmt.Fprintf(stdout, "%s listening on udp %s (%d loops, %s)\n", m.name, ln.Addr().Address, len(e.Loops()), f.io)
	stop, hangup := signalChan(), hangupChan()
	for {
		select {
		case <-hangup:
			if m.reloader != nil {
				m.reloader.reload("SIGHUP")
			}
			continue
		case sig := <-stop:
			_ = ln.Close()
			s := ln.Stats()
			logger.Info("stopping", "signal", sig.String(), "received", s.Received, "sent", s.Sent,
				"truncated", s.Truncated, "queue_drops", s.QueueDrops, "send_errors", s.SendErrors)
			return nil
		}
	}
}

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
