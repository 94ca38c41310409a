package app

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/yolda/yolda/internal/auth"
	"github.com/yolda/yolda/internal/bus"
	"github.com/yolda/yolda/internal/config"
	"github.com/yolda/yolda/internal/deadletter"
	"github.com/yolda/yolda/internal/httpapi"
	"github.com/yolda/yolda/internal/insurance"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/notify"
	"github.com/yolda/yolda/internal/relay"
	"github.com/yolda/yolda/internal/sweeper"
)

// knownRoles are the roles this build can run. DESIGN.md lists the ones
// still to come (dispatch, insurance, realtime, warehouse).
//
//   - api: the HTTP API.
//   - relay: outbox -> broker, and the sweeper.
//   - notify: request events -> customer notifications.
//   - insurance: policy checks with the insurers (the only role that
//     calls them).
var knownRoles = []string{"api", "relay", "notify", "insurance"}

func parseRoles(s string) ([]string, error) {
	if s == "" || s == "all" {
		return knownRoles, nil
	}
	var out []string
	for _, r := range strings.Split(s, ",") {
		r = strings.TrimSpace(r)
		if !slices.Contains(knownRoles, r) {
			return nil, fmt.Errorf("%w: unknown role %q (this build runs: %s)", ErrUsage, r, strings.Join(knownRoles, ", "))
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out, nil
}

// loadConfig reads flags over the environment over the defaults.
func loadConfig(name string, args []string, env Env) (config.Config, error) {
	return loadConfigWith(newFlagSet(name, env), args, env)
}

// loadConfigWith is loadConfig for a command with flags of its own.
func loadConfigWith(fs *flag.FlagSet, args []string, env Env) (config.Config, error) {
	cfg := config.Defaults()
	if err := cfg.Register(fs, env.Getenv); err != nil {
		return cfg, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if err := parse(fs, args); err != nil {
		return cfg, err
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	return cfg, nil
}

func serve(ctx context.Context, args []string, env Env) error {
	cfg, err := loadConfig("serve", args, env)
	if err != nil {
		return err
	}
	roles, err := parseRoles(cfg.Roles)
	if err != nil {
		return err
	}
	log := newLogger(cfg.LogLevel, cfg.LogFormat, env.Stderr)
	log.Info("starting yolda", append([]any{"version", Version()}, cfg.Masked()...)...)
	warnIfDataDirOpen(cfg.DataDir, log)

	store, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	// Runs last, after the HTTP server and intake have drained.
	defer store.close()
	log.Info("operational store ready", "engine", store.engine)

	secret, err := jwtSecret(cfg)
	if err != nil {
		return err
	}
	tokens, err := auth.NewTokens(secret, cfg.TokenTTL, nil)
	if err != nil {
		return err
	}
	registry := prometheus.NewRegistry()
	accounts, trail, err := accountServices(cfg, store, registry, log)
	if err != nil {
		return err
	}
	log.Info("password hashing bounded", "slots", accounts.HashSlots())

	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	batchSize := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "yolda_intake_batch_size", Help: "Requests committed per intake transaction.",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
	})
	commitSeconds := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "yolda_intake_commit_seconds", Help: "Time of one intake transaction.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 12),
	})
	commitErrors := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "yolda_intake_commit_errors_total", Help: "Intake transactions that failed.",
	})
	registry.MustRegister(batchSize, commitSeconds, commitErrors)

	insurers, err := loadInsurers(cfg, env, registry, log)
	if err != nil {
		return err
	}
	defer insurers.clients.Close()

	var b *bus.Bus
	if slices.Contains(roles, "relay") || slices.Contains(roles, "notify") || slices.Contains(roles, "insurance") {
		b, err = bus.Connect(ctx, bus.Config{
			URL: cfg.NATSURL, DataDir: cfg.DataDir, CredsFile: cfg.NATSCredsFile,
			TLSCAFile: cfg.NATSTLSCAFile, TLSCertFile: cfg.NATSTLSCertFile, TLSKeyFile: cfg.NATSTLSKeyFile,
			Replicas: cfg.NATSReplicas, EventsMaxAge: cfg.EventsMaxAge, DuplicateWindow: cfg.DuplicateWindow,
			Name: "yolda-" + strings.Join(roles, "-"), Registerer: registry,
		}, log)
		if err != nil {
			return fmt.Errorf("connect broker: %w", err)
		}
		// Runs after every role has stopped, before the store closes.
		defer b.Close()
		if err := b.EnsureStreams(ctx); err != nil {
			return fmt.Errorf("declare streams: %w", err)
		}
		log.Info("broker ready", "embedded", cfg.NATSURL == "", "replicas", b.Replicas())
	}

	var rel *relay.Relay
	wake := func() {}
	if slices.Contains(roles, "relay") {
		rel = relay.New(store, b, relay.Options{
			RepublishWindow: cfg.RepublishWindow, Retention: cfg.OutboxRetention,
			// A receipt must outlive every way its message can come back:
			// the EVENTS stream replays that far to a new consumer.
			ReceiptRetention: cfg.EventsMaxAge + 24*time.Hour,
		}, log, registry)
		b.OnReconnect(func() { rel.BrokerMayHaveLost("reconnect") })
		wake = rel.Wake
	}

	writers := cfg.IntakeWriters
	if writers == 0 {
		writers = store.writers
	}
	requests := intake.NewService(store, intake.Options{
		Batch: intake.BatchOptions{
			MaxBatch: cfg.IntakeBatchMax, Writers: writers, Linger: cfg.IntakeBatchWait, Queue: cfg.IntakeQueueLimit,
			Observe: func(size int, took time.Duration, err error) {
				batchSize.Observe(float64(size))
				commitSeconds.Observe(took.Seconds())
				if err != nil {
					commitErrors.Inc()
				}
			},
		},
		Committed:           wake,
		KnownInsurer:        insurers.known,
		DispatchBeforeCover: insurers.early,
		Logger:              log,
	})
	defer requests.Close()
	deadLetters := deadletter.NewService(store, nil)

	proxies, _ := cfg.ProxyNets() // validated above
	api := httpapi.New(httpapi.Deps{
		Intake: requests, Accounts: accounts, Admin: accounts, Audit: trail, Tokens: tokens, DeadLetters: deadLetters, Notifications: store,
		Insurers: insurers.clients,
		Ready:    store.Ping, Registry: registry, Logger: log,
		Options: httpapi.Options{
			MaxBodyBytes: cfg.MaxBodyBytes, MaxInFlight: cfg.MaxInFlight,
			UserRate: cfg.UserRate, UserBurst: cfg.UserBurst, IPRate: cfg.IPRate, IPBurst: cfg.IPBurst,
			TrustedProxies: proxies, Version: Version(),
		},
	})

	g, ctx := errgroup.WithContext(ctx)
	if cfg.PprofAddr != "" {
		g.Go(func() error { return servePprof(ctx, cfg.PprofAddr, log) })
	}
	if slices.Contains(roles, "api") {
		g.Go(func() error { return serveHTTP(ctx, cfg, api, requests, log) })
		g.Go(func() error { return trail.Run(ctx) }) // audit retention
	} else {
		// Worker processes still answer probes and scrapes.
		g.Go(func() error { return serveHTTP(ctx, cfg, api.OpsHandler(), requests, log) })
	}
	if rel != nil {
		g.Go(func() error { return rel.Run(ctx) })
		if l, ok := store.operationalStore.(outboxListener); ok {
			// Other processes' commits wake this relay through the database.
			g.Go(func() error { return l.ListenOutbox(ctx, rel.Wake) })
		}
		sw := sweeper.New(store, requests.Jobs, sweeper.DefaultRules, cfg.SweepInterval, log, registry)
		g.Go(func() error { return sw.Run(ctx) })
	}
	if slices.Contains(roles, "notify") {
		worker := notify.NewWorker(store, nil)
		lag := consumerLag(registry)
		g.Go(func() error {
			return bus.Consume(ctx, b, bus.ConsumerConfig{
				Stream: bus.StreamEvents, Durable: notify.Consumer, FilterSubject: "events.request.>",
				Concurrency: cfg.WorkerConcurrency, DeadLetter: deadLetterHook(deadLetters),
			}, func(ctx context.Context, d bus.Delivery) error {
				err := worker.Handle(ctx, d.Data)
				if err == nil && d.NumDelivered == 1 {
					lag(notify.Consumer, d.Data)
				}
				return err
			})
		})
	}
	if slices.Contains(roles, "insurance") {
		gauges := insurance.NewPendingGauges(store, insurers.clients, registry, log)
		g.Go(func() error { return gauges.Run(ctx, 15*time.Second) })
		worker := insurance.NewWorker(insurers.clients, requests, nil, log)
		for _, c := range insurers.clients.All() {
			cc := insurance.ConsumerConfig(c.Config())
			cc.DeadLetter = deadLetterHook(deadLetters)
			g.Go(func() error { return bus.Consume(ctx, b, cc, worker.Handle) })
		}
	}
	log.Info("roles running", "roles", strings.Join(roles, ","))
	err = g.Wait()
	log.Info("stopped", "err", err)
	return err
}

// outboxListener is a store that can wake the relay when another process
// commits outbox rows (PostgreSQL LISTEN/NOTIFY).
type outboxListener interface {
	ListenOutbox(ctx context.Context, wake func()) error
}

// consumerLag returns a function that records, for a handled message, the
// time from the commit of the change it announces to the end of its
// handling: the end-to-end latency of the backbone.
func consumerLag(reg prometheus.Registerer) func(consumer string, payload []byte) {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "yolda_consumer_lag_seconds",
		Help:    "Time from a change's commit to its first successful handling by a consumer.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	}, []string{"consumer"})
	reg.MustRegister(h)
	return func(consumer string, payload []byte) {
		var env struct {
			OccurredAt time.Time `json:"occurred_at"`
		}
		if json.Unmarshal(payload, &env) == nil && !env.OccurredAt.IsZero() {
			h.WithLabelValues(consumer).Observe(time.Since(env.OccurredAt).Seconds())
		}
	}
}

// deadLetterHook stores what a consumer gave up on.
func deadLetterHook(s *deadletter.Service) func(ctx context.Context, d bus.Delivery, err error) error {
	return func(ctx context.Context, d bus.Delivery, cause error) error {
		return s.Record(ctx, d.Consumer, d.Stream, d.Subject, d.ID, d.Data, cause, int(d.NumDelivered))
	}
}

// serveHTTP listens until ctx ends, then stops accepting, lets in-flight
// requests finish (each waits for its commit) and only then closes intake.
func serveHTTP(ctx context.Context, cfg config.Config, h http.Handler, requests *intake.Service, log *slog.Logger) error {
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: draining http requests", "timeout", cfg.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	requests.Close()
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http shutdown: %w", err)
	}
	return nil
}

// servePprof serves the Go profiler on its own listener, apart from the
// API, so that it never sits behind the public edge.
func servePprof(ctx context.Context, addr string, log *slog.Logger) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	log.Info("profiler listening", "addr", addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("pprof: %w", err)
	}
	return nil
}

func jwtSecret(cfg config.Config) ([]byte, error) {
	if cfg.JWTSecret != "" {
		return []byte(cfg.JWTSecret), nil
	}
	return auth.LoadOrCreateSecret(cfg.DataDir)
}
