package app

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/identity"
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

func usersAdd(ctx context.Context, args []string, env Env) error {
	fs := newFlagSet("users add", "Creates an account in the operational store.\n", env)
	var n account.NewUser
	var role, caps string
	fs.StringVar(&role, "role", "", "customer, driver, operator or admin")
	fs.StringVar(&n.Username, "username", "", "login name")
	fs.StringVar(&n.Password, "password", "", "password, 8 characters or more")
	fs.StringVar(&n.Name, "name", "", "full name")
	fs.StringVar(&n.Phone, "phone", "", "phone number")
	fs.StringVar(&n.VehiclePlate, "vehicle-plate", "", "drivers: the service vehicle's plate")
	fs.StringVar(&caps, "capabilities", "", "drivers: comma-separated services, e.g. tow,jump_start")
	fs.StringVar(&n.VehicleKind, "vehicle-kind", "", "drivers: tow_truck or service_van (default: tow_truck if they tow)")
	fs.StringVar(&n.Provider, "provider", "", "drivers: code of the provider they work for (yolda providers add)")
	cfg, err := loadConfig(fs, args, env, storeFlags)
	if err != nil {
		return err
	}
	n.Role = identity.Role(role)
	if caps != "" {
		n.Capabilities = strings.Split(caps, ",")
	}
	store, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.close()
	svc, err := account.NewService(store, account.DefaultHasher())
	if err != nil {
		return err
	}
	u, err := svc.Add(ctx, n)
	if err != nil {
		if errors.Is(err, account.ErrUsernameTaken) {
			return fmt.Errorf("username %q is taken", n.Username)
		}
		return err
	}
	if store.created {
		fmt.Fprintf(env.Stderr, "yolda: note: there was no database at %s; created a new one (set --data-dir or YOLDA_DATA_DIR to use another)\n", store.where)
	}
	fmt.Fprintf(env.Stdout, "created %s %s (id %s) in %s\n", u.Role, u.Username, u.ID, store.where)
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
