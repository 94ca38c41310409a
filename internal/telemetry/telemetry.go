// Package telemetry holds the Prometheus plumbing that several packages
// share. Metrics themselves are declared where they are measured.
package telemetry

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// RegisterOrReuse adds c to reg, or returns the collector already
// registered under the same description, so that two instances of one
// component (two buses, insurer clients built at different times) on one
// registry share their series. A nil reg registers nothing.
func RegisterOrReuse(reg prometheus.Registerer, c prometheus.Collector) (prometheus.Collector, error) {
	if reg == nil {
		return c, nil
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			return are.ExistingCollector, nil
		}
		return c, err
	}
	return c, nil
}
