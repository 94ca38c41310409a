package notify_test

import (
	"context"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/intake"
	"github.com/yolda/yolda/internal/notify"
	"github.com/yolda/yolda/internal/outbox"
)

// nullStore stores nothing: the benchmark measures the worker alone.
type nullStore struct{ notify.Store }

func (nullStore) RecordNotificationBatch(_ context.Context, rs []notify.Record) ([]bool, error) {
	return make([]bool, len(rs)), nil
}

// BenchmarkHandleCreated is the worker's own cost of a request.created
// event (decode, notification), its store left out:
//
//	go test -run '^$' -bench HandleCreated -benchmem ./internal/notify/
func BenchmarkHandleCreated(b *testing.B) {
	at := time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)
	r := intake.Request{ID: "req_01HZX3Q4T8W2B7K9M5N6P0R1S2", OwnerID: "usr_01HZX3Q4T8W2B7K9M5N6P0R1S3",
		Status: intake.StatusDispatching, ServiceType: intake.Tow,
		Location:  intake.Location{Lat: 41.0082, Lng: 28.9784, Address: "İstiklal Caddesi 12", Province: "İstanbul", District: "Beyoğlu"},
		Vehicle:   intake.Vehicle{Plate: "34ABC123", Make: "Renault", Model: "Clio", Type: "car"},
		Policy:    intake.Policy{Insurer: "anadolu", PolicyNumber: "POL-123456"},
		Contact:   intake.Contact{Name: "Ayşe Yılmaz", Phone: "+905551112233"},
		Timeline:  []intake.TimelineEntry{{Status: intake.StatusReceived, At: at}, {Status: intake.StatusDispatching, At: at}},
		CreatedAt: at, UpdatedAt: at, Version: 2}
	m, err := outbox.New(outbox.EventSubject(outbox.EventRequestCreated), outbox.EventRequestCreated, at, r.ID, outbox.SystemActor,
		intake.CreatedEvent{Request: r, OwnerID: r.OwnerID})
	if err != nil {
		b.Fatal(err)
	}
	w := notify.NewWorker(nullStore{}, nil)
	batch := make([][]byte, 64)
	for i := range batch {
		batch[i] = m.Payload
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		results, err := w.HandleBatch(context.Background(), batch)
		if err != nil || results[0] != nil {
			b.Fatal(err, results[0])
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/event")
}
