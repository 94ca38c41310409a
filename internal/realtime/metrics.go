package realtime

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/telemetry"
)

// Reasons a connection ended, the label of yolda_ws_disconnects_total.
const (
	endClient   = "client"   // the client closed or went away
	endSlow     = "slow"     // its status queue overflowed (CloseTooSlow)
	endExpired  = "expired"  // its token expired (CloseTokenExpired)
	endRefused  = "refused"  // its token no longer speaks for the account
	endShutdown = "shutdown" // the process is stopping (1001)
	endNoPong   = "no_pong"  // it did not answer a ping in time
	endWrite    = "write"    // a write failed or timed out
)

type metrics struct {
	connections *prometheus.GaugeVec
	sent        *prometheus.CounterVec
	received    *prometheus.CounterVec
	conflated   prometheus.Counter
	ends        *prometheus.CounterVec
	fanout      prometheus.Histogram
	refused     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	r := telemetry.NewRegistrar(reg)
	m := &metrics{
		connections: telemetry.Reuse(r, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "yolda_ws_connections", Help: "Open WebSocket connections, by role.",
		}, []string{"role"})),
		sent: telemetry.Reuse(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "yolda_ws_messages_sent_total", Help: "Messages written to WebSocket clients, by type.",
		}, []string{"type"})),
		received: telemetry.Reuse(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "yolda_ws_messages_received_total", Help: "Messages read from WebSocket clients, by type (invalid: not understood).",
		}, []string{"type"})),
		conflated: telemetry.Reuse(r, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "yolda_ws_positions_conflated_total", Help: "Positions replaced by a newer one before a slow client could be sent them.",
		})),
		ends: telemetry.Reuse(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "yolda_ws_disconnects_total", Help: "WebSocket connections ended, by reason.",
		}, []string{"reason"})),
		fanout: telemetry.Reuse(r, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "yolda_ws_fanout_seconds",
			Help:    "Time from a position's broadcast by the gateway that took it to its write on a watching client's connection.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		})),
		refused: telemetry.Reuse(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "yolda_ws_upgrades_refused_total", Help: "WebSocket upgrades refused before the handshake, by reason.",
		}, []string{"reason"})),
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("realtime metrics: %w", err)
	}
	return m, nil
}
