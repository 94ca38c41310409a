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

// httpServiceName is the service that owns the API listener: the api
// role's.
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
// cancels the others, and it returns when all have returned. A service
// still starting when the process is asked to stop (a consumer declaring
// itself, say) returns the cancellation as its error; that is a clean stop,
// not a failure.
func runServices(ctx context.Context, ss []service) error {
	stop := ctx
	g, ctx := errgroup.WithContext(ctx)
	for _, s := range ss {
		g.Go(func() error {
			err := s.run(ctx)
			if err != nil && stop.Err() != nil && errors.Is(err, context.Canceled) {
				return nil
			}
			if err != nil {
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
//
// wrap, if set, wraps the listener (tests shape the sockets it accepts).
func httpService(cfg config.Config, h http.Handler, requests *intake.Service, log *slog.Logger, wrap func(net.Listener) net.Listener) service {
	return service{name: httpServiceName, run: func(ctx context.Context) error {
		ln, err := listenHTTP(cfg.HTTPAddr, h, wrap)
		if err != nil {
			return err
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
		// The whole shutdown fits in the timeout, even with a database
		// that stopped answering: the drain gets most of it, then intake
		// abandons what it could not commit, leaving the rest for closing
		// the stores.
		drainCtx, cancel := context.WithTimeout(context.Background(), drainBudget(cfg.ShutdownTimeout))
		defer cancel()
		err = srv.Shutdown(drainCtx)
		_ = requests.Shutdown(drainCtx)
		// Handlers still running (a read of a database that does not
		// answer) have their requests cancelled with their connections.
		_ = srv.Close()
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http shutdown: %w", err)
		}
		return nil
	}}
}

// drainBudget is the part of the shutdown timeout that in-flight work (HTTP
// requests, consumer handlers) gets; the rest is for closing the broker
// connection and the stores.
func drainBudget(timeout time.Duration) time.Duration { return timeout * 2 / 3 }

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
