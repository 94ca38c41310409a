package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"
)

// Report is what a run saw.
type Report struct {
	Duration  time.Duration `json:"duration_ns"`
	Drivers   int           `json:"drivers"`
	Customers int           `json:"customers"`
	Operators int           `json:"operators"`
	Profile   Profile       `json:"profile"`

	Created     int64 `json:"created"`
	Assigned    int64 `json:"assigned"`
	Completed   int64 `json:"completed"`
	Unfulfilled int64 `json:"unfulfilled"`
	Rejected    int64 `json:"rejected"`
	Cancelled   int64 `json:"cancelled"`
	StillOpen   int   `json:"still_open"`
	// Skipped are requests the profile called for while every customer
	// had one open (more customers, or a lower rate, avoids them).
	Skipped int64 `json:"skipped"`

	TimeToOffer  Summary `json:"time_to_offer"`
	TimeToAssign Summary `json:"time_to_assignment"`
	// Fanout is driver send to customer receive; FanoutOperators, to
	// the operators' panels (every driver's positions).
	Fanout          Summary `json:"position_fanout"`
	FanoutOperators Summary `json:"position_fanout_operators"`

	PositionsSent    int64            `json:"positions_sent"`
	PositionsPerSec  float64          `json:"positions_per_second"`
	StatusesReceived int64            `json:"statuses_received"`
	OffersReceived   int64            `json:"offers_received"`
	ConnectionsPeak  int64            `json:"connections_peak"`
	ConnectionsAtEnd int64            `json:"connections_at_end"`
	Errors           int64            `json:"errors"`
	ErrorsByKind     map[string]int64 `json:"errors_by_kind"`
}

func (r *run) report() Report {
	t := r.t
	byKind, total := r.err.snapshot()
	elapsed := time.Duration(0)
	if !r.started.IsZero() {
		elapsed = time.Since(r.started)
	}
	rep := Report{
		Duration: elapsed, Drivers: r.o.Drivers, Customers: r.o.Customers, Operators: r.o.Operators, Profile: r.o.Profile,
		Created: t.created.Load(), Assigned: t.assigned.Load(), Completed: t.completed.Load(), Unfulfilled: t.unfulfilled.Load(),
		Rejected: t.rejected.Load(), Cancelled: t.cancelled.Load(), StillOpen: t.open(), Skipped: t.skipped.Load(),
		TimeToOffer: t.toOffer.Summary(), TimeToAssign: t.toAssign.Summary(),
		Fanout: t.fanout.Summary(), FanoutOperators: t.fanoutOperator.Summary(),
		PositionsSent: t.positionsSent.Load(), StatusesReceived: t.statusesSeen.Load(), OffersReceived: t.offersSeen.Load(),
		ConnectionsPeak: r.c.peak.Load(), ConnectionsAtEnd: r.c.open.Load(),
		Errors: total, ErrorsByKind: byKind,
	}
	if elapsed > 0 {
		rep.PositionsPerSec = float64(rep.PositionsSent) / elapsed.Seconds()
	}
	return rep
}

// Print writes the report for people.
func (r Report) Print(w io.Writer) {
	fmt.Fprintf(w, "yolda sim: %d drivers, %d customers, %d operators, %s profile, %s\n",
		r.Drivers, r.Customers, r.Operators, r.Profile, r.Duration.Round(time.Second))
	fmt.Fprintf(w, "  requests       created %d, assigned %d, completed %d, unfulfilled %d, rejected %d, cancelled %d, still open %d\n",
		r.Created, r.Assigned, r.Completed, r.Unfulfilled, r.Rejected, r.Cancelled, r.StillOpen)
	if r.Skipped > 0 {
		fmt.Fprintf(w, "  not asked      %d (every customer had a request open)\n", r.Skipped)
	}
	fmt.Fprintf(w, "  time to offer  p50 %s  p99 %s  (%d offered)\n", ms(r.TimeToOffer.P50), ms(r.TimeToOffer.P99), r.TimeToOffer.Count)
	fmt.Fprintf(w, "  to assignment  p50 %s  p99 %s  (%d assigned)\n", ms(r.TimeToAssign.P50), ms(r.TimeToAssign.P99), r.TimeToAssign.Count)
	fmt.Fprintf(w, "  fan-out        p50 %s  p99 %s  max %s  (%d positions to customers; driver send to customer receive)\n",
		ms(r.Fanout.P50), ms(r.Fanout.P99), ms(r.Fanout.Max), r.Fanout.Count)
	if r.Operators > 0 {
		fmt.Fprintf(w, "  to operators   p50 %s  p99 %s  max %s  (%d positions)\n",
			ms(r.FanoutOperators.P50), ms(r.FanoutOperators.P99), ms(r.FanoutOperators.Max), r.FanoutOperators.Count)
	}
	fmt.Fprintf(w, "  positions      %d sent, %.0f/s\n", r.PositionsSent, r.PositionsPerSec)
	fmt.Fprintf(w, "  connections    %d at peak, %d at the end\n", r.ConnectionsPeak, r.ConnectionsAtEnd)
	fmt.Fprintf(w, "  errors         %d", r.Errors)
	for _, k := range slices.Sorted(maps.Keys(r.ErrorsByKind)) {
		fmt.Fprintf(w, "; %s: %d", k, r.ErrorsByKind[k])
	}
	fmt.Fprintln(w)
}

// JSON writes the report for machines.
func (r Report) JSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func ms(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d < 10*time.Second:
		return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond))
	}
	return d.Round(100 * time.Millisecond).String()
}
