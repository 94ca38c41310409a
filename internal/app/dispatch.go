package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/yolda/yolda/internal/bus"
	"github.com/yolda/yolda/internal/config"
	"github.com/yolda/yolda/internal/deadletter"
	"github.com/yolda/yolda/internal/dispatch"
	"github.com/yolda/yolda/internal/outbox"
)

// dispatchConfig is dispatch's part of the configuration.
func dispatchConfig(cfg config.Config) dispatch.Config {
	radii, _ := cfg.DispatchRadii() // validated with the config
	threshold := cfg.BatchMatchThreshold
	if threshold == 0 {
		threshold = -1 // dispatch.Config: negative is never
	}
	return dispatch.Config{OfferTimeout: cfg.OfferTimeout, RadiiKm: radii, Wait: cfg.DispatchWait, BatchThreshold: threshold}
}

// buildDispatch builds dispatch's use cases, which the API serves (offers,
// accept, decline, manual assignment, progress) whatever roles run here,
// and the expirer that the dispatch role runs.
func (p *process) buildDispatch() error {
	exp, err := dispatch.NewExpirer(p.store, p.cfg.OfferExpiryInterval, nil, p.wake, p.log, p.registry)
	if err != nil {
		return fmt.Errorf("offer expirer: %w", err)
	}
	p.expirer = exp
	p.dispatch = dispatch.NewService(p.store, p.store, p.fleet, p.positions, etaOf(p.cfg), dispatch.ServiceOptions{
		Committed: p.wake, Expired: exp.WakeNow, Logger: p.log,
	})
	return nil
}

// dispatchServices: the consumer of dispatch jobs, which decides for a
// batch of jobs at once and commits its offers in one transaction, and the
// expirer, which ends offers past their deadline and commits their
// requests' next jobs (in any number of processes: see docs/events.md).
func (p *process) dispatchServices() ([]service, error) {
	worker, err := dispatch.NewWorker(p.store, p.fleet, dispatch.WorkerOptions{
		Config: dispatchConfig(p.cfg), Committed: p.wake, Deadline: p.expirer.Wake, Logger: p.log, Registerer: p.registry,
	})
	if err != nil {
		return nil, fmt.Errorf("dispatch worker: %w", err)
	}
	return []service{
		p.batchConsumer("dispatch-consumer", dispatchConsumer(p.cfg, p.deadLetters), dispatchHandler(worker)),
		{name: "offer-expirer", run: p.expirer.Run},
	}, nil
}

// dispatchConsumer is the durable consumer of dispatch jobs: batches of
// jobs, each batch's offers in one transaction.
func dispatchConsumer(cfg config.Config, dead *deadletter.Service) bus.ConsumerConfig {
	return bus.ConsumerConfig{
		Stream: bus.StreamJobs, Durable: dispatch.Consumer, FilterSubject: outbox.DispatchRequestFilter,
		// A decision takes milliseconds; a stuck one is redelivered soon.
		AckWait:     10 * time.Second,
		Concurrency: cfg.WorkerConcurrency, BatchMax: cfg.ConsumerBatchMax, BatchWait: cfg.ConsumerBatchWait,
		// Requests waiting for a free driver sit in the consumer, delayed.
		MaxAckPending: 100_000,
		DeadLetter:    deadLetterHook(dead),
	}
}

// dispatchHandler turns deliveries of dispatch jobs into the worker's jobs
// and its outcomes into the consumer's: nil acknowledges, a
// dispatch.RetryError asks for the job again later (not a failure), and a
// job that cannot be read is a failure (it goes to the dead letters).
func dispatchHandler(w *dispatch.Worker) bus.BatchHandler {
	return func(ctx context.Context, ds []bus.Delivery) ([]error, error) {
		results := make([]error, len(ds))
		jobs := make([]dispatch.Job, 0, len(ds))
		at := make([]int, 0, len(ds)) // jobs[k] is ds[at[k]]
		for i, d := range ds {
			env, err := outbox.Decode(d.Data)
			if err == nil && env.RequestID == "" {
				err = fmt.Errorf("%w: no request id", outbox.ErrMalformed)
			}
			if err != nil {
				results[i] = fmt.Errorf("dispatch job %s: %w", d.ID, err)
				continue
			}
			jobs = append(jobs, dispatch.Job{MessageID: env.ID, RequestID: env.RequestID})
			at = append(at, i)
		}
		if len(jobs) == 0 {
			return results, nil
		}
		out, err := w.Handle(ctx, jobs)
		if err != nil {
			return nil, err
		}
		for k, e := range out {
			if retry, ok := errors.AsType[*dispatch.RetryError](e); ok {
				e = fmt.Errorf("%s: %w", retry.Reason, bus.Retry(retry.After))
			}
			results[at[k]] = e
		}
		return results, nil
	}
}
