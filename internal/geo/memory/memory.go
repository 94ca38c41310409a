// Package memory is the in-process position index (fleet.Index): a uniform
// grid of cells over latitude and longitude, each cell listing the drivers
// in it, searched ring by ring outwards from the centre so that a
// k-nearest query touches a few cells however large the fleet. It is the
// embedded default; several processes share positions through the Redis
// index instead. docs/benchmarks.md compares it with an R-tree and a scan.
package memory

import (
	"context"
	"math"
	"slices"
	"sync"

	"github.com/yolda/yolda/internal/fleet"
)

// DefaultCellDeg is the cell size: 0.01° is 1.1 km north-south and 0.84 km
// east-west in İstanbul, a few drivers per cell at peak density.
const DefaultCellDeg = 0.01

// earthRadiusKm is the radius geo.DistanceKm uses; distances here must
// agree with it to the last bit at the radius boundary.
const earthRadiusKm = 6371.0088

const degToRad = math.Pi / 180

// Index is a grid position index. The zero value is not usable; call New.
type Index struct {
	cellDeg  float64
	rows     int64
	cols     int64
	cellHKm  float64 // north-south size of a cell
	mu       sync.RWMutex
	slots    []slot
	free     []int32
	byID     map[string]int32
	cells    map[uint64]*cell
	occupied int // cells with members
}

var _ fleet.Index = (*Index)(nil)

type slot struct {
	id     string
	st     fleet.State
	fix    fleet.Fix
	hasFix bool
	// cosLat is cos(fix.Lat), kept so a search does no cosine per point.
	cosLat float64
	cell   uint64
	pos    int32 // index in cell.members
}

type cell struct{ members []int32 }

// Options tune the grid.
type Options struct {
	// CellDeg is the cell size in degrees (0: DefaultCellDeg).
	CellDeg float64
}

// New returns an empty index.
func New(opts Options) *Index {
	d := opts.CellDeg
	if d <= 0 {
		d = DefaultCellDeg
	}
	return &Index{
		cellDeg: d,
		rows:    int64(math.Ceil(180 / d)),
		cols:    int64(math.Ceil(360 / d)),
		cellHKm: d * degToRad * earthRadiusKm,
		byID:    map[string]int32{},
		cells:   map[uint64]*cell{},
	}
}

func (x *Index) rowCol(lat, lng float64) (int64, int64) {
	r := int64(math.Floor((lat + 90) / x.cellDeg))
	c := int64(math.Floor((lng + 180) / x.cellDeg))
	return min(max(r, 0), x.rows-1), ((c % x.cols) + x.cols) % x.cols
}

func key(r, c int64) uint64 { return uint64(r)<<32 | uint64(c) }

// Move implements fleet.Index.
func (x *Index) Move(_ context.Context, fixes ...fleet.Fix) ([]string, error) {
	var unknown []string
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, f := range fixes {
		i, ok := x.byID[f.DriverID]
		if !ok {
			unknown = append(unknown, f.DriverID)
			continue
		}
		x.place(i, f)
	}
	return unknown, nil
}

// Update implements fleet.Index.
func (x *Index) Update(_ context.Context, f fleet.Fix, st fleet.State) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	i := x.slotFor(f.DriverID)
	x.setState(i, st)
	x.place(i, f)
	return nil
}

// SetState implements fleet.Index.
func (x *Index) SetState(_ context.Context, driverID string, st fleet.State) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.setState(x.slotFor(driverID), st)
	return nil
}

// Remove implements fleet.Index.
func (x *Index) Remove(_ context.Context, driverID string) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	i, ok := x.byID[driverID]
	if !ok {
		return nil
	}
	if x.slots[i].hasFix {
		x.unlink(i)
	}
	x.slots[i] = slot{}
	delete(x.byID, driverID)
	x.free = append(x.free, i)
	return nil
}

// Lookup implements fleet.Index.
func (x *Index) Lookup(_ context.Context, ids []string) ([]fleet.Entry, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]fleet.Entry, 0, len(ids))
	for _, id := range ids {
		if i, ok := x.byID[id]; ok {
			s := &x.slots[i]
			out = append(out, fleet.Entry{DriverID: id, State: s.st, Fix: s.fix, HasFix: s.hasFix})
		}
	}
	return out, nil
}

// Len is the number of drivers the index knows.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.byID)
}

// slotFor returns the driver's slot, making one (state zero, version 0,
// no fix) if the driver is new. Callers hold the write lock.
func (x *Index) slotFor(id string) int32 {
	if i, ok := x.byID[id]; ok {
		return i
	}
	var i int32
	if n := len(x.free); n > 0 {
		i = x.free[n-1]
		x.free = x.free[:n-1]
	} else {
		x.slots = append(x.slots, slot{})
		i = int32(len(x.slots) - 1)
	}
	x.slots[i] = slot{id: id, st: fleet.State{Version: math.MinInt64}}
	x.byID[id] = i
	return i
}

func (x *Index) setState(i int32, st fleet.State) {
	if s := &x.slots[i]; st.Version >= s.st.Version {
		s.st = st
	}
}

// place records a fix unless it is older than the one held.
func (x *Index) place(i int32, f fleet.Fix) {
	s := &x.slots[i]
	if s.hasFix && f.At.Before(s.fix.At) {
		return
	}
	r, c := x.rowCol(f.Lat, f.Lng)
	k := key(r, c)
	if s.hasFix && s.cell != k {
		x.unlink(i)
		s.hasFix = false
	}
	s.fix = f
	s.cosLat = math.Cos(f.Lat * degToRad)
	if !s.hasFix {
		s.hasFix = true
		s.cell = k
		cl := x.cells[k]
		if cl == nil {
			cl = &cell{}
			x.cells[k] = cl
		}
		if len(cl.members) == 0 {
			x.occupied++
		}
		s.pos = int32(len(cl.members))
		cl.members = append(cl.members, i)
	}
}

// unlink takes slot i out of its cell (swap with the last member).
func (x *Index) unlink(i int32) {
	s := &x.slots[i]
	cl := x.cells[s.cell]
	last := cl.members[len(cl.members)-1]
	cl.members[s.pos] = last
	x.slots[last].pos = s.pos
	cl.members = cl.members[:len(cl.members)-1]
	if len(cl.members) == 0 {
		x.occupied--
		// Empty cells are kept (a driver soon drives in again) unless
		// the map grows much larger than what is occupied.
		if len(x.cells) > 4*x.occupied+1024 {
			x.compact()
		}
	}
}

func (x *Index) compact() {
	for k, cl := range x.cells {
		if len(cl.members) == 0 {
			delete(x.cells, k)
		}
	}
}

// Nearby implements fleet.Index.
func (x *Index) Nearby(_ context.Context, q fleet.Query) ([]fleet.Candidate, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	// Haversine without the final arcsine: h grows with distance, so it
	// ranks and bounds points as well as the distance does.
	hMax := sq(math.Sin(q.RadiusKm / (2 * earthRadiusKm)))
	cosLat0 := math.Cos(q.Center.Lat * degToRad)
	s := search{q: &q, lat0: q.Center.Lat, lng0: q.Center.Lng, cosLat0: cosLat0, hMax: hMax,
		best: make([]hit, 0, q.Limit)}

	x.mu.RLock()
	defer x.mu.RUnlock()
	// The narrowest cell (east-west, at the highest latitude the radius
	// reaches) bounds how far ring r is: at least (r-1) of them.
	latReach := min(89.0, math.Abs(q.Center.Lat)+q.RadiusKm/x.cellHKm*x.cellDeg+x.cellDeg)
	minCellKm := min(x.cellHKm, x.cellHKm*math.Cos(latReach*degToRad)) * 0.99
	rings := int64(math.Ceil(q.RadiusKm/minCellKm)) + 1
	// Ring by ring is cheap while the nearest candidates are near; when
	// the disc holds more cells than are occupied and the search goes on
	// (few drivers pass the filter), visiting the occupied cells is
	// cheaper: past that budget, start again that way.
	budget := -1
	if side := 2*rings + 1; side*side > int64(4*x.occupied+16) {
		budget = 2*x.occupied + 16
	}
	r0, c0 := x.rowCol(q.Center.Lat, q.Center.Lng)
	for r := int64(0); r <= rings; r++ {
		if len(s.best) == q.Limit && r >= 1 {
			// Every point of ring r is at least (r-1) narrow cells away.
			reach := float64(r-1) * minCellKm
			if reach > 0 && sq(math.Sin(reach/(2*earthRadiusKm))) > s.best[0].h {
				break
			}
		}
		s.probes += x.ring(&s, r0, c0, r)
		if budget >= 0 && s.probes > budget {
			s.best = s.best[:0]
			for _, cl := range x.cells {
				x.scan(&s, cl)
			}
			break
		}
	}
	return x.finish(&s), nil
}

// ring scans the cells at Chebyshev distance r of (r0, c0) and returns how
// many it probed.
func (x *Index) ring(s *search, r0, c0, r int64) int {
	probes := 0
	visit := func(row, col int64) {
		probes++
		if row < 0 || row >= x.rows {
			return
		}
		col = ((col % x.cols) + x.cols) % x.cols
		if cl := x.cells[key(row, col)]; cl != nil {
			x.scan(s, cl)
		}
	}
	if r == 0 {
		visit(r0, c0)
		return probes
	}
	for c := c0 - r; c <= c0+r; c++ {
		visit(r0-r, c)
		visit(r0+r, c)
	}
	for row := r0 - r + 1; row <= r0+r-1; row++ {
		visit(row, c0-r)
		visit(row, c0+r)
	}
	return probes
}

type hit struct {
	h float64
	i int32
}

type search struct {
	q                   *fleet.Query
	lat0, lng0, cosLat0 float64
	hMax                float64
	best                []hit // max-heap on (h, id) of at most q.Limit hits
	probes              int
}

func (x *Index) scan(s *search, cl *cell) {
	for _, i := range cl.members {
		sl := &x.slots[i]
		dLat := (sl.fix.Lat - s.lat0) * degToRad
		dLng := (sl.fix.Lng - s.lng0) * degToRad
		h := sq(math.Sin(dLat/2)) + s.cosLat0*sl.cosLat*sq(math.Sin(dLng/2))
		if h > s.hMax || !s.q.Admits(sl.st, sl.fix.At) {
			continue
		}
		if len(s.best) == s.q.Limit && !x.less(hit{h, i}, s.best[0]) {
			continue
		}
		if s.q.Excluded(sl.id) {
			continue
		}
		x.push(s, hit{h, i})
	}
}

// less orders hits by distance, then driver id, so results are the same
// whatever the order of the cells.
func (x *Index) less(a, b hit) bool {
	if a.h != b.h {
		return a.h < b.h
	}
	return x.slots[a.i].id < x.slots[b.i].id
}

func (x *Index) push(s *search, h hit) {
	b := s.best
	if len(b) < s.q.Limit {
		b = append(b, h)
		for j := len(b) - 1; j > 0; { // sift up
			p := (j - 1) / 2
			if !x.less(b[p], b[j]) {
				break
			}
			b[p], b[j] = b[j], b[p]
			j = p
		}
		s.best = b
		return
	}
	b[0] = h
	for j := 0; ; { // sift down
		l, m := 2*j+1, j
		if l < len(b) && x.less(b[m], b[l]) {
			m = l
		}
		if r := l + 1; r < len(b) && x.less(b[m], b[r]) {
			m = r
		}
		if m == j {
			break
		}
		b[j], b[m] = b[m], b[j]
		j = m
	}
}

func (x *Index) finish(s *search) []fleet.Candidate {
	slices.SortFunc(s.best, func(a, b hit) int {
		if x.less(a, b) {
			return -1
		}
		if x.less(b, a) {
			return 1
		}
		return 0
	})
	out := make([]fleet.Candidate, len(s.best))
	for k, h := range s.best {
		sl := &x.slots[h.i]
		out[k] = fleet.Candidate{DriverID: sl.id, Fix: sl.fix, State: sl.st,
			DistanceKm: 2 * earthRadiusKm * math.Asin(math.Min(1, math.Sqrt(h.h)))}
	}
	return out
}

func sq(v float64) float64 { return v * v }
