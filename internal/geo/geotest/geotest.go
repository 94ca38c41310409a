// Package geotest is the conformance suite of the position index: every
// fleet.Index backend (internal/geo/memory, internal/geo/redis) runs it
// against its real engine.
package geotest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/geo"
	"github.com/yolda/yolda/internal/intake"
)

// Run runs the suite. open must return a new, empty index for each call
// and arrange its cleanup with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) fleet.Index) {
	t.Run("MoveNeedsState", func(t *testing.T) { testMoveNeedsState(t, open(t)) })
	t.Run("NearestFirstWithinRadius", func(t *testing.T) { testNearest(t, open(t)) })
	t.Run("Filters", func(t *testing.T) { testFilters(t, open(t)) })
	t.Run("StateVersions", func(t *testing.T) { testVersions(t, open(t)) })
	t.Run("OutOfOrderFixes", func(t *testing.T) { testOutOfOrder(t, open(t)) })
	t.Run("MoveAcrossTown", func(t *testing.T) { testMoveAcross(t, open(t)) })
	t.Run("Remove", func(t *testing.T) { testRemove(t, open(t)) })
	t.Run("BadQueries", func(t *testing.T) { testBadQueries(t, open(t)) })
	t.Run("AgreesWithBruteForce", func(t *testing.T) { testOracle(t, open(t)) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, open(t)) })
}

var (
	fatih = geo.Point{Lat: 41.0082, Lng: 28.9784}
	t0    = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	tow   = fleet.SkillOf(intake.Tow)
	jump  = fleet.SkillOf(intake.JumpStart)
	ready = fleet.State{Online: true, Skills: tow | jump, Version: 1}
)

// north returns the point km kilometres north of p.
func north(p geo.Point, km float64) geo.Point {
	return geo.Point{Lat: p.Lat + km/111.195, Lng: p.Lng}
}

// east returns the point km kilometres east of p.
func east(p geo.Point, km float64) geo.Point {
	return geo.Point{Lat: p.Lat, Lng: p.Lng + km/(111.195*math.Cos(p.Lat*math.Pi/180))}
}

func fix(id string, p geo.Point, at time.Time) fleet.Fix {
	return fleet.Fix{DriverID: id, Lat: p.Lat, Lng: p.Lng, At: at}
}

func put(t *testing.T, x fleet.Index, id string, p geo.Point, st fleet.State) {
	t.Helper()
	if err := x.Update(context.Background(), fix(id, p, t0), st); err != nil {
		t.Fatalf("Update(%s): %v", id, err)
	}
}

func near(t *testing.T, x fleet.Index, q fleet.Query) []string {
	t.Helper()
	got, err := x.Nearby(context.Background(), q)
	if err != nil {
		t.Fatalf("Nearby(%+v): %v", q, err)
	}
	ids := make([]string, len(got))
	for i, c := range got {
		ids[i] = c.DriverID
	}
	return ids
}

func query(radiusKm float64, limit int) fleet.Query {
	return fleet.Query{Center: fatih, RadiusKm: radiusKm, Limit: limit}
}

func testMoveNeedsState(t *testing.T, x fleet.Index) {
	ctx := context.Background()
	unknown, err := x.Move(ctx, fix("d1", fatih, t0), fix("d2", fatih, t0))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(unknown, []string{"d1", "d2"}) {
		t.Fatalf("unknown = %v, want [d1 d2]", unknown)
	}
	if got, _ := x.Lookup(ctx, []string{"d1"}); len(got) != 0 {
		t.Fatalf("a fix of an unknown driver was recorded: %+v", got)
	}
	if err := x.SetState(ctx, "d1", ready); err != nil {
		t.Fatal(err)
	}
	if got, _ := x.Lookup(ctx, []string{"d1"}); len(got) != 1 || got[0].HasFix {
		t.Fatalf("state only: Lookup = %+v, want one entry without a fix", got)
	}
	if ids := near(t, x, query(5, 10)); len(ids) != 0 {
		t.Fatalf("a driver without a fix is a candidate: %v", ids)
	}
	p := north(fatih, 1)
	unknown, err = x.Move(ctx, fix("d2", fatih, t0), fix("d1", p, t0.Add(time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(unknown, []string{"d2"}) {
		t.Fatalf("unknown = %v, want [d2]", unknown)
	}
	got, err := x.Lookup(ctx, []string{"d2", "d1", "nobody"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].DriverID != "d1" || !got[0].HasFix || got[0].State != ready {
		t.Fatalf("Lookup = %+v", got)
	}
	if f := got[0].Fix; math.Abs(f.Lat-p.Lat) > 1e-9 || math.Abs(f.Lng-p.Lng) > 1e-9 || !f.At.Equal(t0.Add(time.Second)) {
		t.Fatalf("fix = %+v, want %v at %v", f, p, t0.Add(time.Second))
	}
}

func testNearest(t *testing.T, x fleet.Index) {
	put(t, x, "d3", north(fatih, 3), ready)
	put(t, x, "d1", east(fatih, 0.5), ready)
	put(t, x, "d4", north(fatih, 9), ready)
	put(t, x, "d2", north(fatih, -2), ready)
	put(t, x, "far", geo.Point{Lat: 39.9208, Lng: 32.8541}, ready) // Ankara

	if ids := near(t, x, query(10, 10)); !slices.Equal(ids, []string{"d1", "d2", "d3", "d4"}) {
		t.Errorf("10 km: %v, want d1 d2 d3 d4", ids)
	}
	if ids := near(t, x, query(10, 2)); !slices.Equal(ids, []string{"d1", "d2"}) {
		t.Errorf("limit 2: %v, want d1 d2", ids)
	}
	if ids := near(t, x, query(2.5, 10)); !slices.Equal(ids, []string{"d1", "d2"}) {
		t.Errorf("2.5 km: %v, want d1 d2", ids)
	}
	if ids := near(t, x, query(500, 10)); !slices.Equal(ids, []string{"d1", "d2", "d3", "d4", "far"}) {
		t.Errorf("500 km: %v, want all five", ids)
	}
	got, err := x.Nearby(context.Background(), query(10, 1))
	if err != nil || len(got) != 1 {
		t.Fatalf("Nearby: %v %v", got, err)
	}
	want := geo.DistanceKm(fatih.Lat, fatih.Lng, got[0].Fix.Lat, got[0].Fix.Lng)
	if math.Abs(got[0].DistanceKm-want) > 0.002 || math.Abs(want-0.5) > 0.01 {
		t.Errorf("distance %.4f km, want %.4f (about 0.5)", got[0].DistanceKm, want)
	}
	if got[0].State != ready || !got[0].Fix.At.Equal(t0) {
		t.Errorf("candidate = %+v", got[0])
	}
}

func testFilters(t *testing.T, x fleet.Index) {
	put(t, x, "free", north(fatih, 1), ready)
	put(t, x, "busy", north(fatih, 2), fleet.State{Online: true, Busy: true, Skills: tow | jump, Version: 1})
	put(t, x, "offline", north(fatih, 3), fleet.State{Skills: tow | jump, Version: 1})
	put(t, x, "van", north(fatih, 4), fleet.State{Online: true, Skills: jump, Version: 1})
	if err := x.Update(context.Background(), fix("stale", north(fatih, 5), t0.Add(-10*time.Minute)), ready); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		filter fleet.Filter
		want   []string
	}{
		{"none", fleet.Filter{}, []string{"free", "busy", "offline", "van", "stale"}},
		{"online", fleet.Filter{Online: true}, []string{"free", "busy", "van", "stale"}},
		{"online and free", fleet.Filter{Online: true, Free: true}, []string{"free", "van", "stale"}},
		{"can tow", fleet.Filter{Online: true, Free: true, Need: tow}, []string{"free", "stale"}},
		{"tow and jump", fleet.Filter{Need: tow | jump}, []string{"free", "busy", "offline", "stale"}},
		{"fresh", fleet.Filter{Online: true, FreshAfter: t0.Add(-2 * time.Minute)}, []string{"free", "busy", "van"}},
		{"fresh at the bound", fleet.Filter{FreshAfter: t0.Add(-10 * time.Minute)}, []string{"free", "busy", "offline", "van", "stale"}},
		{"exclude", fleet.Filter{Online: true, Free: true, Exclude: []string{"free", "nobody"}}, []string{"van", "stale"}},
		{"everything", fleet.Filter{Online: true, Free: true, Need: tow, FreshAfter: t0.Add(-time.Minute)}, []string{"free"}},
	}
	for _, c := range cases {
		q := query(10, 10)
		q.Filter = c.filter
		if ids := near(t, x, q); !slices.Equal(ids, c.want) {
			t.Errorf("%s: %v, want %v", c.name, ids, c.want)
		}
	}
	// A filter that leaves out the nearest drivers still fills the limit
	// from further away.
	q := query(10, 1)
	q.Filter = fleet.Filter{Need: tow, Exclude: []string{"free", "busy"}}
	if ids := near(t, x, q); !slices.Equal(ids, []string{"offline"}) {
		t.Errorf("limit past excluded: %v, want [offline]", ids)
	}
}

func testVersions(t *testing.T, x fleet.Index) {
	ctx := context.Background()
	put(t, x, "d1", north(fatih, 1), fleet.State{Online: true, Skills: tow, Version: 5})
	lookup := func() fleet.State {
		t.Helper()
		got, err := x.Lookup(ctx, []string{"d1"})
		if err != nil || len(got) != 1 {
			t.Fatalf("Lookup: %v %v", got, err)
		}
		return got[0].State
	}
	// A state read before the last change (lower version) loses.
	if err := x.SetState(ctx, "d1", fleet.State{Online: false, Skills: tow, Version: 4}); err != nil {
		t.Fatal(err)
	}
	if st := lookup(); !st.Online || st.Version != 5 {
		t.Fatalf("older state applied: %+v", st)
	}
	if err := x.Update(ctx, fix("d1", north(fatih, 2), t0.Add(time.Second)), fleet.State{Busy: true, Version: 3}); err != nil {
		t.Fatal(err)
	}
	if st := lookup(); st.Busy || st.Version != 5 {
		t.Fatalf("older state applied by Update: %+v", st)
	}
	if got, _ := x.Lookup(ctx, []string{"d1"}); got[0].Fix.Lat != north(fatih, 2).Lat {
		t.Fatalf("Update with an old state must still record the newer fix: %+v", got[0].Fix)
	}
	// The same version again (a repeat of the same read) and newer ones apply.
	if err := x.SetState(ctx, "d1", fleet.State{Online: true, Busy: true, Skills: tow, Version: 5}); err != nil {
		t.Fatal(err)
	}
	if st := lookup(); !st.Busy {
		t.Fatalf("state of equal version not applied: %+v", st)
	}
	if err := x.SetState(ctx, "d1", fleet.State{Online: true, Skills: tow | jump, Version: 6}); err != nil {
		t.Fatal(err)
	}
	if st := lookup(); st != (fleet.State{Online: true, Skills: tow | jump, Version: 6}) {
		t.Fatalf("newer state not applied: %+v", st)
	}
}

func testOutOfOrder(t *testing.T, x fleet.Index) {
	ctx := context.Background()
	put(t, x, "d1", north(fatih, 1), ready)
	if _, err := x.Move(ctx, fix("d1", north(fatih, 5), t0.Add(-time.Second))); err != nil {
		t.Fatal(err)
	}
	got, _ := x.Lookup(ctx, []string{"d1"})
	if len(got) != 1 || got[0].Fix.Lat != north(fatih, 1).Lat || !got[0].Fix.At.Equal(t0) {
		t.Fatalf("an older fix moved the driver back: %+v", got)
	}
	if _, err := x.Move(ctx, fix("d1", north(fatih, 5), t0.Add(time.Second))); err != nil {
		t.Fatal(err)
	}
	got, _ = x.Lookup(ctx, []string{"d1"})
	if got[0].Fix.Lat != north(fatih, 5).Lat {
		t.Fatalf("a newer fix was not recorded: %+v", got[0].Fix)
	}
}

func testMoveAcross(t *testing.T, x fleet.Index) {
	ctx := context.Background()
	put(t, x, "d1", north(fatih, 1), ready)
	put(t, x, "d2", north(fatih, 2), ready)
	kadikoy := geo.Point{Lat: 40.9909, Lng: 29.0303}
	for i := 1; i <= 20; i++ { // through many cells, ending in Kadıköy
		p := geo.Point{Lat: fatih.Lat + (kadikoy.Lat-fatih.Lat)*float64(i)/20, Lng: fatih.Lng + (kadikoy.Lng-fatih.Lng)*float64(i)/20}
		if _, err := x.Move(ctx, fix("d1", p, t0.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	if ids := near(t, x, query(1.5, 10)); slices.Contains(ids, "d1") {
		t.Errorf("d1 still found near Fatih after driving away: %v", ids)
	}
	q := fleet.Query{Center: kadikoy, RadiusKm: 0.5, Limit: 10}
	if ids := near(t, x, q); !slices.Equal(ids, []string{"d1"}) {
		t.Errorf("near Kadıköy: %v, want [d1]", ids)
	}
}

func testRemove(t *testing.T, x fleet.Index) {
	ctx := context.Background()
	put(t, x, "d1", north(fatih, 1), ready)
	put(t, x, "d2", north(fatih, 2), ready)
	if err := x.Remove(ctx, "d1"); err != nil {
		t.Fatal(err)
	}
	if err := x.Remove(ctx, "never-there"); err != nil {
		t.Fatalf("Remove of an unknown driver: %v", err)
	}
	if ids := near(t, x, query(10, 10)); !slices.Equal(ids, []string{"d2"}) {
		t.Errorf("after Remove: %v, want [d2]", ids)
	}
	if got, _ := x.Lookup(ctx, []string{"d1"}); len(got) != 0 {
		t.Errorf("Lookup after Remove: %+v", got)
	}
	if unknown, _ := x.Move(ctx, fix("d1", fatih, t0.Add(time.Minute))); !slices.Equal(unknown, []string{"d1"}) {
		t.Errorf("a removed driver is still known: unknown = %v", unknown)
	}
	// A removed driver's old state does not come back with a new one.
	if err := x.SetState(ctx, "d1", fleet.State{Online: true, Version: 0}); err != nil {
		t.Fatal(err)
	}
	if got, _ := x.Lookup(ctx, []string{"d1"}); len(got) != 1 || got[0].HasFix || got[0].State.Version != 0 {
		t.Errorf("re-added driver: %+v", got)
	}
}

func testBadQueries(t *testing.T, x fleet.Index) {
	for _, q := range []fleet.Query{
		query(10, 0), query(10, fleet.MaxNearbyLimit+1), query(0, 5), query(-1, 5), query(math.NaN(), 5),
		{Center: geo.Point{Lat: 91, Lng: 0}, RadiusKm: 1, Limit: 1},
	} {
		if _, err := x.Nearby(context.Background(), q); !errors.Is(err, fleet.ErrBadQuery) {
			t.Errorf("Nearby(%+v) = %v, want ErrBadQuery", q, err)
		}
	}
}

// testOracle compares Nearby with a brute-force scan over a random fleet
// spread over İstanbul, for many random queries.
func testOracle(t *testing.T, x fleet.Index) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 11))
	type drv struct {
		f  fleet.Fix
		st fleet.State
	}
	var all []drv
	for i := range 1500 {
		d := drv{
			f: fleet.Fix{DriverID: fmt.Sprintf("drv%04d", i), Lat: 40.85 + rng.Float64()*0.35, Lng: 28.55 + rng.Float64()*0.85,
				At: t0.Add(-time.Duration(rng.IntN(300)) * time.Second)},
			st: fleet.State{Online: rng.IntN(5) > 0, Busy: rng.IntN(3) == 0, Skills: fleet.Skills(1 + rng.IntN(63)), Version: 1},
		}
		all = append(all, d)
		if err := x.Update(ctx, d.f, d.st); err != nil {
			t.Fatal(err)
		}
	}
	for qi := range 60 {
		q := fleet.Query{
			Center:   geo.Point{Lat: 40.85 + rng.Float64()*0.35, Lng: 28.55 + rng.Float64()*0.85},
			RadiusKm: []float64{0.8, 2, 5, 15, 60}[qi%5],
			Limit:    []int{1, 5, 20, 200}[qi%4],
			Filter: fleet.Filter{Online: qi%2 == 0, Free: qi%3 == 0, Need: fleet.Skills(rng.IntN(4)),
				FreshAfter: t0.Add(-time.Duration(rng.IntN(400)) * time.Second)},
		}
		if qi%7 == 0 {
			q.Exclude = []string{all[rng.IntN(len(all))].f.DriverID}
		}
		type scored struct {
			id string
			km float64
		}
		var want []scored
		for _, d := range all {
			km := geo.DistanceKm(q.Center.Lat, q.Center.Lng, d.f.Lat, d.f.Lng)
			if km <= q.RadiusKm && q.Admits(d.st, d.f.At) && !q.Excluded(d.f.DriverID) {
				want = append(want, scored{d.f.DriverID, km})
			}
		}
		sort.Slice(want, func(i, j int) bool {
			if want[i].km != want[j].km {
				return want[i].km < want[j].km
			}
			return want[i].id < want[j].id
		})
		got, err := x.Nearby(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		// Backends may round a position to well under a metre (Redis
		// keeps a 52-bit geohash), so compare distances rank by rank
		// within 2 m and leave out drivers within 2 m of the radius.
		const tol = 0.002
		trim := func(s []scored) []scored {
			for len(s) > 0 && s[len(s)-1].km > q.RadiusKm-tol {
				s = s[:len(s)-1]
			}
			return s
		}
		gotS := make([]scored, len(got))
		seen := map[string]bool{}
		for i, c := range got {
			gotS[i] = scored{c.DriverID, c.DistanceKm}
			if seen[c.DriverID] {
				t.Fatalf("query %d: %s returned twice", qi, c.DriverID)
			}
			seen[c.DriverID] = true
		}
		n := min(len(want), q.Limit)
		if len(got) < len(trim(slices.Clone(want[:n]))) || len(got) > n {
			t.Fatalf("query %d (%+v): %d candidates, want %d", qi, q, len(got), n)
		}
		for i := range gotS {
			if math.Abs(gotS[i].km-want[i].km) > tol {
				t.Fatalf("query %d rank %d: %s at %.4f km, want %s at %.4f km", qi, i, gotS[i].id, gotS[i].km, want[i].id, want[i].km)
			}
		}
	}
}

// testConcurrent moves, re-states and searches at once; the race detector
// watches, and afterwards every driver sits at its newest fix.
func testConcurrent(t *testing.T, x fleet.Index) {
	ctx := context.Background()
	const drivers, steps = 40, 60
	for i := range drivers {
		put(t, x, fmt.Sprintf("c%02d", i), fatih, ready)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 3*drivers)
	for i := range drivers {
		id := fmt.Sprintf("c%02d", i)
		wg.Add(2)
		go func() { // two writers per driver, interleaved fixes
			defer wg.Done()
			for s := 0; s < steps; s += 2 {
				if _, err := x.Move(ctx, fix(id, north(fatih, float64(s)/10), t0.Add(time.Duration(s)*time.Second))); err != nil {
					errs <- err
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for s := 1; s < steps; s += 2 {
				if _, err := x.Move(ctx, fix(id, north(fatih, float64(s)/10), t0.Add(time.Duration(s)*time.Second))); err != nil {
					errs <- err
					return
				}
				if err := x.SetState(ctx, id, fleet.State{Online: true, Skills: tow, Version: int64(s)}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 30 {
			if _, err := x.Nearby(ctx, query(20, 25)); err != nil {
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	ids := make([]string, drivers)
	for i := range ids {
		ids[i] = fmt.Sprintf("c%02d", i)
	}
	got, err := x.Lookup(ctx, ids)
	if err != nil || len(got) != drivers {
		t.Fatalf("Lookup: %d entries, %v", len(got), err)
	}
	last := north(fatih, float64(steps-1)/10)
	for _, e := range got {
		if !e.Fix.At.Equal(t0.Add((steps-1)*time.Second)) || math.Abs(e.Fix.Lat-last.Lat) > 1e-6 || e.State.Version != steps-1 {
			t.Errorf("%s ended at %+v state %+v, want the last fix and version %d", e.DriverID, e.Fix, e.State, steps-1)
		}
	}
}
