package warehouse

import "context"

// Store is a warehouse engine. Implementations live in
// internal/warehouse/{duckdb,postgres}; all pass
// internal/warehouse/warehousetest with the same expected results.
type Store interface {
	// Load commits one batch in one transaction: it adds the events whose
	// ids it does not hold yet (an id loaded twice changes nothing), an
	// insurer call row for each new insurance.call, and for every request
	// that got a new event replaces its fact with derive(every event of
	// that request held, the new ones included). It returns how many
	// events were new. On error nothing of the batch is committed.
	Load(ctx context.Context, evs []Event, derive DeriveFunc) (int, error)

	// Requests, SLA, Breaches and Insurers answer the reports (see the
	// Measures and Columns in report.go). They return at most q.Limit+1
	// rows, in the order of the grouped dimensions.
	Requests(ctx context.Context, q Query) ([]Row, error)
	SLA(ctx context.Context, q Query) ([]Row, error)
	Breaches(ctx context.Context, q Query) ([]Row, error)
	Insurers(ctx context.Context, q Query) ([]Row, error)

	// Rederive empties the request facts and insurer calls (events are
	// kept), then hands derive every request's events, in request id
	// order, and stores what it returns, with an insurer call row for
	// every insurance.call event.
	Rederive(ctx context.Context, derive DeriveFunc) (requests int, err error)
	// Empty reports whether the warehouse holds no events.
	Empty(ctx context.Context) (bool, error)

	Ping(ctx context.Context) error
	Close() error
}

// DeriveFunc turns one request's events into its fact (Derive).
type DeriveFunc func(requestID string, evs []Event) RequestFact

// BulkLoader is an engine's fast path for facts that come from outside
// the event stream (the benchmark's synthetic facts). Finish brings what
// the facts feed (rollups, statistics) up to date.
type BulkLoader interface {
	AppendFacts(ctx context.Context, facts []RequestFact) error
	FinishBulk(ctx context.Context) error
}
