package duckdb_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/warehouse"
	"github.com/yolda/yolda/internal/warehouse/benchmark"
	"github.com/yolda/yolda/internal/warehouse/duckdb"
)

// BenchmarkLoadLive is the loader's rate on the live path: batches of
// events as the platform emits them, each request's facts re-derived as
// its events arrive (events/s is b.N/elapsed). The events are made before
// the timer starts; decoding them is timed (LoadBatch does it).
//
// "held200k" starts from a warehouse that already holds 200,000 events,
// freshly opened (nothing in the writer's memory), whose requests the
// timed events go on with: a grown warehouse must stay as fast.
// "held200k/nomem" keeps no request in memory: every event of a request
// seen before is looked up in DuckDB, as when requests live longer than
// the memory holds them.
func BenchmarkLoadLive(b *testing.B) {
	run := func(b *testing.B, base string, gen *benchmark.Live, o duckdb.Options) {
		for _, batch := range []int{16, 256, 1024, 2048, 4096} {
			b.Run(fmt.Sprintf("batch%d", batch), func(b *testing.B) {
				path := filepath.Join(b.TempDir(), "w.duckdb")
				live := benchmark.NewLive(1)
				if base != "" {
					copyFile(b, base, path)
					live = gen.Fork(2)
				}
				loadLive(b, path, o, live, batch)
			})
		}
	}
	run(b, "", nil, duckdb.Options{})
	b.Run("held200k", func(b *testing.B) {
		base, gen := prefilled(b, 200_000)
		run(b, base, gen, duckdb.Options{})
		b.Run("nomem", func(b *testing.B) { run(b, base, gen, duckdb.Options{RecentEvents: -1}) })
	})
}

// loadLive times loading b.N events of live in batches into the
// warehouse at path.
func loadLive(b *testing.B, path string, o duckdb.Options, live *benchmark.Live, batch int) {
	s, err := duckdb.OpenWith(context.Background(), path, o)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	svc, err := warehouse.New(s, warehouse.Options{Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	batches := make([][][]byte, 0, b.N/batch+1)
	for done := 0; done < b.N; done += batch {
		payloads := make([][]byte, batch)
		for i := range payloads {
			payloads[i] = live.Next().Payload
		}
		batches = append(batches, payloads)
	}
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for _, payloads := range batches {
		if _, err := svc.LoadBatch(context.Background(), payloads); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	// CPU time per event, DuckDB's threads included: what the loader
	// takes from the machine, steadier than events/s on a shared one.
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/event")
}

// prefilled makes a closed warehouse file holding n live events, and the
// generator that made them.
func prefilled(b *testing.B, n int) (string, *benchmark.Live) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "base.duckdb")
	s, err := duckdb.Open(context.Background(), path)
	if err != nil {
		b.Fatal(err)
	}
	svc, err := warehouse.New(s, warehouse.Options{Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	live := benchmark.NewLive(1)
	for done := 0; done < n; done += 4096 {
		payloads := make([][]byte, min(4096, n-done))
		for i := range payloads {
			payloads[i] = live.Next().Payload
		}
		if _, err := svc.LoadBatch(context.Background(), payloads); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	return path, live
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func copyFile(b *testing.B, from, to string) {
	b.Helper()
	src, err := os.Open(from)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		b.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		b.Fatal(err)
	}
}
