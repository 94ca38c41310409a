package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/yolda/yolda/internal/id"
)

func openTest(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "yolda.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func kept(c *stmtCache) int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

// A statement a write transaction runs for the first time runs
// unprepared, is prepared once the transaction has ended (the one writer
// connection is free then), and is bound from the cache by the next
// transaction; a transaction's miss must not wait for the connection it
// holds.
func TestWriterKeepsStatements(t *testing.T) {
	s := openTest(t)
	const q = `SELECT count(*) FROM outbox WHERE subject = ?`
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if s.write.stmts.get(q) != nil {
		t.Fatal("kept before first use")
	}
	for i := range 3 {
		err := s.tx(ctx, func(tx *txn) error {
			var n int
			if err := tx.QueryRowContext(ctx, q, "x").Scan(&n); err != nil {
				return err
			}
			if _, bound := tx.bound[q]; bound != (i > 0) {
				t.Errorf("transaction %d: bound from the cache = %v", i, bound)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("tx %d: %v", i, err)
		}
		// Prepared after the commit, once the caller has heard back.
		for s.write.stmts.get(q) == nil {
			if ctx.Err() != nil {
				t.Fatalf("not kept after transaction %d", i)
			}
			time.Sleep(time.Millisecond)
		}
	}
	if ctx.Err() != nil {
		t.Fatal("a miss waited for the writer it held")
	}
}

// Reads of any number of ids share one statement: the ids go as one JSON
// argument, so the cache does not fill with one text per count.
func TestSnapshotsShareStatements(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Snapshots(ctx, []string{id.New("req", time.Now())}); err != nil {
		t.Fatal(err)
	}
	before := kept(s.read.stmts)
	for n := 2; n <= 40; n++ {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = id.New("req", time.Now())
		}
		if _, err := s.Snapshots(ctx, ids); err != nil {
			t.Fatalf("Snapshots of %d: %v", n, err)
		}
	}
	if after := kept(s.read.stmts); after != before {
		t.Errorf("read statements kept: %d after one id, %d after 2..40 ids", before, after)
	}
}

// The cache is bounded: texts beyond maxCachedStmts run unprepared.
func TestStatementCacheBounded(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	for i := range maxCachedStmts + 20 {
		var n int
		if err := s.read.QueryRowContext(ctx, fmt.Sprintf(`SELECT %d`, i)).Scan(&n); err != nil || n != i {
			t.Fatalf("SELECT %d = %d, %v", i, n, err)
		}
	}
	if got := kept(s.read.stmts); got != maxCachedStmts {
		t.Errorf("kept %d statements, want the bound %d", got, maxCachedStmts)
	}
}
