package warehouse_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/id"
	"github.com/yolda/yolda/internal/warehouse"
)

func envelope(t *testing.T, typ, req string, at time.Time, seq int, data any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"id": id.New("msg", at), "type": typ, "version": 1, "occurred_at": at, "request_id": req, "seq": seq,
		"actor": map[string]string{"id": "usr_x", "role": "driver"}, "data": data,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decode(t *testing.T, b []byte) warehouse.Event {
	t.Helper()
	e, err := warehouse.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestSeqOrdersAcrossClockSkew: when every event carries the request's
// version, it decides the order, whatever the writers' clocks said.
func TestSeqOrdersAcrossClockSkew(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	req := id.New("req", t0)
	created := envelope(t, "request.created", req, t0, 1, map[string]any{"request": map[string]any{"status": "dispatching", "created_at": t0}})
	// The second writer's clock is 5 s behind: its later change looks older.
	assigned := envelope(t, "request.status_changed", req, t0.Add(10*time.Second), 2, map[string]any{"from": "dispatching", "to": "assigned", "at": t0.Add(10 * time.Second)})
	cancelled := envelope(t, "request.status_changed", req, t0.Add(5*time.Second), 3, map[string]any{"from": "assigned", "to": "cancelled", "at": t0.Add(5 * time.Second), "reason": "changed my mind"})
	f := warehouse.Derive(req, []warehouse.Event{decode(t, cancelled), decode(t, assigned), decode(t, created)})
	if f.Status != "cancelled" || f.CancelReason != "changed my mind" || f.CancelledBy != "driver" {
		t.Fatalf("status %q reason %q by %q, want the version-3 cancellation", f.Status, f.CancelReason, f.CancelledBy)
	}
	if f.TimeToAssign == nil || *f.TimeToAssign != 10 {
		t.Fatalf("time to assign %v, want 10 s", f.TimeToAssign)
	}
	// Without versions the clock decides: the cancellation comes first.
	noSeq := func(e warehouse.Event) warehouse.Event { e.Seq = 0; return e }
	f = warehouse.Derive(req, []warehouse.Event{noSeq(decode(t, cancelled)), noSeq(decode(t, assigned)), noSeq(decode(t, created))})
	if f.Status != "assigned" {
		t.Fatalf("status %q without versions, want assigned (the later clock)", f.Status)
	}
}

func TestDeriveReadsDistanceAndETAWhereverDispatchPutsThem(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	req := id.New("req", t0)
	evs := []warehouse.Event{
		// Two offers; the first is declined, the second accepted.
		decode(t, envelope(t, "offer.created", req, t0.Add(time.Second), 1, map[string]any{"offer_id": "off_1", "eta_seconds": 300, "distance_m": 2000})),
		decode(t, envelope(t, "offer.closed", req, t0.Add(20*time.Second), 1, map[string]any{"offer_id": "off_1", "status": "declined"})),
		decode(t, envelope(t, "offer.created", req, t0.Add(21*time.Second), 1, map[string]any{"offer_id": "off_2", "eta_seconds": 600, "distance_m": 4250})),
		decode(t, envelope(t, "offer.closed", req, t0.Add(30*time.Second), 2, map[string]any{"offer_id": "off_2", "status": "accepted"})),
	}
	f := warehouse.Derive(req, evs)
	if f.DistanceKm == nil || *f.DistanceKm != 4.3 || f.ETASeconds == nil || *f.ETASeconds != 600 {
		t.Fatalf("distance %v km, eta %v s; want the accepted offer's 4.3 and 600", f.DistanceKm, f.ETASeconds)
	}
	if f := warehouse.Derive(req, evs[:3]); f.DistanceKm != nil {
		t.Fatalf("distance %v before any offer was accepted", *f.DistanceKm)
	}
	evs = append(evs, decode(t, envelope(t, "request.status_changed", req, t0.Add(2*time.Minute), 3, map[string]any{"from": "assigned", "to": "en_route", "eta_seconds": 480})))
	f = warehouse.Derive(req, evs)
	if f.ETASeconds == nil || *f.ETASeconds != 480 {
		t.Fatalf("eta %v s; want the latest, 480", f.ETASeconds)
	}
	if f.HasCreated || f.Status != "en_route" || !f.CreatedAt.Equal(t0) {
		t.Fatalf("fact before its creation event: %+v", f)
	}
}

func TestDecodeRefusesWhatItCannotRead(t *testing.T) {
	for name, payload := range map[string]string{
		"not json":        `{`,
		"no id":           `{"type":"request.created","version":1,"occurred_at":"2026-11-26T10:00:00Z"}`,
		"unknown version": `{"id":"msg_1","type":"request.created","version":2,"occurred_at":"2026-11-26T10:00:00Z"}`,
		"transition to nowhere": `{"id":"msg_1","type":"request.status_changed","version":1,"occurred_at":"2026-11-26T10:00:00Z",
			"data":{"from":"dispatching"}}`,
	} {
		if _, err := warehouse.Decode([]byte(payload)); !errors.Is(err, warehouse.ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
	// An event type it does not know is kept, without its data.
	e, err := warehouse.Decode([]byte(`{"id":"msg_1","type":"driver.rated","version":1,"occurred_at":"2026-11-26T10:00:00Z","data":{"comment":"Ahmet was rude"}}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(e)
	if strings.Contains(string(b), "Ahmet") {
		t.Fatalf("an unknown event's data was kept: %s", b)
	}
}

func TestScrubAndCell(t *testing.T) {
	for in, want := range map[string]string{
		"call me on 0532 123 45 67 please":  "call me on # please",
		"plate 34 ABC 123 is wrong":         "plate # is wrong",
		"mail ayse@example.com":             "mail #",
		"driver did not come":               "driver did not come",
		strings.Repeat("ş", 150):            strings.Repeat("ş", 100),
		"policy POL-123456 expired in 2025": "policy POL-# expired in 2025",
	} {
		if got := warehouse.Scrub(in); got != want {
			t.Errorf("Scrub(%q) = %q, want %q", in, got, want)
		}
	}
	if got := warehouse.Cell(41.0082, 28.9784); got != "41.0,28.9" {
		t.Errorf("Cell = %q", got)
	}
	if got := warehouse.Cell(-0.05, 0.05); got != "-0.1,0.0" {
		t.Errorf("Cell south of the equator = %q", got)
	}
}

// A province is grouped under one name however it was typed (issue 13's
// rule for names, shared with the operational filters).
func TestProvincesGroupHoweverTyped(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	for _, typed := range []string{"İzmir", "Izmir", "IZMIR", "izmir"} {
		req := id.New("req", t0)
		created := envelope(t, "request.created", req, t0, 1, map[string]any{"request": map[string]any{
			"status": "dispatching", "created_at": t0, "location": map[string]any{"lat": 38.42, "lng": 27.14, "province": typed}}})
		if f := warehouse.Derive(req, []warehouse.Event{decode(t, created)}); f.Province != "İzmir" {
			t.Errorf("province typed %q is grouped as %q, want İzmir", typed, f.Province)
		}
	}
}

// Decode reads a distance or ETA and a sequence from data in one pass;
// one of them of the wrong type must not spoil the other.
func TestDecodeReadsDataSeqAndAssignmentApart(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	req := id.New("req", t0)
	f := func(x float64) *float64 { return &x }
	for name, tc := range map[string]struct {
		data     map[string]any
		seq      int64
		eta, km  *float64
		noAssign bool
	}{
		"both":          {data: map[string]any{"seq": 5, "distance_m": 1500, "eta_seconds": 90}, seq: 5, eta: f(90), km: f(1.5)},
		"bad eta":       {data: map[string]any{"seq": 7, "eta_seconds": "soon"}, seq: 7, noAssign: true},
		"bad seq":       {data: map[string]any{"seq": "seven", "eta_seconds": 60}, eta: f(60)},
		"nested":        {data: map[string]any{"seq": 3, "assignment": map[string]any{"distance_km": 2.04}}, seq: 3, km: f(2)},
		"neither there": {data: map[string]any{"offer_id": "off_1"}, noAssign: true},
	} {
		e := decode(t, envelope(t, "offer.created", req, t0, 0, tc.data))
		if e.Seq != tc.seq {
			t.Errorf("%s: seq %d, want %d", name, e.Seq, tc.seq)
		}
		if tc.noAssign {
			if e.Assignment != nil {
				t.Errorf("%s: assignment %+v, want none", name, e.Assignment)
			}
			continue
		}
		a := e.Assignment
		if a == nil || (tc.eta == nil) != (a.ETASeconds == nil) || (tc.km == nil) != (a.DistanceKm == nil) ||
			(tc.eta != nil && *a.ETASeconds != *tc.eta) || (tc.km != nil && *a.DistanceKm != *tc.km) {
			t.Errorf("%s: assignment %+v, want eta %v km %v", name, a, tc.eta, tc.km)
		}
	}
}
