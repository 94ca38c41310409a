package app

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/auth"
	"github.com/yolda/yolda/internal/bus"
	"github.com/yolda/yolda/internal/config"
	"github.com/yolda/yolda/internal/httpapi"
	"github.com/yolda/yolda/internal/identity"
	pgstore "github.com/yolda/yolda/internal/store/postgres"
	"github.com/yolda/yolda/internal/warehouse"
	"github.com/yolda/yolda/internal/warehouse/benchmark"
	"github.com/yolda/yolda/internal/warehouse/duckdb"
	"github.com/yolda/yolda/internal/warehouse/postgres"
)

// The warehouse loader's batches: a load is one transaction, so bigger
// batches load faster, and a short wait lets them form at a steady rate
// without holding a report's freshness back noticeably.
const (
	warehouseBatchMax  = 1000
	warehouseBatchWait = 50 * time.Millisecond
)

// openWarehouseStore picks the engine by URL: PostgreSQL for postgres://,
// a DuckDB file in the data dir otherwise. into, when not empty, overrides
// the configuration (rebuild into another warehouse).
func openWarehouseStore(ctx context.Context, cfg config.Config, into string) (warehouse.Store, string, error) {
	target := cmpOr(into, cfg.WarehouseURL)
	if strings.HasPrefix(target, "postgres://") || strings.HasPrefix(target, "postgresql://") {
		if target == cfg.DatabaseURL {
			return nil, "", errors.New("the warehouse must not be the operational database")
		}
		s, err := postgres.Open(ctx, target)
		if err != nil {
			return nil, "", fmt.Errorf("open postgres warehouse: %w", err)
		}
		return s, "postgres", nil
	}
	path := cmpOr(target, cfg.WarehousePath())
	s, err := duckdb.Open(ctx, path)
	if err != nil {
		return nil, "", err
	}
	return s, "duckdb " + path, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// slaOf is the arrival SLA of every configured insurer.
func slaOf(ins insurers) warehouse.SLA {
	sla := warehouse.SLA{ByInsurer: map[string]int{}, DefaultMinutes: warehouse.DefaultSLAMinutes}
	for _, c := range ins.clients.All() {
		sla.ByInsurer[c.Code()] = c.Config().ArrivalSLAMinutes
	}
	return sla
}

// openReports gives the process what answers reports: the warehouse
// itself when the warehouse role runs here, or when the api role runs and
// the warehouse is PostgreSQL (which any number of processes may query);
// else, for the api role, the address of the warehouse process to forward
// to. Never the operational database.
func (p *process) openReports(ctx context.Context) error {
	pgWarehouse := strings.HasPrefix(p.cfg.WarehouseURL, "postgres")
	switch {
	case p.runs("warehouse") || (p.runs("api") && pgWarehouse):
		st, engine, err := openWarehouseStore(ctx, p.cfg, "")
		if err != nil {
			return err
		}
		p.onClose(func() { _ = st.Close() })
		svc, err := warehouse.New(st, warehouse.Options{SLA: slaOf(p.insurers), Logger: p.log, Registerer: p.registry})
		if err != nil {
			return fmt.Errorf("warehouse: %w", err)
		}
		p.warehouse = svc
		p.log.Info("warehouse ready", "engine", engine)
	case p.runs("api") && p.cfg.ReportsURL != "":
		u, err := url.Parse(p.cfg.ReportsURL) // validated with the config
		if err != nil {
			return fmt.Errorf("reports-url: %w", err)
		}
		p.reportsForward = u
		p.log.Info("reports forwarded to the warehouse process", "url", config.Redact(p.cfg.ReportsURL))
	case p.runs("api"):
		p.log.Warn("reports are not served by this process: no warehouse role here, no postgres warehouse-url, no reports-url")
	}
	return nil
}

// warehouseServices: the loader (a batched durable consumer of every
// event) and the lag sampler. The reports are served on the process's
// HTTP listener (needHTTP): the whole API with the api role, the report
// routes and the probes alone in a warehouse-only process.
func (p *process) warehouseServices() ([]service, error) {
	svc := p.warehouse
	var dead func(ctx context.Context, d bus.Delivery, err error) error
	if p.deadLetters != nil {
		dead = deadLetterHook(p.deadLetters)
	}
	ss := []service{
		{name: "warehouse-loader", run: func(ctx context.Context) error {
			return runLoader(ctx, p.broker, svc, dead, nil)
		}},
		{name: "warehouse-lag", run: func(ctx context.Context) error {
			return svc.RunLag(ctx, backlog(p.broker), time.Second)
		}},
	}
	return ss, nil
}

// runLoader consumes every event into svc until ctx ends. loaded, if not
// nil, sees each batch once it has committed (the lag benchmark).
func runLoader(ctx context.Context, b *bus.Bus, svc *warehouse.Service, dead func(context.Context, bus.Delivery, error) error,
	loaded func(payloads [][]byte)) error {
	cfg := bus.ConsumerConfig{
		Stream: bus.StreamEvents, Durable: warehouse.Consumer, FilterSubject: "events.>",
		BatchMax: warehouseBatchMax, BatchWait: warehouseBatchWait,
		// DuckDB has one writer; PostgreSQL batches in several processes
		// already run side by side.
		Concurrency: 1, AckWait: time.Minute, MaxAckPending: 4 * warehouseBatchMax,
		DeadLetter: dead,
	}
	return bus.ConsumeBatch(ctx, b, cfg, func(ctx context.Context, ds []bus.Delivery) ([]error, error) {
		payloads := make([][]byte, len(ds))
		for i, d := range ds {
			payloads[i] = d.Data
		}
		res, err := svc.LoadBatch(ctx, payloads)
		if err == nil && loaded != nil {
			loaded(payloads)
		}
		return res, err
	})
}

// backlog reads the warehouse consumer's backlog from the broker: events
// not delivered yet plus those delivered and not acknowledged, and when
// the first of them (the one after the ack floor) was stored.
func backlog(b *bus.Bus) warehouse.Pending {
	return func(ctx context.Context) (uint64, time.Time, error) {
		js := b.JetStream()
		cons, err := js.Consumer(ctx, bus.StreamEvents, warehouse.Consumer)
		if err != nil {
			return 0, time.Time{}, err
		}
		info, err := cons.Info(ctx)
		if err != nil {
			return 0, time.Time{}, err
		}
		n := info.NumPending + uint64(info.NumAckPending)
		if n == 0 {
			return 0, time.Time{}, nil
		}
		st, err := js.Stream(ctx, bus.StreamEvents)
		if err != nil {
			return n, time.Time{}, nil
		}
		msg, err := st.GetMsg(ctx, info.AckFloor.Stream+1)
		if err != nil {
			// Gone (retention) or not there yet: the newest loaded event
			// stands in.
			return n, time.Time{}, nil
		}
		return n, msg.Time, nil
	}
}

// warehouseCmd runs `yolda warehouse rebuild`.
func warehouseCmd(ctx context.Context, args []string, env Env) error {
	if len(args) == 0 || args[0] != "rebuild" {
		fmt.Fprintln(env.Stderr, "usage: yolda warehouse rebuild [--since TIME] [--from-warehouse] [--into PATH|URL]")
		return ErrUsage
	}
	fs := newFlagSet("warehouse rebuild", "Replays the EVENTS stream into an empty warehouse, or (--from-warehouse) re-derives every fact from the warehouse's own events.\n", env)
	since := fs.String("since", "", "replay events from this RFC 3339 time on (default: the start of the stream)")
	fromWarehouse := fs.Bool("from-warehouse", false, "re-derive every fact from the warehouse's own events instead of replaying the stream")
	into := fs.String("into", "", "rebuild into this warehouse (a DuckDB file or postgres://...) instead of the configured one")
	cfg, err := loadConfig(fs, args[1:], env, nil)
	if err != nil {
		return err
	}
	var from time.Time
	if *since != "" {
		if from, err = time.Parse(time.RFC3339Nano, *since); err != nil {
			return fmt.Errorf("%w: --since: want an RFC 3339 time", ErrUsage)
		}
		if *fromWarehouse {
			return fmt.Errorf("%w: --since replays the stream; --from-warehouse re-derives everything", ErrUsage)
		}
	}
	log := newLogger(cfg.LogLevel, cfg.LogFormat, env.Stderr)
	ins, err := loadInsurers(cfg.InsurersFile, env, nil, log, nil)
	if err != nil {
		return err
	}
	defer ins.clients.Close()
	st, engine, err := openWarehouseStore(ctx, cfg, *into)
	if err != nil {
		return err
	}
	defer st.Close()
	svc, err := warehouse.New(st, warehouse.Options{SLA: slaOf(ins), Logger: log})
	if err != nil {
		return err
	}
	start := time.Now()
	if *fromWarehouse {
		n, err := svc.RebuildFromWarehouse(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "re-derived %d request facts from the events in %s (%s)\n", n, engine, time.Since(start).Round(time.Millisecond))
		return nil
	}
	empty, err := st.Empty(ctx)
	if err != nil {
		return err
	}
	if !empty {
		return fmt.Errorf("%w: %s holds events; replay into an empty warehouse (--into a new file or database), or use --from-warehouse", warehouse.ErrNotEmpty, engine)
	}
	b, err := bus.Connect(ctx, bus.Config{
		URL: cfg.NATSURL, DataDir: cfg.DataDir, CredsFile: cfg.NATSCredsFile,
		TLSCAFile: cfg.NATSTLSCAFile, TLSCertFile: cfg.NATSTLSCertFile, TLSKeyFile: cfg.NATSTLSKeyFile,
		Replicas: cfg.NATSReplicas, EventsMaxAge: cfg.EventsMaxAge, DuplicateWindow: cfg.DuplicateWindow,
		Name: "yolda-warehouse-rebuild",
	}, log)
	if err != nil {
		return fmt.Errorf("connect broker: %w", err)
	}
	defer b.Close()
	n, err := Replay(ctx, b, from, svc)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "replayed %d events into %s in %s\n", n, engine, time.Since(start).Round(time.Millisecond))
	return nil
}

// Replay loads every event of the EVENTS stream stored since from (zero:
// all) up to the last one stored when it starts, in batches, into svc.
// It reads with an ephemeral ordered consumer, so the live loader's cursor
// is not touched: events loaded by both are loaded once.
func Replay(ctx context.Context, b *bus.Bus, from time.Time, svc *warehouse.Service) (int, error) {
	last, err := b.StreamLastSeq(ctx, bus.StreamEvents)
	if err != nil {
		return 0, err
	}
	if last == 0 {
		return 0, nil
	}
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: []string{"events.>"}, DeliverPolicy: jetstream.DeliverAllPolicy}
	if !from.IsZero() {
		occ.DeliverPolicy, occ.OptStartTime = jetstream.DeliverByStartTimePolicy, &from
	}
	cons, err := b.JetStream().OrderedConsumer(ctx, bus.StreamEvents, occ)
	if err != nil {
		return 0, fmt.Errorf("replay consumer: %w", err)
	}
	total := 0
	for {
		batch, err := cons.Fetch(warehouseBatchMax, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return total, fmt.Errorf("replay fetch: %w", err)
		}
		var payloads [][]byte
		done := false
		for msg := range batch.Messages() {
			md, err := msg.Metadata()
			if err != nil {
				continue
			}
			if md.Sequence.Stream > last {
				done = true
				break
			}
			payloads = append(payloads, msg.Data())
			if md.Sequence.Stream == last || md.NumPending == 0 {
				done = true
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && ctx.Err() == nil {
			return total, fmt.Errorf("replay fetch: %w", err)
		}
		if len(payloads) > 0 {
			if _, err := svc.LoadBatch(ctx, payloads); err != nil {
				return total, err
			}
			total += len(payloads)
		}
		if done || len(payloads) == 0 {
			// An empty fetch means the stream has nothing more for us:
			// the tail up to last was removed (limits) while we read.
			if err := ctx.Err(); err != nil {
				return total, err
			}
			return total, nil
		}
	}
}

// assembleWithoutStore is assemble for a process whose roles need no
// operational database (warehouse only): tokens to authenticate report
// calls, the insurers file for the SLAs, the broker, the warehouse, and an
// HTTP server whose only routes are the reports and the probes.
func (p *process) assembleWithoutStore(ctx context.Context, need needs) error {
	secret, err := jwtSecret(p.cfg)
	if err != nil {
		return err
	}
	tokens, err := auth.NewTokens(secret, p.cfg.TokenTTL, nil)
	if err != nil {
		return err
	}
	file := ""
	if need&needInsurers != 0 {
		file = p.cfg.InsurersFile
	}
	if p.insurers, err = loadInsurers(file, p.env, p.registry, p.log, nil); err != nil {
		return err
	}
	p.onClose(func() { _ = p.insurers.clients.Close() })
	if need&needBroker != 0 {
		if err := p.connectBroker(ctx); err != nil {
			return err
		}
	}
	if err := p.openReports(ctx); err != nil {
		return err
	}
	proxies, _ := p.cfg.ProxyNets() // validated with the config
	deps := httpapi.Deps{
		Accounts: signatureOnly{}, Tokens: tokens, Insurers: p.insurerHealth(), Registry: p.registry, Logger: p.log,
		Options: httpapi.Options{
			MaxBodyBytes: p.cfg.MaxBodyBytes, MaxInFlight: p.cfg.MaxInFlight,
			BodyReadTimeout: p.cfg.BodyReadTimeout, MaxConnsPerIP: p.cfg.MaxConnsPerIP,
			UserRate: p.cfg.UserRate, UserBurst: p.cfg.UserBurst, IPRate: p.cfg.IPRate, IPBurst: p.cfg.IPBurst,
			TrustedProxies: proxies, Version: Version(),
		},
	}
	if p.warehouse != nil {
		deps.Reports, deps.Ready = p.warehouse, p.warehouse.Ping
	}
	p.api = httpapi.New(deps)
	return nil
}

// benchWarehouse runs `yolda bench warehouse`.
func benchWarehouse(ctx context.Context, args []string, env Env) error {
	fs := newFlagSet("bench warehouse", "Loads synthetic request facts into each warehouse engine and times every report, cold and warm;\nwith --operational-url, the same reports as plain SQL on the operational schema.\n", env)
	rows := fs.Int("rows", 1_000_000, "synthetic request facts")
	engines := fs.String("engines", "duckdb", "comma-separated: duckdb, postgres")
	file := fs.String("duckdb-file", "", "DuckDB file (default: a new file in a temporary directory)")
	pgURL := fs.String("postgres-url", "", "an empty PostgreSQL warehouse database or schema (search_path) for the postgres engine")
	opURL := fs.String("operational-url", "", "an empty PostgreSQL database or schema for the operational comparison (migrated here)")
	warm := fs.Int("warm", 5, "warm runs per report")
	lagRate := fs.Int("lag-rate", 0, "instead: publish live events at this rate per second through an embedded broker into the first engine, and measure the lag")
	lagFor := fs.Duration("lag-duration", 30*time.Second, "how long --lag-rate publishes")
	if err := parse(fs, args, env); err != nil {
		return err
	}
	var list []benchmark.Engine
	for e := range strings.SplitSeq(*engines, ",") {
		switch strings.TrimSpace(e) {
		case "duckdb":
			path := *file
			if path == "" {
				dir, err := os.MkdirTemp("", "yolda-bench-warehouse-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				path = filepath.Join(dir, "warehouse.duckdb")
			}
			list = append(list, benchmark.Engine{Name: "DuckDB", Open: func(ctx context.Context) (warehouse.Store, error) { return duckdb.Open(ctx, path) }})
		case "postgres":
			if *pgURL == "" {
				return fmt.Errorf("%w: --engines postgres needs --postgres-url", ErrUsage)
			}
			list = append(list, benchmark.Engine{Name: "PostgreSQL", Open: func(ctx context.Context) (warehouse.Store, error) { return postgres.Open(ctx, *pgURL) }})
		default:
			return fmt.Errorf("%w: unknown engine %q", ErrUsage, e)
		}
	}
	if *lagRate > 0 {
		return benchLag(ctx, list[0], *lagRate, *lagFor, env.Stdout)
	}
	if *opURL != "" {
		s, err := pgstore.Open(ctx, *opURL)
		if err != nil {
			return fmt.Errorf("operational schema: %w", err)
		}
		_ = s.Close()
	}
	return benchmark.Run(ctx, benchmark.Options{Rows: *rows, Engines: list, OperationalURL: *opURL, Warm: *warm, Out: env.Stdout})
}

// signatureOnly is how a process without the operational database (a
// warehouse-only process) authenticates: the token's signature and
// lifetime, not the account's current state, which lives in that
// database. A disabled account's or a revoked token keeps reading reports
// there until it expires (YOLDA_TOKEN_TTL); the api processes refuse it at
// once. Nobody logs in at a warehouse process.
type signatureOnly struct{}

func (signatureOnly) Login(context.Context, account.LoginAttempt) (account.User, error) {
	return account.User{}, account.ErrBadCredentials
}

func (signatureOnly) Resolve(_ context.Context, claimed identity.Principal) (identity.Principal, error) {
	return claimed, nil
}
