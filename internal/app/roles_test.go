package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/yolda/yolda/internal/config"
)

func TestParseRoles(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", roleNames()},
		{"all", roleNames()},
		{"relay,api", []string{"api", "relay"}}, // table order
		{"notify, notify ,insurance", []string{"notify", "insurance"}},
	} {
		got, err := parseRoles(tc.in)
		if err != nil || !slices.Equal(roleNamesOf(got), tc.want) {
			t.Errorf("parseRoles(%q) = %v, %v; want %v", tc.in, roleNamesOf(got), err, tc.want)
		}
	}
	if _, err := parseRoles("api,dispach"); !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), `"dispach"`) {
		t.Errorf("unknown role: %v", err)
	}
}

// testProcess is a process on SQLite and the embedded broker in a temp dir.
func testProcess(t *testing.T, roles string, edit func(*config.Config)) *process {
	t.Helper()
	cfg := config.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.OpsAddr = "127.0.0.1:0"
	if edit != nil {
		edit(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	rs, err := parseRoles(roles)
	if err != nil {
		t.Fatal(err)
	}
	p := &process{cfg: cfg, roles: rs, log: slog.New(slog.DiscardHandler),
		env: Env{Getenv: func(string) string { return "" }, Stdout: io.Discard, Stderr: io.Discard}}
	t.Cleanup(p.close)
	return p
}

// TestRoleServices: each role runs the services it declares, the sweeper
// is the relay's and visible, only the api and realtime roles listen on
// the API address (one listener when both run), the api role opens no
// embedded broker (none of its broadcasts could reach a gateway), and every
// process serves the operations listener.
func TestRoleServices(t *testing.T) {
	for _, tc := range []struct {
		roles  string
		want   []string
		broker bool
	}{
		{"api", []string{"http", "audit-retention", "ops"}, false},
		{"realtime", []string{"http", "realtime-gateway", "realtime-positions", "realtime-events", "ops"}, true},
		{"api,realtime", []string{"http", "audit-retention", "realtime-gateway", "realtime-positions", "realtime-events", "ops"}, true},
		{"relay", []string{"relay", "sweeper", "ops"}, true},
		{"notify", []string{"notify-consumer", "ops"}, true},
		{"dispatch", []string{"dispatch-consumer", "offer-expirer", "index-reconciler", "ops"}, true},
		{"insurance", []string{"insurer-gauges", "insurer-health-publisher", "ops"}, true},
		{"warehouse", []string{"http", "warehouse-loader", "warehouse-lag", "ops"}, true},
		{"all", []string{"http", "audit-retention", "relay", "sweeper", "notify-consumer", "dispatch-consumer", "offer-expirer", "index-reconciler",
			"realtime-gateway", "realtime-positions", "realtime-events", "insurer-gauges", "insurer-health-publisher", "warehouse-loader", "warehouse-lag", "ops"}, true},
	} {
		t.Run(tc.roles, func(t *testing.T) {
			p := testProcess(t, tc.roles, nil)
			if err := p.assemble(t.Context()); err != nil {
				t.Fatal(err)
			}
			if (p.broker != nil) != tc.broker {
				t.Errorf("broker opened: %v, want %v", p.broker != nil, tc.broker)
			}
			ss, err := p.services()
			if err != nil {
				t.Fatal(err)
			}
			if got := serviceNames(ss); !slices.Equal(got, tc.want) {
				t.Errorf("services = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestCloseAfterPartialStart: when assembly fails half-way (the broker
// cannot be reached), what was opened is closed, and closing again is
// harmless.
func TestCloseAfterPartialStart(t *testing.T) {
	p := testProcess(t, "notify", func(c *config.Config) { c.NATSURL = "nats://127.0.0.1:1" })
	err := p.assemble(t.Context())
	if err == nil || !strings.Contains(err.Error(), "connect broker") {
		t.Fatalf("assemble: %v, want a broker connection error", err)
	}
	if p.store == nil || p.store.Ping(t.Context()) != nil {
		t.Fatal("the store should be open before the broker fails")
	}
	p.close()
	if p.store.Ping(context.Background()) == nil {
		t.Error("the store still answers after close")
	}
	p.close() // idempotent
}

func TestServeHelpListsRoles(t *testing.T) {
	var out, errOut strings.Builder
	env := Env{Getenv: func(string) string { return "" }, Stdout: &out, Stderr: &errOut}
	if err := Run(t.Context(), []string{"serve", "--help"}, env); err != nil {
		t.Fatalf("serve --help: %v", err)
	}
	for _, r := range roleTable {
		if !strings.Contains(out.String(), "  "+r.name+" ") || !strings.Contains(out.String(), r.about) {
			t.Errorf("serve --help does not list role %s:\n%s", r.name, out.String())
		}
	}
	if errOut.Len() != 0 {
		t.Errorf("help went to stderr: %s", errOut.String())
	}
}
