package fleet

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/yolda/yolda/internal/geo"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/validate"
)

// Options tune the fleet service; zero fields take the defaults.
type Options struct {
	// StaleAfter is how old a driver's last fix may be for the driver to
	// be a candidate (default 2m).
	StaleAfter time.Duration
	// MaxReportAge refuses position reports measured longer ago (default
	// 10m); MaxClockSkew refuses reports from further in the future
	// (default 30s).
	MaxReportAge time.Duration
	MaxClockSkew time.Duration
	// ETA ranks candidates (default geo.DefaultRoadETA).
	ETA geo.Estimator
	// Now is the clock (default time.Now).
	Now func() time.Time
	// WentOffline, if set, is called once a driver's going offline has
	// committed (whether or not the index took it), so that the offer the
	// driver holds is withdrawn and its request moves on
	// (dispatch.Service.DriverOffline).
	WentOffline func(ctx context.Context, driverID string)
}

// Service is the fleet's use cases: drivers going online and reporting
// positions, operators listing drivers, and dispatch asking for candidates.
type Service struct {
	store Store
	index Index
	opts  Options
}

// NewService returns the fleet service over its store and position index.
func NewService(store Store, index Index, opts Options) *Service {
	if opts.StaleAfter <= 0 {
		opts.StaleAfter = 2 * time.Minute
	}
	if opts.MaxReportAge <= 0 {
		opts.MaxReportAge = 10 * time.Minute
	}
	if opts.MaxClockSkew <= 0 {
		opts.MaxClockSkew = 30 * time.Second
	}
	if opts.ETA == nil {
		opts.ETA = geo.DefaultRoadETA
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Service{store: store, index: index, opts: opts}
}

func (s *Service) now() time.Time { return s.opts.Now().UTC().Truncate(time.Microsecond) }

// SetAvailability records that the calling driver is online or offline,
// durably, then in the index.
func (s *Service) SetAvailability(ctx context.Context, who identity.Principal, a Availability) (Driver, error) {
	if who.Role != identity.Driver {
		return Driver{}, ErrForbidden
	}
	var errs validate.Errors
	validate.OneOf(&errs, "availability", a, Availabilities)
	if err := errs.Err(); err != nil {
		return Driver{}, err
	}
	d, err := s.store.SetAvailability(ctx, who.UserID, a, s.now())
	if err != nil {
		return Driver{}, fmt.Errorf("set availability: %w", err)
	}
	if a == Offline && s.opts.WentOffline != nil {
		s.opts.WentOffline(ctx, d.ID)
	}
	if err := s.index.SetState(ctx, d.ID, d.State()); err != nil {
		// Committed but not indexed: the driver retries (the change is
		// idempotent) and until then the index's older state stands.
		return Driver{}, fmt.Errorf("index availability: %w", err)
	}
	return d, nil
}

// ReportPosition records where the calling driver is. The hot path is one
// index write; the store is read only when the index does not know the
// driver yet (first report after a restart or an expiry).
func (s *Service) ReportPosition(ctx context.Context, who identity.Principal, r PositionReport) (Position, error) {
	if who.Role != identity.Driver {
		return Position{}, ErrForbidden
	}
	p, err := r.Validate(s.opts.Now(), s.opts.MaxReportAge, s.opts.MaxClockSkew)
	if err != nil {
		return Position{}, err
	}
	fix := Fix{DriverID: who.UserID, Lat: p.Lat, Lng: p.Lng, At: p.RecordedAt}
	unknown, err := s.index.Move(ctx, fix)
	if err != nil {
		return Position{}, fmt.Errorf("record position: %w", err)
	}
	if len(unknown) > 0 {
		d, err := s.store.Driver(ctx, who.UserID)
		if err != nil {
			return Position{}, fmt.Errorf("load driver: %w", err)
		}
		if err := s.index.Update(ctx, fix, d.State()); err != nil {
			return Position{}, fmt.Errorf("record position: %w", err)
		}
	}
	return p, nil
}

// Refresh re-reads a driver's state from the store under a new version and
// puts it in the index. Dispatch calls it after every commit that makes a
// driver busy or free (assignment, completion, cancellation, a lost
// race): whatever the order of concurrent refreshes and position reports,
// the index ends with the newest committed state.
func (s *Service) Refresh(ctx context.Context, driverID string) (Driver, error) {
	d, err := s.store.TouchDriver(ctx, driverID)
	if err != nil {
		return Driver{}, fmt.Errorf("refresh driver: %w", err)
	}
	if err := s.index.SetState(ctx, d.ID, d.State()); err != nil {
		return Driver{}, fmt.Errorf("refresh driver: %w", err)
	}
	return d, nil
}

// freshAfter is the oldest fix time that counts as fresh now.
func (s *Service) freshAfter() time.Time { return s.opts.Now().Add(-s.opts.StaleAfter) }

// Fresh reports whether a fix is recent enough (StaleAfter) for its
// driver to be given jobs.
func (s *Service) Fresh(f Fix) bool { return !f.At.Before(s.freshAfter()) }

// Driver returns one driver as stored.
func (s *Service) Driver(ctx context.Context, id string) (Driver, error) {
	return s.store.Driver(ctx, id)
}

// CandidateQuery asks for drivers who could take a job now.
type CandidateQuery struct {
	At       geo.Point
	Service  intake.ServiceType
	RadiusKm float64
	Limit    int
	// Exclude lists drivers not to offer the job to again.
	Exclude []string
}

// Ranked is a candidate with its estimated time of arrival.
type Ranked struct {
	Candidate
	ETA time.Duration
}

// Candidates returns the drivers within the radius who are online, free,
// able to do the service and fresh (a fix within StaleAfter), by ETA
// (then distance, then id), at most q.Limit of them.
func (s *Service) Candidates(ctx context.Context, q CandidateQuery) ([]Ranked, error) {
	need := SkillOf(q.Service)
	if need == 0 {
		return nil, validate.Errors{{Field: "service_type", Message: "is not a known service"}}
	}
	found, err := s.index.Nearby(ctx, Query{
		Center: q.At, RadiusKm: q.RadiusKm, Limit: q.Limit,
		Filter: Filter{Online: true, Free: true, Need: need, FreshAfter: s.freshAfter(), Exclude: q.Exclude},
	})
	if err != nil {
		return nil, fmt.Errorf("find candidates: %w", err)
	}
	if len(found) == 0 {
		return nil, nil
	}
	from := make([]geo.Point, len(found))
	for i, c := range found {
		from[i] = c.Fix.Point()
	}
	secs := make([]float64, len(found))
	if err := s.opts.ETA.Matrix(ctx, from, []geo.Point{q.At}, secs); err != nil {
		return nil, fmt.Errorf("estimate arrivals: %w", err)
	}
	out := make([]Ranked, len(found))
	for i, c := range found {
		out[i] = Ranked{Candidate: c, ETA: time.Duration(secs[i] * float64(time.Second))}
	}
	// Nearby's order is by distance; a routing engine may disagree.
	slices.SortStableFunc(out, func(a, b Ranked) int { return int(a.ETA - b.ETA) })
	return out, nil
}

// Listed is a driver as GET /v1/drivers shows it (the contract's shape).
type Listed struct {
	ID               string               `json:"id"`
	Username         string               `json:"username"`
	Name             string               `json:"name"`
	VehiclePlate     string               `json:"vehicle_plate"`
	VehicleKind      VehicleKind          `json:"vehicle_kind"`
	Capabilities     []intake.ServiceType `json:"capabilities"`
	Provider         *Provider            `json:"provider"`
	Availability     Availability         `json:"availability"`
	Position         *intake.Position     `json:"position"`
	CurrentRequestID *string              `json:"current_request_id"`
	// Fresh is whether the position is recent enough for the driver to
	// be offered jobs.
	Fresh bool `json:"fresh"`
}

// Page is one page of drivers; NextCursor is the last id, or "".
type Page struct {
	Items      []Listed
	NextCursor string
}

// DefaultLimit and MaxLimit bound a page of drivers.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// List returns drivers for operators, with their last known positions.
func (s *Service) List(ctx context.Context, who identity.Principal, f DriverFilter) (Page, error) {
	if !who.Role.Staff() {
		return Page{}, ErrForbidden
	}
	if f.Limit <= 0 {
		f.Limit = DefaultLimit
	}
	limit := min(f.Limit, MaxLimit)
	f.Limit = limit + 1
	drivers, err := s.store.Drivers(ctx, f)
	if err != nil {
		return Page{}, fmt.Errorf("list drivers: %w", err)
	}
	var page Page
	if len(drivers) > limit {
		drivers = drivers[:limit]
		page.NextCursor = drivers[limit-1].ID
	}
	ids := make([]string, len(drivers))
	for i, d := range drivers {
		ids[i] = d.ID
	}
	entries, err := s.index.Lookup(ctx, ids)
	if err != nil {
		return Page{}, fmt.Errorf("look up positions: %w", err)
	}
	fixes := make(map[string]Fix, len(entries))
	for _, e := range entries {
		if e.HasFix {
			fixes[e.DriverID] = e.Fix
		}
	}
	page.Items = make([]Listed, len(drivers))
	for i, d := range drivers {
		l := Listed{ID: d.ID, Username: d.Username, Name: d.Name, VehiclePlate: d.VehiclePlate, VehicleKind: d.VehicleKind,
			Capabilities: d.Capabilities, Provider: d.Provider, Availability: d.Availability}
		if l.Capabilities == nil {
			l.Capabilities = []intake.ServiceType{}
		}
		if d.CurrentRequestID != "" {
			l.CurrentRequestID = &d.CurrentRequestID
		}
		if fx, ok := fixes[d.ID]; ok {
			l.Position = &intake.Position{Lat: fx.Lat, Lng: fx.Lng, At: fx.At}
			l.Fresh = s.Fresh(fx)
		}
		page.Items[i] = l
	}
	return page, nil
}

// AddProvider validates and creates a provider.
func (s *Service) AddProvider(ctx context.Context, code, name string) (Provider, error) {
	p, err := NewProvider(code, name, s.now())
	if err != nil {
		return Provider{}, err
	}
	if err := s.store.CreateProvider(ctx, p); err != nil {
		if errors.Is(err, ErrProviderExists) {
			return Provider{}, validate.Errors{{Field: "code", Message: "is taken"}}
		}
		return Provider{}, fmt.Errorf("add provider: %w", err)
	}
	return p, nil
}

// Providers lists every provider.
func (s *Service) Providers(ctx context.Context) ([]Provider, error) {
	return s.store.Providers(ctx)
}
