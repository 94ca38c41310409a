package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/yolda/yolda/internal/bus"
	"github.com/yolda/yolda/internal/config"
	"github.com/yolda/yolda/internal/deadletter"
	"github.com/yolda/yolda/internal/insurance"
	"github.com/yolda/yolda/internal/insurance/checks"
	"github.com/yolda/yolda/internal/insurance/resilient"
	"github.com/yolda/yolda/internal/notify"
	"github.com/yolda/yolda/internal/outbox"
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

// runInsurance runs one consumer per configured insurer, and the pending
// gauges, until ctx ends. Calls stay one per message, behind the insurer's
// bulkhead; the outcomes that finish together share a transaction
// (intake's group commit behind RecordInsurance).
func runInsurance(ctx context.Context, b *bus.Bus, clients *resilient.Clients, requests checks.Requests,
	pending checks.PendingSource, dead *deadletter.Service, reg prometheus.Registerer, log *slog.Logger) error {
	gauges, err := checks.NewPendingGauges(pending, clients, reg, nil, log)
	if err != nil {
		return fmt.Errorf("insurance: %w", err)
	}
	worker := checks.NewWorker(clients, requests, nil, log)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return gauges.Run(ctx, 15*time.Second) })
	for _, c := range clients.All() {
		cc := insuranceConsumer(c.Config())
		cc.DeadLetter = deadLetterHook(dead)
		g.Go(func() error { return bus.Consume(ctx, b, cc, insuranceHandler(worker)) })
	}
	return g.Wait()
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
