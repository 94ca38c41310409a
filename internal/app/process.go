package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	goredis "github.com/redis/go-redis/v9"

	"github.com/yolda/yolda/internal/audit"
	"github.com/yolda/yolda/internal/auth"
	"github.com/yolda/yolda/internal/bus"
	"github.com/yolda/yolda/internal/config"
	"github.com/yolda/yolda/internal/deadletter"
	"github.com/yolda/yolda/internal/dispatch"
	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/httpapi"
	"github.com/yolda/yolda/internal/insurance/healthboard"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/realtime"
	"github.com/yolda/yolda/internal/store/postgres"
	"github.com/yolda/yolda/internal/warehouse"
	"github.com/yolda/yolda/web"
)

// process is what the roles of one `yolda serve` share: the adapters it
// opened and the services built on them. assemble opens only what its
// roles need; close undoes whatever was opened, in reverse order, once,
// also after a partial assembly.
type process struct {
	cfg      config.Config
	env      Env
	log      *slog.Logger
	roles    []role
	registry *prometheus.Registry

	store *openedStore
	// broker is nil unless a role needs it.
	broker   *bus.Bus
	insurers insurers
	// board is the insurer health board (nil without a broker, or in a
	// process that neither posts nor reads it); processKey names this
	// process there; healthChanges hears the breakers' transitions.
	board         *bus.HealthBoard
	processKey    string
	healthChanges *healthboard.Changes
	requests      *intake.Service
	deadLetters   *deadletter.Service
	// audit is the trail of security events; the api role prunes it.
	audit *audit.Service
	// positions and fleet serve the drivers' routes and the dispatch role.
	positions fleet.Index
	fleet     *fleet.Service
	// redis is the process's Redis client, nil without YOLDA_REDIS_URL.
	redis *goredis.Client
	// hot are the ports behind the hot-read cache (hotReads).
	hot hotStores
	// dispatch serves offers, assignments and progress; the dispatch role
	// runs expirer.
	dispatch *dispatch.Service
	expirer  *dispatch.Expirer
	// reporter is the fleet as the drivers' routes and the gateway see
	// it: accepted positions are broadcast to every gateway.
	reporter broadcastingFleet
	// gateway is nil unless the process runs the realtime role.
	gateway *realtime.Gateway
	api     *httpapi.Server
	// wrapListener, if set, wraps the HTTP listener: a test seam.
	wrapListener func(net.Listener) net.Listener
	// warehouse answers reports when this process has one; otherwise
	// reportsForward is the warehouse process an api forwards them to.
	warehouse      *warehouse.Service
	reportsForward *url.URL

	// committed is called after every intake transaction with outbox rows;
	// roles add to it (the relay wakes) while the process is assembled,
	// before any service runs, so it needs no lock.
	committed []func()

	closeOnce sync.Once
	closers   []func()
}

// onClose registers f to run at close, before what was opened earlier.
func (p *process) onClose(f func()) { p.closers = append(p.closers, f) }

// close releases everything opened so far, newest first. It is safe to
// call more than once and after a failed assemble.
func (p *process) close() {
	p.closeOnce.Do(func() {
		for _, f := range slices.Backward(p.closers) {
			f()
		}
	})
}

// assemble opens the adapters the roles need and builds the shared
// services. On error, what it opened stays registered for close.
func (p *process) assemble(ctx context.Context) error {
	need := needed(p.roles)
	p.registry = prometheus.NewRegistry()
	p.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// Released last, after everything in the directory is closed.
	if err := p.lockDataDir(); err != nil {
		return err
	}
	if need&needStore == 0 {
		// A warehouse-only process never opens the operational database:
		// reports answer while it is down.
		return p.assembleWithoutStore(ctx, need)
	}
	store, err := openStore(ctx, p.cfg, postgres.WithLogger(p.log), postgres.WithRegisterer(p.registry))
	if err != nil {
		return err
	}
	// Closes last but for the lock, after the HTTP server, intake and the broker.
	p.onClose(store.close)
	p.store = store
	p.log.Info("operational store ready", "engine", store.engine, "where", store.where)

	secret, err := jwtSecret(p.cfg)
	if err != nil {
		return err
	}
	tokens, err := auth.NewTokens(secret, p.cfg.TokenTTL, nil)
	if err != nil {
		return err
	}
	trackingLinks, err := auth.NewTrackingLinks(secret, p.cfg.TrackingLinkTTL, nil)
	if err != nil {
		return err
	}
	site, err := web.New()
	if err != nil {
		return err
	}
	accounts, trail, err := accountServices(p.cfg, store, p.registry, p.log)
	if err != nil {
		return err
	}
	p.audit = trail
	p.log.Info("password hashing bounded", "slots", accounts.HashSlots())
	intakeMetrics, err := intake.NewMetrics(p.registry)
	if err != nil {
		return fmt.Errorf("intake metrics: %w", err)
	}

	file := ""
	if need&needInsurers != 0 {
		file = p.cfg.InsurersFile
	}
	p.processKey, p.healthChanges = healthboard.ProcessKey(), healthboard.NewChanges()
	p.insurers, err = loadInsurers(file, p.env, p.registry, p.log, p.healthChanges.BreakerChanged)
	if err != nil {
		return err
	}
	p.onClose(func() { _ = p.insurers.clients.Close() })

	// The api role broadcasts the positions drivers report over REST to
	// the gateways, through a broker they share: an external one. An
	// embedded broker of an api-only process would reach no gateway.
	if need&needBroker != 0 || p.runs("api") && p.cfg.NATSURL != "" {
		if err := p.connectBroker(ctx); err != nil {
			return err
		}
	}
	if err := p.openHealthBoard(ctx); err != nil {
		return err
	}

	if err := p.connectRedis(ctx); err != nil {
		return err
	}
	if p.hot, err = p.hotReads(); err != nil {
		return err
	}
	p.openFleet(p.hot.drivers)
	writers := p.cfg.IntakeWriters
	if writers == 0 {
		writers = store.writers
	}
	p.requests = intake.NewService(p.hot.requests, intake.Options{
		Batch: intake.BatchOptions{
			MaxBatch: p.cfg.IntakeBatchMax, Writers: writers, Linger: p.cfg.IntakeBatchWait, Queue: p.cfg.IntakeQueueLimit,
			Observe: intakeMetrics.Observe,
		},
		// Consumers' updates (insurance outcomes) share transactions the
		// same way, with as many writers.
		Updates:             intake.BatchOptions{Writers: writers},
		Committed:           p.wake,
		KnownInsurer:        p.insurers.known,
		DispatchBeforeCover: p.insurers.early,
		Offers:              store,
		DriverFreed:         p.driverFreed,
		Logger:              p.log,
	})
	// Closes first (intake commits what is queued); the HTTP service
	// closes it earlier still, as soon as its requests have drained.
	p.onClose(p.requests.Close)
	p.deadLetters = deadletter.NewService(store, nil)
	if err := p.buildDispatch(); err != nil {
		return err
	}
	limits, limiter, err := p.rateLimits()
	if err != nil {
		return err
	}
	if err := p.openReports(ctx); err != nil {
		return err
	}
	p.reporter = broadcastingFleet{Service: p.fleet, broker: p.broker, now: time.Now}
	if err := p.buildGateway(accounts); err != nil {
		return err
	}
	var ws httpapi.Realtime
	if p.gateway != nil {
		ws = p.gateway
	}

	proxies, _ := p.cfg.ProxyNets() // validated with the config
	deps := httpapi.Deps{
		Intake: p.requests, Accounts: accounts, Admin: accounts, Audit: trail, Tokens: tokens, DeadLetters: p.deadLetters, Notifications: store,
		Insurers: p.insurerHealth(), Fleet: p.reporter, Dispatch: p.dispatch, Realtime: ws, Limiter: limiter,
		Tracking: trackingLinks, Approaches: p.fleet, Candidates: p.fleet, OfferHistory: store, Pending: store, Web: site, ReportsForward: p.reportsForward,
		Ready: store.Ping, Registry: p.registry, Logger: p.log,
		Options: httpapi.Options{
			MaxBodyBytes: p.cfg.MaxBodyBytes, MaxInFlight: p.cfg.MaxInFlight,
			BodyReadTimeout: p.cfg.BodyReadTimeout, MaxConnsPerIP: p.cfg.MaxConnsPerIP,
			RateLimits:     limits,
			TrustedProxies: proxies, Version: Version(), OnlyRealtime: !p.runs("api"),
		},
	}
	if p.warehouse != nil {
		deps.Reports = p.warehouse
	}
	p.api = httpapi.New(deps)
	return nil
}

func (p *process) connectBroker(ctx context.Context) error {
	b, err := bus.Connect(ctx, bus.Config{
		URL: p.cfg.NATSURL, DataDir: p.cfg.DataDir, CredsFile: p.cfg.NATSCredsFile,
		TLSCAFile: p.cfg.NATSTLSCAFile, TLSCertFile: p.cfg.NATSTLSCertFile, TLSKeyFile: p.cfg.NATSTLSKeyFile,
		Replicas: p.cfg.NATSReplicas, EventsMaxAge: p.cfg.EventsMaxAge, DuplicateWindow: p.cfg.DuplicateWindow,
		Name: "yolda-" + strings.Join(roleNamesOf(p.roles), "-"), Registerer: p.registry,
	}, p.log)
	if err != nil {
		return fmt.Errorf("connect broker: %w", err)
	}
	// Closes after every service has stopped, before the store.
	p.onClose(func() { _ = b.Close() })
	p.broker = b
	if err := b.EnsureStreams(ctx); err != nil {
		return fmt.Errorf("declare streams: %w", err)
	}
	p.log.Info("broker ready", "embedded", p.cfg.NATSURL == "", "replicas", b.Replicas())
	return nil
}

// driverFreed tells the position index that a cancellation took a
// driver off its job (the database freed it with the cancellation).
func (p *process) driverFreed(ctx context.Context, driverID string) {
	if _, err := p.fleet.Refresh(ctx, driverID); err != nil {
		p.log.Warn("position index not refreshed after a cancellation", "driver_id", driverID, "err", err)
	}
}

// wake tells the in-process listeners that intake committed outbox rows.
func (p *process) wake() {
	for _, f := range p.committed {
		f()
	}
}

// runs reports whether the process runs the role.
func (p *process) runs(name string) bool {
	return slices.ContainsFunc(p.roles, func(r role) bool { return r.name == name })
}

// services builds every service of the process: the HTTP listener if a
// role serves on it, each role's, then what every process runs (the
// operations listener for probes and scrapes, pprof).
func (p *process) services() ([]service, error) {
	var all []service
	if needed(p.roles)&needHTTP != 0 {
		var h http.Handler = p.api
		if p.store == nil {
			// A warehouse-only process: reports and probes, nothing that
			// needs the operational database.
			h = p.api.ReportsHandler()
		}
		all = append(all, httpService(p.cfg, h, p.requests, p.log, p.wrapListener))
	}
	for _, r := range p.roles {
		ss, err := r.services(p)
		if err != nil {
			return nil, fmt.Errorf("role %s: %w", r.name, err)
		}
		all = append(all, ss...)
	}
	if p.cfg.OpsAddr != "" {
		all = append(all, opsService(p.cfg, p.api.OpsHandler(), p.log))
	}
	if p.cfg.PprofAddr != "" {
		all = append(all, pprofService(p.cfg.PprofAddr, p.log))
	}
	return all, nil
}

// receiptRetention is how long a consumer's receipt is kept: it must
// outlive every way its message can come back, and the EVENTS stream
// replays that far to a new consumer.
func receiptRetention(cfg config.Config) time.Duration { return cfg.EventsMaxAge + 24*time.Hour }
