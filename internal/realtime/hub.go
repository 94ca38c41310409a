package realtime

import (
	"encoding/json"
	"sync"

	"github.com/coder/websocket"

	"github.com/yolda/yolda/internal/dispatch"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/outbox"
)

// hub is who, among this process's connections, wants what. Lock order:
// hub.mu before conn.mu; nothing under either blocks on a client.
type hub struct {
	g *Gateway

	mu sync.RWMutex
	// users are the connections of each account (a driver's offers).
	users map[string]map[*conn]struct{}
	// requests are the requests followed here, with their followers.
	requests map[string]*watch
	// drivers maps a driver to the followed requests it is on.
	drivers map[string]map[string]struct{}
	// staff connections get every driver's positions; all, every
	// request's status changes (subscribed to AllRequests).
	staff map[*conn]struct{}
	all   map[*conn]struct{}
	// jobs is each driver's current request and its version, as the
	// status events said: what a staff connection's positions carry.
	jobs map[string]job
}

// watch is one request followed by connections here.
type watch struct {
	conns map[*conn]struct{}
	// driverID is the driver on the job (none: ""), as of version seq.
	driverID string
	seq      int
}

type job struct {
	requestID string
	seq       int
}

func newHub(g *Gateway) *hub {
	return &hub{
		g: g, users: map[string]map[*conn]struct{}{}, requests: map[string]*watch{},
		drivers: map[string]map[string]struct{}{}, staff: map[*conn]struct{}{}, all: map[*conn]struct{}{}, jobs: map[string]job{},
	}
}

func addTo[K comparable, V comparable](m map[K]map[V]struct{}, k K, v V) {
	set := m[k]
	if set == nil {
		set = map[V]struct{}{}
		m[k] = set
	}
	set[v] = struct{}{}
}

func removeFrom[K comparable, V comparable](m map[K]map[V]struct{}, k K, v V) {
	if set := m[k]; set != nil {
		delete(set, v)
		if len(set) == 0 {
			delete(m, k)
		}
	}
}

// add registers a new connection; false if the gateway is stopping.
func (h *hub) add(c *conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.g.stopping.Load() {
		return false
	}
	addTo(h.users, c.who.UserID, c)
	if c.who.Role.Staff() {
		h.staff[c] = struct{}{}
	}
	return true
}

// remove forgets a connection that ended, and every request it followed.
func (h *hub) remove(c *conn, requests []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	removeFrom(h.users, c.who.UserID, c)
	delete(h.staff, c)
	delete(h.all, c)
	for _, r := range requests {
		h.unfollowLocked(c, r)
	}
}

// follow makes c a follower of requestID.
func (h *hub) follow(c *conn, requestID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if requestID == AllRequests {
		h.all[c] = struct{}{}
		return
	}
	w := h.requests[requestID]
	if w == nil {
		w = &watch{conns: map[*conn]struct{}{}}
		h.requests[requestID] = w
	}
	w.conns[c] = struct{}{}
}

func (h *hub) unfollow(c *conn, requestID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.unfollowLocked(c, requestID)
}

func (h *hub) unfollowLocked(c *conn, requestID string) {
	if requestID == AllRequests {
		delete(h.all, c)
		return
	}
	w := h.requests[requestID]
	if w == nil {
		return
	}
	delete(w.conns, c)
	if len(w.conns) == 0 {
		if w.driverID != "" {
			removeFrom(h.drivers, w.driverID, requestID)
		}
		delete(h.requests, requestID)
	}
}

// learn records what version seq of a request says of its driver, unless
// the hub knows a newer version. A request has a driver while it is
// active (assigned to in service).
func (h *hub) learn(requestID string, seq int, status intake.Status, driverID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.learnLocked(requestID, seq, status, driverID)
}

func (h *hub) learnLocked(requestID string, seq int, status intake.Status, driverID string) {
	if !status.Active() {
		driverID = ""
	}
	if w := h.requests[requestID]; w != nil && seq > w.seq {
		w.seq = seq
		if w.driverID != driverID {
			if w.driverID != "" {
				removeFrom(h.drivers, w.driverID, requestID)
			}
			if driverID != "" {
				addTo(h.drivers, driverID, requestID)
			}
			w.driverID = driverID
		}
	}
}

// position forwards p to the connections that watch its driver: the
// followers of the requests it is on, and staff.
func (h *hub) position(p Position) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for requestID := range h.drivers[p.DriverID] {
		w := h.requests[requestID]
		msg := appendLocation(nil, requestID, w.seq, p)
		for c := range w.conns {
			c.queuePosition(p, msg)
		}
	}
	if len(h.staff) > 0 {
		j := h.jobs[p.DriverID]
		msg := appendLocation(nil, j.requestID, j.seq, p)
		for c := range h.staff {
			c.queuePosition(p, msg)
		}
	}
}

// event forwards an EVENTS message to the connections it concerns.
func (h *hub) event(data []byte) {
	env, err := outbox.Decode(data)
	if err != nil {
		h.g.log.Warn("event not understood", "err", err)
		return
	}
	switch env.Type {
	case outbox.EventRequestStatusChanged:
		var sc intake.StatusChange
		if err := json.Unmarshal(env.Data, &sc); err != nil {
			h.g.log.Warn("status event not understood", "id", env.ID, "err", err)
			return
		}
		h.status(env.RequestID, env.Seq, sc.To, sc.DriverID, encodeStatus(env.RequestID, sc.To, sc.At, env.Seq, sc.Reason))
	case outbox.EventRequestCreated:
		var ce intake.CreatedEvent
		if err := json.Unmarshal(env.Data, &ce); err != nil {
			return
		}
		// Only those who follow every request hear of new ones (a
		// request's own followers subscribe once it exists).
		msg := encodeStatus(env.RequestID, ce.Request.Status, ce.Request.CreatedAt, env.Seq, "")
		h.mu.RLock()
		defer h.mu.RUnlock()
		for c := range h.all {
			c.queueStatus(env.RequestID, env.Seq, msg, false)
		}
	case dispatch.EventOfferCreated:
		var oc dispatch.OfferCreated
		if err := json.Unmarshal(env.Data, &oc); err != nil {
			h.g.log.Warn("offer event not understood", "id", env.ID, "err", err)
			return
		}
		msg, _ := json.Marshal(offerMessage{Type: TypeOffer, OfferID: oc.OfferID, RequestID: oc.RequestID, ServiceType: oc.ServiceType,
			Location: oc.Location, DistanceM: oc.DistanceM, ETASeconds: oc.ETASeconds, ExpiresAt: oc.ExpiresAt})
		h.toUser(oc.DriverID, TypeOffer, msg)
	case dispatch.EventOfferClosed:
		var cl dispatch.OfferClosed
		if err := json.Unmarshal(env.Data, &cl); err != nil {
			return
		}
		msg, _ := json.Marshal(offerClosedMessage{Type: TypeOfferClosed, OfferID: cl.OfferID, RequestID: cl.RequestID, Status: string(cl.Status), At: cl.At})
		h.toUser(cl.DriverID, TypeOfferClosed, msg)
	}
}

// status forwards a status change of a request to its followers here
// (and to those of every request), after learning its driver.
func (h *hub) status(requestID string, seq int, to intake.Status, driverID string, msg []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.learnLocked(requestID, seq, to, driverID)
	if driverID != "" {
		if to.Active() {
			if j, ok := h.jobs[driverID]; !ok || j.requestID != requestID || seq > j.seq {
				h.jobs[driverID] = job{requestID: requestID, seq: seq}
			}
		} else if j, ok := h.jobs[driverID]; ok && j.requestID == requestID {
			delete(h.jobs, driverID)
		}
	}
	if w := h.requests[requestID]; w != nil {
		for c := range w.conns {
			c.queueStatus(requestID, seq, msg, true)
		}
	}
	for c := range h.all {
		c.queueStatus(requestID, seq, msg, false)
	}
}

// toUser sends a message that must not be lost (an offer) to every
// connection of an account.
func (h *hub) toUser(userID, kind string, msg []byte) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for c := range h.users[userID] {
		c.queue(kind, msg)
	}
}

func (h *hub) backlog() (statuses, positions int) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, set := range h.users {
		for c := range set {
			c.mu.Lock()
			statuses += len(c.status)
			positions += len(c.pending)
			c.mu.Unlock()
		}
	}
	return statuses, positions
}

// closeAll closes every connection (the gateway is stopping).
func (h *hub) closeAll(code websocket.StatusCode, reason string) {
	h.mu.RLock()
	conns := make([]*conn, 0, len(h.users))
	for _, set := range h.users {
		for c := range set {
			conns = append(conns, c)
		}
	}
	h.mu.RUnlock()
	for _, c := range conns {
		c.end(code, reason, endShutdown)
	}
}
