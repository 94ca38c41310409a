package dispatch

import (
	"math"
	"sort"
)

// match chooses a candidate for as many plans as it can, each driver for
// one plan at most. Plans that compete for the same drivers form a group
// (the requests waiting in one area); a group larger than the batch
// threshold is matched for the minimum total ETA, any other nearest-first
// in the order the requests came in.
func (w *Worker) match(plans []*plan) {
	for _, group := range competing(plans) {
		if w.matcher != nil && w.cfg.BatchThreshold > 0 && len(group) > w.cfg.BatchThreshold {
			w.batch(group)
			continue
		}
		w.greedy(group)
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
	var find func(int) int
	find = func(i int) int {
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

// greedy gives each plan, in order, its fastest candidate still free.
func (w *Worker) greedy(group []*plan) {
	used := map[string]bool{}
	for _, p := range group {
		best := -1
		for k, c := range p.cands {
			if !used[c.DriverID] && (best < 0 || c.eta < p.cands[best].eta) {
				best = k
			}
		}
		if best >= 0 {
			p.chosen = best
			used[p.cands[best].DriverID] = true
			w.matched.WithLabelValues("greedy").Inc()
		}
	}
}

// batch matches the group for the minimum total ETA.
func (w *Worker) batch(group []*plan) {
	col := map[string]int{}
	for _, p := range group {
		for _, c := range p.cands {
			if _, ok := col[c.DriverID]; !ok {
				col[c.DriverID] = len(col)
			}
		}
	}
	rows, cols := len(group), len(col)
	cost := make([]float64, rows*cols)
	for i := range cost {
		cost[i] = math.Inf(1)
	}
	for i, p := range group {
		for _, c := range p.cands {
			cost[i*cols+col[c.DriverID]] = c.eta
		}
	}
	assign := w.matcher.Match(cost, rows, cols)
	for i, p := range group {
		if i >= len(assign) || assign[i] < 0 {
			continue
		}
		for k, c := range p.cands {
			if col[c.DriverID] == assign[i] {
				p.chosen = k
				w.matched.WithLabelValues("batch").Inc()
				break
			}
		}
	}
}
