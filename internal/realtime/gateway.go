package realtime

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/dispatch"
	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/outbox"
)

// Errors of Serve, before the upgrade (the edge answers them as HTTP).
var (
	// ErrOrigin: a browser page from an origin not allowed opened the
	// connection (cross-site WebSocket hijacking).
	ErrOrigin = errors.New("websocket origin not allowed")
	// ErrBusy: the process holds MaxConns connections, or is stopping.
	ErrBusy = errors.New("websocket connections at capacity")
)

// Requests reads a request for someone, by the same object-level rule as
// the REST API (intake.Service.Get): another's request is not found.
type Requests interface {
	Get(ctx context.Context, who identity.Principal, requestID string) (intake.Request, error)
}

// Positions takes a driver's position report (fleet.Service.ReportPosition,
// as the REST route does, with the broadcast that follows it).
type Positions interface {
	ReportPosition(ctx context.Context, who identity.Principal, r fleet.PositionReport) (fleet.Position, error)
}

// Sessions says whether a connection's token still speaks for its
// account as it was when the connection opened: not revoked, the account
// enabled and of the same role. An error is a failure to tell (the
// connection stays; it is asked again at a later ping).
type Sessions interface {
	Valid(ctx context.Context, who identity.Principal) (bool, error)
}

// Options tune the gateway; zero fields take the defaults.
type Options struct {
	// AllowedOrigins are the browser origins, besides the request's own
	// host, that may open a connection: host patterns ("panel.example.com",
	// "*.example.com") or, with a scheme, whole origins
	// ("https://panel.example.com"). Clients that send no Origin
	// (non-browsers) are not concerned.
	AllowedOrigins []string
	// MaxConns caps the connections of this process (default 50 000).
	MaxConns int
	// PingInterval is how often an idle connection is pinged (default
	// 25s); PongTimeout how long the pong may take (default 10s): a
	// client that does not answer is disconnected.
	PingInterval time.Duration
	PongTimeout  time.Duration
	// WriteTimeout bounds one write to a client (default 10s).
	WriteTimeout time.Duration
	// StatusQueue is how many status messages (and offers) may wait for
	// a slow client before it is disconnected (default 256).
	StatusQueue int
	// ReadLimit is the largest message a client may send (default 4 KiB).
	ReadLimit int64
	// MaxSubscriptions caps the requests one connection follows (default
	// 64).
	MaxSubscriptions int
	// ClientRate and ClientBurst limit the messages a client sends per
	// second (default 20, burst 40): more get an error and are dropped.
	ClientRate  float64
	ClientBurst int
	// RecheckEvery is how often, at a ping, a connection's token is asked
	// whether it still speaks for its account (default 1m).
	RecheckEvery time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.PingInterval, 25*time.Second)
	def(&o.PongTimeout, 10*time.Second)
	def(&o.WriteTimeout, 10*time.Second)
	def(&o.RecheckEvery, time.Minute)
	if o.MaxConns <= 0 {
		o.MaxConns = 50_000
	}
	if o.StatusQueue <= 0 {
		o.StatusQueue = 256
	}
	if o.ReadLimit <= 0 {
		o.ReadLimit = 4 << 10
	}
	if o.MaxSubscriptions <= 0 {
		o.MaxSubscriptions = 64
	}
	if o.ClientRate <= 0 {
		o.ClientRate = 20
	}
	if o.ClientBurst <= 0 {
		o.ClientBurst = int(2 * o.ClientRate)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Deps are what the gateway is built on.
type Deps struct {
	Requests  Requests
	Positions Positions
	// Sessions, if set, re-checks tokens of open connections.
	Sessions Sessions
	Logger   *slog.Logger
	// Registerer takes the yolda_ws_* metrics (nil: none).
	Registerer prometheus.Registerer
}

// Gateway serves WebSocket connections and forwards to them what the
// fan-out brings (HandlePosition, HandleEvent). Safe for concurrent use.
type Gateway struct {
	deps    Deps
	opts    Options
	log     *slog.Logger
	metrics *metrics
	hub     *hub

	count    atomic.Int64
	stopping atomic.Bool
	conns    sync.WaitGroup
	// ctx ends every connection when the gateway stops.
	ctx    context.Context
	cancel context.CancelFunc
	// ready closes once both inputs of the fan-out are attached.
	ready     chan struct{}
	readyMu   sync.Mutex
	readyHave map[string]bool
}

// New returns a gateway; Run stops it.
func New(d Deps, o Options) (*Gateway, error) {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(d.Registerer)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &Gateway{deps: d, opts: o.withDefaults(), log: d.Logger.With("component", "realtime"), metrics: m, ctx: ctx, cancel: cancel,
		ready: make(chan struct{}), readyHave: map[string]bool{}}
	g.hub = newHub(g)
	return g, nil
}

// Serve upgrades an authenticated request to a WebSocket connection for
// who, whose token expires at expires, and serves it until it ends. It
// returns ErrOrigin or ErrBusy, before the upgrade, for the caller to
// answer; once upgraded it returns nil when the connection ends (the
// handshake wrote the response).
func (g *Gateway) Serve(w http.ResponseWriter, r *http.Request, who identity.Principal, expires time.Time) error {
	if !g.originAllowed(r) {
		g.metrics.refused.WithLabelValues("origin").Inc()
		return ErrOrigin
	}
	if g.stopping.Load() {
		g.metrics.refused.WithLabelValues("stopping").Inc()
		return ErrBusy
	}
	if g.count.Add(1) > int64(g.opts.MaxConns) {
		g.count.Add(-1)
		g.metrics.refused.WithLabelValues("busy").Inc()
		return ErrBusy
	}
	defer g.count.Add(-1)
	g.conns.Add(1)
	defer g.conns.Done()
	// The origin was checked above, with the same rule coder/websocket
	// applies, plus the configured patterns.
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return nil // Accept answered the client (not a WebSocket request)
	}
	ws.SetReadLimit(g.opts.ReadLimit)
	c := newConn(g, ws, who, expires)
	role := string(who.Role)
	g.metrics.connections.WithLabelValues(role).Inc()
	defer g.metrics.connections.WithLabelValues(role).Dec()
	c.serve()
	return nil
}

// originAllowed is the check against cross-site WebSocket hijacking: a
// browser always sends Origin; a page of another site may open a
// connection only if its origin is allowed.
func (g *Gateway) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, p := range g.opts.AllowedOrigins {
		target := strings.ToLower(u.Host)
		if strings.Contains(p, "://") {
			target = strings.ToLower(u.Scheme + "://" + u.Host)
		}
		if ok, err := path.Match(strings.ToLower(p), target); err == nil && ok {
			return true
		}
	}
	return false
}

// Run keeps the gateway until ctx ends, then closes every connection
// with 1001 (going away: reconnect elsewhere and resume) and waits, at
// most timeout, for them to end.
func (g *Gateway) Run(ctx context.Context, timeout time.Duration) error {
	<-ctx.Done()
	g.stopping.Store(true)
	g.hub.closeAll(websocket.StatusGoingAway, "server shutting down: reconnect and resume")
	done := make(chan struct{})
	go func() {
		g.conns.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(timeout):
		g.log.Warn("websocket connections still open after the shutdown timeout", "open", g.count.Load())
	}
	g.cancel()
	return nil
}

// The inputs of the fan-out, for Attached.
const (
	InputPositions = "positions"
	InputEvents    = "events"
)

// Attached records that an input of the fan-out (InputPositions: the
// listener of broadcast positions; InputEvents: the follower of the
// EVENTS stream) is in place: what is broadcast or stored from then on
// reaches this gateway.
func (g *Gateway) Attached(input string) {
	g.readyMu.Lock()
	defer g.readyMu.Unlock()
	g.readyHave[input] = true
	if g.readyHave[InputPositions] && g.readyHave[InputEvents] {
		select {
		case <-g.ready:
		default:
			close(g.ready)
		}
	}
}

// Ready is closed once both inputs are attached.
func (g *Gateway) Ready() <-chan struct{} { return g.ready }

// Backlog is what waits to be written to this process's clients:
// status messages (never dropped) and positions (at most one per driver
// per connection).
func (g *Gateway) Backlog() (statuses, positions int) { return g.hub.backlog() }

// Connections is how many connections are open.
func (g *Gateway) Connections() int { return int(g.count.Load()) }

// HandlePosition forwards a broadcast position (Position.Encode) to the
// connections here that watch its driver. It never blocks on a client.
func (g *Gateway) HandlePosition(data []byte) {
	p, err := DecodePosition(data)
	if err != nil || p.DriverID == "" {
		g.log.Warn("position broadcast not understood", "err", err)
		return
	}
	g.hub.position(p)
}

// HandleEvent forwards an event of the EVENTS stream (an outbox envelope)
// to the connections here it concerns: status changes to their
// requests' subscribers, offers to their drivers. Other events are
// ignored. It never blocks on a client.
func (g *Gateway) HandleEvent(data []byte) { g.hub.event(data) }

// EventSubjects are the EVENTS subjects HandleEvent needs.
func EventSubjects() []string {
	return []string{
		outbox.EventSubject(outbox.EventRequestStatusChanged), outbox.EventSubject(outbox.EventRequestCreated),
		outbox.EventSubject(dispatch.EventOfferCreated), outbox.EventSubject(dispatch.EventOfferClosed),
	}
}
