package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
)

// testTimelineVersions: every timeline entry keeps the request's version
// after the change that wrote it, through every write path (creation,
// UpdateRequest, UpdateRequests) and every read path (Request, Requests).
// It is what a WebSocket client that resumes after a version is sent.
func testTimelineVersions(t *testing.T, s Store) {
	ctx := context.Background()
	owner := addUser(t, s, "ayse", identity.Customer)
	r := newRequest(owner.ID, 0, "İstanbul", "anadolu", intake.Tow)
	r.Timeline = append(r.Timeline, intake.TimelineEntry{Status: intake.StatusDispatching, At: r.CreatedAt, ActorID: owner.ID})
	r.Status = intake.StatusDispatching
	mustCreate(t, s, creation(r, "", ""))

	step := func(at time.Time, to intake.Status) func(*intake.Request) (intake.Change, error) {
		return func(cur *intake.Request) (intake.Change, error) {
			cur.Advance(at)
			if to == "" { // a change that is not a status change (an insurance outcome)
				return intake.Change{}, nil
			}
			cur.Status = to
			return intake.Change{Timeline: &intake.TimelineEntry{Status: to, At: at, ActorID: "system"}}, nil
		}
	}
	for i, to := range []intake.Status{"", intake.StatusAssigned, "", ""} { // versions 2..5
		if _, err := s.UpdateRequest(ctx, r.ID, step(base.Add(time.Duration(i+1)*time.Second), to)); err != nil {
			t.Fatalf("UpdateRequest %d: %v", i, err)
		}
	}
	batch := []*intake.Update{ // versions 6 and 7, in one transaction
		{RequestID: r.ID, Apply: step(base.Add(10*time.Second), intake.StatusEnRoute)},
		{RequestID: r.ID, Apply: step(base.Add(11*time.Second), intake.StatusArrived)},
	}
	if err := s.UpdateRequests(ctx, batch); err != nil || batch[0].Err != nil || batch[1].Err != nil {
		t.Fatalf("UpdateRequests: %v %v %v", err, batch[0].Err, batch[1].Err)
	}
	if got := versionsOf(batch[1].Result); !slices.Equal(got, []int{1, 1, 3, 6, 7}) {
		t.Errorf("UpdateRequests result's timeline versions %v, want [1 1 3 6 7]", got)
	}

	want := []int{1, 1, 3, 6, 7}
	one, err := s.Request(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := versionsOf(one); !slices.Equal(got, want) || one.Version != 7 {
		t.Errorf("Request: timeline versions %v at version %d, want %v at 7", got, one.Version, want)
	}
	listed, err := s.Requests(ctx, intake.Filter{ID: r.ID, Limit: 1})
	if err != nil || len(listed) != 1 {
		t.Fatalf("Requests: %v %v", listed, err)
	}
	if got := versionsOf(listed[0]); !slices.Equal(got, want) {
		t.Errorf("Requests: timeline versions %v, want %v", got, want)
	}
}

func versionsOf(r intake.Request) []int {
	out := make([]int, len(r.Timeline))
	for i, e := range r.Timeline {
		out[i] = e.Version
	}
	return out
}
