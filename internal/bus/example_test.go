package bus_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/yolda/yolda/internal/bus"
)

// A worker role in miniature: an embedded broker, one job published with
// its outbox id, and a consumer that handles it and stops.
func Example() {
	dir, err := os.MkdirTemp("", "bus-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	b, err := bus.Connect(ctx, bus.Config{DataDir: dir}, slog.New(slog.DiscardHandler))
	if err != nil {
		panic(err)
	}
	defer b.Close()
	if err := b.EnsureStreams(ctx); err != nil {
		panic(err)
	}

	// The relay's side: Nats-Msg-Id is the outbox id, so publishing twice
	// stores one message.
	for range 2 {
		if err := b.Publish(ctx, "jobs.example.verify", "msg-01", []byte(`{"request_id":"req-7"}`)); err != nil {
			panic(err)
		}
	}

	// The worker's side: Consume runs until its context ends.
	ctx, stop := context.WithCancel(ctx)
	err = bus.Consume(ctx, b, bus.ConsumerConfig{
		Stream:        bus.StreamJobs,
		Durable:       "example",
		FilterSubject: "jobs.example.verify",
	}, func(_ context.Context, d bus.Delivery) error {
		fmt.Printf("%s %s delivery %d\n", d.ID, d.Data, d.NumDelivered)
		stop() // one is enough here; the ack still happens after we return
		return nil
	})
	fmt.Println("consume:", err)
	// Output:
	// msg-01 {"request_id":"req-7"} delivery 1
	// consume: <nil>
}
