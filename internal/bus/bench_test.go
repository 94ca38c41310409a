package bus

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"
)

// BenchmarkPublishBatch measures what the relay can push into an embedded
// broker: batches of 1,000 small messages, each with its own id, each
// confirmed. Run: go test -run '^$' -bench PublishBatch ./internal/bus/
func BenchmarkPublishBatch(b *testing.B) {
	for _, size := range []int{100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			bus, err := Connect(context.Background(), Config{DataDir: b.TempDir()}, slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			defer bus.Close()
			if err := bus.EnsureStreams(context.Background()); err != nil {
				b.Fatal(err)
			}
			payload := make([]byte, 512) // about an envelope's size
			msgs := make([]Message, size)
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				for j := range msgs {
					msgs[j] = Message{ID: fmt.Sprintf("bench-%d-%d", i, j), Subject: "events.bench", Payload: payload}
				}
				if err := bus.PublishBatch(context.Background(), msgs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// BenchmarkPublish is the one-at-a-time baseline for BenchmarkPublishBatch.
func BenchmarkPublish(b *testing.B) {
	bus, err := Connect(context.Background(), Config{DataDir: b.TempDir()}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer bus.Close()
	if err := bus.EnsureStreams(context.Background()); err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 512)
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if err := bus.Publish(context.Background(), "events.bench", fmt.Sprintf("one-%d", i), payload); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
