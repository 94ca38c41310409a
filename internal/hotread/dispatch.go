package hotread

import (
	"context"
	"fmt"

	"github.com/yolda/yolda/internal/cache"
	"github.com/yolda/yolda/internal/dispatch"
	"github.com/yolda/yolda/internal/intake"
)

// Dispatch is dispatch.Store invalidating the requests it changes:
// assignments (a driver's accept, an operator's hand) and the decisions
// that move a request (to unfulfilled, ...). Offers alone change no
// request.
type Dispatch struct {
	dispatch.Store
	cache cache.Cache
	opts  Options
	m     *metrics
	w     *warner
}

// NewDispatch decorates store with c.
func NewDispatch(store dispatch.Store, c cache.Cache, opts Options) (*Dispatch, error) {
	opts = opts.withDefaults()
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("hot-read metrics: %w", err)
	}
	return &Dispatch{Store: store, cache: c, opts: opts, m: m, w: &warner{log: opts.Logger}}, nil
}

// Assign implements dispatch.Store.
func (s *Dispatch) Assign(ctx context.Context, t dispatch.AssignTarget, fn func(*dispatch.Assigning) (intake.Change, error)) (intake.Request, error) {
	r, err := s.Store.Assign(ctx, t, fn)
	if err == nil {
		requestChanged(ctx, s.cache, s.opts, s.m, s.w, r)
	}
	return r, err
}

// CommitDecisions implements dispatch.Store.
func (s *Dispatch) CommitDecisions(ctx context.Context, ds []*dispatch.Decision) error {
	err := s.Store.CommitDecisions(ctx, ds)
	if err != nil {
		return err
	}
	for _, d := range ds {
		if d.Err == nil && d.Request != nil {
			r := *d.Request
			r.ID, r.Version = d.RequestID, d.Version+1
			requestChanged(ctx, s.cache, s.opts, s.m, s.w, r)
		}
	}
	return nil
}
