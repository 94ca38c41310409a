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

func migrateCmd(ctx context.Context, args []string, env Env) error {
	cfg, err := loadConfigWith(newFlagSet("migrate", "Brings the database schema up to date (every start does it too).\n", env), args, env)
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
	cfg, err := loadConfigWith(fs, args, env)
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
	fmt.Fprintf(env.Stdout, "created %s %s (id %s)\n", u.Role, u.Username, u.ID)
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
