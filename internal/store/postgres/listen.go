package postgres

import (
	"context"
	"errors"
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

// Listener timing; variables so that tests can shorten them.
var (
	// listenHealthEvery is how long the listener waits for a notification
	// before it pings the server: a connection whose peer vanished without
	// a reset would otherwise wait for ever (TCP keepalive takes minutes).
	listenHealthEvery = 30 * time.Second
	listenPingTimeout = 5 * time.Second
	listenBackoffMin  = 100 * time.Millisecond
	listenBackoffMax  = 5 * time.Second
	notifyTimeout     = 2 * time.Second
	notifyEvery       = 5 * time.Millisecond
)

// ListenOutbox calls wake soon after a transaction that inserted outbox
// rows in this store's schema commits, in this process or any other (a
// store notifies at most once per notifyEvery), so a relay can sleep until
// there is work instead of polling. It holds one connection of its own,
// outside the pool, LISTENing on OutboxChannel. It also calls wake each
// time it has (re)started listening, since notifications sent while it was
// not listening are lost; on losing the connection it reconnects with a
// capped exponential backoff. It returns nil when ctx ends, and never
// before; connection errors are not reported.
//
// wake runs on the listener's goroutine and should not block (a send on a
// buffered channel of one, dropped if full, is the usual shape). Several
// commits may produce one wake, and a wake may find nothing to do; a relay
// should still poll at a slow interval, as a notification can be lost
// (a process that dies between its commit and its notification, a
// listener between connections).
func (s *Store) ListenOutbox(ctx context.Context, wake func()) error {
	cfg := s.pool.Config().ConnConfig
	backoff := listenBackoffMin
	for {
		listening := false
		_ = listenOnce(ctx, cfg, wake, &listening)
		if ctx.Err() != nil {
			return nil
		}
		if listening {
			backoff = listenBackoffMin
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, listenBackoffMax)
	}
}

// listenOnce connects, listens and calls wake for every notification of
// this store's schema until the connection fails or ctx ends. It sets
// *listening once LISTEN has succeeded.
func listenOnce(ctx context.Context, cfg *pgx.ConnConfig, wake func(), listening *bool) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	var schema string
	if err := conn.QueryRow(ctx, `SELECT coalesce(current_schema(), '')`).Scan(&schema); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, `LISTEN `+OutboxChannel); err != nil {
		return err
	}
	*listening = true
	wake() // whatever was committed while nobody listened
	for {
		wctx, cancel := context.WithTimeout(ctx, listenHealthEvery)
		n, err := conn.WaitForNotification(wctx)
		timedOut := wctx.Err() != nil
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && timedOut && pgconn.Timeout(err):
			// Quiet for a while: make sure the server is still there.
			pctx, cancel := context.WithTimeout(ctx, listenPingTimeout)
			err = conn.Ping(pctx)
			cancel()
			if err != nil {
				return err
			}
		case err != nil:
			return err
		case n == nil:
			return errors.New("listen: no notification")
		case n.Payload == schema:
			wake()
		}
	}
}
