package fleet

import (
	"context"
	"errors"
	"time"

	"github.com/yolda/yolda/internal/geo"
)

// Index is the position index: where each driver was last seen and the
// state needed to pick candidates (online, busy, skills). Backends live in
// internal/geo/memory (in-process, the embedded default) and
// internal/geo/redis (shared by many processes); both pass
// internal/geo/geotest. Every method is safe for concurrent use.
//
// The index is a cache of volatile data: the SQL store holds the truth of
// a driver's state and the index may lose everything (a restart of the
// in-process one, an expiry in Redis). Callers that meet a driver the
// index does not know load its state from the store and call Update.
//
// Ordering rules, which make concurrent writers converge:
//   - a State is applied only if its Version is at least the stored one,
//     so a state read from the store before a newer change cannot
//     overwrite that change;
//   - a Fix is applied only if its At is not before the stored fix's, so
//     positions that arrive out of order do not move a driver back.
type Index interface {
	// Move records fixes of drivers whose state the index knows (the hot
	// path: one call per position report, or one per batch). Fixes of
	// drivers it does not know are not recorded; their ids are returned
	// in unknown, in input order.
	Move(ctx context.Context, fixes ...Fix) (unknown []string, err error)
	// Update records a driver's fix and state together, atomically.
	Update(ctx context.Context, fix Fix, st State) error
	// SetState records a driver's state and keeps its fix, if any. A
	// driver with a state and no fix is known (Move works) but is never
	// a candidate.
	SetState(ctx context.Context, driverID string, st State) error
	// Remove forgets a driver.
	Remove(ctx context.Context, driverID string) error
	// Nearby returns the drivers with a fix within q.RadiusKm of q.Center
	// that pass q's filter, nearest first (ties by driver id), at most
	// q.Limit of them.
	Nearby(ctx context.Context, q Query) ([]Candidate, error)
	// Lookup returns what the index knows of the given drivers, in the
	// order of ids; drivers it does not know are left out.
	Lookup(ctx context.Context, ids []string) ([]Entry, error)
}

// ErrBadQuery: a Nearby query the index refuses (no limit, bad radius).
var ErrBadQuery = errors.New("bad index query")

// MaxNearbyLimit caps Query.Limit: dispatch wants a handful of candidates,
// batch matching a few hundred.
const MaxNearbyLimit = 1000

// State is what the index filters on. It is derived from a Driver
// (Driver.State) and versioned by Driver.StateVersion.
type State struct {
	Online  bool
	Busy    bool
	Skills  Skills
	Version int64
}

// Fix is one position of one driver at the time the device measured it.
type Fix struct {
	DriverID string
	Lat, Lng float64
	At       time.Time
}

// Point is the fix's position.
func (f Fix) Point() geo.Point { return geo.Point{Lat: f.Lat, Lng: f.Lng} }

// Entry is what the index holds for one driver.
type Entry struct {
	DriverID string
	State    State
	// Fix is the last position; HasFix is false for a driver known only
	// by its state.
	Fix    Fix
	HasFix bool
}

// Filter selects candidates. Zero fields select everything.
type Filter struct {
	// Online and Free require the driver to be online and not on a job.
	Online, Free bool
	// Need are skills the driver must all have.
	Need Skills
	// FreshAfter, when set, requires a fix taken at or after it: a
	// driver whose device went quiet is not offered work.
	FreshAfter time.Time
	// Exclude lists drivers to leave out (e.g. those who declined).
	Exclude []string
}

// Query is a Nearby search.
type Query struct {
	Center   geo.Point
	RadiusKm float64
	// Limit is how many candidates at most, 1..MaxNearbyLimit.
	Limit int
	Filter
}

// Validate reports a query the index must refuse.
func (q Query) Validate() error {
	switch {
	case q.Limit < 1 || q.Limit > MaxNearbyLimit:
		return errors.Join(ErrBadQuery, errors.New("limit must be 1-1000"))
	case !(q.RadiusKm > 0) || q.RadiusKm > 1000:
		return errors.Join(ErrBadQuery, errors.New("radius must be in (0, 1000] km"))
	case !(q.Center.Lat >= -90 && q.Center.Lat <= 90 && q.Center.Lng >= -180 && q.Center.Lng <= 180):
		return errors.Join(ErrBadQuery, errors.New("center out of range"))
	}
	return nil
}

// Excluded reports whether f leaves driverID out by name. Backends call it
// for a few survivors only, so a linear scan beats building a set.
func (f *Filter) Excluded(driverID string) bool {
	for _, x := range f.Exclude {
		if x == driverID {
			return true
		}
	}
	return false
}

// Admits reports whether a driver with this state and fix time passes the
// filter's state checks (everything but the radius and Exclude).
func (f *Filter) Admits(st State, at time.Time) bool {
	if f.Online && !st.Online || f.Free && st.Busy || !st.Skills.Has(f.Need) {
		return false
	}
	return f.FreshAfter.IsZero() || !at.Before(f.FreshAfter)
}

// Candidate is a driver Nearby found.
type Candidate struct {
	DriverID   string
	Fix        Fix
	State      State
	DistanceKm float64
}
