package intake

// Status is where a request stands in its life.
type Status string

const (
	StatusReceived          Status = "received"
	StatusAwaitingInsurance Status = "awaiting_insurance"
	StatusDispatching       Status = "dispatching"
	StatusAssigned          Status = "assigned"
	StatusEnRoute           Status = "en_route"
	StatusArrived           Status = "arrived"
	StatusInService         Status = "in_service"
	StatusCompleted         Status = "completed"
	StatusCancelled         Status = "cancelled"
	StatusRejected          Status = "rejected"
	StatusUnfulfilled       Status = "unfulfilled"
)

// Statuses lists every status in life order.
var Statuses = []Status{
	StatusReceived, StatusAwaitingInsurance, StatusDispatching, StatusAssigned,
	StatusEnRoute, StatusArrived, StatusInService, StatusCompleted,
	StatusCancelled, StatusRejected, StatusUnfulfilled,
}

// Enum lists the values.
func (Status) Enum() []string { return names(Statuses) }

// transitions is the state machine: for each status, the statuses it may
// move to. Anything not listed is a conflict. unfulfilled is an end for the
// automatic flow but operators may still dispatch or assign by hand. Every
// path that moves a request (intake, the insurance outcome, dispatch's
// offers, assignments and job progress) goes through Transition, which
// checks this table. Any status short of the final ones may be cancelled;
// who may cancel what is Cancel's business (customerMayCancel).
var transitions = map[Status][]Status{
	StatusReceived:          {StatusAwaitingInsurance, StatusDispatching, StatusRejected, StatusCancelled},
	StatusAwaitingInsurance: {StatusDispatching, StatusRejected, StatusCancelled},
	StatusDispatching:       {StatusAssigned, StatusUnfulfilled, StatusRejected, StatusCancelled},
	StatusAssigned:          {StatusEnRoute, StatusDispatching, StatusCancelled},
	StatusEnRoute:           {StatusArrived, StatusCancelled},
	StatusArrived:           {StatusInService, StatusCancelled},
	StatusInService:         {StatusCompleted, StatusCancelled},
	StatusUnfulfilled:       {StatusDispatching, StatusAssigned, StatusCancelled},
}

// CanMove reports whether the state machine allows from -> to.
func CanMove(from, to Status) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Valid reports whether s is a known status.
func (s Status) Valid() bool {
	for _, k := range Statuses {
		if k == s {
			return true
		}
	}
	return false
}

// Final reports whether nothing more happens to a request in this status
// without an operator.
func (s Status) Final() bool {
	switch s {
	case StatusCompleted, StatusCancelled, StatusRejected:
		return true
	}
	return false
}

// Active reports whether a driver is on the job: the request holds its
// driver (one such request per driver, which the database enforces).
func (s Status) Active() bool {
	switch s {
	case StatusAssigned, StatusEnRoute, StatusArrived, StatusInService:
		return true
	}
	return false
}

// customerMayCancel is how far a request may go before its customer can no
// longer call it off alone: once the driver is there, an operator decides.
func customerMayCancel(s Status) bool {
	switch s {
	case StatusReceived, StatusAwaitingInsurance, StatusDispatching, StatusAssigned, StatusEnRoute, StatusUnfulfilled:
		return true
	}
	return false
}
