package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/validate"
)

// conn is one client's connection. Its reader is the goroutine that
// serves the upgrade (serve); its writer runs only while there is
// something to write (write); the fan-out only ever appends to its queues
// under mu, never waits for the client.
type conn struct {
	g       *Gateway
	ws      *websocket.Conn
	who     identity.Principal
	expires time.Time
	// ctx ends with the connection.
	ctx     context.Context
	cancel  context.CancelFunc
	limiter *rate.Limiter
	pinger  *time.Timer
	// lastCheck is when the token was last re-checked (the pinger's).
	lastCheck time.Time

	mu sync.Mutex
	// status are the messages that are never dropped (status changes,
	// offers, errors), oldest first, at most Options.StatusQueue.
	status []outgoing
	// slots hold the newest position of each driver this client watches;
	// pending are those not yet written, in the order they first waited.
	slots   map[string]*slot
	pending []*slot
	// writing: a writer goroutine is running (and will look at the
	// queues again before it stops).
	writing bool
	// ended: the connection is closing; queues take nothing more.
	ended bool
	// why is the reason it ended (a metric label); endClient by default.
	why  string
	subs map[string]*sub
}

type outgoing struct {
	kind string
	msg  []byte
}

// slot is the newest position of one driver for one connection.
type slot struct {
	msg    []byte
	at     time.Time // when the device measured it
	sentAt time.Time // when its gateway broadcast it
	queued bool
}

// sub is one request the client follows.
type sub struct {
	// lastSeq is the highest seq sent; a status message at or below it
	// is not sent again (the contract lets a client drop it anyway).
	lastSeq int
	// While holding (the subscription's first read of the database),
	// status changes wait in held, to be sent after what was read.
	holding bool
	held    []outgoingSeq
}

type outgoingSeq struct {
	seq int
	msg []byte
}

func newConn(g *Gateway, ws *websocket.Conn, who identity.Principal, expires time.Time) *conn {
	ctx, cancel := context.WithCancel(g.ctx)
	return &conn{
		g: g, ws: ws, who: who, expires: expires, ctx: ctx, cancel: cancel,
		limiter:   rate.NewLimiter(rate.Limit(g.opts.ClientRate), g.opts.ClientBurst),
		lastCheck: g.opts.Now(),
		why:       endClient,
	}
}

// serve reads the client's messages until the connection ends.
func (c *conn) serve() {
	defer c.cancel()
	if !c.g.hub.add(c) {
		_ = c.ws.Close(websocket.StatusGoingAway, "server shutting down: reconnect and resume")
		return
	}
	// The edge refuses tokens without an expiry; a zero one is a test's.
	var expiry *time.Timer
	if !c.expires.IsZero() {
		expiry = time.AfterFunc(c.expires.Sub(c.g.opts.Now()), func() {
			c.end(CloseTokenExpired, "token expired: log in again, reconnect and resume", endExpired)
		})
	}
	c.mu.Lock()
	c.pinger = time.AfterFunc(c.g.opts.PingInterval, c.ping)
	c.mu.Unlock()
	defer func() {
		if expiry != nil {
			expiry.Stop()
		}
		c.mu.Lock()
		c.pinger.Stop()
		c.ended = true
		why := c.why
		requests := make([]string, 0, len(c.subs))
		for r := range c.subs {
			requests = append(requests, r)
		}
		c.mu.Unlock()
		c.g.hub.remove(c, requests)
		c.g.metrics.ends.WithLabelValues(why).Inc()
	}()
	for {
		typ, data, err := c.ws.Read(c.ctx)
		if err != nil {
			return
		}
		if !c.limiter.Allow() {
			c.g.metrics.received.WithLabelValues("limited").Inc()
			c.queue(TypeError, encodeError("too many messages: slow down", "", nil))
			continue
		}
		if typ != websocket.MessageText {
			c.g.metrics.received.WithLabelValues("invalid").Inc()
			c.queue(TypeError, encodeError("messages are JSON text", "", nil))
			continue
		}
		c.handle(data)
	}
}

// handle acts on one client message. It runs on the reader, so a
// client's messages are handled one after the other, in order.
func (c *conn) handle(data []byte) {
	var m clientMessage
	if err := json.Unmarshal(data, &m); err != nil {
		c.g.metrics.received.WithLabelValues("invalid").Inc()
		c.queue(TypeError, encodeError("not a JSON object with a type", "", nil))
		return
	}
	switch m.Type {
	case TypeReport:
		c.report(m.PositionReport)
	case TypeSubscribe:
		c.subscribe(m.RequestID, nil)
	case TypeResume:
		if m.AfterSeq == nil || *m.AfterSeq < 0 {
			c.queue(TypeError, encodeError("resume needs after_seq, the last seq seen (0: from the start)", m.RequestID, nil))
		} else {
			c.subscribe(m.RequestID, m.AfterSeq)
		}
	case TypeUnsubscribe:
		c.unsubscribe(m.RequestID)
	default:
		c.g.metrics.received.WithLabelValues("invalid").Inc()
		c.queue(TypeError, encodeError("unknown message type "+quoteShort(m.Type), "", nil))
		return
	}
	c.g.metrics.received.WithLabelValues(m.Type).Inc()
}

// requestTimeout bounds the store calls a client message makes.
const requestTimeout = 5 * time.Second

// report records a driver's position, as POST /v1/drivers/me/location
// does (and the broadcast that follows it is Positions').
func (c *conn) report(r fleet.PositionReport) {
	ctx, cancel := context.WithTimeout(c.ctx, requestTimeout)
	defer cancel()
	_, err := c.g.deps.Positions.ReportPosition(ctx, c.who, r)
	var invalid validate.Errors
	switch {
	case err == nil:
	case errors.As(err, &invalid):
		fields := make([]fieldError, len(invalid))
		for i, e := range invalid {
			fields[i] = fieldError{Field: e.Field, Message: e.Message}
		}
		c.queue(TypeError, encodeError("location not recorded: invalid fields", "", fields))
	case errors.Is(err, fleet.ErrForbidden):
		c.queue(TypeError, encodeError("only drivers report locations", "", nil))
	default:
		c.g.log.Warn("websocket location not recorded", "driver_id", c.who.UserID, "err", err)
		c.queue(TypeError, encodeError("location not recorded: try again", "", nil))
	}
}

// subscribe follows a request: the client is sent its current status
// (after nil) or every status change after *after (a resume), read from
// the database, then its status changes as they happen, each once, in
// seq order. Changes that arrive while the database is read wait, so
// that none falls between the read and the live ones.
func (c *conn) subscribe(requestID string, after *int) {
	if requestID == "" {
		c.queue(TypeError, encodeError("request_id is required", "", nil))
		return
	}
	if requestID == AllRequests {
		c.subscribeAll()
		return
	}
	c.mu.Lock()
	s, existed := c.subs[requestID]
	if !existed {
		if len(c.subs) >= c.g.opts.MaxSubscriptions {
			c.mu.Unlock()
			c.queue(TypeError, encodeError("too many subscriptions on one connection", requestID, nil))
			return
		}
		if c.subs == nil {
			c.subs = map[string]*sub{}
		}
		s = &sub{}
		c.subs[requestID] = s
	}
	s.holding = true
	c.mu.Unlock()
	if !existed {
		c.g.hub.follow(c, requestID)
	}

	ctx, cancel := context.WithTimeout(c.ctx, requestTimeout)
	r, err := c.g.deps.Requests.Get(ctx, c.who, requestID)
	cancel()
	if err != nil {
		if !existed {
			c.unsubscribe(requestID)
		} else {
			c.release(requestID, s, nil)
		}
		if errors.Is(err, intake.ErrNotFound) {
			// Another's request and a missing one are refused alike.
			c.queue(TypeError, encodeError("request not found", requestID, nil))
		} else if c.ctx.Err() == nil {
			c.g.log.Warn("websocket subscription not read", "request_id", requestID, "err", err)
			c.queue(TypeError, encodeError("request not read: try again", requestID, nil))
		}
		return
	}
	driverID := ""
	if r.Assignment != nil {
		driverID = r.Assignment.DriverID
	}
	c.g.hub.learn(requestID, r.Version, r.Status, driverID)

	var replay []intake.TimelineEntry
	switch {
	case after != nil:
		for _, e := range r.Timeline {
			if e.Version > *after {
				replay = append(replay, e)
			}
		}
	case len(r.Timeline) > 0:
		replay = r.Timeline[len(r.Timeline)-1:]
	}
	c.release(requestID, s, replay)
}

// release ends a subscription's hold: the entries read from the database
// are queued (a resume's all; a subscription's only if newer than what
// was sent), then the changes that arrived meanwhile, if newer.
func (c *conn) release(requestID string, s *sub, replay []intake.TimelineEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended || c.subs[requestID] != s {
		return
	}
	for _, e := range replay {
		c.pushLocked(TypeStatus, encodeStatus(requestID, e.Status, e.At, e.Version, e.Reason))
		s.lastSeq = max(s.lastSeq, e.Version)
	}
	for _, h := range s.held {
		if h.seq > s.lastSeq {
			c.pushLocked(TypeStatus, h.msg)
			s.lastSeq = h.seq
		}
	}
	s.held, s.holding = nil, false
}

// subscribeAll follows every request's status changes (staff only).
func (c *conn) subscribeAll() {
	if !c.who.Role.Staff() {
		c.queue(TypeError, encodeError("request not found", AllRequests, nil))
		return
	}
	c.mu.Lock()
	if c.subs == nil {
		c.subs = map[string]*sub{}
	}
	_, existed := c.subs[AllRequests]
	c.subs[AllRequests] = &sub{}
	c.mu.Unlock()
	if !existed {
		c.g.hub.follow(c, AllRequests)
	}
}

func (c *conn) unsubscribe(requestID string) {
	c.mu.Lock()
	_, ok := c.subs[requestID]
	delete(c.subs, requestID)
	c.mu.Unlock()
	if ok {
		c.g.hub.unfollow(c, requestID)
	}
}

// queueStatus queues a status change of requestID. For a follower of the
// request (followed), it is sent once and in order: held while the
// subscription reads the database, dropped if not newer than what was
// sent.
func (c *conn) queueStatus(requestID string, seq int, msg []byte, followed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return
	}
	if followed {
		s := c.subs[requestID]
		if s == nil {
			return
		}
		if s.holding {
			if len(s.held) >= c.g.opts.StatusQueue {
				c.tooSlowLocked()
				return
			}
			s.held = append(s.held, outgoingSeq{seq: seq, msg: msg})
			return
		}
		if seq <= s.lastSeq {
			return
		}
		s.lastSeq = seq
	}
	c.pushLocked(TypeStatus, msg)
}

// queue queues a message that is never dropped.
func (c *conn) queue(kind string, msg []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ended {
		c.pushLocked(kind, msg)
	}
}

// pushLocked appends to the status queue; a client whose queue is full
// is too slow and is disconnected: it resumes from the database.
func (c *conn) pushLocked(kind string, msg []byte) {
	if len(c.status) >= c.g.opts.StatusQueue {
		c.tooSlowLocked()
		return
	}
	c.status = append(c.status, outgoing{kind: kind, msg: msg})
	c.kickLocked()
}

func (c *conn) tooSlowLocked() {
	c.endLocked(CloseTooSlow, "too slow: reconnect and resume after the last seq you saw", endSlow)
}

// queuePosition puts p in its driver's slot, replacing a position not yet
// written (conflation) unless p is older than it.
func (c *conn) queuePosition(p Position, msg []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return
	}
	s := c.slots[p.DriverID]
	switch {
	case s == nil:
		if c.slots == nil {
			c.slots = map[string]*slot{}
		}
		s = &slot{}
		c.slots[p.DriverID] = s
	case p.At.Before(s.at):
		return // reordered on the way: the client has or will get a newer one
	}
	if s.queued {
		c.g.metrics.conflated.Inc()
	} else {
		s.queued = true
		c.pending = append(c.pending, s)
	}
	s.msg, s.at, s.sentAt = msg, p.At, p.SentAt
	c.kickLocked()
}

// kickLocked starts the writer unless it runs.
func (c *conn) kickLocked() {
	if !c.writing {
		c.writing = true
		go c.write()
	}
}

// write writes what is queued, status messages first, until the queues
// are empty, then stops. A write that fails or times out ends the
// connection.
func (c *conn) write() {
	var batch []outgoing
	var sentAts []time.Time
	for {
		c.mu.Lock()
		if c.ended || len(c.status) == 0 && len(c.pending) == 0 {
			c.writing = false
			if cap(c.status) > 64 {
				c.status = nil
			}
			if cap(c.pending) > 64 {
				c.pending = nil
			}
			c.mu.Unlock()
			return
		}
		batch = append(batch[:0], c.status...)
		clear(c.status)
		c.status = c.status[:0]
		statuses := len(batch)
		sentAts = sentAts[:0]
		for _, s := range c.pending {
			batch = append(batch, outgoing{kind: TypeLocation, msg: s.msg})
			sentAts = append(sentAts, s.sentAt)
			s.queued = false
		}
		clear(c.pending)
		c.pending = c.pending[:0]
		c.mu.Unlock()

		for i, m := range batch {
			ctx, cancel := context.WithTimeout(c.ctx, c.g.opts.WriteTimeout)
			err := c.ws.Write(ctx, websocket.MessageText, m.msg)
			cancel()
			if err != nil {
				c.end(websocket.StatusPolicyViolation, "write failed", endWrite)
				return
			}
			c.g.metrics.sent.WithLabelValues(m.kind).Inc()
			if i >= statuses {
				if at := sentAts[i-statuses]; !at.IsZero() {
					c.g.metrics.fanout.Observe(c.g.opts.Now().Sub(at).Seconds())
				}
			}
		}
		clear(batch)
	}
}

// ping checks that the client is there, and now and then that its token
// still speaks for its account; then it schedules the next ping.
func (c *conn) ping() {
	ctx, cancel := context.WithTimeout(c.ctx, c.g.opts.PongTimeout)
	err := c.ws.Ping(ctx)
	cancel()
	if err != nil {
		if c.ctx.Err() == nil {
			c.end(websocket.StatusPolicyViolation, "no pong", endNoPong)
		}
		return
	}
	if sess := c.g.deps.Sessions; sess != nil && c.g.opts.Now().Sub(c.lastCheck) >= c.g.opts.RecheckEvery {
		c.lastCheck = c.g.opts.Now()
		ctx, cancel := context.WithTimeout(c.ctx, requestTimeout)
		valid, err := sess.Valid(ctx, c.who)
		cancel()
		switch {
		case err != nil:
			c.g.log.Warn("websocket token not re-checked", "user_id", c.who.UserID, "err", err)
		case !valid:
			c.end(CloseTokenRefused, "token no longer valid: log in again", endRefused)
			return
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ended {
		c.pinger.Reset(c.g.opts.PingInterval)
	}
}

// end closes the connection with a code and a reason the client reads.
func (c *conn) end(code websocket.StatusCode, reason, why string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.endLocked(code, reason, why)
}

// endLocked marks the connection ended and closes it on a goroutine of
// its own: the close handshake waits for the client (a few seconds at
// most), and whoever ends a connection must not.
func (c *conn) endLocked(code websocket.StatusCode, reason, why string) {
	if c.ended {
		return
	}
	c.ended, c.why = true, why
	c.status, c.pending, c.slots = nil, nil, nil
	go func() {
		_ = c.ws.Close(code, reason)
		c.cancel()
	}()
}

// quoteShort quotes s for an error message, cut to a sane length.
func quoteShort(s string) string {
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	b, _ := json.Marshal(s)
	return string(b)
}
