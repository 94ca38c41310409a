package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/yolda/yolda/internal/bus"
	"github.com/yolda/yolda/internal/config"
	"github.com/yolda/yolda/internal/deadletter"
	"github.com/yolda/yolda/internal/insurance"
	"github.com/yolda/yolda/internal/insurance/checks"
	"github.com/yolda/yolda/internal/notify"
	"github.com/yolda/yolda/internal/outbox"
)

// The consumers of the worker roles: each maps a domain worker (which
// knows nothing of the broker) onto the bus. Consumers whose effects are
// database writes take batches (bus.ConsumeBatch: one transaction per
// batch); those that call out take one message per handler
// (bus.Consume) and share their writes' transactions through intake's
// group commit.

// notifyConsumer is the notify worker's consumer of request events: a
// batch of events per transaction.
func notifyConsumer(cfg config.Config, dead *deadletter.Service) bus.ConsumerConfig {
	return bus.ConsumerConfig{
		Stream: bus.StreamEvents, Durable: notify.Consumer, FilterSubject: "events.request.>",
		Concurrency: cfg.WorkerConcurrency, BatchMax: cfg.ConsumerBatchMax, BatchWait: cfg.ConsumerBatchWait,
		DeadLetter: deadLetterHook(dead),
	}
}

// notifyHandler applies a batch of events with the notify worker and
// records the lag of those handled the first time.
func notifyHandler(w *notify.Worker, lag func(consumer string, payload []byte)) bus.BatchHandler {
	return func(ctx context.Context, ds []bus.Delivery) ([]error, error) {
		results, err := w.HandleBatch(ctx, payloads(ds))
		if err != nil {
			return nil, err
		}
		for i, d := range ds {
			if results[i] == nil && d.NumDelivered == 1 {
				lag(notify.Consumer, d.Data)
			}
		}
		return results, nil
	}
}

func payloads(ds []bus.Delivery) [][]byte {
	out := make([][]byte, len(ds))
	for i, d := range ds {
		out[i] = d.Data
	}
	return out
}

// insuranceConsumer is the durable consumer of one insurer's checks: as
// many handlers as the insurer's bulkhead, each given the longest a check
// can take, and room for a day of parked checks.
func insuranceConsumer(c insurance.Config) bus.ConsumerConfig {
	return bus.ConsumerConfig{
		Stream:        bus.StreamJobs,
		Durable:       checks.ConsumerPrefix + c.Code,
		FilterSubject: outbox.InsuranceVerifyFilter(c.Code),
		AckWait:       c.CheckBudget(),
		Concurrency:   c.Bulkhead,
		MaxAckPending: 100_000,
	}
}

// insuranceHandler maps the worker's "try again later" onto a delayed
// redelivery that does not count as a failure.
func insuranceHandler(w *checks.Worker) bus.Handler {
	return func(ctx context.Context, d bus.Delivery) error {
		err := w.Handle(ctx, d.Data, d.NumDelivered)
		if later, ok := errors.AsType[*checks.RetryAfter](err); ok {
			return fmt.Errorf("%w: %w", err, bus.Retry(later.Delay))
		}
		return err
	}
}
