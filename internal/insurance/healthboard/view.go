package healthboard

import (
	"cmp"
	"errors"
	"slices"
	"time"

	"github.com/yolda/yolda/internal/insurance/resilient"
)

// ErrNoBoard: the process has no board to read (no broker): it answers
// with its own clients' health alone.
var ErrNoBoard = errors.New("no health board: no broker")

// Reader returns the snapshots on the board of the processes alive now,
// or an error when the board cannot be read (bus.HealthBoard, decoded).
type Reader interface {
	Snapshots() ([]Snapshot, error)
}

// Insurer is one insurer's health over the processes that call it.
type Insurer struct {
	// Health is the merge of Reports, or the configured insurer with no
	// calls when no process reports it.
	resilient.Health
	// Reports are what each process reported, by process; empty when no
	// live process calls the insurer.
	Reports []Report
}

// Report is one process's view of one insurer.
type Report struct {
	Process string
	// At is when the process posted it (now for this process's own).
	At time.Time
	resilient.Health
}

// Reporter is a process whose snapshot is in an Answer.
type Reporter struct {
	Process string
	At      time.Time
	// Self: the process answering.
	Self bool
}

// Answer is the insurers' health of a deployment, as GET /v1/insurers
// shows it.
type Answer struct {
	Insurers []Insurer
	// Reporters are the processes whose snapshots Insurers merges, by name.
	Reporters []Reporter
	// BoardErr is why the answer is this process's own view alone (the
	// board unreachable, or none); nil when it is the board's.
	BoardErr error
}

// View answers with the insurers' health over every live process of the
// deployment: this one's clients, live, and the others' last snapshots on
// the board.
type View struct {
	// Configured are this process's clients: the insurers, in order.
	Configured Source
	// Calls says this process runs the insurance role: Configured's
	// health is live, and this process's own report.
	Calls bool
	// Process is this process's key on the board.
	Process string
	// Board reads the board; nil without one.
	Board Reader
	// Now is the clock (time.Now if nil).
	Now func() time.Time
}

// Health returns each insurer's health over the processes that call it,
// in configuration order and then, for any insurer another process calls
// but this one's configuration does not name, by code. When the board
// cannot be read it falls back to this process's own clients, and says
// why in BoardErr.
func (v View) Health() Answer {
	now := v.Now
	if now == nil {
		now = time.Now
	}
	t := now()
	var configured []resilient.Health
	if v.Configured != nil {
		configured = v.Configured.Health()
	}
	var snaps []Snapshot
	if v.Calls {
		snaps = append(snaps, Snapshot{Process: v.Process, At: t, Insurers: configured})
	}
	var boardErr error
	if v.Board == nil {
		boardErr = ErrNoBoard
	} else if others, err := v.Board.Snapshots(); err != nil {
		boardErr = err
	} else {
		for _, s := range others {
			// This process's own is live above, fresher than its post.
			if s.Process != v.Process {
				snaps = append(snaps, s)
			}
		}
	}
	slices.SortStableFunc(snaps, func(a, b Snapshot) int { return cmp.Compare(a.Process, b.Process) })
	reporters := make([]Reporter, len(snaps))
	for i, s := range snaps {
		reporters[i] = Reporter{Process: s.Process, At: s.At, Self: s.Process == v.Process}
	}
	return Answer{Insurers: Merge(configured, snaps), Reporters: reporters, BoardErr: boardErr}
}

// Merge gathers the snapshots' reports per insurer: those of configured
// first, in order, then any other code the snapshots name, by code. The
// snapshots are taken in the order given.
func Merge(configured []resilient.Health, snaps []Snapshot) []Insurer {
	out := make([]Insurer, 0, len(configured))
	index := map[string]int{}
	for _, h := range configured {
		index[h.Code] = len(out)
		out = append(out, Insurer{Health: h, Reports: []Report{}})
	}
	var extra []Insurer
	extraIndex := map[string]int{}
	for _, s := range snaps {
		for _, h := range s.Insurers {
			r := Report{Process: s.Process, At: s.At, Health: h}
			if i, ok := index[h.Code]; ok {
				out[i].Reports = append(out[i].Reports, r)
				continue
			}
			i, ok := extraIndex[h.Code]
			if !ok {
				i = len(extra)
				extraIndex[h.Code] = i
				extra = append(extra, Insurer{Health: resilient.Health{Code: h.Code, Name: h.Name, Breaker: "closed"}})
			}
			extra[i].Reports = append(extra[i].Reports, r)
		}
	}
	slices.SortFunc(extra, func(a, b Insurer) int { return cmp.Compare(a.Code, b.Code) })
	out = append(out, extra...)
	for i := range out {
		if len(out[i].Reports) > 0 {
			out[i].Health = merged(out[i].Code, out[i].Name, out[i].Reports)
		}
	}
	return out
}

// breakerRank orders breaker states from best to worst.
var breakerRank = map[string]int{"closed": 0, "half-open": 1, "open": 2}

// merged is the health of an insurer over its reports: the worst breaker
// (one process's open breaker means checks wait there); calls, errors and
// calls in flight summed; the error rate, which each report computes over
// its Recent attempts, weighted by them (exact: the rate over all those
// attempts); the latency percentiles weighted likewise (an approximation:
// percentiles do not add, but the weighted mean lies between the
// processes' own values). A single report is returned as it is.
func merged(code, name string, rs []Report) resilient.Health {
	if len(rs) == 1 {
		h := rs[0].Health
		h.Code, h.Name = code, name
		return h
	}
	h := resilient.Health{Code: code, Name: name, Breaker: "closed"}
	var rate, p50, p99 float64
	for _, r := range rs {
		if breakerRank[r.Breaker] > breakerRank[h.Breaker] {
			h.Breaker = r.Breaker
		}
		h.Calls += r.Calls
		h.Errors += r.Errors
		h.InFlight += r.InFlight
		h.Recent += r.Recent
		w := float64(r.Recent)
		rate += w * r.ErrorRate
		p50 += w * float64(r.LatencyP50)
		p99 += w * float64(r.LatencyP99)
	}
	if h.Recent > 0 {
		n := float64(h.Recent)
		h.ErrorRate = rate / n
		h.LatencyP50 = time.Duration(p50 / n)
		h.LatencyP99 = time.Duration(p99 / n)
	}
	return h
}
