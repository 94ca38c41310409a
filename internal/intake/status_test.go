package intake

import "testing"

func TestStateMachine(t *testing.T) {
	allowed := [][2]Status{
		{StatusReceived, StatusDispatching}, {StatusReceived, StatusAwaitingInsurance}, {StatusAwaitingInsurance, StatusRejected},
		{StatusDispatching, StatusAssigned}, {StatusAssigned, StatusEnRoute}, {StatusEnRoute, StatusArrived},
		{StatusArrived, StatusInService}, {StatusInService, StatusCompleted}, {StatusUnfulfilled, StatusAssigned},
		{StatusAssigned, StatusDispatching}, {StatusDispatching, StatusCancelled}, {StatusInService, StatusCancelled},
	}
	for _, tr := range allowed {
		if !CanMove(tr[0], tr[1]) {
			t.Errorf("%s -> %s should be allowed", tr[0], tr[1])
		}
	}
	forbidden := [][2]Status{
		{StatusReceived, StatusCompleted}, {StatusCompleted, StatusCancelled}, {StatusCancelled, StatusDispatching},
		{StatusRejected, StatusDispatching}, {StatusEnRoute, StatusAssigned}, {StatusAssigned, StatusCompleted},
		{StatusReceived, StatusReceived},
	}
	for _, tr := range forbidden {
		if CanMove(tr[0], tr[1]) {
			t.Errorf("%s -> %s should be forbidden", tr[0], tr[1])
		}
	}
	for _, s := range Statuses {
		if s.Final() && len(transitions[s]) > 0 {
			t.Errorf("final status %s has transitions", s)
		}
		if !s.Valid() {
			t.Errorf("%s not valid", s)
		}
	}
	if Status("lost").Valid() {
		t.Error("unknown status valid")
	}
}
