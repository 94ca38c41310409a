package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/config"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/insurance/mockinsurer"
	"github.com/yolda/yolda/internal/sim"
)

// demoCmd is `yolda demo`: every role in one process on embedded stores
// in a fresh directory, two mock insurers (one healthy, one flaky),
// accounts to log in with, and the simulator at a gentle pace, until
// interrupted; then the simulator's report.
func demoCmd(ctx context.Context, args []string, env Env) error {
	fs := newFlagSet("demo", "Runs all of Yolda in one process with simulated drivers and customers, until Ctrl-C.\n"+
		"Everything lives in a fresh temporary directory (unless --data-dir), removed at the end.\n", env)
	httpAddr := fs.String("http-addr", "127.0.0.1:8080", "where the API, the WebSocket and the panel listen")
	opsAddr := fs.String("ops-addr", "127.0.0.1:8081", "operations listener: /metrics, /healthz, /readyz")
	dataDir := fs.String("data-dir", "", "keep the demo's files here instead of a temporary directory")
	drivers := fs.Int("drivers", 25, "simulated drivers")
	customers := fs.Int("customers", 40, "simulated customers")
	rate := fs.Float64("rate", 0.25, "requests per second")
	duration := fs.Duration("duration", time.Hour, "how long the simulated customers ask for help")
	if err := parse(fs, args, env); err != nil {
		return err
	}
	dir := *dataDir
	if dir == "" {
		d, err := os.MkdirTemp("", "yolda-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	log := newLogger("info", "json", io.Discard)
	logFile, err := os.Create(filepath.Join(dir, "yolda.log"))
	if err == nil {
		defer logFile.Close()
		log = newLogger("info", "json", logFile)
	}

	ctx, stop := context.WithCancel(ctx)
	defer stop()
	insurers, err := startDemoInsurers(ctx, dir, log)
	if err != nil {
		return err
	}

	cfg := config.Defaults()
	cfg.HTTPAddr, cfg.OpsAddr, cfg.DataDir, cfg.InsurersFile = *httpAddr, *opsAddr, dir, insurers
	// One machine plays a whole city: its many clients share one address.
	cfg.IPRate, cfg.MaxConnsPerIP = 0, 0
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	roles, _ := parseRoles("all")
	p := &process{cfg: cfg, env: env, log: log, roles: roles}
	defer p.close()
	if err := p.assemble(ctx); err != nil {
		return err
	}
	services, err := p.services()
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- runServices(ctx, services) }()
	select {
	case <-p.gateway.Ready():
	case err := <-served:
		return err
	}
	if err := waitListening(ctx, "http://"+cfg.HTTPAddr+"/healthz"); err != nil {
		return err
	}

	o := sim.Options{
		BaseURL: "http://" + cfg.HTTPAddr, Drivers: *drivers, Customers: *customers, Rate: *rate, Duration: *duration,
		Drain: 30 * time.Second, Insurers: []string{"anadolu", "flaky"}, ServiceTime: 4 * time.Minute,
		Progress: env.Stderr, ProgressEvery: 5 * time.Second, ProgressLines: true,
	}
	if err := seedDemoAccounts(ctx, p.store, o); err != nil {
		return err
	}
	printWhereToLook(env.Stdout, demoLinks(cfg, dir))

	rep, err := sim.Run(ctx, o)
	stop()
	serveErr := <-served
	fmt.Fprintln(env.Stdout)
	rep.Print(env.Stdout)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return serveErr
}

// startDemoInsurers serves the two mock insurers on free ports until ctx
// ends and writes the insurers file that names them; it returns its path.
func startDemoInsurers(ctx context.Context, dir string, log *slog.Logger) (string, error) {
	type mock struct {
		code, name string
		b          mockinsurer.Behaviour
		early      bool
	}
	mocks := []mock{
		{"anadolu", "Anadolu Sigorta (mock, healthy)", mockinsurer.Behaviour{Mode: mockinsurer.ModeOK, Latency: 50 * time.Millisecond}, false},
		// Flaky: a third of its answers fail, so its breaker and retries
		// show in /v1/insurers; dispatch does not wait for it.
		{"flaky", "Flaky Sigorta (mock, fails a third of calls)", mockinsurer.Behaviour{Mode: mockinsurer.ModeOK, Latency: 300 * time.Millisecond,
			Jitter: 200 * time.Millisecond, ErrorRate: 0.33}, true},
	}
	var yaml strings.Builder
	yaml.WriteString("insurers:\n")
	for _, m := range mocks {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", fmt.Errorf("mock insurer: %w", err)
		}
		h := mockinsurer.New(m.b, mockinsurer.WithLogger(log))
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		go func() {
			<-ctx.Done()
			h.Close()
			_ = srv.Close()
		}()
		fmt.Fprintf(&yaml, "  - code: %s\n    name: %s\n    base_url: http://%s\n    timeout: 2s\n    verify_before_dispatch: %v\n",
			m.code, m.name, ln.Addr(), !m.early)
	}
	path := filepath.Join(dir, "insurers.yaml")
	if err := os.WriteFile(path, []byte(yaml.String()), 0o600); err != nil {
		return "", err
	}
	return path, nil
}

// demoAccounts are the accounts printed for people to log in with.
var demoAccounts = []struct {
	role     identity.Role
	username string
}{
	{identity.Operator, "ops"}, {identity.Customer, "ayse"}, {identity.Driver, "ali"},
}

// seedDemoAccounts creates the people's accounts (password: username +
// "-password") and the simulator's.
func seedDemoAccounts(ctx context.Context, store *openedStore, o sim.Options) error {
	svc, err := account.NewService(store, simHasher)
	if err != nil {
		return err
	}
	for _, a := range demoAccounts {
		n := account.NewUser{Username: a.username, Password: a.username + "-password", Role: a.role, Name: "Demo " + a.username, Phone: "+905551112233"}
		if a.role == identity.Driver {
			n.VehiclePlate, n.Capabilities = "34DEMO01", []string{"tow", "jump_start", "flat_tire"}
		}
		if _, err := svc.Add(ctx, n); err != nil && !errors.Is(err, account.ErrUsernameTaken) {
			return fmt.Errorf("demo account %s: %w", a.username, err)
		}
	}
	_, err = setupSimAccounts(ctx, store, o)
	return err
}

// link is one "where to look" line of the demo.
type link struct{ what, where string }

// demoLinks are the demo's "where to look" lines. Whatever serves
// something worth seeing adds its line here (the web panel: its URL).
func demoLinks(cfg config.Config, dir string) []link {
	api, ops := "http://"+cfg.HTTPAddr, "http://"+cfg.OpsAddr
	return []link{
		{"API", api + "/openapi.json (every route)"},
		{"WebSocket", "ws://" + cfg.HTTPAddr + "/v1/ws (docs/realtime.md)"},
		{"fleet", `curl -s ` + api + `/v1/drivers -H "Authorization: Bearer $(curl -s ` + api +
			`/v1/auth/login --json '{"username":"ops","password":"ops-password"}' | jq -r .access_token)" | jq '.items[:3]'`},
		{"insurers", api + "/v1/insurers (as ops: the flaky one's breaker and errors)"},
		{"metrics", ops + "/metrics (yolda_ws_*, yolda_dispatch_*, ...)"},
		{"logs", filepath.Join(dir, "yolda.log")},
	}
}

func printWhereToLook(w io.Writer, links []link) {
	fmt.Fprintln(w, "Yolda demo: every role in one process, embedded stores, two mock insurers (anadolu: healthy, flaky: fails a third of calls),")
	fmt.Fprintln(w, "simulated drivers moving around Istanbul and customers asking for help. Ctrl-C stops it and prints the simulator's report.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Where to look:")
	for _, l := range links {
		fmt.Fprintf(w, "  %-10s %s\n", l.what, l.where)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Accounts (demo only: throwaway passwords, cheaply hashed; never use them on a real server):")
	for _, a := range demoAccounts {
		fmt.Fprintf(w, "  %-9s %s / %s-password\n", a.role, a.username, a.username)
	}
	fmt.Fprintln(w)
}

// waitListening polls url until it answers (the listener is up).
func waitListening(ctx context.Context, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the server did not answer at %s: %w", url, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
