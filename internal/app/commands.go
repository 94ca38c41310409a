package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/yolda/yolda/internal/insurance/mockinsurer"
	"github.com/yolda/yolda/internal/loadgen"
)

// storeFlags are the settings that commands working on the operational
// store (migrate, users add) take as flags; the others come from the
// environment only. Neither takes the data directory's lock: they work
// beside a running server.
var storeFlags = []string{"data-dir", "database-url"}

func migrateCmd(ctx context.Context, args []string, env Env) error {
	fs := newFlagSet("migrate", "Brings the database schema up to date (every start does it too).\n", env)
	cfg, err := loadConfig(fs, args, env, storeFlags)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, cfg) // opening migrates
	if err != nil {
		return err
	}
	defer store.close()
	fmt.Fprintf(env.Stdout, "schema up to date (%s, %s)\n", store.engine, store.where)
	return nil
}

func benchIntake(ctx context.Context, args []string, env Env) error {
	fs := newFlagSet("bench intake", "Load-tests POST /v1/requests on a running server and prints throughput and latency.\n", env)
	opts := loadgen.Flags(fs)
	if err := parse(fs, args, env); err != nil {
		return err
	}
	res, err := loadgen.Run(ctx, *opts)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	res.Print(env.Stdout)
	return nil
}

func mockInsurer(ctx context.Context, args []string, env Env) error {
	fs := newFlagSet("mock-insurer", "Serves a fake insurer API for demos and tests; POST /control changes its behaviour.\n", env)
	addr, behaviour := mockinsurer.Flags(fs)
	if err := parse(fs, args, env); err != nil {
		return err
	}
	return mockinsurer.Run(ctx, *addr, *behaviour, newLogger("info", "json", env.Stderr))
}
