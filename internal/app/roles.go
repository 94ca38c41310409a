package app

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// role is one entry of `yolda serve --roles`: a name, one line for the
// help, what it needs from the process, and the services it runs. Adding a
// role is one entry in roleTable plus the constructors of its services.
type role struct {
	name  string
	about string
	needs needs
	// services builds the role's services on an assembled process. It
	// runs before any service starts.
	services func(p *process) ([]service, error)
}

// needs is what a role needs the process to open besides the operational
// store and intake, which every process has (probes check the store).
type needs uint8

const (
	// needBroker: NATS JetStream (embedded in the data dir unless
	// YOLDA_NATS_URL is set), its streams declared.
	needBroker needs = 1 << iota
	// needInsurers: the insurers file read and a client per insurer. Intake
	// takes its rules from it (which codes exist, dispatch before cover).
	needInsurers
	// needHTTP: the listener on YOLDA_HTTP_ADDR (the API, the WebSocket),
	// one for the process whichever roles serve on it.
	needHTTP
)

// roleTable is every role this build can run, in the order `all` starts
// them. The warehouse is still to come (docs/architecture.md).
var roleTable = []role{
	{
		name:     "api",
		about:    "the HTTP API: requests, accounts, insurers' state, dead letters; prunes the audit trail (with an external broker, positions it takes are broadcast to the gateways)",
		needs:    needHTTP | needInsurers,
		services: (*process).apiServices,
	},
	{
		name:     "relay",
		about:    "outbox rows -> broker; runs the sweeper (re-commits jobs of stuck requests)",
		needs:    needBroker | needInsurers,
		services: (*process).relayServices,
	},
	{
		name:     "notify",
		about:    "turns request events into customer notifications",
		needs:    needBroker,
		services: (*process).notifyServices,
	},
	{
		name:     "dispatch",
		about:    "offers dispatching requests to drivers, round after round; expires unanswered offers",
		needs:    needBroker,
		services: (*process).dispatchServices,
	},
	{
		name:     "realtime",
		about:    "the WebSocket gateway (GET /v1/ws): status changes, driver positions and offers as they happen",
		needs:    needHTTP | needBroker,
		services: (*process).realtimeServices,
	},
	{
		name:     "insurance",
		about:    "checks policies with the insurers (the only role that calls them)",
		needs:    needBroker | needInsurers,
		services: (*process).insuranceServices,
	},
}

func roleNames() []string { return roleNamesOf(roleTable) }

func roleNamesOf(roles []role) []string {
	names := make([]string, len(roles))
	for i, r := range roles {
		names[i] = r.name
	}
	return names
}

// parseRoles reads --roles: a comma-separated list, or all (also empty).
// The roles come back in table order, each once.
func parseRoles(s string) ([]role, error) {
	if s == "" || s == "all" {
		return roleTable, nil
	}
	var asked []string
	for r := range strings.SplitSeq(s, ",") {
		r = strings.TrimSpace(r)
		if !slices.Contains(roleNames(), r) {
			return nil, fmt.Errorf("%w: unknown role %q (this build runs: %s)", ErrUsage, r, strings.Join(roleNames(), ", "))
		}
		asked = append(asked, r)
	}
	var out []role
	for _, r := range roleTable {
		if slices.Contains(asked, r.name) {
			out = append(out, r)
		}
	}
	return out, nil
}

// needed is the union of what roles need.
func needed(roles []role) needs {
	var n needs
	for _, r := range roles {
		n |= r.needs
	}
	return n
}

// printRoles writes the role table for `yolda serve --help`.
func printRoles(w io.Writer) {
	fmt.Fprintln(w, "Roles (--roles a,b or all; default all):")
	for _, r := range roleTable {
		fmt.Fprintf(w, "  %-10s %s\n", r.name, r.about)
	}
	fmt.Fprintln(w, "Whatever its roles, a process answers /metrics, /healthz and /readyz on --ops-addr.")
}
