// Package matching pairs free drivers with waiting requests. Greedy is
// today's dispatch, one request at a time, oldest first, each taking the
// nearest free driver; Optimal matches a whole batch at once so that the
// total estimated time of arrival is smallest (the Hungarian algorithm on
// a rectangular cost matrix), which is what pays at a peak when requests
// pile up. Both are deterministic: the same matrix gives the same pairs.
//
// The package knows nothing of stores or offers: the dispatch worker
// builds a Costs matrix (BuildCosts) from candidates the fleet found and
// turns the pairs into offers.
package matching

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/geo"
)

// Infeasible marks a pair that must never be matched (the driver cannot
// do the service, or is too far).
var Infeasible = math.Inf(1)

// Costs is a dense cost matrix: Rows are drivers, Cols are requests, and
// V[r*Cols+c] is the cost (seconds of ETA) of sending driver r to request
// c, or Infeasible.
type Costs struct {
	Rows, Cols int
	V          []float64
}

// Reset sizes c for rows x cols, reusing its storage.
func (c *Costs) Reset(rows, cols int) {
	c.Rows, c.Cols = rows, cols
	if n := rows * cols; cap(c.V) >= n {
		c.V = c.V[:n]
	} else {
		c.V = make([]float64, n)
	}
}

// At is the cost of driver r for request c.
func (c *Costs) At(r, col int) float64 { return c.V[r*c.Cols+col] }

// Pair is one match: driver Row takes request Col at Cost.
type Pair struct {
	Row, Col int
	Cost     float64
}

// Job is a waiting request as matching sees it.
type Job struct {
	At   geo.Point
	Need fleet.Skills
}

// Driver is a free driver as matching sees it.
type Driver struct {
	At     geo.Point
	Skills fleet.Skills
}

// Matcher holds scratch space so that repeated matching allocates little.
// It is not safe for concurrent use; use one per goroutine.
type Matcher struct {
	from, to   []geo.Point
	work       []float64
	u, v, minv []float64
	p, way     []int
	used       []bool
	colTaken   []bool
}

// BuildCosts fills c with the estimated seconds from every driver to every
// job, Infeasible where the driver lacks a skill the job needs or the
// estimate exceeds maxSeconds (0: no bound).
func (m *Matcher) BuildCosts(ctx context.Context, eta geo.Estimator, drivers []Driver, jobs []Job, maxSeconds float64, c *Costs) error {
	c.Reset(len(drivers), len(jobs))
	m.from = m.from[:0]
	for _, d := range drivers {
		m.from = append(m.from, d.At)
	}
	m.to = m.to[:0]
	for _, j := range jobs {
		m.to = append(m.to, j.At)
	}
	if err := eta.Matrix(ctx, m.from, m.to, c.V); err != nil {
		return fmt.Errorf("cost matrix: %w", err)
	}
	for r, d := range drivers {
		row := c.V[r*c.Cols : (r+1)*c.Cols]
		for col, j := range jobs {
			if !d.Skills.Has(j.Need) || (maxSeconds > 0 && row[col] > maxSeconds) {
				row[col] = Infeasible
			}
		}
	}
	return nil
}

// Greedy takes the requests in column order (oldest first) and gives each
// the cheapest feasible driver not yet taken (the lowest row on a tie).
// It appends the pairs to dst and returns it.
func (m *Matcher) Greedy(c *Costs, dst []Pair) []Pair {
	m.used = resize(m.used, c.Rows)
	clear(m.used)
	for col := 0; col < c.Cols; col++ {
		best, bestCost := -1, Infeasible
		for r := 0; r < c.Rows; r++ {
			if v := c.V[r*c.Cols+col]; v < bestCost && !m.used[r] {
				best, bestCost = r, v
			}
		}
		if best >= 0 {
			m.used[best] = true
			dst = append(dst, Pair{Row: best, Col: col, Cost: bestCost})
		}
	}
	return dst
}

// Optimal finds a matching with as many pairs as the feasible pairs allow
// and, among those, the smallest total cost. It appends the pairs, in row
// order, to dst and returns it. Time is O(n²·m) for n = min(Rows, Cols)
// and m = max(Rows, Cols): 300 drivers x 500 requests take milliseconds.
func (m *Matcher) Optimal(c *Costs, dst []Pair) []Pair {
	if c.Rows == 0 || c.Cols == 0 {
		return dst
	}
	n, k := c.Rows, c.Cols
	transposed := n > k
	if transposed {
		n, k = k, n
	}
	// Infeasible pairs cost more than any set of feasible ones, so the
	// solver first maximises the number of feasible pairs, then
	// minimises their total; they are dropped afterwards.
	maxCost := 0.0
	for _, v := range c.V {
		if v != Infeasible && v > maxCost {
			maxCost = v
		}
	}
	big := (maxCost+1)*float64(n+1) + 1
	m.work = resize(m.work, n*k)
	w := m.work
	for r := 0; r < c.Rows; r++ {
		for col := 0; col < c.Cols; col++ {
			v := c.V[r*c.Cols+col]
			if v == Infeasible {
				v = big
			}
			if transposed {
				w[col*k+r] = v
			} else {
				w[r*k+col] = v
			}
		}
	}
	match := m.hungarian(w, n, k) // match[col] = row (1-based) or 0
	start := len(dst)
	for col := 1; col <= k; col++ {
		row := match[col]
		if row == 0 {
			continue
		}
		r, cc := row-1, col-1
		if transposed {
			r, cc = cc, r
		}
		if v := c.V[r*c.Cols+cc]; v != Infeasible {
			dst = append(dst, Pair{Row: r, Col: cc, Cost: v})
		}
	}
	if !transposed {
		// Pairs come out in column order; put them in row order.
		sortPairsByRow(dst[start:])
	}
	return dst
}

// hungarian assigns each of the n rows of the n x k matrix w (n <= k) to
// a distinct column minimising the total, by successive shortest
// augmenting paths with potentials (Kuhn-Munkres in the form of
// Jonker-Volgenant). It returns p, where p[col] is the 1-based row given
// column col (1-based), or 0.
func (m *Matcher) hungarian(w []float64, n, k int) []int {
	m.u = resize(m.u, n+1)
	m.v = resize(m.v, k+1)
	m.minv = resize(m.minv, k+1)
	m.p = resize(m.p, k+1)
	m.way = resize(m.way, k+1)
	m.used = resize(m.used, k+1)
	u, v, minv, p, way, used := m.u, m.v, m.minv, m.p, m.way, m.used
	clear(u)
	clear(v)
	clear(p)
	clear(way)
	inf := math.Inf(1)
	for i := 1; i <= n; i++ {
		p[0] = i
		j0 := 0
		for j := range minv {
			minv[j] = inf
		}
		clear(used)
		for {
			used[j0] = true
			i0 := p[j0]
			row := w[(i0-1)*k:]
			delta, j1 := inf, 0
			ui0 := u[i0]
			for j := 1; j <= k; j++ {
				if used[j] {
					continue
				}
				cur := row[j-1] - ui0 - v[j]
				if cur < minv[j] {
					minv[j] = cur
					way[j] = j0
				}
				if minv[j] < delta {
					delta, j1 = minv[j], j
				}
			}
			for j := 0; j <= k; j++ {
				if used[j] {
					u[p[j]] += delta
					v[j] -= delta
				} else {
					minv[j] -= delta
				}
			}
			j0 = j1
			if p[j0] == 0 {
				break
			}
		}
		for j0 != 0 { // augment along the path
			j1 := way[j0]
			p[j0] = p[j1]
			j0 = j1
		}
	}
	return p
}

func sortPairsByRow(ps []Pair) {
	slices.SortFunc(ps, func(a, b Pair) int { return a.Row - b.Row })
}

func resize[T any](s []T, n int) []T {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]T, n)
}
