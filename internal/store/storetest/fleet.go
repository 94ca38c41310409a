package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/id"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
)

// FleetStore is what the fleet cases exercise: the fleet port, plus the
// account and request ports that create drivers and give them jobs.
type FleetStore interface {
	Store
	fleet.Store
}

// RunFleet runs the fleet cases (providers, drivers, availability, state
// versions). open must return a new empty store for each call.
func RunFleet(t *testing.T, open func(t *testing.T) FleetStore) {
	t.Run("Providers", func(t *testing.T) { testProviders(t, open(t)) })
	t.Run("DriverProfile", func(t *testing.T) { testDriverProfile(t, open(t)) })
	t.Run("Availability", func(t *testing.T) { testAvailability(t, open(t)) })
	t.Run("CurrentRequestFollowsRequests", func(t *testing.T) { testCurrentRequest(t, open(t)) })
	t.Run("ListFiltersAndPages", func(t *testing.T) { testListDrivers(t, open(t)) })
	t.Run("VersionsFollowCommits", func(t *testing.T) { testVersionsConcurrent(t, open(t)) })
}

func addProvider(t *testing.T, s FleetStore, code, name string) fleet.Provider {
	t.Helper()
	p := fleet.Provider{Code: code, Name: name, CreatedAt: base}
	if err := s.CreateProvider(context.Background(), p); err != nil {
		t.Fatalf("CreateProvider(%s): %v", code, err)
	}
	return p
}

// addDriver creates a driver account with the given profile.
func addDriver(t testing.TB, s FleetStore, username string, kind fleet.VehicleKind, provider string, caps ...intake.ServiceType) account.User {
	t.Helper()
	u := account.User{
		ID: id.New("usr", time.Now()), Username: username, Role: identity.Driver, Name: "Name " + username,
		PasswordHash: "$argon2id$x", CreatedAt: base,
		Driver: &account.DriverProfile{VehiclePlate: "34" + username, VehicleKind: kind, Capabilities: caps, ProviderCode: provider},
	}
	if err := s.CreateUser(context.Background(), u); err != nil {
		t.Fatalf("CreateUser(%s): %v", username, err)
	}
	return u
}

func testProviders(t *testing.T, s FleetStore) {
	ctx := context.Background()
	addProvider(t, s, "zeta-tow", "Zeta Çekici")
	addProvider(t, s, "acme", "Acme Yol Yardım")
	if err := s.CreateProvider(ctx, fleet.Provider{Code: "acme", Name: "Other", CreatedAt: base}); !errors.Is(err, fleet.ErrProviderExists) {
		t.Errorf("duplicate code: %v, want ErrProviderExists", err)
	}
	got, err := s.Providers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []fleet.Provider{{Code: "acme", Name: "Acme Yol Yardım", CreatedAt: base}, {Code: "zeta-tow", Name: "Zeta Çekici", CreatedAt: base}}
	if !slices.EqualFunc(got, want, func(a, b fleet.Provider) bool {
		return a.Code == b.Code && a.Name == b.Name && a.CreatedAt.Equal(b.CreatedAt)
	}) {
		t.Errorf("Providers = %+v, want %+v", got, want)
	}
}

func testDriverProfile(t *testing.T, s FleetStore) {
	ctx := context.Background()
	acme := addProvider(t, s, "acme", "Acme Yol Yardım")
	u := addDriver(t, s, "driver1", fleet.TowTruck, "acme", intake.Tow, intake.Winch)
	d, err := s.Driver(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != u.ID || d.Username != "driver1" || d.Name != "Name driver1" || d.VehiclePlate != "34driver1" ||
		d.VehicleKind != fleet.TowTruck || !slices.Equal(d.Capabilities, []intake.ServiceType{intake.Tow, intake.Winch}) ||
		d.Provider == nil || d.Provider.Code != acme.Code || d.Provider.Name != acme.Name ||
		d.Availability != fleet.Offline || d.CurrentRequestID != "" || !d.UpdatedAt.Equal(base) {
		t.Errorf("Driver = %+v (provider %+v)", d, d.Provider)
	}
	if st := d.State(); st.Online || st.Busy || st.Skills != fleet.SkillOf(intake.Tow)|fleet.SkillOf(intake.Winch) {
		t.Errorf("State = %+v", st)
	}
	// The account read returns the profile too.
	back, err := s.UserByUsername(ctx, "driver1")
	if err != nil || back.Driver == nil || back.Driver.VehicleKind != fleet.TowTruck || back.Driver.ProviderCode != "acme" {
		t.Errorf("UserByUsername: %v %+v", err, back.Driver)
	}
	van := addDriver(t, s, "driver2", fleet.ServiceVan, "", intake.Lockout)
	if d, err := s.Driver(ctx, van.ID); err != nil || d.Provider != nil || d.VehicleKind != fleet.ServiceVan {
		t.Errorf("independent driver: %v %+v", err, d)
	}
	// An unknown provider refuses the whole account.
	bad := account.User{ID: id.New("usr", time.Now()), Username: "driver3", Role: identity.Driver, PasswordHash: "x", CreatedAt: base,
		Driver: &account.DriverProfile{VehiclePlate: "34X", VehicleKind: fleet.TowTruck, Capabilities: []intake.ServiceType{intake.Tow}, ProviderCode: "nope"}}
	if err := s.CreateUser(ctx, bad); !errors.Is(err, fleet.ErrUnknownProvider) {
		t.Errorf("unknown provider: %v, want ErrUnknownProvider", err)
	}
	if _, err := s.UserByUsername(ctx, "driver3"); !errors.Is(err, account.ErrNotFound) {
		t.Errorf("the account of a refused driver exists: %v", err)
	}
	cust := addUser(t, s, "ayse", identity.Customer)
	for _, id := range []string{cust.ID, "usr_nobody"} {
		if _, err := s.Driver(ctx, id); !errors.Is(err, fleet.ErrNotFound) {
			t.Errorf("Driver(%s) = %v, want ErrNotFound", id, err)
		}
	}
}

func testAvailability(t *testing.T, s FleetStore) {
	ctx := context.Background()
	u := addDriver(t, s, "driver1", fleet.TowTruck, "", intake.Tow)
	before, err := s.Driver(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	at := base.Add(time.Hour)
	d, err := s.SetAvailability(ctx, u.ID, fleet.Online, at)
	if err != nil {
		t.Fatal(err)
	}
	if d.Availability != fleet.Online || d.StateVersion != before.StateVersion+1 || !d.UpdatedAt.Equal(at) {
		t.Errorf("SetAvailability returned %+v (version before %d)", d, before.StateVersion)
	}
	if back, _ := s.Driver(ctx, u.ID); back.Availability != fleet.Online || back.StateVersion != d.StateVersion {
		t.Errorf("not committed: %+v", back)
	}
	touched, err := s.TouchDriver(ctx, u.ID)
	if err != nil || touched.StateVersion != d.StateVersion+1 || touched.Availability != fleet.Online {
		t.Errorf("TouchDriver: %v %+v", err, touched)
	}
	if _, err := s.SetAvailability(ctx, "usr_nobody", fleet.Online, at); !errors.Is(err, fleet.ErrNotFound) {
		t.Errorf("unknown driver: %v", err)
	}
	if _, err := s.TouchDriver(ctx, "usr_nobody"); !errors.Is(err, fleet.ErrNotFound) {
		t.Errorf("touch unknown driver: %v", err)
	}
	cust := addUser(t, s, "ayse", identity.Customer)
	if _, err := s.SetAvailability(ctx, cust.ID, fleet.Online, at); !errors.Is(err, fleet.ErrNotFound) {
		t.Errorf("a customer's availability: %v, want ErrNotFound", err)
	}
}

func testCurrentRequest(t *testing.T, s FleetStore) {
	ctx := context.Background()
	owner := addUser(t, s, "ayse", identity.Customer)
	u := addDriver(t, s, "driver1", fleet.TowTruck, "", intake.Tow)
	r := newRequest(owner.ID, 0, "İstanbul", "anadolu", intake.Tow)
	mustCreate(t, s, creation(r, "", ""))
	set := func(st intake.Status) {
		t.Helper()
		if _, err := s.UpdateRequest(ctx, r.ID, func(cur *intake.Request) (intake.Change, error) {
			cur.Advance(base.Add(time.Minute))
			cur.Status = st
			if cur.Assignment == nil {
				cur.Assignment = &intake.Assignment{DriverID: u.ID, DriverName: u.Name, VehiclePlate: "34driver1", AssignedAt: base, ETASeconds: 60}
			}
			return intake.Change{}, nil
		}); err != nil {
			t.Fatalf("%s: %v", st, err)
		}
	}
	current := func() string {
		t.Helper()
		d, err := s.Driver(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		return d.CurrentRequestID
	}
	for _, st := range fleet.OpenJobStatuses {
		set(st)
		if got := current(); got != r.ID {
			t.Errorf("request %s: current request %q, want %s", st, got, r.ID)
		}
	}
	set(intake.StatusCompleted)
	if got := current(); got != "" {
		t.Errorf("after completion: current request %q", got)
	}
}

func testListDrivers(t *testing.T, s FleetStore) {
	ctx := context.Background()
	addProvider(t, s, "acme", "Acme")
	addProvider(t, s, "zeta", "Zeta")
	var ids []string
	idOf := map[string]string{}
	for i, p := range []struct {
		kind     fleet.VehicleKind
		provider string
		caps     []intake.ServiceType
		online   bool
	}{
		{fleet.TowTruck, "acme", []intake.ServiceType{intake.Tow, intake.JumpStart}, true},
		{fleet.ServiceVan, "acme", []intake.ServiceType{intake.JumpStart, intake.Lockout}, false},
		{fleet.TowTruck, "zeta", []intake.ServiceType{intake.Tow}, true},
		{fleet.ServiceVan, "", []intake.ServiceType{intake.FlatTire}, true},
		{fleet.TowTruck, "", []intake.ServiceType{intake.Tow, intake.Winch}, false},
	} {
		u := addDriver(t, s, fmt.Sprintf("driver%d", i), p.kind, p.provider, p.caps...)
		if p.online {
			if _, err := s.SetAvailability(ctx, u.ID, fleet.Online, base); err != nil {
				t.Fatal(err)
			}
		}
		ids = append(ids, u.ID)
		idOf[u.Username] = u.ID
	}
	addUser(t, s, "ayse", identity.Customer) // not a driver: never listed
	slices.Sort(ids)
	// Ids made within one millisecond do not sort in creation order, so
	// the expected lists are put in id order, the order pages follow.
	byID := func(names ...string) []string {
		slices.SortFunc(names, func(a, b string) int { return strings.Compare(idOf[a], idOf[b]) })
		return names
	}
	order := byID("driver0", "driver1", "driver2", "driver3", "driver4")
	list := func(f fleet.DriverFilter) []string {
		t.Helper()
		if f.Limit == 0 {
			f.Limit = 50
		}
		got, err := s.Drivers(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]string, len(got))
		for i, d := range got {
			out[i] = d.Username
		}
		return out
	}
	cases := []struct {
		name string
		f    fleet.DriverFilter
		want []string
	}{
		{"all", fleet.DriverFilter{}, order},
		{"online", fleet.DriverFilter{Availability: fleet.Online}, byID("driver0", "driver2", "driver3")},
		{"offline", fleet.DriverFilter{Availability: fleet.Offline}, byID("driver1", "driver4")},
		{"tow", fleet.DriverFilter{Capability: intake.Tow}, byID("driver0", "driver2", "driver4")},
		{"acme", fleet.DriverFilter{Provider: "acme"}, byID("driver0", "driver1")},
		{"online acme jump", fleet.DriverFilter{Availability: fleet.Online, Provider: "acme", Capability: intake.JumpStart}, []string{"driver0"}},
		{"unknown provider", fleet.DriverFilter{Provider: "nope"}, []string{}},
		{"page 1", fleet.DriverFilter{Limit: 2}, order[:2]},
		{"page 2", fleet.DriverFilter{Limit: 2, After: ids[1]}, order[2:4]},
		{"page 3", fleet.DriverFilter{Limit: 2, After: ids[3]}, order[4:]},
	}
	for _, c := range cases {
		if got := list(c.f); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// Concurrent changes of one driver get distinct versions, and the highest
// version is the state that was committed last.
func testVersionsConcurrent(t *testing.T, s FleetStore) {
	ctx := context.Background()
	u := addDriver(t, s, "driver1", fleet.TowTruck, "", intake.Tow)
	const n = 16
	results := make([]fleet.Driver, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := fleet.Online
			if i%2 == 1 {
				a = fleet.Offline
			}
			if i%4 == 3 {
				results[i], errs[i] = s.TouchDriver(ctx, u.ID)
				return
			}
			results[i], errs[i] = s.SetAvailability(ctx, u.ID, a, base)
		}()
	}
	wg.Wait()
	seen := map[int64]bool{}
	var last fleet.Driver
	for i, d := range results {
		if errs[i] != nil {
			t.Fatalf("change %d: %v", i, errs[i])
		}
		if seen[d.StateVersion] {
			t.Fatalf("version %d handed out twice", d.StateVersion)
		}
		seen[d.StateVersion] = true
		if d.StateVersion > last.StateVersion {
			last = d
		}
	}
	final, err := s.Driver(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if final.StateVersion != n || last.StateVersion != n || final.Availability != last.Availability {
		t.Errorf("final %d/%s, highest returned %d/%s, want version %d and the same availability",
			final.StateVersion, final.Availability, last.StateVersion, last.Availability, n)
	}
}
