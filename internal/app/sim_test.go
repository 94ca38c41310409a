package app

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/config"
	"github.com/yolda/yolda/internal/sim"
)

// TestSimAgainstAServer: a short simulation against a whole Yolda (every
// role) sees requests offered, assigned and completed, positions fanned
// out to their customers, and no errors.
func TestSimAgainstAServer(t *testing.T) {
	n := startNode(t, "all", func(c *config.Config) { c.OfferTimeout = 5 * time.Second })
	o := sim.Options{
		BaseURL: n.url, Drivers: 12, Customers: 6, Operators: 1, Rate: 1, Duration: 6 * time.Second, Drain: 90 * time.Second,
		AcceptProbability: 1, AcceptDelay: 100 * time.Millisecond, Speedup: 300, ServiceTime: time.Minute, Seed: 7,
	}
	if _, err := setupSimAccounts(t.Context(), n.p.store, o); err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	o.Progress, o.ProgressLines = &progress, true
	rep, err := sim.Run(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	rep.Print(&out)
	t.Logf("report:\n%s", out.String())
	if rep.Created == 0 || rep.Assigned == 0 || rep.Completed == 0 || rep.TimeToOffer.Count == 0 || rep.Fanout.Count == 0 || rep.FanoutOperators.Count == 0 {
		t.Errorf("the simulation saw too little: %+v", rep)
	}
	if rep.Completed+rep.Unfulfilled+rep.Rejected+rep.Cancelled+int64(rep.StillOpen) != rep.Created {
		t.Errorf("requests do not add up: %+v", rep)
	}
	if rep.Errors != 0 {
		t.Errorf("errors: %v", rep.ErrorsByKind)
	}
	if rep.ConnectionsPeak != 19 {
		t.Errorf("peak connections %d, want 19", rep.ConnectionsPeak)
	}
	if !strings.Contains(progress.String(), "conns 19") {
		t.Errorf("progress lines:\n%s", progress.String())
	}
}
