package app

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/yolda/yolda/internal/auth"
	"github.com/yolda/yolda/internal/config"
)

// loadConfigWith reads flags (declared on fs with the settings) over the
// environment over the defaults, and validates the result.
func loadConfigWith(fs *flag.FlagSet, args []string, env Env) (config.Config, error) {
	cfg := config.Defaults()
	if err := cfg.Register(fs, env.Getenv); err != nil {
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
	cfg, err := loadConfigWith(newFlagSet("serve", serveAbout(), env), args, env)
	if err != nil {
		return err
	}
	roles, err := parseRoles(cfg.Roles)
	if err != nil {
		return err
	}
	log := newLogger(cfg.LogLevel, cfg.LogFormat, env.Stderr)
	log.Info("starting yolda", append([]any{"version", Version()}, cfg.Masked()...)...)

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
