package duckdb

import (
	"container/list"
	"slices"
	"time"

	"github.com/yolda/yolda/internal/id"
	"github.com/yolda/yolda/internal/warehouse"
)

// recent is what the writer knows of the warehouse without asking it: for
// the requests it loaded lately, every event the warehouse holds and the
// rollup key of the stored fact; and a horizon: a request whose id says it
// was created after it, and that recent does not hold, has no event and no
// fact in the warehouse. A load needs exactly that to find which of its
// events are new and to re-derive their requests' facts, so a load whose
// requests are all known asks DuckDB nothing but to write.
//
// It is valid because one process owns the file and every write goes
// through the writer, under Store.mu. It changes only once a load has
// committed; a load that fails, Rederive and the bulk path drop it (reset),
// and the next load reads the horizon again.
//
// It relies on an event id naming one event, its request included (the
// producers' outbox ids): an id already held under another request is not
// looked for when the request is known.
type recent struct {
	maxEvents int
	events    int                      // held, across requests
	byID      map[string]*list.Element // of *knownRequest
	lru       list.List                // front: the most recently loaded
	// horizon is valid only when known is true.
	horizon time.Time
	known   bool
}

// knownRequest is one request as the warehouse holds it.
type knownRequest struct {
	id  string
	evs []warehouse.Event
	key warehouse.RollupKey
}

func newRecent(maxEvents int) *recent {
	return &recent{maxEvents: maxEvents, byID: map[string]*list.Element{}}
}

// lookup says what the warehouse holds of request id: ok is false when
// recent does not know (the caller asks DuckDB); held is nil when it
// knows the request has nothing (no events, no fact).
func (r *recent) lookup(requestID string) (held *knownRequest, ok bool) {
	if e, hit := r.byID[requestID]; hit {
		return e.Value.(*knownRequest), true
	}
	if !r.known {
		return nil, false
	}
	if t, has := id.Time(requestID); has && t.After(r.horizon) {
		return nil, true
	}
	return nil, false
}

// setHorizon starts knowing: newest is the latest creation time of any
// request the warehouse holds (zero if none).
func (r *recent) setHorizon(newest time.Time) {
	r.horizon, r.known = newest, true
}

// put records what a committed load left of a request. evs is kept, not
// copied: the caller hands it over.
func (r *recent) put(k *knownRequest) {
	if e, hit := r.byID[k.id]; hit {
		old := e.Value.(*knownRequest)
		r.events -= len(old.evs)
		e.Value = k
		r.lru.MoveToFront(e)
	} else {
		r.byID[k.id] = r.lru.PushFront(k)
	}
	r.events += len(k.evs)
	for r.events > r.maxEvents && r.lru.Len() > 0 {
		r.evict(r.lru.Back())
	}
}

// evict forgets a request. The horizon moves up to its creation, so that
// lookup stops vouching for its absence.
func (r *recent) evict(e *list.Element) {
	k := r.lru.Remove(e).(*knownRequest)
	delete(r.byID, k.id)
	r.events -= len(k.evs)
	if t, ok := id.Time(k.id); ok && t.After(r.horizon) {
		r.horizon = t
	}
}

// reset forgets everything, the horizon included.
func (r *recent) reset() {
	clear(r.byID)
	r.lru.Init()
	r.events, r.horizon, r.known = 0, time.Time{}, false
}

// holds reports whether evs has an event with id.
func holds(evs []warehouse.Event, eventID string) bool {
	return slices.ContainsFunc(evs, func(e warehouse.Event) bool { return e.ID == eventID })
}
