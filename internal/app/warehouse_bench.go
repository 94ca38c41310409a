package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/bus"
	"github.com/yolda/yolda/internal/config"
	"github.com/yolda/yolda/internal/telemetry"
	"github.com/yolda/yolda/internal/warehouse"
	"github.com/yolda/yolda/internal/warehouse/benchmark"
)

// benchLag publishes live events at rate per second for dur into an
// embedded broker, runs the real loader into the engine, and prints how
// long events took to be in the warehouse and the lag gauge's worst.
func benchLag(ctx context.Context, engine benchmark.Engine, rate int, dur time.Duration, out io.Writer) error {
	dir, err := os.MkdirTemp("", "yolda-bench-lag-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	quiet := slog.New(slog.DiscardHandler)
	b, err := bus.Connect(ctx, bus.Config{DataDir: dir, Name: "yolda-bench-lag"}, quiet)
	if err != nil {
		return err
	}
	defer b.Close()
	if err := b.EnsureStreams(ctx); err != nil {
		return err
	}
	st, err := engine.Open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	reg := prometheus.NewRegistry()
	svc, err := warehouse.New(st, warehouse.Options{Registerer: reg, Logger: quiet})
	if err != nil {
		return err
	}

	var mu sync.Mutex
	var delays []time.Duration
	loaded := func(payloads [][]byte) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		for _, p := range payloads {
			var env struct {
				OccurredAt time.Time `json:"occurred_at"`
			}
			if json.Unmarshal(p, &env) == nil {
				delays = append(delays, now.Sub(env.OccurredAt))
			}
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() { _ = runLoader(runCtx, b, svc, config.Defaults().WarehouseBatchMax, nil, loaded) })
	wg.Go(func() { _ = svc.RunLag(runCtx, backlog(b), 250*time.Millisecond) })
	maxLag := 0.0
	wg.Go(func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
				if v, err := telemetry.Sum(reg, "yolda_warehouse_lag_seconds", nil); err == nil && v > maxLag {
					maxLag = v
				}
			}
		}
	})

	// Publish in 10 ms ticks, as many as the rate asks for so far.
	live := benchmark.NewLive(1)
	start := time.Now()
	sent := 0
	tick := time.NewTicker(10 * time.Millisecond)
	for time.Since(start) < dur {
		<-tick.C
		due := int(time.Since(start).Seconds() * float64(rate))
		var msgs []bus.Message
		for ; sent < due; sent++ {
			m := live.Next()
			msgs = append(msgs, bus.Message{ID: m.ID, Subject: m.Subject, Payload: m.Payload})
		}
		if len(msgs) > 0 {
			if err := b.PublishBatch(ctx, msgs); err != nil {
				tick.Stop()
				return err
			}
		}
	}
	tick.Stop()
	published := time.Since(start)
	deadline := time.Now().Add(time.Minute)
	for {
		mu.Lock()
		n := len(delays)
		mu.Unlock()
		if n >= sent || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	wg.Wait()
	slices.Sort(delays)
	q := func(p float64) time.Duration {
		if len(delays) == 0 {
			return 0
		}
		return delays[min(len(delays)-1, int(p*float64(len(delays))))]
	}
	fmt.Fprintf(out, "\nLive load into %s: %d events in %s (%.0f events/s), %d loaded\n\n", engine.Name, sent, published.Round(time.Millisecond),
		float64(sent)/published.Seconds(), len(delays))
	fmt.Fprintln(out, "| event commit -> in the warehouse p50 | p99 | max | yolda_warehouse_lag_seconds, worst sample |")
	fmt.Fprintln(out, "| --- | --- | --- | --- |")
	fmt.Fprintf(out, "| %s | %s | %s | %.2f s |\n", benchmark.Millis(q(0.5)), benchmark.Millis(q(0.99)), benchmark.Millis(q(1)), maxLag)
	return nil
}
