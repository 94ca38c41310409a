package hotread

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/yolda/yolda/internal/cache"
	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/intake"
)

// Requests is intake.Store with a cache in front of reads of one request
// by id (intake.Service.Get: a customer watching its request, staff
// opening one), invalidated by every change made through it.
type Requests struct {
	intake.Store
	cache cache.Cache
	opts  Options
	m     *metrics
	w     *warner
}

// NewRequests decorates store with c.
func NewRequests(store intake.Store, c cache.Cache, opts Options) (*Requests, error) {
	opts = opts.withDefaults()
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("hot-read metrics: %w", err)
	}
	return &Requests{Store: store, cache: c, opts: opts, m: m, w: &warner{log: opts.Logger}}, nil
}

// RequestKey is the cache key of a request's entry.
func RequestKey(id string) string { return "req:" + id }

// cachedRequest is a request as the cache holds it: the representation
// (JSON keeps what a client sees exactly, null and [] apart) and the
// fields it hides from clients but scopes, resumes and consumers need.
// TestHitIsTheStoredRequest compares every field, so a hidden field added
// to intake.Request and not carried here fails it.
type cachedRequest struct {
	Request  intake.Request `json:"r"`
	OwnerID  string         `json:"o"`
	Version  int            `json:"v"`
	Actors   []string       `json:"a"`
	Versions []int          `json:"tv"`
}

func encode(r intake.Request) ([]byte, error) {
	c := cachedRequest{Request: r, OwnerID: r.OwnerID, Version: r.Version,
		Actors: make([]string, len(r.Timeline)), Versions: make([]int, len(r.Timeline))}
	for i, e := range r.Timeline {
		c.Actors[i], c.Versions[i] = e.ActorID, e.Version
	}
	return json.Marshal(c)
}

func decode(b []byte) (intake.Request, error) {
	var c cachedRequest
	if err := json.Unmarshal(b, &c); err != nil {
		return intake.Request{}, err
	}
	if len(c.Actors) != len(c.Request.Timeline) || len(c.Versions) != len(c.Request.Timeline) {
		return intake.Request{}, fmt.Errorf("cached request %s: hidden fields of %d/%d entries for %d timeline entries",
			c.Request.ID, len(c.Actors), len(c.Versions), len(c.Request.Timeline))
	}
	r := c.Request
	r.OwnerID, r.Version = c.OwnerID, c.Version
	// JSON turns a nil RawMessage into null and null back into a
	// RawMessage; the stores give nil.
	if string(r.Insurance.Coverage) == "null" {
		r.Insurance.Coverage = nil
	}
	for i := range r.Timeline {
		r.Timeline[i].ActorID, r.Timeline[i].Version = c.Actors[i], c.Versions[i]
	}
	return r, nil
}

// lookup reports whether f reads one request by id under a scope the
// cache can check itself: staff's (none) or a customer's (the owner).
// A driver's scope (assigned, or offered to it) is the database's to
// apply.
func lookup(f intake.Filter) bool {
	return f.ID != "" && f.Limit == 1 && f.DriverID == "" && len(f.Statuses) == 0 && f.Province == "" && f.Insurer == "" &&
		f.ServiceType == "" && f.From.IsZero() && f.To.IsZero() && f.Before == ""
}

// Requests implements intake.Store. A hit outside the caller's scope is
// not answered from the cache but read from the database like a miss, so
// that another's request and a missing one take the same time.
func (s *Requests) Requests(ctx context.Context, f intake.Filter) ([]intake.Request, error) {
	if !lookup(f) {
		s.m.reads.WithLabelValues("requests", "bypass").Inc()
		return s.Store.Requests(ctx, f)
	}
	key := RequestKey(f.ID)
	e, ok, err := s.cache.Get(ctx, key)
	switch {
	case err != nil:
		s.m.reads.WithLabelValues("requests", "error").Inc()
		s.w.warn(ctx, "get", err)
		return s.Store.Requests(ctx, f)
	case ok:
		r, err := decode(e.Value)
		if err == nil && (f.OwnerID == "" || r.OwnerID == f.OwnerID) {
			s.m.reads.WithLabelValues("requests", "hit").Inc()
			return []intake.Request{r}, nil
		}
	}
	s.m.reads.WithLabelValues("requests", "miss").Inc()
	found, err := s.Store.Requests(ctx, f)
	if err != nil || len(found) != 1 {
		return found, err
	}
	s.fill(ctx, found[0])
	return found, nil
}

// fill caches r at its version; the cache refuses it if a newer version
// was committed (and invalidated) since it was read.
func (s *Requests) fill(ctx context.Context, r intake.Request) {
	b, err := encode(r)
	if err != nil {
		return
	}
	if err := s.cache.Fill(ctx, RequestKey(r.ID), cache.Entry{Value: b, Version: int64(r.Version)}, s.opts.TTL); err != nil {
		s.w.warn(ctx, "fill", err)
	}
}

// UpdateRequest implements intake.Store: the change commits, then its
// key is invalidated at the committed version, before the writer hears
// back.
func (s *Requests) UpdateRequest(ctx context.Context, id string, fn func(*intake.Request) (intake.Change, error)) (intake.Request, error) {
	r, err := s.Store.UpdateRequest(ctx, id, fn)
	if err == nil {
		s.changed(ctx, r)
	}
	return r, err
}

// UpdateRequests implements intake.Store (consumers' batches).
func (s *Requests) UpdateRequests(ctx context.Context, batch []*intake.Update) error {
	err := s.Store.UpdateRequests(ctx, batch)
	if err == nil {
		for _, u := range batch {
			if u.Err == nil {
				s.changed(ctx, u.Result)
			}
		}
	}
	return err
}

func (s *Requests) changed(ctx context.Context, r intake.Request) {
	requestChanged(ctx, s.cache, s.opts, s.m, s.w, r)
}

// requestChanged invalidates r's entry at its version and, when a driver
// is on the request, the driver list (its current job may have changed).
func requestChanged(ctx context.Context, c cache.Cache, opts Options, m *metrics, w *warner, r intake.Request) {
	outcome := "invalidated"
	if err := c.Invalidate(ctx, RequestKey(r.ID), int64(r.Version), opts.TTL); err != nil {
		outcome = "error"
		w.warn(ctx, "invalidate", err)
	}
	m.writes.WithLabelValues("requests", outcome).Inc()
	if r.Assignment != nil || slices.Contains(fleet.OpenJobStatuses, r.Status) {
		bumpDrivers(ctx, c, m, w)
	}
}
