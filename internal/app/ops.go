package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/yolda/yolda/internal/config"
)

// connLimiter is a handler that caps connections per client address on
// its own listener (httpapi.Server).
type connLimiter interface {
	LimitConns(ln net.Listener) (net.Listener, error)
}

// listenHTTP opens the API listener; when h caps connections per client
// address, through that cap. wrap, if set, wraps the socket listener.
func listenHTTP(addr string, h http.Handler, wrap func(net.Listener) net.Listener) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	if wrap != nil {
		ln = wrap(ln)
	}
	if l, ok := h.(connLimiter); ok {
		limited, err := l.LimitConns(ln)
		if err != nil {
			ln.Close()
			return nil, err
		}
		return limited, nil
	}
	return ln, nil
}

// opsServiceName is the service of the operations listener.
const opsServiceName = "ops"

// opsService serves the operations listener (YOLDA_OPS_ADDR): metrics and
// probes, apart from the API, until ctx ends. Every process runs it,
// whatever its roles. It is not drained: a scrape cut by shutdown costs
// nothing.
func opsService(cfg config.Config, h http.Handler, log *slog.Logger) service {
	return service{name: opsServiceName, run: func(ctx context.Context) error { return serveOps(ctx, cfg, h, log) }}
}

func serveOps(ctx context.Context, cfg config.Config, h http.Handler, log *slog.Logger) error {
	ln, err := net.Listen("tcp", cfg.OpsAddr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	log.Info("operations listening", "addr", ln.Addr().String())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
