package app

import (
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/insurance"
	"github.com/yolda/yolda/internal/insurance/configfile"
	"github.com/yolda/yolda/internal/insurance/resilient"
	"github.com/yolda/yolda/internal/insurance/rest"
)

// insurers is the configured insurers and the rules intake takes from them.
type insurers struct {
	clients *resilient.Clients
	// known and early are nil when no insurers file is given: no insurer
	// is known, so every request goes straight to manual review and
	// dispatch starts at once (intake's rule for an unknown insurer).
	known func(code string) bool
	early func(code string) bool
}

// loadInsurers reads the insurers file (YOLDA_INSURERS_FILE; empty: no
// insurers) and builds a client per insurer. Each adapter name maps to its
// factory here, and only here.
func loadInsurers(file string, env Env, reg prometheus.Registerer, log *slog.Logger) (insurers, error) {
	var cfgs []insurance.Config
	if file != "" {
		var err error
		cfgs, err = configfile.LoadFile(file, env.Getenv)
		if err != nil {
			return insurers{}, fmt.Errorf("%w: %w", ErrUsage, err)
		}
	}
	clients, err := resilient.NewClients(cfgs, map[string]insurance.Factory{rest.Name: rest.Factory(rest.Options{})},
		resilient.Options{Registerer: reg, Logger: log})
	if err != nil {
		return insurers{}, err
	}
	out := insurers{clients: clients}
	if len(cfgs) > 0 {
		byCode := map[string]insurance.Config{}
		for _, c := range cfgs {
			byCode[c.Code] = c
			log.Info("insurer configured", "insurer", c)
		}
		out.known = func(code string) bool { _, ok := byCode[code]; return ok }
		out.early = func(code string) bool { return !byCode[code].VerifyBeforeDispatch }
	}
	return out, nil
}
