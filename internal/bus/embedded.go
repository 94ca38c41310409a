package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// embeddedStartTimeout bounds how long an embedded server may take to
// recover its streams and accept connections.
const embeddedStartTimeout = 30 * time.Second

// startEmbedded runs nats-server inside this process. It listens on no port
// (DontListen): the only way in is an in-process connection, so the broker
// is as private as the SQLite file next to it. JetStream keeps the server's
// default sync interval (see the package doc on durability).
func startEmbedded(ctx context.Context, cfg Config, log *slog.Logger) (*server.Server, error) {
	opts := &server.Options{
		ServerName: cfg.Name,
		DontListen: true,
		JetStream:  true,
		StoreDir:   filepath.Join(cfg.DataDir, "nats"),
		// Signals belong to our process; the server must not install
		// handlers of its own.
		NoSigs: true,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	debug := log.Enabled(ctx, slog.LevelDebug)
	trace := log.Enabled(ctx, levelTrace)
	srv.SetLoggerV2(serverLogger{log: log.With("component", "nats-server")}, debug, trace, false)
	srv.Start()

	wait := embeddedStartTimeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < wait {
		wait = time.Until(d)
	}
	if !srv.ReadyForConnections(wait) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, errors.New("embedded broker: not ready in time")
	}
	if !srv.JetStreamEnabled() {
		// Start reports JetStream failures (store dir, limits) through the
		// logger only; this is where they become an error.
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("embedded broker: JetStream did not start (store %s); see the log", opts.StoreDir)
	}
	return srv, nil
}
