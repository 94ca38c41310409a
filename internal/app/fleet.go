package app

import (
	"context"

	"fmt"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/yolda/yolda/internal/config"
	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/geo"
	"github.com/yolda/yolda/internal/geo/memory"
	georedis "github.com/yolda/yolda/internal/geo/redis"
)

// openPositionIndex picks the position index by URL: in-process when no
// Redis is configured (one process sees its own drivers only), Redis
// otherwise (every process shares one index). close releases it.
func openPositionIndex(ctx context.Context, cfg config.Config) (idx fleet.Index, engine string, close func(), err error) {
	if cfg.RedisURL == "" {
		return memory.New(memory.Options{}), "memory", func() {}, nil
	}
	opts, err := goredis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, "", nil, fmt.Errorf("redis-url: %w", err)
	}
	rdb := goredis.NewClient(opts)
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, "", nil, fmt.Errorf("connect redis: %w", err)
	}
	return georedis.New(rdb, georedis.Options{}), "redis", func() { _ = rdb.Close() }, nil
}

// openFleet opens the position index and builds the fleet service on it.
func (p *process) openFleet(ctx context.Context) error {
	idx, engine, closeIdx, err := openPositionIndex(ctx, p.cfg)
	if err != nil {
		return err
	}
	p.onClose(closeIdx)
	p.positions = idx
	p.fleet = newFleet(p.cfg, p.store, idx)
	p.log.Info("position index ready", "engine", engine)
	return nil
}

// newFleet builds the fleet service over the store and the index.
func newFleet(cfg config.Config, store fleet.Store, index fleet.Index) *fleet.Service {
	return fleet.NewService(store, index, fleet.Options{
		StaleAfter: cfg.DriverStaleAfter,
		ETA:        etaOf(cfg),
	})
}

// etaOf is the arrival estimate the configuration describes.
func etaOf(cfg config.Config) geo.Estimator {
	return geo.RoadETA{Factor: cfg.ETARoadFactor, SpeedKmh: cfg.ETASpeedKmh}
}

// providersCmd is `yolda providers add|list`.
func providersCmd(ctx context.Context, args []string, env Env) error {
	if len(args) == 0 || (args[0] != "add" && args[0] != "list") {
		fmt.Fprintln(env.Stderr, "usage: yolda providers add --code CODE --name NAME | yolda providers list")
		return ErrUsage
	}
	about := "Lists the providers (the companies drivers work for).\n"
	if args[0] == "add" {
		about = "Adds a provider: a company drivers work for (yolda users add --provider CODE).\n"
	}
	fs := newFlagSet("providers "+args[0], about, env)
	var code, name string
	if args[0] == "add" {
		fs.StringVar(&code, "code", "", "short code drivers are registered with, e.g. acme-tow")
		fs.StringVar(&name, "name", "", "the company's name")
	}
	cfg, err := loadConfig(fs, args[1:], env, storeFlags)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.close()
	svc := fleet.NewService(store, memory.New(memory.Options{}), fleet.Options{})
	if args[0] == "list" {
		ps, err := svc.Providers(ctx)
		if err != nil {
			return err
		}
		for _, p := range ps {
			fmt.Fprintf(env.Stdout, "%s\t%s\n", p.Code, p.Name)
		}
		return nil
	}
	p, err := svc.AddProvider(ctx, strings.TrimSpace(code), name)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "created provider %s (%s) in %s\n", p.Code, p.Name, store.where)
	return nil
}
