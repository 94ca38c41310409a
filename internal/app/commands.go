package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/yolda/yolda/internal/insurance/mockinsurer"
	"github.com/yolda/yolda/internal/loadgen"
)

func migrateCmd(ctx context.Context, args []string, env Env) error {
	cfg, err := loadConfig("migrate", args, env)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, cfg) // opening migrates
	if err != nil {
		return err
	}
	defer store.close()
	fmt.Fprintf(env.Stdout, "schema up to date (%s)\n", store.engine)
	return nil
}

func benchIntake(ctx context.Context, args []string, env Env) error {
	fs := newFlagSet("bench intake", env)
	opts := loadgen.Flags(fs)
	if err := parse(fs, args); err != nil {
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
	fs := newFlagSet("mock-insurer", env)
	addr, behaviour := mockinsurer.Flags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	return mockinsurer.Run(ctx, *addr, *behaviour, newLogger("info", "json", env.Stderr))
}
