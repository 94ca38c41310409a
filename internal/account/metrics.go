package account

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/telemetry"
)

// metrics of the account service. Every label value comes from a closed
// set named here, never from the client.
type metrics struct {
	logins       *prometheus.CounterVec // outcome: succeeded, bad_credentials, throttled, busy
	throttled    *prometheus.CounterVec // scope: address, account
	tokenRefused *prometheus.CounterVec // reason: unknown_user, disabled, revoked, role_changed
	hashing      prometheus.Gauge
	hashBusy     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	r := telemetry.NewRegistrar(reg)
	m := &metrics{
		logins: telemetry.Reuse(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "yolda_login_attempts_total", Help: "Login attempts by outcome: succeeded, bad_credentials, throttled (failed-login back-off), busy (no hashing slot).",
		}, []string{"outcome"})),
		throttled: telemetry.Reuse(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "yolda_login_throttled_total", Help: "Logins refused by the failed-login back-off, by the budget that ran out: address (account and address) or account.",
		}, []string{"scope"})),
		tokenRefused: telemetry.Reuse(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "yolda_token_refusals_total", Help: "Validly signed tokens refused because the account changed: unknown_user, disabled, revoked, role_changed.",
		}, []string{"reason"})),
		hashing: telemetry.Reuse(r, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "yolda_password_hashes_in_flight", Help: "Password hashes running now (bounded by the hashing slots).",
		})),
		hashBusy: telemetry.Reuse(r, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "yolda_password_hash_busy_total", Help: "Logins and password changes refused because every hashing slot stayed taken.",
		})),
	}
	for _, o := range []string{"succeeded", "bad_credentials", "throttled", "busy"} {
		m.logins.WithLabelValues(o)
	}
	return m, r.Err()
}
