package dispatch

import (
	"sort"
	"time"

	"github.com/yolda/yolda/internal/matching"
)

// match chooses a candidate for as many plans as it can, each driver for
// one plan at most. Plans that compete for the same drivers form a group
// (the requests waiting in one area); a group larger than the batch
// threshold is matched for the minimum total ETA, any other nearest-first
// in the order the requests came in.
func (w *Worker) match(plans []*plan, now time.Time) {
	var m matching.Matcher
	var c matching.Costs
	var pairs []matching.Pair
	for _, group := range competing(plans) {
		// Rows are the group's drivers, columns its requests, in order.
		row := map[string]int{}
		var drivers []string
		for _, p := range group {
			for _, k := range p.cands {
				if _, ok := row[k.DriverID]; !ok {
					row[k.DriverID] = len(drivers)
					drivers = append(drivers, k.DriverID)
				}
			}
		}
		if len(drivers) == 0 {
			continue
		}
		c.Reset(len(drivers), len(group))
		for i := range c.V {
			c.V[i] = matching.Infeasible
		}
		batch := w.cfg.BatchThreshold > 0 && len(group) > w.cfg.BatchThreshold
		for col, p := range group {
			// The batch serves whom it reaches soonest; left alone it would
			// pass over a request far from every driver again and again.
			// Its costs shrink as it waits (halved after a minute), so a
			// request passed over gains on the newer ones. Nearest-first
			// serves the oldest first anyway.
			discount := 1.0
			if batch {
				discount = 1 / (1 + max(now.Sub(p.waiting), 0).Minutes())
			}
			for _, k := range p.cands {
				c.V[row[k.DriverID]*c.Cols+col] = k.ETA.Seconds() * discount
			}
		}
		method := "greedy"
		if batch {
			method = "batch"
			pairs = m.Optimal(&c, pairs[:0])
		} else {
			pairs = m.Greedy(&c, pairs[:0])
		}
		for _, pr := range pairs {
			p := group[pr.Col]
			for k, cand := range p.cands {
				if cand.DriverID == drivers[pr.Row] {
					p.chosen = k
					break
				}
			}
		}
		w.matched.WithLabelValues(method).Add(float64(len(pairs)))
	}
}

// competing splits plans into groups that share no candidate, each in
// request order (ids are time-ordered), groups in the order of their first
// request.
func competing(plans []*plan) [][]*plan {
	parent := make([]int, len(plans))
	for i := range parent {
		parent[i] = i
	}
	find := func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	owner := map[string]int{}
	for i, p := range plans {
		for _, c := range p.cands {
			if j, ok := owner[c.DriverID]; ok {
				parent[find(i)] = find(j)
			} else {
				owner[c.DriverID] = i
			}
		}
	}
	sorted := make([]int, len(plans))
	for i := range sorted {
		sorted[i] = i
	}
	sort.Slice(sorted, func(a, b int) bool { return plans[sorted[a]].job.RequestID < plans[sorted[b]].job.RequestID })
	index := map[int]int{}
	var groups [][]*plan
	for _, i := range sorted {
		root := find(i)
		g, ok := index[root]
		if !ok {
			g = len(groups)
			index[root] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], plans[i])
	}
	return groups
}
