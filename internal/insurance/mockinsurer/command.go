package mockinsurer

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"
)

// DefaultAddr is where `yolda mock-insurer` listens unless told otherwise; it
// is the base_url of the insurer in the contract's example insurers file.
const DefaultAddr = "127.0.0.1:9100"

// shutdownGrace bounds how long Run waits for answers being written when its
// context ends. Hung calls and calls waiting out their latency are dropped at
// once rather than waited for: a mock set to a 30s latency must not hold a
// Ctrl-C for 30s.
const shutdownGrace = 5 * time.Second

// Run serves the mock insurer on addr until ctx ends, then shuts down. An
// addr with port 0 picks a free port; the address actually bound is logged as
// "listening" with an "addr" attribute, for scripts and tests to read. A nil
// log logs nothing. Run returns nil after a shutdown caused by ctx.
func Run(ctx context.Context, addr string, b Behaviour, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := b.Validate(); err != nil {
		return fmt.Errorf("mock insurer: %w", err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("mock insurer: %w", err)
	}
	mock := New(b, WithLogger(log))
	defer mock.Close()
	srv := &http.Server{
		Handler:           mock,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	cur := mock.Behaviour()
	log.Info("listening", "addr", ln.Addr().String(), "mode", cur.Mode, "latency", cur.Latency,
		"jitter", cur.Jitter, "error_rate", cur.ErrorRate, "seed", cur.Seed, "auth", authKind(cur))

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err := <-served:
		return fmt.Errorf("mock insurer: %w", err)
	case <-ctx.Done():
	}
	// http.Server.Shutdown does not cancel the contexts of running requests,
	// so hung calls would keep it waiting: release them first.
	mock.Close()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		log.Warn("shutdown cut short", "err", err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("mock insurer: %w", err)
	}
	log.Info("stopped")
	return nil
}

// Flags registers the mock insurer's flags on fs and returns where their
// values land after fs.Parse: the listen address and the Behaviour to give
// Run. Mode, down style and error rate are checked as they are parsed.
//
//	--addr 127.0.0.1:9100  --mode ok  --latency 50ms  --jitter 0s
//	--error-rate 0  --down-style alternate  --seed 0 (random)
//	--api-key KEY  --bearer TOKEN  (required credentials; none by default)
func Flags(fs *flag.FlagSet) (addr *string, b *Behaviour) {
	b = &Behaviour{Mode: ModeOK, Latency: 50 * time.Millisecond, DownStyle: DownAlternate}
	addr = fs.String("addr", DefaultAddr, "address to listen on (port 0 picks a free one)")
	fs.Func("mode", "ok, down, hang or garbage (default ok)", func(v string) error {
		if err := (Behaviour{Mode: v}).Validate(); err != nil || v == "" {
			return fmt.Errorf("%q is not one of ok, down, hang, garbage", v)
		}
		b.Mode = v
		return nil
	})
	fs.DurationVar(&b.Latency, "latency", b.Latency, "mean latency of an answer")
	fs.DurationVar(&b.Jitter, "jitter", 0, "latency varies uniformly by up to ± this")
	fs.Func("error-rate", "fraction of ok-mode calls answered 500, 0 to 1 (default 0)", func(v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", v)
		}
		if err := (Behaviour{ErrorRate: f}).Validate(); err != nil {
			return err
		}
		b.ErrorRate = f
		return nil
	})
	fs.Func("down-style", "in down mode: alternate (503, then a dropped connection), 503 or close (default alternate)", func(v string) error {
		if err := (Behaviour{DownStyle: v}).Validate(); err != nil || v == "" {
			return fmt.Errorf("%q is not one of alternate, 503, close", v)
		}
		b.DownStyle = v
		return nil
	})
	fs.Uint64Var(&b.Seed, "seed", 0, "seed of error rolls, jitter and references (0: random, logged)")
	fs.StringVar(&b.APIKey, "api-key", "", "require this value in the X-Api-Key header")
	fs.StringVar(&b.Bearer, "bearer", "", "require \"Authorization: Bearer <this>\"")
	return addr, b
}
