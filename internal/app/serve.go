package app

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/yolda/yolda/internal/auth"
	"github.com/yolda/yolda/internal/config"
)

// loadConfig reads flags over the environment over the defaults, and
// validates the result. flags are the settings declared on fs as flags
// (nil: every setting); the environment sets any of them.
func loadConfig(fs *flag.FlagSet, args []string, env Env, flags []string) (config.Config, error) {
	cfg := config.Defaults()
	var err error
	if flags == nil {
		err = cfg.Register(fs, env.Getenv)
	} else {
		err = cfg.RegisterOnly(fs, env.Getenv, flags...)
	}
	if err != nil {
		return cfg, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if err := parse(fs, args, env); err != nil {
		return cfg, err
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	return cfg, nil
}

// serve runs the roles of roleTable that --roles names. It assembles one
// process (only the adapters its roles need), builds every role's
// services, runs them under one errgroup until ctx ends or one fails, and
// closes what it opened.
func serve(ctx context.Context, args []string, env Env) error {
	cfg, err := loadConfig(newFlagSet("serve", serveAbout(), env), args, env, nil)
	if err != nil {
		return err
	}
	roles, err := parseRoles(cfg.Roles)
	if err != nil {
		return err
	}
	log := newLogger(cfg.LogLevel, cfg.LogFormat, env.Stderr)
	log.Info("starting yolda", append([]any{"version", Version()}, cfg.Masked()...)...)
	for _, w := range cfg.Warnings() {
		log.Warn("configuration: " + w)
	}
	warnIfDataDirOpen(cfg.DataDir, log)

	p := &process{cfg: cfg, env: env, log: log, roles: roles}
	defer p.close()
	if err := p.assemble(ctx); err != nil {
		return err
	}
	services, err := p.services()
	if err != nil {
		return err
	}
	log.Info("roles running", "roles", strings.Join(roleNamesOf(roles), ","),
		"services", strings.Join(serviceNames(services), ","))
	err = runServices(ctx, services)
	log.Info("stopped", "err", err)
	return err
}

// serveAbout is the text above serve's flags in --help.
func serveAbout() string {
	var b strings.Builder
	b.WriteString("Runs the platform: the roles --roles names, in one process.\n\n")
	printRoles(&b)
	b.WriteString("\nEvery flag can also be set through its environment variable, shown in\nparentheses; flags win over the environment.\n")
	return b.String()
}

func jwtSecret(cfg config.Config) ([]byte, error) {
	if cfg.JWTSecret != "" {
		return []byte(cfg.JWTSecret), nil
	}
	return auth.LoadOrCreateSecret(cfg.DataDir)
}
