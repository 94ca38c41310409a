package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrClosed is returned by operations on a closed Bus.
var ErrClosed = errors.New("bus closed")

const (
	// drainTimeout bounds Close: pending publishes and acks get this long to
	// reach the broker.
	drainTimeout = 10 * time.Second
	// asyncMaxPending caps unacknowledged async publishes per connection;
	// PublishBatch keeps each batch below it.
	asyncMaxPending = 8192
	// asyncAckTimeout fails an async publish whose ack never comes, so a
	// batch cannot wait forever on a lost reply.
	asyncAckTimeout = 30 * time.Second
)

// Bus is a connection to the broker, and the broker itself when embedded.
// It is safe for concurrent use.
type Bus struct {
	cfg     Config
	log     *slog.Logger
	srv     *server.Server // nil with an external broker
	nc      *nats.Conn
	js      jetstream.JetStream
	metrics *metrics

	mu          sync.Mutex
	onReconnect []func()

	closedCh  chan struct{} // closed when the connection is closed
	closeOnce sync.Once
	closeErr  error
}

// Connect starts the embedded broker or connects to the external one, as
// cfg says. It does not declare streams: call [Bus.EnsureStreams].
func Connect(ctx context.Context, cfg Config, logger *slog.Logger) (*Bus, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bus config: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("bus metrics: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	b := &Bus{
		cfg:      cfg,
		log:      logger.With("component", "bus"),
		metrics:  m,
		closedCh: make(chan struct{}),
	}

	opts := b.connOptions()
	url := ""
	if cfg.Embedded() {
		b.srv, err = startEmbedded(ctx, cfg, logger)
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.InProcessServer(b.srv))
	} else {
		url = strings.Join(splitURLs(cfg.URL), ",")
		opts = append(opts, externalOptions(cfg)...)
	}

	b.nc, err = nats.Connect(url, opts...)
	if err != nil {
		b.shutdownServer()
		return nil, fmt.Errorf("connect to broker: %w", err)
	}
	b.js, err = jetstream.New(b.nc,
		jetstream.WithPublishAsyncMaxPending(asyncMaxPending),
		jetstream.WithPublishAsyncTimeout(asyncAckTimeout),
	)
	if err != nil {
		b.nc.Close()
		b.shutdownServer()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if b.cfg.Replicas == 0 {
		// A server that names a cluster is one of several; replicate there.
		b.cfg.Replicas = 1
		if b.nc.ConnectedClusterName() != "" {
			b.cfg.Replicas = 3
		}
	}
	b.log.Info("broker connected", "embedded", cfg.Embedded(), "server", b.nc.ConnectedServerName(),
		"cluster", b.nc.ConnectedClusterName(), "replicas", b.cfg.Replicas)
	return b, nil
}

// connOptions are the connection options of both modes.
func (b *Bus) connOptions() []nats.Option {
	return []nats.Option{
		nats.Name(b.cfg.Name),
		// Never give up: the broker coming back is the normal case, and
		// the relay re-publishes whatever a reconnect may have lost.
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DrainTimeout(drainTimeout),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				b.log.Warn("broker disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			b.log.Info("broker reconnected", "server", nc.ConnectedServerName())
			b.notifyReconnect()
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			b.log.Warn("broker async error", "subject", subject, "err", err)
		}),
		nats.ClosedHandler(func(*nats.Conn) { close(b.closedCh) }),
	}
}

func externalOptions(cfg Config) []nats.Option {
	var opts []nats.Option
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.TLSCAFile != "" {
		opts = append(opts, nats.RootCAs(cfg.TLSCAFile))
	}
	if cfg.TLSCertFile != "" {
		opts = append(opts, nats.ClientCert(cfg.TLSCertFile, cfg.TLSKeyFile))
	}
	return opts
}

func splitURLs(s string) []string {
	var out []string
	for _, u := range strings.Split(s, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// JetStream is the JetStream context of this connection, for what the bus
// does not wrap (key-value buckets, stream inspection).
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// Conn is the underlying connection, for plain (non-stream) subjects.
func (b *Bus) Conn() *nats.Conn { return b.nc }

// Replicas is the replica count the streams are declared with.
func (b *Bus) Replicas() int { return b.cfg.Replicas }

// OnReconnect registers f to run after every reconnect to the broker. The
// relay uses it: a reconnect may mean the broker restarted and lost its
// unflushed tail. f runs on the connection's callback goroutine and must not
// block.
func (b *Bus) OnReconnect(f func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.onReconnect = append(b.onReconnect, f)
}

func (b *Bus) notifyReconnect() {
	b.mu.Lock()
	fs := append([]func(){}, b.onReconnect...)
	b.mu.Unlock()
	for _, f := range fs {
		f()
	}
}

// Close drains the connection (pending publishes and acks are sent, then
// subscriptions end) and then stops the embedded broker, which flushes its
// files. Stop consumers before closing. Close is idempotent.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() {
		if err := b.nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			b.closeErr = fmt.Errorf("drain broker connection: %w", err)
			b.nc.Close()
		}
		select {
		case <-b.closedCh:
		case <-time.After(drainTimeout + time.Second):
			b.nc.Close()
		}
		b.shutdownServer()
	})
	return b.closeErr
}

func (b *Bus) shutdownServer() {
	if b.srv == nil {
		return
	}
	b.srv.Shutdown()
	b.srv.WaitForShutdown()
}
