package fleet

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// reconcilePage is how many drivers one look of Reconcile reads.
const reconcilePage = 500

// Reconcile puts right the index's state of every driver it knows whose
// state disagrees with the store's and is not newer than it, and returns
// how many it put right.
//
// The index learns of a job's start and end from the Refresh that follows
// the commit; a process that dies in between, or an index that fails that
// one write, leaves it wrong until something else refreshes the driver. A
// driver wrongly busy there is never a candidate, so never offered a job
// again; one wrongly free or online costs a candidate slot (the database's
// checks refuse the offer). This is the something else.
func (s *Service) Reconcile(ctx context.Context) (int, error) {
	fixed := 0
	for after := ""; ; {
		drivers, err := s.store.Drivers(ctx, DriverFilter{After: after, Limit: reconcilePage})
		if err != nil {
			return fixed, fmt.Errorf("reconcile: list drivers: %w", err)
		}
		if len(drivers) == 0 {
			return fixed, nil
		}
		after = drivers[len(drivers)-1].ID
		ids := make([]string, len(drivers))
		for i, d := range drivers {
			ids[i] = d.ID
		}
		entries, err := s.index.Lookup(ctx, ids)
		if err != nil {
			return fixed, fmt.Errorf("reconcile: look up drivers: %w", err)
		}
		held := make(map[string]State, len(entries))
		for _, e := range entries {
			held[e.DriverID] = e.State
		}
		for _, d := range drivers {
			st, ok := held[d.ID]
			want := d.State()
			// A newer version in the index was read from the store after
			// this page was: it is right, or being put right.
			if !ok || st.Version > want.Version || (st.Online == want.Online && st.Busy == want.Busy && st.Skills == want.Skills) {
				continue
			}
			// Refresh reads the driver again under a new version: right
			// even if the driver changed since this page was read.
			if _, err := s.Refresh(ctx, d.ID); err != nil {
				return fixed, fmt.Errorf("reconcile: %w", err)
			}
			fixed++
		}
		if len(drivers) < reconcilePage {
			return fixed, nil
		}
	}
}

// RunReconciler calls Reconcile every interval until ctx ends.
func (s *Service) RunReconciler(ctx context.Context, every time.Duration, log *slog.Logger) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		n, err := s.Reconcile(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("position index not reconciled", "err", err, "fixed", n)
		case n > 0:
			log.Info("position index reconciled with the store", "drivers", n)
		}
	}
}
