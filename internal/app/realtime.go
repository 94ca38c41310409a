package app

import (
	"context"
	"errors"
	"time"

	"github.com/yolda/yolda/internal/account"
	"github.com/yolda/yolda/internal/bus"
	"github.com/yolda/yolda/internal/fleet"
	"github.com/yolda/yolda/internal/identity"
	"github.com/yolda/yolda/internal/realtime"
)

// The realtime role: the WebSocket gateway and its fan-out over the
// broker. Positions (from the WebSocket and from REST) are broadcast on
// plain subjects by whichever process takes them; every gateway listens to
// all of them and follows the EVENTS stream with its own cursor, and
// forwards to its own connections.

// buildGateway builds the gateway when the process runs the realtime role,
// before the HTTP server, which serves it.
func (p *process) buildGateway(accounts *account.Service) error {
	if !p.runs("realtime") {
		return nil
	}
	g, err := realtime.New(realtime.Deps{
		Requests: p.requests, Positions: p.reporter, Sessions: sessions{accounts}, Logger: p.log, Registerer: p.registry,
	}, realtime.Options{
		AllowedOrigins: p.cfg.AllowedOrigins(), MaxConns: p.cfg.WSMaxConns,
		PingInterval: p.cfg.WSPingInterval, StatusQueue: p.cfg.WSStatusQueue,
		ClientRate: p.cfg.WSClientRate, ClientBurst: int(2 * p.cfg.WSClientRate), RecheckEvery: p.cfg.WSTokenRecheck,
	})
	if err != nil {
		return err
	}
	p.gateway = g
	return nil
}

// realtimeServices: the gateway (which closes its connections at
// shutdown), the listener of every driver's positions, and the follower of
// the status changes and offers in the EVENTS stream.
func (p *process) realtimeServices() ([]service, error) {
	g := p.gateway
	return []service{
		{name: "realtime-gateway", run: func(ctx context.Context) error {
			return g.Run(ctx, drainBudget(p.cfg.ShutdownTimeout))
		}},
		{name: "realtime-positions", run: func(ctx context.Context) error {
			stop, err := p.broker.Listen(realtime.PositionSubjects, func(_ string, data []byte) { g.HandlePosition(data) })
			if err != nil {
				return err
			}
			g.Attached(realtime.InputPositions)
			<-ctx.Done()
			stop()
			return nil
		}},
		{name: "realtime-events", run: func(ctx context.Context) error {
			return p.broker.Follow(ctx, bus.StreamEvents, realtime.EventSubjects(),
				func() { g.Attached(realtime.InputEvents) }, func(_ string, data []byte) { g.HandleEvent(data) })
		}},
	}, nil
}

// broadcastingFleet is the fleet service whose accepted position reports
// (REST and WebSocket alike) are broadcast to every gateway. A broadcast
// that fails loses one position of a moving driver: the next one follows.
type broadcastingFleet struct {
	*fleet.Service
	broker *bus.Bus
	now    func() time.Time
}

func (f broadcastingFleet) ReportPosition(ctx context.Context, who identity.Principal, r fleet.PositionReport) (fleet.Position, error) {
	pos, err := f.Service.ReportPosition(ctx, who, r)
	if err == nil && f.broker != nil {
		_ = f.broker.Broadcast(realtime.PositionSubject(who.UserID), realtime.PositionOf(who.UserID, pos, f.now()).Encode())
	}
	return pos, err
}

// sessions asks the account service whether a connection's token still
// speaks for its account as it did when the connection opened.
type sessions struct{ accounts *account.Service }

func (s sessions) Valid(ctx context.Context, who identity.Principal) (bool, error) {
	now, err := s.accounts.Resolve(ctx, who)
	switch {
	case errors.Is(err, account.ErrTokenRefused):
		return false, nil
	case err != nil:
		return false, err
	}
	return now.Role == who.Role, nil
}
