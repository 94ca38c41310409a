//go:build unix

package sqlite

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BenchmarkConcurrentWrites: 16 writers, each committing small
// transactions (four outbox rows), as the consumers and the relay do
// behind the one writer. cpu-ns/tx is the process's CPU time per
// transaction.
//
//	go test -run '^$' -bench ConcurrentWrites ./internal/store/sqlite/
func BenchmarkConcurrentWrites(b *testing.B) {
	s, err := Open(context.Background(), b.TempDir()+"/yolda.db")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	ctx := context.Background()
	var seq atomic.Int64
	b.SetParallelism(8) // 16 writers on 2 cores
	start := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			err := s.tx(ctx, func(tx *txn) error {
				for range 4 {
					if _, err := tx.ExecContext(ctx, `INSERT INTO outbox (id, subject, payload, created_at) VALUES (?, 's', x'00', 0)`,
						fmt.Sprint("b", seq.Add(1))); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(b.N), "cpu-ns/tx")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
