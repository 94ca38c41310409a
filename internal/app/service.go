package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/yolda/yolda/internal/config"
	"github.com/yolda/yolda/internal/intake"
)

// service is one long-running part of a process. run returns nil when ctx
// ends and it has stopped cleanly, or an error, which stops the process.
type service struct {
	name string
	run  func(ctx context.Context) error
}

// httpServiceName is the service that owns the HTTP listener: the api
// role's, or the probes-only one every other process runs.
const httpServiceName = "http"

func hasService(ss []service, name string) bool {
	return slices.ContainsFunc(ss, func(s service) bool { return s.name == name })
}

func serviceNames(ss []service) []string {
	names := make([]string, len(ss))
	for i, s := range ss {
		names[i] = s.name
	}
	return names
}

// runServices runs every service under one errgroup: the first to fail
// cancels the others, and it returns when all have returned.
func runServices(ctx context.Context, ss []service) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, s := range ss {
		g.Go(func() error {
			if err := s.run(ctx); err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// httpService listens on cfg.HTTPAddr until ctx ends, then stops
// accepting, lets in-flight requests finish (each waits for its commit)
// and only then closes intake.
func httpService(cfg config.Config, h http.Handler, requests *intake.Service, log *slog.Logger) service {
	return service{name: httpServiceName, run: func(ctx context.Context) error {
		ln, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		srv := &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      60 * time.Second,
			IdleTimeout:       120 * time.Second,
			MaxHeaderBytes:    32 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
		log.Info("listening", "addr", ln.Addr().String())
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(ln) }()
		select {
		case err := <-errc:
			return fmt.Errorf("http server: %w", err)
		case <-ctx.Done():
		}
		log.Info("shutting down: draining http requests", "timeout", cfg.ShutdownTimeout.String())
		shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		err = srv.Shutdown(shutdownCtx)
		if requests != nil {
			requests.Close()
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http shutdown: %w", err)
		}
		return nil
	}}
}

// pprofService serves the Go profiler on its own listener, apart from the
// API, so that it never sits behind the public edge.
func pprofService(addr string, log *slog.Logger) service {
	return service{name: "pprof", run: func(ctx context.Context) error {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			<-ctx.Done()
			_ = srv.Close()
		}()
		log.Info("profiler listening", "addr", addr)
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("listen: %w", err)
		}
		return nil
	}}
}
