package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// OutboxChannel is the LISTEN/NOTIFY channel on which the store announces
// committed outbox rows. The payload is the store's schema
// (current_schema()), so stores in different schemas of one database, as
// in the tests, do not wake each other's relays.
const OutboxChannel = "yolda_outbox"

// notifyOutboxSQL notifies the relays in a transaction of its own, which
// does not wait for its commit record to reach the disk: the notification
// is not data, and a relay that misses one polls.
//
// Why not NOTIFY inside the transactions that insert the rows: PostgreSQL
// serialises the commits of notifying transactions (PreCommit_Notify takes
// a database-wide lock and holds it until the commit record is flushed),
// which turns group commit off for them. Measured on the test cluster
// (fsync on, 2 CPUs): 16 or 32 concurrent writers of one outbox row each
// committed 12,000-19,000 transactions/s without NOTIFY and with this
// notifier, but ~4,200/s, the rate of a single writer, with NOTIFY inside
// the transaction (on a slower disk: 6,500-10,000 against 400-1,400).
const notifyOutboxSQL = `SELECT set_config('synchronous_commit', 'off', true),
	pg_notify('` + OutboxChannel + `', coalesce(current_schema(), ''))`

// outboxCommitted is called after a transaction that inserted outbox rows
// has committed. It never blocks: the notifier sends one notification for
// any number of commits since its last one.
func (s *Store) outboxCommitted() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// notifier sends the notifications that outboxCommitted asks for: the
// first at once, then at most one per notifyEvery however busy the store
// is (a woken relay drains the outbox, so more would only cost). When stop
// is closed it sends any last one asked for and returns.
func (s *Store) notifier(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	send := func() {
		ctx, cancel := context.WithTimeout(context.Background(), notifyTimeout)
		defer cancel()
		_, _ = s.pool.Exec(ctx, notifyOutboxSQL) // lost: the relays poll
	}
	pause := time.NewTimer(0)
	<-pause.C
	for {
		select {
		case <-s.kick:
			send()
			pause.Reset(notifyEvery)
			select {
			case <-pause.C:
			case <-stop:
				pause.Stop()
			}
		case <-stop:
			select {
			case <-s.kick:
				send()
			default:
			}
			return
		}
	}
}

// notifyTimeout bounds one notification; notifyEvery is the least time
// between two (a woken relay drains the outbox, so more would only cost).
const (
	notifyTimeout = 2 * time.Second
	notifyEvery   = 5 * time.Millisecond
)

// listenTiming paces the listener. It is a field of each Store (tests
// shorten it through export_test.go), never package state.
type listenTiming struct {
	// healthEvery is how long the listener waits for a notification
	// before it pings the server: a connection whose peer vanished without
	// a reset would otherwise wait for ever (TCP keepalive takes minutes).
	healthEvery, pingTimeout time.Duration
	// probeTimeout is how long the listener waits for the notification it
	// sends itself once listening, to check that LISTEN works at all.
	probeTimeout time.Duration
	// backoffMin and backoffMax bound the wait before reconnecting;
	// noDeliveryRetry is the wait after LISTEN was found not to deliver.
	backoffMin, backoffMax, noDeliveryRetry time.Duration
}

func defaultListenTiming() listenTiming {
	return listenTiming{
		healthEvery: 30 * time.Second, pingTimeout: 5 * time.Second, probeTimeout: 5 * time.Second,
		backoffMin: 100 * time.Millisecond, backoffMax: 5 * time.Second, noDeliveryRetry: time.Minute,
	}
}

// errNoDelivery: LISTEN was accepted but the notification the listener sent
// itself never came back. Behind a connection pooler in transaction mode
// (PgBouncer's default) LISTEN "works" on whichever server connection ran
// it and nothing is ever delivered to the client.
var errNoDelivery = errors.New("LISTEN accepted but no notification is delivered (a connection pooler in transaction mode?)")

// probeSuffix marks the listener's own test notification.
const probeSuffix = "#probe"

// ListenOutbox calls wake soon after a transaction that inserted outbox
// rows in this store's schema commits, in this process or any other (a
// store notifies at most once per notifyEvery), so a relay can sleep until
// there is work instead of polling. It holds one connection of its own,
// outside the pool, LISTENing on OutboxChannel, and checks once listening
// that notifications are delivered (it sends itself one). It also calls
// wake each time it has (re)started listening, since notifications sent
// while it was not listening are lost; on losing the connection it
// reconnects with a capped exponential backoff. It returns nil when ctx
// ends, and never before.
//
// Failures are not silent: the first of a run is logged as a warning (and
// how long it took to recover once it did), every one is counted
// (yolda_outbox_listen_failures_total{reason}), and yolda_outbox_listening
// is 1 only while notifications are known to arrive. While it is 0 the
// relays poll; when LISTEN is found not to deliver at all (a pooler in
// transaction mode) the listener says so once and tries again every
// minute.
//
// wake runs on the listener's goroutine and should not block (a send on a
// buffered channel of one, dropped if full, is the usual shape). Several
// commits may produce one wake, and a wake may find nothing to do; a relay
// should still poll at a slow interval, as a notification can be lost
// (a process that dies between its commit and its notification, a
// listener between connections).
func (s *Store) ListenOutbox(ctx context.Context, wake func()) error {
	cfg := s.pool.Config().ConnConfig
	t := s.listen
	backoff := t.backoffMin
	var failingSince time.Time
	for {
		listening := false
		err := s.listenOnce(ctx, cfg, wake, &listening)
		s.metrics.listening.Set(0)
		if ctx.Err() != nil {
			return nil
		}
		if listening {
			backoff = t.backoffMin
		}
		reason := "connection"
		if errors.Is(err, errNoDelivery) {
			reason = "no_delivery"
		}
		s.metrics.listenFailures.WithLabelValues(reason).Inc()
		if failingSince.IsZero() || listening {
			failingSince = time.Now()
			s.log.Warn("outbox listener failed: relays poll until it is back", "err", err, "reason", reason)
		} else {
			s.log.Debug("outbox listener still failing", "err", err, "since", failingSince)
		}
		wait := backoff
		if reason == "no_delivery" {
			wait = t.noDeliveryRetry
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		}
		backoff = min(2*backoff, t.backoffMax)
	}
}

// listenOnce connects, listens, checks that its own notification comes
// back, and then calls wake for every notification of this store's schema
// until the connection fails or ctx ends. It sets *listening once the check
// has passed.
func (s *Store) listenOnce(ctx context.Context, cfg *pgx.ConnConfig, wake func(), listening *bool) error {
	t := s.listen
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	var schema string
	if err := conn.QueryRow(ctx, `SELECT coalesce(current_schema(), '')`).Scan(&schema); err != nil {
		return fmt.Errorf("read schema: %w", err)
	}
	if _, err := conn.Exec(ctx, `LISTEN `+OutboxChannel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	probe := schema + probeSuffix
	if _, err := conn.Exec(ctx, s.probeSQL, probe); err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, t.probeTimeout)
	for {
		n, err := conn.WaitForNotification(pctx)
		if err != nil {
			timedOut := pctx.Err() != nil && ctx.Err() == nil
			cancel()
			if timedOut {
				return errNoDelivery
			}
			return fmt.Errorf("wait for the probe: %w", err)
		}
		if n.Payload == probe {
			break
		}
		if n.Payload == schema {
			wake()
		}
	}
	cancel()
	*listening = true
	s.metrics.listening.Set(1)
	wake() // whatever was committed while nobody listened
	for {
		wctx, cancel := context.WithTimeout(ctx, t.healthEvery)
		n, err := conn.WaitForNotification(wctx)
		timedOut := wctx.Err() != nil
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && timedOut && pgconn.Timeout(err):
			// Quiet for a while: make sure the server is still there.
			pctx, cancel := context.WithTimeout(ctx, t.pingTimeout)
			err = conn.Ping(pctx)
			cancel()
			s.listenPings.Add(1)
			if err != nil {
				return fmt.Errorf("ping a quiet connection: %w", err)
			}
		case err != nil:
			return fmt.Errorf("wait for notifications: %w", err)
		case n == nil:
			return errors.New("listen: no notification")
		case n.Payload == schema:
			wake()
		}
	}
}
