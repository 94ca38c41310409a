package fleet_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/geo"
	"github.com/yolda/yolda/internal/geo/memory"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/store/sqlite"
	"github.com/yolda/yolda/internal/validate"
)

var (
	fatih = geo.Point{Lat: 41.0082, Lng: 28.9784}
	now   = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
)

// clock is a settable clock for the service.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

type bundle struct {
	svc      *fleet.Service
	store    *sqlite.Store
	index    *memory.Index
	clock    *clock
	accounts *account.Service
}

// gatedStore lets a test hold a driver read between the read and its
// return, to stage the race of a cold load against a newer change.
type gatedStore struct {
	fleet.Store
	mu      sync.Mutex
	gate    chan struct{} // when set, Driver blocks on it after reading
	reached chan struct{}
}

func (g *gatedStore) Driver(ctx context.Context, id string) (fleet.Driver, error) {
	d, err := g.Store.Driver(ctx, id)
	g.mu.Lock()
	gate, reached := g.gate, g.reached
	g.mu.Unlock()
	if gate != nil {
		close(reached)
		<-gate
	}
	return d, err
}

func setup(t *testing.T, wrap func(fleet.Store) fleet.Store) *bundle {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "yolda.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	accounts, err := account.NewService(st, &account.Hasher{Memory: 64, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	b := &bundle{store: st, index: memory.New(memory.Options{}), clock: &clock{t: now}, accounts: accounts}
	var fs fleet.Store = st
	if wrap != nil {
		fs = wrap(st)
	}
	b.svc = fleet.NewService(fs, b.index, fleet.Options{Now: b.clock.Now, StaleAfter: 2 * time.Minute})
	return b
}

func (b *bundle) driver(t *testing.T, name, kind string, caps ...string) identity.Principal {
	t.Helper()
	u, err := b.accounts.Add(context.Background(), account.NewUser{Username: name, Password: "driver-password", Role: identity.Driver,
		VehiclePlate: "34" + name, Capabilities: caps, VehicleKind: kind})
	if err != nil {
		t.Fatal(err)
	}
	return identity.Principal{UserID: u.ID, Username: u.Username, Role: identity.Driver}
}

func ptr(f float64) *float64 { return &f }

func report(p geo.Point, at time.Time) fleet.PositionReport {
	return fleet.PositionReport{Lat: ptr(p.Lat), Lng: ptr(p.Lng), RecordedAt: at.Format(time.RFC3339Nano)}
}

func north(km float64) geo.Point { return geo.Point{Lat: fatih.Lat + km/111.195, Lng: fatih.Lng} }

func (b *bundle) online(t *testing.T, who identity.Principal, p geo.Point) {
	t.Helper()
	ctx := context.Background()
	if _, err := b.svc.SetAvailability(ctx, who, fleet.Online); err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.ReportPosition(ctx, who, report(p, b.clock.Now())); err != nil {
		t.Fatal(err)
	}
}

// towAt is a tow request at p, in status st, as stored by intake.
func towAt(p geo.Point, owner string, st intake.Status) intake.Request {
	return intake.Request{
		ID: "req_0001", OwnerID: owner, Status: st, ServiceType: intake.Tow,
		Location: intake.Location{Lat: p.Lat, Lng: p.Lng}, Destination: &intake.Location{Lat: 41.05, Lng: 29.01},
		Vehicle: intake.Vehicle{Plate: "34ABC123", Type: "car"}, Policy: intake.Policy{Insurer: "anadolu", PolicyNumber: "POL-1"},
		Contact: intake.Contact{Name: "Ayşe", Phone: "+905551112233"}, Insurance: intake.Insurance{Status: intake.InsurancePending},
		Timeline:  []intake.TimelineEntry{{Status: st, At: now}},
		CreatedAt: now, UpdatedAt: now, Version: 1,
	}
}

func ids(rs []fleet.Ranked) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.DriverID
	}
	return out
}

func TestCandidates(t *testing.T) {
	ctx := context.Background()
	b := setup(t, nil)
	truck := b.driver(t, "truck", "", "tow", "jump_start")
	van := b.driver(t, "van", "", "jump_start")
	far := b.driver(t, "far", "", "tow", "jump_start")
	offline := b.driver(t, "offline", "", "tow")
	b.online(t, van, north(1))
	b.online(t, truck, north(2))
	b.online(t, far, north(8))
	if _, err := b.svc.ReportPosition(ctx, offline, report(north(0.5), now)); err != nil {
		t.Fatal(err)
	}
	q := func(st intake.ServiceType, exclude ...string) []string {
		t.Helper()
		got, err := b.svc.Candidates(ctx, fleet.CandidateQuery{At: fatih, Service: st, RadiusKm: 10, Limit: 10, Exclude: exclude})
		if err != nil {
			t.Fatal(err)
		}
		return ids(got)
	}
	if got := q(intake.Tow); !slices.Equal(got, []string{truck.UserID, far.UserID}) {
		t.Errorf("tow: %v, want truck then far (a van cannot tow, offline drivers are out)", got)
	}
	if got := q(intake.JumpStart); !slices.Equal(got, []string{van.UserID, truck.UserID, far.UserID}) {
		t.Errorf("jump start: %v, want van, truck, far", got)
	}
	if got := q(intake.JumpStart, van.UserID); !slices.Equal(got, []string{truck.UserID, far.UserID}) {
		t.Errorf("excluding the van: %v", got)
	}
	ranked, _ := b.svc.Candidates(ctx, fleet.CandidateQuery{At: fatih, Service: intake.Tow, RadiusKm: 10, Limit: 1})
	if len(ranked) != 1 {
		t.Fatalf("limit 1: %v", ranked)
	}
	wantETA := geo.DefaultRoadETA.Seconds(geo.DistanceKm(north(2).Lat, north(2).Lng, fatih.Lat, fatih.Lng))
	if d := ranked[0].ETA.Seconds() - wantETA; d > 0.01 || d < -0.01 {
		t.Errorf("ETA %v, want %.1f s", ranked[0].ETA, wantETA)
	}
	// A driver whose device went quiet for longer than StaleAfter is out.
	b.clock.Set(now.Add(90 * time.Second))
	if _, err := b.svc.ReportPosition(ctx, far, report(north(8), b.clock.Now())); err != nil {
		t.Fatal(err)
	}
	b.clock.Set(now.Add(150 * time.Second))
	if got := q(intake.Tow); !slices.Equal(got, []string{far.UserID}) {
		t.Errorf("after 150 s: %v, want only far (the others are stale)", got)
	}
	if _, err := b.svc.Candidates(ctx, fleet.CandidateQuery{At: fatih, Service: "teleport", RadiusKm: 10, Limit: 1}); err == nil {
		t.Error("an unknown service was accepted")
	}
}

// A job makes a driver busy once dispatch calls Refresh after its commit;
// completing it frees the driver again.
func TestRefreshFollowsJobs(t *testing.T) {
	ctx := context.Background()
	b := setup(t, nil)
	d := b.driver(t, "truck", "", "tow")
	b.online(t, d, north(1))
	cust, err := b.accounts.Add(ctx, account.NewUser{Username: "ayse", Password: "ayse-password", Role: identity.Customer})
	if err != nil {
		t.Fatal(err)
	}
	req := towAt(fatih, cust.ID, intake.StatusDispatching)
	if err := b.store.CreateRequests(ctx, []*intake.Creation{{Request: req}}); err != nil {
		t.Fatal(err)
	}
	created := struct{ Request intake.Request }{req}
	setStatus := func(st intake.Status) {
		t.Helper()
		if _, err := b.store.UpdateRequest(ctx, created.Request.ID, func(r *intake.Request) (intake.Change, error) {
			r.Status = st
			r.Assignment = &intake.Assignment{DriverID: d.UserID, DriverName: "truck", VehiclePlate: "34TRUCK", AssignedAt: now}
			r.Advance(now)
			return intake.Change{}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	towers := func() []string {
		got, err := b.svc.Candidates(ctx, fleet.CandidateQuery{At: fatih, Service: intake.Tow, RadiusKm: 5, Limit: 5})
		if err != nil {
			t.Fatal(err)
		}
		return ids(got)
	}
	setStatus(intake.StatusAssigned)
	got, err := b.svc.Refresh(ctx, d.UserID)
	if err != nil || got.CurrentRequestID != created.Request.ID {
		t.Fatalf("Refresh: %v %+v", err, got)
	}
	if c := towers(); len(c) != 0 {
		t.Errorf("a busy driver is a candidate: %v", c)
	}
	setStatus(intake.StatusCompleted)
	if _, err := b.svc.Refresh(ctx, d.UserID); err != nil {
		t.Fatal(err)
	}
	if c := towers(); !slices.Equal(c, []string{d.UserID}) {
		t.Errorf("after completion: %v, want the driver back", c)
	}
}

// The first position after a restart loads the driver's state from the
// store. If the driver goes offline while that load is in flight, the
// older state read by the load must not win in the index.
func TestColdLoadLosesToNewerState(t *testing.T) {
	ctx := context.Background()
	var gs *gatedStore
	b := setup(t, func(s fleet.Store) fleet.Store { gs = &gatedStore{Store: s}; return gs })
	d := b.driver(t, "truck", "", "tow")
	if _, err := b.svc.SetAvailability(ctx, d, fleet.Online); err != nil {
		t.Fatal(err)
	}
	if err := b.index.Remove(ctx, d.UserID); err != nil { // what a restart does
		t.Fatal(err)
	}
	gate, reached := make(chan struct{}), make(chan struct{})
	gs.mu.Lock()
	gs.gate, gs.reached = gate, reached
	gs.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		_, err := b.svc.ReportPosition(ctx, d, report(north(1), now))
		done <- err
	}()
	<-reached // the load has read "online"
	gs.mu.Lock()
	gs.gate = nil
	gs.mu.Unlock()
	if _, err := b.svc.SetAvailability(ctx, d, fleet.Offline); err != nil {
		t.Fatal(err)
	}
	close(gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got, err := b.index.Lookup(ctx, []string{d.UserID})
	if err != nil || len(got) != 1 {
		t.Fatalf("Lookup: %v %v", got, err)
	}
	if got[0].State.Online || !got[0].HasFix {
		t.Errorf("index holds %+v: the stale load overwrote going offline (or lost the fix)", got[0])
	}
}

func TestReportValidation(t *testing.T) {
	b := setup(t, nil)
	d := b.driver(t, "truck", "", "tow")
	cases := []struct {
		name  string
		r     fleet.PositionReport
		field string
	}{
		{"no lat", fleet.PositionReport{Lng: ptr(28.9), RecordedAt: now.Format(time.RFC3339)}, "lat"},
		{"lat beyond the index", report(geo.Point{Lat: 86, Lng: 0}, now), "lat"},
		{"lng out of range", report(geo.Point{Lat: 41, Lng: 181}, now), "lng"},
		{"heading 360", fleet.PositionReport{Lat: ptr(41), Lng: ptr(29), Heading: ptr(360), RecordedAt: now.Format(time.RFC3339)}, "heading"},
		{"negative speed", fleet.PositionReport{Lat: ptr(41), Lng: ptr(29), SpeedKmh: ptr(-1), RecordedAt: now.Format(time.RFC3339)}, "speed_kmh"},
		{"negative accuracy", fleet.PositionReport{Lat: ptr(41), Lng: ptr(29), AccuracyM: ptr(-5), RecordedAt: now.Format(time.RFC3339)}, "accuracy_m"},
		{"no time", fleet.PositionReport{Lat: ptr(41), Lng: ptr(29)}, "recorded_at"},
		{"bad time", fleet.PositionReport{Lat: ptr(41), Lng: ptr(29), RecordedAt: "yesterday"}, "recorded_at"},
		{"future", report(fatih, now.Add(31*time.Second)), "recorded_at"},
		{"too old", report(fatih, now.Add(-11*time.Minute)), "recorded_at"},
	}
	for _, c := range cases {
		_, err := b.svc.ReportPosition(context.Background(), d, c.r)
		var errs validate.Errors
		if !errors.As(err, &errs) || len(errs) == 0 || errs[0].Field != c.field {
			t.Errorf("%s: err = %v, want a problem with %s", c.name, err, c.field)
		}
	}
	if got, _ := b.index.Lookup(context.Background(), []string{d.UserID}); len(got) != 0 {
		t.Errorf("a refused report reached the index: %+v", got)
	}
	// Within the skew and the age bound is fine.
	for _, at := range []time.Time{now.Add(29 * time.Second), now.Add(-9 * time.Minute)} {
		if _, err := b.svc.ReportPosition(context.Background(), d, report(fatih, at)); err != nil {
			t.Errorf("report at %v: %v", at, err)
		}
	}
}

func TestRoles(t *testing.T) {
	ctx := context.Background()
	b := setup(t, nil)
	d := b.driver(t, "truck", "", "tow")
	cust := identity.Principal{UserID: "usr_x", Role: identity.Customer}
	op := identity.Principal{UserID: "usr_y", Role: identity.Operator}
	if _, err := b.svc.SetAvailability(ctx, cust, fleet.Online); !errors.Is(err, fleet.ErrForbidden) {
		t.Errorf("customer availability: %v", err)
	}
	if _, err := b.svc.ReportPosition(ctx, op, report(fatih, now)); !errors.Is(err, fleet.ErrForbidden) {
		t.Errorf("operator position: %v", err)
	}
	if _, err := b.svc.List(ctx, d, fleet.DriverFilter{}); !errors.Is(err, fleet.ErrForbidden) {
		t.Errorf("driver list: %v", err)
	}
	if _, err := b.svc.SetAvailability(ctx, d, "sleeping"); err == nil {
		t.Error("an unknown availability was accepted")
	}
}

func TestListShowsPositions(t *testing.T) {
	ctx := context.Background()
	b := setup(t, nil)
	if _, err := b.svc.AddProvider(ctx, "acme", "Acme Çekici"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.AddProvider(ctx, "acme", "Again"); err == nil {
		t.Error("a taken provider code was accepted")
	}
	a := b.driver(t, "alpha", "", "tow")
	c := b.driver(t, "charlie", "service_van", "lockout")
	b.online(t, a, north(1))
	b.clock.Set(now.Add(3 * time.Minute))
	op := identity.Principal{UserID: "usr_op", Role: identity.Operator}
	page, err := b.svc.List(ctx, op, fleet.DriverFilter{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.NextCursor != a.UserID {
		t.Fatalf("page 1: %+v", page)
	}
	first := page.Items[0]
	if first.ID != a.UserID || first.Availability != fleet.Online || first.Position == nil || first.Fresh ||
		first.Position.Lat != north(1).Lat || !first.Position.At.Equal(now) || first.VehicleKind != fleet.TowTruck {
		t.Errorf("alpha = %+v (position %+v)", first, first.Position)
	}
	page, err = b.svc.List(ctx, op, fleet.DriverFilter{After: page.NextCursor})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.Items[0].ID != c.UserID || page.Items[0].Position != nil || page.NextCursor != "" {
		t.Errorf("page 2: %+v", page)
	}
}

// BenchmarkReportPosition is the ingest path of one REST or WebSocket
// location message after decoding: validation and the index write, with
// the in-process index.
//
//	go test -run '^$' -bench ReportPosition ./internal/fleet
func BenchmarkReportPosition(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "yolda.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	index := memory.New(memory.Options{})
	svc := fleet.NewService(st, index, fleet.Options{Now: func() time.Time { return now }})
	const drivers = 10000
	who := make([]identity.Principal, drivers)
	for i := range who {
		who[i] = identity.Principal{UserID: "usr_" + strconv.Itoa(i), Role: identity.Driver}
		if err := index.SetState(ctx, who[i].UserID, fleet.State{Online: true, Version: 1}); err != nil {
			b.Fatal(err)
		}
	}
	r := report(fatih, now)
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if _, err := svc.ReportPosition(ctx, who[i%drivers], r); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reports/s")
}
