package hotread

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/yolda/yolda/internal/cache"
	"github.com/yolda/yolda/internal/fleet"
)

// DriversScope is the generation the driver list is cached under.
const DriversScope = "drivers"

// Drivers is fleet.Store with a cache in front of the driver list (the
// rows; positions come live from the position index), scoped to the
// generation every change of a driver moves on.
type Drivers struct {
	fleet.Store
	cache cache.Cache
	opts  Options
	m     *metrics
	w     *warner
}

// NewDrivers decorates store with c.
func NewDrivers(store fleet.Store, c cache.Cache, opts Options) (*Drivers, error) {
	opts = opts.withDefaults()
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("hot-read metrics: %w", err)
	}
	return &Drivers{Store: store, cache: c, opts: opts, m: m, w: &warner{log: opts.Logger}}, nil
}

func driversKey(f fleet.DriverFilter) string {
	return fmt.Sprintf("list:%s|%s|%s|%s|%d", f.Availability, f.Capability, f.Provider, f.After, f.Limit)
}

// Drivers implements fleet.Store.
func (s *Drivers) Drivers(ctx context.Context, f fleet.DriverFilter) ([]fleet.Driver, error) {
	key := driversKey(f)
	v, gen, ok, err := s.cache.GetScoped(ctx, DriversScope, key)
	if err != nil {
		s.m.reads.WithLabelValues("drivers", "error").Inc()
		s.w.warn(ctx, "get", err)
		return s.Store.Drivers(ctx, f)
	}
	if ok {
		var ds []fleet.Driver
		if json.Unmarshal(v, &ds) == nil {
			s.m.reads.WithLabelValues("drivers", "hit").Inc()
			return ds, nil
		}
	}
	s.m.reads.WithLabelValues("drivers", "miss").Inc()
	ds, err := s.Store.Drivers(ctx, f)
	if err != nil {
		return nil, err
	}
	if b, err := json.Marshal(ds); err == nil {
		if err := s.cache.FillScoped(ctx, DriversScope, key, gen, b, min(s.opts.TTL, 10*time.Second)); err != nil {
			s.w.warn(ctx, "fill", err)
		}
	}
	return ds, nil
}

// SetAvailability implements fleet.Store.
func (s *Drivers) SetAvailability(ctx context.Context, id string, a fleet.Availability, at time.Time) (fleet.Driver, error) {
	d, err := s.Store.SetAvailability(ctx, id, a, at)
	if err == nil {
		bumpDrivers(ctx, s.cache, s.m, s.w)
	}
	return d, err
}

// TouchDriver implements fleet.Store.
func (s *Drivers) TouchDriver(ctx context.Context, id string) (fleet.Driver, error) {
	d, err := s.Store.TouchDriver(ctx, id)
	if err == nil {
		bumpDrivers(ctx, s.cache, s.m, s.w)
	}
	return d, err
}

func bumpDrivers(ctx context.Context, c cache.Cache, m *metrics, w *warner) {
	outcome := "invalidated"
	if err := c.Bump(ctx, DriversScope); err != nil {
		outcome = "error"
		w.warn(ctx, "bump", err)
	}
	m.writes.WithLabelValues("drivers", outcome).Inc()
}
