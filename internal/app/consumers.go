package app

import (
	"context"

	"github.com/yolda/yolda/internal/bus"
	"github.com/yolda/yolda/internal/config"
	"github.com/yolda/yolda/internal/deadletter"
	"github.com/yolda/yolda/internal/notify"
)

// The consumers of the worker roles: each maps a domain worker (which
// knows nothing of the broker) onto the bus.

// runNotify runs the notify worker on request events until ctx ends, a
// batch of events per transaction.
func runNotify(ctx context.Context, b *bus.Bus, store notify.Store, cfg config.Config, dead *deadletter.Service, lag func(consumer string, payload []byte)) error {
	worker := notify.NewWorker(store, nil)
	return bus.ConsumeBatch(ctx, b, bus.ConsumerConfig{
		Stream: bus.StreamEvents, Durable: notify.Consumer, FilterSubject: "events.request.>",
		Concurrency: cfg.WorkerConcurrency, BatchMax: cfg.ConsumerBatchMax, BatchWait: cfg.ConsumerBatchWait,
		DeadLetter: deadLetterHook(dead),
	}, func(ctx context.Context, ds []bus.Delivery) ([]error, error) {
		results, err := worker.HandleBatch(ctx, payloads(ds))
		if err != nil {
			return nil, err
		}
		for i, d := range ds {
			if results[i] == nil && d.NumDelivered == 1 {
				lag(notify.Consumer, d.Data)
			}
		}
		return results, nil
	})
}

func payloads(ds []bus.Delivery) [][]byte {
	out := make([][]byte, len(ds))
	for i, d := range ds {
		out[i] = d.Data
	}
	return out
}
