package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/dispatch"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/outbox"
)

// BenchDecisions measures the store's side of one dispatch pass over a
// batch of 64 requests: Snapshots, then CommitDecisions of an offer for
// half of them and unfulfilled for the other half, as the worker's passes
// come (a request is offered, its offer expires, it is given up). The
// offers are expired between iterations, off the clock, so the drivers
// are free again. It reports ns per decision, and the process's CPU time
// per decision (cpu-ns/decision: the wall time is mostly the commit's
// fsync).
func BenchDecisions(b *testing.B, s DispatchStore) {
	const batch = 64
	ctx := context.Background()
	f := newDispatchFixture(b, s, batch/2)
	system := identity.Principal{UserID: "system", Role: identity.Operator}
	var cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		reqs := f.dispatching(b, batch)
		ids := make([]string, len(reqs))
		for i, r := range reqs {
			ids[i] = r.ID
		}
		b.StartTimer()
		start := cpuTime()
		snaps, err := s.Snapshots(ctx, ids)
		if err != nil || len(snaps) != batch {
			b.Fatalf("Snapshots: %d, %v", len(snaps), err)
		}
		now := time.Now().UTC().Truncate(time.Microsecond)
		ds := make([]*dispatch.Decision, 0, batch)
		for i, sn := range snaps {
			if i%2 == 0 {
				ds = append(ds, offerDecision(sn.Request, len(sn.Offers), f.drivers[i/2].ID, now, ""))
				continue
			}
			r := sn.Request
			r.Advance(now)
			change, err := intake.Transition(&r, system, intake.StatusUnfulfilled, "benchmark", now)
			if err != nil {
				b.Fatal(err)
			}
			change.Receipt = &outbox.Receipt{Consumer: dispatch.Consumer, MessageID: "job-" + r.ID}
			ds = append(ds, &dispatch.Decision{RequestID: r.ID, Version: sn.Request.Version, Offers: len(sn.Offers), Request: &r, Change: change})
		}
		if err := s.CommitDecisions(ctx, ds); err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime() - start
		b.StopTimer()
		for _, d := range ds {
			if d.Err != nil {
				b.Fatalf("decision for %s: %v", d.RequestID, d.Err)
			}
		}
		if _, err := s.ExpireOffers(ctx, now.Add(time.Hour), batch, expireFn(now)); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/decision")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*batch), "cpu-ns/decision")
}
