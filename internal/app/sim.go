package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/sim"
)

// simHasher hashes the passwords of simulated accounts: cheap on purpose,
// so that ten thousand logins do not take minutes. Those accounts are for
// simulations and demos only.
var simHasher = &account.Hasher{Memory: 64, Time: 1, Threads: 1}

// simCmd is `yolda sim`: the fleet simulator against a running Yolda.
func simCmd(ctx context.Context, args []string, env Env) error {
	fs := newFlagSet("sim", "Simulates drivers and customers against a running Yolda over HTTP and the WebSocket, and reports\n"+
		"what they saw. --setup first creates the accounts it logs in as (in the store named by --data-dir or\n"+
		"--database-url, beside a running server); they share one password and are for simulations only.\n", env)
	options, asJSON := simFlags(fs)
	setup := fs.Bool("setup", false, "create the simulated accounts in the store first (those that exist are kept)")
	setupOnly := fs.Bool("setup-only", false, "create the simulated accounts and stop")
	cfg, err := loadConfig(fs, args, env, storeFlags)
	if err != nil {
		return err
	}
	o := options()
	if err := o.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if *setup || *setupOnly {
		store, err := openStore(ctx, cfg)
		if err != nil {
			return err
		}
		n, err := setupSimAccounts(ctx, store, o)
		store.close()
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stderr, "yolda sim: %d accounts created in %s\n", n, store.where)
		if *setupOnly {
			return nil
		}
	}
	o.Progress = env.Stderr
	rep, err := sim.Run(ctx, o)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	if *asJSON {
		return rep.JSON(env.Stdout)
	}
	rep.Print(env.Stdout)
	return nil
}

// simFlags declares the simulator's options on fs; options returns them
// once fs is parsed.
func simFlags(fs *flag.FlagSet) (options func() sim.Options, asJSON *bool) {
	o := &sim.Options{}
	fs.StringVar(&o.BaseURL, "url", "http://127.0.0.1:8080", "the Yolda API to drive")
	fs.IntVar(&o.Drivers, "drivers", 50, "simulated drivers")
	fs.IntVar(&o.Customers, "customers", 50, "simulated customers (each has at most one request open)")
	fs.IntVar(&o.Operators, "operators", 0, "simulated operators' panels (they get every driver's positions)")
	fs.DurationVar(&o.Duration, "duration", time.Minute, "how long customers ask for help")
	fs.DurationVar(&o.Drain, "drain", time.Minute, "how long, after that, open requests may take to end")
	profile := fs.String("profile", "steady", "request rate profile: steady, or bayram (a ramp to a peak at mid-run and back)")
	fs.Float64Var(&o.Rate, "rate", 1, "requests per second (at the peak, for bayram)")
	fs.Float64Var(&o.AcceptProbability, "accept-probability", 0.9, "chance that a driver takes an offer")
	fs.DurationVar(&o.AcceptDelay, "accept-delay", 2*time.Second, "how long a driver looks at an offer (on average)")
	fs.DurationVar(&o.PositionEvery, "position-every", time.Second, "how often a driver reports its position")
	fs.Float64Var(&o.Speedup, "speedup", 10, "how much faster than real time drivers drive and work")
	fs.DurationVar(&o.ServiceTime, "service-time", 10*time.Minute, "how long a job takes on site, in simulated time")
	fs.Float64Var(&o.OfflineShare, "offline-share", 0.1, "share of free drivers taking a break each simulated hour")
	insurers := fs.String("insurers", "anadolu", "comma-separated insurer codes customers' policies name")
	localAddrs := fs.String("local-addrs", "", "spread client sockets over these local addresses: a list, or a range 127.0.0.2-127.0.0.9")
	fs.Float64Var(&o.ConnectRate, "connect-rate", 500, "new WebSocket connections per second at most")
	fs.StringVar(&o.Prefix, "prefix", "sim-", "username prefix of the simulated accounts")
	fs.StringVar(&o.Password, "password", "sim-password", "password of the simulated accounts")
	fs.Uint64Var(&o.Seed, "seed", 0, "random seed (0: random)")
	fs.BoolVar(&o.ProgressLines, "progress-lines", false, "one progress line per interval instead of one line rewritten")
	asJSON = fs.Bool("json", false, "write the final report as JSON")
	return func() sim.Options {
		out := *o
		out.Profile = sim.Profile(*profile)
		out.Insurers = splitList(*insurers)
		out.LocalAddrs = expandAddrs(*localAddrs)
		return out
	}, asJSON
}

func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// expandAddrs reads a list of addresses, each possibly a range of IPv4
// addresses that differ in the last byte (127.0.0.2-127.0.0.9).
func expandAddrs(s string) []string {
	var out []string
	for _, p := range splitList(s) {
		from, to, isRange := strings.Cut(p, "-")
		a, b := net.ParseIP(from).To4(), net.ParseIP(to).To4()
		if !isRange || a == nil || b == nil || a[0] != b[0] || a[1] != b[1] || a[2] != b[2] || a[3] > b[3] {
			out = append(out, p)
			continue
		}
		for i := int(a[3]); i <= int(b[3]); i++ {
			out = append(out, net.IPv4(a[0], a[1], a[2], byte(i)).String())
		}
	}
	return out
}

// setupSimAccounts creates the accounts a run logs in as, keeping those
// that exist, and returns how many it created.
func setupSimAccounts(ctx context.Context, store *openedStore, o sim.Options) (int, error) {
	o = o.WithDefaults()
	svc, err := account.NewService(store, simHasher)
	if err != nil {
		return 0, err
	}
	created := 0
	for i, a := range sim.AccountNames(o) {
		n := account.NewUser{Username: a.Username, Password: o.Password, Role: identity.Role(a.Role),
			Name: "Sim " + a.Username, Phone: fmt.Sprintf("+90555%07d", i)}
		if n.Role == identity.Driver {
			n.VehiclePlate = fmt.Sprintf("34SIM%03d", i%1000)
			n.Capabilities = []string{"tow", "jump_start", "flat_tire", "fuel_delivery", "lockout", "winch"}
		}
		switch _, err := svc.Add(ctx, n); {
		case err == nil:
			created++
		case errors.Is(err, account.ErrUsernameTaken):
		default:
			return created, fmt.Errorf("create %s: %w", a.Username, err)
		}
	}
	return created, nil
}
