package relay_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/yolda/yolda/internal/bus"
	"github.com/yolda/yolda/internal/outbox"
	"github.com/yolda/yolda/internal/relay"
)

// overlapStore counts how many relay rounds are in flight at once; each
// round's publish is slowed so that a backlog builds up behind it.
type overlapStore struct {
	pipelineStore
	inFlight, most atomic.Int64
}

func (s *overlapStore) RelayOutbox(ctx context.Context, limit int, lease time.Duration, publish func([]outbox.Message) []outbox.Publication) (int, error) {
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for m := s.most.Load(); n > m && !s.most.CompareAndSwap(m, n); m = s.most.Load() {
	}
	return s.pipelineStore.RelayOutbox(ctx, limit, lease, func(msgs []outbox.Message) []outbox.Publication {
		time.Sleep(10 * time.Millisecond)
		return publish(msgs)
	})
}

// With several workers, rounds overlap while a backlog lasts, and still
// every row reaches the broker exactly once: the claims are disjoint, so
// no row is published twice (the broker would count it as a duplicate).
func TestRelayWorkersPublishEveryRowOnce(t *testing.T) {
	for engine := range stores {
		t.Run(engine, func(t *testing.T) {
			s := &overlapStore{pipelineStore: stores[engine](t)}
			p, reg := newPipelineOn(t, s, brokers["embedded"](t), relay.Options{Batch: 10, Workers: 4}, quietLogger())
			p.create(t, 300)
			waitFor(t, "empty outbox", 60*time.Second, func() bool {
				n, _, _ := p.store.OutboxBacklog(context.Background())
				return n == 0
			})
			if most := s.most.Load(); most < 2 {
				t.Errorf("at most %d relay round in flight at once, want several while the backlog lasted", most)
			}
			// Per request: its created event, its insurance event (no
			// insurer is configured: straight to manual review) and its
			// dispatch job.
			if n := streamMsgs(t, p.bus, bus.StreamEvents); n != 600 {
				t.Errorf("EVENTS holds %d messages, want 600", n)
			}
			if n := streamMsgs(t, p.bus, bus.StreamJobs); n != 300 {
				t.Errorf("JOBS holds %d messages, want 300", n)
			}
			if dup := publishedWith(t, reg, "duplicate"); dup != 0 {
				t.Errorf("%v rows were published twice", dup)
			}
			if stored := publishedWith(t, reg, "stored"); stored != 900 {
				t.Errorf("%v rows stored by the broker, want 900", stored)
			}
		})
	}
}

// publishedWith sums yolda_bus_published_total over streams for result.
func publishedWith(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != "yolda_bus_published_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}
