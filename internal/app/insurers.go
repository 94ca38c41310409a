package app

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/bus"
	"github.com/yolda/yolda/internal/insurance"
	"github.com/yolda/yolda/internal/insurance/configfile"
	"github.com/yolda/yolda/internal/insurance/healthboard"
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
// factory here, and only here. breakerChanged, if set, hears every
// breaker transition.
func loadInsurers(file string, env Env, reg prometheus.Registerer, log *slog.Logger, breakerChanged func(code, state string)) (insurers, error) {
	var cfgs []insurance.Config
	if file != "" {
		var err error
		cfgs, err = configfile.LoadFile(file, env.Getenv)
		if err != nil {
			return insurers{}, fmt.Errorf("%w: %w", ErrUsage, err)
		}
	}
	clients, err := resilient.NewClients(cfgs, map[string]insurance.Factory{rest.Name: rest.Factory(rest.Options{})},
		resilient.Options{Registerer: reg, Logger: log, BreakerChanged: breakerChanged})
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

// insurerHealth is GET /v1/insurers' view: this process's clients, live
// if it runs the insurance role, merged with what the other processes
// posted to the health board (none without a broker).
func (p *process) insurerHealth() healthboard.View {
	v := healthboard.View{Configured: p.insurers.clients, Calls: p.runs("insurance"), Process: p.processKey}
	if p.board != nil {
		v.Board = boardSnapshots{board: p.board}
	}
	return v
}

// openHealthBoard opens the board of insurer health in the processes that
// post to it (insurance) or read it (api).
func (p *process) openHealthBoard(ctx context.Context) error {
	if p.broker == nil || !p.runs("api") && !p.runs("insurance") {
		return nil
	}
	b, err := p.broker.OpenHealthBoard(ctx)
	if err != nil {
		return fmt.Errorf("insurer health board: %w", err)
	}
	// Closes before the broker, after the publisher took its entry down.
	p.onClose(b.Close)
	p.board = b
	return nil
}

// insurerHealthPublisher posts this process's insurer health to the board
// every fifth of the board's TTL and on every breaker transition.
func (p *process) insurerHealthPublisher() service {
	pub := healthboard.NewPublisher(p.board, p.insurers.clients, p.processKey, p.healthChanges.C(), p.log)
	interval := p.broker.HealthTTL() / 5
	return service{name: "insurer-health-publisher", run: func(ctx context.Context) error { return pub.Run(ctx, interval) }}
}

// boardSnapshots reads the other processes' insurer health off the board.
type boardSnapshots struct{ board *bus.HealthBoard }

// Snapshots decodes the board's entries; one that does not decode (a
// process of another version) is left out, as if it had not posted.
func (b boardSnapshots) Snapshots() ([]healthboard.Snapshot, error) {
	entries, err := b.board.All()
	if err != nil {
		return nil, err
	}
	out := make([]healthboard.Snapshot, 0, len(entries))
	for _, e := range entries {
		if s, err := healthboard.Decode(e.Key, e.At, e.Value); err == nil {
			out = append(out, s)
		}
	}
	return out, nil
}
